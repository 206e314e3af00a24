import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { LiveSocket, liveUrl, type SocketLike } from './socket'

// FakeSocket records what the client sends; the test plays the server by calling its
// serverOpens, serverSends and serverCloses.
class FakeSocket implements SocketLike {
  readyState = 0
  sent: unknown[] = []
  closed = false
  onopen: SocketLike['onopen'] = null
  onmessage: SocketLike['onmessage'] = null
  onclose: SocketLike['onclose'] = null
  onerror: SocketLike['onerror'] = null
  constructor(readonly url: string) {}
  send(data: string) {
    this.sent.push(JSON.parse(data))
  }
  close() {
    this.closed = true
    this.readyState = 3
  }
  serverOpens() {
    this.readyState = 1
    this.onopen?.(new Event('open'))
  }
  serverSends(msg: unknown) {
    this.onmessage?.({ data: typeof msg === 'string' ? msg : JSON.stringify(msg) } as MessageEvent)
  }
  serverCloses() {
    this.readyState = 3
    this.onclose?.({} as CloseEvent)
  }
}

function setup() {
  const sockets: FakeSocket[] = []
  const live = new LiveSocket({
    url: () => 'ws://console.test/api/v1/live',
    connect: (url) => {
      const s = new FakeSocket(url)
      sockets.push(s)
      return s
    },
    minDelayMs: 100,
    maxDelayMs: 400,
  })
  return { live, sockets }
}

beforeEach(() => vi.useFakeTimers())
afterEach(() => vi.useRealTimers())

describe('LiveSocket', () => {
  it('connects on the first subscriber only, and closes with the last', () => {
    const { live, sockets } = setup()
    expect(sockets).toHaveLength(0)
    expect(live.status()).toBe('idle')

    const a = live.subscribe('graph', { onEvent: () => {} })
    const b = live.subscribe('proxies', { onEvent: () => {} })
    expect(sockets).toHaveLength(1)
    expect(sockets[0]!.url).toBe('ws://console.test/api/v1/live')
    sockets[0]!.serverOpens()
    expect(sockets[0]!.sent).toEqual([
      { op: 'subscribe', topic: 'graph' },
      { op: 'subscribe', topic: 'proxies' },
    ])

    a()
    a() // a second call is harmless
    expect(sockets[0]!.sent.at(-1)).toEqual({ op: 'unsubscribe', topic: 'graph' })
    expect(sockets[0]!.closed).toBe(false)
    b()
    expect(sockets[0]!.closed).toBe(true)
    expect(live.status()).toBe('idle')
  })

  it('shares a topic between subscribers and delivers its events to each', () => {
    const { live, sockets } = setup()
    const got: [string, unknown][] = []
    const a = live.subscribe('graph', { onEvent: (d) => got.push(['a', d]) })
    live.subscribe('graph', { onEvent: (d) => got.push(['b', d]) })
    live.subscribe('other', { onEvent: (d) => got.push(['other', d]) })
    sockets[0]!.serverOpens()
    sockets[0]!.serverSends({ topic: 'graph', data: { rps: 3 } })
    sockets[0]!.serverSends('not json')
    sockets[0]!.serverSends({ data: 'no topic' })
    a()
    sockets[0]!.serverSends({ topic: 'graph', data: { rps: 4 } })
    expect(got).toEqual([
      ['a', { rps: 3 }],
      ['b', { rps: 3 }],
      ['b', { rps: 4 }],
    ])
    // The topic still has a subscriber, so nothing was unsubscribed.
    expect(sockets[0]!.sent).not.toContainEqual({ op: 'unsubscribe', topic: 'graph' })
  })

  it('reconnects with growing delays, re-subscribes, and tells subscribers to refetch', () => {
    const { live, sockets } = setup()
    const opens = vi.fn()
    live.subscribe('graph', { onEvent: () => {}, onOpen: opens })
    sockets[0]!.serverOpens()
    expect(opens).toHaveBeenCalledTimes(1)

    sockets[0]!.serverCloses()
    expect(live.status()).toBe('reconnecting')
    vi.advanceTimersByTime(99)
    expect(sockets).toHaveLength(1)
    vi.advanceTimersByTime(1)
    expect(sockets).toHaveLength(2)
    sockets[1]!.serverCloses()
    vi.advanceTimersByTime(199)
    expect(sockets).toHaveLength(2)
    vi.advanceTimersByTime(1)
    expect(sockets).toHaveLength(3)
    sockets[2]!.serverOpens()
    expect(live.status()).toBe('open')
    expect(sockets[2]!.sent).toEqual([{ op: 'subscribe', topic: 'graph' }])
    expect(opens).toHaveBeenCalledTimes(2)
  })

  it('stops reconnecting when the last subscriber leaves', () => {
    const { live, sockets } = setup()
    const unsubscribe = live.subscribe('graph', { onEvent: () => {} })
    sockets[0]!.serverCloses()
    unsubscribe()
    vi.advanceTimersByTime(10_000)
    expect(sockets).toHaveLength(1)
    expect(live.status()).toBe('idle')
  })

  it('addresses /api/v1/live on the page origin', () => {
    expect(liveUrl({ protocol: 'https:', host: 'mesh.example:8443' })).toBe('wss://mesh.example:8443/api/v1/live')
    expect(liveUrl({ protocol: 'http:', host: '127.0.0.1:8080' })).toBe('ws://127.0.0.1:8080/api/v1/live')
  })
})
