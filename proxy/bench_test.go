package proxy

import (
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

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
