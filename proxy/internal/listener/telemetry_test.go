package listener

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/sluicemesh/sluice/proxy/internal/route"
	"github.com/sluicemesh/sluice/proxy/internal/telemetry"
)

func TestPeerHeaderRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		peer Peer
		want string
	}{
		{"full", Peer{"reviews-v2", "default", "v2", "reviews"}, "workload=reviews-v2;namespace=default;version=v2;app=reviews"},
		{"no version", Peer{Workload: "istio-ingressgateway", Namespace: "istio-system"}, "workload=istio-ingressgateway;namespace=istio-system"},
		{"empty", Peer{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.peer.HeaderValue(); got != tc.want {
				t.Fatalf("HeaderValue = %q, want %q", got, tc.want)
			}
			if got := ParsePeer(tc.want); got != tc.peer {
				t.Fatalf("ParsePeer(%q) = %+v, want %+v", tc.want, got, tc.peer)
			}
		})
	}
}

func TestParsePeerRefusesBadValues(t *testing.T) {
	for _, tc := range []struct {
		name, value string
		want        Peer
	}{
		{"not pairs", "reviews-v2", Peer{}},
		{"too long", "workload=" + strings.Repeat("x", maxPeerHeader), Peer{}},
		{"unknown keys skipped", "workload=a;cluster=c;version=v1", Peer{Workload: "a", Version: "v1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ParsePeer(tc.value); got != tc.want {
				t.Fatalf("ParsePeer(%q) = %+v, want %+v", tc.value, got, tc.want)
			}
		})
	}
}

func TestTelemetryFlagsMapEveryFlag(t *testing.T) {
	for f := FlagNone + 1; f < NumFlags; f++ {
		got := telemetryFlags(1 << f)
		if got.String() != f.String() {
			t.Errorf("flag %s maps to %s", f, got)
		}
	}
	if got := telemetryFlags(1<<FlagNoHealthyUpstream | 1<<FlagRetryLimitExceeded); got != telemetry.FlagNoHealthyUpstream|telemetry.FlagUpstreamRetryLimitExceeded {
		t.Errorf("UH+URX = %s", got)
	}
}

func TestParsePeerAllocatesNothing(t *testing.T) {
	v := "workload=reviews-v2;namespace=default;version=v2;app=reviews"
	if n := testing.AllocsPerRun(100, func() { _ = ParsePeer(v) }); n != 0 {
		t.Errorf("ParsePeer allocates %v times", n)
	}
}

// nopWriter is a ResponseWriter that keeps nothing, so a benchmark measures the handler.
type nopWriter struct{ h http.Header }

func (w *nopWriter) Header() http.Header         { return w.h }
func (w *nopWriter) Write(b []byte) (int, error) { return len(b), nil }
func (w *nopWriter) WriteHeader(int)             {}

// BenchmarkServeHTTPRecording isolates what recording adds to the handler: a request answered
// by a direct-response route (no network), with and without telemetry, and on the inbound
// (destination) side with the caller's peer header to parse. One label set, seen before.
func BenchmarkServeHTTPRecording(b *testing.B) {
	rc := &routev3.RouteConfiguration{Name: "bench", VirtualHosts: []*routev3.VirtualHost{{
		Name: "all", Domains: []string{"*"}, Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200,
				Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "ok"}}}},
		}},
	}}}
	table, err := route.Compile(rc)
	if err != nil {
		b.Fatal(err)
	}
	tel := &Telemetry{Recorder: telemetry.NewRecorder(telemetry.Options{SuccessLogsPerSecond: -1}),
		Self: Peer{"reviews-v2", "default", "v2", "reviews"}, Service: "reviews.default.svc.cluster.local"}
	for _, arm := range []struct {
		name, listener string
		t              *Telemetry
	}{
		{"off", "virtualOutbound", nil},
		{"source", "virtualOutbound", tel},
		{"destination", "inbound|9080", tel},
	} {
		b.Run(arm.name, func(b *testing.B) {
			h := &handler{stats: &Stats{}, rec: recordingFor(arm.t, arm.listener)}
			h.serving.Store(&Serving{Config: &Config{Name: arm.listener}, Routes: table})
			r := httptest.NewRequest(http.MethodGet, "http://reviews:9080/", nil)
			r.Header.Set("X-Sluice-Peer", "workload=productpage-v1;namespace=default;version=v1;app=productpage")
			w := &nopWriter{h: http.Header{}}
			b.ReportAllocs()
			for b.Loop() {
				clear(w.h)
				h.ServeHTTP(w, r)
			}
		})
	}
}

// A request a filter answered before a cluster was picked is reported with the service the
// route leads to.
func TestRouteHost(t *testing.T) {
	for _, tc := range []struct {
		name string
		a    route.Action
		want string
	}{
		{"one cluster", route.Action{Cluster: "outbound|9080|v1|ratings.default.svc.cluster.local"}, "ratings.default.svc.cluster.local"},
		{"subsets of one service", route.Action{Weighted: []route.WeightedCluster{
			{Name: "outbound|9080|v1|reviews.default.svc.cluster.local"}, {Name: "outbound|9080|v3|reviews.default.svc.cluster.local"}}}, "reviews.default.svc.cluster.local"},
		{"a split across services", route.Action{Weighted: []route.WeightedCluster{
			{Name: "outbound|9080||reviews.default.svc.cluster.local"}, {Name: "outbound|9080||ratings.default.svc.cluster.local"}}}, ""},
		{"no cluster", route.Action{}, ""},
	} {
		if got := routeHost(&tc.a); got != tc.want {
			t.Errorf("%s: routeHost = %q, want %q", tc.name, got, tc.want)
		}
	}
}
