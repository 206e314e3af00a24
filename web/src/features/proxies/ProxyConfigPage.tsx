import { useQuery } from '@tanstack/react-query'
import { useMemo, useState, type ReactNode } from 'react'
import { Link, useParams } from 'react-router'
import { configDumpQuery, proxiesQuery } from '../../api/queries'
import { ErrorState, Loading } from '../../ui/States'
import { usePageTitle } from '../../ui/usePageTitle'
import { tablesOf, type DumpTables } from './dump'

type Section = 'listeners' | 'routes' | 'clusters' | 'endpoints'
const sections: { id: Section; label: string }[] = [
  { id: 'listeners', label: 'Listeners' },
  { id: 'routes', label: 'Routes' },
  { id: 'clusters', label: 'Clusters' },
  { id: 'endpoints', label: 'Endpoints' },
]

/**
 * ProxyConfigPage shows the configuration one proxy has applied: its /config_dump, relayed
 * by the server, as four tables and as the raw dump.
 */
export function ProxyConfigPage() {
  const { node = '' } = useParams()
  const proxies = useQuery(proxiesQuery())
  const proxy = proxies.data?.proxies.find((p) => p.nodeId === node)
  usePageTitle(`Proxy ${proxy?.workload ?? node}`)
  const dump = useQuery({ ...configDumpQuery(node), enabled: node !== '' })
  const tables = useMemo(() => (dump.data ? tablesOf(dump.data) : undefined), [dump.data])
  const [filter, setFilter] = useState('')

  return (
    <>
      <header className="page-header">
        <p className="muted">
          <Link to="/proxies">Proxies</Link> /
        </p>
        <h1>{proxy?.workload ?? node}</h1>
        {proxy && (
          <p className="muted">
            {proxy.mode} of <strong>{proxy.namespace}/{proxy.service}</strong> at <code>{proxy.address}</code>
            {proxy.health && !proxy.health.ready && (
              <>
                {' '}
                · <span className="pill pill-bad">Application not ready</span> {proxy.health.reason}
              </>
            )}
          </p>
        )}
      </header>
      {dump.isPending ? (
        <Loading what="the configuration dump" />
      ) : dump.isError ? (
        <ErrorState what="this proxy's configuration" error={dump.error} retry={() => void dump.refetch()} />
      ) : (
        <>
          <div className="toolbar">
            <label htmlFor="dump-filter">Filter</label>
            <input id="dump-filter" type="search" placeholder="name, address or domain" value={filter} onChange={(e) => setFilter(e.target.value)} />
            <button type="button" onClick={() => void dump.refetch()} disabled={dump.isFetching}>
              {dump.isFetching ? 'Reading…' : 'Read again'}
            </button>
          </div>
          {tables &&
            sections.map((s) => <DumpSection key={s.id} id={s.id} label={s.label} tables={tables} filter={filter.trim().toLowerCase()} />)}
          <details className="raw-dump">
            <summary>Raw configuration dump (JSON)</summary>
            <pre>{JSON.stringify(dump.data, null, 2)}</pre>
          </details>
        </>
      )}
    </>
  )
}

function DumpSection({ id, label, tables, filter }: { id: Section; label: string; tables: DumpTables; filter: string }) {
  const headingId = `dump-${id}`
  const match = (...vs: string[]) => !filter || vs.some((v) => v.toLowerCase().includes(filter))
  const error = tables.errors[id]
  let head: string[]
  let rows: { key: string; cells: ReactNode[]; bad?: boolean }[]
  switch (id) {
    case 'listeners':
      head = ['Name', 'Address', 'State', 'Version']
      rows = tables.listeners
        .filter((l) => match(l.name, l.address))
        .map((l) => ({ key: l.name, cells: [l.name, <code key="a">{l.address}</code>, l.state, l.version] }))
      break
    case 'routes':
      head = ['Route configuration', 'Virtual host', 'Domains', 'Routes']
      rows = tables.routes
        .filter((r) => match(r.config, r.virtualHost, ...r.domains))
        .map((r) => ({ key: r.config + r.virtualHost, cells: [r.config, r.virtualHost, r.domains.join(', '), r.routes] }))
      break
    case 'clusters':
      head = ['Name', 'Discovery', 'Load balancing', 'State', 'Version']
      rows = tables.clusters
        .filter((c) => match(c.name))
        .map((c) => ({ key: c.name, cells: [c.name, c.discovery, c.lbPolicy, c.state, c.version] }))
      break
    case 'endpoints':
      head = ['Cluster', 'Address', 'Health']
      rows = tables.endpoints
        .filter((e) => match(e.cluster, e.address))
        .map((e) => ({
          key: e.cluster + e.address,
          bad: e.health !== 'HEALTHY',
          cells: [e.cluster, <code key="a">{e.address}</code>, <span key="h" className={e.health === 'HEALTHY' ? 'pill pill-ok' : 'pill pill-bad'}>{e.health}</span>],
        }))
      break
  }
  return (
    <section aria-labelledby={headingId}>
      <h2 id={headingId}>
        {label} <span className="muted">({rows.length})</span>
      </h2>
      {error && (
        <p className="error-text" role="alert">
          The proxy rejected its last {label.toLowerCase()} update: {error}
        </p>
      )}
      {rows.length === 0 ? (
        <p className="muted">No {label.toLowerCase()}{filter ? ' match the filter' : ''}.</p>
      ) : (
        <div className="table-scroll">
          <table className="data">
            <caption className="visually-hidden">{label} in effect on this proxy</caption>
            <thead>
              <tr>
                {head.map((h) => (
                  <th scope="col" key={h}>
                    {h}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={r.key} className={r.bad ? 'row-bad' : undefined}>
                  {r.cells.map((c, i) => (i === 0 ? <th scope="row" key={i}>{c}</th> : <td key={i}>{c}</td>))}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </section>
  )
}
