import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { LiveSocket, liveUrl, subscriptionKey, type SocketLike } from './socket'

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
  it('connects on the first subscriber only, subscribes with ids and params, and closes with the last', () => {
    const { live, sockets } = setup()
    expect(sockets).toHaveLength(0)
    expect(live.status()).toBe('idle')

    const a = live.subscribe('graph', { window: '10s', namespace: '' }, { onEvent: () => {} })
    const b = live.subscribe('config', {}, { onEvent: () => {} })
    expect(sockets).toHaveLength(1)
    expect(sockets[0]!.url).toBe('ws://console.test/api/v1/live')
    expect(sockets[0]!.sent).toEqual([]) // nothing is sent before the socket opens
    sockets[0]!.serverOpens()
    expect(sockets[0]!.sent).toEqual([
      { type: 'subscribe', id: 'g1', topic: 'graph', params: { window: '10s' } },
      { type: 'subscribe', id: 'c2', topic: 'config' },
    ])

    const c = live.subscribe('tap', { service: 'reviews', status: '5xx' }, { onEvent: () => {} })
    expect(sockets[0]!.sent.at(-1)).toEqual({ type: 'subscribe', id: 't3', topic: 'tap', params: { service: 'reviews', status: '5xx' } })
    c()
    expect(sockets[0]!.sent.at(-1)).toEqual({ type: 'unsubscribe', id: 't3' })
    a()
    a() // a second call is harmless
    expect(sockets[0]!.sent.at(-1)).toEqual({ type: 'unsubscribe', id: 'g1' })
    expect(sockets[0]!.closed).toBe(false)
    b()
    expect(sockets[0]!.closed).toBe(true)
    expect(live.status()).toBe('idle')
  })

  it('shares a subscription between subscribers with the same params, and routes messages by id', () => {
    const { live, sockets } = setup()
    const got: [string, unknown][] = []
    const a = live.subscribe('graph', { window: '10s' }, { onEvent: (m) => got.push(['a', m.nodes]) })
    live.subscribe('graph', { window: '10s' }, { onEvent: (m) => got.push(['b', m.nodes]) })
    live.subscribe('graph', { window: '1m' }, { onEvent: (m) => got.push(['1m', m.nodes]) })
    sockets[0]!.serverOpens()
    expect(sockets[0]!.sent).toHaveLength(2)
    sockets[0]!.serverSends({ type: 'graph', id: 'g1', full: true, nodes: [1] })
    sockets[0]!.serverSends({ type: 'graph', id: 'g2', full: true, nodes: [2] })
    sockets[0]!.serverSends('not json')
    sockets[0]!.serverSends({ type: 'graph', nodes: 'no id' })
    sockets[0]!.serverSends({ type: 'graph', id: 'g99', nodes: 'unknown id' })
    a()
    sockets[0]!.serverSends({ type: 'graph', id: 'g1', full: false, nodes: [3] })
    expect(got).toEqual([
      ['a', [1]],
      ['b', [1]],
      ['1m', [2]],
      ['b', [3]],
    ])
    // The subscription still has a subscriber, so nothing was unsubscribed.
    expect(sockets[0]!.sent).not.toContainEqual({ type: 'unsubscribe', id: 'g1' })
  })

  it('reports an error message to the subscription it names, and keeps the connection', () => {
    const { live, sockets } = setup()
    const errors: string[] = []
    const events = vi.fn()
    live.subscribe('tap', { service: '' }, { onEvent: events, onError: (m) => errors.push(m) })
    sockets[0]!.serverOpens()
    sockets[0]!.serverSends({ type: 'error', id: 't1', message: 'params.service: required' })
    expect(errors).toEqual(['params.service: required'])
    expect(events).not.toHaveBeenCalled()
    expect(sockets[0]!.closed).toBe(false)
  })

  it('refuses a seventeenth subscription as the server would', async () => {
    const { live, sockets } = setup()
    for (let i = 0; i < 16; i++) live.subscribe('tap', { service: `s${i}` }, { onEvent: () => {} })
    sockets[0]!.serverOpens()
    const errors: string[] = []
    const un = live.subscribe('tap', { service: 'one-too-many' }, { onEvent: () => {}, onError: (m) => errors.push(m) })
    await Promise.resolve()
    expect(errors[0]).toMatch(/at most 16/)
    expect(sockets[0]!.sent).toHaveLength(16)
    un()
  })

  it('reconnects with growing delays, re-subscribes with the same ids, and tells subscribers to refetch', () => {
    const { live, sockets } = setup()
    const opens = vi.fn()
    live.subscribe('graph', { window: '10s' }, { onEvent: () => {}, onOpen: opens })
    sockets[0]!.serverOpens()
    expect(opens).toHaveBeenCalledTimes(1)

    sockets[0]!.serverCloses()
    expect(live.status()).toBe('reconnecting')
    // Subscribed meanwhile: sent once the new socket opens.
    live.subscribe('config', {}, { onEvent: () => {} })
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
    expect(sockets[2]!.sent).toEqual([
      { type: 'subscribe', id: 'g1', topic: 'graph', params: { window: '10s' } },
      { type: 'subscribe', id: 'c2', topic: 'config' },
    ])
    expect(opens).toHaveBeenCalledTimes(2)
  })

  it('stops reconnecting when the last subscriber leaves', () => {
    const { live, sockets } = setup()
    const unsubscribe = live.subscribe('graph', {}, { onEvent: () => {} })
    sockets[0]!.serverCloses()
    unsubscribe()
    vi.advanceTimersByTime(10_000)
    expect(sockets).toHaveLength(1)
    expect(live.status()).toBe('idle')
  })

  it('keys a subscription by topic and params, in any order, without empty params', () => {
    expect(subscriptionKey('tap', { status: '5xx', service: 'reviews', method: '' })).toBe(subscriptionKey('tap', { service: 'reviews', status: '5xx' }))
    expect(subscriptionKey('graph', { window: '10s' })).not.toBe(subscriptionKey('graph', { window: '1m' }))
  })

  it('addresses /api/v1/live on the page origin', () => {
    expect(liveUrl({ protocol: 'https:', host: 'mesh.example:8443' })).toBe('wss://mesh.example:8443/api/v1/live')
    expect(liveUrl({ protocol: 'http:', host: '127.0.0.1:8080' })).toBe('ws://127.0.0.1:8080/api/v1/live')
  })
})
