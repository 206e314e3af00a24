// The one place the console talks HTTP to sluice-server. It adds the CSRF token to writes,
// turns every failure into an ApiError (the server's RFC 9457 problem) or a NetworkError
// (no answer at all), reports a 401 to whoever signs the user out, and tracks whether the
// server answers at all, for the banner that says it does not.

/** One problem with a request, located by its path in the body, such as documents[0].spec.hosts. */
export interface FieldError {
  path: string
  message: string
}

/** An RFC 9457 problem document, with the members Sluice adds. */
export interface Problem {
  type?: string
  title?: string
  status: number
  /** What went wrong and what to do. */
  detail?: string
  errors?: FieldError[]
  /** Members some problems add, such as updatedBy and updatedAt on a conflict. */
  [member: string]: unknown
}

/** ApiError is an answer with an error status. Its message is the problem's detail. */
export class ApiError extends Error {
  readonly status: number
  readonly problem: Problem

  constructor(problem: Problem) {
    super(problem.detail || problem.title || `HTTP ${problem.status}`)
    this.name = 'ApiError'
    this.status = problem.status
    this.problem = problem
  }

  /** The field errors of a 400, empty when the problem has none. */
  get fieldErrors(): FieldError[] {
    return Array.isArray(this.problem.errors) ? this.problem.errors : []
  }
}

/** NetworkError means the server did not answer: it is down, or the network is. */
export class NetworkError extends Error {
  constructor(cause: unknown) {
    super('sluice-server did not answer', { cause })
    this.name = 'NetworkError'
  }
}

/** Conflict is what a 409 says about the change that won. */
export interface Conflict {
  updatedBy?: string
  updatedAt?: string
  currentResourceVersion?: string
}

/** conflictOf returns the conflict a 409 reports, or null for any other error. */
export function conflictOf(err: unknown): Conflict | null {
  if (!(err instanceof ApiError) || err.status !== 409) return null
  const p = err.problem
  const str = (v: unknown) => (typeof v === 'string' && v !== '' ? v : undefined)
  return {
    updatedBy: str(p.updatedBy),
    updatedAt: str(p.updatedAt),
    currentResourceVersion: str(p.currentResourceVersion),
  }
}

export type QueryValue = string | number | boolean | undefined | null

export interface RequestOptions {
  query?: Record<string, QueryValue>
  /** A body to send as JSON. */
  json?: unknown
  /** A body to send as it is, with contentType. */
  body?: string
  contentType?: string
  accept?: string
  headers?: Record<string, string>
  signal?: AbortSignal
  /** How to read a successful answer; json unless said otherwise. */
  responseType?: 'json' | 'text' | 'none'
  /**
   * Whether a 401 signs the console out (sending the user to the login page). Signing in and
   * restoring a session handle their own 401s, and say false.
   */
  signOutOn401?: boolean
}

export interface ApiResponse<T> {
  status: number
  headers: Headers
  data: T
}

export interface ApiClientOptions {
  /** The fetch to use; globalThis.fetch if absent. Tests pass a recorder. */
  fetch?: typeof fetch
  /** Prefixed to every path; empty (same origin) if absent. */
  baseUrl?: string
}

type Listener<T> = (value: T) => void

const safeMethods = new Set(['GET', 'HEAD', 'OPTIONS', 'TRACE'])

/**
 * ApiClient sends requests to sluice-server. It keeps the session's CSRF token in memory only
 * (never in storage a script of another page could read) and sends it on every write.
 */
export class ApiClient {
  private readonly fetchFn: typeof fetch
  private readonly baseUrl: string
  private csrfToken: string | null = null
  private online = true
  private readonly unauthorized = new Set<Listener<void>>()
  private readonly connectivity = new Set<Listener<boolean>>()

  constructor(opts: ApiClientOptions = {}) {
    // Bound, since calling window.fetch as a method of another object throws.
    this.fetchFn = opts.fetch ?? ((input, init) => globalThis.fetch(input, init))
    this.baseUrl = opts.baseUrl ?? ''
  }

  /** setCsrfToken keeps the session's CSRF token for the writes that follow; null forgets it. */
  setCsrfToken(token: string | null): void {
    this.csrfToken = token
  }

  /** onUnauthorized calls fn whenever a request is refused with 401; it returns the unsubscriber. */
  onUnauthorized(fn: () => void): () => void {
    this.unauthorized.add(fn)
    return () => this.unauthorized.delete(fn)
  }

  /** isOnline reports whether the server answered the last request. */
  isOnline = (): boolean => this.online

  /** subscribeConnectivity calls fn when the server stops or starts answering. */
  subscribeConnectivity = (fn: Listener<boolean>): (() => void) => {
    this.connectivity.add(fn)
    return () => this.connectivity.delete(fn)
  }

  private setOnline(v: boolean) {
    if (this.online === v) return
    this.online = v
    for (const fn of this.connectivity) fn(v)
  }

  /** url builds the address of path with its query, leaving out absent values. */
  url(path: string, query?: Record<string, QueryValue>): string {
    const params = new URLSearchParams()
    for (const [k, v] of Object.entries(query ?? {})) {
      if (v !== undefined && v !== null && v !== '') params.set(k, String(v))
    }
    const qs = params.toString()
    return this.baseUrl + path + (qs ? '?' + qs : '')
  }

  /** request sends one request and reads its answer; it throws ApiError or NetworkError. */
  async request<T>(method: string, path: string, opts: RequestOptions = {}): Promise<ApiResponse<T>> {
    const headers: Record<string, string> = { Accept: opts.accept ?? 'application/json', ...opts.headers }
    let body: string | undefined
    if (opts.json !== undefined) {
      body = JSON.stringify(opts.json)
      headers['Content-Type'] = 'application/json'
    } else if (opts.body !== undefined) {
      body = opts.body
      headers['Content-Type'] = opts.contentType ?? 'text/plain'
    }
    if (!safeMethods.has(method) && this.csrfToken) headers['X-CSRF-Token'] = this.csrfToken

    let res: Response
    try {
      res = await this.fetchFn(this.url(path, opts.query), {
        method,
        headers,
        body,
        signal: opts.signal,
        credentials: 'same-origin',
      })
    } catch (err) {
      if (opts.signal?.aborted) throw err
      this.setOnline(false)
      throw new NetworkError(err)
    }

    if (!res.ok) {
      const problem = await readProblem(res)
      // A gateway in front of the server answers these when the server is gone.
      const gatewayDown = [502, 503, 504].includes(res.status) && !isProblem(res)
      this.setOnline(!gatewayDown)
      const err = new ApiError(problem)
      if (res.status === 401 && opts.signOutOn401 !== false) {
        for (const fn of this.unauthorized) fn()
      }
      throw err
    }
    this.setOnline(true)

    const type = opts.responseType ?? 'json'
    let data: unknown
    if (type === 'none' || res.status === 204) {
      data = undefined
    } else if (type === 'text') {
      data = await res.text()
    } else {
      data = await res.json()
    }
    return { status: res.status, headers: res.headers, data: data as T }
  }
}

function isProblem(res: Response): boolean {
  return (res.headers.get('Content-Type') ?? '').includes('json')
}

async function readProblem(res: Response): Promise<Problem> {
  const text = await res.text().catch(() => '')
  if (isProblem(res)) {
    try {
      const p = JSON.parse(text) as Problem
      if (p && typeof p === 'object') return { ...p, status: res.status }
    } catch {
      // Not JSON after all: described below from the status.
    }
  }
  return {
    status: res.status,
    title: res.statusText || `HTTP ${res.status}`,
    detail: text.trim().slice(0, 300) || `the server answered ${res.status} ${res.statusText}`.trim(),
  }
}
