package xds

import (
	"cmp"
	"hash/fnv"
	"maps"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/config"
)

// MeshGateway is the name Istio gives the sidecars in a VirtualService's gateways list.
const MeshGateway = "mesh"

// Config is the mesh configuration the translator reads, indexed for it. Build it with
// IndexConfig; the zero value (nil) is a mesh with no configuration.
type Config struct {
	// meshVS maps a fully qualified host to the VirtualService that routes it for sidecars.
	meshVS map[string]*vsEntry
	// virtualServices lists every VirtualService, for gateways.
	virtualServices []*vsEntry
	// destinationRules maps a fully qualified host to its DestinationRules, the rule in the
	// host's own namespace first.
	destinationRules map[string][]*drEntry
	gateways         []*gwEntry
	serviceEntries   []*seEntry
	// experiments are the FaultExperiments, overlaid while active (experiments.go).
	experiments []*experiment
	// peerAuths are the PeerAuthentications, sorted by key (mtls.go).
	peerAuths []*paEntry
	// authz and rateLimits are the AuthorizationPolicies and RateLimits, enforced on inbound
	// listeners (authz.go, ratelimit.go).
	authz      []*authzEntry
	rateLimits []*rateLimitEntry
	// sourceLabels is set when a sidecar's routes depend on its labels: a VirtualService or a
	// FaultExperiment matches on sourceLabels. Otherwise every sidecar of a namespace gets the
	// same route table, built and marshaled once (translate.go, routesFor).
	sourceLabels bool
	// listenerInputs hashes what a sidecar's own listeners are built from besides the
	// workload: the PeerAuthentications, AuthorizationPolicies and RateLimits. Zero means
	// unknown (a resource without its canonical JSON), and nothing is reused.
	listenerInputs uint64
}

type vsEntry struct {
	res *config.Resource
	vs  *networking.VirtualService
	// hosts are the VirtualService's hosts, fully qualified.
	hosts []string
	// gateways are the gateways it binds to, as "namespace/name" or MeshGateway.
	gateways []string
}

type drEntry struct {
	res *config.Resource
	dr  *networking.DestinationRule
}

type gwEntry struct {
	res *config.Resource
	gw  *networking.Gateway
}

type seEntry struct {
	res *config.Resource
	se  *networking.ServiceEntry
}

// IndexConfig indexes decoded resources for translation. Resources of kinds the translator
// does not read are ignored.
func IndexConfig(rs []*config.Resource) *Config {
	c := &Config{meshVS: map[string]*vsEntry{}, destinationRules: map[string][]*drEntry{}}
	sorted := slices.Clone(rs)
	slices.SortFunc(sorted, func(a, b *config.Resource) int { return cmp.Compare(a.Key(), b.Key()) })
	c.experiments = indexExperiments(sorted)
	c.authz, c.rateLimits = indexAuthz(sorted), indexRateLimits(sorted)
	c.peerAuths = indexPeerAuthentications(sorted)
	for _, r := range sorted {
		switch spec := r.Spec.(type) {
		case *networking.VirtualService:
			e := &vsEntry{res: r, vs: spec, gateways: qualifyGateways(spec.GetGateways(), r.Namespace)}
			for _, h := range spec.GetHosts() {
				e.hosts = append(e.hosts, config.ResolveHost(h, r.Namespace))
			}
			c.virtualServices = append(c.virtualServices, e)
			if slices.Contains(e.gateways, MeshGateway) {
				for _, h := range e.hosts {
					if _, taken := c.meshVS[h]; !taken { // validation keeps one per host
						c.meshVS[h] = e
					}
				}
			}
		case *networking.DestinationRule:
			h := config.ResolveHost(spec.GetHost(), r.Namespace)
			c.destinationRules[h] = append(c.destinationRules[h], &drEntry{res: r, dr: spec})
		case *networking.Gateway:
			c.gateways = append(c.gateways, &gwEntry{res: r, gw: spec})
		case *networking.ServiceEntry:
			c.serviceEntries = append(c.serviceEntries, &seEntry{res: r, se: spec})
		}
	}
	// Istio looks for a host's DestinationRule in the client's namespace, then the host's;
	// with one rule per host and namespace, preferring the host's namespace serves both here.
	for h, drs := range c.destinationRules {
		ns := hostNamespace(h)
		slices.SortStableFunc(drs, func(a, b *drEntry) int {
			return cmp.Compare(boolRank(a.res.Namespace != ns), boolRank(b.res.Namespace != ns))
		})
	}
	c.sourceLabels = usesSourceLabels(c)
	c.listenerInputs = hashListenerInputs(c)
	return c
}

// hashListenerInputs hashes the resources a sidecar's own listeners depend on.
func hashListenerInputs(c *Config) uint64 {
	var rs []*config.Resource
	for _, e := range c.peerAuths {
		rs = append(rs, e.res)
	}
	for _, e := range c.authz {
		rs = append(rs, e.res)
	}
	for _, e := range c.rateLimits {
		rs = append(rs, e.res)
	}
	h := fnv.New64a()
	h.Write([]byte("listener-inputs"))
	for _, r := range rs {
		if len(r.SpecJSON) == 0 {
			return 0
		}
		for _, part := range []string{r.Kind, r.Namespace, r.Name, string(r.SpecJSON)} {
			h.Write([]byte(part))
			h.Write([]byte{0})
		}
	}
	return max(h.Sum64(), 1)
}

// usesSourceLabels reports whether any VirtualService or FaultExperiment matches requests
// by the labels of the workload sending them.
func usesSourceLabels(c *Config) bool {
	for _, e := range c.virtualServices {
		for _, rule := range e.vs.GetHttp() {
			for _, m := range rule.GetMatch() {
				if len(m.GetSourceLabels()) > 0 {
					return true
				}
			}
		}
	}
	for _, e := range c.experiments {
		if e.spec.Match != nil && len(e.spec.Match.SourceLabels) > 0 {
			return true
		}
	}
	return false
}

func boolRank(b bool) int {
	if b {
		return 1
	}
	return 0
}

// hostNamespace returns the namespace of a "<name>.<ns>.svc.cluster.local" host, or "".
func hostNamespace(host string) string {
	parts := strings.Split(host, ".")
	if len(parts) >= 3 && strings.HasSuffix(host, ".svc."+meta.DefaultDomain) {
		return parts[1]
	}
	return ""
}

// qualifyGateways writes each gateway reference as "namespace/name"; an empty list means the
// mesh, as in Istio.
func qualifyGateways(gws []string, namespace string) []string {
	if len(gws) == 0 {
		return []string{MeshGateway}
	}
	out := make([]string, 0, len(gws))
	for _, g := range gws {
		switch {
		case g == MeshGateway, strings.Contains(g, "/"):
			out = append(out, g)
		default:
			out = append(out, namespace+"/"+g)
		}
	}
	return out
}

// destinationRule returns the DestinationRule for a host, or nil.
func (c *Config) destinationRule(host string) *drEntry {
	if c == nil || len(c.destinationRules[host]) == 0 {
		return nil
	}
	return c.destinationRules[host][0]
}

// subsets returns the subsets defined for a host, by name.
func (c *Config) subsets(host string) map[string]*networking.Subset {
	out := map[string]*networking.Subset{}
	if dr := c.destinationRule(host); dr != nil {
		for _, s := range dr.dr.GetSubsets() {
			out[s.GetName()] = s
		}
	}
	return out
}

// gatewaysFor returns the Gateways whose selector matches a gateway proxy's labels, as
// "namespace/name" with the resource.
func (c *Config) gatewaysFor(labels map[string]string) []*gwEntry {
	if c == nil {
		return nil
	}
	var out []*gwEntry
	for _, g := range c.gateways {
		sel := g.gw.GetSelector()
		if len(sel) == 0 {
			continue // Istio requires a selector to bind a gateway to a proxy
		}
		ok := true
		for k, v := range sel {
			if labels[k] != v {
				ok = false
				break
			}
		}
		if ok {
			out = append(out, g)
		}
	}
	return out
}

func labelsMatch(sel, labels map[string]string) bool {
	for k, v := range sel {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// sortedKeys returns a map's keys in order, so generated config is stable.
func sortedKeys[V any](m map[string]V) []string {
	return slices.Sorted(maps.Keys(m))
}
