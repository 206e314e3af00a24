import { describe, expect, it } from 'vitest'
import type { GraphEdge, GraphNode } from '../../api/types'
import { fromFull } from '../../live/graph'
import { combine, combineMTLS, edgeLabel, fmtMTLS, fmtPct, health, namespacesOf, nodeTraffic, serviceHealth, viewGraph } from './model'

const traffic = (requests: number, errors: number, p99: number, rps = requests / 10) => ({
  requests,
  errors,
  rps,
  successRate: requests ? (requests - errors) / requests : null,
  p50: p99 / 3,
  p95: p99 / 2,
  p99,
  requestBytes: 0,
  responseBytes: 0,
})
const e = (source: string, target: string, t: ReturnType<typeof traffic>, codes: Record<string, number> = {}): GraphEdge => ({
  source,
  target,
  ...t,
  protocols: ['http'],
  codes,
})
const svc = (name: string): GraphNode => ({ id: `service:${name}.default.svc.cluster.local`, type: 'service', name, namespace: 'default', service: `${name}.default.svc.cluster.local` })
const wl = (name: string, version: string, ns = 'default'): GraphNode => ({ id: `workload:${ns}/${name}`, type: 'workload', name, namespace: ns, version })

// Bookinfo: the gateway calls productpage, which calls reviews v1 and v3.
const g = fromFull(
  't',
  [{ id: 'workload:istio-system/gw', type: 'gateway', name: 'gw', namespace: 'istio-system' }, svc('productpage'), wl('productpage-v1', 'v1'), svc('reviews'), wl('reviews-v1', 'v1'), wl('reviews-v3', 'v3')],
  [
    e('workload:istio-system/gw', svc('productpage').id, traffic(100, 0, 30)),
    e(svc('productpage').id, wl('productpage-v1', 'v1').id, traffic(100, 0, 30)),
    e(wl('productpage-v1', 'v1').id, svc('reviews').id, traffic(100, 10, 20), { '200': 90, '503': 10 }),
    e(svc('reviews').id, wl('reviews-v1', 'v1').id, traffic(70, 0, 10), { '200': 70 }),
    e(svc('reviews').id, wl('reviews-v3', 'v3').id, traffic(30, 10, 20), { '200': 20, '503': 10 }),
  ],
)

describe('health', () => {
  it('is green from 99 %, amber from 95 %, red below, idle without traffic', () => {
    expect(health(1)).toBe('ok')
    expect(health(0.99)).toBe('ok')
    expect(health(0.9899)).toBe('warn')
    expect(health(0.95)).toBe('warn')
    expect(health(0.9499)).toBe('bad')
    expect(health(0)).toBe('bad')
    expect(health(null)).toBe('idle')
  })
})

describe('combine', () => {
  it('adds counts and rates, recomputes the success rate, and bounds percentiles by the highest', () => {
    const c = combine([traffic(70, 0, 10), traffic(30, 10, 20)])
    expect(c.requests).toBe(100)
    expect(c.errors).toBe(10)
    expect(c.rps).toBe(10)
    expect(c.successRate).toBe(0.9)
    expect(c.p99).toBe(20)
  })
  it('has no success rate or percentiles without requests', () => {
    const c = combine([])
    expect(c.successRate).toBeNull()
    expect(c.p99).toBeNull()
  })
})

describe('viewGraph', () => {
  it('shows every node and edge with versions', () => {
    const v = viewGraph(g, true)
    expect(v.nodes).toHaveLength(6)
    expect(v.edges).toHaveLength(5)
    expect(v.nodes.find((n) => n.id === 'workload:default/reviews-v3')).toMatchObject({ label: 'reviews-v3 (v3)', service: svc('reviews').id })
  })

  it('folds workloads into their services without versions', () => {
    const v = viewGraph(g, false)
    expect(v.nodes.map((n) => n.label)).toEqual(['gw', 'productpage', 'reviews'])
    expect(v.edges.map((x) => x.id)).toEqual([`workload:istio-system/gw->${svc('productpage').id}`, `${svc('productpage').id}->${svc('reviews').id}`])
    const pr = v.edges[1]!
    expect(pr.source).toBe(svc('productpage').id)
    expect(pr.successRate).toBe(0.9)
    expect(pr.codes).toEqual({ '200': 90, '503': 10 })
  })

  it('merges the edges two versions of a caller send to one service', () => {
    const two = fromFull(
      't',
      [svc('a'), wl('a-v1', 'v1'), wl('a-v2', 'v2'), svc('b')],
      [e(svc('a').id, wl('a-v1', 'v1').id, traffic(1, 0, 1)), e(svc('a').id, wl('a-v2', 'v2').id, traffic(1, 0, 1)), e(wl('a-v1', 'v1').id, svc('b').id, traffic(10, 0, 5), { '200': 10 }), e(wl('a-v2', 'v2').id, svc('b').id, traffic(10, 1, 9), { '200': 9, '500': 1 })],
    )
    const v = viewGraph(two, false)
    expect(v.edges).toHaveLength(1)
    expect(v.edges[0]).toMatchObject({ source: svc('a').id, target: svc('b').id, requests: 20, errors: 1, p99: 9, codes: { '200': 19, '500': 1 } })
  })
})

describe('nodeTraffic', () => {
  it('sums what a node receives, or what it sends when nobody calls it', () => {
    const v = viewGraph(g, true)
    const reviews = nodeTraffic(v, svc('reviews').id)
    expect(reviews.direction).toBe('in')
    expect(reviews.summary.requests).toBe(100)
    const gw = nodeTraffic(v, 'workload:istio-system/gw')
    expect(gw.direction).toBe('out')
    expect(gw.summary.requests).toBe(100)
  })
})

describe('formatting', () => {
  it('labels an edge with rate, success rate and p99', () => {
    expect(edgeLabel(traffic(100, 1, 45.4, 12.34))).toBe('12.3 rps · 99.0 % · p99 45 ms')
    expect(fmtPct(0.99999)).toBe('99.9 %') // never rounded up to a perfect score
    expect(fmtPct(null)).toBe('—')
  })
  it('lists the namespaces', () => {
    expect(namespacesOf(g)).toEqual(['default', 'istio-system'])
  })
})

describe('serviceHealth', () => {
  it('lists services with what their callers sent them', () => {
    const h = serviceHealth(g)
    expect(h.map((s) => [s.name, s.requests, s.successRate])).toEqual([
      ['productpage', 100, 1],
      ['reviews', 100, 0.9],
    ])
  })
})

describe('mutual TLS share', () => {
  it('weights each part by its requests and skips the parts without one', () => {
    expect(combineMTLS([{ requests: 70, mtlsShare: 1 }, { requests: 30, mtlsShare: 0 }])).toBe(0.7)
    expect(combineMTLS([{ requests: 70, mtlsShare: 1 }, { requests: 30, mtlsShare: null }])).toBe(1)
    expect(combineMTLS([{ requests: 5 }, { requests: 0, mtlsShare: 1 }])).toBeNull()
  })
  it('folds versions into their service edge, and keeps the server share with versions shown', () => {
    const secured = fromFull(
      't',
      [svc('reviews'), wl('productpage-v1', 'v1'), svc('ratings'), wl('reviews-v1', 'v1'), wl('reviews-v3', 'v3')],
      [
        { ...e(wl('productpage-v1', 'v1').id, svc('reviews').id, traffic(100, 0, 20)), mtlsShare: 1 },
        { ...e(svc('reviews').id, wl('reviews-v1', 'v1').id, traffic(70, 0, 10)), mtlsShare: 1 },
        { ...e(svc('reviews').id, wl('reviews-v3', 'v3').id, traffic(30, 0, 10)), mtlsShare: 1 },
        { ...e(wl('reviews-v1', 'v1').id, svc('ratings').id, traffic(40, 0, 10)), mtlsShare: 0.5 },
        { ...e(wl('reviews-v3', 'v3').id, svc('ratings').id, traffic(60, 0, 10)), mtlsShare: 0 },
      ],
    )
    const folded = viewGraph(secured, false)
    expect(folded.edges.find((x) => x.source === svc('reviews').id && x.target === svc('ratings').id)?.mtlsShare).toBe(0.2)
    const versions = viewGraph(secured, true)
    expect(versions.edges.find((x) => x.target === wl('reviews-v1', 'v1').id)?.mtlsShare).toBe(1)
    expect(viewGraph(g, true).edges.every((x) => x.mtlsShare === null)).toBe(true)
  })
  it('labels an edge with a lock and its share when known', () => {
    expect(fmtMTLS(1)).toBe('mTLS 100 %')
    expect(fmtMTLS(0.999)).toBe('mTLS 99 %') // never rounded up to all
    expect(fmtMTLS(null)).toBeNull()
    expect(edgeLabel({ ...traffic(100, 1, 45.4, 12.34), mtlsShare: 1 })).toBe('12.3 rps · 99.0 % · p99 45 ms · mTLS 100 %')
    expect(edgeLabel({ ...traffic(100, 1, 45.4, 12.34), mtlsShare: null })).toBe('12.3 rps · 99.0 % · p99 45 ms')
  })
})
