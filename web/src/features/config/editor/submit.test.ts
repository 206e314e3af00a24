import { describe, expect, it } from 'vitest'
import { planSubmit, type EditTarget } from './submit'

const target: EditTarget = { plural: 'virtualservices', kind: 'VirtualService', namespace: 'shop', name: 'reviews', etag: '"12"' }

const doc = (kind: string, name: string, ns?: string) =>
  `apiVersion: networking.istio.io/v1\nkind: ${kind}\nmetadata:\n  name: ${name}\n${ns ? `  namespace: ${ns}\n` : ''}spec: {}\n`

describe('planSubmit', () => {
  const cases: { name: string; text: string; target: EditTarget | null; via: 'apply' | 'put' }[] = [
    { name: 'a new resource is applied', text: doc('VirtualService', 'reviews', 'shop'), target: null, via: 'apply' },
    { name: 'the edited resource is PUT with its ETag', text: doc('VirtualService', 'reviews', 'shop'), target, via: 'put' },
    { name: 'without a namespace it stays where it is', text: doc('VirtualService', 'reviews'), target, via: 'put' },
    { name: 'comments and empty documents do not count', text: '# hi\n---\n' + doc('VirtualService', 'reviews', 'shop') + '---\n', target, via: 'put' },
    { name: 'a renamed resource is a new one', text: doc('VirtualService', 'reviews-2', 'shop'), target, via: 'apply' },
    { name: 'a moved resource is a new one', text: doc('VirtualService', 'reviews', 'prod'), target, via: 'apply' },
    { name: 'another kind is applied', text: doc('DestinationRule', 'reviews', 'shop'), target, via: 'apply' },
    { name: 'several documents are applied', text: doc('VirtualService', 'reviews', 'shop') + '---\n' + doc('DestinationRule', 'reviews', 'shop'), target, via: 'apply' },
    { name: 'YAML that does not parse goes to apply, which says what is wrong', text: 'kind: [VirtualService\n', target, via: 'apply' },
  ]
  for (const tc of cases) {
    it(tc.name, () => expect(planSubmit(tc.text, tc.target).via).toBe(tc.via))
  }
})
