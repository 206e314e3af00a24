package listener

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluicemesh/sluice/proxy/internal/cluster"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestRequestPath(t *testing.T) {
	for uri, want := range map[string]string{
		"/a/b?c=d":                 "/a/b?c=d",
		"*":                        "*",
		"http://reviews:9080/x?y":  "/x?y",
		"http://reviews:9080":      "/",
		"http://reviews:9080?q=1":  "/?q=1",
		"http://reviews/%2F/a?b=c": "/%2F/a?b=c",
	} {
		r := &http.Request{RequestURI: uri}
		if got := requestPath(r); got != want {
			t.Errorf("requestPath(%q) = %q, want %q", uri, got, want)
		}
	}
}

func TestGRPCTimeout(t *testing.T) {
	for v, want := range map[string]time.Duration{"1S": time.Second, "250m": 250 * time.Millisecond,
		"2H": 2 * time.Hour, "10u": 10 * time.Microsecond, "x": -1, "1x": -1, "123456789S": -1, "": -1} {
		got, ok := grpcTimeout(v)
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("grpcTimeout(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestCopyHeadersDropsHopByHop(t *testing.T) {
	src := http.Header{
		"Connection":        {"keep-alive, X-Private"},
		"Keep-Alive":        {"timeout=5"},
		"Proxy-Connection":  {"keep-alive"},
		"Transfer-Encoding": {"chunked"},
		"Upgrade":           {"websocket"},
		"X-Private":         {"secret"},
		"X-Kept":            {"yes"},
		"Te":                {"trailers"},
	}
	dst := http.Header{}
	copyHeaders(dst, src)
	if len(dst) != 1 || dst.Get("X-Kept") != "yes" {
		t.Errorf("copied %v, want only X-Kept", dst)
	}
}

func TestRequestIDIsAUUID(t *testing.T) {
	re := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	seen := map[string]bool{}
	for range 100 {
		id := newRequestID()
		if !re.MatchString(id) || seen[id] {
			t.Fatalf("request id %q is not a fresh UUIDv4", id)
		}
		seen[id] = true
	}
}

func TestGRPCMessageEncoding(t *testing.T) {
	if got := grpcMessage("a b%c\n✗"); got != "a b%25c%0A%E2%9C%97" {
		t.Errorf("grpcMessage = %q", got)
	}
}

func testListener(t testing.TB, name, addr string, rc *routev3.RouteConfiguration, mod func(*hcmv3.HttpConnectionManager)) *Config {
	t.Helper()
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: name,
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: rc},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: routerTypeURL}}}}}
	if mod != nil {
		mod(hcm)
	}
	a, err := anypb.New(hcm)
	if err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(addr)
	p, _ := net.LookupPort("tcp", port)
	cfg, err := Compile(&listenerv3.Listener{Name: name,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}},
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{Name: "hcm",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: a}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func direct(body string) *routev3.RouteConfiguration {
	return &routev3.RouteConfiguration{Name: "r", VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"},
		Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_DirectResponse{DirectResponse: &routev3.DirectResponseAction{Status: 200,
				Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: body}}}}}}}}}
}

func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func get(t *testing.T, c *http.Client, addr string) (string, error) {
	t.Helper()
	res, err := c.Get("http://" + addr + "/")
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), err
}

func TestManagerLifecycle(t *testing.T) {
	m := NewManager(&Stats{}, slog.New(slog.DiscardHandler), time.Second)
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	addr := freeAddr(t)
	cfg1 := testListener(t, "l", addr, direct("one"), nil)

	// Warming: the socket is bound (a second bind fails) but nothing is served yet.
	if err := m.Apply(map[string]Desired{"l": {Config: cfg1}}); err != nil {
		t.Fatal(err)
	}
	if _, err := net.Listen("tcp", addr); err == nil {
		t.Fatal("a warming listener's address is free")
	}
	if len(m.Addresses()) != 0 {
		t.Fatalf("warming listener reported as serving: %v", m.Addresses())
	}

	// Ready: it serves.
	if err := m.Apply(map[string]Desired{"l": {Config: cfg1, Routes: cfg1.Inline}}); err != nil {
		t.Fatal(err)
	}
	if body, err := get(t, c, addr); err != nil || body != "one" {
		t.Fatalf("got %q %v, want one", body, err)
	}

	// A new version swaps in on the same socket.
	cfg2 := testListener(t, "l", addr, direct("two"), nil)
	if err := m.Apply(map[string]Desired{"l": {Config: cfg2, Routes: cfg2.Inline}}); err != nil {
		t.Fatal(err)
	}
	if body, _ := get(t, c, addr); body != "two" {
		t.Fatalf("after the swap got %q, want two", body)
	}

	// Moving a listener is refused, and nothing changes.
	moved := testListener(t, "l", freeAddr(t), direct("three"), nil)
	if err := m.Apply(map[string]Desired{"l": {Config: moved, Routes: moved.Inline}}); err == nil || !strings.Contains(err.Error(), "cannot change") {
		t.Fatalf("moving a listener: %v", err)
	}
	if body, _ := get(t, c, addr); body != "two" {
		t.Fatalf("after a refused update got %q, want two", body)
	}

	// A port in use fails the update and binds nothing.
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	other := testListener(t, "other", taken.Addr().String(), direct("x"), nil)
	err = m.Apply(map[string]Desired{"l": {Config: cfg2, Routes: cfg2.Inline}, "other": {Config: other, Routes: other.Inline}})
	var be *BindError
	if !errors.As(err, &be) || !be.InUse() {
		t.Fatalf("binding a taken port: %v", err)
	}

	// Connection settings change: the listener is rebound and keeps serving.
	cfg3 := testListener(t, "l", addr, direct("three"), func(h *hcmv3.HttpConnectionManager) {
		h.CommonHttpProtocolOptions = &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(time.Minute)}
	})
	if err := m.Apply(map[string]Desired{"l": {Config: cfg3, Routes: cfg3.Inline}}); err != nil {
		t.Fatal(err)
	}
	c.CloseIdleConnections()
	if body, err := get(t, c, addr); body != "three" {
		t.Fatalf("after a rebind got %q %v, want three", body, err)
	}

	// Removed: the port is released.
	if err := m.Apply(map[string]Desired{}); err != nil {
		t.Fatal(err)
	}
	c.CloseIdleConnections()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ln, err := net.Listen("tcp", addr)
		if err == nil {
			ln.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("removed listener still holds %s", addr)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := m.Drain(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestDrainWaitsForRequestsInFlight(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "done")
	}))
	defer up.Close()
	var pools cluster.Pools
	defer pools.CloseIdle()
	ccfg := &cluster.Config{Name: "up", Discovery: cluster.Static, Policy: cluster.RoundRobin, Limits: cluster.DefaultLimits,
		ConnectTimeout: time.Second, Static: &cluster.Assignment{Endpoints: []cluster.EndpointSpec{{Address: up.Listener.Addr().String(), Weight: 1}}}}
	set := cluster.Set{"up": cluster.New(ccfg, nil, nil, &pools)}

	addr := freeAddr(t)
	rc := &routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"},
		Routes: []*routev3.Route{{Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "up"}}}}}}}}
	cfg := testListener(t, "l", addr, rc, nil)
	m := NewManager(&Stats{}, slog.New(slog.DiscardHandler), time.Second)
	if err := m.Apply(map[string]Desired{"l": {Config: cfg, Routes: cfg.Inline, Clusters: set}}); err != nil {
		t.Fatal(err)
	}
	c := &http.Client{Transport: &http.Transport{}}
	defer c.CloseIdleConnections()
	got := make(chan string, 1)
	go func() {
		body, err := get(t, c, addr)
		if err != nil {
			body = err.Error()
		}
		got <- body
	}()
	<-started
	drained := make(chan error, 1)
	go func() { drained <- m.Drain(context.Background()) }()
	select {
	case err := <-drained:
		t.Fatalf("Drain returned (%v) with a request in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	if body := <-got; body != "done" {
		t.Errorf("request in flight got %q, want done", body)
	}
	if err := <-drained; err != nil {
		t.Errorf("Drain: %v", err)
	}
	// Apply does nothing once drained.
	if err := m.Apply(map[string]Desired{"l": {Config: cfg, Routes: cfg.Inline}}); err != nil || len(m.Addresses()) != 0 {
		t.Errorf("Apply after Drain: %v %v", err, m.Addresses())
	}
}

func TestCompileHTTPFilters(t *testing.T) {
	cors := &hcmv3.HttpFilter{Name: "envoy.filters.http.cors",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: corsTypeURL}}}
	router := &hcmv3.HttpFilter{Name: "envoy.filters.http.router",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: routerTypeURL}}}
	unknown := func(optional, disabled bool) *hcmv3.HttpFilter {
		return &hcmv3.HttpFilter{Name: "istio.stats", IsOptional: optional, Disabled: disabled,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/x.Stats"}}}
	}
	renamed := &hcmv3.HttpFilter{Name: "cors", ConfigType: cors.ConfigType}
	faultAny, _ := anypb.New(&faultv3.HTTPFault{})
	fault := &hcmv3.HttpFilter{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: faultAny}}
	badFaultAny, _ := anypb.New(&faultv3.HTTPFault{MaxActiveFaults: wrapperspb.UInt32(1)})
	badFault := &hcmv3.HttpFilter{Name: "envoy.filters.http.fault", ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: badFaultAny}}
	disabledCORS := &hcmv3.HttpFilter{Name: "envoy.filters.http.cors", Disabled: true, ConfigType: cors.ConfigType}
	tests := []struct {
		name    string
		filters []*hcmv3.HttpFilter
		want    []FilterKind
		wantErr string
	}{
		{"cors then router", []*hcmv3.HttpFilter{cors, router}, []FilterKind{FilterCORS}, ""},
		{"Istio's order: fault, cors, router", []*hcmv3.HttpFilter{fault, cors, router}, []FilterKind{FilterFault, FilterCORS}, ""},
		{"a fault field sluice-proxy lacks", []*hcmv3.HttpFilter{badFault, router}, nil, "http_filters[0].typed_config.max_active_faults: not supported by sluice-proxy"},
		{"optional unknown filters are skipped", []*hcmv3.HttpFilter{unknown(true, false), cors, unknown(false, true), router}, []FilterKind{FilterCORS}, ""},
		{"an unknown filter", []*hcmv3.HttpFilter{unknown(false, false), router}, nil, `http_filters[0] ("istio.stats"): not supported by sluice-proxy`},
		{"cors under another name", []*hcmv3.HttpFilter{renamed, router}, nil, "http_filters[0].name: the CORS filter must be named envoy.filters.http.cors"},
		{"cors disabled", []*hcmv3.HttpFilter{disabledCORS, router}, nil, "disabled: a filter disabled until a route enables it is not supported"},
		{"cors twice", []*hcmv3.HttpFilter{cors, cors, router}, nil, "already in the chain"},
		{"router not last", []*hcmv3.HttpFilter{router, cors}, nil, "the router filter must be the last filter"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &Config{}
			err := compileHCM(&hcmv3.HttpConnectionManager{HttpFilters: tt.filters,
				RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{}}}, cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []FilterKind
			for _, f := range cfg.Filters {
				got = append(got, f.Kind)
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("filters %v, want %v", got, tt.want)
			}
		})
	}
}
