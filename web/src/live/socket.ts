// One WebSocket to /api/v1/live for the whole console, shared by every feature that wants
// live events and reference-counted: the first subscriber opens it, the last one to leave
// closes it, and nothing connects until a feature subscribes. Events patch TanStack Query's
// cache (see useLive.ts); they never hold state of their own.
//
// The protocol (server/internal/api's live endpoint implements the same):
//   client → server  {"type":"subscribe","id":"g1","topic":"graph","params":{"window":"10s"}}
//                    {"type":"unsubscribe","id":"g1"}
//   server → client  {"type":"graph"|"tap"|"revision"|"proxy","id":"g1",…}
//                    {"type":"error","id":"g1","message":"…"}
// Subscribers asking for the same topic with the same params share one subscription. After a
// reconnect the client subscribes again with the same ids, and the server starts over (a graph
// subscription, for instance, begins with a full graph).

/** The part of the browser's WebSocket that LiveSocket uses; tests pass a fake. */
export interface SocketLike {
  readonly readyState: number
  send(data: string): void
  close(code?: number, reason?: string): void
  onopen: ((ev: Event) => void) | null
  onmessage: ((ev: MessageEvent) => void) | null
  onclose: ((ev: CloseEvent) => void) | null
  onerror: ((ev: Event) => void) | null
}

export type LiveStatus = 'idle' | 'connecting' | 'open' | 'reconnecting'

/** The topics the server offers. */
export type Topic = 'graph' | 'tap' | 'config'

/** Params of a subscription; the server reads them per topic (see the protocol). */
export type Params = Record<string, string>

/** One message from the server for a subscription, with its type ("graph", "tap", …). */
export interface LiveMessage {
  type: string
  id: string
  [member: string]: unknown
}

export interface Subscriber {
  /** Called with each message of the subscription, error messages excepted. */
  onEvent: (msg: LiveMessage) => void
  /** Called when the server refuses the subscription (unknown topic, bad params). */
  onError?: (message: string) => void
  /**
   * Called each time the socket opens, the first time and after a reconnect: events may have
   * been missed meanwhile, so a feature refetches what they patch.
   */
  onOpen?: () => void
}

export interface LiveSocketOptions {
  /** The socket's address; a function so that it is read from the page's location when needed. */
  url: () => string
  /** Opens a socket; the browser's WebSocket if absent. */
  connect?: (url: string) => SocketLike
  /** Reconnect delays: doubling from minDelayMs up to maxDelayMs. */
  minDelayMs?: number
  maxDelayMs?: number
}

/** The most subscriptions the server allows on one connection. */
export const maxSubscriptions = 16

const OPEN = 1

interface Subscription {
  id: string
  topic: Topic
  params: Params
  subs: Set<Subscriber>
}

/** subscriptionKey identifies a topic with its params, whatever the order of the params. */
export function subscriptionKey(topic: Topic, params: Params): string {
  const p = Object.entries(params)
    .filter(([, v]) => v !== '')
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return topic + '?' + new URLSearchParams(p).toString()
}

/** LiveSocket is the shared, reference-counted socket. Use the live instance below. */
export class LiveSocket {
  private readonly opts: Required<LiveSocketOptions>
  private readonly byKey = new Map<string, Subscription>()
  private readonly byId = new Map<string, Subscription>()
  private nextId = 1
  private socket: SocketLike | null = null
  private retryTimer: ReturnType<typeof setTimeout> | null = null
  private attempts = 0
  private state: LiveStatus = 'idle'
  private readonly statusListeners = new Set<(s: LiveStatus) => void>()

  constructor(opts: LiveSocketOptions) {
    this.opts = {
      connect: (url) => new WebSocket(url),
      minDelayMs: 500,
      maxDelayMs: 15_000,
      ...opts,
    }
  }

  /**
   * subscribe listens to topic with params until the returned function is called. Params
   * with an empty value are left out, as the server treats them alike.
   */
  subscribe(topic: Topic, params: Params, sub: Subscriber): () => void {
    const clean = Object.fromEntries(Object.entries(params).filter(([, v]) => v !== ''))
    const key = subscriptionKey(topic, clean)
    let s = this.byKey.get(key)
    if (!s) {
      if (this.byKey.size >= maxSubscriptions) {
        // The server would refuse it; say so the same way it would.
        queueMicrotask(() => sub.onError?.(`at most ${maxSubscriptions} live subscriptions at once: close a page that uses some`))
        return () => {}
      }
      s = { id: `${topic[0]}${this.nextId++}`, topic, params: clean, subs: new Set() }
      this.byKey.set(key, s)
      this.byId.set(s.id, s)
      if (this.socket || this.retryTimer) this.sendSubscribe(s)
    }
    s.subs.add(sub)
    if (!this.socket && !this.retryTimer) this.open()
    if (this.state === 'open') sub.onOpen?.()

    const held = s
    let done = false
    return () => {
      if (done) return
      done = true
      held.subs.delete(sub)
      if (held.subs.size > 0) return
      this.byKey.delete(key)
      this.byId.delete(held.id)
      if (this.byKey.size === 0) {
        this.shutdown()
      } else {
        this.send({ type: 'unsubscribe', id: held.id })
      }
    }
  }

  /** status is the socket's state: idle while nobody subscribes. */
  status = (): LiveStatus => this.state

  /** subscribeStatus calls fn when the status changes; it returns the unsubscriber. */
  subscribeStatus = (fn: (s: LiveStatus) => void): (() => void) => {
    this.statusListeners.add(fn)
    return () => this.statusListeners.delete(fn)
  }

  private setStatus(s: LiveStatus) {
    if (this.state === s) return
    this.state = s
    for (const fn of this.statusListeners) fn(s)
  }

  private sendSubscribe(s: Subscription) {
    const msg: Record<string, unknown> = { type: 'subscribe', id: s.id, topic: s.topic }
    if (Object.keys(s.params).length > 0) msg.params = s.params
    this.send(msg)
  }

  private open() {
    this.retryTimer = null
    this.setStatus(this.attempts === 0 ? 'connecting' : 'reconnecting')
    const ws = this.opts.connect(this.opts.url())
    this.socket = ws
    ws.onopen = () => {
      if (this.socket !== ws) return
      this.attempts = 0
      this.setStatus('open')
      for (const s of this.byKey.values()) this.sendSubscribe(s)
      for (const s of this.byKey.values()) for (const sub of s.subs) sub.onOpen?.()
    }
    ws.onmessage = (ev) => {
      if (this.socket !== ws) return
      let msg: unknown
      try {
        msg = JSON.parse(String(ev.data))
      } catch {
        return // Not ours to understand; the server only sends JSON.
      }
      if (!msg || typeof msg !== 'object') return
      const m = msg as Partial<LiveMessage>
      if (typeof m.type !== 'string' || typeof m.id !== 'string') return
      const s = this.byId.get(m.id)
      if (!s) return // a subscription ended while the message was on its way
      for (const sub of [...s.subs]) {
        if (m.type === 'error') sub.onError?.(typeof m.message === 'string' ? m.message : 'the server refused the subscription')
        else sub.onEvent(m as LiveMessage)
      }
    }
    ws.onclose = () => {
      if (this.socket !== ws) return
      this.socket = null
      if (this.byKey.size > 0) this.scheduleReconnect()
    }
    // An error is always followed by close, which decides what to do.
    ws.onerror = () => {}
  }

  private scheduleReconnect() {
    const delay = Math.min(this.opts.maxDelayMs, this.opts.minDelayMs * 2 ** this.attempts)
    this.attempts++
    this.setStatus('reconnecting')
    this.retryTimer = setTimeout(() => this.open(), delay)
  }

  private shutdown() {
    if (this.retryTimer) clearTimeout(this.retryTimer)
    this.retryTimer = null
    const ws = this.socket
    this.socket = null
    this.attempts = 0
    if (ws) ws.close(1000, 'no subscribers')
    this.setStatus('idle')
  }

  private send(msg: unknown) {
    if (this.socket?.readyState === OPEN) this.socket.send(JSON.stringify(msg))
  }
}

/** liveUrl is the address of /api/v1/live on the page's own origin. */
export function liveUrl(loc: Pick<Location, 'protocol' | 'host'> = window.location): string {
  return `${loc.protocol === 'https:' ? 'wss' : 'ws'}://${loc.host}/api/v1/live`
}

/** live is the console's one socket. It connects on its first subscriber, not before. */
export const live = new LiveSocket({ url: () => liveUrl() })
