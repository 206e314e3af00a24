// @vitest-environment jsdom
import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { cleanup, render, screen, within } from '@testing-library/react'
import { MemoryRouter, Route, Routes } from 'react-router'
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { ProxyConfigPage } from './ProxyConfigPage'

const node = 'sidecar~127.0.0.6~productpage-v1.default'
const answers: Record<string, { status: number; body: unknown }> = {}
const requests: string[] = []
beforeEach(() => {
  requests.length = 0
  answers['/api/v1/proxies'] = {
    status: 200,
    body: { revision: 3, problems: [], proxies: [{ nodeId: node, namespace: 'default', service: 'productpage', workload: 'productpage-v1', mode: 'sidecar', address: '127.0.0.6', connected: true, syncedRevision: 3, inSync: true }] },
  }
  answers[`/api/v1/proxies/${encodeURIComponent(node)}/config_dump`] = {
    status: 200,
    body: {
      configs: [
        {
          '@type': 'type.googleapis.com/envoy.admin.v3.EndpointsConfigDump',
          dynamic_endpoint_configs: [
            {
              endpoint_config: {
                cluster_name: 'outbound|9080||reviews.default.svc.cluster.local',
                endpoints: [{ lb_endpoints: [
                  { endpoint: { address: { socket_address: { address: '127.0.0.7', port_value: 9080 } } }, health_status: 'UNHEALTHY' },
                  { endpoint: { address: { socket_address: { address: '127.0.0.8', port_value: 9080 } } }, health_status: 'HEALTHY' },
                ] }],
              },
            },
          ],
        },
      ],
    },
  }
  vi.stubGlobal('fetch', async (input: RequestInfo | URL) => {
    const url = String(input)
    requests.push(url)
    const a = answers[url] ?? { status: 404, body: { title: 'Not Found', status: 404, detail: 'no such thing' } }
    return new Response(JSON.stringify(a.body), { status: a.status, headers: { 'Content-Type': 'application/json' } })
  })
})
afterEach(() => {
  cleanup()
  vi.unstubAllGlobals()
})

function renderAt(path: string) {
  render(
    <QueryClientProvider client={new QueryClient({ defaultOptions: { queries: { retry: false } } })}>
      <MemoryRouter initialEntries={[path]}>
        <Routes>
          <Route path="/proxies/:node" element={<ProxyConfigPage />} />
        </Routes>
      </MemoryRouter>
    </QueryClientProvider>,
  )
}

describe('ProxyConfigPage', () => {
  it('shows the endpoints in effect with their health', async () => {
    renderAt(`/proxies/${encodeURIComponent(node)}`)
    const table = await screen.findByRole('table', { name: 'Endpoints in effect on this proxy' })
    const sick = within(table).getByText('127.0.0.7:9080').closest('tr')!
    expect(sick.className).toBe('row-bad')
    expect(within(sick).getByText('UNHEALTHY')).toBeTruthy()
    expect(await screen.findByRole('heading', { level: 1, name: 'productpage-v1' })).toBeTruthy()
    expect(screen.getByText('No listeners.')).toBeTruthy()
  })

  it('says why when the dump cannot be read', async () => {
    answers[`/api/v1/proxies/${encodeURIComponent(node)}/config_dump`] = {
      status: 502,
      body: { title: 'Bad Gateway', status: 502, detail: 'could not read the config dump of proxy x from its admin port' },
    }
    renderAt(`/proxies/${encodeURIComponent(node)}`)
    expect(await screen.findByText(/could not read the config dump/)).toBeTruthy()
  })
})
