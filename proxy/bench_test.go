package proxy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacconfigv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluicemesh/sluice/proxy/internal/cluster"
	"github.com/sluicemesh/sluice/proxy/internal/identity"
	"github.com/sluicemesh/sluice/proxy/internal/identity/identitytest"
	"github.com/sluicemesh/sluice/proxy/internal/listener"
	"github.com/sluicemesh/sluice/proxy/internal/route"
)

// BenchmarkRequest compares one request through the proxy's outbound listener with the same
// request sent straight to the upstream: keep-alive connections, a 1 KiB answer. The
// difference is the cost of the hop.
func BenchmarkRequest(b *testing.B) {
	body := strings.Repeat("x", 1024)
	up := upstream(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	cp := startControlPlane(b, "127.0.0.1:0", nil)
	addr := nextAddr()
	cp.set(nodeID(addr, "test"), world{addr: addr, services: []service{{domains: []string{"bench"},
		backends: []backend{{cluster: "bench", weight: 1, endpoints: []string{up}}}}}}.snapshot("1"))
	p := startProxy(b, cp, addr, "--log-level", "warn")

	run := func(b *testing.B, target, host string, parallel bool) {
		tr := &http.Transport{MaxIdleConnsPerHost: 256}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		req, _ := http.NewRequest("GET", "http://"+target+"/bench", nil)
		req.Host = host
		get := func() {
			res, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || n != 1024 {
				b.Fatalf("%d, %d bytes", res.StatusCode, n)
			}
		}
		b.ReportAllocs()
		if parallel {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					get()
				}
			})
			return
		}
		for b.Loop() {
			get()
		}
	}
	outbound := net.JoinHostPort(p.addr, "15001")
	b.Run("direct", func(b *testing.B) { run(b, up, "bench", false) })
	b.Run("proxied", func(b *testing.B) { run(b, outbound, "bench", false) })
	b.Run("direct-parallel", func(b *testing.B) { run(b, up, "bench", true) })
	b.Run("proxied-parallel", func(b *testing.B) { run(b, outbound, "bench", true) })
}

// BenchmarkFeaturesIdle measures what a feature costs when it is configured but not
// triggered: each sub-benchmark sends the same request as "plain" through the same proxy
// (whose chain holds the CORS and fault filters), to a route or cluster configured with one
// feature that this request does not set off. The difference to "plain" is the feature's
// idle cost.
//
// "plain" balances by least request, Istio's default. "breaker" sets thresholds far above
// the load; "breaker-istio" has the thresholds sluice-server gives every cluster (all at
// their maximum). "ringhash" and "maglev" hash the request's x-user header. The "-2ep"
// variants have two healthy endpoints, so that outlier detection and least request have a
// choice to make: compare "outlier-2ep" with "plain-2ep".
func BenchmarkFeaturesIdle(b *testing.B) {
	body := strings.Repeat("x", 1024)
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	})
	up, up2 := upstream(b, handler), upstream(b, handler)
	cp := startControlPlane(b, "127.0.0.1:0", nil)
	addr := nextAddr()
	hosts := []string{"plain", "retry", "fault0", "breaker", "breaker-istio", "outlier", "mirror0", "cors", "headers",
		"ringhash", "maglev", "plain-2ep", "outlier-2ep", "all"}
	var services []service
	for _, h := range hosts {
		eps := []string{up}
		if strings.HasSuffix(h, "-2ep") {
			eps = append(eps, up2)
		}
		services = append(services, service{domains: []string{h}, backends: []backend{{cluster: h, weight: 1, endpoints: eps}}})
	}
	services = append(services, service{domains: []string{"mirror-target"}, backends: []backend{{cluster: "mirror-target", weight: 1, endpoints: []string{up}}}})
	zeroFault := routeFault(&faultv3.HTTPFault{Abort: httpAbort(503, 0), Delay: fixedDelay(time.Second, 0)})
	cors := map[string]*anypb.Any{"envoy.filters.http.cors": mustAny(&corsv3.CorsPolicy{
		AllowOriginStringMatch: []*matcherv3.StringMatcher{{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "https://a.example"}}},
		AllowMethods:           "GET", FilterEnabled: &corev3.RuntimeFractionalPercent{DefaultValue: percent100()}})}
	w := world{addr: addr, services: services,
		httpFilters: []*hcmv3.HttpFilter{faultFilter(), corsFilter()},
		mutateClusters: func(name string, c *clusterv3.Cluster) {
			if name == "breaker" || name == "all" {
				c.CircuitBreakers = thresholds(&clusterv3.CircuitBreakers_Thresholds{MaxConnections: wrapperspb.UInt32(100),
					MaxPendingRequests: wrapperspb.UInt32(100), MaxRequests: wrapperspb.UInt32(100), MaxRetries: wrapperspb.UInt32(3)})
			}
			if name == "breaker-istio" {
				c.CircuitBreakers = thresholds(&clusterv3.CircuitBreakers_Thresholds{MaxConnections: wrapperspb.UInt32(math.MaxUint32),
					MaxPendingRequests: wrapperspb.UInt32(math.MaxUint32), MaxRequests: wrapperspb.UInt32(math.MaxUint32),
					MaxRetries: wrapperspb.UInt32(math.MaxUint32), TrackRemaining: true})
			}
			if name == "outlier" || name == "outlier-2ep" || name == "all" {
				istioOutlierDetection(c, 5, 30*time.Second)
				c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
			}
			if name == "ringhash" {
				c.LbPolicy = clusterv3.Cluster_RING_HASH
			}
			if name == "maglev" {
				c.LbPolicy = clusterv3.Cluster_MAGLEV
			}
		},
		mutate: func(rc *routev3.RouteConfiguration) {
			for _, vh := range rc.VirtualHosts {
				rt := vh.Routes[0]
				ra := rt.GetRoute()
				name := vh.Domains[0]
				if name == "retry" || name == "all" {
					ra.RetryPolicy = &routev3.RetryPolicy{NumRetries: wrapperspb.UInt32(2),
						RetryOn:              "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
						RetriableStatusCodes: []uint32{503}, RetryHostPredicate: previousHosts(), HostSelectionRetryMaxAttempts: 5}
				}
				if name == "fault0" || name == "all" {
					rt.TypedPerFilterConfig = zeroFault
				}
				if name == "mirror0" || name == "all" {
					ra.RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "mirror-target",
						RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 0}}}}
				}
				if name == "cors" || name == "all" {
					vh.TypedPerFilterConfig = cors
				}
				if name == "headers" || name == "all" {
					// Triggered on every request: the cost of two mutations each way.
					rt.RequestHeadersToAdd = []*corev3.HeaderValueOption{headerOpt("x-mesh", "sluice", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)}
					rt.RequestHeadersToRemove = []string{"x-debug"}
					rt.ResponseHeadersToAdd = []*corev3.HeaderValueOption{headerOpt("x-served-by", "sluice", corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD)}
					rt.ResponseHeadersToRemove = []string{"x-internal"}
				}
				if name == "ringhash" || name == "maglev" {
					ra.HashPolicy = []*routev3.RouteAction_HashPolicy{{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
						Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}}}
				}
			}
		},
	}
	cp.set(nodeID(addr, "test"), w.snapshot("1"))
	p := startProxy(b, cp, addr, "--log-level", "warn")
	outbound := net.JoinHostPort(p.addr, "15001")
	for _, host := range hosts {
		b.Run(host, func(b *testing.B) {
			tr := &http.Transport{MaxIdleConnsPerHost: 256}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			req, _ := http.NewRequest("GET", "http://"+outbound+"/bench", nil)
			req.Host = host
			req.Header.Set("X-User", "u-42")
			b.ReportAllocs()
			for b.Loop() {
				res, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != 200 || n != 1024 {
					b.Fatalf("%s: %d, %d bytes (%s)", host, res.StatusCode, n, res.Header.Get("X-Sluice-Reason"))
				}
			}
		})
	}
}

// BenchmarkPolicyDecisions measures, in process and without any I/O, the decisions a request
// pays for when a route has a policy that does not trip: making its consistent-hash key from
// the request (per key kind), and asking its retry policy whether a 200 is to be retried.
// Together with the cluster package's BenchmarkPickAndAdmit and BenchmarkPickKey it prices
// each policy's idle cost in nanoseconds, which BenchmarkFeaturesIdle's round trips are too
// noisy to resolve.
func BenchmarkPolicyDecisions(b *testing.B) {
	hash := func(name string, p *routev3.RouteAction_HashPolicy) *routev3.VirtualHost {
		return &routev3.VirtualHost{Name: name, Domains: []string{name}, Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: name},
				HashPolicy:       []*routev3.RouteAction_HashPolicy{p},
				RetryPolicy: &routev3.RetryPolicy{NumRetries: wrapperspb.UInt32(3), RetryOn: "5xx",
					RetryHostPredicate: previousHosts(), HostSelectionRetryMaxAttempts: 5},
			}},
		}}}
	}
	rc := &routev3.RouteConfiguration{Name: "bench", VirtualHosts: []*routev3.VirtualHost{
		hash("header", &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}}),
		hash("cookie", &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{
			Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: "session"}}}),
		hash("query", &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{
			QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: "user"}}}),
		hash("source-ip", &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
			ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}}),
	}}
	table, err := route.Compile(rc)
	if err != nil {
		b.Fatal(err)
	}
	header := http.Header{"X-User": {"u-42"}, "Cookie": {"a=1; session=s-42; b=2"}}
	in := route.HashInput{RemoteAddr: "127.0.0.9:43210"}
	for _, name := range []string{"header", "cookie", "query", "source-ip"} {
		req := route.Request{Authority: name, Method: "GET", Path: "/bench?user=u-42&x=1", Scheme: "http", Header: header}
		_, rt := table.Match(&req)
		if rt == nil || rt.Action.Hash == nil {
			b.Fatalf("%s: no route with a hash policy", name)
		}
		b.Run("hash-key-"+name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, ok, _ := rt.Action.Hash.Key(&req, in); !ok {
					b.Fatal("no key")
				}
			}
		})
	}
	_, rt := table.Match(&route.Request{Authority: "header", Method: "GET", Path: "/", Scheme: "http", Header: header})
	ok := http.Header{"Content-Type": {"text/plain"}}
	b.Run("retry-decision-200", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if rt.Action.Retry.RetriesAnswer(200, ok) {
				b.Fatal("a 200 retried")
			}
		}
	})
}

// BenchmarkMutualTLS measures the cost of mutual TLS on the sidecar-to-sidecar hop, in
// process: the client side is the cluster pools' upstream transport (with Istio's
// UpstreamTlsContext, or plaintext), the server side an inbound listener (PeerAuthentication
// STRICT, or DISABLE) answering 1 KiB directly. "reuse" sends every request on a kept-alive
// connection: the per-request cost of encryption. "new-connection" closes the connection
// after each request: the cost of the TCP connect plus, with mTLS, the handshake (ECDSA P-256
// certificates, both sides verified against the trust bundle and the SAN checked).
func BenchmarkMutualTLS(b *testing.B) {
	ca := identitytest.NewCA(b, "bench mesh")
	ident := func(sa string) *identity.Static {
		id := spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/" + sa)
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			b.Fatal(err)
		}
		cert, err := ca.SignWorkload(id, key.Public(), time.Now().Add(-time.Minute), time.Now().Add(time.Hour))
		if err != nil {
			b.Fatal(err)
		}
		return &identity.Static{Identity: id, Pool: ca.Pool(), Cert: &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}}
	}
	body := strings.Repeat("x", 1024)
	common := func(sans ...string) *tlsv3.CommonTlsContext {
		var ms []*tlsv3.SubjectAltNameMatcher
		for _, s := range sans {
			ms = append(ms, &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI,
				Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}})
		}
		return &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: cluster.WorkloadCertSecret}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: ms},
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: cluster.RootCASecret},
				}},
		}
	}
	serve := func(b *testing.B, strict bool) string {
		addr := nextAddr() + ":9080"
		l := httpListener("inbound|9080", addr, &hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{
			RouteConfig: &routev3.RouteConfiguration{Name: "inbound", VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"},
				Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200,
						Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body}}}}}}}}}}})
		if strict {
			dc := common()
			dc.AlpnProtocols = []string{"h2", "http/1.1"}
			l.FilterChains[0].TransportSocket = &corev3.TransportSocket{Name: cluster.TLSSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{
				TypedConfig: mustAny(&tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: dc})}}
		}
		cfg, err := listener.Compile(l)
		if err != nil {
			b.Fatal(err)
		}
		m := listener.NewManager(&listener.Stats{}, slog.New(slog.DiscardHandler), time.Second)
		m.SetIdentity(ident("reviews"))
		if err := m.Apply(map[string]listener.Desired{cfg.Name: {Config: cfg, Routes: cfg.Inline}}); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { m.Drain(context.Background()) })
		return addr
	}
	transport := func(b *testing.B, strict bool) *http.Transport {
		c := &clusterv3.Cluster{Name: "bench", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}}
		if strict {
			c.TransportSocket = &corev3.TransportSocket{Name: cluster.TLSSocketName, ConfigType: &corev3.TransportSocket_TypedConfig{
				TypedConfig: mustAny(&tlsv3.UpstreamTlsContext{Sni: "outbound_.9080_._.reviews.default.svc.cluster.local",
					CommonTlsContext: common("spiffe://cluster.local/ns/default/sa/reviews")})}}
		}
		cfg, err := cluster.Compile(c)
		if err != nil {
			b.Fatal(err)
		}
		pools := &cluster.Pools{Identity: ident("productpage")}
		b.Cleanup(pools.CloseIdle)
		return pools.ForTLS(cfg, cfg.TLS).HTTP1
	}
	for _, mode := range []string{"plaintext", "mtls"} {
		strict := mode == "mtls"
		addr := serve(b, strict)
		tr := transport(b, strict)
		req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
		get := func() {
			res, err := tr.RoundTrip(req)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || n != 1024 {
				b.Fatalf("%d, %d bytes", res.StatusCode, n)
			}
		}
		b.Run(mode+"/reuse", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				get()
			}
		})
		b.Run(mode+"/new-connection", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				get()
				tr.CloseIdleConnections()
			}
		})
	}
}

// BenchmarkAuthorization measures a request through a sidecar whose listener runs an RBAC
// ALLOW filter of n Istio-shaped policies (method and path prefix each), of which only the
// last matches the request, and one through a local rate limit filter whose bucket never
// runs dry; "none" is the same hop without them.
func BenchmarkAuthorization(b *testing.B) {
	body := strings.Repeat("x", 1024)
	up := upstream(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) }))
	rbacFilter := func(n int) *hcmv3.HttpFilter {
		policies := map[string]*rbacconfigv3.Policy{}
		for i := range n {
			name := fmt.Sprintf("ns[default]-policy[p%03d]-rule[0]", i)
			policies[name] = &rbacconfigv3.Policy{
				Permissions: []*rbacconfigv3.Permission{{Rule: &rbacconfigv3.Permission_AndRules{AndRules: &rbacconfigv3.Permission_Set{Rules: []*rbacconfigv3.Permission{
					{Rule: &rbacconfigv3.Permission_Header{Header: &routev3.HeaderMatcher{Name: ":method",
						HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: "GET"}}}}}},
					{Rule: &rbacconfigv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{Rule: &matcherv3.PathMatcher_Path{Path: &matcherv3.StringMatcher{
						MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: fmt.Sprintf("/api/v%d/", i)}}}}}},
				}}}}},
				Principals: []*rbacconfigv3.Principal{{Identifier: &rbacconfigv3.Principal_Any{Any: true}}},
			}
		}
		return &hcmv3.HttpFilter{Name: "envoy.filters.http.rbac", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&rbachttpv3.RBAC{
			Rules: &rbacconfigv3.RBAC{Action: rbacconfigv3.RBAC_ALLOW, Policies: policies}})}}
	}
	always := &corev3.RuntimeFractionalPercent{DefaultValue: percent100()}
	rateLimit := &hcmv3.HttpFilter{Name: "envoy.filters.http.local_ratelimit", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&localrlv3.LocalRateLimit{
		StatPrefix: "bench", FilterEnabled: always, FilterEnforced: always,
		TokenBucket: &typev3.TokenBucket{MaxTokens: math.MaxUint32, TokensPerFill: wrapperspb.UInt32(math.MaxUint32), FillInterval: durationpb.New(time.Second)}})}}
	cases := []struct {
		name    string
		filters []*hcmv3.HttpFilter
		path    string
	}{
		{"none", nil, "/api/v9/products"},
		{"rbac-10-policies", []*hcmv3.HttpFilter{rbacFilter(10)}, "/api/v9/products"},
		{"rbac-100-policies", []*hcmv3.HttpFilter{rbacFilter(100)}, "/api/v99/products"},
		{"ratelimit", []*hcmv3.HttpFilter{rateLimit}, "/api/v9/products"},
	}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			cp := startControlPlane(b, "127.0.0.1:0", nil)
			addr := nextAddr()
			cp.set(nodeID(addr, "test"), world{addr: addr, httpFilters: tc.filters, services: []service{{domains: []string{"bench"},
				backends: []backend{{cluster: "bench", weight: 1, endpoints: []string{up}}}}}}.snapshot("1"))
			p := startProxy(b, cp, addr, "--log-level", "warn")
			tr := &http.Transport{MaxIdleConnsPerHost: 16}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			req, _ := http.NewRequest("GET", "http://"+net.JoinHostPort(p.addr, "15001")+tc.path, nil)
			req.Host = "bench"
			b.ReportAllocs()
			for b.Loop() {
				res, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK {
					b.Fatalf("status %d", res.StatusCode)
				}
			}
		})
	}
}
