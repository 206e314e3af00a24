package ctl

import (
	"fmt"
	"strings"
)

// kindInfo is a resource kind as the command line names it.
type kindInfo struct {
	// kind is the kind's own name, as in YAML: "VirtualService".
	kind string
	// plural names the kind in REST paths: "virtualservices".
	plural string
	// short is kubectl's abbreviation: "vs".
	short string
}

// kinds are the kinds sluice-server serves, in its order. They mirror the server's list
// (server/internal/config/kinds.go), which this package cannot import; the e2e tests run
// "get" with every short name against a real server to keep the two in step.
var kinds = []kindInfo{
	{"VirtualService", "virtualservices", "vs"},
	{"DestinationRule", "destinationrules", "dr"},
	{"Gateway", "gateways", "gw"},
	{"ServiceEntry", "serviceentries", "se"},
	{"PeerAuthentication", "peerauthentications", "pa"},
	{"AuthorizationPolicy", "authorizationpolicies", "ap"},
	{"FaultExperiment", "faultexperiments", "fe"},
	{"RateLimit", "ratelimits", "rl"},
}

// singular is the lower-case kind, as in "virtualservice/reviews".
func (k kindInfo) singular() string { return strings.ToLower(k.kind) }

// parseKind reads a kind as users type it: plural, singular or short, in any case
// ("virtualservices", "VirtualService", "vs").
func parseKind(s string) (kindInfo, error) {
	l := strings.ToLower(strings.TrimSpace(s))
	for _, k := range kinds {
		if l == k.plural || l == k.singular() || l == k.short {
			return k, nil
		}
	}
	return kindInfo{}, &UsageError{fmt.Sprintf("%q is not a resource kind: use one of %s", s, kindList())}
}

// kindList names every kind with its short form, for messages and help.
func kindList() string {
	parts := make([]string, len(kinds))
	for i, k := range kinds {
		parts[i] = k.plural + " (" + k.short + ")"
	}
	return strings.Join(parts, ", ")
}

// resourceRef names a resource in output lines, kubectl style: "virtualservice/reviews",
// with the namespace when it is not "default".
func resourceRef(kind, namespace, name string) string {
	ref := strings.ToLower(kind) + "/" + name
	if namespace != "" && namespace != defaultNamespace {
		ref += " (namespace " + namespace + ")"
	}
	return ref
}
