// @vitest-environment jsdom
import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { cleanup, fireEvent, render, screen, within } from '@testing-library/react'
import { MemoryRouter } from 'react-router'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { parse } from 'yaml'
import type { ExperimentList } from '../../api/types'
import { SessionProvider, useSession } from '../../auth/session'
import ExperimentsPage from './ExperimentsPage'

let role = 'admin'
let requests: { method: string; url: string; body?: string }[] = []
const list: ExperimentList = {
  items: [
    { namespace: 'default', name: 'ratings-slow', host: 'ratings.default.svc.cluster.local', duration: '10m', state: 'running', end: new Date(Date.now() + 185_000).toISOString(), resourceVersion: '4', spec: {} },
  ],
  history: [
    { id: 1, namespace: 'default', name: 'old', host: 'reviews.default.svc.cluster.local', start: '2026-01-01T00:00:00Z', end: '2026-01-01T00:10:00Z', revision: 2, state: 'stopped_early', reason: 'error rate 9 % over 5 %', updatedAt: '2026-01-01T00:03:00Z' },
  ],
}

beforeEach(() => {
  requests = []
  vi.stubGlobal('fetch', async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input)
    const method = init?.method ?? 'GET'
    requests.push({ method, url, body: init?.body as string | undefined })
    const ok = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
    if (url.endsWith('/whoami')) return ok(200, { username: 'alice', role, authMethod: 'session', csrfToken: 'c' })
    if (url.endsWith('/experiments')) return ok(200, list)
    if (url.endsWith('/stop')) return ok(200, { run: {} })
    if (url.startsWith('/api/v1/apply')) return ok(200, { results: [], dryRun: false, revision: 5 })
    return ok(200, {})
  })
})
afterEach(() => {
  cleanup()
  vi.unstubAllGlobals()
  role = 'admin'
})

function Gate() {
  const { state } = useSession()
  return state.status === 'signedIn' ? <ExperimentsPage /> : <p>signing in</p>
}

function show() {
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <MemoryRouter>
        <SessionProvider>
          <Gate />
        </SessionProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  )
}

describe('ExperimentsPage', () => {
  it('lists running experiments with a countdown and a Stop button, and past ones with why they ended', async () => {
    show()
    const running = await screen.findByRole('table', { name: 'Running and scheduled experiments' })
    expect(within(running).getByRole('timer', { name: 'Time left for ratings-slow' }).textContent).toMatch(/^3:0[45]$/)
    fireEvent.click(within(running).getByRole('button', { name: 'Stop ratings-slow' }))
    await vi.waitFor(() => expect(requests.some((r) => r.method === 'POST' && r.url === '/api/v1/namespaces/default/experiments/ratings-slow/stop')).toBe(true))
    const past = screen.getByRole('table', { name: /Past experiment runs/ })
    expect(within(past).getByText('Stopped by its guard')).toBeTruthy()
    expect(within(past).getByText(/error rate 9 % over 5 %/)).toBeTruthy()
  })

  it('checks the form before sending, then applies a FaultExperiment', async () => {
    show()
    const start = await screen.findByRole('button', { name: 'Start experiment' })
    fireEvent.click(start)
    expect(screen.getByText(/Use lower-case letters, digits and dashes, such as ratings-slow/)).toBeTruthy()
    expect(requests.some((r) => r.url.startsWith('/api/v1/apply'))).toBe(false)

    fireEvent.change(screen.getByLabelText('Experiment name'), { target: { value: 'ratings-abort' } })
    fireEvent.change(screen.getByLabelText('Target service'), { target: { value: 'ratings' } })
    fireEvent.click(screen.getByRole('checkbox', { name: 'Delay' }))
    fireEvent.click(screen.getByRole('checkbox', { name: 'Abort' }))
    fireEvent.change(screen.getByLabelText('Aborted requests (%)'), { target: { value: '50' } })
    fireEvent.click(start)
    await screen.findByText(/Experiment default\/ratings-abort applied/)
    const apply = requests.find((r) => r.url.startsWith('/api/v1/apply'))!
    expect(parse(apply.body!)).toMatchObject({ kind: 'FaultExperiment', metadata: { name: 'ratings-abort' }, spec: { host: 'ratings', abort: { httpStatus: 503, percentage: 50 }, duration: '5m' } })
  })

  it('tells a viewer why there is no form, and disables Stop', async () => {
    role = 'viewer'
    show()
    await screen.findByText('Your role, viewer, cannot create experiments: an admin can.')
    const running = await screen.findByRole('table', { name: 'Running and scheduled experiments' })
    expect((within(running).getByRole('button', { name: 'Stop ratings-slow' }) as HTMLButtonElement).disabled).toBe(true)
  })
})
