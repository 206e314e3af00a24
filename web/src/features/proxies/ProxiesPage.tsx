import { useQuery } from '@tanstack/react-query'
import { useMemo, useState } from 'react'
import { Link } from 'react-router'
import { proxiesQuery, proxiesRefreshMs } from '../../api/queries'
import type { Proxy } from '../../api/types'
import { Empty, ErrorState, Loading } from '../../ui/States'
import { Ago, useNow } from '../../ui/Time'
import { ago, exact } from '../../ui/time'
import { usePageTitle } from '../../ui/usePageTitle'
import { certExpiry, mtlsPorts, nacksOf, sortProxies, syncState, xdsTypes } from './model'

/** ProxiesPage lists every proxy and whether it has applied the configuration being served. */
export function ProxiesPage() {
  usePageTitle('Proxies')
  const q = useQuery(proxiesQuery())
  const [filter, setFilter] = useState('')

  const shown = useMemo(() => {
    const all = sortProxies(q.data?.proxies ?? [])
    const f = filter.trim().toLowerCase()
    if (!f) return all
    return all.filter((p) =>
      [p.namespace, p.service, p.workload, p.address, p.mode, p.identity ?? ''].some((v) => v.toLowerCase().includes(f)),
    )
  }, [q.data, filter])

  return (
    <>
      <header className="page-header">
        <h1>Proxies</h1>
        {q.data && (
          <p className="muted">
            Serving configuration revision <strong>{q.data.revision}</strong>. Refreshed every{' '}
            {proxiesRefreshMs / 1000} seconds{q.dataUpdatedAt ? <>, last <Ago t={new Date(q.dataUpdatedAt).toISOString()} /></> : null}.
          </p>
        )}
      </header>
      {q.data?.problems && q.data.problems.length > 0 && (
        <section aria-labelledby="push-problems" className="callout callout-bad">
          <h2 id="push-problems">Configuration not applied as written</h2>
          <ul>
            {q.data.problems.map((p) => (
              <li key={p.resource + p.message}>
                <strong>{p.resource}</strong>: {p.message}
              </li>
            ))}
          </ul>
        </section>
      )}
      {q.isPending ? (
        <Loading what="proxies" />
      ) : q.isError && !q.data ? (
        <ErrorState what="the proxies" error={q.error} retry={() => void q.refetch()} />
      ) : q.data.proxies.length === 0 ? (
        <Empty title="No proxy has connected yet.">
          <p>
            Start a sidecar next to a workload, for example:
            <br />
            <code>
              sluice-proxy --control-plane 127.0.0.1:15010 --namespace default --service reviews --labels version=v1
              --address 127.0.0.6 --inbound 9080=19080
            </code>
          </p>
        </Empty>
      ) : (
        <>
          <div className="toolbar">
            <label htmlFor="proxy-filter">Filter</label>
            <input
              id="proxy-filter"
              type="search"
              placeholder="namespace, service, workload, address or identity"
              value={filter}
              onChange={(e) => setFilter(e.target.value)}
            />
            <span className="muted" role="status">
              {shown.length} of {q.data.proxies.length} proxies
            </span>
          </div>
          <ProxyTable proxies={shown} revision={q.data.revision} />
        </>
      )}
    </>
  )
}

function ProxyTable({ proxies, revision }: { proxies: Proxy[]; revision: number }) {
  return (
    <div className="table-scroll">
      <table className="data proxies">
        <caption className="visually-hidden">Proxies and their configuration state</caption>
        <thead>
          <tr>
            <th scope="col">Namespace</th>
            <th scope="col">Service</th>
            <th scope="col">Workload</th>
            <th scope="col">Mode</th>
            <th scope="col">Address</th>
            <th scope="col">Connected</th>
            <th scope="col">Application</th>
            <th scope="col">Identity</th>
            <th scope="col">mTLS</th>
            <th scope="col">Certificate</th>
            <th scope="col">Sync</th>
            {xdsTypes.map((t) => (
              <th scope="col" key={t} className="num">
                <abbr title={`${t}: the version of this configuration the proxy acknowledged`}>{t}</abbr>
              </th>
            ))}
            <th scope="col">NACKs</th>
          </tr>
        </thead>
        <tbody>
          {proxies.map((p) => (
            <ProxyRow key={p.nodeId} p={p} revision={revision} />
          ))}
        </tbody>
      </table>
    </div>
  )
}

function ProxyRow({ p, revision }: { p: Proxy; revision: number }) {
  const sync = syncState(p)
  const nacks = nacksOf(p)
  return (
    <tr className={nacks.length ? 'row-bad' : undefined}>
      <td>{p.namespace}</td>
      <th scope="row">
        {p.mode === 'sidecar' && p.service ? <Link to={`/services/${encodeURIComponent(p.namespace)}/${encodeURIComponent(p.service)}`}>{p.service}</Link> : p.service}
      </th>
      <td>
        {p.mode === 'proxyless' ? (
          p.workload
        ) : (
          <Link to={`/proxies/${encodeURIComponent(p.nodeId)}`} aria-label={`${p.workload} configuration`}>
            {p.workload}
          </Link>
        )}
      </td>
      <td>{p.mode}</td>
      <td>
        <code>{p.address}</code>
      </td>
      <td>
        {p.connected ? (
          <span className="pill pill-ok">Yes</span>
        ) : (
          <span className="pill pill-bad" title="Its endpoint leaves the mesh after a grace period">
            No{p.disconnectedAt && <>, <Ago t={p.disconnectedAt} /></>}
          </span>
        )}
      </td>
      <td>
        {!p.health || p.health.ready ? (
          <span className="pill pill-ok">Ready</span>
        ) : (
          <>
            <span className="pill pill-bad">Not ready</span> <span className="muted">{p.health.reason}</span>
          </>
        )}
      </td>
      <td>{p.identity ? <code className="identity">{p.identity}</code> : <span className="muted">—</span>}</td>
      <td>
        <MTLSModes p={p} />
      </td>
      <td>
        <CertificateExpiry p={p} />
      </td>
      <td>
        {sync === 'in-sync' ? (
          <span className="pill pill-ok">In sync · r{p.syncedRevision}</span>
        ) : sync === 'behind' ? (
          <span className="pill pill-warn">
            Behind · r{p.syncedRevision} of r{revision}
          </span>
        ) : (
          <span className="pill">r{p.syncedRevision}</span>
        )}
      </td>
      {xdsTypes.map((t) => (
        <td key={t} className="num">
          {p.acked?.[t] ? <code>{p.acked[t]}</code> : <span className="muted">—</span>}
        </td>
      ))}
      <td>
        {nacks.length === 0 ? (
          <span className="muted">none</span>
        ) : (
          <ul className="nacks">
            {nacks.map(([t, msg]) => (
              <li key={t} className="error-text">
                <strong>{t} NACK:</strong> {msg}
              </li>
            ))}
          </ul>
        )}
      </td>
    </tr>
  )
}

const modeClass: Record<string, string> = { STRICT: 'pill-ok', PERMISSIVE: 'pill-warn', DISABLE: 'pill-bad' }

/** MTLSModes lists the mTLS mode in effect per inbound port. */
function MTLSModes({ p }: { p: Proxy }) {
  const ports = mtlsPorts(p)
  if (ports.length === 0) {
    return <span className="muted">{p.mode === 'sidecar' ? 'not enforced' : '—'}</span>
  }
  return (
    <ul className="mtls-modes" aria-label={`mTLS modes of ${p.workload}`}>
      {ports.map(([port, mode]) => (
        <li key={port}>
          <span className="muted">{port}</span> <span className={`pill ${modeClass[mode] ?? ''}`}>{mode}</span>
        </li>
      ))}
    </ul>
  )
}

/** CertificateExpiry is when the proxy's identity's certificate expires: red under an hour. */
function CertificateExpiry({ p }: { p: Proxy }) {
  const now = useNow()
  if (!p.certificate) return <span className="muted">—</span>
  const e = certExpiry(p.certificate.notAfter, now)
  return (
    <time
      dateTime={p.certificate.notAfter}
      className={e.urgent ? 'error-text cert-urgent' : undefined}
      title={`Serial ${p.certificate.serial}, expires ${exact(p.certificate.notAfter)}`}
    >
      {e.expired ? `expired ${ago(p.certificate.notAfter, now)}` : `expires ${ago(p.certificate.notAfter, now)}`}
    </time>
  )
}
