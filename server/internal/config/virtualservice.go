package config

import (
	"slices"
	"strconv"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// Rules for VirtualService. Paths use the JSON (camelCase) field names.

func appliesToMesh(gateways []string) bool {
	return len(gateways) == 0 || slices.Contains(gateways, "mesh")
}

func (v *view) virtualService(e errorSink, r *Resource, vs *networking.VirtualService) {
	mesh := appliesToMesh(vs.Gateways)
	if len(vs.Hosts) == 0 {
		e.add("spec.hosts", "hosts is required: list the hosts this VirtualService routes, such as reviews")
	}
	seen := map[string]int{}
	for i, h := range vs.Hosts {
		p := index("spec.hosts", i)
		if h == "*" && mesh {
			e.add(p, `host "*" would capture every service in the mesh: name the hosts, or bind this VirtualService to a gateway with gateways: [my-gateway]`)
			continue
		}
		checkHost(e, p, h, true)
		full := ResolveHost(h, r.Namespace)
		if j, dup := seen[full]; dup {
			e.addf(p, "host %s is listed twice (also hosts[%d]): remove one", h, j)
			continue
		}
		seen[full] = i
	}
	for i, g := range vs.Gateways {
		v.checkGatewayRef(e, index("spec.gateways", i), g, r.Namespace)
	}
	if len(vs.Http)+len(vs.Tcp)+len(vs.Tls) == 0 {
		e.add("spec", "a VirtualService needs at least one http, tcp or tls rule")
	}
	for i, rt := range vs.Http {
		v.httpRoute(e, index("spec.http", i), rt, r)
	}
	for i, rt := range vs.Tcp {
		p := index("spec.tcp", i)
		for j, m := range rt.Match {
			v.l4Match(e, index(field(p, "match"), j), m.DestinationSubnets, m.SourceSubnet, m.Port, m.SourceLabels, m.Gateways, m.SourceNamespace, r.Namespace)
		}
		v.routeDestinations(e, field(p, "route"), routeDestinations(rt.Route), r)
	}
	for i, rt := range vs.Tls {
		p := index("spec.tls", i)
		for j, m := range rt.Match {
			mp := index(field(p, "match"), j)
			for k, sni := range m.SniHosts {
				sp := index(field(mp, "sniHosts"), k)
				checkHost(e, sp, sni, true)
				if !anyHostCovers(vs.Hosts, sni) {
					e.addf(sp, "SNI host %s is not among this VirtualService's hosts: add it to hosts, or fix it", sni)
				}
			}
			v.l4Match(e, mp, m.DestinationSubnets, "", m.Port, m.SourceLabels, m.Gateways, m.SourceNamespace, r.Namespace)
		}
		v.routeDestinations(e, field(p, "route"), routeDestinations(rt.Route), r)
	}
	checkExportTo(e, "spec.exportTo", vs.ExportTo)
	if mesh {
		v.meshHostConflicts(e, r, vs)
	}
}

// anyHostCovers reports whether sni is one of hosts or matched by a wildcard among them.
func anyHostCovers(hosts []string, sni string) bool {
	for _, h := range hosts {
		if hostMatches(h, sni) {
			return true
		}
	}
	return false
}

// hostMatches reports whether host is matched by pattern: equal, or under a wildcard pattern
// such as *.example.com, or pattern is "*".
func hostMatches(pattern, host string) bool {
	switch {
	case pattern == "*" || pattern == host:
		return true
	case strings.HasPrefix(pattern, "*."):
		return strings.HasSuffix(host, pattern[1:])
	}
	return false
}

// checkGatewayRef checks one entry of a gateways list: "mesh", "name" (in namespace ns) or
// "namespace/name", which must name a Gateway that exists once the batch is applied.
func (v *view) checkGatewayRef(e errorSink, path, ref, ns string) {
	if ref == "mesh" {
		return
	}
	gwNS, name, qualified := strings.Cut(ref, "/")
	if !qualified {
		gwNS, name = ns, ref
	}
	if !isDNS1123Label(gwNS) || !isDNS1123Subdomain(name) {
		e.addf(path, "%q is not a gateway reference: write name, namespace/name, or mesh", ref)
		return
	}
	if v.find(KindGateway, gwNS, name) == nil {
		e.addf(path, "gateway %s/%s does not exist: apply the Gateway first, or fix the name", gwNS, name)
	}
}

func (v *view) httpRoute(e errorSink, path string, rt *networking.HTTPRoute, r *Resource) {
	var actions []string
	if len(rt.Route) > 0 {
		actions = append(actions, "route")
	}
	if rt.Redirect != nil {
		actions = append(actions, "redirect")
	}
	if rt.DirectResponse != nil {
		actions = append(actions, "directResponse")
	}
	if rt.Delegate != nil {
		actions = append(actions, "delegate")
	}
	switch len(actions) {
	case 0:
		e.add(path, "a rule needs an action: add a route with at least one destination, a redirect, or a directResponse")
	case 1:
	default:
		e.addf(path, "%s cannot be combined: a rule takes one action, so split it into several rules", strings.Join(actions, " and "))
	}
	if rt.Delegate != nil {
		e.add(field(path, "delegate"), "delegate is not supported yet: put the routes in this VirtualService")
	}
	terminal := ""
	switch {
	case rt.Redirect != nil:
		terminal = "redirect"
	case rt.DirectResponse != nil:
		terminal = "directResponse"
	}
	if terminal != "" {
		if rt.Fault != nil {
			e.addf(field(path, "fault"), "fault cannot be combined with %s: faults apply to routed requests, so put the fault on a rule with a route", terminal)
		}
		if rt.Rewrite != nil {
			e.addf(field(path, "rewrite"), "rewrite cannot be combined with %s: rewrite applies to routed requests only", terminal)
		}
		if rt.Mirror != nil || len(rt.Mirrors) > 0 {
			e.addf(field(path, "mirror"), "mirroring cannot be combined with %s: only routed requests are mirrored", terminal)
		}
	}

	for j, m := range rt.Match {
		v.httpMatch(e, index(field(path, "match"), j), m, r)
	}
	dests := make([]weighted, len(rt.Route))
	for j, d := range rt.Route {
		dests[j] = weighted{d.Destination, d.Weight}
		checkHeaderOps(e, index(field(path, "route"), j)+".headers", d.Headers)
	}
	if len(rt.Route) > 0 {
		v.routeDestinations(e, field(path, "route"), dests, r)
	}
	checkRedirect(e, field(path, "redirect"), rt.Redirect)
	if dr := rt.DirectResponse; dr != nil && dr.Status != 0 && (dr.Status < 200 || dr.Status > 599) {
		e.addf(field(path, "directResponse.status"), "status %d is not a valid HTTP status: use 200 to 599, such as 503", dr.Status)
	}
	checkRewrite(e, field(path, "rewrite"), rt.Rewrite)
	checkRetries(e, field(path, "retries"), rt.Retries)
	checkFault(e, field(path, "fault"), rt.Fault)
	if rt.Mirror != nil {
		v.destination(e, field(path, "mirror"), rt.Mirror, r)
		if len(rt.Mirrors) > 0 {
			e.add(field(path, "mirrors"), "mirror and mirrors cannot both be set: move mirror into mirrors")
		}
	}
	if rt.MirrorPercent != nil {
		checkPercentage(e, field(path, "mirrorPercent"), float64(rt.MirrorPercent.Value))
	}
	for j, m := range rt.Mirrors {
		v.destination(e, index(field(path, "mirrors"), j)+".destination", m.Destination, r)
	}
	if c := rt.CorsPolicy; c != nil {
		for j, o := range c.AllowOrigins {
			checkStringMatch(e, index(field(path, "corsPolicy.allowOrigins"), j), o, false)
		}
		for j, h := range c.AllowHeaders {
			checkHeaderName(e, index(field(path, "corsPolicy.allowHeaders"), j), h, false)
		}
		for j, h := range c.ExposeHeaders {
			checkHeaderName(e, index(field(path, "corsPolicy.exposeHeaders"), j), h, false)
		}
	}
	checkHeaderOps(e, field(path, "headers"), rt.Headers)
}

func (v *view) httpMatch(e errorSink, path string, m *networking.HTTPMatchRequest, r *Resource) {
	checkStringMatch(e, field(path, "uri"), m.Uri, false)
	checkStringMatch(e, field(path, "scheme"), m.Scheme, false)
	checkStringMatch(e, field(path, "method"), m.Method, false)
	checkStringMatch(e, field(path, "authority"), m.Authority, false)
	for _, name := range sortedStringKeys(m.Headers) {
		p := mapKey(field(path, "headers"), name)
		checkHeaderName(e, p, name, true)
		checkStringMatch(e, p, m.Headers[name], true)
	}
	for _, name := range sortedStringKeys(m.WithoutHeaders) {
		p := mapKey(field(path, "withoutHeaders"), name)
		checkHeaderName(e, p, name, true)
		checkStringMatch(e, p, m.WithoutHeaders[name], true)
	}
	for _, name := range sortedStringKeys(m.QueryParams) {
		p := mapKey(field(path, "queryParams"), name)
		if name == "" {
			e.add(p, "a query parameter name cannot be empty")
		}
		checkStringMatch(e, p, m.QueryParams[name], true)
	}
	if m.Port > 65535 {
		checkPort(e, field(path, "port"), m.Port)
	}
	checkLabels(e, field(path, "sourceLabels"), m.SourceLabels)
	for i, g := range m.Gateways {
		v.checkGatewayRef(e, index(field(path, "gateways"), i), g, r.Namespace)
	}
	if m.SourceNamespace != "" && !isDNS1123Label(m.SourceNamespace) {
		e.addf(field(path, "sourceNamespace"), "%q is not a namespace name", m.SourceNamespace)
	}
}

func (v *view) l4Match(e errorSink, path string, subnets []string, sourceSubnet string, port uint32, labels map[string]string, gateways []string, sourceNS, ns string) {
	for i, s := range subnets {
		checkAddressOrCIDR(e, index(field(path, "destinationSubnets"), i), s)
	}
	if sourceSubnet != "" {
		checkAddressOrCIDR(e, field(path, "sourceSubnet"), sourceSubnet)
	}
	if port > 65535 {
		checkPort(e, field(path, "port"), port)
	}
	checkLabels(e, field(path, "sourceLabels"), labels)
	for i, g := range gateways {
		v.checkGatewayRef(e, index(field(path, "gateways"), i), g, ns)
	}
	if sourceNS != "" && !isDNS1123Label(sourceNS) {
		e.addf(field(path, "sourceNamespace"), "%q is not a namespace name", sourceNS)
	}
}

// weighted is a route destination of any of the three route kinds.
type weighted struct {
	dest   *networking.Destination
	weight int32
}

func routeDestinations(route []*networking.RouteDestination) []weighted {
	out := make([]weighted, len(route))
	for i, d := range route {
		out[i] = weighted{d.Destination, d.Weight}
	}
	return out
}

// routeDestinations checks a route's destinations and weights. Weights are relative shares,
// as in Istio: they need not add up to 100, but they cannot be negative, and when there are
// several destinations at least one must be positive. A single destination takes all traffic
// whatever its weight.
func (v *view) routeDestinations(e errorSink, path string, route []weighted, r *Resource) {
	if len(route) == 0 {
		e.add(path, "route is empty: add at least one destination")
		return
	}
	var sum int64
	negative := false
	for j, d := range route {
		p := index(path, j)
		v.destination(e, field(p, "destination"), d.dest, r)
		if d.weight < 0 {
			e.addf(field(p, "weight"), "weight %d is negative: weights are shares of the traffic, use 0 or more", d.weight)
			negative = true
		}
		sum += int64(d.weight)
	}
	if !negative && len(route) > 1 && sum == 0 {
		e.add(path, "every weight is 0, so no destination would get traffic: give at least one destination a positive weight")
	}
}

func (v *view) destination(e errorSink, path string, d *networking.Destination, r *Resource) {
	if d == nil {
		return // reported as required
	}
	if d.Host != "" {
		checkHost(e, field(path, "host"), d.Host, false)
	}
	if d.Port != nil && d.Port.Number != 0 {
		checkPort(e, field(path, "port.number"), d.Port.Number)
	}
	if d.Subset != "" && d.Host != "" && hostProblem(d.Host, false) == "" {
		v.checkSubset(e, field(path, "subset"), d.Host, d.Subset, r.Namespace)
	}
}

// checkSubset checks that the DestinationRule that applies to host defines subset. Without it
// Istio, and Sluice, answer 503 for every request the route sends there.
func (v *view) checkSubset(e errorSink, path, host, subset, ns string) {
	drs := v.destinationRulesFor(ResolveHost(host, ns))
	if len(drs) == 0 {
		e.addf(path, "subset %s of %s is not defined: apply a DestinationRule for host %s with subset %s first", subset, host, host, subset)
		return
	}
	var names, defined []string
	for _, dr := range drs {
		names = append(names, dr.Namespace+"/"+dr.Name)
		for _, s := range dr.Spec.(*networking.DestinationRule).Subsets {
			if s.Name == subset {
				return
			}
			defined = append(defined, s.Name)
		}
	}
	has := "no subsets"
	if len(defined) > 0 {
		has = "subsets " + strings.Join(defined, ", ")
	}
	e.addf(path, "subset %s of %s is not defined: DestinationRule %s has %s; add subset %s there first", subset, host, strings.Join(names, ", "), has, subset)
}

// destinationRulesFor returns the DestinationRules that apply to a fully qualified host: those
// naming it exactly or, failing that, those with the most specific matching wildcard.
func (v *view) destinationRulesFor(host string) []*Resource {
	if exact := v.drExact[host]; len(exact) > 0 {
		return exact
	}
	var wild []*Resource
	best := -1
	for _, r := range v.drWild {
		pattern := ResolveHost(r.Spec.(*networking.DestinationRule).Host, r.Namespace)
		if !hostMatches(pattern, host) {
			continue
		}
		if len(pattern) > best {
			best, wild = len(pattern), nil
		}
		if len(pattern) == best {
			wild = append(wild, r)
		}
	}
	return wild
}

// meshHostConflicts refuses a second VirtualService for a host in mesh traffic: Istio does
// not merge them for sidecars, so one would silently win, and Sluice's traffic slider edits
// "the" VirtualService of a service.
func (v *view) meshHostConflicts(e errorSink, r *Resource, vs *networking.VirtualService) {
	for i, h := range vs.Hosts {
		if h == "*" {
			continue
		}
		for _, other := range v.meshRoutes[ResolveHost(h, r.Namespace)] {
			if other.Key() != r.Key() {
				e.addf(index("spec.hosts", i), "host %s is already routed by VirtualService %s/%s: edit that VirtualService instead (mesh traffic to a host follows one VirtualService)", h, other.Namespace, other.Name)
				break
			}
		}
	}
}

var redirectCodes = []uint32{301, 302, 303, 307, 308}

func checkRedirect(e errorSink, path string, rd *networking.HTTPRedirect) {
	if rd == nil {
		return
	}
	if rd.RedirectCode != 0 && !slices.Contains(redirectCodes, rd.RedirectCode) {
		e.addf(field(path, "redirectCode"), "redirect code %d is not a redirect (3xx) status the proxy supports: use 301, 302, 303, 307 or 308", rd.RedirectCode)
	}
	if rd.Uri == "" && rd.Authority == "" && rd.Scheme == "" && rd.RedirectPort == nil && rd.PrefixRewrite == "" {
		e.add(path, "redirect changes nothing: set uri, authority, scheme, port or prefixRewrite")
	}
	if rd.Uri != "" && rd.PrefixRewrite != "" {
		e.add(field(path, "prefixRewrite"), "uri and prefixRewrite cannot both be set: keep one")
	}
	if p, ok := rd.RedirectPort.(*networking.HTTPRedirect_Port); ok {
		checkPort(e, field(path, "port"), p.Port)
	}
}

func checkRewrite(e errorSink, path string, rw *networking.HTTPRewrite) {
	if rw == nil {
		return
	}
	if rw.Uri != "" && rw.UriRegexRewrite != nil {
		e.add(field(path, "uriRegexRewrite"), "uri and uriRegexRewrite cannot both be set: keep one")
	}
	if rr := rw.UriRegexRewrite; rr != nil {
		if rr.Match == "" {
			e.add(field(path, "uriRegexRewrite.match"), "match is required: the regular expression to replace")
		} else {
			checkRegex(e, field(path, "uriRegexRewrite.match"), rr.Match)
		}
	}
	if rw.Uri == "" && rw.Authority == "" && rw.UriRegexRewrite == nil {
		e.add(path, "rewrite changes nothing: set uri, authority or uriRegexRewrite")
	}
}

// retryOnPolicies are the conditions of Envoy's x-envoy-retry-on and x-envoy-retry-grpc-on.
var retryOnPolicies = []string{
	"5xx", "gateway-error", "reset", "reset-before-request", "connect-failure", "envoy-ratelimited",
	"retriable-4xx", "refused-stream", "retriable-status-codes", "retriable-headers",
	"http3-post-connect-failure",
	"cancelled", "deadline-exceeded", "internal", "resource-exhausted", "unavailable",
}

func checkRetries(e errorSink, path string, rr *networking.HTTPRetry) {
	if rr == nil {
		return
	}
	checkNotNegative(e, field(path, "attempts"), rr.Attempts)
	checkPositiveDuration(e, field(path, "perTryTimeout"), rr.PerTryTimeout)
	if rr.RetryOn == "" {
		return
	}
	for _, cond := range strings.Split(rr.RetryOn, ",") {
		cond = strings.TrimSpace(cond)
		if cond == "" || slices.Contains(retryOnPolicies, cond) {
			continue
		}
		if code, err := strconv.Atoi(cond); err == nil && code >= 100 && code <= 599 {
			continue // a status code, as Istio allows
		}
		e.addf(field(path, "retryOn"), "unknown retry condition %q: use a comma-separated list of %s, or HTTP status codes such as 503", cond, strings.Join(retryOnPolicies, ", "))
	}
}

func checkFault(e errorSink, path string, f *networking.HTTPFaultInjection) {
	if f == nil {
		return
	}
	if f.Delay == nil && f.Abort == nil {
		e.add(path, "fault needs a delay or an abort")
	}
	if d := f.Delay; d != nil {
		dp := field(path, "delay")
		switch t := d.HttpDelayType.(type) {
		case nil:
			e.add(dp, "set fixedDelay, such as fixedDelay: 5s")
		case *networking.HTTPFaultInjection_Delay_FixedDelay:
			if t.FixedDelay.AsDuration() == 0 {
				e.add(field(dp, "fixedDelay"), "fixedDelay must be more than 0, such as 5s")
			}
		case *networking.HTTPFaultInjection_Delay_ExponentialDelay:
			e.add(field(dp, "exponentialDelay"), "exponentialDelay is not supported: use fixedDelay")
		}
		if d.Percent != 0 {
			checkPercentage(e, field(dp, "percent"), float64(d.Percent))
		}
	}
	if a := f.Abort; a != nil {
		ap := field(path, "abort")
		switch t := a.ErrorType.(type) {
		case nil:
			e.add(ap, "set httpStatus (such as 503) or grpcStatus (such as UNAVAILABLE)")
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			checkHTTPStatus(e, field(ap, "httpStatus"), t.HttpStatus, "abort code")
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			checkGRPCStatus(e, field(ap, "grpcStatus"), t.GrpcStatus)
		case *networking.HTTPFaultInjection_Abort_Http2Error:
			e.add(field(ap, "http2Error"), "http2Error is not supported: use httpStatus or grpcStatus")
		}
	}
}

func checkHeaderOps(e errorSink, path string, h *networking.Headers) {
	if h == nil {
		return
	}
	for _, side := range []struct {
		name string
		ops  *networking.Headers_HeaderOperations
	}{{"request", h.Request}, {"response", h.Response}} {
		ops := side.ops
		if ops == nil {
			continue
		}
		p := field(path, side.name)
		for _, name := range sortedStringKeys(ops.Set) {
			checkHeaderName(e, mapKey(field(p, "set"), name), name, false)
		}
		for _, name := range sortedStringKeys(ops.Add) {
			checkHeaderName(e, mapKey(field(p, "add"), name), name, false)
		}
		for i, name := range ops.Remove {
			checkHeaderName(e, index(field(p, "remove"), i), name, false)
		}
	}
}
