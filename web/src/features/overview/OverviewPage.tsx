import { useQueries, useQuery } from '@tanstack/react-query'
import { Link } from 'react-router'
import { kinds } from '../../api/kinds'
import { proxiesQuery, resourcesQuery } from '../../api/queries'
import { ErrorState, Loading } from '../../ui/States'
import { usePageTitle } from '../../ui/usePageTitle'
import { nacksOf, summarize } from '../proxies/model'

/**
 * OverviewPage is the mesh at a glance: how many services, proxies and resources there are,
 * and any proxy that refused its configuration or has not applied the latest.
 */
export function OverviewPage() {
  usePageTitle('Overview')
  const proxies = useQuery(proxiesQuery())
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
        ) : summary && summary.nacked.length === 0 && summary.behind.length === 0 && summary.problems.length === 0 ? (
          <p className="callout callout-ok">
            {summary.total === 0
              ? 'No proxy has connected yet.'
              : `All ${summary.connected} connected ${summary.connected === 1 ? 'proxy has' : 'proxies have'} applied revision ${summary.revision}.`}
          </p>
        ) : (
          summary && (
            <ul className="callouts">
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
