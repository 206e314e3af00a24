import { QueryClient, QueryClientProvider } from '@tanstack/react-query'
import { lazy } from 'react'
import { BrowserRouter, Navigate, Route, Routes } from 'react-router'
import { ApiError } from '../api/client'
import { LoginPage } from '../auth/LoginPage'
import { RequireSession } from '../auth/RequireSession'
import { SessionProvider } from '../auth/session'
import { ConfigListPage } from '../features/config/ConfigListPage'
import { ResourcePage } from '../features/config/ResourcePage'
import { OverviewPage } from '../features/overview/OverviewPage'
import { AccessPage } from '../features/access/AccessPage'
import { AuditPage } from '../features/audit/AuditPage'
import { ProxiesPage } from '../features/proxies/ProxiesPage'
import { ProxyConfigPage } from '../features/proxies/ProxyConfigPage'
import { RevisionsPage } from '../features/revisions/RevisionsPage'
import { Layout } from './Layout'
import { NotFoundPage } from './NotFoundPage'

// The editor brings CodeMirror, the console's largest dependency: it loads when first opened.
const EditorPage = lazy(() => import('../features/config/editor/EditorPage'))
// The graph brings Cytoscape, the service page uPlot: each loads when first opened.
const GraphPage = lazy(() => import('../features/graph/GraphPage'))
const ServicePage = lazy(() => import('../features/service/ServicePage'))
// The experiments page writes YAML, with the library the editor uses.
const ExperimentsPage = lazy(() => import('../features/experiments/ExperimentsPage'))

/** newQueryClient sets how the console reads server state. */
export function newQueryClient(): QueryClient {
  return new QueryClient({
    defaultOptions: {
      queries: {
        // A client error (401, 403, 404) will not go away by asking again.
        retry: (count, err) => !(err instanceof ApiError && err.status < 500) && count < 2,
        staleTime: 2_000,
      },
    },
  })
}

export function App({ queryClient = newQueryClient() }: { queryClient?: QueryClient }) {
  return (
    <QueryClientProvider client={queryClient}>
      <BrowserRouter>
        <SessionProvider>
          <Routes>
            <Route path="/login" element={<LoginPage />} />
            <Route
              element={
                <RequireSession>
                  <Layout />
                </RequireSession>
              }
            >
              <Route index element={<OverviewPage />} />
              <Route path="config" element={<Navigate to="/config/virtualservices" replace />} />
              <Route path="config/new" element={<EditorPage />} />
              <Route path="config/:kind" element={<ConfigListPage />} />
              <Route path="config/:kind/:namespace/:name" element={<ResourcePage tab="yaml" />} />
              <Route path="config/:kind/:namespace/:name/history" element={<ResourcePage tab="history" />} />
              <Route path="config/:kind/:namespace/:name/edit" element={<EditorPage />} />
              <Route path="revisions" element={<RevisionsPage />} />
              <Route path="proxies" element={<ProxiesPage />} />
              <Route path="proxies/:node" element={<ProxyConfigPage />} />
              <Route path="graph" element={<GraphPage />} />
              <Route path="services/:namespace/:name" element={<ServicePage />} />
              <Route path="experiments" element={<ExperimentsPage />} />
              <Route path="audit" element={<AuditPage />} />
              <Route path="access" element={<AccessPage />} />
              <Route path="*" element={<NotFoundPage />} />
            </Route>
          </Routes>
        </SessionProvider>
      </BrowserRouter>
    </QueryClientProvider>
  )
}
