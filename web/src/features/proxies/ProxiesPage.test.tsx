// @vitest-environment jsdom
import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { cleanup, render, screen, within } from '@testing-library/react'
import { MemoryRouter } from 'react-router'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import type { Proxy, ProxyList } from '../../api/types'
import { ProxiesPage } from './ProxiesPage'

const proxy = (over: Partial<Proxy>): Proxy => ({
  nodeId: over.workload ?? 'n',
  namespace: 'default',
  service: 'reviews',
  workload: 'reviews-v1',
  mode: 'sidecar',
  address: '127.0.0.2',
  connected: true,
  syncedRevision: 7,
  inSync: true,
  acked: { LDS: '7', RDS: '7', CDS: '7', EDS: '7' },
  ...over,
})

const list: ProxyList = {
  revision: 7,
  proxies: [
    proxy({ service: 'reviews', workload: 'reviews-v1', identity: 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews',
      mtls: { '9090': 'PERMISSIVE', '9080': 'STRICT' },
      certificate: { serial: 'a1', notAfter: new Date(Date.now() + 23 * 3600_000 + 60_000).toISOString() } }),
    proxy({ service: 'ratings', workload: 'ratings-v1', inSync: false, syncedRevision: 5, nacks: { RDS: 'route refers to unknown cluster' },
      health: { ready: false, reason: 'TCP connect to 127.0.0.2:19080: connection refused' },
      identity: 'spiffe://cluster.local/ns/default/sa/bookinfo-ratings', mtls: { '9080': 'DISABLE' },
      certificate: { serial: 'b2', notAfter: new Date(Date.now() + 30 * 60_000 + 30_000).toISOString() } }),
    proxy({ service: 'gateway', workload: 'ingress', mode: 'gateway', identity: 'spiffe://cluster.local/ns/default/sa/ingress' }),
  ],
}

// The page reads GET /api/v1/proxies through the console's API; this fetch answers it.
const requests: string[] = []
beforeEach(() => {
  requests.length = 0
  vi.stubGlobal('fetch', async (input: RequestInfo | URL) => {
    requests.push(String(input))
    return new Response(JSON.stringify(list), { status: 200, headers: { 'Content-Type': 'application/json' } })
  })
})
afterEach(() => {
  cleanup()
  vi.unstubAllGlobals()
})

describe('ProxiesPage', () => {
  it('lists each proxy with its sync state and NACKs', async () => {
    render(
      <QueryClientProvider client={new QueryClient()}>
        <MemoryRouter>
          <ProxiesPage />
        </MemoryRouter>
      </QueryClientProvider>,
    )
    const table = await screen.findByRole('table', { name: 'Proxies and their configuration state' })
    expect(requests).toContain('/api/v1/proxies')
    const ratings = within(table).getByRole('rowheader', { name: 'ratings' }).closest('tr')!
    expect(within(ratings).getByText('Behind · r5 of r7')).toBeTruthy()
    expect(within(ratings).getByText(/route refers to unknown cluster/).closest('li')?.className).toContain('error-text')
    const reviews = within(table).getByRole('rowheader', { name: 'reviews' }).closest('tr')!
    expect(within(reviews).getByText('In sync · r7')).toBeTruthy()
    expect(within(reviews).getByText('none')).toBeTruthy()
    // The application's health, with the probe's reason when it fails.
    expect(within(reviews).getByText('Ready')).toBeTruthy()
    expect(within(ratings).getByText('Not ready')).toBeTruthy()
    expect(within(ratings).getByText(/connection refused/)).toBeTruthy()
    // Each workload links to the configuration its proxy applied.
    expect(within(ratings).getByRole('link', { name: 'ratings-v1 configuration' }).getAttribute('href')).toBe('/proxies/ratings-v1')
    // Sorted by namespace, then service.
    expect(within(table).getAllByRole('rowheader').map((h) => h.textContent)).toEqual(['gateway', 'ratings', 'reviews'])
  })

  it('shows identity, mTLS mode per port and certificate expiry, red under an hour', async () => {
    render(
      <QueryClientProvider client={new QueryClient()}>
        <MemoryRouter>
          <ProxiesPage />
        </MemoryRouter>
      </QueryClientProvider>,
    )
    const table = await screen.findByRole('table', { name: 'Proxies and their configuration state' })
    const reviews = within(table).getByRole('rowheader', { name: 'reviews' }).closest('tr')!
    expect(within(reviews).getByText('spiffe://cluster.local/ns/default/sa/bookinfo-reviews')).toBeTruthy()
    const modes = within(reviews).getByRole('list', { name: 'mTLS modes of reviews-v1' })
    expect(within(modes).getAllByRole('listitem').map((li) => li.textContent)).toEqual(['9080 STRICT', '9090 PERMISSIVE'])
    const far = within(reviews).getByText('expires in 23 hours')
    expect(far.className).not.toContain('error-text')
    expect(far.getAttribute('title')).toContain('Serial a1')

    const ratings = within(table).getByRole('rowheader', { name: 'ratings' }).closest('tr')!
    expect(within(ratings).getByText('DISABLE')).toBeTruthy()
    expect(within(ratings).getByText('expires in 30 minutes').className).toContain('error-text')

    // A gateway has an identity but no inbound mTLS mode, and no certificate was issued yet.
    const gateway = within(table).getByRole('rowheader', { name: 'gateway' }).closest('tr')!
    expect(within(gateway).getByText('spiffe://cluster.local/ns/default/sa/ingress')).toBeTruthy()
    expect(within(gateway).queryByRole('list', { name: /mTLS modes/ })).toBeNull()
  })
})
