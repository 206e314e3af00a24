// Package cluster turns CDS clusters and EDS load assignments into upstream clusters the
// forwarder picks endpoints from, and holds the pooled upstream connections.
//
// A Cluster's config and endpoints are immutable once built; a new Cluster is built for
// every CDS or EDS change. What must outlive an update is shared with the Cluster it
// replaces: the per-endpoint counts of requests in flight (least request reads them), the
// circuit breakers' counts (breaker.go) and the outlier detector's ejections (outlier.go),
// all per proxy per cluster.
//
// Balancing (balancer.go, hash.go) is round robin, least request, random, ring hash or
// Maglev over the endpoints usable at the moment: those EDS calls healthy and outlier
// detection has not ejected, or, below the cluster's healthy_panic_threshold, all of them
// (Envoy's panic mode). Outlier detection swaps in a new balancer when it ejects or brings
// back an endpoint, so a pick is one atomic load plus the policy's own work, and
// allocates nothing.
package cluster

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"

	"github.com/sluicemesh/sluice/proxy/internal/support"
)

// DefaultConnectTimeout is Envoy's connect_timeout when a cluster does not set one.
const DefaultConnectTimeout = 5 * time.Second

// DefaultWarmingTimeout is Envoy's initial_fetch_timeout: how long an EDS cluster waits for
// its endpoints before it is used without them.
const DefaultWarmingTimeout = 15 * time.Second

// httpOptionsKey is the typed_extension_protocol_options key of HttpProtocolOptions.
const httpOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// Supported lists the cluster and endpoint fields sluice-proxy implements; Compile and
// CompileAssignment reject anything else, naming the field. The HTTP/1 and HTTP/2 protocol
// option messages are accepted whole and their tuning knobs are not applied: the pools use
// Go's defaults.
var Supported = support.Fields{
	"envoy.config.cluster.v3.Cluster": {"name", "type", "eds_cluster_config", "connect_timeout",
		"lb_policy", "load_assignment", "typed_extension_protocol_options", "metadata", "alt_stat_name",
		"circuit_breakers", "outlier_detection", "common_lb_config", "ring_hash_lb_config", "maglev_lb_config",
		"transport_socket", "transport_socket_matches"},
	"envoy.config.cluster.v3.Cluster.TransportSocketMatch": {"name", "match", "transport_socket"},
	"envoy.config.cluster.v3.Cluster.RingHashLbConfig":     {"minimum_ring_size", "maximum_ring_size", "hash_function"},
	"envoy.config.cluster.v3.Cluster.MaglevLbConfig":       {"table_size"},
	// Success-rate and failure-percentage detection are not implemented: enforcing_success_rate
	// must be 0 (Istio sends 0), and enforcing_failure_percentage 0 or unset.
	"envoy.config.cluster.v3.OutlierDetection": {"consecutive_5xx", "consecutive_gateway_failure", "interval",
		"base_ejection_time", "max_ejection_time", "max_ejection_percent", "enforcing_consecutive_5xx",
		"enforcing_consecutive_gateway_failure", "enforcing_success_rate", "always_eject_one_host",
		"max_ejection_time_jitter"},
	"envoy.config.cluster.v3.Cluster.CommonLbConfig": {"healthy_panic_threshold"},
	"envoy.config.cluster.v3.CircuitBreakers":        {"thresholds"},
	// track_remaining is accepted: /stats always shows what remains.
	"envoy.config.cluster.v3.CircuitBreakers.Thresholds": {"priority", "max_connections",
		"max_pending_requests", "max_requests", "max_retries", "track_remaining"},
	"envoy.config.cluster.v3.Cluster.EdsClusterConfig": {"eds_config", "service_name"},
	"envoy.config.core.v3.ConfigSource":                {"ads", "initial_fetch_timeout", "resource_api_version"},
	"envoy.config.endpoint.v3.ClusterLoadAssignment":   {"cluster_name", "endpoints", "policy"},
	"envoy.config.endpoint.v3.ClusterLoadAssignment.Policy": {"overprovisioning_factor",
		"weighted_priority_health"},
	"envoy.config.endpoint.v3.LocalityLbEndpoints": {"locality", "lb_endpoints", "load_balancing_weight",
		"priority", "metadata"},
	"envoy.config.endpoint.v3.LbEndpoint": {"endpoint", "health_status", "metadata", "load_balancing_weight"},
	"envoy.config.endpoint.v3.Endpoint":   {"address", "hostname"},
	"envoy.config.core.v3.Address":        {"socket_address"},
	"envoy.config.core.v3.SocketAddress":  {"address", "port_value", "protocol", "ipv4_compat"},
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {"explicit_http_config",
		"use_downstream_protocol_config", "common_http_protocol_options"},
	"envoy.config.core.v3.HttpProtocolOptions": {"idle_timeout", "max_requests_per_connection"},
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.ExplicitHttpConfig": {"http_protocol_options",
		"http2_protocol_options"},
	"envoy.extensions.upstreams.http.v3.HttpProtocolOptions.UseDownstreamHttpConfig": {"http_protocol_options",
		"http2_protocol_options"},
}

// Protocol is the HTTP version used upstream.
type Protocol uint8

// Upstream protocols.
const (
	// HTTP1 always speaks HTTP/1.1 upstream: Envoy's default.
	HTTP1 Protocol = iota
	// HTTP2 always speaks h2c (HTTP/2 with prior knowledge) upstream.
	HTTP2
	// Downstream speaks whatever the downstream request used.
	Downstream
)

// Discovery says where a cluster's endpoints come from.
type Discovery uint8

// Discovery types.
const (
	// Static endpoints are inline in the cluster.
	Static Discovery = iota
	// EDS endpoints come in a ClusterLoadAssignment named by Config.EDSName.
	EDS
	// DNS endpoints are inline host names, resolved when a connection is made.
	DNS
)

// Policy is a load-balancing policy.
type Policy uint8

// Load-balancing policies.
const (
	RoundRobin Policy = iota
	LeastRequest
	Random
	// RingHash and Maglev balance by the request's hash key (the route's hash_policy).
	RingHash
	Maglev
)

// String returns the policy's name in the Cluster proto, such as "LEAST_REQUEST".
func (p Policy) String() string {
	return [...]string{"ROUND_ROBIN", "LEAST_REQUEST", "RANDOM", "RING_HASH", "MAGLEV"}[p]
}

// HashBased reports whether the policy balances by the request's hash key.
func (p Policy) HashBased() bool { return p == RingHash || p == Maglev }

// Config is a compiled CDS Cluster, without EDS endpoints.
type Config struct {
	// Name is the cluster's name, such as "outbound|9080|v1|reviews.default.svc.cluster.local".
	Name string
	// Discovery says where the endpoints come from.
	Discovery Discovery
	// EDSName names the ClusterLoadAssignment of an EDS cluster (service_name, or Name).
	EDSName string
	// Policy is the load-balancing policy.
	Policy Policy
	// ConnectTimeout bounds connecting to an endpoint (Envoy's default: 5s).
	ConnectTimeout time.Duration
	// Protocol is the HTTP version spoken upstream.
	Protocol Protocol
	// WarmingTimeout is how long to wait for EDS before using the cluster without endpoints;
	// zero waits for ever (an explicit initial_fetch_timeout of 0s, as in Envoy).
	WarmingTimeout time.Duration
	// Static holds inline endpoints, for Static and DNS clusters.
	Static *Assignment
	// Limits are the circuit-breaker thresholds of the default priority.
	Limits Limits
	// IdleTimeout closes an upstream connection idle this long; zero keeps the pools'
	// default (90s).
	IdleTimeout time.Duration
	// MaxRequestsPerConnection closes an HTTP/1.1 upstream connection after this many
	// requests; zero for no limit.
	MaxRequestsPerConnection uint32
	// Outlier is the outlier detection config; nil for none.
	Outlier *OutlierConfig
	// PanicThreshold is the healthy_panic_threshold, in percent (Envoy's default: 50): below
	// this share of healthy endpoints the cluster balances over all of them.
	PanicThreshold float64
	// MinRingSize and MaxRingSize bound a RingHash ring's points (ring_hash_lb_config).
	MinRingSize, MaxRingSize uint64
	// MaglevTableSize is a Maglev table's size, a prime (maglev_lb_config.table_size).
	MaglevTableSize uint64
	// TLS is the transport_socket: every connection uses it; nil for plaintext.
	TLS *TLSContext
	// TLSMatch is the transport socket of the endpoints labelled tlsMode "istio" under
	// transport_socket_matches (auto mTLS); the others are plaintext. Nil for none.
	TLSMatch *TLSContext
}

// Compile validates a CDS Cluster. The error names the offending field, so the proxy can NACK
// with it.
func Compile(c *clusterv3.Cluster) (*Config, error) {
	if err := support.Check(c, Supported); err != nil {
		return nil, err
	}
	cfg := &Config{Name: c.GetName(), ConnectTimeout: DefaultConnectTimeout, WarmingTimeout: DefaultWarmingTimeout,
		Limits: DefaultLimits, PanicThreshold: DefaultPanicThreshold,
		MinRingSize: DefaultMinRingSize, MaxRingSize: DefaultMaxRingSize, MaglevTableSize: DefaultMaglevTableSize}
	if cfg.Name == "" {
		return nil, errors.New("name: required")
	}
	if ct := c.GetConnectTimeout(); ct != nil {
		if err := ct.CheckValid(); err != nil || ct.AsDuration() <= 0 {
			return nil, fmt.Errorf("connect_timeout: %v is not a positive duration", ct.AsDuration())
		}
		cfg.ConnectTimeout = ct.AsDuration()
	}
	switch c.GetLbPolicy() {
	case clusterv3.Cluster_ROUND_ROBIN:
		cfg.Policy = RoundRobin
	case clusterv3.Cluster_LEAST_REQUEST:
		cfg.Policy = LeastRequest
	case clusterv3.Cluster_RANDOM:
		cfg.Policy = Random
	case clusterv3.Cluster_RING_HASH:
		cfg.Policy = RingHash
	case clusterv3.Cluster_MAGLEV:
		cfg.Policy = Maglev
	default:
		return nil, fmt.Errorf("lb_policy: %v is not supported by sluice-proxy (use ROUND_ROBIN, LEAST_REQUEST, RANDOM, RING_HASH or MAGLEV)", c.GetLbPolicy())
	}
	if rh := c.GetRingHashLbConfig(); rh != nil {
		if cfg.Policy != RingHash {
			return nil, fmt.Errorf("ring_hash_lb_config: set on a %v cluster", c.GetLbPolicy())
		}
		if rh.GetHashFunction() != clusterv3.Cluster_RingHashLbConfig_XX_HASH {
			return nil, fmt.Errorf("ring_hash_lb_config.hash_function: %v is not supported by sluice-proxy (only XX_HASH)", rh.GetHashFunction())
		}
		if v := rh.GetMinimumRingSize(); v != nil {
			cfg.MinRingSize = v.GetValue()
		}
		if v := rh.GetMaximumRingSize(); v != nil {
			cfg.MaxRingSize = v.GetValue()
		}
		if cfg.MinRingSize == 0 || cfg.MinRingSize > cfg.MaxRingSize {
			return nil, fmt.Errorf("ring_hash_lb_config: minimum_ring_size %d must be at least 1 and at most maximum_ring_size %d", cfg.MinRingSize, cfg.MaxRingSize)
		}
	}
	if ml := c.GetMaglevLbConfig(); ml != nil {
		if cfg.Policy != Maglev {
			return nil, fmt.Errorf("maglev_lb_config: set on a %v cluster", c.GetLbPolicy())
		}
		if v := ml.GetTableSize(); v != nil {
			if !isPrime(v.GetValue()) {
				return nil, fmt.Errorf("maglev_lb_config.table_size: %d is not a prime number (Envoy rejects this too)", v.GetValue())
			}
			cfg.MaglevTableSize = v.GetValue()
		}
	}
	switch c.GetType() {
	case clusterv3.Cluster_STATIC:
		cfg.Discovery = Static
	case clusterv3.Cluster_EDS:
		cfg.Discovery = EDS
	case clusterv3.Cluster_STRICT_DNS, clusterv3.Cluster_LOGICAL_DNS:
		cfg.Discovery = DNS
	default:
		return nil, fmt.Errorf("type: %v is not supported by sluice-proxy (use STATIC, EDS, STRICT_DNS or LOGICAL_DNS)", c.GetType())
	}
	if cfg.Discovery == EDS {
		eds := c.GetEdsClusterConfig()
		if eds.GetEdsConfig() == nil || eds.GetEdsConfig().GetAds() == nil {
			return nil, errors.New("eds_cluster_config.eds_config: must be an ads config source (sluice-proxy speaks ADS only)")
		}
		cfg.EDSName = eds.GetServiceName()
		if cfg.EDSName == "" {
			cfg.EDSName = cfg.Name
		}
		if t := eds.GetEdsConfig().GetInitialFetchTimeout(); t != nil {
			cfg.WarmingTimeout = t.AsDuration()
		}
		if c.GetLoadAssignment() != nil {
			return nil, errors.New("load_assignment: an EDS cluster gets its endpoints from EDS")
		}
	} else {
		if c.GetEdsClusterConfig() != nil {
			return nil, fmt.Errorf("eds_cluster_config: set on a %v cluster", c.GetType())
		}
		a, err := CompileAssignment(c.GetLoadAssignment(), cfg.Discovery == DNS)
		if err != nil {
			return nil, fmt.Errorf("load_assignment.%w", err)
		}
		cfg.Static = a
	}
	for key, anyOpts := range c.GetTypedExtensionProtocolOptions() {
		if key != httpOptionsKey {
			return nil, fmt.Errorf("typed_extension_protocol_options[%q]: not supported by sluice-proxy", key)
		}
		var opts httpv3.HttpProtocolOptions
		if err := anyOpts.UnmarshalTo(&opts); err != nil {
			return nil, fmt.Errorf("typed_extension_protocol_options[%q]: %w", key, err)
		}
		if err := support.Check(&opts, Supported); err != nil {
			return nil, fmt.Errorf("typed_extension_protocol_options[%q].%w", key, err)
		}
		switch p := opts.GetUpstreamProtocolOptions().(type) {
		case *httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig:
			cfg.Protocol = Downstream
		case *httpv3.HttpProtocolOptions_ExplicitHttpConfig_:
			if p.ExplicitHttpConfig.GetHttp2ProtocolOptions() != nil {
				cfg.Protocol = HTTP2
			}
		}
		if co := opts.GetCommonHttpProtocolOptions(); co != nil {
			field := fmt.Sprintf("typed_extension_protocol_options[%q].common_http_protocol_options", key)
			if t := co.GetIdleTimeout(); t != nil {
				if err := t.CheckValid(); err != nil || t.AsDuration() < 0 {
					return nil, fmt.Errorf("%s.idle_timeout: %v is not a duration", field, t.AsDuration())
				}
				// Envoy: 0 disables the idle timeout; Go's transport reads 0 the same way.
				cfg.IdleTimeout = t.AsDuration()
				if cfg.IdleTimeout == 0 {
					cfg.IdleTimeout = -1
				}
			}
			if n := co.GetMaxRequestsPerConnection(); n != nil && n.GetValue() > 0 {
				if cfg.Protocol == HTTP2 {
					return nil, fmt.Errorf("%s.max_requests_per_connection: not supported by sluice-proxy for HTTP/2 upstreams (only HTTP/1.1)", field)
				}
				cfg.MaxRequestsPerConnection = n.GetValue()
			}
		}
	}
	if err := compileThresholds(c.GetCircuitBreakers(), &cfg.Limits); err != nil {
		return nil, fmt.Errorf("circuit_breakers.%w", err)
	}
	if od := c.GetOutlierDetection(); od != nil {
		o, err := compileOutlier(od)
		if err != nil {
			return nil, fmt.Errorf("outlier_detection.%w", err)
		}
		cfg.Outlier = o
	}
	if err := compileTransportSockets(c, cfg); err != nil {
		return nil, err
	}
	if pt := c.GetCommonLbConfig().GetHealthyPanicThreshold(); pt != nil {
		if v := pt.GetValue(); v < 0 || v > 100 {
			return nil, fmt.Errorf("common_lb_config.healthy_panic_threshold.value: %v is not a percentage", v)
		}
		cfg.PanicThreshold = pt.GetValue()
	}
	return cfg, nil
}

// compileThresholds reads the default priority's thresholds over Envoy's defaults. A
// threshold of the HIGH priority applies to routes of that priority, which sluice-proxy
// rejects, so it is accepted and never used. As in Envoy, the first entry of a priority wins.
func compileThresholds(cb *clusterv3.CircuitBreakers, l *Limits) error {
	for _, t := range cb.GetThresholds() {
		if t.GetPriority() != corev3.RoutingPriority_DEFAULT {
			continue
		}
		if v := t.GetMaxConnections(); v != nil {
			l.MaxConnections = int64(v.GetValue())
		}
		if v := t.GetMaxPendingRequests(); v != nil {
			l.MaxPendingRequests = int64(v.GetValue())
		}
		if v := t.GetMaxRequests(); v != nil {
			l.MaxRequests = int64(v.GetValue())
		}
		if v := t.GetMaxRetries(); v != nil {
			l.MaxRetries = int64(v.GetValue())
		}
		return nil
	}
	return nil
}

// Assignment is a compiled ClusterLoadAssignment: the usable endpoints of the best priority.
type Assignment struct {
	// Name is the ClusterLoadAssignment's cluster_name.
	Name string
	// Endpoints are the healthy (or unknown) endpoints of the lowest priority that has any.
	// Lower priorities are failed over to only when a whole priority has none, a
	// simplification of Envoy's overprovisioning-based spill-over.
	Endpoints []EndpointSpec
	// Priority is the priority level Endpoints come from.
	Priority uint32
	// Total counts every endpoint of every priority, healthy or not.
	Total int
	// Unhealthy are the endpoints of the same priority that EDS marks unhealthy, draining or
	// degraded (when no priority has a usable endpoint, all of the lowest priority's): Envoy's
	// panic mode balances over them too.
	Unhealthy []EndpointSpec
	// Identities names the workload behind each endpoint address whose metadata says (see
	// Identity); nil when none does.
	Identities map[string]*Identity
	// TLSHosts are the endpoint addresses labelled tlsMode "istio" (a sidecar), which auto
	// mTLS reaches over TLS; nil when none is.
	TLSHosts map[string]bool
}

// EndpointSpec is one upstream endpoint of an assignment.
type EndpointSpec struct {
	// Address is "host:port": an IP address, or a host name in a DNS cluster.
	Address string
	// Weight is the endpoint's load_balancing_weight (1 when unset).
	Weight uint32
}

// CompileAssignment validates a ClusterLoadAssignment. Host names are allowed only when
// allowNames is set (DNS clusters); elsewhere Envoy too wants IP addresses.
func CompileAssignment(cla *endpointv3.ClusterLoadAssignment, allowNames bool) (*Assignment, error) {
	if err := support.Check(cla, Supported); err != nil {
		return nil, err
	}
	a := &Assignment{Name: cla.GetClusterName()}
	best := map[uint32][]EndpointSpec{}
	others := map[uint32][]EndpointSpec{}
	for i, loc := range cla.GetEndpoints() {
		for j, lbe := range loc.GetLbEndpoints() {
			a.Total++
			field := fmt.Sprintf("endpoints[%d].lb_endpoints[%d]", i, j)
			sa := lbe.GetEndpoint().GetAddress().GetSocketAddress()
			if sa == nil {
				return nil, fmt.Errorf("%s.endpoint.address.socket_address: required", field)
			}
			if sa.GetProtocol() != corev3.SocketAddress_TCP {
				return nil, fmt.Errorf("%s.endpoint.address.socket_address.protocol: only TCP is supported", field)
			}
			if sa.GetPortValue() == 0 || sa.GetPortValue() > 65535 {
				return nil, fmt.Errorf("%s.endpoint.address.socket_address.port_value: %d is not a port", field, sa.GetPortValue())
			}
			host := sa.GetAddress()
			if ip, err := netip.ParseAddr(host); err == nil {
				host = ip.Unmap().String()
			} else if !allowNames || host == "" {
				return nil, fmt.Errorf("%s.endpoint.address.socket_address.address: %q is not an IP address", field, sa.GetAddress())
			}
			w := uint32(1)
			if lw := lbe.GetLoadBalancingWeight(); lw != nil {
				if lw.GetValue() == 0 {
					return nil, fmt.Errorf("%s.load_balancing_weight: must be at least 1", field)
				}
				w = lw.GetValue()
			}
			spec := EndpointSpec{Address: net.JoinHostPort(host, strconv.FormatUint(uint64(sa.GetPortValue()), 10)), Weight: w}
			a.addIdentity(spec.Address, lbe.GetMetadata())
			a.addTLSMode(spec.Address, lbe.GetMetadata())
			p := loc.GetPriority()
			switch lbe.GetHealthStatus() {
			case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY:
				best[p] = append(best[p], spec)
			default:
				others[p] = append(others[p], spec)
			}
		}
	}
	first := true
	for p, eps := range best {
		if first || p < a.Priority {
			a.Priority, a.Endpoints, first = p, eps, false
		}
	}
	if first {
		// No priority has a usable endpoint: the lowest priority's are all panic mode has.
		for p := range others {
			if first || p < a.Priority {
				a.Priority, first = p, false
			}
		}
	}
	a.Unhealthy = others[a.Priority]
	return a, nil
}
