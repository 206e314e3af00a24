import { useEffect, useMemo, useState } from 'react'
import { Link } from 'react-router'
import type { Summary } from '../../api/types'
import { graphWindow, useLiveGraph } from '../../live/useLiveGraph'
import { Empty, ErrorState, Loading } from '../../ui/States'
import { usePageTitle } from '../../ui/usePageTitle'
import { GraphCanvas, type Selection } from './GraphCanvas'
import { fmtMTLS, fmtMs, fmtPct, fmtRps, health, namespacesOf, nodeTraffic, viewGraph, type GraphView, type ViewNode } from './model'

/** The most edges the table under the graph lists, busiest first. */
const tableRows = 200

/** GraphPage is the mesh's live traffic: who calls whom, how often, how well and how fast. */
export default function GraphPage() {
  usePageTitle('Traffic graph')
  const [namespace, setNamespace] = useState('')
  const [versions, setVersions] = useState(false)
  const [selected, setSelected] = useState<Selection>(null)
  const q = useLiveGraph(graphWindow, namespace)
  const all = useLiveGraph(graphWindow, '') // for the namespace list; the same subscription when no filter is set
  const view = useMemo(() => (q.data ? viewGraph(q.data, versions) : null), [q.data, versions])
  const namespaces = namespacesOf(all.data)

  // Escape closes the side panel, from anywhere on the page.
  useEffect(() => {
    if (!selected) return
    const onKey = (e: KeyboardEvent) => e.key === 'Escape' && setSelected(null)
    window.addEventListener('keydown', onKey)
    return () => window.removeEventListener('keydown', onKey)
  }, [selected])

  const nodeById = useMemo(() => new Map((view?.nodes ?? []).map((n) => [n.id, n])), [view])
  const edges = useMemo(() => [...(view?.edges ?? [])].sort((a, b) => b.rps - a.rps).slice(0, tableRows), [view])
  const name = (id: string) => nodeById.get(id)?.label ?? id

  return (
    <>
      <header className="page-header">
        <h1>Traffic graph</h1>
        <p className="muted" role="status">
          {q.live ? `Live: figures over the last ${graphWindow}, updated every second.` : `Figures over the last ${graphWindow}, read every few seconds (live updates unavailable${q.liveError ? `: ${q.liveError}` : ''}).`}
        </p>
      </header>
      <div className="toolbar">
        <label htmlFor="graph-namespace">Namespace</label>
        <select id="graph-namespace" value={namespace} onChange={(e) => { setNamespace(e.target.value); setSelected(null) }}>
          <option value="">All namespaces</option>
          {namespaces.map((n) => (
            <option key={n} value={n}>
              {n}
            </option>
          ))}
        </select>
        <label>
          <input type="checkbox" checked={versions} onChange={(e) => { setVersions(e.target.checked); setSelected(null) }} /> Show versions
        </label>
        <span className="legend" aria-label="Edge colours">
          <span className="swatch swatch-ok" aria-hidden="true" /> ≥ 99 % success <span className="swatch swatch-warn" aria-hidden="true" /> ≥ 95 %{' '}
          <span className="swatch swatch-bad" aria-hidden="true" /> below
        </span>
      </div>
      {q.isPending ? (
        <Loading what="the traffic graph" />
      ) : q.isError && !q.data ? (
        <ErrorState what="the traffic graph" error={q.error} retry={() => void q.refetch()} />
      ) : !view || view.nodes.length === 0 ? (
        <Empty title="No traffic in the last 10 seconds.">
          <p>The graph shows requests that went through sidecars. Send some through the gateway or between services.</p>
        </Empty>
      ) : (
        <div className="graph-layout">
          <GraphCanvas
            view={view}
            selected={selected}
            onSelect={setSelected}
            label={`Traffic graph: ${view.nodes.length} nodes and ${view.edges.length} edges. The table below lists the same edges.`}
          />
          {selected && <SidePanel view={view} selected={selected} name={name} node={nodeById.get(selected.id)} onClose={() => setSelected(null)} />}
        </div>
      )}
      {view && view.edges.length > 0 && (
        <div className="table-scroll">
          <table className="data compact">
            <caption>
              Traffic between nodes{view.edges.length > tableRows ? `, the ${tableRows} busiest of ${view.edges.length}` : ''}
            </caption>
            <thead>
              <tr>
                <th scope="col">From</th>
                <th scope="col">To</th>
                <th scope="col" className="num">Rate</th>
                <th scope="col" className="num">Success</th>
                <th scope="col" className="num">p99</th>
                <th scope="col" className="num">mTLS</th>
              </tr>
            </thead>
            <tbody>
              {edges.map((e) => (
                <tr key={e.id} className={selected?.id === e.id ? 'row-selected' : undefined}>
                  <td>
                    <button type="button" className="link" onClick={() => setSelected({ kind: 'node', id: e.source })}>
                      {name(e.source)}
                    </button>
                  </td>
                  <th scope="row">
                    <button type="button" className="link" onClick={() => setSelected({ kind: 'edge', id: e.id })} aria-label={`${name(e.source)} to ${name(e.target)}`}>
                      {name(e.target)}
                    </button>
                  </th>
                  <td className="num">{fmtRps(e.rps)}</td>
                  <td className={`num health-${health(e.successRate)}`}>{fmtPct(e.successRate)}</td>
                  <td className="num">{fmtMs(e.p99)}</td>
                  <td className="num">
                    <MTLSShare share={e.mtlsShare} />
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </>
  )
}

function Golden({ s, codes }: { s: Summary; codes: Record<string, number> }) {
  const codeList = Object.entries(codes).sort(([a], [b]) => a.localeCompare(b))
  return (
    <dl className="golden">
      <dt>Rate</dt>
      <dd>{fmtRps(s.rps)}</dd>
      <dt>Success rate</dt>
      <dd className={`health-${health(s.successRate)}`}>{fmtPct(s.successRate)}</dd>
      <dt>Latency p50 / p95 / p99</dt>
      <dd>
        {fmtMs(s.p50)} / {fmtMs(s.p95)} / {fmtMs(s.p99)}
      </dd>
      <dt>Requests (errors)</dt>
      <dd>
        {s.requests} ({s.errors})
      </dd>
      {codeList.length > 0 && (
        <>
          <dt>Response codes</dt>
          <dd>{codeList.map(([c, n]) => `${c}: ${n}`).join(', ')}</dd>
        </>
      )}
    </dl>
  )
}

function SidePanel({ view, selected, node, name, onClose }: { view: GraphView; selected: NonNullable<Selection>; node?: ViewNode; name: (id: string) => string; onClose: () => void }) {
  const edge = selected.kind === 'edge' ? view.edges.find((e) => e.id === selected.id) : undefined
  const title = edge ? `${name(edge.source)} → ${name(edge.target)}` : (node?.label ?? selected.id)
  const t = selected.kind === 'node' ? nodeTraffic(view, selected.id) : null
  const serviceLink = node && node.type === 'service' && node.namespace ? `/services/${encodeURIComponent(node.namespace)}/${encodeURIComponent(node.label)}` : null
  return (
    <aside className="side-panel" aria-labelledby="side-panel-title">
      <div className="side-panel-head">
        <h2 id="side-panel-title">{title}</h2>
        <button type="button" onClick={onClose} aria-label="Close details">
          ×
        </button>
      </div>
      {edge ? (
        <>
          <Golden s={edge} codes={edge.codes} />
          <p>
            <MTLSShare share={edge.mtlsShare} />
          </p>
        </>
      ) : t && node ? (
        <>
          <p className="muted">
            {node.type} {node.namespace && <>in {node.namespace}</>} · traffic it {t.direction === 'in' ? 'received' : 'sent'}
          </p>
          <Golden s={t.summary} codes={t.codes} />
          {serviceLink && <Link to={serviceLink}>Open the service page</Link>}
        </>
      ) : (
        <p className="muted">It is no longer in the graph.</p>
      )}
    </aside>
  )
}

/**
 * MTLSShare is the share of an edge's requests that came over mutual TLS, behind a lock icon
 * whose accessible label says it in words.
 */
export function MTLSShare({ share }: { share: number | null }) {
  const text = fmtMTLS(share)
  if (!text) return <span className="muted" title="No destination sidecar reported these requests">—</span>
  const all = share === 1
  return (
    <span className={`mtls ${all ? 'mtls-all' : 'mtls-part'}`}>
      <svg role="img" aria-label={all ? 'Mutual TLS' : share === 0 ? 'No mutual TLS' : 'Partly mutual TLS'} viewBox="0 0 16 16" width="12" height="12" className="lock-icon">
        {/* A padlock: closed when every request was mutual TLS, open otherwise. */}
        <path d={all ? 'M4.5 7V5a3.5 3.5 0 0 1 7 0v2' : 'M4.5 7V5a3.5 3.5 0 0 1 6.8-1.2'} fill="none" stroke="currentColor" strokeWidth="1.6" />
        <rect x="2.5" y="7" width="11" height="8" rx="1.5" fill="currentColor" />
      </svg>{' '}
      {text}
    </span>
  )
}
