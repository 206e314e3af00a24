package xds

import (
	"net/netip"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluicemesh/sluice/internal/meta"
)

// hostPorts returns the ports of a host: a registered service's, or a ServiceEntry's.
func (m *Mesh) hostPorts(host string) []uint32 {
	if s := m.service(host); s != nil {
		return s.Ports
	}
	var out []uint32
	for _, se := range m.Config.serviceEntriesFor(host) {
		for _, p := range se.se.GetPorts() {
			if !slices.Contains(out, p.GetNumber()) {
				out = append(out, p.GetNumber())
			}
		}
	}
	slices.Sort(out)
	return out
}

// service returns the registered service with a fully qualified host name, or nil.
func (m *Mesh) service(host string) *Service {
	return m.byHost[host]
}

func (c *Config) serviceEntriesFor(host string) []*seEntry {
	if c == nil {
		return nil
	}
	var out []*seEntry
	for _, se := range c.serviceEntries {
		if slices.Contains(se.se.GetHosts(), host) {
			out = append(out, se)
		}
	}
	return out
}

// buildClusters builds every outbound cluster and its endpoints: one cluster per service port,
// one more per DestinationRule subset, and the ServiceEntries' hosts. Clusters are the same
// for every proxy.
func buildClusters(m *Mesh, problems *[]Problem) (clusters, endpoints []types.Resource) {
	for _, s := range m.Services {
		fqdn := s.FQDN()
		dr := m.Config.destinationRule(fqdn)
		for _, port := range s.Ports {
			eps := s.Endpoints[port]
			name := meta.OutboundCluster(port, "", fqdn)
			clusters = append(clusters, edsCluster(name, m.clusterPolicy(dr, nil, port, problems)))
			endpoints = append(endpoints, loadAssignment(name, eps))
			if dr == nil {
				continue
			}
			for _, sub := range dr.dr.GetSubsets() {
				name := meta.OutboundCluster(port, sub.GetName(), fqdn)
				clusters = append(clusters, edsCluster(name, m.clusterPolicy(dr, sub, port, problems)))
				endpoints = append(endpoints, loadAssignment(name, subsetEndpoints(eps, sub.GetLabels())))
			}
		}
	}
	for _, se := range m.Config.serviceEntryList() {
		cs := serviceEntryClusters(m, se, problems)
		clusters = append(clusters, cs...)
	}
	return clusters, endpoints
}

func (c *Config) serviceEntryList() []*seEntry {
	if c == nil {
		return nil
	}
	return c.serviceEntries
}

func subsetEndpoints(eps []Endpoint, labels map[string]string) []Endpoint {
	var out []Endpoint
	for _, e := range eps {
		if labelsMatch(labels, e.Labels) {
			out = append(out, e)
		}
	}
	return out
}

// clusterPolicy is what a DestinationRule's traffic policy sets on a cluster: the subset's
// policy over the rule's, and a port's settings over both, as in Istio.
type clusterPolicy struct {
	lb clusterv3.Cluster_LbPolicy
}

func (m *Mesh) clusterPolicy(dr *drEntry, sub *networking.Subset, port uint32, problems *[]Problem) clusterPolicy {
	p := clusterPolicy{lb: clusterv3.Cluster_LEAST_REQUEST}
	if dr == nil {
		return p
	}
	apply := func(tp *networking.TrafficPolicy) {
		if tp == nil {
			return
		}
		m.applyTrafficPolicy(dr, tp, &p, problems)
		for _, pl := range tp.GetPortLevelSettings() {
			if pl.GetPort().GetNumber() == port {
				m.applyTrafficPolicy(dr, &networking.TrafficPolicy{
					LoadBalancer: pl.GetLoadBalancer(), ConnectionPool: pl.GetConnectionPool(),
					OutlierDetection: pl.GetOutlierDetection(), Tls: pl.GetTls(),
				}, &p, problems)
			}
		}
	}
	apply(dr.dr.GetTrafficPolicy())
	if sub != nil {
		apply(sub.GetTrafficPolicy())
	}
	return p
}

func (m *Mesh) applyTrafficPolicy(dr *drEntry, tp *networking.TrafficPolicy, p *clusterPolicy, problems *[]Problem) {
	report := func(what string) {
		*problems = append(*problems, Problem{
			Resource: dr.res.Kind + "/" + dr.res.Namespace + "/" + dr.res.Name,
			Message:  what + " is not enforced by this version of sluice-proxy; the rest of the policy applies",
		})
	}
	switch lb := tp.GetLoadBalancer().GetLbPolicy().(type) {
	case *networking.LoadBalancerSettings_Simple:
		switch lb.Simple {
		case networking.LoadBalancerSettings_ROUND_ROBIN:
			p.lb = clusterv3.Cluster_ROUND_ROBIN
		case networking.LoadBalancerSettings_RANDOM:
			p.lb = clusterv3.Cluster_RANDOM
		case networking.LoadBalancerSettings_LEAST_REQUEST, networking.LoadBalancerSettings_LEAST_CONN:
			p.lb = clusterv3.Cluster_LEAST_REQUEST
		case networking.LoadBalancerSettings_PASSTHROUGH:
			report("loadBalancer.simple PASSTHROUGH")
		}
	case *networking.LoadBalancerSettings_ConsistentHash:
		if !m.Features.ConsistentHash {
			report("loadBalancer.consistentHash")
		}
	}
	if tp.GetConnectionPool() != nil && !m.Features.ConnectionPool {
		report("connectionPool")
	}
	if tp.GetOutlierDetection() != nil && !m.Features.OutlierDetection {
		report("outlierDetection")
	}
	if tp.GetTls() != nil {
		report("tls")
	}
}

// serviceEntryClusters builds the clusters of a ServiceEntry's hosts: STATIC resolution uses
// its endpoints' addresses, DNS resolves the endpoints' names (or the host itself) when the
// proxy connects. Hosts that are also registered services keep the registry's clusters.
func serviceEntryClusters(m *Mesh, e *seEntry, problems *[]Problem) []types.Resource {
	var out []types.Resource
	se := e.se
	for _, host := range se.GetHosts() {
		if m.service(host) != nil || isWildcard(host) {
			continue
		}
		for _, port := range se.GetPorts() {
			name := meta.OutboundCluster(port.GetNumber(), "", host)
			c := &clusterv3.Cluster{
				Name:                          name,
				ConnectTimeout:                durationpb.New(10 * time.Second),
				LbPolicy:                      clusterv3.Cluster_LEAST_REQUEST,
				TypedExtensionProtocolOptions: downstreamProtocol(),
			}
			la := &endpointv3.ClusterLoadAssignment{ClusterName: name}
			var lbs []*endpointv3.LbEndpoint
			switch se.GetResolution() {
			case networking.ServiceEntry_STATIC:
				c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
				for _, we := range se.GetEndpoints() {
					addr, err := netip.ParseAddr(we.GetAddress())
					if err != nil {
						continue // validation requires IP addresses for STATIC
					}
					lbs = append(lbs, lbEndpoint(addr.String(), endpointPort(we, port), we.GetLabels()))
				}
			case networking.ServiceEntry_DNS, networking.ServiceEntry_DNS_ROUND_ROBIN:
				c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STRICT_DNS}
				if se.GetResolution() == networking.ServiceEntry_DNS_ROUND_ROBIN {
					c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_LOGICAL_DNS}
				}
				if len(se.GetEndpoints()) == 0 {
					lbs = append(lbs, lbEndpoint(host, port.GetNumber(), nil))
				}
				for _, we := range se.GetEndpoints() {
					lbs = append(lbs, lbEndpoint(we.GetAddress(), endpointPort(we, port), we.GetLabels()))
				}
			default:
				*problems = append(*problems, Problem{
					Resource: e.res.Kind + "/" + e.res.Namespace + "/" + e.res.Name,
					Message:  "resolution " + se.GetResolution().String() + " is not supported for " + host + ": use STATIC or DNS",
				})
				continue
			}
			la.Endpoints = []*endpointv3.LocalityLbEndpoints{{Locality: &corev3.Locality{}, LoadBalancingWeight: wrapperspb.UInt32(1), LbEndpoints: lbs}}
			c.LoadAssignment = la
			out = append(out, c)
		}
	}
	return out
}

func endpointPort(we *networking.WorkloadEntry, port *networking.ServicePort) uint32 {
	if p, ok := we.GetPorts()[port.GetName()]; ok && p != 0 {
		return p
	}
	if port.GetTargetPort() != 0 {
		return port.GetTargetPort()
	}
	return port.GetNumber()
}

func lbEndpoint(addr string, port uint32, labels map[string]string) *endpointv3.LbEndpoint {
	ep := &endpointv3.LbEndpoint{
		HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: addr, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
			}}},
		}},
		HealthStatus: corev3.HealthStatus_HEALTHY,
	}
	if v := labels["version"]; v != "" {
		ep.Metadata = endpointMetadata(Endpoint{Labels: labels})
	}
	return ep
}

func isWildcard(host string) bool { return len(host) > 0 && host[0] == '*' }
