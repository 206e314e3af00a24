import { useQuery } from '@tanstack/react-query'
import { api } from '../api/api'
import { fromFull, mergeGraph, type GraphMessage, type LiveGraph } from './graph'
import { useLivePatch, useLiveStatus } from './useLive'

/** The graph's key in the query cache, per window and namespace ("" for all). */
export const graphKey = (window: string, namespace: string) => ['graph', window, namespace] as const

/** The window each figure of the live graph is over, on every page that shows it. */
export const graphWindow = '10s'

/** How often the graph is read over REST while the live socket is not open. */
export const graphPollMs = 5_000

/**
 * useLiveGraph is the mesh's traffic graph, aggregated over window ("10s") and kept current
 * by the live socket's graph topic: its full and delta messages are merged into the cache.
 * Until the socket opens (or if it cannot), the graph is read over REST every few seconds.
 */
export function useLiveGraph(window: string, namespace: string) {
  const status = useLiveStatus()
  const key = graphKey(window, namespace)
  const error = useLivePatch({
    topic: 'graph',
    params: { window, namespace },
    patch: (qc, msg) => {
      if (msg.type !== 'graph') return
      qc.setQueryData<LiveGraph>(key, (prev) => mergeGraph(prev, msg as unknown as GraphMessage) ?? prev)
    },
  })
  const query = useQuery({
    queryKey: key,
    queryFn: async () => {
      const g = await api.graph(window)
      if (!namespace) return fromFull(g.to, g.nodes, g.edges)
      // The REST graph covers every namespace; keep what the live one would: the namespace's
      // nodes, and the nodes at the other end of their edges.
      const inNs = new Set(g.nodes.filter((n) => n.namespace === namespace).map((n) => n.id))
      const edges = g.edges.filter((e) => inNs.has(e.source) || inNs.has(e.target))
      const ends = new Set(edges.flatMap((e) => [e.source, e.target]))
      const nodes = g.nodes.filter((n) => inNs.has(n.id) || ends.has(n.id))
      return fromFull(g.to, nodes, edges)
    },
    refetchInterval: status === 'open' && !error ? false : graphPollMs,
    staleTime: Infinity,
  })
  return { ...query, live: status === 'open' && !error, liveError: error }
}
