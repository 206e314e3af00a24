// @vitest-environment jsdom
import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { cleanup, fireEvent, render, screen, within } from '@testing-library/react'
import { MemoryRouter } from 'react-router'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { SessionProvider, useSession } from '../../auth/session'
import { AccessPage } from './AccessPage'

// The server, as far as this page goes: whoami, tokens and users.
let role = 'viewer'
let requests: { method: string; url: string; body?: string }[] = []
const tokens = [
  { id: 't1', name: 'ci', username: 'alice', role: 'viewer', createdAt: '2026-01-01T00:00:00Z', expiresAt: '2099-01-01T00:00:00Z', lastUsedAt: null, revoked: false },
]
beforeEach(() => {
  requests = []
  vi.stubGlobal('fetch', async (input: RequestInfo | URL, init?: RequestInit) => {
    const url = String(input)
    const method = init?.method ?? 'GET'
    requests.push({ method, url, body: init?.body as string | undefined })
    const ok = (status: number, body: unknown) => new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
    if (url.endsWith('/whoami')) return ok(200, { username: 'alice', role, authMethod: 'session', csrfToken: 'c' })
    if (url.endsWith('/tokens') && method === 'GET') return ok(200, { tokens })
    if (url.endsWith('/tokens') && method === 'POST') return ok(201, { id: 't2', token: 'slc_secret', name: 'deploy', role: 'viewer', expiresAt: '2099-01-01T00:00:00Z' })
    if (url.endsWith('/users/') || url.endsWith('/users')) return ok(200, { users: [{ username: 'alice', role: 'admin', createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z' }, { username: 'bob', role: 'viewer', createdAt: '2026-01-01T00:00:00Z', updatedAt: '2026-01-01T00:00:00Z' }] })
    return ok(404, { status: 404, detail: 'no such thing' })
  })
})
afterEach(() => {
  cleanup()
  vi.unstubAllGlobals()
})

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

// The page needs a signed-in user, as RequireSession gives it in the console.
function Gate() {
  const { state } = useSession()
  return state.status === 'signedIn' ? <AccessPage /> : <p>signing in</p>
}

describe('AccessPage', () => {
  it('shows a new token once, with a copy button, and forgets it when done', async () => {
    show()
    await screen.findByRole('table', { name: 'API tokens' })
    fireEvent.change(screen.getByLabelText('Token name'), { target: { value: 'deploy' } })
    fireEvent.click(screen.getByRole('button', { name: 'Create token' }))
    expect((await screen.findByLabelText('New token')).textContent).toBe('slc_secret')
    expect(screen.getByRole('button', { name: 'Copy token' })).toBeTruthy()
    const post = requests.find((r) => r.method === 'POST')!
    expect(JSON.parse(post.body!)).toEqual({ name: 'deploy', expiresIn: '720h' })
    fireEvent.click(screen.getByRole('button', { name: 'Done' }))
    expect(screen.queryByLabelText('New token')).toBeNull()
  })

  it('lists the tokens with a revoke button, and hides users from a viewer', async () => {
    show()
    const table = await screen.findByRole('table', { name: 'API tokens' })
    expect(within(table).getByRole('button', { name: 'Revoke token ci' })).toBeTruthy()
    expect(screen.queryByRole('heading', { name: 'Users' })).toBeNull()
    expect(requests.some((r) => r.url.includes('/users'))).toBe(false)
  })

  it('lets an admin manage users, but not change or delete themselves', async () => {
    role = 'admin'
    show()
    const users = await screen.findByRole('table', { name: 'Users' })
    expect((within(users).getByLabelText('Role of alice') as HTMLSelectElement).disabled).toBe(true)
    expect(within(users).queryByRole('button', { name: 'Delete user alice' })).toBeNull()
    expect(within(users).getByRole('button', { name: 'Delete user bob' })).toBeTruthy()
    role = 'viewer'
  })
})
