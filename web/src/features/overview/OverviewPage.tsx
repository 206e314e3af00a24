import { useQueries, useQuery } from '@tanstack/react-query'
import { useMemo } from 'react'
import { Link } from 'react-router'
import { api } from '../../api/api'
import { kinds } from '../../api/kinds'
import { keys, proxiesQuery, resourcesQuery } from '../../api/queries'
import { useLiveConfig } from '../../live/useLiveConfig'
import { graphWindow, useLiveGraph } from '../../live/useLiveGraph'
import { Empty, ErrorState, Loading } from '../../ui/States'
import { usePageTitle } from '../../ui/usePageTitle'
import { fmtMs, fmtPct, fmtRps, health, serviceHealth } from '../graph/model'
import { nacksOf, summarize } from '../proxies/model'

/**
 * OverviewPage is the mesh at a glance: how many services, proxies and resources there are,
 * and any proxy that refused its configuration or has not applied the latest.
 */
export function OverviewPage() {
  usePageTitle('Overview')
  const proxies = useQuery(proxiesQuery())
  useLiveConfig()
  const graph = useLiveGraph(graphWindow, '')
  const services = useMemo(() => (graph.data ? serviceHealth(graph.data) : []), [graph.data])
  // Experiments may be unavailable on this server: then there is simply nothing to call out.
  const experiments = useQuery({ queryKey: keys.experiments, queryFn: () => api.experiments(), refetchInterval: 5000, retry: false })
  const running = (experiments.data?.items ?? []).filter((i) => i.state === 'running')
  const lists = useQueries({ queries: kinds.map((k) => resourcesQuery(k.plural)) })
  const summary = proxies.data ? summarize(proxies.data) : null
  const listsReady = lists.every((l) => l.data)
  const listError = lists.find((l) => l.isError && !l.data)?.error
  const totalResources = lists.reduce((n, l) => n + (l.data?.items.length ?? 0), 0)

  return (
    <>
      <header className="page-header">
        <h1>Overview</h1>
        {summary && (
          <p className="muted">
            {summary.revision > 0 ? (
              <>
                Serving configuration revision <strong>{summary.revision}</strong>.
              </>
            ) : (
              <>
                No configuration applied yet: <Link to="/config/new">write some</Link>.
              </>
            )}
          </p>
        )}
      </header>

      <section aria-labelledby="attention">
        <h2 id="attention">Needs attention</h2>
        {proxies.isPending ? (
          <Loading what="the proxies' state" />
        ) : proxies.isError && !proxies.data ? (
          <ErrorState what="the proxies" error={proxies.error} retry={() => void proxies.refetch()} />
        ) : summary && summary.nacked.length === 0 && summary.behind.length === 0 && summary.problems.length === 0 && running.length === 0 ? (
          <p className="callout callout-ok">
            {summary.total === 0
              ? 'No proxy has connected yet.'
              : `All ${summary.connected} connected ${summary.connected === 1 ? 'proxy has' : 'proxies have'} applied revision ${summary.revision}.`}
          </p>
        ) : (
          summary && (
            <ul className="callouts">
              {running.map((x) => (
                <li key={'exp' + x.namespace + x.name} className="callout callout-warn">
                  Fault experiment <strong>{x.namespace}/{x.name}</strong> is running on <code>{x.host}</code>.{' '}
                  <Link to="/experiments">See experiments</Link>
                </li>
              ))}
              {summary.problems.map((p) => (
                <li key={'problem' + p.resource + p.message} className="callout callout-bad">
                  <strong>{p.resource}</strong> could not be applied as written: {p.message}
                </li>
              ))}
              {summary.nacked.map((p) => (
                <li key={'nack' + p.nodeId} className="callout callout-bad">
                  <strong>
                    {p.namespace}/{p.workload}
                  </strong>{' '}
                  refused configuration:{' '}
                  {nacksOf(p)
                    .map(([t, m]) => `${t}: ${m}`)
                    .join('; ')}{' '}
                  <Link to="/proxies">See proxies</Link>
                </li>
              ))}
              {summary.behind.map((p) => (
                <li key={'behind' + p.nodeId} className="callout callout-warn">
                  <strong>
                    {p.namespace}/{p.workload}
                  </strong>{' '}
                  is out of sync: it applied revision {p.syncedRevision} of {summary.revision}.{' '}
                  <Link to="/proxies">See proxies</Link>
                </li>
              ))}
            </ul>
          )
        )}
      </section>

      <section aria-labelledby="live-health">
        <h2 id="live-health">Live health</h2>
        {graph.isPending ? (
          <Loading what="the services' traffic" />
        ) : graph.isError && !graph.data ? (
          <ErrorState what="the services' traffic" error={graph.error} retry={() => void graph.refetch()} />
        ) : services.length === 0 ? (
          <Empty title={`No traffic in the last ${graphWindow}.`}>
            <p>
              Services appear here as requests go through their sidecars. The <Link to="/graph">traffic graph</Link> shows who calls whom.
            </p>
          </Empty>
        ) : (
          <table className="data compact">
            <caption>Each service&apos;s traffic over the last {graphWindow}{graph.live ? ', live' : ''}</caption>
            <thead>
              <tr>
                <th scope="col">Service</th>
                <th scope="col">Namespace</th>
                <th scope="col" className="num">Rate</th>
                <th scope="col" className="num">Success</th>
                <th scope="col" className="num">p99</th>
              </tr>
            </thead>
            <tbody>
              {services.map((s) => (
                <tr key={s.id}>
                  <th scope="row">
                    <Link to={`/services/${encodeURIComponent(s.namespace)}/${encodeURIComponent(s.name)}`}>{s.name}</Link>
                  </th>
                  <td>{s.namespace}</td>
                  <td className="num">{fmtRps(s.rps)}</td>
                  <td className={`num health-${health(s.successRate)}`}>{fmtPct(s.successRate)}</td>
                  <td className="num">{fmtMs(s.p99)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>

      <section aria-labelledby="counts">
        <h2 id="counts">The mesh</h2>
        <dl className="stats">
          <div className="stat">
            <dt>Services</dt>
            <dd>{summary ? summary.services : '…'}</dd>
            <p className="muted">with a proxy</p>
          </div>
          <div className="stat">
            <dt>Proxies</dt>
            <dd>{summary ? summary.total : '…'}</dd>
            <p className="muted">{summary ? `${summary.connected} connected` : ' '}</p>
          </div>
          <div className="stat">
            <dt>Sidecars in sync</dt>
            <dd>{summary ? summary.connected - summary.behind.length : '…'}</dd>
            <p className="muted">{summary ? `of ${summary.connected} connected, revision ${summary.revision}` : ' '}</p>
          </div>
          <div className="stat">
            <dt>NACKs</dt>
            <dd className={summary && summary.nacked.length > 0 ? 'health-bad' : undefined}>{summary ? summary.nacked.length : '…'}</dd>
            <p className="muted">proxies refusing configuration</p>
          </div>
          <div className="stat">
            <dt>Experiments</dt>
            <dd>{experiments.data ? running.length : '…'}</dd>
            <p className="muted">running</p>
          </div>
          <div className="stat">
            <dt>Resources</dt>
            <dd>{listsReady ? totalResources : '…'}</dd>
            <p className="muted">in every namespace</p>
          </div>
        </dl>
        {listError ? (
          <ErrorState what="the resources" error={listError} retry={() => lists.forEach((l) => void l.refetch())} />
        ) : (
          <table className="data compact">
            <caption>Resources by kind</caption>
            <thead>
              <tr>
                <th scope="col">Kind</th>
                <th scope="col" className="num">
                  Count
                </th>
              </tr>
            </thead>
            <tbody>
              {kinds.map((k, i) => (
                <tr key={k.plural}>
                  <th scope="row">
                    <Link to={`/config/${k.plural}`}>{k.label}</Link>
                  </th>
                  <td className="num">{lists[i]?.data ? lists[i].data.items.length : '…'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
    </>
  )
}
