package config

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	security "istio.io/api/security/v1beta1"
)

// Rules for the security.istio.io kinds.

func (v *view) peerAuthentication(e errorSink, r *Resource, pa *security.PeerAuthentication) {
	hasSelector := pa.Selector != nil && len(pa.Selector.MatchLabels) > 0
	if pa.Selector != nil {
		checkLabels(e, "spec.selector.matchLabels", pa.Selector.MatchLabels)
	}
	if pa.Mtls != nil {
		checkMTLSMode(e, "spec.mtls.mode", pa.Mtls.Mode)
	}
	if len(pa.PortLevelMtls) > 0 && !hasSelector {
		e.add("spec.portLevelMtls", "portLevelMtls needs a selector: port-level modes apply to selected workloads only")
	}
	ports := make([]uint32, 0, len(pa.PortLevelMtls))
	for port := range pa.PortLevelMtls {
		ports = append(ports, port)
	}
	slices.Sort(ports)
	for _, port := range ports {
		p := mapKey("spec.portLevelMtls", strconv.FormatUint(uint64(port), 10))
		checkPort(e, p, port)
		if m := pa.PortLevelMtls[port]; m != nil {
			checkMTLSMode(e, field(p, "mode"), m.Mode)
		}
	}
	if hasSelector {
		return
	}
	// Istio applies only the oldest of several namespace-wide policies; refuse the ambiguity.
	for _, other := range v.all {
		opa, ok := other.Spec.(*security.PeerAuthentication)
		if !ok || other.Kind != KindPeerAuthentication || other.Key() == r.Key() || other.Namespace != r.Namespace {
			continue
		}
		if opa.Selector == nil || len(opa.Selector.MatchLabels) == 0 {
			e.addf("spec", "namespace %s already has a namespace-wide PeerAuthentication (%s): edit that one, or add a selector to this one", r.Namespace, other.Name)
			return
		}
	}
}

func checkMTLSMode(e errorSink, path string, mode security.PeerAuthentication_MutualTLS_Mode) {
	if _, ok := security.PeerAuthentication_MutualTLS_Mode_name[int32(mode)]; !ok {
		e.addf(path, "unknown mode %d: use UNSET, DISABLE, PERMISSIVE or STRICT", mode)
	}
}

const jwtUnsupported = "JWT is not supported yet: remove %s (Sluice has no RequestAuthentication)"

func checkAuthorizationPolicy(e errorSink, ap *security.AuthorizationPolicy) {
	switch ap.Action {
	case security.AuthorizationPolicy_ALLOW, security.AuthorizationPolicy_DENY, security.AuthorizationPolicy_AUDIT:
	case security.AuthorizationPolicy_CUSTOM:
		e.add("spec.action", "action CUSTOM is not supported: Sluice has no external authorizers; use ALLOW, DENY or AUDIT")
	default:
		e.addf("spec.action", "unknown action %d: use ALLOW, DENY or AUDIT", ap.Action)
	}
	if ap.GetProvider() != nil && ap.Action != security.AuthorizationPolicy_CUSTOM {
		e.add("spec.provider", "provider is only used with action CUSTOM: remove it")
	}
	if ap.TargetRef != nil {
		e.add("spec.targetRef", "targetRef is not supported: select workloads with selector.matchLabels")
	}
	if len(ap.TargetRefs) > 0 {
		e.add("spec.targetRefs", "targetRefs is not supported: select workloads with selector.matchLabels")
	}
	if ap.Selector != nil {
		checkLabels(e, "spec.selector.matchLabels", ap.Selector.MatchLabels)
	}
	for i, rule := range ap.Rules {
		if rule == nil {
			continue
		}
		p := index("spec.rules", i)
		for j, from := range rule.From {
			fp := index(field(p, "from"), j)
			if from.Source == nil {
				e.add(field(fp, "source"), "source is required: say which callers this matches, with principals, namespaces or ipBlocks")
				continue
			}
			checkSource(e, field(fp, "source"), from.Source)
		}
		for j, to := range rule.To {
			tp := index(field(p, "to"), j)
			if to.Operation == nil {
				e.add(field(tp, "operation"), "operation is required: say which requests this matches, with methods, paths, ports or hosts")
				continue
			}
			checkOperation(e, field(tp, "operation"), to.Operation)
		}
		for j, c := range rule.When {
			checkCondition(e, index(field(p, "when"), j), c)
		}
	}
}

// checkValues checks a list of match values with check, refusing empty strings, and returns
// how many there were.
func checkValues(e errorSink, path string, values []string, check func(errorSink, string, string)) int {
	for i, s := range values {
		p := index(path, i)
		if s == "" {
			e.add(p, "empty value: remove it")
			continue
		}
		if check != nil {
			check(e, p, s)
		}
	}
	return len(values)
}

func checkSource(e errorSink, path string, s *security.Source) {
	n := 0
	n += checkValues(e, field(path, "principals"), s.Principals, checkPrincipal)
	n += checkValues(e, field(path, "notPrincipals"), s.NotPrincipals, checkPrincipal)
	if len(s.RequestPrincipals) > 0 {
		e.addf(field(path, "requestPrincipals"), jwtUnsupported, "requestPrincipals")
		n++
	}
	if len(s.NotRequestPrincipals) > 0 {
		e.addf(field(path, "notRequestPrincipals"), jwtUnsupported, "notRequestPrincipals")
		n++
	}
	n += checkValues(e, field(path, "namespaces"), s.Namespaces, checkNamespacePattern)
	n += checkValues(e, field(path, "notNamespaces"), s.NotNamespaces, checkNamespacePattern)
	n += checkValues(e, field(path, "serviceAccounts"), s.ServiceAccounts, checkServiceAccount)
	n += checkValues(e, field(path, "notServiceAccounts"), s.NotServiceAccounts, checkServiceAccount)
	n += checkValues(e, field(path, "ipBlocks"), s.IpBlocks, checkAddressOrCIDR)
	n += checkValues(e, field(path, "notIpBlocks"), s.NotIpBlocks, checkAddressOrCIDR)
	n += checkValues(e, field(path, "remoteIpBlocks"), s.RemoteIpBlocks, checkAddressOrCIDR)
	n += checkValues(e, field(path, "notRemoteIpBlocks"), s.NotRemoteIpBlocks, checkAddressOrCIDR)
	n += checkValues(e, field(path, "trustDomains"), s.TrustDomains, nil)
	n += checkValues(e, field(path, "notTrustDomains"), s.NotTrustDomains, nil)
	if len(s.ServiceAccounts)+len(s.NotServiceAccounts) > 0 && len(s.Principals)+len(s.NotPrincipals)+len(s.Namespaces)+len(s.NotNamespaces) > 0 {
		e.add(field(path, "serviceAccounts"), "serviceAccounts cannot be combined with principals or namespaces: use one form")
	}
	if n == 0 {
		e.add(path, "source is empty: set principals, namespaces, ipBlocks or another field (or remove from)")
	}
}

func checkOperation(e errorSink, path string, o *security.Operation) {
	n := 0
	n += checkValues(e, field(path, "hosts"), o.Hosts, checkWildcardPlacement)
	n += checkValues(e, field(path, "notHosts"), o.NotHosts, checkWildcardPlacement)
	n += checkValues(e, field(path, "ports"), o.Ports, checkPortString)
	n += checkValues(e, field(path, "notPorts"), o.NotPorts, checkPortString)
	n += checkValues(e, field(path, "methods"), o.Methods, checkMethod)
	n += checkValues(e, field(path, "notMethods"), o.NotMethods, checkMethod)
	n += checkValues(e, field(path, "paths"), o.Paths, checkPath)
	n += checkValues(e, field(path, "notPaths"), o.NotPaths, checkPath)
	if n == 0 {
		e.add(path, "operation is empty: set methods, paths, ports or hosts (or remove to)")
	}
}

func checkCondition(e errorSink, path string, c *security.Condition) {
	key := c.Key
	var check func(errorSink, string, string)
	switch {
	case key == "":
		// reported as required
	case strings.HasPrefix(key, "request.headers["):
		name, ok := strings.CutSuffix(strings.TrimPrefix(key, "request.headers["), "]")
		if !ok || !isHeaderName(name) {
			e.addf(field(path, "key"), "%q is not a valid header attribute: write request.headers[name], such as request.headers[x-user]", key)
		}
	case key == "source.ip" || key == "remote.ip" || key == "destination.ip":
		check = checkAddressOrCIDR
	case key == "source.namespace":
		check = checkNamespacePattern
	case key == "source.principal":
		check = checkPrincipal
	case key == "destination.port":
		check = checkPortString
	case key == "connection.sni":
	case strings.HasPrefix(key, "request.auth."):
		e.addf(field(path, "key"), jwtUnsupported, "conditions on "+key)
	default:
		e.addf(field(path, "key"), "unknown attribute %q: use request.headers[name], source.ip, remote.ip, source.namespace, source.principal, destination.ip, destination.port or connection.sni", key)
	}
	n := checkValues(e, field(path, "values"), c.Values, check)
	n += checkValues(e, field(path, "notValues"), c.NotValues, check)
	if n == 0 {
		e.add(path, "set values or notValues: the values the attribute must (or must not) have")
	}
}

// Principals are SPIFFE identities without the scheme: <trust domain>/ns/<namespace>/sa/<service
// account>. A "*" may stand for any prefix or any suffix. For a pattern with a wildcard, its
// literal part must be the end (or the start) of some valid principal.
var (
	principalFull   = regexp.MustCompile(`^[^/]+/ns/[^/]+/sa/[^/]+$`)
	principalPrefix = regexp.MustCompile(`^([^/]*|[^/]+/(n|ns)?|[^/]+/ns/[^/]*|[^/]+/ns/[^/]+/(s|sa)?|[^/]+/ns/[^/]+/sa/[^/]*)$`)
	principalSuffix = regexp.MustCompile(`^([^/]*|(sa|a)?/[^/]+|[^/]*/sa/[^/]+|(ns|s)?/[^/]+/sa/[^/]+|[^/]*/ns/[^/]+/sa/[^/]+)$`)
)

func checkPrincipal(e errorSink, path, p string) {
	ok := false
	switch {
	case p == "*":
		ok = true
	case strings.HasPrefix(p, "spiffe://"):
		e.addf(path, "principal %q starts with spiffe://: drop the scheme, as in cluster.local/ns/default/sa/bookinfo-productpage", p)
		return
	case !wildcardPlacementOK(p):
		e.addf(path, "principal %q has a wildcard in the middle: \"*\" may only start or end a value", p)
		return
	case strings.HasPrefix(p, "*"):
		ok = principalSuffix.MatchString(p[1:])
	case strings.HasSuffix(p, "*"):
		ok = principalPrefix.MatchString(p[:len(p)-1])
	default:
		ok = principalFull.MatchString(p)
	}
	if !ok {
		e.addf(path, "principal %q is not valid: write <trust domain>/ns/<namespace>/sa/<service account>, such as cluster.local/ns/default/sa/bookinfo-productpage (\"*\" may stand for a prefix or a suffix)", p)
	}
}

// wildcardPlacementOK reports whether s has at most one "*", at its start or its end.
func wildcardPlacementOK(s string) bool {
	switch strings.Count(s, "*") {
	case 0:
		return true
	case 1:
		return strings.HasPrefix(s, "*") || strings.HasSuffix(s, "*")
	}
	return s == "*"
}

func checkWildcardPlacement(e errorSink, path, s string) {
	if !wildcardPlacementOK(s) {
		e.addf(path, "%q has a wildcard in the middle: \"*\" may only start or end a value", s)
	}
}

func checkNamespacePattern(e errorSink, path, ns string) {
	if !wildcardPlacementOK(ns) {
		checkWildcardPlacement(e, path, ns)
		return
	}
	literal := strings.Trim(ns, "*")
	for i := 0; i < len(literal); i++ {
		c := literal[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			e.addf(path, "%q is not a namespace name: use lower-case letters, digits and '-' (\"*\" may stand for a prefix or a suffix)", ns)
			return
		}
	}
}

func checkServiceAccount(e errorSink, path, sa string) {
	ns, name, ok := strings.Cut(sa, "/")
	if !ok || !isDNS1123Label(ns) || !isDNS1123Subdomain(name) {
		e.addf(path, "%q is not a service account: write <namespace>/<name>, such as default/bookinfo-productpage", sa)
	}
}

func checkPortString(e errorSink, path, s string) {
	if n, err := strconv.Atoi(s); err != nil || n < 1 || n > 65535 {
		e.addf(path, "%q is not a port: use a number from 1 to 65535", s)
	}
}

func checkMethod(e errorSink, path, m string) {
	if m != "*" && !isHeaderName(m) { // a method is an HTTP token, like a header name
		e.addf(path, "%q is not an HTTP method: use one such as GET or POST", m)
	}
}

func checkPath(e errorSink, path, p string) {
	if strings.Contains(p, "{") {
		// Istio's path templates: {*} is one segment, {**} the rest of the path.
		for _, seg := range strings.Split(p, "/") {
			if strings.ContainsAny(seg, "{}") && seg != "{*}" && seg != "{**}" {
				e.addf(path, "path template %q is not valid: a segment may be {*} (one segment) or {**} (the rest of the path)", p)
				return
			}
		}
		if i := strings.Index(p, "{**}"); i >= 0 && i != len(p)-len("{**}") {
			e.addf(path, "path template %q is not valid: {**} must end the path", p)
		}
		return
	}
	if !wildcardPlacementOK(p) {
		checkWildcardPlacement(e, path, p)
		return
	}
	if !strings.HasPrefix(p, "/") && !strings.HasPrefix(p, "*") {
		e.addf(path, "path %q must start with / (or with * to match a suffix)", p)
	}
}
