package xds

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/registry"
)

// Features lists the optional route features the proxies enforce. A feature a proxy does not
// enforce is left out of its configuration and reported as a problem, rather than sent and
// rejected: one unsupported field would otherwise block every update of the route table.
type Features struct {
	HeaderRewrite bool // headers: request/response set, add, remove
	RegexRewrite  bool // rewrite.uriRegexRewrite
	Retries       bool // retries, and Istio's default retry policy
	Fault         bool // fault: delay and abort
	Mirror        bool // mirror, mirrors
	CORS          bool // corsPolicy
	// DestinationRule traffic policies.
	ConsistentHash   bool // loadBalancer.consistentHash
	ConnectionPool   bool // connectionPool
	OutlierDetection bool // outlierDetection
	// MTLS is mutual TLS between sidecars: PeerAuthentication and DestinationRule tls.
	MTLS bool
}

// Problem is a part of the configuration that could not be translated as written.
type Problem struct {
	// Resource is "Kind/namespace/name".
	Resource string
	Message  string
}

// routeCtx is what translating a VirtualService's rules depends on: who receives the routes
// and which listener port and host they serve.
type routeCtx struct {
	mesh     *Mesh
	features Features
	proxy    registry.Workload
	// gateway is "namespace/name" when the routes are for a gateway's server, "" for sidecars.
	gateway string
	// port is the service port (sidecars) or the gateway server port the routes serve.
	port uint32
	// host is the fully qualified host of the virtual host ("" on a gateway's wildcard host).
	host     string
	problems *[]Problem
}

func (c *routeCtx) problem(e *vsEntry, format string, args ...any) {
	*c.problems = append(*c.problems, Problem{Resource: e.res.Kind + "/" + e.res.Namespace + "/" + e.res.Name, Message: fmt.Sprintf(format, args...)})
}

// httpRoutes translates a VirtualService's HTTP rules into Envoy routes, in order, keeping the
// matches that apply to this proxy, port and gateway. A request that no route matches gets
// 404 from the proxy, as in Istio.
func (c *routeCtx) httpRoutes(e *vsEntry) []*routev3.Route {
	var out []*routev3.Route
	for i, rule := range e.vs.GetHttp() {
		name := rule.GetName()
		if name == "" {
			name = e.res.Namespace + "." + e.res.Name + "." + strconv.Itoa(i)
		}
		matches := rule.GetMatch()
		if len(matches) == 0 {
			matches = []*networking.HTTPMatchRequest{{}}
		}
		for _, m := range matches {
			if !c.applies(m) {
				continue
			}
			r := &routev3.Route{Name: name, Match: c.routeMatch(m)}
			c.action(e, rule, r)
			out = append(out, r)
		}
	}
	return out
}

// applies reports whether a match can apply to the context's proxy, port and gateway; the
// rest of the match is left to the proxy.
func (c *routeCtx) applies(m *networking.HTTPMatchRequest) bool {
	if m.GetPort() != 0 && m.GetPort() != c.port {
		return false
	}
	if gws := m.GetGateways(); len(gws) > 0 {
		want := MeshGateway
		if c.gateway != "" {
			want = c.gateway
		}
		found := false
		for _, g := range qualifyGateways(gws, c.proxyNamespace()) {
			if g == want {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	if !labelsMatch(m.GetSourceLabels(), c.proxy.Labels) {
		return false
	}
	if ns := m.GetSourceNamespace(); ns != "" && ns != c.proxy.Namespace {
		return false
	}
	return true
}

func (c *routeCtx) proxyNamespace() string { return c.proxy.Namespace }

func (c *routeCtx) routeMatch(m *networking.HTTPMatchRequest) *routev3.RouteMatch {
	rm := &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}}
	switch u := m.GetUri().GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		rm.PathSpecifier = &routev3.RouteMatch_Path{Path: u.Exact}
	case *networking.StringMatch_Prefix:
		rm.PathSpecifier = &routev3.RouteMatch_Prefix{Prefix: u.Prefix}
	case *networking.StringMatch_Regex:
		rm.PathSpecifier = &routev3.RouteMatch_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: u.Regex}}
	}
	if m.GetIgnoreUriCase() {
		rm.CaseSensitive = wrapperspb.Bool(false)
	}
	for _, h := range sortedKeys(m.GetHeaders()) {
		rm.Headers = append(rm.Headers, headerMatcher(h, m.GetHeaders()[h], false))
	}
	for _, h := range sortedKeys(m.GetWithoutHeaders()) {
		rm.Headers = append(rm.Headers, headerMatcher(h, m.GetWithoutHeaders()[h], true))
	}
	for name, sm := range map[string]*networking.StringMatch{":method": m.GetMethod(), ":authority": m.GetAuthority(), ":scheme": m.GetScheme()} {
		if sm != nil && sm.GetMatchType() != nil {
			rm.Headers = append(rm.Headers, headerMatcher(name, sm, false))
		}
	}
	slices.SortStableFunc(rm.Headers, func(a, b *routev3.HeaderMatcher) int { return strings.Compare(a.Name, b.Name) })
	for _, q := range sortedKeys(m.GetQueryParams()) {
		qm := &routev3.QueryParameterMatcher{Name: q}
		if sm := stringMatcher(m.GetQueryParams()[q]); sm != nil {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_StringMatch{StringMatch: sm}
		} else {
			qm.QueryParameterMatchSpecifier = &routev3.QueryParameterMatcher_PresentMatch{PresentMatch: true}
		}
		rm.QueryParameters = append(rm.QueryParameters, qm)
	}
	return rm
}

// headerMatcher matches a header by a StringMatch; an empty StringMatch matches the header's
// presence, as in Istio. invert turns it into a withoutHeaders match.
func headerMatcher(name string, sm *networking.StringMatch, invert bool) *routev3.HeaderMatcher {
	hm := &routev3.HeaderMatcher{Name: strings.ToLower(name), InvertMatch: invert}
	if s := stringMatcher(sm); s != nil {
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_StringMatch{StringMatch: s}
	} else {
		hm.HeaderMatchSpecifier = &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}
	}
	return hm
}

func stringMatcher(sm *networking.StringMatch) *matcherv3.StringMatcher {
	switch m := sm.GetMatchType().(type) {
	case *networking.StringMatch_Exact:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: m.Exact}}
	case *networking.StringMatch_Prefix:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: m.Prefix}}
	case *networking.StringMatch_Regex:
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.Regex}}}
	}
	return nil
}

// action sets what a rule does: redirect, answer directly, or route to its destinations.
func (c *routeCtx) action(e *vsEntry, rule *networking.HTTPRoute, r *routev3.Route) {
	switch {
	case rule.GetRedirect() != nil:
		r.Action = &routev3.Route_Redirect{Redirect: redirect(rule.GetRedirect())}
	case rule.GetDirectResponse() != nil:
		dr := rule.GetDirectResponse()
		action := &routev3.DirectResponseAction{Status: dr.GetStatus()}
		switch b := dr.GetBody().GetSpecifier().(type) {
		case *networking.HTTPBody_String_:
			action.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: b.String_}}
		case *networking.HTTPBody_Bytes:
			action.Body = &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: b.Bytes}}
		}
		r.Action = &routev3.Route_DirectResponse{DirectResponse: action}
	default:
		r.Action = &routev3.Route_Route{Route: c.routeAction(e, rule)}
	}
	if c.features.HeaderRewrite {
		r.RequestHeadersToAdd, r.RequestHeadersToRemove = headerOps(rule.GetHeaders().GetRequest())
		r.ResponseHeadersToAdd, r.ResponseHeadersToRemove = headerOps(rule.GetHeaders().GetResponse())
	}
	if f := rule.GetFault(); f != nil && c.features.Fault {
		if cfg := faultConfig(f); cfg != nil {
			setFilterConfig(r, faultFilterName, mustAny(cfg))
		}
	}
	if cp := rule.GetCorsPolicy(); cp != nil && c.features.CORS {
		setFilterConfig(r, corsFilterName, mustAny(corsPolicy(cp)))
	}
	c.unsupported(e, rule)
}

func setFilterConfig(r *routev3.Route, name string, cfg *anypb.Any) {
	if r.TypedPerFilterConfig == nil {
		r.TypedPerFilterConfig = map[string]*anypb.Any{}
	}
	r.TypedPerFilterConfig[name] = cfg
}

// unsupported reports the rule's features the proxies do not enforce yet.
func (c *routeCtx) unsupported(e *vsEntry, rule *networking.HTTPRoute) {
	f := c.features
	check := func(set, supported bool, what string) {
		if set && !supported {
			c.problem(e, "%s is not enforced by this version of sluice-proxy; the rest of the route applies", what)
		}
	}
	headers := rule.GetHeaders() != nil
	for _, d := range rule.GetRoute() {
		headers = headers || d.GetHeaders() != nil
	}
	check(headers, f.HeaderRewrite, "headers")
	check(rule.GetRewrite().GetUriRegexRewrite() != nil, f.RegexRewrite, "rewrite.uriRegexRewrite")
	check(rule.GetRetries() != nil, f.Retries, "retries")
	check(rule.GetFault() != nil, f.Fault, "fault")
	check(rule.GetMirror() != nil || len(rule.GetMirrors()) > 0, f.Mirror, "mirror")
	check(rule.GetCorsPolicy() != nil, f.CORS, "corsPolicy")
}

func redirect(r *networking.HTTPRedirect) *routev3.RedirectAction {
	out := &routev3.RedirectAction{HostRedirect: r.GetAuthority()}
	if r.GetScheme() != "" {
		out.SchemeRewriteSpecifier = &routev3.RedirectAction_SchemeRedirect{SchemeRedirect: r.GetScheme()}
	}
	if r.GetUri() != "" {
		out.PathRewriteSpecifier = &routev3.RedirectAction_PathRedirect{PathRedirect: r.GetUri()}
	}
	if p, ok := r.GetRedirectPort().(*networking.HTTPRedirect_Port); ok {
		out.PortRedirect = p.Port
	}
	switch r.GetRedirectCode() {
	case 0, 301:
		out.ResponseCode = routev3.RedirectAction_MOVED_PERMANENTLY
	case 302:
		out.ResponseCode = routev3.RedirectAction_FOUND
	case 303:
		out.ResponseCode = routev3.RedirectAction_SEE_OTHER
	case 307:
		out.ResponseCode = routev3.RedirectAction_TEMPORARY_REDIRECT
	case 308:
		out.ResponseCode = routev3.RedirectAction_PERMANENT_REDIRECT
	}
	return out
}

// routeAction routes to the rule's destinations: one cluster, or clusters weighted in
// proportion to their weights (zero weights are left out).
func (c *routeCtx) routeAction(e *vsEntry, rule *networking.HTTPRoute) *routev3.RouteAction {
	ra := &routev3.RouteAction{Timeout: durationpb.New(0)}
	if t := rule.GetTimeout(); t != nil {
		ra.Timeout = durationpb.New(t.AsDuration())
	}
	var weighted []*routev3.WeightedCluster_ClusterWeight
	for _, d := range rule.GetRoute() {
		if d.GetWeight() == 0 && len(rule.GetRoute()) > 1 {
			continue
		}
		name := c.destinationCluster(e, d.GetDestination())
		w := d.GetWeight()
		if len(rule.GetRoute()) == 1 {
			w = 100
		}
		cw := &routev3.WeightedCluster_ClusterWeight{Name: name, Weight: wrapperspb.UInt32(uint32(w))}
		if c.features.HeaderRewrite {
			cw.RequestHeadersToAdd, cw.RequestHeadersToRemove = headerOps(d.GetHeaders().GetRequest())
			cw.ResponseHeadersToAdd, cw.ResponseHeadersToRemove = headerOps(d.GetHeaders().GetResponse())
		}
		weighted = append(weighted, cw)
	}
	// Per-destination headers only exist on weighted clusters; a single destination that
	// carries some keeps the weighted form.
	single := len(weighted) == 1 && len(weighted[0].RequestHeadersToAdd)+len(weighted[0].RequestHeadersToRemove)+
		len(weighted[0].ResponseHeadersToAdd)+len(weighted[0].ResponseHeadersToRemove) == 0
	switch {
	case len(weighted) == 0:
		// Validation refuses a rule without destinations; answer as Envoy does for a
		// cluster that does not exist rather than send an invalid route.
		ra.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "no-destination"}
	case single:
		ra.ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: weighted[0].Name}
	default:
		ra.ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{Clusters: weighted}}
	}
	if c.features.Retries {
		ra.RetryPolicy = retryPolicy(rule.GetRetries())
	}
	c.mesh.applyHashPolicy(ra, len(rule.GetRoute()) == 1)
	if c.features.Mirror {
		if m := rule.GetMirror(); m != nil {
			ra.RequestMirrorPolicies = append(ra.RequestMirrorPolicies, mirrorPolicy(c.destinationCluster(e, m), rule.GetMirrorPercentage(), rule.GetMirrorPercent()))
		}
		for _, m := range rule.GetMirrors() {
			ra.RequestMirrorPolicies = append(ra.RequestMirrorPolicies, mirrorPolicy(c.destinationCluster(e, m.GetDestination()), m.GetPercentage(), nil))
		}
	}
	if rw := rule.GetRewrite(); rw != nil {
		if rw.GetUri() != "" {
			ra.PrefixRewrite = rw.GetUri()
		}
		if rw.GetAuthority() != "" {
			ra.HostRewriteSpecifier = &routev3.RouteAction_HostRewriteLiteral{HostRewriteLiteral: rw.GetAuthority()}
		}
		if rr := rw.GetUriRegexRewrite(); rr != nil && c.features.RegexRewrite {
			ra.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
				Pattern:      &matcherv3.RegexMatcher{Regex: rr.GetMatch()},
				Substitution: rr.GetRewrite(),
			}
		}
	}
	return ra
}

// destinationCluster names the cluster of a destination: "outbound|port|subset|host". The
// port is the destination's, else the port being served when the destination is the host
// being served, else the destination service's only port.
func (c *routeCtx) destinationCluster(e *vsEntry, d *networking.Destination) string {
	host := config.ResolveHost(d.GetHost(), e.res.Namespace)
	port := d.GetPort().GetNumber()
	if port == 0 {
		ports := c.mesh.hostPorts(host)
		switch {
		case host == c.host || slices.Contains(ports, c.port) && c.gateway == "":
			port = c.port
		case len(ports) == 1:
			port = ports[0]
		case len(ports) == 0:
			c.problem(e, "destination %s is not a known service: its requests fail until it registers", host)
			port = c.port
		default:
			c.problem(e, "destination %s has several ports (%v): set destination.port", host, ports)
			port = ports[0]
		}
	}
	return meta.OutboundCluster(port, d.GetSubset(), host)
}

// applyHashPolicy gives a route action the hash policies of its clusters that balance by
// consistent hash, as Istio does: each such destination contributes its DestinationRule's
// key (an identical key once), and a request's key combines them. A route to a single such
// destination retries on the endpoint its key picks, as in Istio: its retry policy loses the
// previous_hosts predicate. Call it once the retry policy is set.
func (m *Mesh) applyHashPolicy(ra *routev3.RouteAction, singleDestination bool) {
	ra.HashPolicy = m.routeHashPolicy(ra)
	if len(ra.HashPolicy) > 0 && singleDestination && ra.GetRetryPolicy() != nil {
		ra.RetryPolicy.RetryHostPredicate = nil
	}
}

func (m *Mesh) routeHashPolicy(ra *routev3.RouteAction) []*routev3.RouteAction_HashPolicy {
	if !m.Features.ConsistentHash {
		return nil
	}
	var out []*routev3.RouteAction_HashPolicy
	add := func(cluster string) {
		hp := m.clusterHashPolicy(cluster)
		if hp == nil || slices.ContainsFunc(out, func(o *routev3.RouteAction_HashPolicy) bool { return proto.Equal(o, hp) }) {
			return
		}
		out = append(out, hp)
	}
	switch cs := ra.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		add(cs.Cluster)
	case *routev3.RouteAction_WeightedClusters:
		for _, cw := range cs.WeightedClusters.GetClusters() {
			add(cw.GetName())
		}
	}
	return out
}
