// Which VirtualServices and DestinationRules apply to a service: those whose hosts resolve to
// its host, short names being in the resource's own namespace, as the server resolves them.

import type { Resource } from '../../api/types'

const suffix = '.svc.cluster.local'

/** resolveHost turns a host as written in a resource of namespace into a full host name. */
export function resolveHost(host: string, namespace: string): string {
  if (host.endsWith(suffix) || host.includes('*')) return host
  const parts = host.split('.')
  if (parts.length === 1) return `${host}.${namespace}${suffix}`
  if (parts.length === 2) return `${host}${suffix}`
  return host
}

function hostsOf(r: Resource): string[] {
  const spec = (r.spec ?? {}) as { hosts?: unknown; host?: unknown }
  if (r.kind === 'VirtualService') return Array.isArray(spec.hosts) ? spec.hosts.filter((h): h is string => typeof h === 'string') : []
  return typeof spec.host === 'string' ? [spec.host] : []
}

/** appliesTo reports whether a VirtualService or DestinationRule names host. */
export function appliesTo(r: Resource, host: string): boolean {
  return hostsOf(r).some((h) => resolveHost(h, r.metadata.namespace) === host)
}

/** describeRoute sums up a VirtualService for the routes table: its rules and gateways. */
export function describeRoute(r: Resource): string {
  if (r.kind === 'DestinationRule') {
    const subsets = ((r.spec as { subsets?: { name?: string }[] })?.subsets ?? []).map((s) => s.name).filter(Boolean)
    return subsets.length ? `subsets ${subsets.join(', ')}` : 'no subsets'
  }
  const spec = (r.spec ?? {}) as { http?: { match?: unknown[] }[]; gateways?: string[] }
  const rules = spec.http ?? []
  const matched = rules.filter((h) => Array.isArray(h.match) && h.match.length > 0).length
  const gws = spec.gateways?.length ? ` · gateways ${spec.gateways.join(', ')}` : ''
  return `${rules.length} HTTP ${rules.length === 1 ? 'rule' : 'rules'}${matched ? `, ${matched} with a match` : ''}${gws}`
}
