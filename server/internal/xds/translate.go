package xds

import (
	"cmp"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	httpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/registry"
)

// Service is one service of the mesh as the translator sees it: the union of the ports of its
// workloads, and for each port the endpoints that serve it.
type Service struct {
	Namespace string
	Name      string
	// Ports are sorted ascending.
	Ports     []uint32
	Endpoints map[uint32][]Endpoint
}

// FQDN returns the service's fully qualified host name.
func (s *Service) FQDN() string { return meta.FQDN(s.Name, s.Namespace) }

// Endpoint is one workload's sidecar inbound listener for a service port.
type Endpoint struct {
	Address netip.Addr
	Port    uint32
	// Workload and Namespace name the workload behind the endpoint as telemetry reports it
	// (see endpointWorkload).
	Workload, Namespace string
	Labels              map[string]string
	// NotReady marks an endpoint whose application fails its sidecar's probe: it is sent
	// with health_status UNHEALTHY, so proxies keep it in view but balance only to others.
	NotReady bool
	// Sidecar is true when a sidecar serves the endpoint, which auto mTLS then reaches over
	// mutual TLS; ServiceAccount is the workload's identity ("" means "default").
	Sidecar        bool
	ServiceAccount string
}

// Mesh is everything the translator reads: the services of the registry, the stored
// configuration, and what the proxies can enforce.
type Mesh struct {
	Services []*Service
	Config   *Config
	Features Features
	// Now is the time FaultExperiments are judged active at; zero means none is.
	Now time.Time
	// Halted holds the experiment runs ended before their time; they are not overlaid.
	Halted map[RunKey]bool
	// TrustDomain is the SPIFFE trust domain of workload identities; empty means
	// DefaultTrustDomain.
	TrustDomain string
	// byHost indexes Services by FQDN.
	byHost map[string]*Service
}

// BuildMesh groups the registry's endpoint workloads into services. Gateways serve no service
// port and so contribute no endpoints.
func BuildMesh(workloads []registry.Workload) *Mesh {
	byKey := map[[2]string]*Service{}
	for _, w := range workloads {
		if w.Mode == meta.ModeGateway || len(w.Ports) == 0 {
			continue
		}
		k := [2]string{w.Namespace, w.Service}
		s := byKey[k]
		if s == nil {
			s = &Service{Namespace: w.Namespace, Name: w.Service, Endpoints: map[uint32][]Endpoint{}}
			byKey[k] = s
		}
		for _, p := range w.Ports {
			if _, ok := s.Endpoints[p.Port]; !ok {
				s.Ports = append(s.Ports, p.Port)
			}
			s.Endpoints[p.Port] = append(s.Endpoints[p.Port], Endpoint{
				Address: w.Address, Port: p.Port, Workload: endpointWorkload(w), Namespace: w.Namespace, Labels: w.Labels,
				NotReady: w.Health.NotReady, Sidecar: sidecarWorkload(w), ServiceAccount: w.ServiceAccount,
			})
		}
	}
	m := &Mesh{byHost: make(map[string]*Service, len(byKey))}
	for _, s := range byKey {
		m.byHost[s.FQDN()] = s
		slices.Sort(s.Ports)
		for _, eps := range s.Endpoints {
			slices.SortFunc(eps, func(a, b Endpoint) int { return a.Address.Compare(b.Address) })
		}
		m.Services = append(m.Services, s)
	}
	slices.SortFunc(m.Services, func(a, b *Service) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Name, b.Name))
	})
	return m
}

// Resources is one proxy's complete configuration, by xDS type.
type Resources struct {
	Listeners []types.Resource
	Routes    []types.Resource
	Clusters  []types.Resource
	Endpoints []types.Resource
}

// shared is the part of the configuration that proxies share, built once per push: every
// cluster and endpoint set, and route tables by the proxy properties they depend on.
type shared struct {
	mesh      *Mesh
	clusters  []types.Resource
	endpoints []types.Resource
	routes    map[string][]types.Resource
	problems  []Problem
	// plainClusters are clusters without auto mTLS, for proxyless clients (mtls.go).
	plainClusters []types.Resource
}

func newShared(m *Mesh) *shared {
	sh := &shared{mesh: m, routes: map[string][]types.Resource{}}
	sh.clusters, sh.endpoints = buildClusters(m, &sh.problems)
	if !m.Features.MTLS {
		m.reportPeerAuthNotEnforced(&sh.problems)
	}
	return sh
}

// routesFor returns a proxy's route tables, shared with every proxy that would get the same:
// they depend on the proxy's namespace, its labels when a sourceLabels match exists and,
// for a gateway, the Gateways that select it.
func (sh *shared) routesFor(w registry.Workload) []types.Resource {
	key := w.Mode + "|" + w.Namespace
	if w.Mode == meta.ModeGateway || (sh.mesh.Config != nil && sh.mesh.Config.sourceLabels) {
		key += "|" + labelKey(w.Labels)
	}
	if rs, ok := sh.routes[key]; ok {
		return rs
	}
	var rs []types.Resource
	if w.Mode == meta.ModeGateway {
		rs = sh.gatewayRoutes(w)
	} else {
		rs = []types.Resource{sh.outboundRoutes(w)}
	}
	sh.routes[key] = rs
	return rs
}

func labelKey(labels map[string]string) string {
	var b strings.Builder
	for _, k := range sortedKeys(labels) {
		b.WriteString(k + "=" + labels[k] + ",")
	}
	return b.String()
}

// outboundRoutes is a sidecar's route table: a virtual host per service port (and per
// ServiceEntry host port), routed by the VirtualService bound to the mesh for that host, or
// straight to the service when there is none.
func (sh *shared) outboundRoutes(w registry.Workload) *routev3.RouteConfiguration {
	m := sh.mesh
	rc := &routev3.RouteConfiguration{Name: meta.OutboundRouteName, ValidateClusters: wrapperspb.Bool(false)}
	for _, s := range m.Services {
		fqdn := s.FQDN()
		for i, port := range s.Ports {
			rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
				Name:    fqdn + ":" + strconv.FormatUint(uint64(port), 10),
				Domains: domains(s, port, i == 0, s.Namespace == w.Namespace),
				Routes:  sh.hostRoutes(w, fqdn, port),
			})
		}
	}
	for _, e := range m.Config.serviceEntryList() {
		for _, host := range e.se.GetHosts() {
			if m.service(host) != nil || isWildcard(host) {
				continue
			}
			for i, port := range e.se.GetPorts() {
				p := ":" + strconv.FormatUint(uint64(port.GetNumber()), 10)
				d := []string{host + p}
				if i == 0 {
					d = append(d, host)
				}
				rc.VirtualHosts = append(rc.VirtualHosts, &routev3.VirtualHost{
					Name: host + p, Domains: d, Routes: sh.hostRoutes(w, host, port.GetNumber()),
				})
			}
		}
	}
	sh.overlayExperiments(w.Labels, rc)
	return rc
}

// hostRoutes routes one host and port for a sidecar.
func (sh *shared) hostRoutes(w registry.Workload, host string, port uint32) []*routev3.Route {
	if e := sh.mesh.Config.meshVirtualService(host); e != nil {
		ctx := &routeCtx{mesh: sh.mesh, features: sh.mesh.Features, proxy: w, port: port, host: host, problems: &sh.problems}
		return ctx.httpRoutes(e)
	}
	r := defaultRoute(meta.OutboundCluster(port, "", host))
	if sh.mesh.Features.Retries {
		// Istio retries connection failures on every route, with or without a VirtualService.
		r.GetRoute().RetryPolicy = retryPolicy(nil)
	}
	sh.mesh.applyHashPolicy(r.GetRoute(), true)
	return []*routev3.Route{r}
}

func defaultRoute(cluster string) *routev3.Route {
	return &routev3.Route{
		Name:  "default",
		Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
		Action: &routev3.Route_Route{Route: &routev3.RouteAction{
			ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
			// Istio sets no timeout unless a VirtualService asks for one; Envoy's default of
			// 15 s would cut long requests and gRPC streams.
			Timeout: durationpb.New(0),
		}},
	}
}

func (c *Config) meshVirtualService(host string) *vsEntry {
	if c == nil {
		return nil
	}
	return c.meshVS[host]
}

// domains lists the authorities that reach a service port: the FQDN and "<name>.<ns>" from
// every namespace, the short name only from the service's own namespace, each with ":port",
// and without a port only for the service's lowest port (a request without a port then
// reaches that one, and no domain appears in two virtual hosts).
func domains(s *Service, port uint32, lowest, sameNamespace bool) []string {
	hosts := []string{s.FQDN(), s.Name + "." + s.Namespace, s.Name + "." + s.Namespace + ".svc"}
	if sameNamespace {
		hosts = append(hosts, s.Name)
	}
	p := ":" + strconv.FormatUint(uint64(port), 10)
	out := make([]string, 0, 2*len(hosts))
	for _, h := range hosts {
		out = append(out, h+p)
		if lowest {
			out = append(out, h)
		}
	}
	return out
}

// BuildProxy returns the whole configuration of one proxy.
func BuildProxy(w registry.Workload, sh *shared) *Resources {
	r := &Resources{Routes: sh.routesFor(w), Clusters: sh.clusters, Endpoints: sh.endpoints}
	switch w.Mode {
	case meta.ModeGateway:
		r.Listeners = sh.gatewayListeners(w)
		return r
	case meta.ModeProxyless:
		r.Listeners = sh.apiListeners(w)
		r.Clusters = sh.proxylessClusters()
		return r
	}
	var own []types.Resource
	r.Listeners, own = sh.sidecarOwn(w)
	// The shared slice is clipped so that appending copies instead of writing into it.
	r.Clusters = append(slices.Clip(r.Clusters), own...)
	return r
}

// sidecarOwn returns what belongs to one sidecar alone: its outbound and inbound listeners,
// and the clusters of its application's ports. They depend on the workload and on the
// configuration's listenerInputs only.
func (sh *shared) sidecarOwn(w registry.Workload) (listeners, clusters []types.Resource) {
	listeners = append(listeners, outboundListener(w.Address, sh.mesh.Features))
	for _, p := range w.Ports {
		listeners = append(listeners, sh.withInboundFilters(w, p.Port, sh.sidecarInboundListener(w, p.Port)))
		clusters = append(clusters, staticCluster(meta.InboundCluster(p.Port), w.Address, p.AppPort))
	}
	return listeners, clusters
}

// apiListeners gives a proxyless gRPC client a listener for each name it may dial a service
// port by; each routes through the outbound route table, whose virtual hosts answer to the
// same names.
func (sh *shared) apiListeners(w registry.Workload) []types.Resource {
	var out []types.Resource
	for _, s := range sh.mesh.Services {
		for _, port := range s.Ports {
			p := ":" + strconv.FormatUint(uint64(port), 10)
			names := []string{s.FQDN() + p, s.Name + "." + s.Namespace + p, s.Name + "." + s.Namespace + ".svc" + p}
			if s.Namespace == w.Namespace {
				names = append(names, s.Name+p)
			}
			for _, name := range names {
				out = append(out, &listenerv3.Listener{
					Name: name,
					ApiListener: &listenerv3.ApiListener{
						ApiListener: mustAny(rdsManager("outbound", meta.OutboundRouteName, sh.mesh.Features, false)),
					},
				})
			}
		}
	}
	return out
}

func outboundListener(addr netip.Addr, f Features) *listenerv3.Listener {
	return listener(meta.OutboundListenerName, addr, meta.OutboundPort, rdsManager("outbound", meta.OutboundRouteName, f, true))
}

// rdsManager is an HttpConnectionManager whose routes come over RDS. The CORS and fault
// filters run before the router, in Istio's order, configured per route; the CORS filter
// only where a browser's requests can arrive (not on proxyless gRPC clients).
func rdsManager(statPrefix, routeName string, f Features, cors bool) *hcmv3.HttpConnectionManager {
	var filters []*hcmv3.HttpFilter
	if f.CORS && cors {
		filters = append(filters, &hcmv3.HttpFilter{
			Name:       corsFilterName,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&corsv3.Cors{})},
		})
	}
	if f.Fault {
		filters = append(filters, &hcmv3.HttpFilter{
			Name:       faultFilterName,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})},
		})
	}
	filters = append(filters, routerFilter()...)
	return &hcmv3.HttpConnectionManager{
		StatPrefix: statPrefix,
		RouteSpecifier: &hcmv3.HttpConnectionManager_Rds{Rds: &hcmv3.Rds{
			RouteConfigName: routeName,
			ConfigSource:    adsSource(),
		}},
		HttpFilters: filters,
	}
}

func inboundListener(addr netip.Addr, port uint32) *listenerv3.Listener {
	cluster := meta.InboundCluster(port)
	hcm := &hcmv3.HttpConnectionManager{
		StatPrefix: "inbound_" + strconv.FormatUint(uint64(port), 10),
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: &routev3.RouteConfiguration{
			Name: meta.InboundListener(port),
			VirtualHosts: []*routev3.VirtualHost{{
				Name:    "inbound|http|" + strconv.FormatUint(uint64(port), 10),
				Domains: []string{"*"},
				Routes: []*routev3.Route{{
					Name:  "default",
					Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
					Action: &routev3.Route_Route{Route: &routev3.RouteAction{
						ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: cluster},
						// No timeout on the inbound hop: the caller's route owns the budget.
						Timeout: durationpb.New(0),
					}},
				}},
			}},
		}},
		HttpFilters: routerFilter(),
	}
	return listener(meta.InboundListener(port), addr, port, hcm)
}

func listener(name string, addr netip.Addr, port uint32, hcm *hcmv3.HttpConnectionManager) *listenerv3.Listener {
	return &listenerv3.Listener{
		Name:    name,
		Address: socketAddress(addr, port),
		FilterChains: []*listenerv3.FilterChain{{
			Filters: []*listenerv3.Filter{{
				Name:       wellknown.HTTPConnectionManager,
				ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(hcm)},
			}},
		}},
	}
}

func routerFilter() []*hcmv3.HttpFilter {
	return []*hcmv3.HttpFilter{{
		Name:       wellknown.Router,
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&routerv3.Router{})},
	}}
}

func edsCluster(name string, p clusterPolicy) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                          name,
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:              &clusterv3.Cluster_EdsClusterConfig{EdsConfig: adsSource()},
		ConnectTimeout:                durationpb.New(10 * time.Second),
		LbPolicy:                      p.lb,
		TypedExtensionProtocolOptions: downstreamProtocol(),
	}
}

func staticCluster(name string, addr netip.Addr, port uint32) *clusterv3.Cluster {
	return &clusterv3.Cluster{
		Name:                          name,
		ClusterDiscoveryType:          &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		ConnectTimeout:                durationpb.New(10 * time.Second),
		LoadAssignment:                loadAssignment(name, []Endpoint{{Address: addr, Port: port}}),
		TypedExtensionProtocolOptions: downstreamProtocol(),
	}
}

// downstreamProtocol makes the upstream hop speak whatever the caller spoke: HTTP/1.1 stays
// HTTP/1.1, and HTTP/2 (gRPC) stays HTTP/2, so trailers survive.
func downstreamProtocol() map[string]*anypb.Any {
	opts := &httpv3.HttpProtocolOptions{
		UpstreamProtocolOptions: &httpv3.HttpProtocolOptions_UseDownstreamProtocolConfig{
			UseDownstreamProtocolConfig: &httpv3.HttpProtocolOptions_UseDownstreamHttpConfig{
				HttpProtocolOptions:  &corev3.Http1ProtocolOptions{},
				Http2ProtocolOptions: &corev3.Http2ProtocolOptions{},
			},
		},
	}
	return map[string]*anypb.Any{"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": mustAny(opts)}
}

func loadAssignment(cluster string, eps []Endpoint) *endpointv3.ClusterLoadAssignment {
	la := &endpointv3.ClusterLoadAssignment{ClusterName: cluster}
	lbs := make([]*endpointv3.LbEndpoint, 0, len(eps))
	for _, e := range eps {
		lb := &endpointv3.LbEndpoint{
			HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
				Address: socketAddress(e.Address, e.Port),
			}},
			HealthStatus: corev3.HealthStatus_HEALTHY,
		}
		if e.NotReady {
			lb.HealthStatus = corev3.HealthStatus_UNHEALTHY
		}
		if e.Workload != "" {
			lb.Metadata = endpointMetadata(e)
		}
		lb.Metadata = withTLSMode(lb.Metadata, e)
		lbs = append(lbs, lb)
	}
	la.Endpoints = []*endpointv3.LocalityLbEndpoints{{Locality: &corev3.Locality{}, LoadBalancingWeight: wrapperspb.UInt32(1), LbEndpoints: lbs}}
	return la
}

func socketAddress(addr netip.Addr, port uint32) *corev3.Address {
	return &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
		Address:       addr.String(),
		PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: port},
	}}}
}

func adsSource() *corev3.ConfigSource {
	return &corev3.ConfigSource{
		ResourceApiVersion:    corev3.ApiVersion_V3,
		ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
	}
}

func mustAny(m proto.Message) *anypb.Any {
	a, err := anypb.New(m)
	if err != nil {
		// Only an unregistered message type fails, which is a programming error.
		panic(err)
	}
	return a
}
