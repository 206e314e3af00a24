package config

import (
	"strings"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
)

// The kinds Sluice accepts. The Istio kinds keep Istio's names; the sluice.dev kinds are
// Sluice's own.
const (
	KindVirtualService      = "VirtualService"
	KindDestinationRule     = "DestinationRule"
	KindGateway             = "Gateway"
	KindServiceEntry        = "ServiceEntry"
	KindPeerAuthentication  = "PeerAuthentication"
	KindAuthorizationPolicy = "AuthorizationPolicy"
	KindFaultExperiment     = "FaultExperiment"
	KindRateLimit           = "RateLimit"
)

// kindInfo describes one accepted kind: its REST plural, the apiVersions it is served under
// (the preferred one first) and the Go type its spec decodes into.
type kindInfo struct {
	kind     string
	plural   string
	versions []string
	// newSpec returns a pointer to a zero spec: a proto.Message for the Istio kinds, a
	// pointer to one of this package's spec structs for the sluice.dev kinds.
	newSpec func() any
}

var (
	networkingVersions = []string{"networking.istio.io/v1", "networking.istio.io/v1beta1", "networking.istio.io/v1alpha3"}
	securityVersions   = []string{"security.istio.io/v1", "security.istio.io/v1beta1"}
	sluiceVersions     = []string{"sluice.dev/v1alpha1"}
)

// kinds is the order used in messages and by SupportedKinds.
var kinds = []kindInfo{
	{KindVirtualService, "virtualservices", networkingVersions, func() any { return new(networking.VirtualService) }},
	{KindDestinationRule, "destinationrules", networkingVersions, func() any { return new(networking.DestinationRule) }},
	{KindGateway, "gateways", networkingVersions, func() any { return new(networking.Gateway) }},
	{KindServiceEntry, "serviceentries", networkingVersions, func() any { return new(networking.ServiceEntry) }},
	{KindPeerAuthentication, "peerauthentications", securityVersions, func() any { return new(security.PeerAuthentication) }},
	{KindAuthorizationPolicy, "authorizationpolicies", securityVersions, func() any { return new(security.AuthorizationPolicy) }},
	{KindFaultExperiment, "faultexperiments", sluiceVersions, func() any { return new(FaultExperimentSpec) }},
	{KindRateLimit, "ratelimits", sluiceVersions, func() any { return new(RateLimitSpec) }},
}

func lookupKind(kind string) *kindInfo {
	for i := range kinds {
		if kinds[i].kind == kind {
			return &kinds[i]
		}
	}
	return nil
}

func (k *kindInfo) serves(apiVersion string) bool {
	for _, v := range k.versions {
		if v == apiVersion {
			return true
		}
	}
	return false
}

// SupportedKinds returns the kinds Sluice accepts, Istio's first.
func SupportedKinds() []string {
	out := make([]string, len(kinds))
	for i, k := range kinds {
		out[i] = k.kind
	}
	return out
}

// APIVersions returns the apiVersions a kind is accepted under, the preferred one first, or
// nil for a kind Sluice does not support.
func APIVersions(kind string) []string {
	k := lookupKind(kind)
	if k == nil {
		return nil
	}
	return append([]string(nil), k.versions...)
}

// KindPlural returns the lower-case plural that names kind in REST paths
// ("VirtualService" → "virtualservices"), or "" for a kind Sluice does not support.
func KindPlural(kind string) string {
	if k := lookupKind(kind); k != nil {
		return k.plural
	}
	return ""
}

// KindFromPlural is the inverse of KindPlural ("virtualservices" → "VirtualService"). It
// returns "" for a plural that names no supported kind.
func KindFromPlural(plural string) string {
	for _, k := range kinds {
		if k.plural == plural {
			return k.kind
		}
	}
	return ""
}

func supportedKindList() string {
	return strings.Join(SupportedKinds(), ", ")
}
