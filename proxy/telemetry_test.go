package proxy

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluicemesh/sluice/internal/meta"
)

// scrape returns the proxy's Prometheus exposition from port.
func scrape(t testing.TB, addr, port string) string {
	t.Helper()
	res, err := http.Get("http://" + net.JoinHostPort(addr, port) + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET /stats/prometheus: %d %s", res.StatusCode, b)
	}
	return string(b)
}

// A request that crosses the proxy twice, out through its outbound listener and back in
// through its own inbound listener, is recorded once on each side with Istio's labels: the
// source side names the endpoint's workload from its EDS metadata, the destination side
// names the caller from the peer header, which the application never sees.
func TestTelemetryRecordsBothSides(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	addr := nextAddr()
	var mu sync.Mutex
	var appSawPeer []string
	app := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		appSawPeer = append(appSawPeer, r.Header.Get(meta.PeerHeader))
		mu.Unlock()
		if r.URL.Path == "/fail" {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, "hello")
	}))
	// An endpoint EDS does not name (a ServiceEntry's host, say) learns nothing of the mesh.
	externalSawPeer := make(chan string, 1)
	external := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		externalSawPeer <- r.Header.Get(meta.PeerHeader)
	}))
	cluster := meta.OutboundCluster(8080, "v2", meta.FQDN("svc", "default"))
	w := world{addr: addr,
		services: []service{{domains: []string{"svc"}, backends: []backend{{cluster: cluster, weight: 1,
			endpoints: []string{net.JoinHostPort(addr, "8080")}}}},
			{domains: []string{"external.example.com"}, backends: []backend{{cluster: "outbound|80||external.example.com", weight: 1,
				endpoints: []string{external}}}}},
		inbound: map[uint32]string{8080: app},
	}
	s := w.snapshot("1")
	for name, r := range s.GetResources(resource.EndpointType) {
		if name != cluster {
			continue
		}
		for _, lbe := range r.(*endpointv3.ClusterLoadAssignment).Endpoints[0].LbEndpoints {
			lbe.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": {Fields: map[string]*structpb.Value{
				"workload": structpb.NewStringValue("svc-v2"), "namespace": structpb.NewStringValue("default"),
				"version": structpb.NewStringValue("v2"), "app": structpb.NewStringValue("svc"),
			}}}}
		}
	}
	cp.set(nodeID(addr, "test"), s)
	p := startProxy(t, cp, addr, "--prometheus-port", "15091")

	for i := 0; i < 3; i++ {
		req, _ := http.NewRequest(http.MethodGet, "http://"+net.JoinHostPort(addr, "15001")+"/", nil)
		req.Host = "svc"
		req.Header.Set(meta.PeerHeader, "workload=forged") // replaced by the proxy's own
		res, body, err := do(p.client, req)
		if err != nil || res.StatusCode != http.StatusOK || body != "hello" {
			t.Fatalf("request %d: %v %v %q", i, res, err, body)
		}
	}
	if res, _, err := p.get("svc", "/fail"); err != nil || res.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("GET /fail: %v %v", res, err)
	}
	req, _ := http.NewRequest(http.MethodGet, "http://"+net.JoinHostPort(addr, "15001")+"/", nil)
	req.Host = "external.example.com"
	req.Header.Set(meta.PeerHeader, "workload=forged")
	if res, _, err := do(p.client, req); err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET external: %v %v", res, err)
	}
	if v := <-externalSawPeer; v != "" {
		t.Errorf("an endpoint outside the mesh saw %s: %q", meta.PeerHeader, v)
	}
	if res, _, err := p.get("nowhere", "/"); err != nil || res.StatusCode != http.StatusNotFound {
		t.Fatalf("GET nowhere: %v %v", res, err)
	}
	mu.Lock()
	if len(appSawPeer) != 4 || slices.ContainsFunc(appSawPeer, func(v string) bool { return v != "" }) {
		t.Errorf("the application saw %s values %q; want 4 requests without it", meta.PeerHeader, appSawPeer)
	}
	mu.Unlock()

	text := scrape(t, addr, "15091")
	self := `source_workload="test",source_workload_namespace="default",source_app="test",source_version="v1"`
	dst := `destination_service="svc.default.svc.cluster.local",destination_workload="svc-v2",destination_workload_namespace="default",destination_app="svc",destination_version="v2"`
	own := `destination_service="test.default.svc.cluster.local",destination_workload="test",destination_workload_namespace="default",destination_app="test",destination_version="v1"`
	unknownDst := `destination_service="unknown",destination_workload="unknown",destination_workload_namespace="unknown",destination_app="unknown",destination_version="unknown"`
	for _, want := range []string{
		`istio_requests_total{reporter="source",` + self + `,` + dst + `,request_protocol="http",response_code="200",grpc_response_status="",response_flags="-",connection_security_policy="unknown"} 3`,
		`istio_requests_total{reporter="source",` + self + `,` + dst + `,request_protocol="http",response_code="503",grpc_response_status="",response_flags="-",connection_security_policy="unknown"} 1`,
		`istio_requests_total{reporter="destination",` + self + `,` + own + `,request_protocol="http",response_code="200",grpc_response_status="",response_flags="-",connection_security_policy="none"} 3`,
		`istio_requests_total{reporter="destination",` + self + `,` + own + `,request_protocol="http",response_code="503",grpc_response_status="",response_flags="-",connection_security_policy="none"} 1`,
		`istio_requests_total{reporter="source",` + self + `,` + unknownDst + `,request_protocol="http",response_code="404",grpc_response_status="",response_flags="NR",connection_security_policy="unknown"} 1`,
		`istio_response_bytes_sum{reporter="source",` + self + `,` + dst + `,request_protocol="http",response_code="200",grpc_response_status="",response_flags="-",connection_security_policy="unknown"} 15`,
	} {
		if !strings.Contains(text, want+"\n") {
			t.Errorf("exposition lacks\n%s\n\ngot:\n%s", want, requestsLines(text))
		}
	}
	if admin := scrape(t, addr, "15000"); requestsLines(admin) != requestsLines(text) {
		t.Errorf("admin /stats/prometheus differs from the Prometheus port's")
	}
}

func requestsLines(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, "istio_requests_total{") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// With --telemetry false nothing is recorded and no Prometheus port is bound; with
// --prometheus-port 0 requests are recorded (the admin server shows them) but the port is
// not bound.
func TestTelemetryFlags(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	for _, tc := range []struct {
		name      string
		flags     []string
		recording bool
	}{
		{"off", []string{"--telemetry", "false"}, false},
		{"no port", []string{"--prometheus-port", "0"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			addr := nextAddr()
			up := upstream(t, textServer("up"))
			cp.set(nodeID(addr, "test"), world{addr: addr, services: []service{{domains: []string{"up"},
				backends: []backend{{cluster: "up", weight: 1, endpoints: []string{up}}}}}}.snapshot("1"))
			p := startProxy(t, cp, addr, tc.flags...)
			if res, _, err := p.get("up", "/"); err != nil || res.StatusCode != http.StatusOK {
				t.Fatalf("GET: %v %v", res, err)
			}
			if c, err := net.Dial("tcp", net.JoinHostPort(addr, fmt.Sprint(meta.PrometheusPort))); err == nil {
				c.Close()
				t.Errorf("port %d is served", meta.PrometheusPort)
			}
			res, err := http.Get("http://" + net.JoinHostPort(addr, "15000") + "/stats/prometheus")
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			recorded := res.StatusCode == http.StatusOK && strings.Contains(string(b), `istio_requests_total{reporter="source"`)
			if recorded != tc.recording {
				t.Errorf("admin /stats/prometheus: %d, recorded %v, want %v\n%s", res.StatusCode, recorded, tc.recording, b)
			}
		})
	}
}

// BenchmarkRecording measures what recording adds to a request: the same request through the
// outbound listener of a proxy with --telemetry false and of one with recording on (one label
// set, seen before: the steady state), keep-alive, a 1 KiB answer. The difference is the
// per-request cost of telemetry, peer header included.
func BenchmarkRecording(b *testing.B) {
	body := strings.Repeat("x", 1024)
	up := upstream(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	cp := startControlPlane(b, "127.0.0.1:0", nil)
	for _, arm := range []struct {
		name  string
		flags []string
	}{
		{"off", []string{"--telemetry", "false"}},
		{"on", nil},
	} {
		addr := nextAddr()
		cluster := meta.OutboundCluster(80, "v1", meta.FQDN("bench", "default"))
		cp.set(nodeID(addr, "test"), world{addr: addr, services: []service{{domains: []string{"bench"},
			backends: []backend{{cluster: cluster, weight: 1, endpoints: []string{up}}}}}}.snapshot("1"))
		p := startProxy(b, cp, addr, append([]string{"--log-level", "warn"}, arm.flags...)...)
		b.Run(arm.name, func(b *testing.B) {
			tr := &http.Transport{MaxIdleConnsPerHost: 16}
			defer tr.CloseIdleConnections()
			c := &http.Client{Transport: tr}
			req, _ := http.NewRequest(http.MethodGet, "http://"+net.JoinHostPort(p.addr, "15001")+"/bench", nil)
			req.Host = "bench"
			b.ReportAllocs()
			for b.Loop() {
				res, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				n, _ := io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != http.StatusOK || n != 1024 {
					b.Fatalf("%d, %d bytes", res.StatusCode, n)
				}
			}
		})
	}
}
