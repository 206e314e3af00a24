import { describe, expect, it } from 'vitest'
import type { GraphEdge, GraphNode } from '../api/types'
import { edgeId, fromFull, mergeGraph, type GraphMessage } from './graph'

const node = (id: string): GraphNode => ({ id, type: 'service', name: id })
const edge = (source: string, target: string, rps = 1): GraphEdge => ({
  source,
  target,
  requests: rps * 10,
  errors: 0,
  rps,
  successRate: 1,
  p50: 1,
  p95: 2,
  p99: 3,
  requestBytes: 0,
  responseBytes: 0,
  protocols: ['http'],
  codes: { '200': rps * 10 },
})
const full = (nodes: GraphNode[], edges: GraphEdge[], time = 't0'): GraphMessage => ({ type: 'graph', id: 'g1', time, full: true, nodes, edges })
const delta = (m: Partial<GraphMessage>, time = 't1'): GraphMessage => ({ type: 'graph', id: 'g1', time, full: false, ...m })

describe('mergeGraph', () => {
  it('replaces everything with a full message, giving edges without an id one', () => {
    const prev = fromFull('old', [node('x')], [])
    const g = mergeGraph(prev, full([node('a'), node('b')], [edge('a', 'b')]))!
    expect(g.time).toBe('t0')
    expect(g.nodes.map((n) => n.id)).toEqual(['a', 'b'])
    expect(g.edges.map((e) => e.id)).toEqual(['a->b'])
  })

  it('keeps the server id of an edge', () => {
    const g = mergeGraph(undefined, full([], [{ ...edge('a', 'b'), id: 'e7' }]))!
    expect(g.edges[0]!.id).toBe('e7')
    expect(edgeId({ source: 'a', target: 'b' })).toBe('a->b')
  })

  it('ignores a delta that arrives before any full graph', () => {
    expect(mergeGraph(undefined, delta({ nodes: [node('a')] }))).toBeUndefined()
  })

  it('replaces changed nodes and edges in place, appends new ones, and keeps the others as they were', () => {
    const a = node('a')
    const b = node('b')
    const ab = edge('a', 'b', 1)
    const prev = mergeGraph(undefined, full([a, b], [ab]))!
    const keptEdge = prev.edges[0]
    const g = mergeGraph(prev, delta({ nodes: [{ ...b, version: 'v2' }, node('c')], edges: [edge('b', 'c', 5)] }))!
    expect(g).not.toBe(prev)
    expect(g.time).toBe('t1')
    expect(g.nodes.map((n) => n.id)).toEqual(['a', 'b', 'c'])
    expect(g.nodes[0]).toBe(a) // untouched: the same object
    expect(g.nodes[1]!.version).toBe('v2')
    expect(g.edges[0]).toBe(keptEdge)
    expect(g.edges[1]).toMatchObject({ id: 'b->c', rps: 5 })
    // The previous graph is not changed.
    expect(prev.nodes.map((n) => n.id)).toEqual(['a', 'b'])
  })

  it('updates an edge sent whole with new figures', () => {
    const prev = mergeGraph(undefined, full([node('a'), node('b')], [edge('a', 'b', 1)]))!
    const g = mergeGraph(prev, delta({ edges: [edge('a', 'b', 9)] }))!
    expect(g.edges).toHaveLength(1)
    expect(g.edges[0]!.rps).toBe(9)
    expect(g.nodes).toBe(prev.nodes) // no node changed: the same array
  })

  it('removes what the delta lists, and the edges of removed nodes', () => {
    const prev = mergeGraph(undefined, full([node('a'), node('b'), node('c')], [edge('a', 'b'), edge('b', 'c'), edge('a', 'c')]))!
    const g = mergeGraph(prev, delta({ removedNodes: ['b'], removedEdges: ['a->c'] }))!
    expect(g.nodes.map((n) => n.id)).toEqual(['a', 'c'])
    expect(g.edges).toEqual([])
  })

  it('tolerates null lists', () => {
    const prev = mergeGraph(undefined, full([node('a')], []))!
    const g = mergeGraph(prev, delta({ nodes: null, edges: null, removedNodes: null, removedEdges: null }))!
    expect(g.nodes).toBe(prev.nodes)
    expect(mergeGraph(undefined, { type: 'graph', id: 'g', time: 't', full: true, nodes: null, edges: null })).toEqual({ time: 't', nodes: [], edges: [] })
  })
})
