import { describe, expect, it } from 'vitest'
import { describeSpec } from './describe'

describe('describeSpec', () => {
  const cases: [string, unknown, string][] = [
    ['VirtualService', { hosts: ['reviews'], http: [] }, 'reviews'],
    ['VirtualService', { hosts: ['bookinfo.example'], gateways: ['bookinfo-gateway'] }, 'bookinfo.example via bookinfo-gateway'],
    ['DestinationRule', { host: 'reviews', subsets: [{ name: 'v1' }, { name: 'v2' }] }, 'reviews (subsets v1, v2)'],
    ['DestinationRule', { host: 'ratings' }, 'ratings'],
    ['Gateway', { selector: { istio: 'ingressgateway' }, servers: [{ hosts: ['*'] }] }, 'istio=ingressgateway · *'],
    ['AuthorizationPolicy', { selector: { matchLabels: { app: 'ratings' } } }, 'app=ratings'],
    ['PeerAuthentication', null, ''],
  ]
  for (const [kind, spec, want] of cases) {
    it(`${kind} ${JSON.stringify(spec)}`, () => expect(describeSpec(kind, spec)).toBe(want))
  }
})
