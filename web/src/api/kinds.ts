// The resource kinds sluice-server stores, in the order the console lists them (the server's
// own order: Istio's kinds first, then Sluice's).

export interface KindInfo {
  /** The kind as written in YAML, such as VirtualService. */
  kind: string
  /** The lower-case plural the REST API addresses it by. */
  plural: string
  /** The preferred apiVersion, for new resources. */
  apiVersion: string
  /** How the console names a list of them. */
  label: string
}

export const kinds: readonly KindInfo[] = [
  { kind: 'VirtualService', plural: 'virtualservices', apiVersion: 'networking.istio.io/v1', label: 'Virtual services' },
  { kind: 'DestinationRule', plural: 'destinationrules', apiVersion: 'networking.istio.io/v1', label: 'Destination rules' },
  { kind: 'Gateway', plural: 'gateways', apiVersion: 'networking.istio.io/v1', label: 'Gateways' },
  { kind: 'ServiceEntry', plural: 'serviceentries', apiVersion: 'networking.istio.io/v1', label: 'Service entries' },
  { kind: 'PeerAuthentication', plural: 'peerauthentications', apiVersion: 'security.istio.io/v1', label: 'Peer authentications' },
  { kind: 'AuthorizationPolicy', plural: 'authorizationpolicies', apiVersion: 'security.istio.io/v1', label: 'Authorization policies' },
  { kind: 'FaultExperiment', plural: 'faultexperiments', apiVersion: 'sluice.dev/v1alpha1', label: 'Fault experiments' },
  { kind: 'RateLimit', plural: 'ratelimits', apiVersion: 'sluice.dev/v1alpha1', label: 'Rate limits' },
]

/** kindByPlural finds a kind by its plural, or returns undefined. */
export function kindByPlural(plural: string | undefined): KindInfo | undefined {
  return kinds.find((k) => k.plural === plural)
}

/** kindByName finds a kind by its singular name, or returns undefined. */
export function kindByName(kind: string | undefined): KindInfo | undefined {
  return kinds.find((k) => k.kind === kind)
}

/** pluralOf returns the REST plural of a kind, falling back to its lower-case name plus "s". */
export function pluralOf(kind: string): string {
  return kindByName(kind)?.plural ?? kind.toLowerCase() + 's'
}
