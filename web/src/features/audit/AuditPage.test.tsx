// @vitest-environment jsdom
import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { cleanup, fireEvent, render, screen, within } from '@testing-library/react'
import { MemoryRouter } from 'react-router'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { SessionProvider, useSession } from '../../auth/session'
import { AuditPage } from './AuditPage'

let role = 'admin'
let requests: string[] = []
const entry = (id: number, actor: string) => ({ id, at: '2026-01-01T00:00:00Z', actor, action: 'resource.put', target: 'VirtualService/default/reviews', outcome: 'success', clientAddr: '127.0.0.1' })

beforeEach(() => {
  requests = []
  vi.stubGlobal('fetch', async (input: RequestInfo | URL) => {
    const url = String(input)
    requests.push(url)
    const ok = (body: unknown) => new Response(JSON.stringify(body), { status: 200, headers: { 'Content-Type': 'application/json' } })
    if (url.endsWith('/whoami')) return ok({ username: 'alice', role, authMethod: 'session', csrfToken: 'c' })
    const q = new URL(url, 'http://x').searchParams
    if (q.get('before')) return ok({ entries: [entry(1, 'bob')] })
    if (q.get('actor')) return ok({ entries: [entry(5, q.get('actor')!)] })
    return ok({ entries: [entry(3, 'alice'), entry(2, 'bob')], next: '2' })
  })
})
afterEach(() => {
  cleanup()
  vi.unstubAllGlobals()
  role = 'admin'
})

function Gate() {
  const { state } = useSession()
  return state.status === 'signedIn' ? <AuditPage /> : <p>signing in</p>
}

const show = () =>
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <MemoryRouter>
        <SessionProvider>
          <Gate />
        </SessionProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  )

describe('AuditPage', () => {
  it('lists entries newest first, pages on with the cursor, and filters on the server', async () => {
    show()
    const table = await screen.findByRole('table', { name: /Audit log entries/ })
    expect(within(table).getAllByRole('rowheader').map((h) => h.textContent)).toEqual(['alice', 'bob'])
    fireEvent.click(screen.getByRole('button', { name: 'Load older entries' }))
    await vi.waitFor(() => expect(within(table).getAllByRole('rowheader')).toHaveLength(3))
    expect(requests.some((r) => r.includes('before=2'))).toBe(true)

    fireEvent.change(screen.getByLabelText('User'), { target: { value: 'carol' } })
    fireEvent.click(screen.getByRole('button', { name: 'Filter' }))
    await vi.waitFor(() => expect(within(screen.getByRole('table', { name: /Audit log entries/ })).getAllByRole('rowheader').map((h) => h.textContent)).toEqual(['carol']))
    expect(requests.some((r) => r.includes('actor=carol') && r.includes('limit=50'))).toBe(true)
  })

  it('tells a viewer the log is not for their role, without asking the server', async () => {
    role = 'viewer'
    show()
    await screen.findByText('Your role, viewer, cannot read the audit log. An operator or an admin can.')
    expect(requests.some((r) => r.includes('/audit'))).toBe(false)
  })
})
