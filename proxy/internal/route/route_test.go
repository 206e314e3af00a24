package route

import (
	"fmt"
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluicemesh/sluice/proxy/internal/filter"
)

func toCluster(name string) *routev3.Route_Route {
	return &routev3.Route_Route{Route: &routev3.RouteAction{
		ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name},
	}}
}

func prefix(p string) *routev3.RouteMatch {
	return &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: p}}
}

func regex(re string) *matcherv3.RegexMatcher { return &matcherv3.RegexMatcher{Regex: re} }

func exactString(s string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}
}

// oneRoute builds a table with a "*" virtual host holding a route with match m to "hit" and
// nothing else, so a request either hits or finds no route.
func oneRoute(t *testing.T, m *routev3.RouteMatch) *Table {
	t.Helper()
	tab, err := Compile(&routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{
		Name: "all", Domains: []string{"*"},
		Routes: []*routev3.Route{{Match: m, Action: toCluster("hit")}},
	}}})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	return tab
}

func req(path string, header ...string) *Request {
	h := http.Header{}
	for i := 0; i+1 < len(header); i += 2 {
		h.Add(header[i], header[i+1])
	}
	return &Request{Authority: "svc", Method: "GET", Path: path, Scheme: "http", Header: h}
}

func TestRouteMatch(t *testing.T) {
	caseInsensitive := func(m *routev3.RouteMatch) *routev3.RouteMatch {
		m.CaseSensitive = wrapperspb.Bool(false)
		return m
	}
	header := func(hm *routev3.HeaderMatcher) *routev3.RouteMatch {
		m := prefix("/")
		m.Headers = []*routev3.HeaderMatcher{hm}
		return m
	}
	query := func(qm *routev3.QueryParameterMatcher) *routev3.RouteMatch {
		m := prefix("/")
		m.QueryParameters = []*routev3.QueryParameterMatcher{qm}
		return m
	}
	tests := []struct {
		name  string
		match *routev3.RouteMatch
		req   *Request
		want  bool
	}{
		{"prefix matches", prefix("/api"), req("/api/v1"), true},
		{"prefix is not a segment match", prefix("/api"), req("/apix"), true},
		{"prefix misses", prefix("/api"), req("/ap"), false},
		{"prefix is case sensitive by default", prefix("/api"), req("/API/v1"), false},
		{"prefix case insensitive", caseInsensitive(prefix("/api")), req("/API/v1"), true},
		{"prefix sees the query", prefix("/a?x=1"), req("/a?x=1&y=2"), true},
		{"path exact", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/a"}}, req("/a"), true},
		{"path ignores the query", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/a"}}, req("/a?b=c"), true},
		{"path is exact", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/a"}}, req("/a/"), false},
		{"path case insensitive", caseInsensitive(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Path{Path: "/Login"}}), req("/LOGIN"), true},
		{"separated prefix equal", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}, req("/api?x"), true},
		{"separated prefix segment", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}, req("/api/v1"), true},
		{"separated prefix not a segment", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_PathSeparatedPrefix{PathSeparatedPrefix: "/api"}}, req("/apix"), false},
		{"regex full match", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regex(`/users/\d+`)}}, req("/users/42"), true},
		{"regex is anchored at the end", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regex(`/users/\d+`)}}, req("/users/42/x"), false},
		{"regex is anchored at the start", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regex(`users/\d+`)}}, req("/users/42"), false},
		{"regex alternation stays anchored", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regex(`/a|/b`)}}, req("/ab"), false},
		{"regex ignores the query", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regex(`/users/\d+`)}}, req("/users/42?x=y"), true},
		{"regex ignores case_sensitive", caseInsensitive(&routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regex(`/a`)}}), req("/A"), false},
		{"header exact", header(&routev3.HeaderMatcher{Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactString("jason")}}), req("/", "End-User", "jason"), true},
		{"header exact misses", header(&routev3.HeaderMatcher{Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactString("jason")}}), req("/", "End-User", "json"), false},
		{"header exact ignore case", header(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "ABC"}, IgnoreCase: true}}}), req("/", "X", "abc"), true},
		{"header prefix", header(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "ab"}}}}), req("/", "X", "abc"), true},
		{"header suffix", header(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: "bc"}}}}), req("/", "X", "abc"), true},
		{"header suffix misses", header(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: "ab"}}}}), req("/", "X", "abc"), false},
		{"header contains ignore case", header(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "B"}, IgnoreCase: true}}}), req("/", "X", "abc"), true},
		{"header regex full match", header(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regex(`\d{3}`)}}}}), req("/", "X", "1234"), false},
		{"header regex inverted", header(&routev3.HeaderMatcher{Name: "x", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: regex(`\d{3}`)}}}}), req("/", "X", "1234"), true},
		{"header repeated values join with comma", header(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactString("a,b")}}), req("/", "X", "a", "X", "b"), true},
		{"header deprecated exact_match", header(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "v"}}), req("/", "X", "v"), true},
		{"header present", header(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}), req("/", "X", ""), true},
		{"header present but absent", header(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}), req("/"), false},
		{"header present inverted and absent", header(&routev3.HeaderMatcher{Name: "x", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}), req("/"), true},
		{"header present inverted and present", header(&routev3.HeaderMatcher{Name: "x", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}), req("/", "X", "1"), false},
		{"header absent (present_match false)", header(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: false}}), req("/"), true},
		{"inverted string match on a missing header does not match", header(&routev3.HeaderMatcher{Name: "x", InvertMatch: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactString("v")}}), req("/"), false},
		{"missing header treated as empty", header(&routev3.HeaderMatcher{Name: "x", TreatMissingHeaderAsEmpty: true, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactString("")}}), req("/"), true},
		{"header range", header(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{RangeMatch: rangeOf(-10, 0)}}), req("/", "X", "-1"), true},
		{"header range end is exclusive", header(&routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_RangeMatch{RangeMatch: rangeOf(-10, 0)}}), req("/", "X", "0"), false},
		{":method pseudo-header", header(&routev3.HeaderMatcher{Name: ":method", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactString("GET")}}), req("/"), true},
		{":authority pseudo-header", header(&routev3.HeaderMatcher{Name: ":authority", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactString("svc")}}), req("/"), true},
		{"query exact", query(&routev3.QueryParameterMatcher{Name: "debug", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: exactString("1")}}), req("/a?x=2&debug=1"), true},
		{"query first value wins", query(&routev3.QueryParameterMatcher{Name: "debug", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: exactString("1")}}), req("/a?debug=0&debug=1"), false},
		{"query value is decoded", query(&routev3.QueryParameterMatcher{Name: "q", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_StringMatch{StringMatch: exactString("a b/c")}}), req("/a?q=a+b%2Fc"), true},
		{"query present", query(&routev3.QueryParameterMatcher{Name: "debug", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}}), req("/a?debug"), true},
		{"query absent", query(&routev3.QueryParameterMatcher{Name: "debug", QueryParameterMatchSpecifier: &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}}), req("/a?debugger=1"), false},
		{"grpc only matches grpc", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Grpc: &routev3.RouteMatch_GrpcRouteMatchOptions{}}, req("/", "Content-Type", "application/json"), false},
		{"grpc matches grpc", &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, Grpc: &routev3.RouteMatch_GrpcRouteMatchOptions{}}, req("/", "Content-Type", "application/grpc+proto"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, r := oneRoute(t, tt.match).Match(tt.req)
			if got := r != nil; got != tt.want {
				t.Errorf("match %q = %v, want %v", tt.req.Path, got, tt.want)
			}
		})
	}
}

func TestFirstRouteWins(t *testing.T) {
	tab, err := Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{
		Name: "all", Domains: []string{"*"},
		Routes: []*routev3.Route{
			{Match: prefix("/api/v1"), Action: toCluster("v1")},
			{Match: prefix("/api"), Action: toCluster("api")},
			{Match: prefix("/api/v1/special"), Action: toCluster("never")},
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{"/api/v1/special": "v1", "/api/v2": "api", "/": ""} {
		_, r := tab.Match(req(path))
		got := ""
		if r != nil {
			got = r.Action.Cluster
		}
		if got != want {
			t.Errorf("%s routed to %q, want %q", path, got, want)
		}
	}
}

func TestVirtualHostSelection(t *testing.T) {
	vh := func(name string, domains ...string) *routev3.VirtualHost {
		return &routev3.VirtualHost{Name: name, Domains: domains,
			Routes: []*routev3.Route{{Match: prefix("/"), Action: toCluster(name)}}}
	}
	rc := &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{
		vh("reviews", "reviews", "reviews.default", "reviews.default.svc.cluster.local", "reviews:9080", "reviews.default:9080"),
		vh("suffix-short", "*.com"),
		vh("suffix-long", "*.example.com"),
		vh("prefix", "api.*"),
		vh("prefix-long", "api.internal.*"),
		vh("any", "*"),
	}}
	tab, err := Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ host, want string }{
		{"reviews", "reviews"},
		{"REVIEWS", "reviews"},
		{"reviews:9080", "reviews"},
		{"reviews:9081", "any"}, // a port is part of the host unless ports are ignored
		{"reviews.default", "reviews"},
		{"www.example.com", "suffix-long"},
		{"example.com", "suffix-short"}, // "*.example.com" needs something before ".example.com"
		{"foo.com", "suffix-short"},
		{"api.internal.x", "prefix-long"},
		{"api.x", "prefix"},
		{"api.com", "suffix-short"}, // suffix wildcards before prefix wildcards
		{"ratings", "any"},
	}
	for _, tt := range tests {
		vh := tab.VirtualHost(tt.host)
		if vh == nil || vh.Name != tt.want {
			t.Errorf("VirtualHost(%q) = %v, want %s", tt.host, vh, tt.want)
		}
	}

	rc.IgnorePortInHostMatching = true
	rc.VirtualHosts = rc.VirtualHosts[:1]
	tab, err = Compile(rc)
	if err != nil {
		t.Fatal(err)
	}
	if vh := tab.VirtualHost("reviews:9999"); vh == nil || vh.Name != "reviews" {
		t.Errorf("with ignore_port_in_host_matching, reviews:9999 -> %v, want reviews", vh)
	}
	if vh := tab.VirtualHost("ratings"); vh != nil {
		t.Errorf("without a * host, ratings -> %v, want none", vh.Name)
	}
}

func TestStripPort(t *testing.T) {
	for in, want := range map[string]string{
		"a":             "a",
		"a:80":          "a",
		"a:":            "a",
		"a:b":           "a:b",
		"[::1]:80":      "[::1]",
		"[::1]":         "[::1]",
		"::1":           "::1",
		"127.0.0.1:443": "127.0.0.1",
	} {
		if got := StripPort(in); got != want {
			t.Errorf("StripPort(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestWeightedSplit(t *testing.T) {
	tab, err := Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{
		Name: "all", Domains: []string{"*"},
		Routes: []*routev3.Route{{Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
				Clusters: []*routev3.WeightedCluster_ClusterWeight{
					{Name: "v1", Weight: wrapperspb.UInt32(70)},
					{Name: "v2", Weight: wrapperspb.UInt32(20)},
					{Name: "v3", Weight: wrapperspb.UInt32(10)},
					{Name: "never", Weight: wrapperspb.UInt32(0)},
				},
			}},
		}}}},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	_, r := tab.Match(req("/"))
	const n = 100_000
	counts := map[string]int{}
	for range n {
		c, _ := r.Action.Pick(req("/"))
		counts[c]++
	}
	for name, weight := range map[string]float64{"v1": 0.7, "v2": 0.2, "v3": 0.1, "never": 0} {
		got := float64(counts[name]) / n
		// 5 standard deviations of a binomial proportion: a false alarm is vanishingly rare.
		tolerance := 5 * math.Sqrt(weight*(1-weight)/n)
		if math.Abs(got-weight) > tolerance {
			t.Errorf("%s got %.4f of requests, want %.2f ± %.4f", name, got, weight, tolerance)
		}
	}
}

func TestCompileRejects(t *testing.T) {
	withRoute := func(r *routev3.Route) *routev3.RouteConfiguration {
		return &routev3.RouteConfiguration{Name: "outbound", VirtualHosts: []*routev3.VirtualHost{{
			Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{r},
		}}}
	}
	tests := []struct {
		name string
		rc   *routev3.RouteConfiguration
		want string // a substring of the error
	}{
		{"invalid regex", withRoute(&routev3.Route{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regex("/a(")}},
			Action: toCluster("c")}), `routes[0].match.safe_regex.regex: invalid RE2 regex "/a("`},
		{"retry on a condition sluice-proxy lacks", withRoute(&routev3.Route{Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
			RetryPolicy:      &routev3.RetryPolicy{RetryOn: "5xx,retriable-headers"},
		}}}), `routes[0].route.retry_policy.retry_on: "retriable-headers" is not a retry condition sluice-proxy implements`},
		{"retry budget field", withRoute(&routev3.Route{Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
			RetryPolicy:      &routev3.RetryPolicy{RetryOn: "5xx", RetryPriority: &routev3.RetryPolicy_RetryPriority{Name: "x"}},
		}}}), "retry_policy.retry_priority: not supported"},
		{"runtime fraction", withRoute(&routev3.Route{
			Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}, RuntimeFraction: &corev3.RuntimeFractionalPercent{RuntimeKey: "k"}},
			Action: toCluster("c")}), "routes[0].match.runtime_fraction: not supported"},
		{"removing a pseudo-header", &routev3.RouteConfiguration{RequestHeadersToRemove: []string{":path"}}, `request_headers_to_remove[0]: ":path": :-prefixed or host headers may not be modified`},
		{"weighted cluster header", withRoute(&routev3.Route{Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
				Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "a", Weight: wrapperspb.UInt32(1),
					ResponseHeadersToAdd: []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "host", Value: "x"}}}}}}}}}}),
			`routes[0].route.weighted_clusters.clusters[0].response_headers_to_add[0].header.key: "host"`},
		{"regex rewrite with prefix rewrite", withRoute(&routev3.Route{Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}, PrefixRewrite: "/x",
			RegexRewrite: &matcherv3.RegexMatchAndSubstitute{Pattern: regex("a"), Substitution: "b"}}}}),
			"regex_rewrite: cannot be set together with prefix_rewrite"},
		{"regex rewrite names a missing group", withRoute(&routev3.Route{Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
			RegexRewrite:     &matcherv3.RegexMatchAndSubstitute{Pattern: regex("/(a)"), Substitution: `/\2`}}}}),
			`regex_rewrite.substitution: "/\\2" refers to capture group \2, but the pattern has 1`},
		{"regex rewrite invalid pattern", withRoute(&routev3.Route{Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
			RegexRewrite:     &matcherv3.RegexMatchAndSubstitute{Pattern: regex("(")}}}}),
			`regex_rewrite.pattern.regex: invalid RE2 regex "("`},
		{"validate clusters true", &routev3.RouteConfiguration{ValidateClusters: wrapperspb.Bool(true)}, "validate_clusters: not supported"},
		{"duplicate domain", &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{
			{Name: "a", Domains: []string{"x"}}, {Name: "b", Domains: []string{"X"}}}}, `domain "x" is already served`},
		{"weights add to zero", withRoute(&routev3.Route{Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
				Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "a"}}}}}}}), "weights add up to 0"},
		{"no action", withRoute(&routev3.Route{Match: prefix("/")}), "needs one of route, redirect or direct_response"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Compile(tt.rc)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Compile error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestCompileAcceptsIstioDefaults(t *testing.T) {
	// What Istio writes on a plain route besides the cluster: these must not be NACKed.
	tab, err := Compile(&routev3.RouteConfiguration{Name: "outbound", ValidateClusters: wrapperspb.Bool(false),
		VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"}, IncludeRequestAttemptCount: true,
			Routes: []*routev3.Route{{Name: "default", Match: prefix("/"),
				Decorator: &routev3.Decorator{Operation: "reviews:9080/*"},
				Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier:  &routev3.RouteAction_Cluster{Cluster: "c"},
					Timeout:           durationpb.New(0),
					MaxStreamDuration: &routev3.RouteAction_MaxStreamDuration{GrpcTimeoutHeaderMax: durationpb.New(0)},
				}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	_, r := tab.Match(req("/"))
	if r.Action.Timeout != 0 || !r.Action.HonorGRPCTimeout {
		t.Errorf("timeout %v honor grpc-timeout %v, want 0 and true", r.Action.Timeout, r.Action.HonorGRPCTimeout)
	}
	if got := tab.Clusters(); len(got) != 1 || got[0] != "c" {
		t.Errorf("Clusters() = %v, want [c]", got)
	}
}

func TestDefaultTimeout(t *testing.T) {
	_, r := oneRoute(t, prefix("/")).Match(req("/"))
	if r.Action.Timeout != 15*time.Second {
		t.Errorf("timeout = %v, want Envoy's default 15s", r.Action.Timeout)
	}
}

func TestRewrites(t *testing.T) {
	tab, err := Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{
		Name: "all", Domains: []string{"*"},
		Routes: []*routev3.Route{
			{Match: prefix("/old"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}, PrefixRewrite: "/new"}}},
			{Match: prefix("/go"), Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
				SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true},
				HostRedirect:           "example.com",
				PathRewriteSpecifier:   &routev3.RedirectAction_PrefixRewrite{PrefixRewrite: "/gone"},
			}}},
			{Match: prefix("/teapot"), Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 418}}},
		},
	}}})
	if err != nil {
		t.Fatal(err)
	}
	_, r := tab.Match(req("/old/x?y=1"))
	if got := r.RewritePath("/old/x?y=1"); got != "/new/x?y=1" {
		t.Errorf("prefix rewrite = %q", got)
	}
	rq := req("/go/x?y=1")
	_, r = tab.Match(rq)
	if got := r.Action.RedirectSpec.Location(rq, r); got != "https://example.com/gone/x?y=1" {
		t.Errorf("redirect = %q", got)
	}
	if r.Action.RedirectSpec.Status != http.StatusMovedPermanently {
		t.Errorf("redirect status %d", r.Action.RedirectSpec.Status)
	}
	_, r = tab.Match(req("/teapot"))
	if r.Action.Kind != DirectResponse || r.Action.Status != 418 {
		t.Errorf("direct response %+v", r.Action)
	}
}

func TestRegexRewrite(t *testing.T) {
	tests := []struct {
		name, pattern, subst, path, want string
	}{
		{"Envoy's example: capture groups", `^/service/([^/]+)(/.*)$`, `\2/instance/\1`, "/service/foo/v1/api", "/v1/api/instance/foo"},
		{"every match is replaced", `one`, `two`, "/xxx/one/yyy/one/zzz", "/xxx/two/yyy/two/zzz"},
		{"the query is kept and not rewritten", `a`, `b`, "/a/a?a=a", "/b/b?a=a"},
		{"whole match and literal dollar", `/v(\d)`, `/$\0-\1`, "/v1/x", "/$/v1-1/x"},
		{"a backslash", `x`, `\\`, "/x", `/\`},
		{"no match leaves the path", `nothing`, `x`, "/a?b", "/a?b"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"},
				Routes: []*routev3.Route{{Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"},
					RegexRewrite:     &matcherv3.RegexMatchAndSubstitute{Pattern: regex(tt.pattern), Substitution: tt.subst}}}}}}}})
			if err != nil {
				t.Fatal(err)
			}
			_, r := tab.Match(req(tt.path))
			if got := r.RewritePath(tt.path); got != tt.want {
				t.Errorf("RewritePath(%q) = %q, want %q", tt.path, got, tt.want)
			}
		})
	}
}

// TestHeaderMutationOrder checks Envoy's order: the weighted cluster's mutations first, then
// the route's, the virtual host's and the route configuration's, so a less specific
// overwrite wins; most_specific_header_mutations_wins reverses the route's three.
func TestHeaderMutationOrder(t *testing.T) {
	set := func(v string) []*corev3.HeaderValueOption {
		return []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-level", Value: v},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD},
			{Header: &corev3.HeaderValue{Key: "x-trail", Value: v}}}
	}
	build := func(mostSpecificWins bool) *Table {
		tab, err := Compile(&routev3.RouteConfiguration{
			RequestHeadersToAdd: set("global"), ResponseHeadersToAdd: set("global"),
			MostSpecificHeaderMutationsWins: mostSpecificWins,
			VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"},
				RequestHeadersToAdd: set("vhost"), ResponseHeadersToAdd: set("vhost"),
				Routes: []*routev3.Route{{Match: prefix("/"),
					RequestHeadersToAdd: set("route"), ResponseHeadersToAdd: set("route"),
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
							Clusters: []*routev3.WeightedCluster_ClusterWeight{{Name: "a", Weight: wrapperspb.UInt32(1),
								RequestHeadersToAdd: set("cluster"), ResponseHeadersToAdd: set("cluster")}}}}}}}}}}})
		if err != nil {
			t.Fatal(err)
		}
		return tab
	}
	for _, tt := range []struct {
		mostSpecificWins bool
		wantLevel        string
		wantTrail        string
	}{
		{false, "global", "cluster,route,vhost,global"},
		{true, "route", "cluster,global,vhost,route"},
	} {
		_, r := build(tt.mostSpecificWins).Match(req("/"))
		_, branch := r.Action.Pick(req("/"))
		for _, dir := range []struct {
			name   string
			branch *filter.HeaderOps
			levels []*filter.HeaderOps
		}{{"request", branch.RequestHeaders, r.RequestHeaders}, {"response", branch.ResponseHeaders, r.ResponseHeaders}} {
			h := http.Header{}
			dir.branch.Apply(h)
			filter.ApplyAll(dir.levels, h)
			if got := h.Get("X-Level"); got != tt.wantLevel {
				t.Errorf("most_specific_header_mutations_wins=%v %s: x-level %q, want %q", tt.mostSpecificWins, dir.name, got, tt.wantLevel)
			}
			if got := strings.Join(h["X-Trail"], ","); got != tt.wantTrail {
				t.Errorf("most_specific_header_mutations_wins=%v %s: x-trail %q, want %q", tt.mostSpecificWins, dir.name, got, tt.wantTrail)
			}
		}
	}
}

func TestMirrorPolicies(t *testing.T) {
	for in, want := range map[string]string{
		"httpbin:8000": "httpbin-shadow:8000", "httpbin": "httpbin-shadow",
		"[::1]:80": "[::1]-shadow:80", "10.0.0.1": "10.0.0.1-shadow",
	} {
		if got := ShadowAuthority(in); got != want {
			t.Errorf("ShadowAuthority(%q) = %q, want %q", in, got, want)
		}
	}
	tab, err := Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"},
		Routes: []*routev3.Route{{Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "v1"},
			RequestMirrorPolicies: []*routev3.RouteAction_RequestMirrorPolicy{
				{Cluster: "v2"},
				{Cluster: "v3", DisableShadowHostSuffixAppend: true, RuntimeFraction: &corev3.RuntimeFractionalPercent{
					DefaultValue: &typev3.FractionalPercent{Numerator: 0}}},
			}}}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	_, r := tab.Match(req("/"))
	m := r.Action.Mirrors
	if len(m) != 2 || !m[0].Fraction.Hit() || m[0].KeepHost || !m[1].Fraction.Never() || !m[1].KeepHost {
		t.Errorf("mirrors %+v", m)
	}
	if got := strings.Join(tab.Clusters(), ","); got != "v1,v2,v3" {
		t.Errorf("Clusters() = %s: mirror clusters must warm too", got)
	}
}

func TestTypedPerFilterConfig(t *testing.T) {
	policy := func(methods string) *anypb.Any {
		a, _ := anypb.New(&corsv3.CorsPolicy{AllowMethods: methods,
			AllowOriginStringMatch: []*matcherv3.StringMatcher{exactString("https://a.com")}})
		return a
	}
	wrap := func(cfg *anypb.Any, optional, disabled bool) *anypb.Any {
		a, _ := anypb.New(&routev3.FilterConfig{Config: cfg, IsOptional: optional, Disabled: disabled})
		return a
	}
	other, _ := anypb.New(&routev3.FilterConfig{})
	build := func(vhost, route map[string]*anypb.Any) (*Table, error) {
		return Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"},
			TypedPerFilterConfig: vhost,
			Routes:               []*routev3.Route{{Match: prefix("/"), Action: toCluster("c"), TypedPerFilterConfig: route}}}}})
	}
	tests := []struct {
		name         string
		vhost, route map[string]*anypb.Any
		wantCORS     bool
		wantErr      string
	}{
		{"route policy", nil, map[string]*anypb.Any{"envoy.filters.http.cors": policy("GET")}, true, ""},
		{"virtual host policy", map[string]*anypb.Any{"envoy.filters.http.cors": policy("GET")}, nil, true, ""},
		{"wrapped in a FilterConfig", nil, map[string]*anypb.Any{"envoy.filters.http.cors": wrap(policy("GET"), false, false)}, true, ""},
		{"disabled on the route over a virtual host policy", map[string]*anypb.Any{"envoy.filters.http.cors": policy("GET")},
			map[string]*anypb.Any{"envoy.filters.http.cors": wrap(nil, false, true)}, false, ""},
		{"an optional unknown filter is skipped", nil, map[string]*anypb.Any{"envoy.filters.http.lua": wrap(other, true, false)}, false, ""},
		{"an unknown filter", nil, map[string]*anypb.Any{"envoy.filters.http.lua": other}, false,
			`routes[0].typed_per_filter_config["envoy.filters.http.lua"]: filter "envoy.filters.http.lua" is not supported by sluice-proxy`},
		{"the wrong config type", nil, map[string]*anypb.Any{"envoy.filters.http.cors": other}, false, "must be a type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab, err := build(tt.vhost, tt.route)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			_, r := tab.Match(req("/"))
			if got := r.CORS != nil; got != tt.wantCORS {
				t.Errorf("CORS policy present %v, want %v", got, tt.wantCORS)
			}
		})
	}
}

func TestFaultPerFilterPrecedence(t *testing.T) {
	fault := func(status uint32) *anypb.Any {
		a, _ := anypb.New(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: status},
			Percentage: &typev3.FractionalPercent{Numerator: 100}}})
		return a
	}
	disabled, _ := anypb.New(&routev3.FilterConfig{Disabled: true})
	tests := []struct {
		name         string
		vhost, route *anypb.Any
		wantSet      bool
		wantStatus   int // 0: no fault
	}{
		{"nothing: the listener's config applies", nil, nil, false, 0},
		{"virtual host", fault(501), nil, true, 501},
		{"the route's wins whole", fault(501), fault(502), true, 502},
		{"disabled on the route", fault(501), disabled, true, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pf := func(a *anypb.Any) map[string]*anypb.Any {
				if a == nil {
					return nil
				}
				return map[string]*anypb.Any{"envoy.filters.http.fault": a}
			}
			tab, err := Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"},
				TypedPerFilterConfig: pf(tt.vhost),
				Routes:               []*routev3.Route{{Match: prefix("/"), Action: toCluster("c"), TypedPerFilterConfig: pf(tt.route)}}}}})
			if err != nil {
				t.Fatal(err)
			}
			_, r := tab.Match(req("/"))
			status := 0
			if r.Fault != nil {
				status, _, _ = r.Fault.Abort()
			}
			if r.FaultSet != tt.wantSet || status != tt.wantStatus {
				t.Errorf("FaultSet %v status %d, want %v %d", r.FaultSet, status, tt.wantSet, tt.wantStatus)
			}
		})
	}
}

func TestMatchDoesNotAllocate(t *testing.T) {
	tab := benchTable(t, 100)
	rq := &Request{Authority: "svc-99.default.svc.cluster.local:9080", Method: "GET",
		Path: "/svc-99/items/42?debug=1", Scheme: "http", Header: http.Header{"X-User": {"u"}}}
	allocs := testing.AllocsPerRun(100, func() {
		if _, r := tab.Match(rq); r == nil {
			t.Fatal("no match")
		}
	})
	if allocs != 0 {
		t.Errorf("Match allocates %v times per call, want 0", allocs)
	}
}

// benchTable builds a table with n virtual hosts like the outbound route configuration, each
// with three routes (a header match, a regex, a prefix), plus a weighted catch-all.
func benchTable(tb testing.TB, n int) *Table {
	tb.Helper()
	rc := &routev3.RouteConfiguration{Name: "outbound"}
	for i := range n {
		name := fmt.Sprintf("svc-%d", i)
		fqdn := name + ".default.svc.cluster.local"
		rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
			Name:    fqdn + ":9080",
			Domains: []string{name, name + ":9080", fqdn, fqdn + ":9080"},
			Routes: []*routev3.Route{
				{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/" + name + "/admin"},
					Headers: []*routev3.HeaderMatcher{{Name: "x-admin", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}}},
					Action: toCluster("admin")},
				{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{SafeRegex: regex("/" + name + `/items/\d+`)},
					QueryParameters: []*routev3.QueryParameterMatcher{{Name: "debug"}}},
					Action: toCluster("items")},
				{Match: prefix("/"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
					ClusterSpecifier: &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
						Clusters: []*routev3.WeightedCluster_ClusterWeight{
							{Name: "v1", Weight: wrapperspb.UInt32(90)}, {Name: "v2", Weight: wrapperspb.UInt32(10)}}}}}}},
			},
		})
	}
	tab, err := Compile(rc)
	if err != nil {
		tb.Fatal(err)
	}
	return tab
}

// BenchmarkMatchHosts matches a request for the last virtual host's regex route among n
// virtual hosts of three routes each: the host lookup is one map probe whatever n is.
func BenchmarkMatchHosts(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("vhosts=%d", n), func(b *testing.B) {
			tab := benchTable(b, n)
			name := fmt.Sprintf("svc-%d", n-1)
			rq := &Request{Authority: name + ":9080", Method: "GET", Path: "/" + name + "/items/42?debug=1",
				Scheme: "http", Header: http.Header{"X-User": {"u"}}}
			b.ReportAllocs()
			for b.Loop() {
				_, r := tab.Match(rq)
				if r == nil {
					b.Fatal("no match")
				}
				r.Action.Pick(rq)
			}
		})
	}
}

// BenchmarkMatchRoutes matches the last of n prefix-and-header routes of one virtual host: the
// worst case of Envoy's first-match-wins list.
func BenchmarkMatchRoutes(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("routes=%d", n), func(b *testing.B) {
			vh := &routev3.VirtualHost{Name: "all", Domains: []string{"*"}}
			for i := range n {
				vh.Routes = append(vh.Routes, &routev3.Route{
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: fmt.Sprintf("/api/%d/", i)},
						Headers: []*routev3.HeaderMatcher{{Name: "x-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: exactString("u")}}}},
					Action: toCluster(fmt.Sprintf("c%d", i))})
			}
			tab, err := Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{vh}})
			if err != nil {
				b.Fatal(err)
			}
			rq := &Request{Authority: "svc", Method: "GET", Path: fmt.Sprintf("/api/%d/x", n-1),
				Scheme: "http", Header: http.Header{"X-User": {"u"}}}
			b.ReportAllocs()
			for b.Loop() {
				if _, r := tab.Match(rq); r == nil {
					b.Fatal("no match")
				}
			}
		})
	}
}

func rangeOf(start, end int64) *typev3.Int64Range { return &typev3.Int64Range{Start: start, End: end} }
