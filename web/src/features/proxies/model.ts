// What the console reads out of GET /api/v1/proxies: each proxy's sync state, and the mesh's.

import type { Proxy, ProxyList, PushProblem, XdsType } from '../../api/types'

/** The xDS types a proxy acknowledges, in the order Envoy applies them. */
export const xdsTypes: readonly XdsType[] = ['LDS', 'RDS', 'CDS', 'EDS']

/** nacksOf returns a proxy's NACKs as [type, message] pairs, in xdsTypes order. */
export function nacksOf(p: Proxy): [string, string][] {
  const n = p.nacks ?? {}
  return Object.entries(n)
    .filter(([, msg]) => msg !== '')
    .sort(([a], [b]) => order(a) - order(b))
}

const order = (t: string) => {
  const i = xdsTypes.indexOf(t as XdsType)
  return i < 0 ? xdsTypes.length : i
}

export type SyncState = 'in-sync' | 'behind' | 'disconnected'

/** syncState says whether a proxy has applied the revision being served. */
export function syncState(p: Proxy): SyncState {
  if (!p.connected) return 'disconnected'
  return p.inSync ? 'in-sync' : 'behind'
}

/** sortProxies orders proxies by namespace, service and workload, as the table lists them. */
export function sortProxies(ps: readonly Proxy[]): Proxy[] {
  return [...ps].sort(
    (a, b) =>
      a.namespace.localeCompare(b.namespace) ||
      a.service.localeCompare(b.service) ||
      a.workload.localeCompare(b.workload) ||
      a.nodeId.localeCompare(b.nodeId),
  )
}

export interface MeshSummary {
  /** The configuration revision being served. */
  revision: number
  total: number
  connected: number
  /** Distinct namespace/service pairs among the proxies. */
  services: number
  /** Proxies that refused some configuration. */
  nacked: Proxy[]
  /** Connected proxies that have not applied the revision being served. */
  behind: Proxy[]
  /** Configuration the server could not translate as written. */
  problems: PushProblem[]
}

/** summarize sums up the proxy list for the overview. */
export function summarize(list: ProxyList): MeshSummary {
  const services = new Set(list.proxies.map((p) => `${p.namespace}/${p.service}`))
  const sorted = sortProxies(list.proxies)
  return {
    revision: list.revision,
    total: list.proxies.length,
    connected: list.proxies.filter((p) => p.connected).length,
    services: services.size,
    nacked: sorted.filter((p) => nacksOf(p).length > 0),
    behind: sorted.filter((p) => syncState(p) === 'behind'),
    problems: list.problems ?? [],
  }
}

/** A certificate that expires in less than this is shown as urgent. */
export const certUrgentMs = 60 * 60 * 1000

/** CertExpiry is how soon a certificate expires, as the proxies table shows it. */
export interface CertExpiry {
  /** Milliseconds until it expires; negative once it has. */
  remainingMs: number
  /** Under certUrgentMs, or expired. */
  urgent: boolean
  expired: boolean
}

/** certExpiry says how soon a certificate that expires at notAfter does, at now. */
export function certExpiry(notAfter: string, now: number): CertExpiry {
  const remainingMs = new Date(notAfter).getTime() - now
  if (Number.isNaN(remainingMs)) return { remainingMs: 0, urgent: true, expired: true }
  return { remainingMs, urgent: remainingMs < certUrgentMs, expired: remainingMs <= 0 }
}

/** mtlsPorts lists a proxy's inbound ports with their mTLS mode, by port number. */
export function mtlsPorts(p: Proxy): [string, string][] {
  return Object.entries(p.mtls ?? {}).sort(([a], [b]) => Number(a) - Number(b))
}
