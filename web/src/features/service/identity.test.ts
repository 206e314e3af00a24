import { describe, expect, it } from 'vitest'
import type { Proxy, ServiceVersion } from '../../api/types'
import { identitiesByVersion } from './identity'

const proxy = (workload: string, address: string, identity?: string): Proxy => ({
  nodeId: `${workload}~${address}`,
  namespace: 'default',
  service: 'reviews',
  workload,
  mode: 'sidecar',
  address,
  connected: true,
  syncedRevision: 1,
  inSync: true,
  identity,
})

describe('identitiesByVersion', () => {
  it('lists each version’s identities once, sorted, and leaves out versions without any', () => {
    const versions: ServiceVersion[] = [
      { version: 'v1', endpoints: [{ workload: 'reviews-v1', address: '127.0.0.2', connected: true, draining: false }, { workload: 'reviews-v1', address: '127.0.0.3', connected: true, draining: false }] },
      { version: 'v2', endpoints: [{ workload: 'reviews-v2', address: '127.0.0.4', connected: true, draining: false }, { workload: 'reviews-v2b', address: '127.0.0.5', connected: true, draining: false }] },
      { version: 'v3', endpoints: [{ workload: 'reviews-v3', address: '127.0.0.6', connected: true, draining: false }] },
    ]
    const proxies = new Map(
      [
        proxy('reviews-v1', '127.0.0.2', 'spiffe://cluster.local/ns/default/sa/reviews'),
        proxy('reviews-v1', '127.0.0.3', 'spiffe://cluster.local/ns/default/sa/reviews'),
        proxy('reviews-v2', '127.0.0.4', 'spiffe://cluster.local/ns/default/sa/reviews-v2'),
        proxy('reviews-v2b', '127.0.0.5', 'spiffe://cluster.local/ns/default/sa/reviews'),
        proxy('reviews-v3', '127.0.0.6'),
      ].map((p) => [`${p.workload}|${p.address}`, p]),
    )
    const got = identitiesByVersion(versions, (w, a) => proxies.get(`${w}|${a}`))
    expect([...got.entries()]).toEqual([
      ['v1', ['spiffe://cluster.local/ns/default/sa/reviews']],
      ['v2', ['spiffe://cluster.local/ns/default/sa/reviews', 'spiffe://cluster.local/ns/default/sa/reviews-v2']],
    ])
  })
})
