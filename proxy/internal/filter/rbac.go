package filter

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	rbacv3 "github.com/envoyproxy/go-control-plane/envoy/config/rbac/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	uritemplatev3 "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/sluicemesh/sluice/proxy/internal/match"
	"github.com/sluicemesh/sluice/proxy/internal/support"
)

// RBACName is the name of Envoy's RBAC filter.
const RBACName = "envoy.filters.http.rbac"

// RBACDeniedBody is the body of Envoy's answer to a request the RBAC filter denies.
const RBACDeniedBody = "RBAC: access denied"

// uriTemplateTypeURL is the path template matcher RBAC permissions may carry.
const uriTemplateTypeURL = "type.googleapis.com/envoy.extensions.path.match.uri_template.v3.UriTemplateMatchConfig"

// RBACSupported lists the fields of the RBAC filter's config that sluice-proxy implements.
// Messages not listed (string, path and header matchers, CIDR ranges) are checked by their
// compilers.
var RBACSupported = support.Fields{
	"envoy.extensions.filters.http.rbac.v3.RBAC": {"rules"},
	"envoy.config.rbac.v3.RBAC":                  {"action", "policies"},
	"envoy.config.rbac.v3.Policy":                {"permissions", "principals"},
	"envoy.config.rbac.v3.Permission": {"and_rules", "or_rules", "any", "header", "url_path",
		"destination_ip", "destination_port", "not_rule", "requested_server_name", "uri_template"},
	"envoy.config.rbac.v3.Permission.Set": {"rules"},
	"envoy.config.rbac.v3.Principal": {"and_ids", "or_ids", "any", "authenticated", "source_ip",
		"direct_remote_ip", "remote_ip", "header", "url_path", "not_id"},
	"envoy.config.rbac.v3.Principal.Set":           {"ids"},
	"envoy.config.rbac.v3.Principal.Authenticated": {"principal_name"},
	"envoy.type.matcher.v3.PathMatcher":            {"path"},
	"envoy.config.core.v3.TypedExtensionConfig":    {"name", "typed_config"},
}

// RBACAction is what an RBAC filter does with a request its policies match.
type RBACAction uint8

// The RBAC actions, as Envoy's.
const (
	// RBACAllow lets through only the requests a policy matches.
	RBACAllow RBACAction = iota
	// RBACDeny refuses the requests a policy matches.
	RBACDeny
	// RBACLog lets every request through and records those a policy matches.
	RBACLog
)

// RBAC is a compiled envoy.extensions.filters.http.rbac.v3.RBAC. It is immutable; matching
// does not allocate.
//
// As in Envoy, a policy matches a request when one of its permissions and one of its
// principals match. Policies are tried in the order of their names, so the one a decision
// cites is stable. An RBAC filter without rules does nothing.
type RBAC struct {
	action   RBACAction
	enabled  bool
	policies []rbacPolicy
	// noMatch says why an ALLOW filter refused a request no policy matched.
	noMatch string
}

type rbacPolicy struct {
	name string
	// reason cites the policy in words, for x-sluice-reason and logs.
	reason string
	// denied and logged are what a DENY or LOG filter says of a request it matched,
	// made once so that deciding does not allocate.
	denied, logged string
	perms          []rule
	ids            []rule
}

// ruleKind is one kind of permission or principal.
type ruleKind uint8

const (
	ruleAny ruleKind = iota
	ruleAnd
	ruleOr
	ruleNot
	ruleHeader
	rulePath
	ruleTemplate
	ruleDestIP
	ruleDestPort
	ruleSNI
	ruleAuthenticated
	ruleDirectRemoteIP
	ruleRemoteIP
)

// rule is a compiled permission or principal; the two share their shape.
type rule struct {
	kind   ruleKind
	rules  []rule // and, or; not has one
	header match.Header
	str    match.String // path, SNI, principal name
	anyStr bool         // authenticated without a principal_name matcher
	tmpl   PathTemplate
	prefix netip.Prefix
	port   uint32
}

// RBACRequest is what RBAC matching reads of a request. The zero value is a request from
// nowhere, with nothing.
type RBACRequest struct {
	// Req is the request's authority, method, path (query included) and headers.
	Req *match.Request
	// DirectRemote is the address of the connection's peer; Remote is the client's address
	// as the proxy trusts it (see RemoteAddr).
	DirectRemote, Remote netip.Addr
	// Local is the address and port the connection was accepted on.
	Local netip.AddrPort
	// Principal is the URI SAN of the verified peer certificate (see PeerPrincipal), and
	// Authenticated says whether there was one: without mutual TLS no principal matches.
	Principal     string
	Authenticated bool
	// SNI is the server name the client asked for in its TLS handshake.
	SNI string
}

// CompileRBAC compiles c. The error names the offending field relative to c.
func CompileRBAC(c *rbachttpv3.RBAC) (*RBAC, error) {
	if err := support.Check(c, RBACSupported); err != nil {
		return nil, err
	}
	r := &RBAC{}
	rules := c.GetRules()
	if rules == nil {
		return r, nil
	}
	r.enabled = true
	switch rules.GetAction() {
	case rbacv3.RBAC_ALLOW:
		r.action = RBACAllow
	case rbacv3.RBAC_DENY:
		r.action = RBACDeny
	case rbacv3.RBAC_LOG:
		r.action = RBACLog
	default:
		return nil, fmt.Errorf("rules.action: %v is not supported by sluice-proxy (use ALLOW, DENY or LOG)", rules.GetAction())
	}
	names := make([]string, 0, len(rules.GetPolicies()))
	for name := range rules.GetPolicies() {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		p := rules.GetPolicies()[name]
		path := fmt.Sprintf("rules.policies[%q]", name)
		cp := rbacPolicy{name: name, reason: describePolicy(name)}
		cp.denied, cp.logged = "denied by "+cp.reason, "logged by "+cp.reason
		if len(p.GetPermissions()) == 0 || len(p.GetPrincipals()) == 0 {
			return nil, fmt.Errorf("%s: a policy needs at least one permission and one principal", path)
		}
		for i, perm := range p.GetPermissions() {
			cr, err := compilePermission(perm)
			if err != nil {
				return nil, fmt.Errorf("%s.permissions[%d]%w", path, i, err)
			}
			cp.perms = append(cp.perms, cr)
		}
		for i, id := range p.GetPrincipals() {
			cr, err := compilePrincipal(id)
			if err != nil {
				return nil, fmt.Errorf("%s.principals[%d]%w", path, i, err)
			}
			cp.ids = append(cp.ids, cr)
		}
		r.policies = append(r.policies, cp)
	}
	r.noMatch = "denied: no ALLOW policy matches the request (rbac_access_denied_matched_policy[none])"
	var sources []string
	for _, p := range r.policies {
		if src, _, ok := istioPolicyName(p.name); ok && !slices.Contains(sources, src) {
			sources = append(sources, src)
		}
	}
	switch len(sources) {
	case 0:
	case 1:
		r.noMatch = "denied by AuthorizationPolicy " + sources[0] + ": no ALLOW rule matches the request"
	default:
		r.noMatch = "denied by AuthorizationPolicies " + strings.Join(sources, ", ") + ": no ALLOW rule matches the request"
	}
	return r, nil
}

// istioPolicyName reads Istio's RBAC policy name "ns[<ns>]-policy[<name>]-rule[<i>]" as the
// AuthorizationPolicy "<ns>/<name>" and its rule.
func istioPolicyName(s string) (policy, rule string, ok bool) {
	ns, rest, ok1 := strings.Cut(strings.TrimPrefix(s, "ns["), "]-policy[")
	name, rest, ok2 := strings.Cut(rest, "]-rule[")
	rule, ok3 := strings.CutSuffix(rest, "]")
	if !strings.HasPrefix(s, "ns[") || !ok1 || !ok2 || !ok3 {
		return "", "", false
	}
	return ns + "/" + name, rule, true
}

// describePolicy cites an RBAC policy: Istio's names as the AuthorizationPolicy and rule
// they come from, other names as they are.
func describePolicy(name string) string {
	if src, rule, ok := istioPolicyName(name); ok {
		return "AuthorizationPolicy " + src + " rule " + rule + " (" + name + ")"
	}
	return "RBAC policy " + name
}

func compilePermission(p *rbacv3.Permission) (rule, error) {
	set := func(field string, ps []*rbacv3.Permission, kind ruleKind) (rule, error) {
		out := rule{kind: kind}
		for i, c := range ps {
			cr, err := compilePermission(c)
			if err != nil {
				return rule{}, fmt.Errorf(".%s.rules[%d]%w", field, i, err)
			}
			out.rules = append(out.rules, cr)
		}
		return out, nil
	}
	switch r := p.GetRule().(type) {
	case *rbacv3.Permission_Any:
		if !r.Any {
			return rule{}, errors.New(".any: must be true")
		}
		return rule{kind: ruleAny}, nil
	case *rbacv3.Permission_AndRules:
		return set("and_rules", r.AndRules.GetRules(), ruleAnd)
	case *rbacv3.Permission_OrRules:
		return set("or_rules", r.OrRules.GetRules(), ruleOr)
	case *rbacv3.Permission_NotRule:
		c, err := compilePermission(r.NotRule)
		if err != nil {
			return rule{}, fmt.Errorf(".not_rule%w", err)
		}
		return rule{kind: ruleNot, rules: []rule{c}}, nil
	case *rbacv3.Permission_Header:
		h, err := match.CompileHeader(r.Header)
		if err != nil {
			return rule{}, fmt.Errorf(".header.%w", err)
		}
		return rule{kind: ruleHeader, header: h}, nil
	case *rbacv3.Permission_UrlPath:
		s, err := compileOptString(r.UrlPath.GetPath())
		if err != nil {
			return rule{}, fmt.Errorf(".url_path.path%w", err)
		}
		return rule{kind: rulePath, str: s}, nil
	case *rbacv3.Permission_UriTemplate:
		t, err := compileURITemplate(r.UriTemplate)
		if err != nil {
			return rule{}, fmt.Errorf(".uri_template%w", err)
		}
		return rule{kind: ruleTemplate, tmpl: t}, nil
	case *rbacv3.Permission_DestinationIp:
		pfx, err := compileCIDR(r.DestinationIp)
		if err != nil {
			return rule{}, fmt.Errorf(".destination_ip%w", err)
		}
		return rule{kind: ruleDestIP, prefix: pfx}, nil
	case *rbacv3.Permission_DestinationPort:
		if r.DestinationPort == 0 || r.DestinationPort > 65535 {
			return rule{}, fmt.Errorf(".destination_port: %d is not a port (1-65535)", r.DestinationPort)
		}
		return rule{kind: ruleDestPort, port: r.DestinationPort}, nil
	case *rbacv3.Permission_RequestedServerName:
		s, err := compileOptString(r.RequestedServerName)
		if err != nil {
			return rule{}, fmt.Errorf(".requested_server_name%w", err)
		}
		return rule{kind: ruleSNI, str: s}, nil
	}
	return rule{}, errors.New(": one rule is required")
}

func compilePrincipal(p *rbacv3.Principal) (rule, error) {
	set := func(field string, ids []*rbacv3.Principal, kind ruleKind) (rule, error) {
		out := rule{kind: kind}
		for i, c := range ids {
			cr, err := compilePrincipal(c)
			if err != nil {
				return rule{}, fmt.Errorf(".%s.ids[%d]%w", field, i, err)
			}
			out.rules = append(out.rules, cr)
		}
		return out, nil
	}
	ip := func(field string, c *corev3.CidrRange, kind ruleKind) (rule, error) {
		pfx, err := compileCIDR(c)
		if err != nil {
			return rule{}, fmt.Errorf(".%s%w", field, err)
		}
		return rule{kind: kind, prefix: pfx}, nil
	}
	switch r := p.GetIdentifier().(type) {
	case *rbacv3.Principal_Any:
		if !r.Any {
			return rule{}, errors.New(".any: must be true")
		}
		return rule{kind: ruleAny}, nil
	case *rbacv3.Principal_AndIds:
		return set("and_ids", r.AndIds.GetIds(), ruleAnd)
	case *rbacv3.Principal_OrIds:
		return set("or_ids", r.OrIds.GetIds(), ruleOr)
	case *rbacv3.Principal_NotId:
		c, err := compilePrincipal(r.NotId)
		if err != nil {
			return rule{}, fmt.Errorf(".not_id%w", err)
		}
		return rule{kind: ruleNot, rules: []rule{c}}, nil
	case *rbacv3.Principal_Authenticated_:
		if r.Authenticated.GetPrincipalName() == nil {
			return rule{kind: ruleAuthenticated, anyStr: true}, nil
		}
		s, err := match.CompileString(r.Authenticated.GetPrincipalName())
		if err != nil {
			return rule{}, fmt.Errorf(".authenticated.principal_name.%w", err)
		}
		return rule{kind: ruleAuthenticated, str: s}, nil
	case *rbacv3.Principal_SourceIp:
		return ip("source_ip", r.SourceIp, ruleDirectRemoteIP)
	case *rbacv3.Principal_DirectRemoteIp:
		return ip("direct_remote_ip", r.DirectRemoteIp, ruleDirectRemoteIP)
	case *rbacv3.Principal_RemoteIp:
		return ip("remote_ip", r.RemoteIp, ruleRemoteIP)
	case *rbacv3.Principal_Header:
		h, err := match.CompileHeader(r.Header)
		if err != nil {
			return rule{}, fmt.Errorf(".header.%w", err)
		}
		return rule{kind: ruleHeader, header: h}, nil
	case *rbacv3.Principal_UrlPath:
		s, err := compileOptString(r.UrlPath.GetPath())
		if err != nil {
			return rule{}, fmt.Errorf(".url_path.path%w", err)
		}
		return rule{kind: rulePath, str: s}, nil
	}
	return rule{}, errors.New(": one identifier is required")
}

// compileOptString compiles a string matcher that must be set.
func compileOptString(sm *matcherv3.StringMatcher) (match.String, error) {
	if sm == nil {
		return match.String{}, errors.New(": required")
	}
	m, err := match.CompileString(sm)
	if err != nil {
		return match.String{}, fmt.Errorf(".%w", err)
	}
	return m, nil
}

func compileCIDR(c *corev3.CidrRange) (netip.Prefix, error) {
	a, err := netip.ParseAddr(c.GetAddressPrefix())
	if err != nil {
		return netip.Prefix{}, fmt.Errorf(".address_prefix: %q is not an IP address", c.GetAddressPrefix())
	}
	bits := a.BitLen()
	if c.GetPrefixLen() != nil {
		bits = int(c.GetPrefixLen().GetValue())
	}
	p, err := a.Unmap().Prefix(bits)
	if err != nil || bits > a.Unmap().BitLen() {
		return netip.Prefix{}, fmt.Errorf(".prefix_len: %d is too long for %s", bits, a)
	}
	return p, nil
}

func compileURITemplate(c *corev3.TypedExtensionConfig) (PathTemplate, error) {
	if c.GetTypedConfig().GetTypeUrl() != uriTemplateTypeURL {
		return PathTemplate{}, fmt.Errorf(".typed_config: %q is not supported by sluice-proxy (use %s)", c.GetTypedConfig().GetTypeUrl(), uriTemplateTypeURL)
	}
	var cfg uritemplatev3.UriTemplateMatchConfig
	if err := c.GetTypedConfig().UnmarshalTo(&cfg); err != nil {
		return PathTemplate{}, fmt.Errorf(".typed_config: %w", err)
	}
	t, err := CompilePathTemplate(cfg.GetPathTemplate())
	if err != nil {
		return PathTemplate{}, fmt.Errorf(".typed_config.path_template: %w", err)
	}
	return t, nil
}

// Match returns the name of the first policy (by name) that matches q, or false.
func (r *RBAC) Match(q *RBACRequest) (string, bool) {
	if p := r.match(q); p != nil {
		return p.name, true
	}
	return "", false
}

// Decide applies the filter to q: whether the request may go on and, when a policy matched
// or the request was refused, why in words ("" otherwise), such as "denied by
// AuthorizationPolicy default/deny-all: no ALLOW rule matches the request". A LOG filter
// always allows; its reason names the policy to record. An allowed request gets no reason.
func (r *RBAC) Decide(q *RBACRequest) (allowed bool, reason string) {
	if !r.enabled {
		return true, ""
	}
	p := r.match(q)
	switch {
	case r.action == RBACAllow && p == nil:
		return false, r.noMatch
	case p == nil:
		return true, ""
	case r.action == RBACDeny:
		return false, p.denied
	case r.action == RBACLog:
		return true, p.logged
	}
	return true, ""
}

func (r *RBAC) match(q *RBACRequest) *rbacPolicy {
	for i := range r.policies {
		p := &r.policies[i]
		if anyRule(p.perms, q) && anyRule(p.ids, q) {
			return p
		}
	}
	return nil
}

// Action returns what the filter does with the requests its policies match.
func (r *RBAC) Action() RBACAction { return r.action }

func anyRule(rs []rule, q *RBACRequest) bool {
	for i := range rs {
		if rs[i].matches(q) {
			return true
		}
	}
	return false
}

func (r *rule) matches(q *RBACRequest) bool {
	switch r.kind {
	case ruleAny:
		return true
	case ruleAnd:
		for i := range r.rules {
			if !r.rules[i].matches(q) {
				return false
			}
		}
		return true
	case ruleOr:
		return anyRule(r.rules, q)
	case ruleNot:
		return !r.rules[0].matches(q)
	case ruleHeader:
		return q.Req != nil && r.header.Matches(q.Req)
	case rulePath:
		return q.Req != nil && r.str.Matches(pathOnly(q.Req.Path))
	case ruleTemplate:
		return q.Req != nil && r.tmpl.Matches(pathOnly(q.Req.Path))
	case ruleDestIP:
		return q.Local.IsValid() && r.prefix.Contains(q.Local.Addr().Unmap())
	case ruleDestPort:
		return q.Local.IsValid() && uint32(q.Local.Port()) == r.port
	case ruleSNI:
		return r.str.Matches(q.SNI)
	case ruleAuthenticated:
		return q.Authenticated && (r.anyStr || r.str.Matches(q.Principal))
	case ruleDirectRemoteIP:
		return q.DirectRemote.IsValid() && r.prefix.Contains(q.DirectRemote.Unmap())
	case ruleRemoteIP:
		return q.Remote.IsValid() && r.prefix.Contains(q.Remote.Unmap())
	}
	return false
}

// pathOnly is a request target without its query or fragment, as Envoy's url_path sees it.
func pathOnly(p string) string {
	if i := strings.IndexAny(p, "?#"); i >= 0 {
		return p[:i]
	}
	return p
}

// PeerPrincipal returns the identity of a mutual TLS connection's verified client: the URI SAN
// of its certificate, such as "spiffe://cluster.local/ns/default/sa/bookinfo-productpage",
// which Envoy's authenticated principal_name matches. It returns false without TLS or a
// client certificate; a certificate without a URI SAN yields its subject, as in Envoy.
func PeerPrincipal(cs *tls.ConnectionState) (string, bool) {
	if cs == nil || len(cs.PeerCertificates) == 0 {
		return "", false
	}
	c := cs.PeerCertificates[0]
	if len(c.URIs) > 0 {
		return c.URIs[0].String(), true
	}
	return c.Subject.String(), true
}

// RemoteAddr returns the client's address as Envoy's remote_ip reads it with no trusted
// hops: the last address of X-Forwarded-For when there is one, else the connection's peer.
func RemoteAddr(h http.Header, peer netip.Addr) netip.Addr {
	xff := h["X-Forwarded-For"]
	if len(xff) == 0 {
		return peer
	}
	last := xff[len(xff)-1]
	if i := strings.LastIndexByte(last, ','); i >= 0 {
		last = last[i+1:]
	}
	if a, err := netip.ParseAddr(strings.TrimSpace(last)); err == nil {
		return a
	}
	return peer
}

// PathTemplate is a compiled URI template (Envoy's envoy.path.match.uri_template syntax, as
// Istio writes its {*} and {**} path templates): segments separated by "/", each a literal,
// "*" (exactly one non-empty segment) or, last, "**" (the rest of the path, any number of
// segments, possibly none). Envoy's named variables "{name}", "{name=*}" and "{name=**}" are
// read as "*", "*" and "**". The zero value matches nothing.
type PathTemplate struct {
	segs  []string
	valid bool
}

const (
	segOne  = "\x00*"
	segRest = "\x00**"
)

// CompilePathTemplate compiles a template such as "/api/*/ratings/**".
func CompilePathTemplate(t string) (PathTemplate, error) {
	if !strings.HasPrefix(t, "/") {
		return PathTemplate{}, fmt.Errorf("template %q must start with /", t)
	}
	parts := strings.Split(t[1:], "/")
	out := PathTemplate{segs: make([]string, 0, len(parts)), valid: true}
	for i, p := range parts {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			name, op, hasOp := strings.Cut(p[1:len(p)-1], "=")
			switch {
			case name == "":
				return PathTemplate{}, fmt.Errorf("template %q: segment %q names no variable", t, p)
			case !hasOp:
				p = "*"
			default:
				p = op
			}
		}
		switch {
		case p == "*":
			out.segs = append(out.segs, segOne)
		case p == "**":
			if i != len(parts)-1 {
				return PathTemplate{}, fmt.Errorf("template %q: ** must be the last segment", t)
			}
			out.segs = append(out.segs, segRest)
		case strings.ContainsAny(p, "*{}"):
			return PathTemplate{}, fmt.Errorf("template %q: segment %q may be a literal, *, ** or a {variable}, not a mix", t, p)
		default:
			out.segs = append(out.segs, p)
		}
	}
	return out, nil
}

// Matches reports whether path (without its query) fits the template. It does not allocate.
func (t *PathTemplate) Matches(path string) bool {
	if !t.valid || !strings.HasPrefix(path, "/") {
		return false
	}
	p := path[1:]
	for i, ts := range t.segs {
		if ts == segRest {
			return true
		}
		seg, rest, more := strings.Cut(p, "/")
		switch ts {
		case segOne:
			if seg == "" {
				return false
			}
		default:
			if seg != ts {
				return false
			}
		}
		last := i == len(t.segs)-1
		if last {
			return !more
		}
		if !more {
			// The path ends before the template: even a trailing ** needs its "/".
			return false
		}
		p = rest
	}
	return false
}
