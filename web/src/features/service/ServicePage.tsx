import { useQuery } from '@tanstack/react-query'
import { useMemo } from 'react'
import { Link, useParams } from 'react-router'
import { ApiError } from '../../api/client'
import { proxiesQuery, resourcesQuery, serviceQuery } from '../../api/queries'
import type { GraphEdge, Proxy, Resource, Summary } from '../../api/types'
import { useUser } from '../../auth/session'
import { graphWindow, useLiveGraph } from '../../live/useLiveGraph'
import { Empty, ErrorState, Loading } from '../../ui/States'
import { usePageTitle } from '../../ui/usePageTitle'
import { combine } from '../graph/model'
import { Canary } from './Canary'
import { Charts } from './Charts'
import { appliesTo, describeRoute } from './routes'
import { Tap } from './Tap'
import { identitiesByVersion } from './identity'

/** liveByVersion sums the graph's edges from the service to each of its versions. */
export function liveByVersion(edges: GraphEdge[], nodes: { id: string; version?: string }[], serviceId: string): Map<string, Summary> {
  const version = new Map(nodes.map((n) => [n.id, n.version ?? '']))
  const parts = new Map<string, Summary[]>()
  for (const e of edges) {
    if (e.source !== serviceId) continue
    const v = version.get(e.target) ?? ''
    parts.set(v, [...(parts.get(v) ?? []), e])
  }
  return new Map([...parts].map(([v, p]) => [v, combine(p)]))
}

/**
 * ServicePage is one service: its versions and their endpoints, the traffic split with the
 * canary slider, charts per version, the routes that apply to it, and a live tap.
 */
export default function ServicePage() {
  const { namespace = '', name = '' } = useParams()
  usePageTitle(`${name} · ${namespace}`)
  const user = useUser()
  const svc = useQuery(serviceQuery(namespace, name))
  const proxies = useQuery(proxiesQuery())
  const vss = useQuery(resourcesQuery('virtualservices'))
  const drs = useQuery(resourcesQuery('destinationrules'))
  const graph = useLiveGraph(graphWindow, '')
  const host = svc.data?.host ?? `${name}.${namespace}.svc.cluster.local`

  const live = useMemo(() => (graph.data ? liveByVersion(graph.data.edges, graph.data.nodes, `service:${host}`) : new Map<string, Summary>()), [graph.data, host])
  const routes = useMemo(() => [...(vss.data?.items ?? []), ...(drs.data?.items ?? [])].filter((r) => appliesTo(r, host)), [vss.data, drs.data, host])
  const proxyByAddress = useMemo(() => {
    const m = new Map<string, Proxy>()
    for (const p of proxies.data?.proxies ?? []) if (p.namespace === namespace && p.service === name) m.set(`${p.workload}|${p.address}`, p)
    return m
  }, [proxies.data, namespace, name])
  const identities = useMemo(() => identitiesByVersion(svc.data?.versions ?? [], (w, a) => proxyByAddress.get(`${w}|${a}`)), [svc.data, proxyByAddress])
  const vsName = svc.data?.traffic?.virtualService
  const vsNamespace = routes.find((r) => r.kind === 'VirtualService' && r.metadata.name === vsName)?.metadata.namespace ?? namespace

  return (
    <>
      <nav aria-label="Breadcrumb" className="breadcrumb">
        <ol>
          <li>
            <Link to="/graph">Traffic graph</Link>
          </li>
          <li>{namespace}</li>
        </ol>
      </nav>
      <header className="page-header">
        <h1>{name}</h1>
        <p className="muted">
          <code>{host}</code>
        </p>
      </header>
      {svc.isPending ? (
        <Loading what={`the service ${name}`} />
      ) : svc.isError && !svc.data ? (
        svc.error instanceof ApiError && svc.error.status === 404 ? (
          <Empty title={`No workload of ${namespace}/${name} is registered.`}>
            <p>
              A service appears here once a sidecar registers one of its workloads. See <Link to="/proxies">the proxies</Link>.
            </p>
          </Empty>
        ) : (
          <ErrorState what={`the service ${name}`} error={svc.error} retry={() => void svc.refetch()} />
        )
      ) : (
        <>
          <section aria-labelledby="versions-title">
            <h2 id="versions-title">Versions</h2>
            <table className="data compact">
              <caption className="visually-hidden">Versions of {name} and their endpoints</caption>
              <thead>
                <tr>
                  <th scope="col">Version</th>
                  <th scope="col">Workload</th>
                  <th scope="col">Address</th>
                  <th scope="col">Ready</th>
                  <th scope="col">Configuration</th>
                </tr>
              </thead>
              <tbody>
                {svc.data.versions.flatMap((v) =>
                  v.endpoints.map((ep, i) => {
                    const p = proxyByAddress.get(`${ep.workload}|${ep.address}`)
                    const ready = ep.connected && !ep.draining
                    return (
                      <tr key={`${v.version}-${ep.workload}-${ep.address}`}>
                        {i === 0 ? (
                          <th scope="row" rowSpan={v.endpoints.length}>
                            {v.version || <span className="muted">no version</span>}
                            {identities.get(v.version)?.map((id) => (
                              <div key={id} className="identity">
                                <span className="visually-hidden">identity </span>
                                <code title="The workload identity (SPIFFE ID) its sidecars authenticate with">{id}</code>
                              </div>
                            ))}
                          </th>
                        ) : null}
                        <td>{ep.workload}</td>
                        <td>
                          <code>{ep.address}</code>
                        </td>
                        <td>
                          <span className={`pill ${ready ? 'pill-ok' : 'pill-bad'}`}>{ready ? 'Ready' : ep.draining ? 'Draining' : 'Disconnected'}</span>
                        </td>
                        <td>
                          {p ? (
                            p.nacks && Object.keys(p.nacks).length > 0 ? (
                              <span className="pill pill-bad">NACK · r{p.syncedRevision}</span>
                            ) : p.inSync ? (
                              <span className="pill pill-ok">In sync · r{p.syncedRevision}</span>
                            ) : (
                              <span className="pill pill-warn">Behind · r{p.syncedRevision}</span>
                            )
                          ) : (
                            <span className="muted">—</span>
                          )}
                        </td>
                      </tr>
                    )
                  }),
                )}
              </tbody>
            </table>
          </section>

          <section aria-labelledby="split-title">
            <h2 id="split-title">Traffic split</h2>
            <Canary svc={svc.data} role={user.role} live={live} vsNamespace={vsNamespace} />
          </section>
        </>
      )}

      <Charts host={host} />

      <section aria-labelledby="routes-title">
        <h2 id="routes-title">Routes that apply</h2>
        {vss.isPending || drs.isPending ? (
          <Loading what="the routes" />
        ) : vss.isError || drs.isError ? (
          <ErrorState what="the routes" error={vss.error ?? drs.error} retry={() => void Promise.all([vss.refetch(), drs.refetch()])} />
        ) : routes.length === 0 ? (
          <Empty title={`No VirtualService or DestinationRule names ${host}.`}>
            <p>
              Its traffic is spread over every endpoint. <Link to="/config/new">Write a route</Link>, or move a slider above.
            </p>
          </Empty>
        ) : (
          <table className="data compact">
            <caption className="visually-hidden">VirtualServices and DestinationRules for {host}</caption>
            <thead>
              <tr>
                <th scope="col">Kind</th>
                <th scope="col">Name</th>
                <th scope="col">What it does</th>
              </tr>
            </thead>
            <tbody>
              {routes.map((r: Resource) => (
                <tr key={`${r.kind}/${r.metadata.namespace}/${r.metadata.name}`}>
                  <td>{r.kind}</td>
                  <th scope="row">
                    <Link to={`/config/${r.kind === 'VirtualService' ? 'virtualservices' : 'destinationrules'}/${encodeURIComponent(r.metadata.namespace)}/${encodeURIComponent(r.metadata.name)}`}>
                      {r.metadata.namespace}/{r.metadata.name}
                    </Link>
                  </th>
                  <td>{describeRoute(r)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>

      <Tap host={host} />
    </>
  )
}
