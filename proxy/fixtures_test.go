package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluicemesh/sluice/internal/meta"
)

// controlPlane is an in-process xDS server: go-control-plane's ADS server over a
// SnapshotCache, recording every request it receives.
type controlPlane struct {
	t     testing.TB
	addr  string
	cache cache.SnapshotCache
	srv   *grpc.Server
	done  chan struct{}

	mu       sync.Mutex
	requests []*discoveryv3.DiscoveryRequest
}

// startControlPlane serves on addr ("127.0.0.1:0" for any port) with cache (nil for a new
// one).
func startControlPlane(t testing.TB, addr string, c cache.SnapshotCache) *controlPlane {
	t.Helper()
	if c == nil {
		c = cache.NewSnapshotCache(true, cache.IDHash{}, nil)
	}
	var ln net.Listener
	var err error
	// A restarted control plane rebinds the port the old one just released.
	for range 50 {
		if ln, err = net.Listen("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("control plane: %v", err)
	}
	cp := &controlPlane{t: t, addr: ln.Addr().String(), cache: c, srv: grpc.NewServer(), done: make(chan struct{})}
	cb := serverv3.CallbackFuncs{StreamRequestFunc: func(_ int64, req *discoveryv3.DiscoveryRequest) error {
		cp.mu.Lock()
		cp.requests = append(cp.requests, proto.Clone(req).(*discoveryv3.DiscoveryRequest))
		cp.mu.Unlock()
		return nil
	}}
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(cp.srv, serverv3.NewServer(context.Background(), c, cb))
	go func() {
		defer close(cp.done)
		_ = cp.srv.Serve(ln)
	}()
	t.Cleanup(cp.stop)
	return cp
}

func (cp *controlPlane) stop() {
	cp.srv.Stop()
	<-cp.done
}

// set publishes a snapshot for node.
func (cp *controlPlane) set(node string, s *cache.Snapshot) {
	cp.t.Helper()
	if err := s.Consistent(); err != nil {
		cp.t.Fatalf("inconsistent snapshot: %v", err)
	}
	if err := cp.cache.SetSnapshot(context.Background(), node, s); err != nil {
		cp.t.Fatal(err)
	}
}

// seen returns the requests received so far that match.
func (cp *controlPlane) seen(match func(*discoveryv3.DiscoveryRequest) bool) []*discoveryv3.DiscoveryRequest {
	cp.mu.Lock()
	defer cp.mu.Unlock()
	var out []*discoveryv3.DiscoveryRequest
	for _, r := range cp.requests {
		if match(r) {
			out = append(out, r)
		}
	}
	return out
}

// acked reports whether the proxy ACKed version of typeURL.
func (cp *controlPlane) acked(typeURL, version string) bool {
	return len(cp.seen(func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == typeURL && r.GetVersionInfo() == version && r.GetResponseNonce() != "" && r.GetErrorDetail() == nil
	})) > 0
}

// nextAddr hands each test its own loopback address, so fixed ports (15000, 15001, inbound)
// never clash between tests. The second octet comes from the process id, and stays out of
// the e2e tests' range (127.100-199.x.x), so concurrent test binaries do not collide.
var lastAddr atomic.Uint32

func nextAddr() string {
	n := lastAddr.Add(1)
	return fmt.Sprintf("127.%d.%d.%d", 200+os.Getpid()%50, n/250, 2+n%250)
}

func nodeID(addr, name string) string {
	return "sidecar~" + addr + "~" + name + ".default~default.svc.cluster.local"
}

// world describes a mesh for one proxy; snapshot turns it into xDS resources.
type world struct {
	addr string // the proxy's address
	// services maps a host (a domain of the outbound route configuration) to its backends.
	services []service
	// inbound maps the proxy's inbound port to the app's "host:port".
	inbound map[uint32]string
	// mutate, when set, edits the outbound route configuration before it is published.
	mutate func(*routev3.RouteConfiguration)
	// httpFilters are the outbound listener's HTTP filters before the router.
	httpFilters []*hcmv3.HttpFilter
	// mutateClusters, when set, edits the outbound clusters before they are published.
	mutateClusters func(name string, c *clusterv3.Cluster)
}

type service struct {
	domains []string
	// backends are the clusters the catch-all route splits traffic between, by weight.
	backends []backend
	// h2 makes the clusters speak the downstream protocol upstream (for gRPC).
	h2 bool
}

type backend struct {
	cluster   string
	weight    uint32
	endpoints []string // "ip:port"
}

func ads() *corev3.ConfigSource {
	return &corev3.ConfigSource{ResourceApiVersion: corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		panic(err)
	}
	return a
}

func socketAddress(hostport string) *corev3.Address {
	host, port, _ := net.SplitHostPort(hostport)
	p, _ := strconv.Atoi(port)
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}}
}

func httpListener(name, hostport string, hcm *hcmv3.HttpConnectionManager, filters ...*hcmv3.HttpFilter) *listenerv3.Listener {
	hcm.StatPrefix = name
	hcm.HttpFilters = append(slices.Clone(filters), &hcmv3.HttpFilter{Name: "envoy.filters.http.router",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})}})
	return &listenerv3.Listener{Name: name, Address: socketAddress(hostport),
		FilterChains: []*listenerv3.FilterChain{{Filters: []*listenerv3.Filter{{
			Name:       "envoy.filters.network.http_connection_manager",
			ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
		}}}}}
}

func assignment(name string, endpoints []string) *endpointv3.ClusterLoadAssignment {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: name}
	var lbs []*endpointv3.LbEndpoint
	for _, e := range endpoints {
		lbs = append(lbs, &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{
			Endpoint: &endpointv3.Endpoint{Address: socketAddress(e)}}})
	}
	cla.Endpoints = []*endpointv3.LocalityLbEndpoints{{LbEndpoints: lbs}}
	return cla
}

func catchAll(action *routev3.RouteAction) *routev3.Route {
	return &routev3.Route{Name: "default",
		Match:  &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: action}}
}

// snapshot builds the xDS resources of w at version.
func (w world) snapshot(version string) *cache.Snapshot {
	var listeners, routes, clusters, endpoints []types.Resource
	outbound := &routev3.RouteConfiguration{Name: meta.OutboundRouteName}
	downstream := mustAny(&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
		UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{}}})
	for _, s := range w.services {
		action := &routev3.RouteAction{}
		if len(s.backends) == 1 {
			action.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: s.backends[0].cluster}
		} else {
			wc := &routev3.WeightedCluster{}
			for _, b := range s.backends {
				wc.Clusters = append(wc.Clusters, &routev3.WeightedCluster_ClusterWeight{Name: b.cluster, Weight: wrapperspb.UInt32(b.weight)})
			}
			action.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: wc}
		}
		outbound.VirtualHosts = append(outbound.VirtualHosts, &routev3.VirtualHost{
			Name: s.domains[0], Domains: s.domains, Routes: []*routev3.Route{catchAll(action)}})
		for _, b := range s.backends {
			c := &clusterv3.Cluster{Name: b.cluster, LbPolicy: clusterv3.Cluster_LEAST_REQUEST,
				ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
				EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads()}}
			if s.h2 {
				c.TypedExtensionProtocolOptions = map[string]*anypb.Any{
					"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": downstream}
			}
			if w.mutateClusters != nil {
				w.mutateClusters(b.cluster, c)
			}
			clusters = append(clusters, c)
			endpoints = append(endpoints, assignment(b.cluster, b.endpoints))
		}
	}
	if w.mutate != nil {
		w.mutate(outbound)
	}
	routes = append(routes, outbound)
	listeners = append(listeners, httpListener(meta.OutboundListenerName, net.JoinHostPort(w.addr, "15001"),
		&hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			ConfigSource: ads(), RouteConfigName: meta.OutboundRouteName}}}, w.httpFilters...))
	for port, app := range w.inbound {
		cname := meta.InboundCluster(port)
		listeners = append(listeners, httpListener(meta.InboundListener(port), net.JoinHostPort(w.addr, strconv.Itoa(int(port))),
			&hcmv3.HttpConnectionManager{RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
				Name: "inbound|" + strconv.Itoa(int(port)),
				VirtualHosts: []*routev3.VirtualHost{{Name: "inbound", Domains: []string{"*"}, Routes: []*routev3.Route{
					catchAll(&routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cname}})}}},
			}}}))
		clusters = append(clusters, &clusterv3.Cluster{Name: cname,
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			LoadAssignment:       assignment(cname, []string{app}),
			TypedExtensionProtocolOptions: map[string]*anypb.Any{
				"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": downstream}})
	}
	s, err := cache.NewSnapshot(version, map[resource.Type][]types.Resource{
		resource.ListenerType: listeners, resource.RouteType: routes,
		resource.ClusterType: clusters, resource.EndpointType: endpoints,
	})
	if err != nil {
		panic(err)
	}
	return s
}

// badRegex makes the outbound route configuration invalid.
func badRegex(rc *routev3.RouteConfiguration) {
	rc.VirtualHosts[0].Routes = append([]*routev3.Route{{
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_SafeRegex{
			SafeRegex: &matcherv3.RegexMatcher{Regex: "/users/(\\d+"}}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "x"}}},
	}}, rc.VirtualHosts[0].Routes...)
}

// runningProxy is a proxy started with Run in the test's process.
type runningProxy struct {
	addr   string
	cancel context.CancelFunc
	errc   chan error
	client *http.Client
}

// startProxy runs the proxy at addr against cp, waits until it is ready, and stops it when
// the test ends.
func startProxy(t testing.TB, cp *controlPlane, addr string, extra ...string) *runningProxy {
	t.Helper()
	p := launchProxy(t, cp, addr, extra...)
	p.waitReady(t)
	return p
}

// launchProxy runs the proxy without waiting for it to be ready.
func launchProxy(t testing.TB, cp *controlPlane, addr string, extra ...string) *runningProxy {
	t.Helper()
	args := append([]string{"--control-plane", cp.addr, "--address", addr, "--service", "test",
		"--labels", "app=test,version=v1", "--name", "test", "--service-account", "sa",
		"--drain-timeout", "5s", "--log-level", "debug",
		// The proxy runs inside the test process, with other proxies and the test's own
		// data: keep Go's default collector for it.
		"--gc-percent", "100", "--memory-limit", "off"}, extra...)
	ctx, cancel := context.WithCancel(context.Background())
	p := &runningProxy{addr: addr, cancel: cancel, errc: make(chan error, 1),
		client: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}, Timeout: 10 * time.Second}}
	go func() { p.errc <- Run(ctx, args, func(string) string { return "" }, testWriter{t}, testWriter{t}) }()
	t.Cleanup(func() {
		if err := p.stop(); err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return p
}

// stop drains the proxy as SIGTERM would and returns Run's error. It may be called twice.
func (p *runningProxy) stop() error {
	p.cancel()
	err, ok := <-p.errc
	if ok {
		close(p.errc)
	}
	p.client.CloseIdleConnections()
	return err
}

func (p *runningProxy) waitReady(t testing.TB) {
	t.Helper()
	eventually(t, 10*time.Second, "the proxy is ready", func() bool {
		res, err := http.Get("http://" + net.JoinHostPort(p.addr, "15000") + "/ready")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
}

// get sends GET path with Host host to the outbound listener.
func (p *runningProxy) get(host, path string) (*http.Response, string, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+net.JoinHostPort(p.addr, "15001")+path, nil)
	req.Host = host
	return do(p.client, req)
}

func do(c *http.Client, req *http.Request) (*http.Response, string, error) {
	res, err := c.Do(req)
	if err != nil {
		return nil, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, string(b), err
}

// eventually polls cond until it holds or timeout passes.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// testWriter sends the proxy's log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// textServer is an upstream answering its name and what it saw.
func textServer(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Upstream", name)
		w.Header().Set("X-Seen-Host", r.Host)
		w.Header().Set("X-Seen-Path", r.URL.RequestURI())
		w.Header().Set("X-Seen-Request-Id", r.Header.Get("X-Request-Id"))
		w.Header().Set("X-Seen-Proto", r.Header.Get("X-Forwarded-Proto"))
		w.Header().Set("X-Seen-Connection", r.Header.Get("Connection")+r.Header.Get("Proxy-Connection"))
		fmt.Fprint(w, name)
	})
}

// vhostToMissingCluster routes host "missing" to a cluster that CDS does not have.
func vhostToMissingCluster() *routev3.VirtualHost {
	return &routev3.VirtualHost{Name: "missing", Domains: []string{"missing"}, Routes: []*routev3.Route{
		catchAll(&routev3.RouteAction{ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "outbound|80||missing.default.svc.cluster.local"}})}}
}

func percent100() *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}
}
