import { describe, expect, it } from 'vitest'
import { indexYaml, parsePath } from './yamlPaths'

const twoDocs = `# reviews traffic
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews, reviews.default.svc]
  http:
  - match:
    - headers:
        end-user:
          exact: jason
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination:
        host: reviews
        subset: v1
      weight: 90
    - destination:
        host: reviews
        subset: v3
      weigth: 10
---
# only a comment: the server skips this document
---
~
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
spec:
  host: reviews
  trafficPolicy:
    connectionPool:
      tcp: {max_connections: 100}
`

describe('parsePath', () => {
  const cases: { path: string; want: ReturnType<typeof parsePath> }[] = [
    { path: '', want: { document: 0, segments: [] } },
    { path: 'documents[3]', want: { document: 3, segments: [] } },
    {
      path: 'documents[2].spec.http[0].route[1].weight',
      want: {
        document: 2,
        segments: [{ field: 'spec' }, { field: 'http' }, { bracket: '0' }, { field: 'route' }, { bracket: '1' }, { field: 'weight' }],
      },
    },
    {
      path: 'spec.http[0].match[0].headers[end-user].exact',
      want: {
        document: 0,
        segments: [
          { field: 'spec' }, { field: 'http' }, { bracket: '0' }, { field: 'match' }, { bracket: '0' },
          { field: 'headers' }, { bracket: 'end-user' }, { field: 'exact' },
        ],
      },
    },
    { path: 'metadata.labels[app.kubernetes.io/name]', want: { document: 0, segments: [{ field: 'metadata' }, { field: 'labels' }, { bracket: 'app.kubernetes.io/name' }] } },
  ]
  for (const tc of cases) {
    it(tc.path || '(empty)', () => expect(parsePath(tc.path)).toEqual(tc.want))
  }
})

describe('locate', () => {
  const idx = indexYaml(twoDocs)
  const cases: { name: string; path: string; message?: string; line: number; text?: string; exact?: boolean }[] = [
    { name: 'an unknown field, as apply reports it', path: 'documents[0].spec.http[1].route[1].weigth', line: 23, text: 'weigth' },
    { name: 'a field of the first list item', path: 'documents[0].spec.http[1].route[0].weight', line: 19, text: 'weight' },
    { name: 'a list item', path: 'documents[0].spec.http[1].route[1]', line: 20 },
    { name: 'an item of a flow list', path: 'documents[0].spec.hosts[1]', line: 7, text: 'reviews.default.svc' },
    { name: 'a map key in brackets', path: 'documents[0].spec.http[0].match[0].headers[end-user].exact', line: 12, text: 'exact' },
    { name: 'a field in a flow map', path: 'documents[0].spec.http[0].route[0].destination.subset', line: 14, text: 'subset' },
    { name: 'a path without a document index (one-document PUT)', path: 'metadata.name', line: 5, text: 'name' },
    { name: 'empty and comment-only documents are not counted', path: 'documents[1].spec.host', line: 34, text: 'host' },
    { name: 'protobuf JSON names match snake case', path: 'documents[1].spec.trafficPolicy.connectionPool.tcp.maxConnections', line: 37, text: 'max_connections' },
    { name: 'a missing field points at its parent', path: 'documents[1].spec.subsets', line: 33, text: 'spec', exact: false },
    { name: 'an index past the end points at the list', path: 'documents[0].spec.http[5].route', line: 8, text: 'http', exact: false },
    { name: 'a whole document', path: 'documents[1]', line: 29 },
    { name: 'the input as a whole', path: '', line: 2 },
    { name: 'a syntax error names its line', path: 'documents[1]', message: 'invalid YAML: yaml: line 33: mapping values are not allowed in this context', line: 33 },
  ]
  for (const tc of cases) {
    it(tc.name, () => {
      const loc = idx.locate(tc.path, tc.message)
      expect(loc.line).toBe(tc.line)
      expect(loc.exact).toBe(tc.exact ?? true)
      if (tc.text) expect(twoDocs.slice(loc.from, loc.to)).toBe(tc.text)
    })
  }

  it('finds the items of a kind: List', () => {
    const list = `apiVersion: v1
kind: List
items:
- apiVersion: networking.istio.io/v1
  kind: Gateway
  metadata: {name: a}
  spec: {}
- apiVersion: networking.istio.io/v1
  kind: Gateway
  metadata: {name: b}
  spec:
    servers:
    - port: {number: 80, protocl: HTTP}
`
    const loc = indexYaml(list).locate('documents[0].items[1].spec.servers[0].port.protocl')
    expect(loc).toMatchObject({ line: 13, exact: true })
    expect(list.slice(loc.from, loc.to)).toBe('protocl')
  })

  it('copes with text that does not parse', () => {
    const broken = 'kind: VirtualService\nspec:\n  hosts: [a\n  http: :\n'
    const loc = indexYaml(broken).locate('documents[4].spec')
    expect(loc.line).toBe(1)
    expect(indexYaml('').locate('documents[0].spec').line).toBe(1)
  })
})
