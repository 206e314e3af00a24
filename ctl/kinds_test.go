package ctl

import (
	"errors"
	"strings"
	"testing"
)

func TestParseKind(t *testing.T) {
	tests := []struct {
		in   string
		want string // the plural; "" for an error
	}{
		{"virtualservices", "virtualservices"},
		{"virtualservice", "virtualservices"},
		{"vs", "virtualservices"},
		{"VirtualService", "virtualservices"},
		{"VS", "virtualservices"},
		{"destinationrules", "destinationrules"},
		{"destinationrule", "destinationrules"},
		{"dr", "destinationrules"},
		{"gateways", "gateways"},
		{"gateway", "gateways"},
		{"gw", "gateways"},
		{"serviceentries", "serviceentries"},
		{"serviceentry", "serviceentries"},
		{"se", "serviceentries"},
		{"peerauthentications", "peerauthentications"},
		{"peerauthentication", "peerauthentications"},
		{"pa", "peerauthentications"},
		{"authorizationpolicies", "authorizationpolicies"},
		{"authorizationpolicy", "authorizationpolicies"},
		{"ap", "authorizationpolicies"},
		{"faultexperiments", "faultexperiments"},
		{"faultexperiment", "faultexperiments"},
		{"fe", "faultexperiments"},
		{"ratelimits", "ratelimits"},
		{"ratelimit", "ratelimits"},
		{"rl", "ratelimits"},
		{"services", ""},
		{"v", ""},
		{"", ""},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			k, err := parseKind(tc.in)
			if tc.want == "" {
				var ue *UsageError
				if !errors.As(err, &ue) || !strings.Contains(ue.Msg, "virtualservices (vs)") {
					t.Fatalf("parseKind(%q) = %v, %v; want a usage error listing the kinds", tc.in, k, err)
				}
				return
			}
			if err != nil || k.plural != tc.want {
				t.Fatalf("parseKind(%q) = %q, %v; want %q", tc.in, k.plural, err, tc.want)
			}
		})
	}
}

// No two kinds may share a name in any form, or an alias would be ambiguous.
func TestKindNamesAreUnique(t *testing.T) {
	seen := map[string]string{}
	for _, k := range kinds {
		for _, name := range []string{k.plural, k.singular(), k.short} {
			if other, dup := seen[name]; dup {
				t.Errorf("%q names both %s and %s", name, other, k.kind)
			}
			seen[name] = k.kind
		}
	}
}

func TestResourceRef(t *testing.T) {
	tests := []struct{ kind, ns, name, want string }{
		{"VirtualService", "default", "reviews", "virtualservice/reviews"},
		{"DestinationRule", "", "reviews", "destinationrule/reviews"},
		{"Gateway", "prod", "web", "gateway/web (namespace prod)"},
	}
	for _, tc := range tests {
		if got := resourceRef(tc.kind, tc.ns, tc.name); got != tc.want {
			t.Errorf("resourceRef(%q, %q, %q) = %q, want %q", tc.kind, tc.ns, tc.name, got, tc.want)
		}
	}
}
