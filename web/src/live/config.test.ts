import { describe, expect, it } from 'vitest'
import type { Proxy, ProxyList } from '../api/types'
import { patchProxies, propagation, withRevision } from './config'

const p = (nodeId: string, syncedRevision: number, over: Partial<Proxy> = {}): Proxy => ({
  nodeId,
  namespace: 'default',
  service: 'reviews',
  workload: nodeId,
  mode: 'sidecar',
  address: '127.0.0.2',
  connected: true,
  syncedRevision,
  inSync: true,
  ...over,
})

describe('patchProxies', () => {
  const list: ProxyList = { revision: 5, proxies: [p('a', 5), p('b', 4)] }
  it('replaces the proxy the message names and raises the revision', () => {
    const got = patchProxies(list, { type: 'proxy', id: 'c1', proxy: p('b', 6) })!
    expect(got.proxies.map((x) => [x.nodeId, x.syncedRevision])).toEqual([
      ['a', 5],
      ['b', 6],
    ])
    expect(got.revision).toBe(6)
    expect(list.proxies[1]!.syncedRevision).toBe(4) // not changed in place
  })
  it('adds a proxy that connected', () => {
    expect(patchProxies(list, { type: 'proxy', id: 'c1', proxy: p('c', 0) })!.proxies).toHaveLength(3)
  })
  it('leaves an absent list absent', () => {
    expect(patchProxies(undefined, { type: 'proxy', id: 'c1', proxy: p('c', 0) })).toBeUndefined()
  })
  it('raises the revision on a newer commit only', () => {
    expect(withRevision(list, { type: 'revision', id: 'c1', revision: { revision: 9, at: '', actor: 'a', changes: [] } })!.revision).toBe(9)
    expect(withRevision(list, { type: 'revision', id: 'c1', revision: { revision: 3, at: '', actor: 'a', changes: [] } })).toBe(list)
  })
})

describe('propagation', () => {
  it('counts connected proxies at or past the revision, and those with NACKs', () => {
    const got = propagation([p('a', 7), p('b', 8), p('c', 6), p('d', 9, { connected: false }), p('e', 7, { nacks: { RDS: 'bad route' } })], 7)
    expect(got.synced).toBe(3)
    expect(got.total).toBe(4)
    expect(got.nacked.map((x) => x.nodeId)).toEqual(['e'])
  })
})
