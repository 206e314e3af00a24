package proxy

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// flakyServer fails every other request it gets with fail (the first one fails), and
// answers the others 200 with the body it received and the x-envoy-attempt-count it saw.
type flakyServer struct {
	calls atomic.Int64
	fail  func(w http.ResponseWriter, r *http.Request)
}

func (f *flakyServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	if f.calls.Add(1)%2 == 1 {
		f.fail(w, r)
		return
	}
	w.Header().Set("X-Attempt", r.Header.Get("X-Envoy-Attempt-Count"))
	w.Write(b)
}

func failWith(code int) func(http.ResponseWriter, *http.Request) {
	return func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }
}

// hangUp closes the connection without answering: a reset.
func hangUp(w http.ResponseWriter, _ *http.Request) {
	c, _, err := http.NewResponseController(w).Hijack()
	if err == nil {
		c.Close()
	}
}

func retryPolicy(on string, n uint32) *routev3.RetryPolicy {
	return &routev3.RetryPolicy{RetryOn: on, NumRetries: wrapperspb.UInt32(n)}
}

func TestRetries(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	addr := nextAddr()

	every503 := &flakyServer{fail: failWith(503)}
	every418 := &flakyServer{fail: failWith(418)}
	everyReset := &flakyServer{fail: hangUp}
	everyGRPCUnavailable := &flakyServer{fail: func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/grpc")
		w.Header().Set("Grpc-Status", "14")
		w.WriteHeader(200)
	}}
	var alwaysCalls atomic.Int64
	always503 := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		alwaysCalls.Add(1)
		w.WriteHeader(503)
	})
	// slowFirst hangs on a request's first try and answers its second at once. It reads
	// the try from x-envoy-attempt-count rather than counting calls: under load the
	// second try can reach it before the first.
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	slowFirst := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Attempt", r.Header.Get("X-Envoy-Attempt-Count"))
		if r.Header.Get("X-Envoy-Attempt-Count") == "1" {
			select {
			case <-release:
			case <-r.Context().Done():
			}
			return
		}
		w.Write([]byte("fast"))
	})
	var hangCalls atomic.Int64
	hangs := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hangCalls.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	})
	good := upstream(t, echoServer("good"))
	// A listener that accepts nothing: every connection is refused.
	dead := func() string {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		a := ln.Addr().String()
		ln.Close()
		return a
	}()

	routes := map[string]*routev3.RetryPolicy{
		"flaky":       retryPolicy("5xx", 2),
		"always":      retryPolicy("5xx", 3),
		"teapot":      {RetryOn: "retriable-status-codes", NumRetries: wrapperspb.UInt32(1), RetriableStatusCodes: []uint32{418}},
		"teapot-no":   retryPolicy("5xx", 1),
		"reset":       retryPolicy("reset", 1),
		"reset-no":    retryPolicy("connect-failure", 1),
		"grpc":        retryPolicy("unavailable", 1),
		"dead":        {RetryOn: "connect-failure", NumRetries: wrapperspb.UInt32(1), HostSelectionRetryMaxAttempts: 5, RetryHostPredicate: previousHosts()},
		"per-try":     {RetryOn: "5xx", NumRetries: wrapperspb.UInt32(1), PerTryTimeout: durationpb.New(400 * time.Millisecond)},
		"route-bound": {RetryOn: "5xx", NumRetries: wrapperspb.UInt32(1000), PerTryTimeout: durationpb.New(100 * time.Millisecond)},
		"fault":       retryPolicy("5xx", 3),
		"attempt":     retryPolicy("5xx", 1),
		"big-body":    retryPolicy("5xx", 1),
	}
	big := &flakyServer{fail: failWith(503)}
	teapotNo := &flakyServer{fail: failWith(418)}
	resetNo := &flakyServer{fail: hangUp}
	once := func(f *flakyServer) func(*testing.T, *http.Response) {
		return func(t *testing.T, _ *http.Response) {
			if got := f.calls.Load(); got != 1 {
				t.Errorf("upstream got %d tries, want 1", got)
			}
		}
	}
	w := world{addr: addr,
		services: []service{
			{domains: []string{"flaky"}, backends: []backend{{cluster: "flaky", weight: 1, endpoints: []string{upstream(t, every503)}}}},
			{domains: []string{"always"}, backends: []backend{{cluster: "always", weight: 1, endpoints: []string{upstream(t, always503)}}}},
			{domains: []string{"teapot"}, backends: []backend{{cluster: "teapot", weight: 1, endpoints: []string{upstream(t, every418)}}}},
			{domains: []string{"teapot-no"}, backends: []backend{{cluster: "teapot-no", weight: 1, endpoints: []string{upstream(t, teapotNo)}}}},
			{domains: []string{"reset"}, backends: []backend{{cluster: "reset", weight: 1, endpoints: []string{upstream(t, everyReset)}}}},
			{domains: []string{"reset-no"}, backends: []backend{{cluster: "reset-no", weight: 1, endpoints: []string{upstream(t, resetNo)}}}},
			{domains: []string{"grpc"}, backends: []backend{{cluster: "grpc", weight: 1, endpoints: []string{upstream(t, everyGRPCUnavailable)}}}},
			{domains: []string{"dead"}, backends: []backend{{cluster: "dead", weight: 1, endpoints: []string{dead, good}}}},
			{domains: []string{"per-try"}, backends: []backend{{cluster: "per-try", weight: 1, endpoints: []string{upstream(t, slowFirst)}}}},
			{domains: []string{"route-bound"}, backends: []backend{{cluster: "route-bound", weight: 1, endpoints: []string{upstream(t, hangs)}}}},
			{domains: []string{"fault"}, backends: []backend{{cluster: "fault", weight: 1, endpoints: []string{upstream(t, always503)}}}},
			{domains: []string{"attempt"}, backends: []backend{{cluster: "attempt", weight: 1, endpoints: []string{upstream(t, &flakyServer{fail: failWith(500)})}}}},
			{domains: []string{"big-body"}, backends: []backend{{cluster: "big-body", weight: 1, endpoints: []string{upstream(t, big)}}}},
		},
		httpFilters: []*hcmv3.HttpFilter{faultFilter()},
		mutateClusters: func(name string, c *clusterv3.Cluster) {
			if name == "dead" {
				// Random draws could land on the dead endpoint every time (1 in 64 for six
				// picks of two, in Envoy too); round robin re-selects the other one.
				c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
			}
		},
		mutate: func(rc *routev3.RouteConfiguration) {
			for _, vh := range rc.VirtualHosts {
				ra := vh.Routes[0].GetRoute()
				ra.RetryPolicy = routes[vh.Domains[0]]
				switch vh.Domains[0] {
				case "route-bound":
					ra.Timeout = durationpb.New(2 * time.Second)
				case "fault":
					vh.Routes[0].TypedPerFilterConfig = map[string]*anypb.Any{"envoy.filters.http.fault": mustAny(&faultv3.HTTPFault{Abort: httpAbort(503, 100)})}
				case "attempt", "per-try":
					vh.IncludeRequestAttemptCount = true
				}
			}
		},
	}
	cp.set(nodeID(addr, "test"), w.snapshot("1"))
	p := startProxy(t, cp, addr)

	post := func(host, body string) *http.Request {
		req := p.outboundRequest("POST", host, "/")
		req.Body, req.ContentLength = io.NopCloser(strings.NewReader(body)), int64(len(body))
		return req
	}
	// Each case runs three times, unless it checks counts after one request (check set).
	tests := []struct {
		name       string
		req        func() *http.Request
		wantStatus int
		wantBody   string
		check      func(t *testing.T, res *http.Response)
	}{
		{"5xx: an upstream failing every other request always answers", func() *http.Request { return p.outboundRequest("GET", "flaky", "/") }, 200, "", nil},
		{"the body is sent again on the retry", func() *http.Request { return post("flaky", "payload") }, 200, "payload", nil},
		{"retries exhausted: the last answer is passed on", func() *http.Request { return p.outboundRequest("GET", "always", "/") }, 503, "", func(t *testing.T, _ *http.Response) {
			if got := alwaysCalls.Load(); got != 4 {
				t.Errorf("upstream got %d tries, want 1 + 3 retries", got)
			}
		}},
		{"retriable-status-codes", func() *http.Request { return p.outboundRequest("GET", "teapot", "/") }, 200, "", nil},
		{"a status not listed is not retried", func() *http.Request { return p.outboundRequest("GET", "teapot-no", "/") }, 418, "", once(teapotNo)},
		{"reset", func() *http.Request { return p.outboundRequest("GET", "reset", "/") }, 200, "", nil},
		{"a reset is not a connect failure", func() *http.Request { return p.outboundRequest("GET", "reset-no", "/") }, 503,
			"upstream connect error or disconnect/reset before headers. reset reason: connection termination", once(resetNo)},
		{"gRPC unavailable from grpc-status", func() *http.Request { return p.outboundRequest("GET", "grpc", "/") }, 200, "", nil},
		{"per-try timeout, then a fast try", func() *http.Request { return p.outboundRequest("GET", "per-try", "/") }, 200, "fast", func(t *testing.T, res *http.Response) {
			if got := res.Header.Get("X-Attempt"); got != "2" {
				t.Errorf("the answer came from try %q, want 2", got)
			}
		}},
		{"the route timeout bounds every try", func() *http.Request { return p.outboundRequest("GET", "route-bound", "/") }, 504, "upstream request timeout", func(t *testing.T, res *http.Response) {
			// A try already sent can reach the upstream just after the 504.
			eventually(t, 5*time.Second, "several tries reach the upstream", func() bool { return hangCalls.Load() >= 2 })
			if n := hangCalls.Load(); n > 20 {
				t.Errorf("%d tries of 100ms within the 2s route timeout: want at most 20", n)
			}
			if res.Header.Get("X-Sluice-Reason") == "" {
				t.Error("no x-sluice-reason")
			}
		}},
		{"a fault abort is never retried", func() *http.Request { return p.outboundRequest("GET", "fault", "/") }, 503, "fault filter abort", func(t *testing.T, _ *http.Response) {
			if got := alwaysCalls.Load(); got != 4 {
				t.Errorf("the fault's upstream got %d more tries", got-4)
			}
		}},
		{"x-envoy-attempt-count", func() *http.Request { return p.outboundRequest("GET", "attempt", "/") }, 200, "", func(t *testing.T, res *http.Response) {
			if got := res.Header.Get("X-Attempt"); got != "2" {
				t.Errorf("the successful try saw x-envoy-attempt-count %q, want 2", got)
			}
		}},
		{"a body over the buffer limit is not retried", func() *http.Request { return post("big-body", strings.Repeat("b", 64<<10+1)) }, 503, "", once(big)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for range 3 {
				res, body, err := do(p.client, tt.req())
				if err != nil {
					t.Fatal(err)
				}
				if res.StatusCode != tt.wantStatus || (tt.wantBody != "" && body != tt.wantBody) {
					t.Fatalf("%d %q (reason %q), want %d %q", res.StatusCode, body, res.Header.Get("X-Sluice-Reason"), tt.wantStatus, tt.wantBody)
				}
				if tt.check != nil {
					tt.check(t, res)
					break
				}
			}
		})
	}

	t.Run("previous hosts: a dead endpoint is tried at most once per request", func(t *testing.T) {
		for range 20 {
			res, e := getEcho(t, p, p.outboundRequest("GET", "dead", "/"))
			if res.StatusCode != 200 || e.Name != "good" {
				t.Fatalf("%d from %q (%s), want 200 from good", res.StatusCode, e.Name, res.Header.Get("X-Sluice-Reason"))
			}
		}
	})

	t.Run("stats", func(t *testing.T) {
		if statValue(t, p, "cluster.upstream_rq_retry") == 0 || statValue(t, p, "http.response_flags.URX") == 0 ||
			statValue(t, p, "cluster.upstream_rq_retry_success") == 0 {
			t.Error("retries, retry successes and URX must be counted")
		}
	})
}

func previousHosts() []*routev3.RetryPolicy_RetryHostPredicate {
	return []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts"}}
}
