package proxy

import (
	"io"
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
func BenchmarkFeaturesIdle(b *testing.B) {
	body := strings.Repeat("x", 1024)
	up := upstream(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	cp := startControlPlane(b, "127.0.0.1:0", nil)
	addr := nextAddr()
	hosts := []string{"plain", "retry", "fault0", "breaker", "outlier", "mirror0", "cors", "headers", "ringhash", "all"}
	var services []service
	for _, h := range hosts {
		services = append(services, service{domains: []string{h}, backends: []backend{{cluster: h, weight: 1, endpoints: []string{up}}}})
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
			if name == "outlier" || name == "all" {
				istioOutlierDetection(c, 5, 30*time.Second)
				c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
			}
			if name == "ringhash" {
				c.LbPolicy = clusterv3.Cluster_RING_HASH
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
				if name == "ringhash" {
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
