// The live graph topic's messages, merged into one graph for the query cache. A "full" message
// replaces the graph; a delta replaces the nodes and edges it names (each is sent whole) and
// drops those it lists as removed. merge is pure: the cache gets a new object each time, and
// nodes and edges the delta did not touch keep their identity, so a view can update only what
// changed.

import type { GraphEdge, GraphNode } from '../api/types'

/** One message of the graph topic. */
export interface GraphMessage {
  type: 'graph'
  id: string
  time: string
  full: boolean
  nodes?: GraphNode[] | null
  edges?: GraphEdge[] | null
  removedNodes?: string[] | null
  removedEdges?: string[] | null
}

/** The live graph as the cache holds it. */
export interface LiveGraph {
  /** When the server computed the latest message. */
  time: string
  nodes: GraphNode[]
  /** Each with its id set. */
  edges: GraphEdge[]
}

/** edgeId is an edge's stable id: the server's, or its source and target when it sent none. */
export function edgeId(e: Pick<GraphEdge, 'id' | 'source' | 'target'>): string {
  return e.id || `${e.source}->${e.target}`
}

const withId = (e: GraphEdge): GraphEdge => (e.id ? e : { ...e, id: edgeId(e) })

/** fromFull builds a LiveGraph from a whole graph, such as GET /api/v1/graph's answer. */
export function fromFull(time: string, nodes: GraphNode[] | null | undefined, edges: GraphEdge[] | null | undefined): LiveGraph {
  return { time, nodes: nodes ?? [], edges: (edges ?? []).map(withId) }
}

function apply<T>(prev: T[], changed: T[], removed: Set<string>, idOf: (t: T) => string): T[] {
  if (changed.length === 0 && removed.size === 0) return prev
  const byId = new Map(changed.map((c) => [idOf(c), c]))
  const out: T[] = []
  for (const p of prev) {
    const id = idOf(p)
    if (removed.has(id)) continue
    const c = byId.get(id)
    if (c) {
      out.push(c)
      byId.delete(id)
    } else {
      out.push(p)
    }
  }
  for (const c of byId.values()) out.push(c) // new ones, in the order sent
  return out
}

/**
 * mergeGraph applies one message to the graph held so far. A delta before any full graph has
 * nothing to apply to and leaves the graph as it is (undefined): the server always starts a
 * subscription with a full graph. Edges that lose a node are dropped with it.
 */
export function mergeGraph(prev: LiveGraph | undefined, msg: GraphMessage): LiveGraph | undefined {
  if (msg.full) return fromFull(msg.time, msg.nodes, msg.edges)
  if (!prev) return prev
  const removedNodes = new Set(msg.removedNodes ?? [])
  const nodes = apply(prev.nodes, msg.nodes ?? [], removedNodes, (n) => n.id)
  let edges = apply(prev.edges, (msg.edges ?? []).map(withId), new Set(msg.removedEdges ?? []), edgeId)
  if (removedNodes.size > 0) {
    const kept = edges.filter((e) => !removedNodes.has(e.source) && !removedNodes.has(e.target))
    if (kept.length !== edges.length) edges = kept
  }
  return { time: msg.time, nodes, edges }
}
