import { describe, expect, it } from 'vitest'
import { createApi } from './api'
import { ApiClient, ApiError, NetworkError, conflictOf } from './client'

// recorder is a fetch that records every request and answers with what the test queued (or
// 200 {} when nothing is queued): the tests check what the client sends and how it reads
// answers, not any business answer.
function recorder() {
  const calls: { method: string; url: string; headers: Record<string, string>; body?: string }[] = []
  const queued: (() => Promise<Response>)[] = []
  const fetch: typeof globalThis.fetch = async (input, init) => {
    calls.push({
      method: init?.method ?? 'GET',
      url: String(input),
      headers: Object.fromEntries(new Headers(init?.headers).entries()),
      body: typeof init?.body === 'string' ? init.body : undefined,
    })
    const next = queued.shift()
    return next ? next() : new Response('{}', { status: 200, headers: { 'Content-Type': 'application/json' } })
  }
  return {
    calls,
    fetch,
    last: () => calls[calls.length - 1]!,
    answer(status: number, body: unknown, headers: Record<string, string> = {}) {
      const text = typeof body === 'string' ? body : JSON.stringify(body)
      const type = typeof body === 'string' ? 'text/plain' : 'application/json'
      queued.push(async () => new Response(status === 204 ? null : text, { status, headers: { 'Content-Type': type, ...headers } }))
    },
    problem(status: number, problem: Record<string, unknown>) {
      queued.push(
        async () =>
          new Response(JSON.stringify({ type: 'about:blank', status, ...problem }), {
            status,
            headers: { 'Content-Type': 'application/problem+json' },
          }),
      )
    },
    refuse() {
      queued.push(async () => {
        throw new TypeError('Failed to fetch')
      })
    },
  }
}

function setup() {
  const rec = recorder()
  const client = new ApiClient({ fetch: rec.fetch })
  return { rec, client, api: createApi(client) }
}

describe('CSRF token', () => {
  it('is sent on writes after login, never on reads, and forgotten on logout', async () => {
    const { rec, api } = setup()
    await api.apply('a: b')
    expect(rec.last().headers['x-csrf-token']).toBeUndefined()

    rec.answer(200, { username: 'admin', role: 'admin', csrfToken: 'tok-1' })
    await api.login('admin', 'pw')
    expect(rec.last()).toMatchObject({ method: 'POST', url: '/api/v1/login', body: '{"username":"admin","password":"pw"}' })
    expect(rec.last().headers['content-type']).toBe('application/json')

    const writes: [string, () => Promise<unknown>][] = [
      ['POST', () => api.apply('a: b')],
      ['PUT', () => api.putResource('virtualservices', 'default', 'r', 'a: b')],
      ['DELETE', () => api.deleteResource('virtualservices', 'default', 'r')],
      ['POST', () => api.rollbackResource('virtualservices', 'default', 'r', 3)],
      ['POST', () => api.rollbackMesh(3)],
    ]
    for (const [method, write] of writes) {
      await write()
      expect(rec.last().method).toBe(method)
      expect(rec.last().headers['x-csrf-token']).toBe('tok-1')
    }
    await api.listResources('virtualservices')
    expect(rec.last().headers['x-csrf-token']).toBeUndefined()

    rec.answer(204, '')
    await api.logout()
    expect(rec.last().headers['x-csrf-token']).toBe('tok-1')
    await api.apply('a: b')
    expect(rec.last().headers['x-csrf-token']).toBeUndefined()
  })

  it('is restored by whoami after a reload', async () => {
    const { rec, api } = setup()
    rec.answer(200, { username: 'admin', role: 'admin', authMethod: 'session', csrfToken: 'tok-2' })
    expect(await api.whoami()).toMatchObject({ username: 'admin' })
    await api.rollbackMesh(1)
    expect(rec.last().headers['x-csrf-token']).toBe('tok-2')
  })
})

describe('requests', () => {
  const cases: { name: string; call: (a: ReturnType<typeof setup>['api']) => Promise<unknown>; want: Record<string, unknown> }[] = [
    { name: 'list in every namespace', call: (a) => a.listResources('virtualservices'), want: { method: 'GET', url: '/api/v1/virtualservices' } },
    { name: 'list in a namespace', call: (a) => a.listResources('gateways', 'istio-system'), want: { url: '/api/v1/namespaces/istio-system/gateways' } },
    { name: 'names are escaped', call: (a) => a.getResource('virtualservices', 'a b', 'x/y'), want: { url: '/api/v1/namespaces/a%20b/virtualservices/x%2Fy' } },
    { name: 'history with a limit', call: (a) => a.history('destinationrules', 'default', 'reviews', { limit: 100 }), want: { url: '/api/v1/namespaces/default/destinationrules/reviews/history?limit=100' } },
    { name: 'revisions page', call: (a) => a.revisions({ before: 40, limit: 25 }), want: { url: '/api/v1/revisions?before=40&limit=25' } },
    { name: 'first revisions page', call: (a) => a.revisions({ limit: 25 }), want: { url: '/api/v1/revisions?limit=25' } },
    { name: 'diff of one resource', call: (a) => a.diff({ from: 3, to: 5, kind: 'virtualservices', namespace: 'default', name: 'reviews' }), want: { url: '/api/v1/diff?from=3&to=5&kind=virtualservices&namespace=default&name=reviews' } },
    { name: 'rollback of a resource', call: (a) => a.rollbackResource('virtualservices', 'default', 'reviews', 7), want: { method: 'POST', url: '/api/v1/namespaces/default/virtualservices/reviews/rollback', body: '{"revision":7}' } },
    { name: 'rollback of the mesh', call: (a) => a.rollbackMesh(7), want: { method: 'POST', url: '/api/v1/revisions/7/rollback', body: undefined } },
    { name: 'proxies', call: (a) => a.proxies(), want: { method: 'GET', url: '/api/v1/proxies' } },
  ]
  for (const tc of cases) {
    it(tc.name, async () => {
      const { rec, api } = setup()
      await tc.call(api)
      expect(rec.calls).toHaveLength(1)
      expect(rec.last()).toMatchObject(tc.want)
    })
  }

  it('apply sends the YAML as it is, with dryRun only when asked', async () => {
    const { rec, api } = setup()
    const yaml = 'kind: VirtualService\n---\nkind: DestinationRule\n'
    await api.apply(yaml, { dryRun: true })
    expect(rec.last()).toMatchObject({ method: 'POST', url: '/api/v1/apply?dryRun=true', body: yaml })
    expect(rec.last().headers['content-type']).toBe('application/yaml')
    await api.apply(yaml, { message: 'shift 10% to v2' })
    expect(rec.last().url).toBe('/api/v1/apply?message=shift+10%25+to+v2')
  })

  it('edits carry the ETag they were read with', async () => {
    const { rec, api } = setup()
    rec.answer(200, 'kind: VirtualService\n', { ETag: '"12"' })
    const got = await api.getResourceYaml('virtualservices', 'default', 'reviews')
    expect(got).toEqual({ yaml: 'kind: VirtualService\n', etag: '"12"' })
    expect(rec.last().headers.accept).toBe('application/yaml')

    await api.putResource('virtualservices', 'default', 'reviews', got.yaml, { ifMatch: got.etag, dryRun: true })
    expect(rec.last()).toMatchObject({ method: 'PUT', url: '/api/v1/namespaces/default/virtualservices/reviews?dryRun=true', body: got.yaml })
    expect(rec.last().headers['if-match']).toBe('"12"')
  })
})

describe('errors', () => {
  it('a problem becomes an ApiError with its field errors', async () => {
    const { rec, api } = setup()
    const errors = [{ path: 'documents[0].spec.http[0].route[0].weigth', message: 'unknown field "weigth"' }]
    rec.problem(400, { title: 'Bad Request', detail: 'the configuration is invalid (1 problems); nothing was stored', errors })
    const err = await api.apply('x').catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ApiError)
    expect((err as ApiError).status).toBe(400)
    expect((err as ApiError).message).toBe('the configuration is invalid (1 problems); nothing was stored')
    expect((err as ApiError).fieldErrors).toEqual(errors)
    expect(conflictOf(err)).toBeNull()
  })

  it('a conflict says who changed the resource and when', async () => {
    const { rec, api } = setup()
    rec.problem(409, { detail: 'changed', updatedBy: 'alice', updatedAt: '2026-01-02T03:04:05Z', currentResourceVersion: '9' })
    const err = await api.putResource('virtualservices', 'default', 'r', 'x', { ifMatch: '"8"' }).catch((e: unknown) => e)
    expect(conflictOf(err)).toEqual({ updatedBy: 'alice', updatedAt: '2026-01-02T03:04:05Z', currentResourceVersion: '9' })
  })

  it('an answer that is not a problem keeps its text', async () => {
    const { rec, api } = setup()
    rec.answer(500, 'upstream exploded')
    const err = (await api.proxies().catch((e: unknown) => e)) as ApiError
    expect(err).toBeInstanceOf(ApiError)
    expect(err.message).toBe('upstream exploded')
  })

  it('a 401 signs out, except when signing in or restoring a session', async () => {
    const { rec, api, client } = setup()
    let signOuts = 0
    client.onUnauthorized(() => signOuts++)
    rec.problem(401, { detail: 'wrong password' })
    await expect(api.login('admin', 'nope')).rejects.toBeInstanceOf(ApiError)
    rec.problem(401, { detail: 'not signed in' })
    await expect(api.whoami()).rejects.toBeInstanceOf(ApiError)
    expect(signOuts).toBe(0)
    rec.problem(401, { detail: 'session expired' })
    await expect(api.revisions()).rejects.toBeInstanceOf(ApiError)
    expect(signOuts).toBe(1)
  })

  it('no answer is a NetworkError, and the client says the server is down until it answers again', async () => {
    const { rec, api, client } = setup()
    const seen: boolean[] = []
    client.subscribeConnectivity((up) => seen.push(up))
    rec.refuse()
    await expect(api.proxies()).rejects.toBeInstanceOf(NetworkError)
    expect(client.isOnline()).toBe(false)
    rec.answer(502, 'Bad Gateway')
    await expect(api.proxies()).rejects.toBeInstanceOf(ApiError)
    expect(client.isOnline()).toBe(false)
    await api.proxies()
    expect(client.isOnline()).toBe(true)
    expect(seen).toEqual([false, true])
  })

  it('an aborted request is not a network failure', async () => {
    const rec = recorder()
    const aborting: typeof fetch = async (input, init) => {
      await rec.fetch(input, init)
      throw new DOMException('aborted', 'AbortError')
    }
    const client = new ApiClient({ fetch: aborting })
    const ctl = new AbortController()
    ctl.abort()
    const err = await client.request('GET', '/api/v1/proxies', { signal: ctl.signal }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DOMException)
    expect(client.isOnline()).toBe(true)
  })
})
