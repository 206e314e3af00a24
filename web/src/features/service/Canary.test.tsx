// @vitest-environment jsdom
import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { cleanup, fireEvent, render, screen } from '@testing-library/react'
import { MemoryRouter } from 'react-router'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { Proxy, Role, ServiceInfo, Summary } from '../../api/types'
import { Canary } from './Canary'

const svc: ServiceInfo = {
  namespace: 'default',
  name: 'reviews',
  host: 'reviews.default.svc.cluster.local',
  versions: ['v1', 'v2', 'v3'].map((version) => ({ version, endpoints: [{ workload: `reviews-${version}`, address: '127.0.0.2', connected: true, draining: false }] })),
  traffic: { virtualService: 'reviews', resourceVersion: '7', weights: { v3: 100 }, otherRules: 1 },
}

const proxy = (nodeId: string, syncedRevision: number, nacks?: Record<string, string>): Proxy => ({
  nodeId,
  namespace: 'default',
  service: 'reviews',
  workload: nodeId,
  mode: 'sidecar',
  address: '127.0.0.2',
  connected: true,
  syncedRevision,
  inSync: true,
  nacks,
})

interface Call {
  method: string
  url: string
  headers: Record<string, string>
  body?: string
}
let calls: Call[] = []
let answer: (c: Call) => Response

const json = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': status >= 400 ? 'application/problem+json' : 'application/json' } })

beforeEach(() => {
  calls = []
  vi.stubGlobal('fetch', async (input: RequestInfo | URL, init?: RequestInit) => {
    const c = { method: init?.method ?? 'GET', url: String(input), headers: (init?.headers ?? {}) as Record<string, string>, body: init?.body as string | undefined }
    calls.push(c)
    return answer(c)
  })
})
afterEach(() => {
  cleanup()
  vi.unstubAllGlobals()
})

function show(role: Role, live = new Map<string, Summary>()) {
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <MemoryRouter>
        <Canary svc={svc} role={role} live={live} vsNamespace="default" />
      </MemoryRouter>
    </QueryClientProvider>,
  )
}

const slider = (v: string) => screen.getByRole('slider', { name: `reviews ${v} weight` }) as HTMLInputElement

describe('Canary', () => {
  it('shows a viewer the controls disabled, with the reason', () => {
    answer = () => json(200, { revision: 7, proxies: [] })
    show('viewer')
    expect(screen.getByText('Your role, viewer, cannot change traffic. An operator or an admin can.')).toBeTruthy()
    for (const v of ['v1', 'v2', 'v3']) expect(slider(v).disabled).toBe(true)
    expect((screen.getByRole('button', { name: 'Apply' }) as HTMLButtonElement).disabled).toBe(true)
    expect((screen.getByRole('button', { name: 'Promote v3' }) as HTMLButtonElement).disabled).toBe(true)
  })

  it('rebalances the others as a slider moves, leaves locked ones alone, and shows live figures', () => {
    answer = () => json(200, { revision: 7, proxies: [] })
    const live = new Map<string, Summary>([['v3', { requests: 100, errors: 6, rps: 10, successRate: 0.94, p50: 5, p95: 9, p99: 12, requestBytes: 0, responseBytes: 0 }]])
    show('operator', live)
    expect([slider('v1').value, slider('v2').value, slider('v3').value]).toEqual(['0', '0', '100'])
    fireEvent.change(slider('v3'), { target: { value: '30' } })
    expect([slider('v1').value, slider('v2').value, slider('v3').value]).toEqual(['35', '35', '30'])
    fireEvent.click(screen.getByRole('checkbox', { name: 'Lock reviews v2' }))
    expect(slider('v2').disabled).toBe(true)
    fireEvent.change(slider('v3'), { target: { value: '50' } })
    expect([slider('v1').value, slider('v2').value, slider('v3').value]).toEqual(['15', '35', '50'])
    expect(screen.getByLabelText('v3 live: success 94.0 %, p99 12 ms')).toBeTruthy()
  })

  it('applies with the version it read, then says how many sidecars applied the revision, and which refused it', async () => {
    answer = (c) => {
      if (c.method === 'PUT') return json(200, { results: [], dryRun: false, revision: 8 })
      return json(200, { revision: 8, proxies: [proxy('a', 8), proxy('b', 8), proxy('c', 7, { RDS: 'unknown cluster' })] })
    }
    show('operator')
    fireEvent.change(slider('v3'), { target: { value: '30' } })
    fireEvent.click(screen.getByRole('button', { name: 'Apply' }))
    await screen.findByText(/^Apply: revision 8 applied to 2\/3 sidecars so far/)
    const put = calls.find((c) => c.method === 'PUT')!
    expect(put.url).toBe('/api/v1/namespaces/default/services/reviews/traffic')
    expect(put.headers['If-Match']).toBe('"7"')
    expect(JSON.parse(put.body!)).toEqual({ weights: { v1: 35, v2: 35, v3: 30 } })
    expect(screen.getByText(/unknown cluster/).closest('li')?.className).toContain('error-text')
  })

  it('says when every sidecar has applied it, and how long it took', async () => {
    answer = (c) => (c.method === 'PUT' ? json(200, { results: [], dryRun: false, revision: 8 }) : json(200, { revision: 8, proxies: [proxy('a', 8), proxy('b', 9)] }))
    show('admin')
    fireEvent.click(screen.getByRole('button', { name: 'Promote v1' }))
    await screen.findByText(/^Promote v1: revision 8 applied to 2\/2 sidecars in \d+ ms\.$/)
    expect(JSON.parse(calls.find((c) => c.method === 'PUT')!.body!)).toEqual({ weights: { v1: 100, v2: 0, v3: 0 } })
  })

  it('reports a conflict with who changed it and when, and does not retry on its own', async () => {
    answer = (c) =>
      c.method === 'PUT'
        ? json(409, { status: 409, detail: 'changed meanwhile', updatedBy: 'bob', updatedAt: new Date(Date.now() - 120_000).toISOString(), currentResourceVersion: '9' })
        : json(200, { revision: 9, proxies: [] })
    show('operator')
    fireEvent.change(slider('v3'), { target: { value: '30' } })
    fireEvent.click(screen.getByRole('button', { name: 'Apply' }))
    await screen.findByText(/^Changed by bob 2 minutes ago — review and retry\./)
    expect(calls.filter((c) => c.method === 'PUT')).toHaveLength(1)
  })

  it('rolls the VirtualService back to its previous revision', async () => {
    answer = (c) => {
      if (c.url.includes('/history')) return json(200, { revisions: [{ revision: 8, at: '', actor: 'alice', changes: [] }, { revision: 5, at: '', actor: 'alice', changes: [] }] })
      if (c.method === 'POST') return json(200, { results: [], dryRun: false, revision: 9 })
      return json(200, { revision: 9, proxies: [proxy('a', 9)] })
    }
    show('operator')
    fireEvent.click(screen.getByRole('button', { name: 'Roll back' }))
    await screen.findByText(/^Rollback: revision 9 applied to 1\/1 sidecars/)
    const post = calls.find((c) => c.method === 'POST')!
    expect(post.url).toBe('/api/v1/namespaces/default/virtualservices/reviews/rollback')
    expect(JSON.parse(post.body!)).toEqual({ revision: 5 })
  })
})
