// Package cluster turns CDS clusters and EDS load assignments into upstream clusters the
// forwarder picks endpoints from, and holds the pooled upstream connections.
//
// Everything here is immutable once built, except the per-endpoint counters of requests in
// flight that least-request balancing reads. A new Cluster is built for every CDS or EDS
// change; New carries those counters over from the Cluster it replaces, so requests in flight
// during an update are still counted.
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
		"lb_policy", "load_assignment", "typed_extension_protocol_options", "metadata", "alt_stat_name"},
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
		"use_downstream_protocol_config"},
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
)

// String returns the policy's name in the Cluster proto, such as "LEAST_REQUEST".
func (p Policy) String() string {
	return [...]string{"ROUND_ROBIN", "LEAST_REQUEST", "RANDOM"}[p]
}

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
}

// Compile validates a CDS Cluster. The error names the offending field, so the proxy can NACK
// with it.
func Compile(c *clusterv3.Cluster) (*Config, error) {
	if err := support.Check(c, Supported); err != nil {
		return nil, err
	}
	cfg := &Config{Name: c.GetName(), ConnectTimeout: DefaultConnectTimeout, WarmingTimeout: DefaultWarmingTimeout}
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
	default:
		return nil, fmt.Errorf("lb_policy: %v is not supported by sluice-proxy (use ROUND_ROBIN, LEAST_REQUEST or RANDOM)", c.GetLbPolicy())
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
	}
	return cfg, nil
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
			switch lbe.GetHealthStatus() {
			case corev3.HealthStatus_UNKNOWN, corev3.HealthStatus_HEALTHY:
				p := loc.GetPriority()
				best[p] = append(best[p], EndpointSpec{
					Address: net.JoinHostPort(host, strconv.FormatUint(uint64(sa.GetPortValue()), 10)),
					Weight:  w,
				})
			}
		}
	}
	first := true
	for p, eps := range best {
		if first || p < a.Priority {
			a.Priority, a.Endpoints, first = p, eps, false
		}
	}
	return a, nil
}
