// @vitest-environment jsdom
import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { act, cleanup, render, screen } from '@testing-library/react'
import { MemoryRouter, Route, Routes, useLocation } from 'react-router'
import { afterEach, describe, expect, it } from 'vitest'
import { createApi } from '../api/api'
import { ApiClient } from '../api/client'
import { RequireSession } from './RequireSession'
import { SessionProvider, useSession } from './session'

afterEach(cleanup)

// answers is a fetch that answers each request with the next queued status and body.
function answers(...queue: [number, unknown][]) {
  const seen: string[] = []
  const fetch: typeof globalThis.fetch = async (input) => {
    seen.push(String(input))
    const next = queue.shift()
    if (!next) throw new TypeError('Failed to fetch')
    const [status, body] = next
    return new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } })
  }
  return { fetch, seen }
}

function Where() {
  const l = useLocation()
  return <p data-testid="where">{l.pathname + l.search}</p>
}

function Proxies() {
  const { state } = useSession()
  return <h1>Proxies for {state.status === 'signedIn' ? state.user.username : '?'}</h1>
}

function renderAt(path: string, fetch: typeof globalThis.fetch) {
  const api = createApi(new ApiClient({ fetch }))
  render(
    <QueryClientProvider client={new QueryClient()}>
      <MemoryRouter initialEntries={[path]}>
        <SessionProvider api={api}>
          <Routes>
            <Route path="/login" element={<h1>Sign in</h1>} />
            <Route
              path="/proxies"
              element={
                <RequireSession>
                  <Proxies />
                </RequireSession>
              }
            />
          </Routes>
          <Where />
        </SessionProvider>
      </MemoryRouter>
    </QueryClientProvider>,
  )
  return api
}

const admin = { username: 'admin', role: 'admin', authMethod: 'session', csrfToken: 't' }

describe('session', () => {
  it('a deep link without a session goes to the login page, remembering the link', async () => {
    renderAt('/proxies?ns=prod', answers([401, { status: 401, detail: 'not signed in' }]).fetch)
    await screen.findByRole('heading', { name: 'Sign in' })
    expect(screen.getByTestId('where').textContent).toBe('/login?next=%2Fproxies%3Fns%3Dprod')
  })

  it('a reload restores the session from whoami', async () => {
    const { fetch, seen } = answers([200, admin])
    renderAt('/proxies', fetch)
    await screen.findByRole('heading', { name: 'Proxies for admin' })
    expect(seen).toEqual(['/api/v1/whoami'])
  })

  it('a 401 from any request ends the session and goes to the login page', async () => {
    const api = renderAt('/proxies', answers([200, admin], [401, { status: 401, detail: 'session expired' }]).fetch)
    await screen.findByRole('heading', { name: 'Proxies for admin' })
    await act(async () => {
      await api.proxies().catch(() => {})
    })
    await screen.findByRole('heading', { name: 'Sign in' })
    expect(screen.getByTestId('where').textContent).toBe('/login?next=%2Fproxies')
  })

  it('a server that does not answer is said so, not shown as a blank page', async () => {
    renderAt('/proxies', answers().fetch)
    const alert = await screen.findByRole('alert')
    expect(alert.textContent).toContain('Cannot reach sluice-server')
    expect(screen.getByRole('button', { name: 'Try again' })).toBeTruthy()
  })
})
