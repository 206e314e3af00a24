// A proxy's /config_dump (Envoy's shape: proto field names, one entry per xDS type) read into
// the four tables the console shows. Pure, so that it is tested without a browser; fields
// the tables do not show are left in the raw dump.

import type { ConfigDump } from '../../api/types'

export interface ListenerRow {
  name: string
  address: string
  state: 'active' | 'warming'
  version: string
}
export interface RouteRow {
  config: string
  virtualHost: string
  domains: string[]
  routes: number
}
export interface ClusterRow {
  name: string
  discovery: string
  lbPolicy: string
  state: 'active' | 'warming'
  version: string
}
export interface EndpointRow {
  cluster: string
  address: string
  /** HEALTHY, UNHEALTHY (not ready, or ejected by outlier detection), DRAINING, … */
  health: string
}
export interface DumpTables {
  listeners: ListenerRow[]
  routes: RouteRow[]
  clusters: ClusterRow[]
  endpoints: EndpointRow[]
  /** The NACK details the proxy reports per type, keyed by table name. */
  errors: Partial<Record<keyof Omit<DumpTables, 'errors'>, string>>
}

const typeOf = {
  listeners: 'type.googleapis.com/envoy.admin.v3.ListenersConfigDump',
  routes: 'type.googleapis.com/envoy.admin.v3.RoutesConfigDump',
  clusters: 'type.googleapis.com/envoy.admin.v3.ClustersConfigDump',
  endpoints: 'type.googleapis.com/envoy.admin.v3.EndpointsConfigDump',
} as const

type Obj = Record<string, unknown>
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {})
const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : [])
const str = (v: unknown): string => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '')

function socketAddress(v: unknown): string {
  const sa = obj(obj(v).socket_address)
  const host = str(sa.address)
  if (!host) return '—'
  const port = str(sa.port_value)
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

/** tablesOf reads a config dump into the console's tables. Unknown shapes give empty tables. */
export function tablesOf(dump: ConfigDump): DumpTables {
  const out: DumpTables = { listeners: [], routes: [], clusters: [], endpoints: [], errors: {} }
  for (const raw of arr(dump.configs)) {
    const c = obj(raw)
    const err = str(obj(c.error_state).details)
    switch (c['@type']) {
      case typeOf.listeners:
        if (err) out.errors.listeners = err
        for (const l of arr(c.dynamic_listeners).map(obj)) {
          const active = obj(l.active_state)
          const warming = obj(l.warming_state)
          if (l.active_state) {
            out.listeners.push({ name: str(l.name), address: socketAddress(obj(active.listener).address), state: 'active', version: str(active.version_info) })
          } else if (l.warming_state) {
            out.listeners.push({ name: str(l.name), address: socketAddress(obj(warming.listener).address), state: 'warming', version: str(warming.version_info) })
          }
        }
        break
      case typeOf.routes:
        if (err) out.errors.routes = err
        for (const rc of arr(c.dynamic_route_configs).map(obj)) {
          const config = obj(rc.route_config)
          for (const vh of arr(config.virtual_hosts).map(obj)) {
            out.routes.push({ config: str(config.name), virtualHost: str(vh.name), domains: arr(vh.domains).map(str), routes: arr(vh.routes).length })
          }
        }
        break
      case typeOf.clusters: {
        if (err) out.errors.clusters = err
        const add = (entries: unknown, state: ClusterRow['state']) => {
          for (const e of arr(entries).map(obj)) {
            const cl = obj(e.cluster)
            out.clusters.push({
              name: str(cl.name),
              // proto3 JSON omits zero values: EDS discovery needs a type, ROUND_ROBIN is the zero LB policy.
              discovery: str(cl.type) || (cl.eds_cluster_config ? 'EDS' : 'STATIC'),
              lbPolicy: str(cl.lb_policy) || 'ROUND_ROBIN',
              state,
              version: str(e.version_info),
            })
          }
        }
        add(c.dynamic_active_clusters, 'active')
        add(c.dynamic_warming_clusters, 'warming')
        break
      }
      case typeOf.endpoints:
        if (err) out.errors.endpoints = err
        for (const e of arr(c.dynamic_endpoint_configs).map(obj)) {
          const la = obj(e.endpoint_config)
          for (const loc of arr(la.endpoints).map(obj)) {
            for (const lb of arr(loc.lb_endpoints).map(obj)) {
              out.endpoints.push({
                cluster: str(la.cluster_name),
                address: socketAddress(obj(lb.endpoint).address),
                // UNKNOWN, the proto default, is omitted and served as healthy.
                health: str(lb.health_status) || 'HEALTHY',
              })
            }
          }
        }
        break
    }
  }
  // Code-point order, the same in every locale.
  const byName = <T,>(key: (t: T) => string) => (a: T, b: T) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0)
  out.listeners.sort(byName((l) => l.name))
  out.clusters.sort(byName((c) => c.name))
  out.endpoints.sort(byName((e) => e.cluster + ' ' + e.address))
  return out
}
