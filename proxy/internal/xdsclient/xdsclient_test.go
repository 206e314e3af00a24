package xdsclient

import (
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluicemesh/sluice/internal/meta"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// recorder is a Handler that records updates and rejects what reject says.
type recorder struct {
	updates []string // "TYPE version names"
	held    map[string]map[string]*Resource
	reject  func(typeURL string, rs map[string]*Resource) error
}

func (r *recorder) Update(typeURL, version string, rs map[string]*Resource) error {
	if r.reject != nil {
		if err := r.reject(typeURL, rs); err != nil {
			return err
		}
	}
	var names []string
	for n := range rs {
		names = append(names, n)
	}
	r.updates = append(r.updates, Short(typeURL)+" "+version+" "+strings.Join(sorted(names), ","))
	if r.held == nil {
		r.held = map[string]map[string]*Resource{}
	}
	r.held[typeURL] = rs
	return nil
}

func sorted(s []string) []string {
	for i := range s {
		for j := i + 1; j < len(s); j++ {
			if s[j] < s[i] {
				s[i], s[j] = s[j], s[i]
			}
		}
	}
	return s
}

func newTestClient(h Handler) *Client {
	return New(Config{Target: "127.0.0.1:1", Handler: h, Log: slog.New(slog.DiscardHandler),
		Node: &corev3.Node{Id: "sidecar~127.0.0.6~r.default~default.svc.cluster.local"}})
}

func response(typeURL, version, nonce string, msgs ...proto.Message) *discoveryv3.DiscoveryResponse {
	res := &discoveryv3.DiscoveryResponse{TypeUrl: typeURL, VersionInfo: version, Nonce: nonce}
	for _, m := range msgs {
		a, err := anypb.New(m)
		if err != nil {
			panic(err)
		}
		res.Resources = append(res.Resources, a)
	}
	return res
}

func rdsListener(name, routeName string) *listenerv3.Listener {
	hcm, _ := anypb.New(&hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{
		Rds: &hcmv3.Rds{RouteConfigName: routeName}}})
	return &listenerv3.Listener{Name: name, FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: hcm}}}}}}
}

func edsCluster(name, service string) *clusterv3.Cluster {
	return &clusterv3.Cluster{Name: name, ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig: &clusterv3.Cluster_EdsClusterConfig{ServiceName: service}}
}

func describe(out []outgoing) string {
	var parts []string
	for _, o := range out {
		r := o.req
		s := Short(r.GetTypeUrl()) + " v=" + r.GetVersionInfo() + " n=" + r.GetResponseNonce() + " [" + strings.Join(r.GetResourceNames(), ",") + "]"
		if r.GetErrorDetail() != nil {
			s += " NACK"
		}
		if o.delay > 0 {
			s += " delayed"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}

func TestACKAndSubscriptions(t *testing.T) {
	h := &recorder{}
	c := newTestClient(h)
	steps := []struct {
		res  *discoveryv3.DiscoveryResponse
		want string
	}{
		// CDS: ACK, then subscribe EDS to the EDS clusters' service names.
		{response(ClusterType, "1", "a", edsCluster("c1", ""), edsCluster("c2", "svc2"),
			&clusterv3.Cluster{Name: "static"}), "CDS v=1 n=a []; EDS v= n= [c1,svc2]"},
		// LDS: ACK, then subscribe RDS.
		{response(ListenerType, "1", "b", rdsListener("l1", "outbound"), rdsListener("l2", "outbound")),
			"LDS v=1 n=b []; RDS v= n= [outbound]"},
		{response(RouteType, "1", "c", &routev3.RouteConfiguration{Name: "outbound"}), "RDS v=1 n=c [outbound]"},
		// An EDS response with one of two assignments: the other is not forgotten later.
		{response(EndpointType, "1", "d", &endpointv3.ClusterLoadAssignment{ClusterName: "c1"}), "EDS v=1 n=d [c1,svc2]"},
		{response(EndpointType, "2", "e", &endpointv3.ClusterLoadAssignment{ClusterName: "svc2"}), "EDS v=2 n=e [c1,svc2]"},
		// CDS drops c1: EDS unsubscribes from it and the handler forgets its assignment.
		{response(ClusterType, "2", "f", edsCluster("c2", "svc2")), "CDS v=2 n=f []; EDS v=2 n=e [svc2]"},
	}
	for i, s := range steps {
		if got := describe(c.handle(s.res)); got != s.want {
			t.Fatalf("step %d: sent %q, want %q", i, got, s.want)
		}
	}
	want := "CDS 1 c1,c2,static|LDS 1 l1,l2|RDS 1 outbound|EDS 1 c1|EDS 2 c1,svc2|CDS 2 c2|EDS 2 svc2"
	if got := strings.Join(h.updates, "|"); got != want {
		t.Errorf("updates\n%s\nwant\n%s", got, want)
	}
	// An unchanged resource keeps its *Resource, and its version.
	st := c.Status()
	for _, ts := range st.Types {
		if ts.Type == EndpointType {
			if len(ts.Resources) != 1 || ts.Resources[0].Version != "2" {
				t.Errorf("EDS resources %v", ts.Resources)
			}
		}
	}
}

func TestNACKKeepsTheLastGoodVersionAndBacksOff(t *testing.T) {
	h := &recorder{}
	c := newTestClient(h)
	c.handle(response(ListenerType, "1", "a", rdsListener("l1", "r1")))
	h.reject = func(string, map[string]*Resource) error { return errors.New("listener \"l1\": something is wrong") }
	out := c.handle(response(ListenerType, "2", "b", rdsListener("l1", "r2")))
	if got := describe(out); got != "LDS v=1 n=b [] NACK" {
		t.Fatalf("sent %q", got)
	}
	if msg := out[0].req.GetErrorDetail().GetMessage(); msg != `listener "l1": something is wrong` {
		t.Errorf("error_detail %q", msg)
	}
	// The RDS subscription still follows version 1.
	if got := c.types[RouteType].names; len(got) != 1 || got[0] != "r1" {
		t.Errorf("RDS names %v, want [r1]", got)
	}
	// The server sends version 2 again: the NACK waits, longer each time, up to 2s.
	var delays []time.Duration
	for i := range 8 {
		out := c.handle(response(ListenerType, "2", string(rune('c'+i)), rdsListener("l1", "r2")))
		delays = append(delays, out[0].delay)
	}
	if delays[0] != 100*time.Millisecond || delays[1] != 200*time.Millisecond || delays[7] != 2*time.Second {
		t.Errorf("NACK delays %v", delays)
	}
	if st := c.Status(); st.Types[1].LastError == "" || st.Types[1].Version != "1" {
		t.Errorf("status %+v", st.Types[1])
	}
	// A good version clears the error and the back-off.
	h.reject = nil
	if got := describe(c.handle(response(ListenerType, "3", "z", rdsListener("l1", "r2")))); got != "LDS v=3 n=z []; RDS v= n= [r2]" {
		t.Errorf("sent %q", got)
	}
	if st := c.Status(); st.Types[1].LastError != "" {
		t.Errorf("error kept after a good version: %q", st.Types[1].LastError)
	}
}

func TestRejectsMalformedResponses(t *testing.T) {
	c := newTestClient(&recorder{})
	out := c.handle(response(ClusterType, "1", "a", &clusterv3.Cluster{Name: "c"}, &clusterv3.Cluster{Name: "c"}))
	if len(out) != 1 || !strings.Contains(out[0].req.GetErrorDetail().GetMessage(), `CDS "c" appears twice`) {
		t.Errorf("duplicate: %s", describe(out))
	}
	out = c.handle(response(ClusterType, "1", "b", &listenerv3.Listener{Name: "l"}))
	if len(out) != 1 || !strings.Contains(out[0].req.GetErrorDetail().GetMessage(), "type type.googleapis.com/envoy.config.listener.v3.Listener in a CDS response") {
		t.Errorf("wrong type: %s", describe(out))
	}
}

func TestDrainSetsTheMetadata(t *testing.T) {
	c := newTestClient(&recorder{})
	if err := c.Drain(); !errors.Is(err, ErrNotConnected) {
		t.Errorf("Drain without a stream: %v", err)
	}
	req := c.requestLocked(ListenerType)
	if req.GetNode().GetMetadata().GetFields()[meta.KeyDraining].GetStringValue() != "true" {
		t.Errorf("after Drain, requests carry node %v", req.GetNode())
	}
	if c.cfg.Node.GetMetadata().GetFields()[meta.KeyDraining] != nil {
		t.Error("Drain changed the caller's node")
	}
}

func TestAppHealthIsCarriedByEveryRequest(t *testing.T) {
	c := newTestClient(&recorder{})
	health := func() string {
		return c.requestLocked(ClusterType).GetNode().GetMetadata().GetFields()[meta.KeyAppHealth].GetStringValue()
	}
	if err := c.SetAppHealth(meta.AppNotReady + "TCP connect to 127.0.0.1:80: connection refused"); !errors.Is(err, ErrNotConnected) {
		t.Errorf("SetAppHealth without a stream: %v", err)
	}
	if got := health(); got != "not ready: TCP connect to 127.0.0.1:80: connection refused" {
		t.Errorf("requests carry %s=%q", meta.KeyAppHealth, got)
	}
	// Draining keeps the health, and health set while draining reaches the draining node.
	_ = c.Drain()
	if err := c.SetAppHealth(meta.AppReady); !errors.Is(err, ErrNotConnected) {
		t.Errorf("SetAppHealth without a stream: %v", err)
	}
	if got := health(); got != meta.AppReady {
		t.Errorf("while draining, requests carry %s=%q", meta.KeyAppHealth, got)
	}
	if c.cfg.Node.GetMetadata().GetFields()[meta.KeyAppHealth] != nil {
		t.Error("SetAppHealth changed the caller's node")
	}
	// The same value again sends nothing, not even the error.
	if err := c.SetAppHealth(meta.AppReady); err != nil {
		t.Errorf("SetAppHealth with the value it has: %v", err)
	}
}

func TestParseAppHealth(t *testing.T) {
	for v, want := range map[string]struct {
		ready  bool
		reason string
	}{
		"":                       {true, ""},
		meta.AppReady:            {true, ""},
		"not ready: GET /h: 503": {false, "GET /h: 503"},
		"not ready":              {false, ""},
		"something new":          {true, ""},
	} {
		if ready, reason := meta.ParseAppHealth(v); ready != want.ready || reason != want.reason {
			t.Errorf("ParseAppHealth(%q) = %v, %q; want %v, %q", v, ready, reason, want.ready, want.reason)
		}
	}
}

func TestBackoffIsBoundedFullJitter(t *testing.T) {
	c := newTestClient(&recorder{})
	for n, ceiling := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond,
		5: 1600 * time.Millisecond, 9: 15 * time.Second, 60: 15 * time.Second} {
		var maxSeen time.Duration
		for range 200 {
			d := c.backoff(n)
			if d < 0 || d > ceiling {
				t.Fatalf("attempt %d waits %v, beyond [0, %v]", n, d, ceiling)
			}
			maxSeen = max(maxSeen, d)
		}
		if maxSeen < ceiling/2 {
			t.Errorf("attempt %d: longest wait %v of 200 draws, want near %v", n, maxSeen, ceiling)
		}
	}
}
