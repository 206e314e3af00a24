// Server state for TanStack Query: the keys and query options of every read the console makes.
// Everything that a configuration write can change lives under the "config" key, so one
// invalidation after a write refreshes it all; a WebSocket event can patch the same keys.

import { infiniteQueryOptions, queryOptions, type QueryClient } from '@tanstack/react-query'
import { api, type AuditQuery, type DiffQuery, type MetricsQuery } from './api'

export const keys = {
  config: ['config'] as const,
  list: (plural: string, namespace: string | undefined) => ['config', 'list', plural, namespace ?? '*'] as const,
  object: (plural: string, namespace: string, name: string) => ['config', 'object', plural, namespace, name] as const,
  yaml: (plural: string, namespace: string, name: string) => ['config', 'yaml', plural, namespace, name] as const,
  history: (plural: string, namespace: string, name: string) => ['config', 'history', plural, namespace, name] as const,
  revisions: ['config', 'revisions'] as const,
  proxies: ['proxies'] as const,
  configDump: (nodeId: string) => ['proxies', 'config_dump', nodeId] as const,
  // A service's versions and split change with the configuration and with its workloads.
  service: (namespace: string, name: string) => ['config', 'service', namespace, name] as const,
  metrics: (q: MetricsQuery) => ['metrics', q] as const,
  audit: (q: AuditQuery) => ['audit', q] as const,
  users: ['users'] as const,
  // Experiments are FaultExperiment resources: a configuration write can change them.
  experiments: ['config', 'experiments'] as const,
  tokens: ['tokens'] as const,
  // A diff between two numbered revisions never changes, so it lives outside "config".
  diff: (q: DiffQuery) => ['diff', q.from, q.to, q.kind ?? '', q.namespace ?? '', q.name ?? ''] as const,
}

export const resourcesQuery = (plural: string, namespace?: string) =>
  queryOptions({
    queryKey: keys.list(plural, namespace),
    queryFn: () => api.listResources(plural, namespace),
  })

export const resourceQuery = (plural: string, namespace: string, name: string) =>
  queryOptions({
    queryKey: keys.object(plural, namespace, name),
    queryFn: () => api.getResource(plural, namespace, name),
  })

export const resourceYamlQuery = (plural: string, namespace: string, name: string) =>
  queryOptions({
    queryKey: keys.yaml(plural, namespace, name),
    queryFn: () => api.getResourceYaml(plural, namespace, name),
  })

export const historyQuery = (plural: string, namespace: string, name: string) =>
  queryOptions({
    queryKey: keys.history(plural, namespace, name),
    queryFn: () => api.history(plural, namespace, name, { limit: 100 }),
  })

const revisionPageSize = 25

export const revisionsQuery = () =>
  infiniteQueryOptions({
    queryKey: keys.revisions,
    queryFn: ({ pageParam }) => api.revisions({ before: pageParam, limit: revisionPageSize }),
    initialPageParam: undefined as number | undefined,
    getNextPageParam: (last) => {
      const oldest = last.revisions.at(-1)?.revision
      return last.revisions.length === revisionPageSize && oldest !== undefined && oldest > 1 ? oldest : undefined
    },
  })

export const diffQuery = (q: DiffQuery) =>
  queryOptions({
    queryKey: keys.diff(q),
    queryFn: () => api.diff(q),
    staleTime: Infinity,
  })

/** How often the proxy list is read again while it is on screen. */
export const proxiesRefreshMs = 3000

export const configDumpQuery = (nodeId: string) =>
  queryOptions({
    queryKey: keys.configDump(nodeId),
    queryFn: () => api.configDump(nodeId),
  })

export const proxiesQuery = () =>
  queryOptions({
    queryKey: keys.proxies,
    queryFn: () => api.proxies(),
    refetchInterval: proxiesRefreshMs,
  })

/** afterConfigWrite refreshes everything a configuration write can change. */
export function afterConfigWrite(qc: QueryClient): Promise<void> {
  return qc.invalidateQueries({ queryKey: keys.config }).then(() =>
    qc.invalidateQueries({ queryKey: keys.proxies }),
  )
}

/** How often a service's versions and endpoints are read again while on screen. */
export const serviceRefreshMs = 5000

export const serviceQuery = (namespace: string, name: string) =>
  queryOptions({
    queryKey: keys.service(namespace, name),
    queryFn: () => api.service(namespace, name),
    refetchInterval: serviceRefreshMs,
  })

export const metricsQuery = (q: MetricsQuery) =>
  queryOptions({
    queryKey: keys.metrics(q),
    queryFn: () => api.metrics(q),
  })
