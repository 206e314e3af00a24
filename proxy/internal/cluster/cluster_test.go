package cluster

import (
	"fmt"
	"math"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func lbEndpoint(ip string, port uint32, health corev3.HealthStatus, weight uint32) *endpointv3.LbEndpoint {
	e := &endpointv3.LbEndpoint{HealthStatus: health, HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port}}}}}}}
	if weight > 0 {
		e.LoadBalancingWeight = wrapperspb.UInt32(weight)
	}
	return e
}

func endpoints(n int) []*Endpoint {
	var eps []*Endpoint
	for i := range n {
		eps = append(eps, &Endpoint{Address: fmt.Sprintf("10.0.0.%d:80", i), Weight: 1, load: &load{}})
	}
	return eps
}

func TestCompileAssignmentKeepsHealthyOfBestPriority(t *testing.T) {
	a, err := CompileAssignment(&endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{
		{Priority: 1, LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint("127.0.0.9", 80, corev3.HealthStatus_HEALTHY, 0)}},
		{Priority: 0, LbEndpoints: []*endpointv3.LbEndpoint{
			lbEndpoint("127.0.0.1", 80, corev3.HealthStatus_UNKNOWN, 0),
			lbEndpoint("127.0.0.2", 80, corev3.HealthStatus_HEALTHY, 3),
			lbEndpoint("127.0.0.3", 80, corev3.HealthStatus_UNHEALTHY, 0),
			lbEndpoint("127.0.0.4", 80, corev3.HealthStatus_DRAINING, 0),
			lbEndpoint("::ffff:127.0.0.5", 80, corev3.HealthStatus_DEGRADED, 0),
		}},
	}}, false)
	if err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(a.Endpoints)
	if want := "[{127.0.0.1:80 1} {127.0.0.2:80 3}]"; got != want || a.Total != 6 {
		t.Errorf("endpoints %s (total %d), want %s (total 6)", got, a.Total, want)
	}

	a, err = CompileAssignment(&endpointv3.ClusterLoadAssignment{ClusterName: "c", Endpoints: []*endpointv3.LocalityLbEndpoints{
		{Priority: 0, LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint("127.0.0.1", 80, corev3.HealthStatus_UNHEALTHY, 0)}},
		{Priority: 1, LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint("127.0.0.9", 80, corev3.HealthStatus_HEALTHY, 0)}},
	}}, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(a.Endpoints); got != "[{127.0.0.9:80 1}]" || a.Priority != 1 {
		t.Errorf("failover endpoints %s priority %d, want priority 1's", got, a.Priority)
	}
}

func TestCompile(t *testing.T) {
	ads := &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}
	edsCluster := func(mod func(*clusterv3.Cluster)) *clusterv3.Cluster {
		c := &clusterv3.Cluster{Name: "outbound|9080|v1|reviews.default.svc.cluster.local",
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
			EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: ads}}
		if mod != nil {
			mod(c)
		}
		return c
	}
	downstream, _ := anypb.New(&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
		UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{}}})
	autoConfig, _ := anypb.New(&httpv3.HttpProtocolOptions{UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_AutoConfig{
		AutoConfig: &httpv3.HttpProtocolOptions_AutoHttpConfig{}}})

	tests := []struct {
		name    string
		cluster *clusterv3.Cluster
		check   func(*Config) string
		wantErr string
	}{
		{name: "EDS defaults", cluster: edsCluster(nil), check: func(c *Config) string {
			if c.Discovery != EDS || c.EDSName != c.Name || c.Policy != RoundRobin || c.ConnectTimeout != DefaultConnectTimeout ||
				c.Protocol != HTTP1 || c.WarmingTimeout != DefaultWarmingTimeout {
				return fmt.Sprintf("%+v", c)
			}
			return ""
		}},
		{name: "least request, service name, downstream protocol", cluster: edsCluster(func(c *clusterv3.Cluster) {
			c.LbPolicy = clusterv3.Cluster_LEAST_REQUEST
			c.EdsClusterConfig.ServiceName = "other"
			c.ConnectTimeout = durationpb.New(1e9)
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpOptionsKey: downstream}
		}), check: func(c *Config) string {
			if c.Policy != LeastRequest || c.EDSName != "other" || c.Protocol != Downstream || c.ConnectTimeout != 1e9 {
				return fmt.Sprintf("%+v", c)
			}
			return ""
		}},
		{name: "static inbound cluster", cluster: &clusterv3.Cluster{Name: "inbound|9080||",
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			LoadAssignment: &endpointv3.ClusterLoadAssignment{ClusterName: "inbound|9080||", Endpoints: []*endpointv3.LocalityLbEndpoints{
				{LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint("127.0.0.6", 19080, 0, 0)}}}}},
			check: func(c *Config) string {
				if c.Discovery != Static || len(c.Static.Endpoints) != 1 || c.Static.Endpoints[0].Address != "127.0.0.6:19080" {
					return fmt.Sprintf("%+v", c)
				}
				return ""
			}},
		{name: "cluster-provided balancing", cluster: edsCluster(func(c *clusterv3.Cluster) { c.LbPolicy = clusterv3.Cluster_CLUSTER_PROVIDED }),
			wantErr: "lb_policy: CLUSTER_PROVIDED is not supported"},
		{name: "no circuit breakers: Envoy's default thresholds", cluster: edsCluster(nil), check: func(c *Config) string {
			if c.Limits != DefaultLimits {
				return fmt.Sprintf("%+v", c.Limits)
			}
			return ""
		}},
		{name: "circuit breakers: the default priority's first entry, over the defaults", cluster: edsCluster(func(c *clusterv3.Cluster) {
			c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{
				{Priority: corev3.RoutingPriority_HIGH, MaxConnections: wrapperspb.UInt32(7)},
				{MaxConnections: wrapperspb.UInt32(1), MaxPendingRequests: wrapperspb.UInt32(1), TrackRemaining: true},
				{MaxConnections: wrapperspb.UInt32(99)},
			}}
		}), check: func(c *Config) string {
			if want := (Limits{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: 1024, MaxRetries: 3}); c.Limits != want {
				return fmt.Sprintf("%+v, want %+v", c.Limits, want)
			}
			return ""
		}},
		{name: "Istio's connection pool options", cluster: edsCluster(func(c *clusterv3.Cluster) {
			opts, _ := anypb.New(&httpv3.HttpProtocolOptions{
				CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{IdleTimeout: durationpb.New(30e9), MaxRequestsPerConnection: wrapperspb.UInt32(1)},
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_HttpProtocolOptions{}}}})
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpOptionsKey: opts}
		}), check: func(c *Config) string {
			if c.IdleTimeout != 30e9 || c.MaxRequestsPerConnection != 1 || c.Protocol != HTTP1 {
				return fmt.Sprintf("%+v", c)
			}
			return ""
		}},
		{name: "max requests per connection over HTTP/2", cluster: edsCluster(func(c *clusterv3.Cluster) {
			opts, _ := anypb.New(&httpv3.HttpProtocolOptions{
				CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxRequestsPerConnection: wrapperspb.UInt32(10)},
				UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_{ExplicitHttpConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig{
					ProtocolConfig: &httpv3.HttpProtocolOptions_ExplicitHttpConfig_Http2ProtocolOptions{}}}})
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpOptionsKey: opts}
		}), wantErr: "max_requests_per_connection: not supported by sluice-proxy for HTTP/2 upstreams"},
		{name: "a connection option sluice-proxy lacks", cluster: edsCluster(func(c *clusterv3.Cluster) {
			opts, _ := anypb.New(&httpv3.HttpProtocolOptions{
				CommonHttpProtocolOptions: &corev3.HttpProtocolOptions{MaxConnectionDuration: durationpb.New(1e9)}})
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpOptionsKey: opts}
		}), wantErr: "common_http_protocol_options.max_connection_duration: not supported"},
		{name: "original dst", cluster: &clusterv3.Cluster{Name: "PassthroughCluster",
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_ORIGINAL_DST}},
			wantErr: "type: ORIGINAL_DST is not supported"},
		{name: "auto config", cluster: edsCluster(func(c *clusterv3.Cluster) {
			c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpOptionsKey: autoConfig}
		}), wantErr: `typed_extension_protocol_options["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"].auto_config: not supported`},
		{name: "static with a host name", cluster: &clusterv3.Cluster{Name: "s",
			ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			LoadAssignment: &endpointv3.ClusterLoadAssignment{Endpoints: []*endpointv3.LocalityLbEndpoints{
				{LbEndpoints: []*endpointv3.LbEndpoint{lbEndpoint("example.com", 80, 0, 0)}}}}},
			wantErr: `load_assignment.endpoints[0].lb_endpoints[0].endpoint.address.socket_address.address: "example.com" is not an IP address`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Compile(tt.cluster)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(c); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func TestRoundRobinVisitsEachInTurn(t *testing.T) {
	eps := endpoints(3)
	rr := newSelector(&Config{Policy: RoundRobin}, eps)
	first := rr.Select()
	seen := map[*Endpoint]int{first: 1}
	for range 299 {
		seen[rr.Select()]++
	}
	for _, e := range eps {
		if seen[e] != 100 {
			t.Errorf("%s picked %d times of 300, want 100", e.Address, seen[e])
		}
	}
}

func TestWeightedRoundRobinIsSmooth(t *testing.T) {
	eps := endpoints(2)
	eps[0].Weight = 3
	rr := newSelector(&Config{Policy: RoundRobin}, eps)
	counts := map[string]int{}
	run, longest := 0, 0
	var last *Endpoint
	for range 400 {
		e := rr.Select()
		counts[e.Address]++
		if e == last {
			run++
		} else {
			run = 1
		}
		longest, last = max(longest, run), e
	}
	if counts[eps[0].Address] != 300 || counts[eps[1].Address] != 100 {
		t.Errorf("counts %v, want 300/100", counts)
	}
	if longest > 3 {
		t.Errorf("a run of %d picks of one endpoint, want at most 3 with weights 3:1", longest)
	}
}

func TestRandomIsProportional(t *testing.T) {
	eps := endpoints(3)
	eps[2].Weight = 2 // weights 1:1:2
	r := newSelector(&Config{Policy: Random}, eps)
	const n = 40_000
	counts := map[*Endpoint]float64{}
	for range n {
		counts[r.Select()]++
	}
	for i, want := range []float64{0.25, 0.25, 0.5} {
		got := counts[eps[i]] / n
		if tol := 5 * math.Sqrt(want*(1-want)/n); math.Abs(got-want) > tol {
			t.Errorf("endpoint %d got %.3f, want %.2f ± %.3f", i, got, want, tol)
		}
	}
}

func TestLeastRequestPrefersIdle(t *testing.T) {
	eps := endpoints(2)
	for range 5 {
		eps[0].Begin()
	}
	lr := newSelector(&Config{Policy: LeastRequest}, eps)
	for range 100 {
		if e := lr.Select(); e != eps[1] {
			t.Fatalf("picked the busy endpoint %s", e.Address)
		}
	}
	// With many endpoints, the busiest one is never chosen: it loses every comparison.
	eps = endpoints(10)
	for range 3 {
		eps[7].Begin()
	}
	lr = newSelector(&Config{Policy: LeastRequest}, eps)
	for range 1000 {
		if e := lr.Select(); e == eps[7] {
			t.Fatal("picked the busiest endpoint")
		}
	}
}

func TestEmptySelectorsReturnNil(t *testing.T) {
	for _, p := range []Policy{RoundRobin, LeastRequest, Random} {
		if e := newSelector(&Config{Policy: p}, nil).Select(); e != nil {
			t.Errorf("%v: Select on no endpoints = %v", p, e)
		}
	}
}

func TestNewKeepsInFlightCounts(t *testing.T) {
	cfg := &Config{Name: "c", Discovery: EDS, Policy: LeastRequest}
	var pools Pools
	a1 := &Assignment{Endpoints: []EndpointSpec{{"127.0.0.1:80", 1}, {"127.0.0.2:80", 1}}}
	c1 := New(cfg, a1, nil, &pools)
	c1.Endpoints[0].Begin()
	c2 := New(cfg, &Assignment{Endpoints: []EndpointSpec{{"127.0.0.1:80", 1}, {"127.0.0.3:80", 1}}}, c1, &pools)
	if got := c2.Endpoints[0].Active(); got != 1 {
		t.Errorf("in-flight count after update = %d, want 1", got)
	}
	c1.Endpoints[0].End()
	if got := c2.Endpoints[0].Active(); got != 0 {
		t.Errorf("in-flight count after End = %d, want 0", got)
	}
	if New(cfg, nil, nil, &pools).Pick() != nil {
		t.Error("an EDS cluster without an assignment picked an endpoint")
	}
}

func BenchmarkSelect(b *testing.B) {
	for _, p := range []Policy{RoundRobin, LeastRequest, Random} {
		b.Run(p.String(), func(b *testing.B) {
			s := newSelector(&Config{Policy: p}, endpoints(8))
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					e := s.Select()
					e.Begin()
					e.End()
				}
			})
		})
	}
}
