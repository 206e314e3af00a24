package xds

import (
	"slices"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluicemesh/sluice/server/internal/registry"
)

// gatewayServer is one server of a Gateway that selects a gateway proxy.
type gatewayServer struct {
	gateway string // "namespace/name"
	entry   *gwEntry
	port    uint32
	hosts   []string // without their "namespace/" prefix
	// tls is set on an HTTPS server the gateway terminates TLS for (gatewaytls.go).
	tls *networking.ServerTLSSettings
	// redirect answers every request with a 301 to https (tls.httpsRedirect).
	redirect bool
}

// gatewayServers lists the HTTP servers of every Gateway selecting the proxy, by port.
func (sh *shared) gatewayServers(w registry.Workload) map[uint32][]gatewayServer {
	out := map[uint32][]gatewayServer{}
	for _, g := range sh.mesh.Config.gatewaysFor(w.Labels) {
		name := g.res.Namespace + "/" + g.res.Name
		for _, srv := range g.gw.GetServers() {
			proto := strings.ToUpper(srv.GetPort().GetProtocol())
			if proto == "HTTPS" && !serverTLS(name, srv, &sh.problems) {
				continue
			}
			if proto != "HTTP" && proto != "HTTP2" && proto != "GRPC" && proto != "HTTPS" {
				sh.problems = append(sh.problems, Problem{
					Resource: "Gateway/" + name,
					Message:  "server on port " + strconv.FormatUint(uint64(srv.GetPort().GetNumber()), 10) + " speaks " + proto + ", which gateways do not serve yet (HTTP, and HTTPS terminated at the gateway)",
				})
				continue
			}
			gs := gatewayServer{gateway: name, entry: g, port: srv.GetPort().GetNumber()}
			if proto == "HTTPS" {
				gs.tls = srv.GetTls()
			} else {
				gs.redirect = srv.GetTls().GetHttpsRedirect()
			}
			for _, h := range srv.GetHosts() {
				if _, host, ok := strings.Cut(h, "/"); ok {
					h = host
				}
				gs.hosts = append(gs.hosts, h)
			}
			out[gs.port] = append(out[gs.port], gs)
		}
	}
	return out
}

// gatewayRouteName names the route table of a gateway port, as Istio does.
func gatewayRouteName(port uint32) string { return "http." + strconv.FormatUint(uint64(port), 10) }

// gatewayListeners binds a listener on the gateway proxy's address for every port its
// Gateways' servers use.
func (sh *shared) gatewayListeners(w registry.Workload) []types.Resource {
	servers := sh.gatewayServers(w)
	var out []types.Resource
	for _, port := range sortedPorts(servers) {
		if servers[port][0].tls != nil {
			out = append(out, sh.gatewayTLSListener(w, port, servers[port]))
			continue
		}
		name := "gateway|" + strconv.FormatUint(uint64(port), 10)
		out = append(out, listener(name, w.Address, port, rdsManager("gateway_"+strconv.FormatUint(uint64(port), 10), gatewayRouteName(port), sh.mesh.Features, true)))
	}
	return out
}

func sortedPorts[V any](m map[uint32]V) []uint32 {
	ports := make([]uint32, 0, len(m))
	for p := range m {
		ports = append(ports, p)
	}
	slices.Sort(ports)
	return ports
}

// gatewayRoutes builds a gateway proxy's route table per port: a virtual host for every host
// that both a server and a VirtualService bound to its Gateway name, with that
// VirtualService's routes. Any other host or path gets 404 from the proxy.
func (sh *shared) gatewayRoutes(w registry.Workload) []types.Resource {
	servers := sh.gatewayServers(w)
	var out []types.Resource
	for _, port := range sortedPorts(servers) {
		rc := &routev3.RouteConfiguration{Name: gatewayRouteName(port), ValidateClusters: wrapperspb.Bool(false)}
		byDomain := map[string]*routev3.VirtualHost{}
		for _, srv := range servers[port] {
			if srv.redirect {
				for _, h := range srv.hosts {
					if byDomain[h] == nil {
						byDomain[h] = redirectVirtualHost(h, port)
						rc.VirtualHosts = append(rc.VirtualHosts, byDomain[h])
					}
				}
				continue
			}
			for _, e := range sh.mesh.Config.virtualServices {
				if !slices.Contains(e.gateways, srv.gateway) {
					continue
				}
				for _, vsHost := range e.hosts {
					for _, srvHost := range srv.hosts {
						host, ok := intersectHosts(vsHost, srvHost)
						if !ok {
							continue
						}
						vh := byDomain[host]
						if vh == nil {
							vh = &routev3.VirtualHost{Name: host + ":" + strconv.FormatUint(uint64(port), 10), Domains: gatewayDomains(host, port)}
							byDomain[host] = vh
							rc.VirtualHosts = append(rc.VirtualHosts, vh)
						}
						ctx := &routeCtx{mesh: sh.mesh, features: sh.mesh.Features, proxy: w, gateway: srv.gateway, port: port, problems: &sh.problems}
						vh.Routes = append(vh.Routes, ctx.httpRoutes(e)...)
					}
				}
			}
		}
		out = append(out, rc)
	}
	return out
}

// intersectHosts returns the more specific of two hosts when one covers the other ("*" and
// "*.example.com" are wildcards), and false when they share no name.
func intersectHosts(a, b string) (string, bool) {
	switch {
	case a == b:
		return a, true
	case hostCovers(a, b):
		return b, true
	case hostCovers(b, a):
		return a, true
	}
	return "", false
}

// hostCovers reports whether wildcard host w matches every name of host h.
func hostCovers(w, h string) bool {
	if w == "*" {
		return true
	}
	if strings.HasPrefix(w, "*.") {
		return strings.HasSuffix(h, w[1:])
	}
	return false
}

func gatewayDomains(host string, port uint32) []string {
	if host == "*" {
		return []string{"*"}
	}
	return []string{host, host + ":" + strconv.FormatUint(uint64(port), 10)}
}
