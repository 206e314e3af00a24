// The typed API of sluice-server: one function per endpoint the console uses. Each takes plain
// arguments and returns the answer's body as its type, or throws ApiError / NetworkError.

import { ApiClient } from './client'
import type {
  ConfigDump,
  ApiToken,
  AuditPage,
  DiffAnswer,
  ExperimentList,
  ExperimentRun,
  GraphAnswer,
  MetricsAnswer,
  NewToken,
  Role,
  ServiceInfo,
  User,
  Login,
  ProxyList,
  Resource,
  ResourceList,
  Revision,
  RevisionLog,
  WriteOutcome,
  Whoami,
} from './types'

const v1 = '/api/v1'
const seg = encodeURIComponent

/** resourcePath is the address of a kind's resources (in every namespace when ns is empty), or of one. */
export function resourcePath(plural: string, namespace?: string, name?: string): string {
  if (!namespace) return `${v1}/${seg(plural)}`
  const base = `${v1}/namespaces/${seg(namespace)}/${seg(plural)}`
  return name ? `${base}/${seg(name)}` : base
}

export interface RevisionPage {
  /** Only revisions older than this one. */
  before?: number
  limit?: number
}

export interface DiffQuery {
  from: number
  to: number
  /** With namespace and name: compare that resource only. A kind or its plural. */
  kind?: string
  namespace?: string
  name?: string
}

/** The YAML of a resource as the server serves it for editing, with its ETag. */
export interface ResourceYaml {
  yaml: string
  /** The resourceVersion, as sent back in If-Match. */
  etag: string | null
}

/** The selection of GET /api/v1/metrics. */
export interface MetricsQuery {
  /** A host, or a prefix such as "reviews.default". */
  service?: string
  version?: string
  source?: string
  /** RFC 3339 or Unix seconds. */
  from?: string
  to?: string
  step?: string
  by?: 'service' | 'version' | 'source'
}

/** The filters of GET /api/v1/audit; before is the previous page's next. */
export interface AuditQuery {
  actor?: string
  action?: string
  target?: string
  since?: string
  until?: string
  limit?: number
  before?: string
}

/** createApi binds the endpoints to a client. */
export function createApi(client: ApiClient) {
  const get = async <T>(path: string, query?: Record<string, string | number | undefined>) =>
    (await client.request<T>('GET', path, { query })).data

  return {
    client,

    /** login signs in with a password; the session's CSRF token is kept for later writes. */
    async login(username: string, password: string): Promise<Login> {
      const { data } = await client.request<Login>('POST', `${v1}/login`, {
        json: { username, password },
        signOutOn401: false,
      })
      client.setCsrfToken(data.csrfToken)
      return data
    },

    /** whoami restores a session after a reload, CSRF token included; a 401 means signed out. */
    async whoami(): Promise<Whoami> {
      const { data } = await client.request<Whoami>('GET', `${v1}/whoami`, { signOutOn401: false })
      client.setCsrfToken(data.csrfToken ?? null)
      return data
    },

    /** logout ends the session; the CSRF token is forgotten whatever the answer. */
    async logout(): Promise<void> {
      try {
        await client.request('POST', `${v1}/logout`, { responseType: 'none', signOutOn401: false })
      } finally {
        client.setCsrfToken(null)
      }
    },

    listResources: (plural: string, namespace?: string) =>
      get<ResourceList>(resourcePath(plural, namespace)),

    getResource: (plural: string, namespace: string, name: string) =>
      get<Resource>(resourcePath(plural, namespace, name)),

    /** getResourceYaml fetches a resource as editable YAML (its resourceVersion included). */
    async getResourceYaml(plural: string, namespace: string, name: string): Promise<ResourceYaml> {
      const res = await client.request<string>('GET', resourcePath(plural, namespace, name), {
        accept: 'application/yaml',
        responseType: 'text',
      })
      return { yaml: res.data, etag: res.headers.get('ETag') }
    },

    /** apply creates or updates every resource of a multi-document YAML, in one revision. */
    apply: async (yaml: string, opts: { dryRun?: boolean; message?: string } = {}) =>
      (
        await client.request<WriteOutcome>('POST', `${v1}/apply`, {
          body: yaml,
          contentType: 'application/yaml',
          query: { dryRun: opts.dryRun ? 'true' : undefined, message: opts.message },
        })
      ).data,

    /**
     * putResource replaces one resource. ifMatch, the ETag it was read with, makes the server
     * refuse with 409 if someone changed it since.
     */
    putResource: async (
      plural: string,
      namespace: string,
      name: string,
      yaml: string,
      opts: { dryRun?: boolean; ifMatch?: string | null } = {},
    ) =>
      (
        await client.request<WriteOutcome>('PUT', resourcePath(plural, namespace, name), {
          body: yaml,
          contentType: 'application/yaml',
          headers: opts.ifMatch ? { 'If-Match': opts.ifMatch } : undefined,
          query: { dryRun: opts.dryRun ? 'true' : undefined },
        })
      ).data,

    deleteResource: async (plural: string, namespace: string, name: string, ifMatch?: string | null) =>
      (
        await client.request<WriteOutcome>('DELETE', resourcePath(plural, namespace, name), {
          headers: ifMatch ? { 'If-Match': ifMatch } : undefined,
        })
      ).data,

    /** history lists the revisions that changed one resource, newest first. */
    history: (plural: string, namespace: string, name: string, page: RevisionPage = {}) =>
      get<{ revisions: Revision[] }>(`${resourcePath(plural, namespace, name)}/history`, { ...page }),

    /** rollbackResource restores one resource to its state right after revision. */
    rollbackResource: async (plural: string, namespace: string, name: string, revision: number) =>
      (
        await client.request<WriteOutcome>('POST', `${resourcePath(plural, namespace, name)}/rollback`, {
          json: { revision },
        })
      ).data,

    /** revisions lists the mesh-wide revision log, newest first. */
    revisions: (page: RevisionPage = {}) => get<RevisionLog>(`${v1}/revisions`, { ...page }),

    revision: (revision: number) => get<Revision>(`${v1}/revisions/${revision}`),

    /** rollbackMesh restores every resource to its state right after revision. */
    rollbackMesh: async (revision: number) =>
      (await client.request<WriteOutcome>('POST', `${v1}/revisions/${revision}/rollback`)).data,

    diff: (q: DiffQuery) => get<DiffAnswer>(`${v1}/diff`, { ...q }),

    proxies: () => get<ProxyList>(`${v1}/proxies`),

    /** configDump is the configuration one proxy has applied, relayed from its admin port. */
    configDump: (nodeId: string) => get<ConfigDump>(`${v1}/proxies/${seg(nodeId)}/config_dump`),

    /** graph is the mesh's traffic over the last window, such as "10s". */
    graph: (window: string) => get<GraphAnswer>(`${v1}/graph`, { window }),

    metrics: (q: MetricsQuery) => get<MetricsAnswer>(`${v1}/metrics`, { ...q }),

    service: (namespace: string, name: string) =>
      get<ServiceInfo>(`${v1}/namespaces/${seg(namespace)}/services/${seg(name)}`),

    /**
     * setTraffic splits a service's catch-all traffic between its versions. ifMatch, the
     * resourceVersion the weights were read with, makes the server refuse with 409 if someone
     * changed the VirtualService since.
     */
    setTraffic: async (namespace: string, name: string, weights: Record<string, number>, ifMatch?: string) =>
      (
        await client.request<WriteOutcome>('PUT', `${v1}/namespaces/${seg(namespace)}/services/${seg(name)}/traffic`, {
          json: { weights },
          headers: ifMatch ? { 'If-Match': `"${ifMatch}"` } : undefined,
        })
      ).data,

    experiments: () => get<ExperimentList>(`${v1}/experiments`),

    /** stopExperiment ends an experiment's scheduled or running run now. */
    stopExperiment: async (namespace: string, name: string) =>
      (await client.request<{ run: ExperimentRun }>('POST', `${v1}/namespaces/${seg(namespace)}/experiments/${seg(name)}/stop`)).data,

    audit: (q: AuditQuery) => get<AuditPage>(`${v1}/audit`, { ...q }),

    users: () => get<{ users: User[] }>(`${v1}/users`),

    createUser: async (username: string, password: string, role: Role) =>
      (await client.request<User>('POST', `${v1}/users`, { json: { username, password, role } })).data,

    setUserRole: async (username: string, role: Role) =>
      (await client.request<User>('PATCH', `${v1}/users/${seg(username)}`, { json: { role } })).data,

    deleteUser: async (username: string) => {
      await client.request('DELETE', `${v1}/users/${seg(username)}`, { responseType: 'none' })
    },

    tokens: () => get<{ tokens: ApiToken[] }>(`${v1}/tokens`),

    /** createToken makes an API token; its secret is in this answer only. */
    createToken: async (name: string, expiresIn?: string) =>
      (await client.request<NewToken>('POST', `${v1}/tokens`, { json: { name, expiresIn: expiresIn || undefined } })).data,

    revokeToken: async (id: string) => {
      await client.request('DELETE', `${v1}/tokens/${seg(id)}`, { responseType: 'none' })
    },

    /** healthz asks whether the server process is up; it needs no sign-in. */
    healthz: async () => (await client.request<{ status: string }>('GET', '/healthz', { signOutOn401: false })).data,
  }
}

export type Api = ReturnType<typeof createApi>

/** api is the console's one API, on the page's own origin. */
export const api: Api = createApi(new ApiClient())
