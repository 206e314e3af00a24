// One line about what a resource does, for the lists: its hosts, subsets, selector.

type Obj = Record<string, unknown>

const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {})
const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [])
const labels = (v: unknown) =>
  Object.entries(obj(v))
    .map(([k, x]) => `${k}=${String(x)}`)
    .join(', ')

/** describeSpec sums up a resource's spec in a few words, or returns '' when it cannot. */
export function describeSpec(kind: string, spec: unknown): string {
  const s = obj(spec)
  switch (kind) {
    case 'VirtualService': {
      const hosts = strings(s.hosts).join(', ')
      const gws = strings(s.gateways)
      return gws.length ? `${hosts} via ${gws.join(', ')}` : hosts
    }
    case 'DestinationRule': {
      const subsets = (Array.isArray(s.subsets) ? s.subsets : []).map((x) => String(obj(x).name ?? '')).filter(Boolean)
      return subsets.length ? `${String(s.host ?? '')} (subsets ${subsets.join(', ')})` : String(s.host ?? '')
    }
    case 'Gateway': {
      const hosts = (Array.isArray(s.servers) ? s.servers : []).flatMap((x) => strings(obj(x).hosts))
      return [labels(s.selector), hosts.join(', ')].filter(Boolean).join(' · ')
    }
    case 'ServiceEntry':
      return strings(s.hosts).join(', ')
    case 'FaultExperiment':
      return String(s.host ?? '')
    default:
      return labels(obj(s.selector).matchLabels)
  }
}
