// The shapes of sluice-server's REST API that the console uses, as the OpenAPI document
// (GET /api/v1/openapi.json, server/internal/api/openapi.yaml) describes them.

export type Role = 'viewer' | 'operator' | 'admin'

/** The answer of POST /api/v1/login. */
export interface Login {
  username: string
  role: Role
  csrfToken: string
}

/** The answer of GET /api/v1/whoami. csrfToken is present for a session, absent for a token. */
export interface Whoami {
  username: string
  role: Role
  csrfToken?: string
  authMethod: 'session' | 'token'
}

/** Identifies one resource. kind is the singular kind, such as "VirtualService". */
export interface ResourceKey {
  kind: string
  namespace: string
  name: string
}

export interface ObjectMeta {
  name: string
  namespace: string
  labels?: Record<string, string>
  annotations?: Record<string, string>
  /** The mesh revision that last changed the resource; its ETag. */
  resourceVersion?: string
  creationTimestamp?: string
  updatedAt?: string
  updatedBy?: string
}

/** A stored resource. spec is the kind's spec, as Istio (or Sluice) defines it. */
export interface Resource {
  apiVersion: string
  kind: string
  metadata: ObjectMeta
  spec: unknown
}

/** The answer of GET /api/v1/{kind} and /api/v1/namespaces/{ns}/{kind}. */
export interface ResourceList {
  items: Resource[]
  /** The mesh revision when read. */
  revision: number
}

export type WriteAction = 'created' | 'updated' | 'deleted' | 'unchanged'

export interface WriteResult extends ResourceKey {
  action: WriteAction
  /** Absent on a dry run. */
  resourceVersion?: string
  /** A dry run's unified diff of the resource's YAML, before and after. */
  diff?: string
}

/** The answer of every write: apply, PUT, delete and rollbacks. */
export interface WriteOutcome {
  results: WriteResult[]
  dryRun: boolean
  /** The new revision; absent when nothing changed and on a dry run. */
  revision?: number
}

export interface Change extends ResourceKey {
  action: 'create' | 'update' | 'delete'
  before?: Resource
  after?: Resource
}

/** One committed change of the mesh's configuration. */
export interface Revision {
  revision: number
  at: string
  actor: string
  message?: string
  /** Set on a rollback to that revision. */
  rolledBackTo?: number
  changes: Change[]
}

/** The answer of GET /api/v1/revisions. */
export interface RevisionLog {
  revisions: Revision[]
  /** The newest revision number (the xDS version). */
  current: number
}

/** One resource in the answer of GET /api/v1/diff. from and to are null where it did not exist. */
export interface ResourceDiff extends ResourceKey {
  from: Resource | null
  to: Resource | null
  diff: string
}

export interface DiffAnswer {
  from: number
  to: number
  resources: ResourceDiff[]
}

/** xDS types as the proxy list names them. */
export type XdsType = 'LDS' | 'RDS' | 'CDS' | 'EDS'

/** One proxy in GET /api/v1/proxies. */
export interface Proxy {
  nodeId: string
  namespace: string
  service: string
  workload: string
  mode: string
  address: string
  labels?: Record<string, string> | null
  serviceAccount?: string
  connected: boolean
  draining?: boolean
  connectedAt?: string
  disconnectedAt?: string
  /** The version acknowledged per xDS type. */
  acked?: Record<string, string> | null
  sent?: Record<string, string> | null
  /** The last NACK's message per xDS type. */
  nacks?: Record<string, string> | null
  lastSync?: string
  /** The newest configuration revision the proxy has applied in full. */
  syncedRevision: number
  syncedAt?: string
  /** Connected and synced to the answer's revision. */
  inSync: boolean
}

/** Configuration the server's last push could not translate as written. */
export interface PushProblem {
  /** The resource, such as "VirtualService/default/reviews". */
  resource: string
  message: string
}

/** The answer of GET /api/v1/proxies. */
export interface ProxyList {
  /** The configuration revision being served. */
  revision: number
  proxies: Proxy[]
  problems?: PushProblem[] | null
}
