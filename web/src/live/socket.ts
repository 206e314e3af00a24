// One WebSocket to /api/v1/live for the whole console, shared by every feature that wants
// live events and reference-counted: the first subscriber opens it, the last one to leave
// closes it, and nothing connects until a feature subscribes. Events patch TanStack Query's
// cache (see useLive.ts); they never hold state of their own.
//
// The protocol, for the server side to follow:
//   client → server  {"op":"subscribe","topic":"graph"}   {"op":"unsubscribe","topic":"graph"}
//   server → client  {"topic":"graph","data":{...}}
// A client re-subscribes to all its topics after each reconnect.

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

export interface Subscriber {
  /** Called with each event's data for the topic. */
  onEvent: (data: unknown) => void
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

const OPEN = 1

/** LiveSocket is the shared, reference-counted socket. Use the live instance below. */
export class LiveSocket {
  private readonly opts: Required<LiveSocketOptions>
  private readonly topics = new Map<string, Set<Subscriber>>()
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

  /** subscribe listens to topic until the returned function is called. */
  subscribe(topic: string, sub: Subscriber): () => void {
    let subs = this.topics.get(topic)
    const firstOfTopic = !subs
    if (!subs) {
      subs = new Set()
      this.topics.set(topic, subs)
    }
    subs.add(sub)
    if (!this.socket && !this.retryTimer) {
      this.open()
    } else if (firstOfTopic) {
      this.send({ op: 'subscribe', topic })
    }
    if (this.state === 'open') sub.onOpen?.()

    let done = false
    return () => {
      if (done) return
      done = true
      subs.delete(sub)
      if (subs.size > 0) return
      this.topics.delete(topic)
      if (this.topics.size === 0) {
        this.shutdown()
      } else {
        this.send({ op: 'unsubscribe', topic })
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

  private open() {
    this.retryTimer = null
    this.setStatus(this.attempts === 0 ? 'connecting' : 'reconnecting')
    const ws = this.opts.connect(this.opts.url())
    this.socket = ws
    ws.onopen = () => {
      if (this.socket !== ws) return
      this.attempts = 0
      this.setStatus('open')
      for (const topic of this.topics.keys()) this.send({ op: 'subscribe', topic })
      for (const subs of this.topics.values()) for (const s of subs) s.onOpen?.()
    }
    ws.onmessage = (ev) => {
      if (this.socket !== ws) return
      let msg: { topic?: unknown; data?: unknown }
      try {
        msg = JSON.parse(String(ev.data))
      } catch {
        return // Not ours to understand; the server only sends JSON.
      }
      if (typeof msg.topic !== 'string') return
      for (const s of this.topics.get(msg.topic) ?? []) s.onEvent(msg.data)
    }
    ws.onclose = () => {
      if (this.socket !== ws) return
      this.socket = null
      if (this.topics.size > 0) this.scheduleReconnect()
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
