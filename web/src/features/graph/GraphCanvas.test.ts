import cytoscape from 'cytoscape'
import { describe, expect, it } from 'vitest'
import type { GraphEdge, GraphNode } from '../../api/types'
import { fromFull, mergeGraph } from '../../live/graph'
import { syncElements } from './GraphCanvas'
import { viewGraph } from './model'

// A mesh of n services in a chain of callers, each with one version, as the live topic sends it.
function mesh(n: number, rps: (i: number) => number) {
  const nodes: GraphNode[] = []
  const edges: GraphEdge[] = []
  for (let i = 0; i < n; i++) {
    nodes.push({ id: `service:s${i}.default.svc.cluster.local`, type: 'service', name: `s${i}`, namespace: 'default' })
    nodes.push({ id: `workload:default/s${i}-v1`, type: 'workload', name: `s${i}-v1`, namespace: 'default', version: 'v1' })
  }
  const edge = (source: string, target: string, r: number): GraphEdge => ({
    id: `${source}->${target}`,
    source,
    target,
    requests: r * 10,
    errors: 0,
    rps: r,
    successRate: 1,
    p50: 1,
    p95: 2,
    p99: 3,
    requestBytes: 0,
    responseBytes: 0,
    protocols: ['http'],
    codes: { '200': r * 10 },
  })
  for (let i = 0; i < n; i++) {
    edges.push(edge(`service:s${i}.default.svc.cluster.local`, `workload:default/s${i}-v1`, rps(i)))
    if (i > 0) edges.push(edge(`workload:default/s${i - 1}-v1`, `service:s${i}.default.svc.cluster.local`, rps(i)))
  }
  return { nodes, edges }
}

describe('syncElements', () => {
  it('updates 500 nodes in place on a delta, and reports a new layout only when nodes come or go', () => {
    const cy = cytoscape({ headless: true, styleEnabled: false })
    const first = mesh(500, () => 1)
    let g = fromFull('t0', first.nodes, first.edges)
    expect(syncElements(cy, viewGraph(g, true))).toBe(true)
    expect(cy.nodes()).toHaveLength(1000)
    expect(cy.edges()).toHaveLength(999)
    const before = cy.getElementById('workload:default/s7-v1')[0]

    // A delta with new figures for every edge: no element is recreated, no layout is needed.
    const second = mesh(500, (i) => i)
    g = mergeGraph(g, { type: 'graph', id: 'g1', time: 't1', full: false, edges: second.edges })!
    expect(syncElements(cy, viewGraph(g, true))).toBe(false)
    expect(cy.getElementById('workload:default/s7-v1')[0]).toBe(before)
    expect(cy.getElementById('workload:default/s6-v1->service:s7.default.svc.cluster.local').data('label')).toMatch(/^7\.00 rps/)

    // A service leaves: its nodes and edges go, and the layout is redone.
    g = mergeGraph(g, { type: 'graph', id: 'g1', time: 't2', full: false, removedNodes: ['service:s499.default.svc.cluster.local', 'workload:default/s499-v1'] })!
    expect(syncElements(cy, viewGraph(g, true))).toBe(true)
    expect(cy.nodes()).toHaveLength(998)
    expect(cy.edges()).toHaveLength(997)
    cy.destroy()
  })

  it('folds versions into services without them', () => {
    const cy = cytoscape({ headless: true, styleEnabled: false })
    const m = mesh(3, () => 1)
    syncElements(cy, viewGraph(fromFull('t', m.nodes, m.edges), false))
    expect(cy.nodes().map((n) => n.id())).toEqual(['service:s0.default.svc.cluster.local', 'service:s1.default.svc.cluster.local', 'service:s2.default.svc.cluster.local'])
    expect(cy.edges()).toHaveLength(2)
    cy.destroy()
  })
})
