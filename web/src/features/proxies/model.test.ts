import { describe, expect, it } from 'vitest'
import type { Proxy } from '../../api/types'
import { nacksOf, sortProxies, summarize, syncState } from './model'

const proxy = (over: Partial<Proxy>): Proxy => ({
  nodeId: 'n',
  namespace: 'default',
  service: 'reviews',
  workload: 'reviews-v1',
  mode: 'sidecar',
  address: '127.0.0.2',
  connected: true,
  syncedRevision: 7,
  inSync: true,
  ...over,
})

describe('proxy model', () => {
  it('says whether each proxy applied the served revision', () => {
    expect(syncState(proxy({}))).toBe('in-sync')
    expect(syncState(proxy({ inSync: false, syncedRevision: 5 }))).toBe('behind')
    expect(syncState(proxy({ connected: false, inSync: false }))).toBe('disconnected')
  })

  it('lists NACKs in xDS order and skips empty messages', () => {
    expect(nacksOf(proxy({ nacks: { EDS: 'bad endpoint', LDS: 'bad listener', RDS: '' } }))).toEqual([
      ['LDS', 'bad listener'],
      ['EDS', 'bad endpoint'],
    ])
    expect(nacksOf(proxy({ nacks: null }))).toEqual([])
  })

  it('sums up the mesh', () => {
    const list = {
      revision: 7,
      proxies: [
        proxy({ nodeId: 'a', service: 'reviews', workload: 'reviews-v2' }),
        proxy({ nodeId: 'b', service: 'reviews', workload: 'reviews-v1', inSync: false, syncedRevision: 6 }),
        proxy({ nodeId: 'c', service: 'ratings', nacks: { CDS: 'unknown cluster' } }),
        proxy({ nodeId: 'd', namespace: 'shop', service: 'reviews', connected: false, inSync: false }),
      ],
    }
    const s = summarize(list)
    expect(s).toMatchObject({ revision: 7, total: 4, connected: 3, services: 3, problems: [] })
    const problems = [{ resource: 'VirtualService/default/reviews', message: 'subset v9 is not defined' }]
    expect(summarize({ ...list, problems }).problems).toEqual(problems)
    expect(s.nacked.map((p) => p.nodeId)).toEqual(['c'])
    expect(s.behind.map((p) => p.nodeId)).toEqual(['b'])
    expect(sortProxies(list.proxies).map((p) => p.nodeId)).toEqual(['c', 'b', 'a', 'd'])
  })
})
