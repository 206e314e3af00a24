// Which workload identities serve each version of a service, from the proxies' list.

import type { Proxy, ServiceVersion } from '../../api/types'

/**
 * identitiesByVersion lists, per version, the SPIFFE IDs of the proxies of its endpoints,
 * sorted and without repeats; a version whose proxies show none is left out. proxyOf finds
 * an endpoint's proxy.
 */
export function identitiesByVersion(versions: readonly ServiceVersion[], proxyOf: (workload: string, address: string) => Proxy | undefined): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const v of versions) {
    const ids = new Set<string>()
    for (const ep of v.endpoints) {
      const id = proxyOf(ep.workload, ep.address)?.identity
      if (id) ids.add(id)
    }
    if (ids.size > 0) out.set(v.version, [...ids].sort())
  }
  return out
}
