package config

import (
	"net/netip"
	"strings"
)

// DefaultNamespace is the namespace of a resource whose metadata names none, as with kubectl.
const DefaultNamespace = "default"

// ClusterDomain is the DNS suffix of mesh services: a short host "reviews" in namespace
// "default" is "reviews.default.svc.cluster.local", as in Istio.
const ClusterDomain = "cluster.local"

// Resource is one parsed and schema-checked mesh resource.
type Resource struct {
	// APIVersion is as written in the document, e.g. "networking.istio.io/v1beta1"; every
	// served version of a kind shares one spec type.
	APIVersion string
	Kind       string
	// Namespace is never empty once parsed: ParseYAML sets DefaultNamespace when the
	// document names none.
	Namespace   string
	Name        string
	Labels      map[string]string
	Annotations map[string]string

	// Spec is the decoded spec, by kind:
	//   VirtualService      *v1alpha3.VirtualService   (istio.io/api/networking/v1alpha3)
	//   DestinationRule     *v1alpha3.DestinationRule
	//   Gateway             *v1alpha3.Gateway
	//   ServiceEntry        *v1alpha3.ServiceEntry
	//   PeerAuthentication  *v1beta1.PeerAuthentication (istio.io/api/security/v1beta1)
	//   AuthorizationPolicy *v1beta1.AuthorizationPolicy
	//   FaultExperiment     *FaultExperimentSpec
	//   RateLimit           *RateLimitSpec
	// The networking.istio.io/v1 and security.istio.io/v1 Go types are aliases of these.
	Spec any

	// SpecJSON is the canonical JSON of Spec, for storage: compact, camelCase field names,
	// defaults provisioned, the same bytes for the same Spec. Code that changes Spec must
	// refresh it with EncodeSpec.
	SpecJSON []byte

	// Origin says where the resource came from in the input to ParseYAML, as a path prefix:
	// "documents[2]", "documents[0].items[3]", "items[3]", or "" when the input held a single
	// document (and for resources built in code). Validate prefixes its paths with it.
	Origin string
}

// Key identifies a resource across kinds and namespaces: "kind/namespace/name".
func (r *Resource) Key() string {
	return r.Kind + "/" + r.Namespace + "/" + r.Name
}

// ResolveHost turns a host as written in a resource of namespace into the fully qualified
// name it denotes, as Istio does: a short name (no dot) becomes
// "<host>.<namespace>.svc.cluster.local"; a name with a dot, a wildcard and an IP address are
// kept as they are ("reviews.prod" stays "reviews.prod").
func ResolveHost(host, namespace string) string {
	if host == "*" || strings.Contains(host, ".") {
		return host
	}
	if _, err := netip.ParseAddr(host); err == nil { // IPv6 literals have no dot
		return host
	}
	if namespace == "" {
		namespace = DefaultNamespace
	}
	return host + "." + namespace + ".svc." + ClusterDomain
}

// isDNS1123Label reports whether s is a lower-case RFC 1123 label, as Kubernetes requires of
// namespaces: at most 63 characters of a-z, 0-9 and '-', starting and ending alphanumeric.
func isDNS1123Label(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(s)-1:
		default:
			return false
		}
	}
	return true
}

// isDNS1123Subdomain reports whether s is a valid Kubernetes object name: dot-separated
// lower-case labels, at most 253 characters.
func isDNS1123Subdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if !isDNS1123Label(label) {
			return false
		}
	}
	return true
}

// isHostLabel is isDNS1123Label allowing upper case, as Istio does for hosts (DNS is case
// insensitive).
func isHostLabel(s string) bool {
	return isDNS1123Label(strings.ToLower(s))
}

// isQualifiedName reports whether s is a Kubernetes label or annotation key: an optional DNS
// subdomain prefix and '/', then a name of at most 63 characters of alphanumerics, '-', '_'
// and '.', starting and ending alphanumeric.
func isQualifiedName(s string) bool {
	name := s
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		if !isDNS1123Subdomain(s[:i]) {
			return false
		}
		name = s[i+1:]
	}
	return name != "" && isLabelValue(name)
}

// isLabelValue reports whether s is a valid Kubernetes label value: empty, or at most 63
// characters of alphanumerics, '-', '_' and '.', starting and ending alphanumeric.
func isLabelValue(s string) bool {
	if len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		alnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if alnum {
			continue
		}
		if (c == '-' || c == '_' || c == '.') && i > 0 && i < len(s)-1 {
			continue
		}
		return false
	}
	return true
}
