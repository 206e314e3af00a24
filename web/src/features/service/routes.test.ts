import { describe, expect, it } from 'vitest'
import type { Resource } from '../../api/types'
import { appliesTo, describeRoute, resolveHost } from './routes'

const vs = (namespace: string, hosts: string[], http: unknown[] = []): Resource => ({
  apiVersion: 'networking.istio.io/v1',
  kind: 'VirtualService',
  metadata: { name: 'r', namespace },
  spec: { hosts, http },
})

describe('resolveHost', () => {
  it('resolves short names in the namespace of the resource', () => {
    expect(resolveHost('reviews', 'default')).toBe('reviews.default.svc.cluster.local')
    expect(resolveHost('reviews.prod', 'default')).toBe('reviews.prod.svc.cluster.local')
    expect(resolveHost('reviews.prod.svc.cluster.local', 'default')).toBe('reviews.prod.svc.cluster.local')
    expect(resolveHost('example.com.', 'default')).toBe('example.com.')
  })
})

describe('appliesTo', () => {
  const host = 'reviews.default.svc.cluster.local'
  it('matches VirtualServices by their hosts and DestinationRules by their host', () => {
    expect(appliesTo(vs('default', ['reviews']), host)).toBe(true)
    expect(appliesTo(vs('other', ['reviews']), host)).toBe(false)
    expect(appliesTo(vs('other', ['reviews.default']), host)).toBe(true)
    expect(appliesTo({ ...vs('default', []), kind: 'DestinationRule', spec: { host: 'reviews' } }, host)).toBe(true)
  })
  it('describes the rules', () => {
    expect(describeRoute(vs('default', ['reviews'], [{ match: [{ headers: {} }] }, { route: [] }]))).toBe('2 HTTP rules, 1 with a match')
  })
})
