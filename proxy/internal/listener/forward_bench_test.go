package listener

import (
	"bufio"
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluicemesh/sluice/proxy/internal/cluster"
	"github.com/sluicemesh/sluice/proxy/internal/telemetry"
)

// cannedUpstream is an HTTP/1.1 server on loopback that answers every request with the same
// 1 KiB response, reading and writing with fixed buffers: it allocates nothing per request,
// so a benchmark's allocations are the proxy's and its transport's alone.
type cannedUpstream struct {
	ln    net.Listener
	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func startCannedUpstream(tb testing.TB) *cannedUpstream {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	u := &cannedUpstream{ln: ln, conns: map[net.Conn]bool{}}
	answer := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1024\r\n\r\n" + strings.Repeat("x", 1024))
	u.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.conns[c] = true
			u.mu.Unlock()
			u.wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					// A GET without a body: the request ends at the empty line.
					for {
						line, err := br.ReadSlice('\n')
						if err != nil {
							return
						}
						if len(line) <= 2 {
							break
						}
					}
					if _, err := c.Write(answer); err != nil {
						return
					}
				}
			})
		}
	})
	tb.Cleanup(func() {
		ln.Close()
		u.mu.Lock()
		for c := range u.conns {
			c.Close()
		}
		u.mu.Unlock()
		u.wg.Wait()
	})
	return u
}

// BenchmarkForward measures the routing path of one proxied request: the handler, its
// filters and router, the upstream request and the answer copied back, through Go's pooled
// transport to a loopback upstream that allocates nothing. The ResponseWriter keeps nothing,
// so net/http's server side is not counted; what is reported (allocs/op, B/op) is the
// listener's share plus the transport's. The route is Istio's default for a sidecar: no
// route timeout, two retries on connection failures and 503s, x-request-id generated.
//
// "plain" records no telemetry; "source" records as the outbound listener does (and sends
// the peer header to a mesh endpoint); "destination" records as an inbound listener, with
// the caller's peer header to read.
func BenchmarkForward(b *testing.B) {
	up := startCannedUpstream(b)
	var pools cluster.Pools
	defer pools.CloseIdle()
	addr := up.ln.Addr().String()
	ccfg := &cluster.Config{Name: "outbound|80||upstream.bench.example", Discovery: cluster.Static,
		Policy: cluster.LeastRequest, Limits: cluster.DefaultLimits, ConnectTimeout: time.Second,
		Static: &cluster.Assignment{Endpoints: []cluster.EndpointSpec{{Address: addr, Weight: 1}},
			Identities: map[string]*cluster.Identity{addr: {Workload: "up-v1", Namespace: "default", Version: "v1", App: "up"}}}}
	set := cluster.Set{ccfg.Name: cluster.New(ccfg, nil, nil, &pools)}
	rc := &routev3.RouteConfiguration{Name: "80", VirtualHosts: []*routev3.VirtualHost{{Name: "upstream", Domains: []string{"*"},
		Routes: []*routev3.Route{{Name: "default", Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: ccfg.Name},
				Timeout:          durationpb.New(0),
				RetryPolicy: &routev3.RetryPolicy{RetryOn: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
					NumRetries: wrapperspb.UInt32(2), RetriableStatusCodes: []uint32{503}},
			}}}}}}}
	tel := &Telemetry{Recorder: telemetry.NewRecorder(telemetry.Options{SuccessLogsPerSecond: -1}),
		Self: Peer{"client-v1", "default", "v1", "client"}, Service: "up.default.svc.cluster.local"}

	for _, arm := range []struct {
		name, listener string
		t              *Telemetry
	}{
		{"plain", "virtualOutbound", nil},
		{"source", "virtualOutbound", tel},
		{"destination", "inbound|8080", tel},
	} {
		b.Run(arm.name, func(b *testing.B) {
			cfg := testListener(b, arm.listener, "127.0.0.1:15001", rc, nil)
			h := &handler{stats: &Stats{}, rec: recordingFor(arm.t, arm.listener)}
			h.serving.Store(&Serving{Config: cfg, Routes: cfg.Inline, Clusters: set})
			// A server's request context can be cancelled; the transport ties its own to it.
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := httptest.NewRequestWithContext(ctx, http.MethodGet, "http://upstream.bench.example/", nil)
			r.RequestURI = "/"
			r.Header.Set("User-Agent", "fortio.org/fortio-1.68.2")
			r.Header.Set("Accept", "*/*")
			r.Header.Set("X-Sluice-Peer", "workload=client-v1;namespace=default;version=v1;app=client")
			w := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, r)
			}
			if n := h.stats.UpstreamRequests.Load(); n == 0 {
				b.Fatal("no request went upstream")
			}
		})
	}
}
