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
  /** The application's readiness as the proxy's probe sees it. */
  health?: { ready: boolean; reason?: string; since?: string }
  /** The proxy's SPIFFE ID: spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>. */
  identity?: string
  /** The PeerAuthentication mode in effect per inbound port; absent for gateways and proxyless clients. */
  mtls?: Record<string, MTLSMode>
  /** The certificate the mesh CA last issued to the proxy's identity (shared by the proxies of one identity). */
  certificate?: { serial: string; notAfter: string }
}

/** MTLSMode is a PeerAuthentication mode. */
export type MTLSMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE'

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

/** Traffic figures of an edge, a time series point, or a summary (telemetry.Summary). */
export interface Summary {
  requests: number
  errors: number
  rps: number
  /** The share of requests that did not fail, 0 to 1; null without requests. */
  successRate: number | null
  /** Duration percentiles in milliseconds; null without requests. */
  p50: number | null
  p95: number | null
  p99: number | null
  requestBytes: number
  responseBytes: number
}

export type GraphNodeType = 'service' | 'workload' | 'gateway' | 'unknown'

/** A node of the traffic graph. */
export interface GraphNode {
  /** "service:<host>", "workload:<namespace>/<name>" or "unknown". */
  id: string
  type: GraphNodeType
  name: string
  namespace?: string
  /** A service node's host. */
  service?: string
  /** A workload's version label. */
  version?: string
}

/** Traffic from one node to another. */
export interface GraphEdge extends Summary {
  /** Stable: sent by the live socket; the REST answer may leave it out (see edgeId). */
  id?: string
  source: string
  target: string
  protocols: string[]
  codes: Record<string, number>
  flags?: Record<string, number>
  /** The share (0–1) of the requests reported by the destination's sidecar that came over mutual TLS; null when none was. */
  mtlsShare?: number | null
}

/** The answer of GET /api/v1/graph. */
export interface GraphAnswer {
  windowSeconds: number
  from: string
  to: string
  source: string
  nodes: GraphNode[]
  edges: GraphEdge[]
}

export interface MetricsPoint extends Summary {
  t: string
}

export interface TimeSeries {
  labels: Record<string, string>
  points: MetricsPoint[]
}

/** The answer of GET /api/v1/metrics. */
export interface MetricsAnswer {
  from: string
  to: string
  stepSeconds: number
  resolution: string
  series: TimeSeries[]
}

export interface ServiceEndpoint {
  workload: string
  address: string
  connected: boolean
  draining: boolean
}

export interface ServiceVersion {
  version: string
  endpoints: ServiceEndpoint[]
}

/** How a service's catch-all traffic is split between its versions. */
export interface TrafficSplit {
  /** The VirtualService that routes the service; absent when none does. */
  virtualService?: string
  /** Its resourceVersion, the precondition of a change. */
  resourceVersion?: string
  weights: Record<string, number>
  /** Rules besides the catch-all one, kept as they are by a change. */
  otherRules: number
}

/** The answer of GET /api/v1/namespaces/{ns}/services/{name}. */
export interface ServiceInfo {
  namespace: string
  name: string
  host: string
  versions: ServiceVersion[]
  traffic: TrafficSplit | null
}

/** One access log entry of the tap (telemetry.AccessEntry). */
export interface AccessEntry {
  time: string
  nodeId?: string
  reporter?: string
  sourceWorkload: string
  sourceNamespace: string
  destinationService: string
  destinationWorkload: string
  destinationVersion: string
  method: string
  authority: string
  path: string
  protocol: string
  responseCode: number
  responseFlags: string
  grpcStatus?: string
  durationMs: number
  requestBytes: number
  responseBytes: number
  requestId?: string
  detail?: string
}

/** One entry of GET /api/v1/audit. */
export interface AuditEntry {
  id: number
  at: string
  actor: string
  action: string
  target: string
  outcome: string
  detail?: string
  clientAddr?: string
  before?: unknown
  after?: unknown
}

export interface AuditPage {
  entries: AuditEntry[]
  /** The cursor of the next page, when there may be one. */
  next?: string
}

export interface User {
  username: string
  role: Role
  createdAt: string
  updatedAt: string
}

export interface ApiToken {
  id: string
  name: string
  username: string
  role: Role
  createdAt: string
  expiresAt: string
  lastUsedAt: string | null
  revoked: boolean
  revokedAt?: string
}

/** The answer of POST /api/v1/tokens: the secret is in it, and nowhere else ever. */
export interface NewToken {
  id: string
  token: string
  name: string
  role: Role
  expiresAt: string
}

export type ExperimentState = 'scheduled' | 'running' | 'stopped_early' | 'finished' | 'stopped' | 'deleted'

/** A FaultExperiment with the state of its current run (GET /api/v1/experiments' items). */
export interface ExperimentStatus {
  namespace: string
  name: string
  host: string
  start?: string
  end?: string
  duration: string
  state: ExperimentState | ''
  reason?: string
  startedAt?: string
  endedAt?: string
  resourceVersion: string
  spec: unknown
}

/** One run of an experiment. */
export interface ExperimentRun {
  id: number
  namespace: string
  name: string
  host: string
  start: string
  end: string
  revision: number
  state: ExperimentState
  reason?: string
  startedAt?: string
  endedAt?: string
  updatedAt: string
}

/** The answer of GET /api/v1/experiments. */
export interface ExperimentList {
  items: ExperimentStatus[]
  history: ExperimentRun[]
}

/** A proxy's /config_dump, shaped like Envoy's: one entry per xDS type, proto field names. */
export interface ConfigDump {
  configs?: unknown[]
}
