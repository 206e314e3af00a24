package proxy

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// gate is an upstream whose requests wait until the test lets them through.
type gate struct {
	mu      sync.Mutex
	inside  int
	arrived chan struct{}
	open    chan struct{}
}

func newGate() *gate { return &gate{arrived: make(chan struct{}, 100), open: make(chan struct{})} }

func (g *gate) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	g.mu.Lock()
	g.inside++
	g.mu.Unlock()
	g.arrived <- struct{}{}
	select {
	case <-g.open:
	case <-r.Context().Done():
	}
	w.Write([]byte("through"))
}

func (g *gate) release() {
	select {
	case <-g.open:
	default:
		close(g.open)
	}
}

func thresholds(t *clusterv3.CircuitBreakers_Thresholds) *clusterv3.CircuitBreakers {
	return &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{t}}
}

func TestCircuitBreakers(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	addr := nextAddr()
	pool, requests := newGate(), newGate()
	t.Cleanup(pool.release)
	t.Cleanup(requests.release)
	remotes := map[string]bool{}
	var remotesMu sync.Mutex
	conns := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		remotesMu.Lock()
		remotes[r.RemoteAddr] = true
		remotesMu.Unlock()
		w.Write([]byte("ok"))
	}))
	always503 := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	perConn := mustAny(&httpv3.HttpProtocolOptions{CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(2)}})
	w := world{addr: addr,
		services: []service{
			{domains: []string{"httpbin"}, backends: []backend{{cluster: "httpbin", weight: 1, endpoints: []string{upstream(t, pool)}}}},
			{domains: []string{"limited"}, backends: []backend{{cluster: "limited", weight: 1, endpoints: []string{upstream(t, requests)}}}},
			{domains: []string{"per-conn"}, backends: []backend{{cluster: "per-conn", weight: 1, endpoints: []string{conns}}}},
			{domains: []string{"no-retries"}, backends: []backend{{cluster: "no-retries", weight: 1, endpoints: []string{always503}}}},
		},
		mutateClusters: func(name string, c *clusterv3.Cluster) {
			switch name {
			case "httpbin": // task-circuit-breaking-dr.yaml
				c.CircuitBreakers = thresholds(&clusterv3.CircuitBreakers_Thresholds{
					MaxConnections: wrapperspb.UInt32(1), MaxPendingRequests: wrapperspb.UInt32(1)})
			case "limited":
				c.CircuitBreakers = thresholds(&clusterv3.CircuitBreakers_Thresholds{MaxRequests: wrapperspb.UInt32(1)})
			case "per-conn":
				c.TypedExtensionProtocolOptions = map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": perConn}
			case "no-retries":
				c.CircuitBreakers = thresholds(&clusterv3.CircuitBreakers_Thresholds{MaxRetries: wrapperspb.UInt32(0)})
			}
		},
		mutate: func(rc *routev3.RouteConfiguration) {
			rc.VirtualHosts[3].Routes[0].GetRoute().RetryPolicy = retryPolicy("5xx", 3)
		},
	}
	cp.set(nodeID(addr, "test"), w.snapshot("1"))
	p := startProxy(t, cp, addr)

	type result struct {
		status int
		body   string
		header http.Header
	}
	send := func(host string) <-chan result {
		out := make(chan result, 1)
		go func() {
			res, body, err := p.get(host, "/get")
			if err != nil {
				out <- result{status: -1, body: err.Error()}
				return
			}
			out <- result{res.StatusCode, body, res.Header}
		}()
		return out
	}
	expectOverflow := func(t *testing.T, r result, limit string) {
		t.Helper()
		if r.status != 503 || r.header.Get("X-Envoy-Overloaded") != "true" ||
			r.body != "upstream connect error or disconnect/reset before headers. reset reason: overflow" {
			t.Fatalf("got %d %q overloaded=%q, want a 503 overflow", r.status, r.body, r.header.Get("X-Envoy-Overloaded"))
		}
		if want := "circuit breaker " + limit; !strings.Contains(r.header.Get("X-Sluice-Reason"), want) {
			t.Errorf("x-sluice-reason %q, want it to name %q", r.header.Get("X-Sluice-Reason"), want)
		}
	}

	t.Run("one connection, one pending: the third concurrent request overflows", func(t *testing.T) {
		first := send("httpbin")
		<-pool.arrived // the one connection is busy
		second := send("httpbin")
		eventually(t, 5*time.Second, "the second request is pending", func() bool {
			return statValue(t, p, "cluster.httpbin.circuit_breakers.default.remaining_pending") == 0
		})
		expectOverflow(t, <-send("httpbin"), "max_pending_requests (1)")
		pool.release()
		for _, ch := range []<-chan result{first, second} {
			if r := <-ch; r.status != 200 || r.body != "through" {
				t.Errorf("admitted request got %d %q", r.status, r.body)
			}
		}
		if got := statValue(t, p, "cluster.httpbin.upstream_rq_pending_overflow"); got != 1 {
			t.Errorf("upstream_rq_pending_overflow %d, want 1", got)
		}
		if statValue(t, p, "http.response_flags.UO") < 1 {
			t.Error("UO not counted")
		}
	})

	t.Run("max_requests", func(t *testing.T) {
		first := send("limited")
		<-requests.arrived
		expectOverflow(t, <-send("limited"), "max_requests (1)")
		requests.release()
		if r := <-first; r.status != 200 {
			t.Errorf("admitted request got %d", r.status)
		}
	})

	t.Run("max_requests_per_connection", func(t *testing.T) {
		p.client.CloseIdleConnections()
		for range 6 {
			if res, _, err := p.get("per-conn", "/"); err != nil || res.StatusCode != 200 {
				t.Fatalf("%v %v", res, err)
			}
		}
		remotesMu.Lock()
		defer remotesMu.Unlock()
		if len(remotes) != 3 {
			t.Errorf("6 sequential requests used %d connections, want 3 (2 requests each)", len(remotes))
		}
	})

	t.Run("max_retries 0 turns every retry away", func(t *testing.T) {
		res, _, err := p.get("no-retries", "/")
		if err != nil || res.StatusCode != 503 || res.Header.Get("X-Envoy-Overloaded") != "" {
			t.Fatalf("%v %v: want the upstream's own 503, passed on", res, err)
		}
		if statValue(t, p, "cluster.no-retries.upstream_rq_retry_overflow") != 1 || statValue(t, p, "cluster.upstream_rq_retry_overflow") != 1 {
			t.Error("the refused retry is not counted")
		}
	})
}
