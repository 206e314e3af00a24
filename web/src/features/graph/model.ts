// What the graph page draws, computed from the live graph: with versions, every node as the
// server sends it; without, each workload folded into the service it answers for, so that the
// graph shows services calling services. Pure functions, tested beside.

import type { GraphEdge, GraphNode, Summary } from '../../api/types'
import type { LiveGraph } from '../../live/graph'
import { edgeId } from '../../live/graph'

/** Health of some traffic by its success rate: ≥ 99 % ok, ≥ 95 % warn, else bad. */
export type Health = 'ok' | 'warn' | 'bad' | 'idle'

export function health(successRate: number | null | undefined): Health {
  if (successRate === null || successRate === undefined) return 'idle'
  if (successRate >= 0.99) return 'ok'
  if (successRate >= 0.95) return 'warn'
  return 'bad'
}

export interface ViewNode {
  id: string
  label: string
  type: GraphNode['type']
  namespace: string
  /** For a service node, its host; for a workload, the service it answers for, when known. */
  service?: string
  version?: string
}

export interface ViewEdge extends Summary {
  id: string
  source: string
  target: string
  codes: Record<string, number>
  /** The share of the destination-reported requests that came over mutual TLS; null when none were reported. */
  mtlsShare: number | null
}

/**
 * combineMTLS is the mutual TLS share of several edges: each part's share weighted by its
 * requests, over the parts that have one. The server's base is the destination-reported
 * requests, which a folded edge does not carry, so this is exact when each part's requests
 * were all reported by their destination, as between sidecars.
 */
export function combineMTLS(parts: readonly { requests: number; mtlsShare?: number | null }[]): number | null {
  let weight = 0
  let sum = 0
  for (const p of parts) {
    if (p.mtlsShare === null || p.mtlsShare === undefined || p.requests <= 0) continue
    weight += p.requests
    sum += p.mtlsShare * p.requests
  }
  return weight > 0 ? Math.min(sum / weight, 1) : null
}

export interface GraphView {
  nodes: ViewNode[]
  edges: ViewEdge[]
}

const empty: Summary = { requests: 0, errors: 0, rps: 0, successRate: null, p50: null, p95: null, p99: null, requestBytes: 0, responseBytes: 0 }

/**
 * combine adds up the traffic of several edges. The success rate is recomputed from the
 * counts; a percentile, which cannot be added, is the highest of the parts': an upper bound.
 */
export function combine(parts: Summary[]): Summary {
  const out = { ...empty }
  const maxOf = (a: number | null, b: number | null) => (a === null ? b : b === null ? a : Math.max(a, b))
  for (const p of parts) {
    out.requests += p.requests
    out.errors += p.errors
    out.rps += p.rps
    out.requestBytes += p.requestBytes
    out.responseBytes += p.responseBytes
    out.p50 = maxOf(out.p50, p.p50)
    out.p95 = maxOf(out.p95, p.p95)
    out.p99 = maxOf(out.p99, p.p99)
  }
  out.successRate = out.requests > 0 ? (out.requests - Math.min(out.errors, out.requests)) / out.requests : null
  return out
}

function addCodes(into: Record<string, number>, from: Record<string, number> | undefined) {
  for (const [k, v] of Object.entries(from ?? {})) into[k] = (into[k] ?? 0) + v
}

const shortName = (host: string) => host.split('.')[0] ?? host

/** serviceOf maps each workload to the service it answers for: the source of its service → workload edges. */
export function serviceOf(g: LiveGraph): Map<string, string> {
  const types = new Map(g.nodes.map((n) => [n.id, n.type]))
  const out = new Map<string, string>()
  for (const e of g.edges) {
    if (types.get(e.source) === 'service' && types.get(e.target) === 'workload') out.set(e.target, e.source)
  }
  return out
}

/** viewGraph is what to draw: every node with versions, or workloads folded into their services. */
export function viewGraph(g: LiveGraph, versions: boolean): GraphView {
  const owner = serviceOf(g)
  const nodes: ViewNode[] = []
  const fold = (id: string) => (versions ? id : (owner.get(id) ?? id))
  for (const n of g.nodes) {
    if (!versions && owner.has(n.id)) continue
    nodes.push({
      id: n.id,
      type: n.type,
      namespace: n.namespace ?? '',
      service: n.service ?? owner.get(n.id),
      version: n.version,
      label: n.type === 'service' ? n.name || shortName(n.service ?? n.id) : n.type === 'unknown' ? 'unknown' : n.version && versions && n.type === 'workload' ? `${n.name} (${n.version})` : n.name,
    })
  }
  if (versions) {
    return { nodes, edges: g.edges.map((e) => ({ ...e, id: edgeId(e), codes: e.codes ?? {}, mtlsShare: e.mtlsShare ?? null })) }
  }
  const groups = new Map<string, GraphEdge[]>()
  for (const e of g.edges) {
    const s = fold(e.source)
    const t = fold(e.target)
    if (s === t) continue // a service to its own versions: inside the folded node
    const id = `${s}->${t}`
    const list = groups.get(id)
    if (list) list.push(e)
    else groups.set(id, [e])
  }
  const edges: ViewEdge[] = []
  for (const [id, parts] of groups) {
    const codes: Record<string, number> = {}
    for (const p of parts) addCodes(codes, p.codes)
    const [source, target] = [fold(parts[0]!.source), fold(parts[0]!.target)]
    edges.push({ ...(parts.length === 1 ? parts[0]! : combine(parts)), id, source, target, codes, mtlsShare: combineMTLS(parts) })
  }
  return { nodes, edges }
}

/** nodeTraffic is what a node received (the edges into it), or, for a node nobody calls, what it sent. */
export function nodeTraffic(view: GraphView, id: string): { direction: 'in' | 'out'; summary: Summary; codes: Record<string, number> } {
  let edges = view.edges.filter((e) => e.target === id)
  let direction: 'in' | 'out' = 'in'
  if (edges.length === 0) {
    edges = view.edges.filter((e) => e.source === id)
    direction = 'out'
  }
  const codes: Record<string, number> = {}
  for (const e of edges) addCodes(codes, e.codes)
  return { direction, summary: combine(edges), codes }
}

/** namespacesOf lists the namespaces of a graph's nodes, sorted. */
export function namespacesOf(g: LiveGraph | undefined): string[] {
  return [...new Set((g?.nodes ?? []).map((n) => n.namespace ?? '').filter(Boolean))].sort()
}

export const fmtRps = (rps: number) => (rps >= 100 ? rps.toFixed(0) : rps >= 10 ? rps.toFixed(1) : rps.toFixed(2)) + ' rps'
export const fmtPct = (r: number | null | undefined) => (r === null || r === undefined ? '—' : `${(Math.floor(r * 1000) / 10).toFixed(1)} %`)
export const fmtMs = (ms: number | null | undefined) =>
  ms === null || ms === undefined ? '—' : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms >= 10 ? ms.toFixed(0) : ms.toFixed(1)} ms`

/** fmtMTLS is a mutual TLS share as the graph shows it: "mTLS 100 %", or null when unknown. */
export function fmtMTLS(share: number | null | undefined): string | null {
  if (share === null || share === undefined) return null
  return `mTLS ${Math.floor(share * 100)} %`
}

/** edgeLabel is an edge's caption: rate, success rate and p99, and the mutual TLS share when known. */
export function edgeLabel(s: Summary & { mtlsShare?: number | null }): string {
  const base = `${fmtRps(s.rps)} · ${fmtPct(s.successRate)} · p99 ${fmtMs(s.p99)}`
  const mtls = fmtMTLS(s.mtlsShare)
  return mtls ? `${base} · ${mtls}` : base
}

/** ServiceHealth is one service's live traffic: what all its callers sent it. */
export interface ServiceHealth extends Summary {
  id: string
  name: string
  namespace: string
}

/** serviceHealth lists each service node with the traffic it received, by namespace and name. */
export function serviceHealth(g: LiveGraph): ServiceHealth[] {
  const into = new Map<string, Summary[]>()
  for (const e of g.edges) into.set(e.target, [...(into.get(e.target) ?? []), e])
  return g.nodes
    .filter((n) => n.type === 'service')
    .map((n) => ({ ...combine(into.get(n.id) ?? []), id: n.id, name: n.name || shortName(n.service ?? n.id), namespace: n.namespace ?? '' }))
    .sort((a, b) => a.namespace.localeCompare(b.namespace) || a.name.localeCompare(b.name))
}
