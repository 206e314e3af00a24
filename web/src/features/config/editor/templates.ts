// What a new resource starts from in the editor: a small, valid example of its kind.

import { kindByPlural } from '../../../api/kinds'

const examples: Record<string, (ns: string) => string> = {
  VirtualService: (ns) => `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  namespace: ${ns}
spec:
  hosts:
  - reviews
  http:
  - route:
    - destination:
        host: reviews
`,
  DestinationRule: (ns) => `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata:
  name: reviews
  namespace: ${ns}
spec:
  host: reviews
  subsets:
  - name: v1
    labels:
      version: v1
`,
  Gateway: (ns) => `apiVersion: networking.istio.io/v1
kind: Gateway
metadata:
  name: ingress
  namespace: ${ns}
spec:
  selector:
    istio: ingressgateway
  servers:
  - port:
      number: 8080
      name: http
      protocol: HTTP
    hosts:
    - "*"
`,
  ServiceEntry: (ns) => `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata:
  name: external-api
  namespace: ${ns}
spec:
  hosts:
  - api.example.com
  ports:
  - number: 443
    name: https
    protocol: TLS
  resolution: DNS
  location: MESH_EXTERNAL
`,
}

/** template returns the YAML a new resource of the kind (a REST plural) starts from. */
export function template(plural: string | null, namespace: string | null): string {
  const ns = namespace || 'default'
  const info = kindByPlural(plural ?? 'virtualservices')
  if (!info) return examples.VirtualService!(ns)
  const example = examples[info.kind]
  if (example) return example(ns)
  return `apiVersion: ${info.apiVersion}
kind: ${info.kind}
metadata:
  name: my-${info.kind.toLowerCase()}
  namespace: ${ns}
spec: {}
`
}
