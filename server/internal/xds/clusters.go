package xds

import (
	"fmt"
	"math"
	"net/netip"
	"slices"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/anypb"
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
			eps := m.withPeerAuthentication(s.Endpoints[port], port, problems)
			name := meta.OutboundCluster(port, "", fqdn)
			c := policyCluster(name, m.clusterPolicy(dr, -1, port, problems))
			m.applyClusterTLS(c, s, fqdn, dr, -1, port, problems)
			clusters = append(clusters, c)
			endpoints = append(endpoints, loadAssignment(name, eps))
			if dr == nil {
				continue
			}
			for i, sub := range dr.dr.GetSubsets() {
				name := meta.OutboundCluster(port, sub.GetName(), fqdn)
				c := policyCluster(name, m.clusterPolicy(dr, i, port, problems))
				m.applyClusterTLS(c, s, fqdn, dr, i, port, problems)
				clusters = append(clusters, c)
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

// policyCluster is an EDS cluster with a traffic policy.
func policyCluster(name string, p clusterPolicy) *clusterv3.Cluster {
	c := edsCluster(name, p)
	p.applyTo(c)
	return c
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

// policyParts is the traffic policy in force for one cluster, part by part, after Istio's
// precedence: a subset's policy replaces the rule's parts it sets,
// and the port-level settings for the cluster's port replace all four parts of the policy
// they belong to, a part they leave out falling back to the defaults (port-level settings do
// not inherit). So a subset's port-level settings win over its policy, which wins over the
// rule's port-level settings, which win over the rule's policy. Each part keeps the field path
// it came from, for problems.
type policyParts struct {
	lb                        *networking.LoadBalancerSettings
	pool                      *networking.ConnectionPoolSettings
	od                        *networking.OutlierDetection
	tls                       *networking.ClientTLSSettings
	lbAt, poolAt, odAt, tlsAt string
}

// effectivePolicy returns the policy of a DestinationRule for one port of the host, or of one
// of its subsets (sub is the subset's index, -1 for the host itself).
func effectivePolicy(dr *networking.DestinationRule, sub int, port uint32) policyParts {
	const top = "spec.trafficPolicy"
	tp := dr.GetTrafficPolicy()
	pp := policyParts{}.override(tp, top).withPort(tp, top, port)
	if sub >= 0 {
		if st := dr.GetSubsets()[sub].GetTrafficPolicy(); st != nil {
			at := fmt.Sprintf("spec.subsets[%d].trafficPolicy", sub)
			pp = pp.override(st, at).withPort(st, at, port)
		}
	}
	return pp
}

// override replaces the parts that tp sets.
func (pp policyParts) override(tp *networking.TrafficPolicy, at string) policyParts {
	if v := tp.GetLoadBalancer(); v != nil {
		pp.lb, pp.lbAt = v, at+".loadBalancer"
	}
	if v := tp.GetConnectionPool(); v != nil {
		pp.pool, pp.poolAt = v, at+".connectionPool"
	}
	if v := tp.GetOutlierDetection(); v != nil {
		pp.od, pp.odAt = v, at+".outlierDetection"
	}
	if v := tp.GetTls(); v != nil {
		pp.tls, pp.tlsAt = v, at+".tls"
	}
	return pp
}

// withPort replaces every part with tp's port-level settings for port, when it has some.
func (pp policyParts) withPort(tp *networking.TrafficPolicy, at string, port uint32) policyParts {
	for i, pl := range tp.GetPortLevelSettings() {
		if pl.GetPort().GetNumber() != port {
			continue
		}
		p := fmt.Sprintf("%s.portLevelSettings[%d]", at, i)
		return policyParts{
			lb: pl.GetLoadBalancer(), pool: pl.GetConnectionPool(), od: pl.GetOutlierDetection(), tls: pl.GetTls(),
			lbAt: p + ".loadBalancer", poolAt: p + ".connectionPool", odAt: p + ".outlierDetection", tlsAt: p + ".tls",
		}
	}
	return pp
}

// clusterPolicy is what a DestinationRule's traffic policy sets on one cluster, in the fields
// sluice-proxy reads (proxy/internal/cluster: Compile), and the hash policy of the routes that
// send traffic to it.
type clusterPolicy struct {
	lb clusterv3.Cluster_LbPolicy
	// ringHash and maglev configure a consistent-hash lb; nil keeps the proxy's defaults.
	ringHash *clusterv3.Cluster_RingHashLbConfig
	maglev   *clusterv3.Cluster_MaglevLbConfig
	// connectTimeout is tcp.connectTimeout; nil keeps the mesh's 10s.
	connectTimeout *durationpb.Duration
	// thresholds are the circuit breakers; nil sends none (the proxy then applies Envoy's
	// 1024/1024/1024/3), which is what happens while the proxies do not enforce
	// connectionPool.
	thresholds *clusterv3.CircuitBreakers_Thresholds
	// idleTimeout and maxRequestsPerConnection go in common_http_protocol_options; nil and 0
	// leave them out.
	idleTimeout              *durationpb.Duration
	maxRequestsPerConnection uint32
	outlier                  *clusterv3.OutlierDetection
	// panicThreshold is common_lb_config.healthy_panic_threshold; nil keeps Envoy's 50%.
	panicThreshold *typev3.Percent
	// hash is the route hash policy of a consistent-hash cluster; nil for other clusters.
	hash *routev3.RouteAction_HashPolicy
}

// maxMaglevTableSize is the largest Maglev table Envoy accepts.
const maxMaglevTableSize = 5000011

// maxRingSize is Envoy's default maximum_ring_size: a larger minimum is refused.
const maxRingSize = 8 << 20

// defaultRingSize is Envoy's minimum_ring_size, which Istio sends when a consistentHash names
// no algorithm.
const defaultRingSize = 1024

// policyReporter reports the parts of a DestinationRule that cannot be translated, once each
// even though the rule is translated for each of its clusters.
type policyReporter struct {
	dr       *drEntry
	problems *[]Problem
}

func (r policyReporter) report(format string, args ...any) {
	p := Problem{Resource: r.dr.res.Kind + "/" + r.dr.res.Namespace + "/" + r.dr.res.Name, Message: fmt.Sprintf(format, args...)}
	if !slices.Contains(*r.problems, p) {
		*r.problems = append(*r.problems, p)
	}
}

func (r policyReporter) notEnforced(what string) {
	r.report("%s is not enforced by this version of sluice-proxy; the rest of the policy applies", what)
}

// clusterPolicy translates the traffic policy of a DestinationRule (nil for none) for one
// port of its host, or of one of its subsets (sub is the subset's index, -1 for the host).
func (m *Mesh) clusterPolicy(dr *drEntry, sub int, port uint32, problems *[]Problem) clusterPolicy {
	// Istio's default lb is LEAST_REQUEST.
	p := clusterPolicy{lb: clusterv3.Cluster_LEAST_REQUEST}
	if m.Features.ConnectionPool {
		p.thresholds = defaultThresholds()
	}
	if dr == nil {
		return p
	}
	pp := effectivePolicy(dr.dr, sub, port)
	r := policyReporter{dr: dr, problems: problems}
	m.applyLoadBalancer(pp, &p, r)
	m.applyConnectionPool(pp, &p, r)
	m.applyOutlierDetection(pp, &p, r)
	// tls is translated by applyClusterTLS (mtls.go).
	return p
}

// defaultThresholds are Istio's circuit breakers for a cluster whose policy sets none: every
// limit at its maximum, so that nothing is turned away unless a DestinationRule says so.
// Envoy's own defaults (1024 connections, pending and active requests, 3 retries in flight)
// are not what Istio users get: Istio raises them, max_retries above all, because 3 parallel
// retries are exhausted at once while endpoints churn. Remaining capacity is tracked, as in
// Istio, so that /stats shows how close a cluster is to its limits.
func defaultThresholds() *clusterv3.CircuitBreakers_Thresholds {
	return &clusterv3.CircuitBreakers_Thresholds{
		MaxConnections:     wrapperspb.UInt32(math.MaxUint32),
		MaxPendingRequests: wrapperspb.UInt32(math.MaxUint32),
		MaxRequests:        wrapperspb.UInt32(math.MaxUint32),
		MaxRetries:         wrapperspb.UInt32(math.MaxUint32),
		TrackRemaining:     true,
	}
}

func (m *Mesh) applyLoadBalancer(pp policyParts, p *clusterPolicy, r policyReporter) {
	lb := pp.lb
	if lb == nil {
		return
	}
	if lb.GetLocalityLbSetting() != nil {
		r.notEnforced(pp.lbAt + ".localityLbSetting")
	}
	if lb.GetWarmupDurationSecs() != nil || lb.GetWarmup() != nil {
		r.notEnforced(pp.lbAt + ".warmup")
	}
	switch policy := lb.GetLbPolicy().(type) {
	case *networking.LoadBalancerSettings_Simple:
		switch policy.Simple {
		case networking.LoadBalancerSettings_ROUND_ROBIN:
			p.lb = clusterv3.Cluster_ROUND_ROBIN
		case networking.LoadBalancerSettings_RANDOM:
			p.lb = clusterv3.Cluster_RANDOM
		case networking.LoadBalancerSettings_LEAST_REQUEST, networking.LoadBalancerSettings_LEAST_CONN:
			p.lb = clusterv3.Cluster_LEAST_REQUEST
		case networking.LoadBalancerSettings_PASSTHROUGH:
			r.notEnforced(pp.lbAt + ".simple PASSTHROUGH")
		}
	case *networking.LoadBalancerSettings_ConsistentHash:
		at := pp.lbAt + ".consistentHash"
		if !m.Features.ConsistentHash {
			r.notEnforced(at)
			return
		}
		ch := policy.ConsistentHash
		hash := hashPolicy(ch, at, r)
		if hash == nil {
			return
		}
		p.hash = hash
		switch {
		case ch.GetMaglev() != nil:
			p.lb = clusterv3.Cluster_MAGLEV
			if n := ch.GetMaglev().GetTableSize(); n != 0 {
				if n > maxMaglevTableSize || !isPrime(n) {
					r.report("%s.maglev.tableSize: %d is not a prime number up to %d; the default table size (65537) is used", at, n, maxMaglevTableSize)
				} else {
					p.maglev = &clusterv3.Cluster_MaglevLbConfig{TableSize: wrapperspb.UInt64(n)}
				}
			}
		case ch.GetRingHash() != nil:
			p.lb = clusterv3.Cluster_RING_HASH
			if n := ch.GetRingHash().GetMinimumRingSize(); n != 0 {
				p.ringHash = ringHashConfig(n, at+".ringHash.minimumRingSize", r)
			}
		default:
			// Istio's choice when no algorithm is named: a ring of the deprecated
			// minimumRingSize, else of Envoy's default size.
			p.lb = clusterv3.Cluster_RING_HASH
			n := uint64(defaultRingSize)
			if v := ch.GetMinimumRingSize(); v != 0 { //nolint:staticcheck // deprecated, still accepted as Istio does
				n = v
			}
			p.ringHash = ringHashConfig(n, at+".minimumRingSize", r)
		}
	}
}

func ringHashConfig(n uint64, at string, r policyReporter) *clusterv3.Cluster_RingHashLbConfig {
	if n > maxRingSize {
		r.report("%s: %d is above the largest ring (%d); a ring of %d is used", at, n, maxRingSize, defaultRingSize)
		n = defaultRingSize
	}
	return &clusterv3.Cluster_RingHashLbConfig{MinimumRingSize: wrapperspb.UInt64(n)}
}

// hashPolicy translates a consistentHash's key into the route hash policy of the routes to
// the cluster, as Istio does; nil, reported, when it names no usable key.
func hashPolicy(ch *networking.LoadBalancerSettings_ConsistentHashLB, at string, r policyReporter) *routev3.RouteAction_HashPolicy {
	switch key := ch.GetHashKey().(type) {
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
			Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: key.HttpHeaderName},
		}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpCookie:
		c := key.HttpCookie
		if c.GetName() == "" {
			r.report("%s.httpCookie.name: required; the cluster keeps its default load balancer", at)
			return nil
		}
		if len(c.GetAttributes()) > 0 {
			r.notEnforced(at + ".httpCookie.attributes")
		}
		cookie := &routev3.RouteAction_HashPolicy_Cookie{Name: c.GetName(), Path: c.GetPath()}
		if t := c.GetTtl(); t != nil {
			cookie.Ttl = durationpb.New(t.AsDuration())
		}
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: cookie}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_UseSourceIp:
		if !key.UseSourceIp {
			r.report("%s.useSourceIp: false names no hash key; set it to true or use another key (the cluster keeps its default load balancer)", at)
			return nil
		}
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
			ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true},
		}}
	case *networking.LoadBalancerSettings_ConsistentHashLB_HttpQueryParameterName:
		return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{
			QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: key.HttpQueryParameterName},
		}}
	}
	r.report("%s: set one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName (the cluster keeps its default load balancer)", at)
	return nil
}

// applyConnectionPool translates connectionPool as Istio does: each limit that is set (above
// zero) replaces its default threshold; an http idleTimeout wins over a tcp one.
func (m *Mesh) applyConnectionPool(pp policyParts, p *clusterPolicy, r policyReporter) {
	cp := pp.pool
	if cp == nil {
		return
	}
	if !m.Features.ConnectionPool {
		r.notEnforced(pp.poolAt)
		return
	}
	t := p.thresholds
	if h := cp.GetHttp(); h != nil {
		at := pp.poolAt + ".http"
		if h.GetHttp2MaxRequests() > 0 {
			t.MaxRequests = wrapperspb.UInt32(uint32(h.GetHttp2MaxRequests()))
		}
		if h.GetHttp1MaxPendingRequests() > 0 {
			t.MaxPendingRequests = wrapperspb.UInt32(uint32(h.GetHttp1MaxPendingRequests()))
		}
		if h.GetMaxRetries() > 0 {
			t.MaxRetries = wrapperspb.UInt32(uint32(h.GetMaxRetries()))
		}
		p.idleTimeout = h.GetIdleTimeout()
		if h.GetMaxRequestsPerConnection() > 0 {
			p.maxRequestsPerConnection = uint32(h.GetMaxRequestsPerConnection())
		}
		if h.GetMaxConcurrentStreams() > 0 {
			r.notEnforced(at + ".maxConcurrentStreams")
		}
		if h.GetHttp2KeepAlive() != nil {
			r.notEnforced(at + ".http2KeepAlive")
		}
		if h.GetH2UpgradePolicy() == networking.ConnectionPoolSettings_HTTPSettings_UPGRADE {
			// Upstream requests keep the caller's protocol (what useClientProtocol asks for).
			r.notEnforced(at + ".h2UpgradePolicy UPGRADE")
		}
	}
	if tcp := cp.GetTcp(); tcp != nil {
		at := pp.poolAt + ".tcp"
		if tcp.GetConnectTimeout() != nil {
			p.connectTimeout = durationpb.New(tcp.GetConnectTimeout().AsDuration())
		}
		if tcp.GetMaxConnections() > 0 {
			t.MaxConnections = wrapperspb.UInt32(uint32(tcp.GetMaxConnections()))
		}
		if p.idleTimeout == nil {
			p.idleTimeout = tcp.GetIdleTimeout()
		}
		if tcp.GetMaxConnectionDuration() != nil {
			r.notEnforced(at + ".maxConnectionDuration")
		}
		if tcp.GetTcpKeepalive() != nil {
			r.notEnforced(at + ".tcpKeepalive")
		}
	}
	if p.idleTimeout != nil {
		p.idleTimeout = durationpb.New(p.idleTimeout.AsDuration())
	}
}

// applyOutlierDetection translates outlierDetection as Istio does. Success-rate ejection is
// turned off. A consecutive count that is set enables its detector (enforcing 100%) when above
// zero and disables it at zero; one left unset keeps Envoy's defaults: 5 consecutive 5xx,
// enforced, and gateway errors not enforced. interval (10s), baseEjectionTime (30s) and
// maxEjectionPercent (10%) also keep Envoy's defaults, which are Istio's, when unset.
// minHealthPercent becomes the panic threshold even at 0 (its default), which turns Envoy's
// panic mode off: Istio does so because services often have few endpoints.
func (m *Mesh) applyOutlierDetection(pp policyParts, p *clusterPolicy, r policyReporter) {
	od := pp.od
	if od == nil {
		return
	}
	if !m.Features.OutlierDetection {
		r.notEnforced(pp.odAt)
		return
	}
	out := &clusterv3.OutlierDetection{EnforcingSuccessRate: wrapperspb.UInt32(0)}
	enforcing := func(n uint32) *wrapperspb.UInt32Value {
		if n > 0 {
			return wrapperspb.UInt32(100)
		}
		return wrapperspb.UInt32(0)
	}
	if v := od.GetConsecutive_5XxErrors(); v != nil {
		out.Consecutive_5Xx, out.EnforcingConsecutive_5Xx = wrapperspb.UInt32(v.GetValue()), enforcing(v.GetValue())
	}
	if v := od.GetConsecutiveGatewayErrors(); v != nil {
		out.ConsecutiveGatewayFailure, out.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(v.GetValue()), enforcing(v.GetValue())
	}
	if v := od.GetInterval(); v != nil {
		out.Interval = durationpb.New(v.AsDuration())
	}
	if v := od.GetBaseEjectionTime(); v != nil {
		out.BaseEjectionTime = durationpb.New(v.AsDuration())
	}
	if od.GetMaxEjectionPercent() > 0 {
		out.MaxEjectionPercent = wrapperspb.UInt32(uint32(od.GetMaxEjectionPercent()))
	}
	if od.GetConsecutiveErrors() != 0 { //nolint:staticcheck // deprecated: reported, not translated
		r.report("%s.consecutiveErrors is deprecated and ignored, as in Istio: use consecutive5xxErrors or consecutiveGatewayErrors", pp.odAt)
	}
	if od.GetSplitExternalLocalOriginErrors() || od.GetConsecutiveLocalOriginFailures() != nil {
		r.notEnforced(pp.odAt + ".splitExternalLocalOriginErrors")
	}
	p.outlier = out
	if od.GetMinHealthPercent() >= 0 {
		p.panicThreshold = &typev3.Percent{Value: float64(od.GetMinHealthPercent())}
	}
}

// applyTo sets the policy on a cluster built with the mesh's defaults.
func (p clusterPolicy) applyTo(c *clusterv3.Cluster) {
	c.LbPolicy = p.lb
	switch {
	case p.ringHash != nil:
		c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: p.ringHash}
	case p.maglev != nil:
		c.LbConfig = &clusterv3.Cluster_MaglevLbConfig_{MaglevLbConfig: p.maglev}
	}
	if p.connectTimeout != nil {
		c.ConnectTimeout = p.connectTimeout
	}
	if p.thresholds != nil {
		c.CircuitBreakers = &clusterv3.CircuitBreakers{Thresholds: []*clusterv3.CircuitBreakers_Thresholds{p.thresholds}}
	}
	c.OutlierDetection = p.outlier
	if p.panicThreshold != nil {
		c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: p.panicThreshold}
	}
	if p.idleTimeout == nil && p.maxRequestsPerConnection == 0 {
		return
	}
	opts := &httpv3.HttpProtocolOptions{}
	if a := c.GetTypedExtensionProtocolOptions()[httpOptionsKey]; a != nil {
		if err := a.UnmarshalTo(opts); err != nil {
			// The options were marshalled from the same type just before.
			panic(err)
		}
	}
	common := &corev3.HttpProtocolOptions{IdleTimeout: p.idleTimeout}
	if p.maxRequestsPerConnection > 0 {
		common.MaxRequestsPerConnection = wrapperspb.UInt32(p.maxRequestsPerConnection)
	}
	opts.CommonHttpProtocolOptions = common
	c.TypedExtensionProtocolOptions = map[string]*anypb.Any{httpOptionsKey: mustAny(opts)}
}

// httpOptionsKey is the typed_extension_protocol_options key of HttpProtocolOptions.
const httpOptionsKey = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"

// clusterHashPolicy returns the route hash policy of the cluster named name when its
// DestinationRule balances it by consistent hash, else nil. Problems are reported when the
// cluster itself is built.
func (m *Mesh) clusterHashPolicy(name string) *routev3.RouteAction_HashPolicy {
	if !m.Features.ConsistentHash {
		return nil
	}
	dir, port, subset, host, err := meta.ParseCluster(name)
	if err != nil || dir != "outbound" {
		return nil
	}
	dr := m.Config.destinationRule(host)
	if dr == nil {
		return nil
	}
	sub := -1
	if subset != "" {
		sub = slices.IndexFunc(dr.dr.GetSubsets(), func(s *networking.Subset) bool { return s.GetName() == subset })
		if sub < 0 {
			return nil
		}
	}
	pp := effectivePolicy(dr.dr, sub, port)
	if pp.lb.GetConsistentHash() == nil {
		return nil
	}
	var p clusterPolicy
	var ignored []Problem
	m.applyLoadBalancer(pp, &p, policyReporter{dr: dr, problems: &ignored})
	return p.hash
}

// isPrime reports whether n is a prime number; n is at most maxMaglevTableSize.
func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
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
			// A DestinationRule for the host applies as to a registered service's.
			dr := m.Config.destinationRule(host)
			m.clusterPolicy(dr, -1, port.GetNumber(), problems).applyTo(c)
			m.applyClusterTLS(c, nil, host, dr, -1, port.GetNumber(), problems)
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
