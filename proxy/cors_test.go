package proxy

import (
	"net/http"
	"sync/atomic"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func corsFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.cors",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&corsv3.Cors{})}}
}

func TestCORS(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	addr := nextAddr()
	var upstreamOptions atomic.Int64
	app := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodOptions {
			upstreamOptions.Add(1)
		}
		w.Header().Set("X-Upstream", "app")
		w.WriteHeader(http.StatusOK)
	}))
	// What Istio writes for a VirtualService corsPolicy: exact and regex origins, methods,
	// headers, expose headers, max age, credentials, the filter enabled at 100%.
	policy := &corsv3.CorsPolicy{
		AllowOriginStringMatch: []*matcherv3.StringMatcher{
			{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://example.com"}},
			{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: `https://.*\.example\.org`}}},
		},
		AllowMethods: "POST,GET", AllowHeaders: "X-Foo-Bar", ExposeHeaders: "X-Upstream", MaxAge: "86400",
		AllowCredentials: wrapperspb.Bool(true),
		FilterEnabled:    &corev3.RuntimeFractionalPercent{DefaultValue: nil},
	}
	w := world{addr: addr,
		services: []service{
			{domains: []string{"web"}, backends: []backend{{cluster: "web", weight: 1, endpoints: []string{app}}}},
			{domains: []string{"strict"}, backends: []backend{{cluster: "strict", weight: 1, endpoints: []string{app}}}},
			{domains: []string{"empty"}, backends: []backend{{cluster: "empty", weight: 1}}},
		},
		httpFilters: []*hcmv3.HttpFilter{corsFilter()},
		mutate: func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[0].Routes[0].TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.cors": mustAny(policy)}
			// The strict host's policy is on its virtual host, and answers preflights from
			// other origins itself.
			strict := &corsv3.CorsPolicy{AllowOriginStringMatch: policy.AllowOriginStringMatch, AllowMethods: "*",
				ForwardNotMatchingPreflights: wrapperspb.Bool(false)}
			rc.VirtualHosts[1].TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.cors": mustAny(strict)}
			rc.VirtualHosts[2].TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.cors": mustAny(policy)}
		},
	}
	// An unset default_value would be 0%: Istio always sends 100%.
	policy.FilterEnabled.DefaultValue = percent100()
	cp.set(nodeID(addr, "test"), w.snapshot("1"))
	p := startProxy(t, cp, addr)

	preflight := func(host, origin, method string) *http.Request {
		req := p.outboundRequest(http.MethodOptions, host, "/api")
		req.Header.Set("Origin", origin)
		req.Header.Set("Access-Control-Request-Method", method)
		req.Header.Set("Access-Control-Request-Headers", "X-Foo-Bar")
		return req
	}
	actual := func(host, origin string) *http.Request {
		req := p.outboundRequest(http.MethodGet, host, "/api")
		req.Header.Set("Origin", origin)
		return req
	}
	tests := []struct {
		name          string
		req           *http.Request
		wantStatus    int
		wantHeaders   map[string]string // "" means absent
		wantUpstreams int64             // OPTIONS requests that reached the app, in total so far
	}{
		{"preflight from an allowed origin is answered by the proxy", preflight("web", "https://example.com", "POST"), 200, map[string]string{
			"Access-Control-Allow-Origin": "https://example.com", "Access-Control-Allow-Methods": "POST,GET",
			"Access-Control-Allow-Headers": "X-Foo-Bar", "Access-Control-Max-Age": "86400",
			"Access-Control-Allow-Credentials": "true", "X-Upstream": "", "X-Sluice-Reason": "CORS preflight answered by the proxy"}, 0},
		{"preflight from a regex-matched origin", preflight("web", "https://a.example.org", "GET"), 200, map[string]string{
			"Access-Control-Allow-Origin": "https://a.example.org"}, 0},
		{"preflight from another origin is forwarded", preflight("web", "https://evil.test", "POST"), 200, map[string]string{
			"Access-Control-Allow-Origin": "", "X-Upstream": "app"}, 1},
		{"actual request from an allowed origin", actual("web", "https://example.com"), 200, map[string]string{
			"Access-Control-Allow-Origin": "https://example.com", "Access-Control-Allow-Credentials": "true",
			"Access-Control-Expose-Headers": "X-Upstream", "Access-Control-Max-Age": "", "X-Upstream": "app"}, 1},
		{"actual request from another origin gets no CORS headers", actual("web", "https://evil.test"), 200, map[string]string{
			"Access-Control-Allow-Origin": "", "X-Upstream": "app"}, 1},
		{"request without Origin", p.outboundRequest(http.MethodGet, "web", "/"), 200, map[string]string{
			"Access-Control-Allow-Origin": ""}, 1},
		{"virtual host policy, methods * echo the request", preflight("strict", "https://example.com", "DELETE"), 200, map[string]string{
			"Access-Control-Allow-Origin": "https://example.com", "Access-Control-Allow-Methods": "DELETE", "X-Upstream": ""}, 1},
		{"forward_not_matching_preflights false answers other origins without allowing them", preflight("strict", "https://evil.test", "POST"), 200, map[string]string{
			"Access-Control-Allow-Origin": "", "Access-Control-Allow-Methods": "POST", "X-Upstream": ""}, 1},
		{"the router's local replies carry the CORS headers", actual("empty", "https://example.com"), 503, map[string]string{
			"Access-Control-Allow-Origin": "https://example.com"}, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, _, err := do(p.client, tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", res.StatusCode, tt.wantStatus)
			}
			for k, want := range tt.wantHeaders {
				if got := res.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
			if got := upstreamOptions.Load(); got != tt.wantUpstreams {
				t.Errorf("the app got %d OPTIONS requests so far, want %d", got, tt.wantUpstreams)
			}
		})
	}
	if got := statValue(t, p, "http.cors.preflights"); got != 4 {
		t.Errorf("http.cors.preflights %d, want 4", got)
	}
}
