package filter

import (
	"net/http"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func mustCORS(t *testing.T, p *corsv3.CorsPolicy) *CORS {
	t.Helper()
	c, err := CompileCORS(p)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func exact(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

func TestCORSOrigins(t *testing.T) {
	tests := []struct {
		name    string
		origins []*matcherv3.StringMatcher
		origin  string
		want    bool
	}{
		{"exact", []*matcherv3.StringMatcher{exact("https://a.com")}, "https://a.com", true},
		{"exact misses", []*matcherv3.StringMatcher{exact("https://a.com")}, "https://b.com", false},
		{"prefix", []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "https://"}}}, "https://b.com", true},
		{"a matcher of * allows everyone", []*matcherv3.StringMatcher{exact("*")}, "http://anything", true},
		{"regex is anchored", []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: `https://[a-z]+\.com`}}}}, "https://a.com.evil", false},
		{"no origins allow nobody", nil, "https://a.com", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustCORS(t, &corsv3.CorsPolicy{AllowOriginStringMatch: tt.origins})
			if got := c.OriginAllowed(tt.origin); got != tt.want {
				t.Errorf("OriginAllowed(%q) = %v", tt.origin, got)
			}
		})
	}
}

func TestCORSMergeAndHeaders(t *testing.T) {
	vhost := mustCORS(t, &corsv3.CorsPolicy{AllowOriginStringMatch: []*matcherv3.StringMatcher{exact("https://a.com")},
		AllowMethods: "GET", AllowHeaders: "*", MaxAge: "60", AllowCredentials: wrapperspb.Bool(true),
		ForwardNotMatchingPreflights: wrapperspb.Bool(false)})
	// The route sets methods and expose headers, and enables the filter for 0% of requests.
	route := mustCORS(t, &corsv3.CorsPolicy{AllowMethods: "PUT", ExposeHeaders: "X-Id",
		FilterEnabled: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 0}}})
	m := MergeCORS(route, vhost)
	if !m.OriginAllowed("https://a.com") || m.ForwardNotMatchingPreflights() {
		t.Error("origins and forward_not_matching_preflights must come from the virtual host")
	}
	if m.Enabled() {
		t.Error("enabled must be the route's own (0%), not the virtual host's")
	}
	h := http.Header{}
	m.Preflight(h, http.Header{"Access-Control-Request-Headers": {"X-A, X-B"}}, "https://a.com")
	want := map[string]string{"Access-Control-Allow-Origin": "https://a.com", "Access-Control-Allow-Methods": "PUT",
		"Access-Control-Allow-Headers": "X-A, X-B", "Access-Control-Max-Age": "60", "Access-Control-Allow-Credentials": "true"}
	for k, v := range want {
		if got := h.Get(k); got != v {
			t.Errorf("preflight %s = %q, want %q", k, got, v)
		}
	}
	h = http.Header{}
	m.Actual(h, "https://a.com")
	if h.Get("Access-Control-Expose-Headers") != "X-Id" || h.Get("Access-Control-Allow-Credentials") != "true" || h.Get("Access-Control-Max-Age") != "" {
		t.Errorf("actual response headers %v", h)
	}
	if MergeCORS(nil, vhost) != vhost || MergeCORS(route, nil) != route {
		t.Error("merging with nothing must return the other policy")
	}
	if c := mustCORS(t, &corsv3.CorsPolicy{}); !c.Enabled() || c.ShadowEnabled() || !c.ForwardNotMatchingPreflights() {
		t.Error("defaults: enabled, no shadow, forward other origins' preflights")
	}
}
