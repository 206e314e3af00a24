package xds

import (
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/wellknown"
	"google.golang.org/protobuf/types/known/wrapperspb"
	security "istio.io/api/security/v1beta1"

	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/registry"
)

// RootNamespace is the mesh's root namespace, as in Istio: an AuthorizationPolicy there
// without a selector applies to every workload of the mesh, and one with a selector to the
// matching workloads of every namespace.
const RootNamespace = "istio-system"

// rbacFilterName is Envoy's RBAC HTTP filter; Istio names every RBAC filter it emits so.
const rbacFilterName = "envoy.filters.http.rbac"

// uriTemplateExtension names Envoy's URI template path matcher, which carries Istio's {*} and
// {**} path templates.
const uriTemplateExtension = "envoy.path.match.uri_template.uri_template_matcher"

// authzEntry is one AuthorizationPolicy.
type authzEntry struct {
	res *config.Resource
	ap  *security.AuthorizationPolicy
}

// indexAuthz keeps the AuthorizationPolicies of sorted, in their order.
func indexAuthz(sorted []*config.Resource) []*authzEntry {
	var out []*authzEntry
	for _, r := range sorted {
		if ap, ok := r.Spec.(*security.AuthorizationPolicy); ok {
			out = append(out, &authzEntry{res: r, ap: ap})
		}
	}
	return out
}

// selects reports whether the policy applies to workload w, as Istio scopes it: a policy in
// the root namespace applies in every namespace, any other only in its own; no selector
// means every workload in that scope.
func (e *authzEntry) selects(w registry.Workload) bool {
	if e.res.Namespace != RootNamespace && e.res.Namespace != w.Namespace {
		return false
	}
	return labelsMatch(e.ap.GetSelector().GetMatchLabels(), w.Labels)
}

// withInboundFilters puts the HTTP filters a sidecar's inbound listener runs before its
// router into every filter chain of l (plaintext and mutual TLS alike): authorization
// (AUDIT, then DENY, then ALLOW, as Istio orders them), then the RateLimits that select the
// workload. It returns l.
func (sh *shared) withInboundFilters(w registry.Workload, port uint32, l *listenerv3.Listener) *listenerv3.Listener {
	filters := authzFilters(sh.mesh.Config, w)
	filters = append(filters, rateLimitFilters(sh.mesh.Config, w)...)
	if len(filters) == 0 {
		return l
	}
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			var hcm hcmv3.HttpConnectionManager
			if f.GetName() != wellknown.HTTPConnectionManager || f.GetTypedConfig().UnmarshalTo(&hcm) != nil {
				continue
			}
			hcm.HttpFilters = append(slices.Clone(filters), hcm.HttpFilters...)
			f.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: mustAny(&hcm)}
		}
	}
	return l
}

// authzFilters translates the AuthorizationPolicies that select w into RBAC filters: one per
// action in use. A workload that no ALLOW policy selects gets no ALLOW filter, so whatever
// is not denied is allowed; one that some ALLOW policy selects allows only what matches a
// rule of one (a policy without rules matches nothing, which is how spec: {} denies all).
func authzFilters(c *Config, w registry.Workload) []*hcmv3.HttpFilter {
	if c == nil {
		return nil
	}
	byAction := map[security.AuthorizationPolicy_Action]map[string]*rbacv3.Policy{}
	for _, e := range c.authz {
		if !e.selects(w) {
			continue
		}
		ps := byAction[e.ap.GetAction()]
		if ps == nil {
			ps = map[string]*rbacv3.Policy{}
			byAction[e.ap.GetAction()] = ps
		}
		for i, rule := range e.ap.GetRules() {
			ps[policyName(e.res.Namespace, e.res.Name, i)] = rbacPolicy(rule)
		}
		if len(e.ap.GetRules()) == 0 {
			// A policy without rules matches nothing. It still gets a policy that never
			// matches, so that the filter exists (an ALLOW policy alone then denies all) and
			// names it: a denial can say which ALLOW policies the request failed.
			ps["ns["+e.res.Namespace+"]-policy["+e.res.Name+"]-rule[none]"] = &rbacv3.Policy{
				Permissions: []*rbacv3.Permission{notPerm(&rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}})},
				Principals:  []*rbacv3.Principal{{Identifier: &rbacv3.Principal_Any{Any: true}}},
			}
		}
	}
	var out []*hcmv3.HttpFilter
	for _, a := range []struct {
		from security.AuthorizationPolicy_Action
		to   rbacv3.RBAC_Action
	}{
		{security.AuthorizationPolicy_AUDIT, rbacv3.RBAC_LOG},
		{security.AuthorizationPolicy_DENY, rbacv3.RBAC_DENY},
		{security.AuthorizationPolicy_ALLOW, rbacv3.RBAC_ALLOW},
	} {
		ps, ok := byAction[a.from]
		if !ok {
			continue
		}
		out = append(out, &hcmv3.HttpFilter{
			Name: rbacFilterName,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&rbachttpv3.RBAC{
				Rules: &rbacv3.RBAC{Action: a.to, Policies: ps},
			})},
		})
	}
	return out
}

// policyName is Istio's name for the RBAC policy of rule i of a policy; denials cite it.
func policyName(namespace, name string, rule int) string {
	return "ns[" + namespace + "]-policy[" + name + "]-rule[" + strconv.Itoa(rule) + "]"
}

// rbacPolicy translates one rule: its operations and the conditions on the request become
// permissions, its sources and the conditions on the caller principals; both must match.
// An absent part matches anything.
func rbacPolicy(rule *security.Rule) *rbacv3.Policy {
	var perms []*rbacv3.Permission
	var ids []*rbacv3.Principal
	if len(rule.GetTo()) > 0 {
		var ops []*rbacv3.Permission
		for _, to := range rule.GetTo() {
			ops = append(ops, operationPermission(to.GetOperation()))
		}
		perms = append(perms, orPerms(ops))
	}
	if len(rule.GetFrom()) > 0 {
		var srcs []*rbacv3.Principal
		for _, from := range rule.GetFrom() {
			srcs = append(srcs, sourcePrincipal(from.GetSource()))
		}
		ids = append(ids, orIDs(srcs))
	}
	for _, c := range rule.GetWhen() {
		p, id := condition(c)
		if p != nil {
			perms = append(perms, p)
		}
		if id != nil {
			ids = append(ids, id)
		}
	}
	return &rbacv3.Policy{Permissions: []*rbacv3.Permission{andPerms(perms)}, Principals: []*rbacv3.Principal{andIDs(ids)}}
}

func andPerms(ps []*rbacv3.Permission) *rbacv3.Permission {
	if len(ps) == 0 {
		return &rbacv3.Permission{Rule: &rbacv3.Permission_Any{Any: true}}
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_AndRules{AndRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func orPerms(ps []*rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_OrRules{OrRules: &rbacv3.Permission_Set{Rules: ps}}}
}

func notPerm(p *rbacv3.Permission) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_NotRule{NotRule: p}}
}

func andIDs(ids []*rbacv3.Principal) *rbacv3.Principal {
	if len(ids) == 0 {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_Any{Any: true}}
	}
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_AndIds{AndIds: &rbacv3.Principal_Set{Ids: ids}}}
}

func orIDs(ids []*rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_OrIds{OrIds: &rbacv3.Principal_Set{Ids: ids}}}
}

func notID(id *rbacv3.Principal) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_NotId{NotId: id}}
}

// permField adds to perms the permission that one of values matches, and the one that none
// of notValues does.
func permField(perms []*rbacv3.Permission, values, notValues []string, one func(string) *rbacv3.Permission) []*rbacv3.Permission {
	each := func(vs []string) *rbacv3.Permission {
		out := make([]*rbacv3.Permission, 0, len(vs))
		for _, v := range vs {
			out = append(out, one(v))
		}
		return orPerms(out)
	}
	if len(values) > 0 {
		perms = append(perms, each(values))
	}
	if len(notValues) > 0 {
		perms = append(perms, notPerm(each(notValues)))
	}
	return perms
}

func idField(ids []*rbacv3.Principal, values, notValues []string, one func(string) *rbacv3.Principal) []*rbacv3.Principal {
	each := func(vs []string) *rbacv3.Principal {
		out := make([]*rbacv3.Principal, 0, len(vs))
		for _, v := range vs {
			out = append(out, one(v))
		}
		return orIDs(out)
	}
	if len(values) > 0 {
		ids = append(ids, each(values))
	}
	if len(notValues) > 0 {
		ids = append(ids, notID(each(notValues)))
	}
	return ids
}

func operationPermission(o *security.Operation) *rbacv3.Permission {
	var perms []*rbacv3.Permission
	perms = permField(perms, o.GetHosts(), o.GetNotHosts(), hostPermission)
	perms = permField(perms, o.GetPorts(), o.GetNotPorts(), portPermission)
	perms = permField(perms, o.GetMethods(), o.GetNotMethods(), func(m string) *rbacv3.Permission {
		return headerPermission(":method", wildcardMatcher(m, false))
	})
	perms = permField(perms, o.GetPaths(), o.GetNotPaths(), pathPermission)
	return andPerms(perms)
}

func sourcePrincipal(s *security.Source) *rbacv3.Principal {
	var ids []*rbacv3.Principal
	ids = idField(ids, s.GetPrincipals(), s.GetNotPrincipals(), principalID)
	ids = idField(ids, s.GetNamespaces(), s.GetNotNamespaces(), namespaceID)
	ids = idField(ids, s.GetServiceAccounts(), s.GetNotServiceAccounts(), serviceAccountID)
	ids = idField(ids, s.GetTrustDomains(), s.GetNotTrustDomains(), trustDomainID)
	ids = idField(ids, s.GetIpBlocks(), s.GetNotIpBlocks(), func(v string) *rbacv3.Principal {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: cidr(v)}}
	})
	ids = idField(ids, s.GetRemoteIpBlocks(), s.GetNotRemoteIpBlocks(), func(v string) *rbacv3.Principal {
		return &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: cidr(v)}}
	})
	return andIDs(ids)
}

// condition translates a when condition: attributes of the request and the destination
// become a permission, attributes of the caller a principal. Validation refuses the keys
// not handled here (request.auth.*, which needs JWT).
func condition(c *security.Condition) (*rbacv3.Permission, *rbacv3.Principal) {
	key, vs, nvs := c.GetKey(), c.GetValues(), c.GetNotValues()
	var perms []*rbacv3.Permission
	var ids []*rbacv3.Principal
	switch {
	case strings.HasPrefix(key, "request.headers["):
		name := strings.TrimSuffix(strings.TrimPrefix(key, "request.headers["), "]")
		ids = idField(ids, vs, nvs, func(v string) *rbacv3.Principal {
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_Header{Header: rbacHeader(name, wildcardMatcher(v, false))}}
		})
	case key == "source.ip":
		ids = idField(ids, vs, nvs, func(v string) *rbacv3.Principal {
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_DirectRemoteIp{DirectRemoteIp: cidr(v)}}
		})
	case key == "remote.ip":
		ids = idField(ids, vs, nvs, func(v string) *rbacv3.Principal {
			return &rbacv3.Principal{Identifier: &rbacv3.Principal_RemoteIp{RemoteIp: cidr(v)}}
		})
	case key == "source.namespace":
		ids = idField(ids, vs, nvs, namespaceID)
	case key == "source.principal":
		ids = idField(ids, vs, nvs, principalID)
	case key == "destination.ip":
		perms = permField(perms, vs, nvs, func(v string) *rbacv3.Permission {
			return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationIp{DestinationIp: cidr(v)}}
		})
	case key == "destination.port":
		perms = permField(perms, vs, nvs, portPermission)
	case key == "connection.sni":
		perms = permField(perms, vs, nvs, func(v string) *rbacv3.Permission {
			return &rbacv3.Permission{Rule: &rbacv3.Permission_RequestedServerName{RequestedServerName: wildcardMatcher(v, false)}}
		})
	default:
		return nil, nil
	}
	var p *rbacv3.Permission
	var id *rbacv3.Principal
	if len(perms) > 0 {
		p = andPerms(perms)
	}
	if len(ids) > 0 {
		id = andIDs(ids)
	}
	return p, id
}

// wildcardMatcher is Istio's reading of a value with at most one "*": "*" matches any
// non-empty value, "a*" is a prefix, "*a" a suffix, anything else is exact.
func wildcardMatcher(v string, ignoreCase bool) *matcherv3.StringMatcher {
	m := &matcherv3.StringMatcher{IgnoreCase: ignoreCase}
	switch {
	case v == "*":
		m.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: ".+"}}
		m.IgnoreCase = false
	case strings.HasPrefix(v, "*"):
		m.MatchPattern = &matcherv3.StringMatcher_Suffix{Suffix: v[1:]}
	case strings.HasSuffix(v, "*"):
		m.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: v[:len(v)-1]}
	default:
		m.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: v}
	}
	return m
}

func rbacHeader(name string, sm *matcherv3.StringMatcher) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm}}
}

func headerPermission(name string, sm *matcherv3.StringMatcher) *rbacv3.Permission {
	return &rbacv3.Permission{Rule: &rbacv3.Permission_Header{Header: rbacHeader(name, sm)}}
}

// hostPermission matches the authority case-insensitively, with or without a port, as
// Istio's hosts do.
func hostPermission(h string) *rbacv3.Permission {
	authority := func(sm *matcherv3.StringMatcher) *rbacv3.Permission { return headerPermission(":authority", sm) }
	switch {
	case h == "*" || strings.HasSuffix(h, "*"):
		// A prefix covers the port too.
		return authority(wildcardMatcher(h, true))
	case strings.HasPrefix(h, "*"):
		return orPerms([]*rbacv3.Permission{
			authority(wildcardMatcher(h, true)),
			authority(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{
				Regex: `(?i).*` + regexp.QuoteMeta(h[1:]) + `:[0-9]+`}}}),
		})
	}
	return orPerms([]*rbacv3.Permission{
		authority(wildcardMatcher(h, true)),
		authority(&matcherv3.StringMatcher{IgnoreCase: true, MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: h + ":"}}),
	})
}

func portPermission(s string) *rbacv3.Permission {
	n, _ := strconv.ParseUint(s, 10, 32) // validation accepts only 1-65535
	return &rbacv3.Permission{Rule: &rbacv3.Permission_DestinationPort{DestinationPort: uint32(n)}}
}

// pathPermission matches the path without its query: exact, prefix "a*", suffix "*a", any
// "*", or one of Istio's templates, where {*} is one segment and {**} the rest of the path,
// carried in Envoy's URI template syntax ("*" and "**").
func pathPermission(p string) *rbacv3.Permission {
	if strings.Contains(p, "{") {
		tmpl := strings.ReplaceAll(strings.ReplaceAll(p, "{**}", "**"), "{*}", "*")
		return &rbacv3.Permission{Rule: &rbacv3.Permission_UriTemplate{UriTemplate: &corev3.TypedExtensionConfig{
			Name:        uriTemplateExtension,
			TypedConfig: mustAny(&uritemplatev3.UriTemplateMatchConfig{PathTemplate: tmpl}),
		}}}
	}
	return &rbacv3.Permission{Rule: &rbacv3.Permission_UrlPath{UrlPath: &matcherv3.PathMatcher{
		Rule: &matcherv3.PathMatcher_Path{Path: wildcardMatcher(p, false)},
	}}}
}

func authenticated(sm *matcherv3.StringMatcher) *rbacv3.Principal {
	return &rbacv3.Principal{Identifier: &rbacv3.Principal_Authenticated_{Authenticated: &rbacv3.Principal_Authenticated{PrincipalName: sm}}}
}

// principalID matches the caller's certificate identity. Istio's principals leave out the
// spiffe:// scheme that the certificate's URI SAN carries; "*" is any authenticated caller.
func principalID(p string) *rbacv3.Principal {
	switch {
	case p == "*":
		return authenticated(wildcardMatcher("*", false))
	case strings.HasPrefix(p, "*"):
		return authenticated(wildcardMatcher(p, false))
	}
	return authenticated(wildcardMatcher("spiffe://"+p, false))
}

// namespaceID matches callers whose identity is in a namespace, as Istio does: the principal
// regex ".*/ns/<ns>/.*", with "*" standing for part of the name.
func namespaceID(ns string) *rbacv3.Principal {
	re := func(s string) string { return regexp.QuoteMeta(s) }
	var pat string
	switch {
	case ns == "*":
		pat = `[^/]+`
	case strings.HasPrefix(ns, "*"):
		pat = `[^/]*` + re(ns[1:])
	case strings.HasSuffix(ns, "*"):
		pat = re(ns[:len(ns)-1]) + `[^/]*`
	default:
		pat = re(ns)
	}
	return authenticated(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{
		SafeRegex: &matcherv3.RegexMatcher{Regex: `.*/ns/` + pat + `/.*`},
	}})
}

// serviceAccountID matches "<namespace>/<name>" in any trust domain.
func serviceAccountID(sa string) *rbacv3.Principal {
	ns, name, _ := strings.Cut(sa, "/")
	return authenticated(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: "/ns/" + ns + "/sa/" + name}})
}

func trustDomainID(td string) *rbacv3.Principal {
	if td == "*" {
		return authenticated(wildcardMatcher("*", false))
	}
	prefix := "spiffe://" + td + "/"
	if strings.HasSuffix(td, "*") {
		prefix = "spiffe://" + td[:len(td)-1]
	}
	return authenticated(&matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: prefix}})
}

// cidr reads an address or CIDR; validation accepts only those.
func cidr(s string) *corev3.CidrRange {
	if p, err := netip.ParsePrefix(s); err == nil {
		return &corev3.CidrRange{AddressPrefix: p.Addr().String(), PrefixLen: wrapperspb.UInt32(uint32(p.Bits()))}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		// Validation accepts only addresses and prefixes; pass anything else on for the
		// proxy to refuse rather than guess.
		return &corev3.CidrRange{AddressPrefix: s}
	}
	return &corev3.CidrRange{AddressPrefix: a.String(), PrefixLen: wrapperspb.UInt32(uint32(a.BitLen()))}
}
