package route

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"regexp"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluicemesh/sluice/proxy/internal/support"
)

// DefaultTimeout is Envoy's route timeout when a route does not set one.
const DefaultTimeout = 15 * time.Second

// Supported lists the route fields sluice-proxy implements. A RouteConfiguration that sets
// any other field is rejected by Compile, naming the field. Decorator is accepted and unused:
// it only names spans, and the proxy does not trace yet. validate_clusters may be false only.
var Supported = support.Fields{
	"envoy.config.route.v3.RouteConfiguration": {"name", "virtual_hosts",
		"ignore_port_in_host_matching", "max_direct_response_body_size_bytes"},
	"envoy.config.route.v3.VirtualHost": {"name", "domains", "routes", "include_request_attempt_count",
		"metadata"},
	"envoy.config.route.v3.Route": {"name", "match", "route", "redirect", "direct_response",
		"metadata", "decorator"},
	"envoy.config.route.v3.RouteMatch": {"prefix", "path", "safe_regex", "path_separated_prefix",
		"case_sensitive", "headers", "query_parameters", "grpc"},
	"envoy.config.route.v3.HeaderMatcher": {"name", "exact_match", "safe_regex_match", "range_match",
		"present_match", "prefix_match", "suffix_match", "contains_match", "string_match",
		"invert_match", "treat_missing_header_as_empty"},
	"envoy.config.route.v3.QueryParameterMatcher": {"name", "string_match", "present_match"},
	"envoy.type.matcher.v3.StringMatcher":         {"exact", "prefix", "suffix", "safe_regex", "contains", "ignore_case"},
	"envoy.type.matcher.v3.RegexMatcher":          {"regex", "google_re2"},
	"envoy.config.route.v3.RouteAction": {"cluster", "cluster_header", "weighted_clusters",
		"cluster_not_found_response_code", "prefix_rewrite", "host_rewrite_literal", "timeout",
		"max_stream_duration", "max_grpc_timeout"},
	"envoy.config.route.v3.RouteAction.MaxStreamDuration": {"grpc_timeout_header_max"},
	"envoy.config.route.v3.WeightedCluster":               {"clusters", "total_weight"},
	"envoy.config.route.v3.WeightedCluster.ClusterWeight": {"name", "weight", "host_rewrite_literal", "metadata_match"},
	"envoy.config.route.v3.DirectResponseAction":          {"status", "body"},
	"envoy.config.core.v3.DataSource":                     {"inline_bytes", "inline_string"},
	"envoy.config.route.v3.RedirectAction": {"https_redirect", "scheme_redirect", "host_redirect",
		"port_redirect", "path_redirect", "prefix_rewrite", "response_code", "strip_query"},
	// An empty metadata_match (Istio writes none) selects every endpoint.
	"envoy.config.core.v3.Metadata": {},
}

// Compile validates rc and builds its Table. The error names the offending field, so the proxy
// can NACK with it.
func Compile(rc *routev3.RouteConfiguration) (*Table, error) {
	if err := support.Check(rc, Supported); err != nil {
		return nil, err
	}
	t := &Table{
		Name:       rc.GetName(),
		exact:      map[string]*VirtualHost{},
		ignorePort: rc.GetIgnorePortInHostMatching(),
	}
	seenDomain := map[string]bool{}
	seenCluster := map[string]bool{}
	for i, pvh := range rc.GetVirtualHosts() {
		vh, err := compileVirtualHost(pvh, seenCluster, &t.clusters)
		if err != nil {
			return nil, fmt.Errorf("virtual_hosts[%d] (%q).%w", i, pvh.GetName(), err)
		}
		if len(pvh.GetDomains()) == 0 {
			return nil, fmt.Errorf("virtual_hosts[%d] (%q).domains: at least one domain is required", i, pvh.GetName())
		}
		for j, d := range pvh.GetDomains() {
			d = strings.ToLower(d)
			if seenDomain[d] {
				return nil, fmt.Errorf("virtual_hosts[%d] (%q).domains[%d]: domain %q is already served by another virtual host", i, pvh.GetName(), j, d)
			}
			seenDomain[d] = true
			switch {
			case d == "":
				return nil, fmt.Errorf("virtual_hosts[%d] (%q).domains[%d]: empty domain", i, pvh.GetName(), j)
			case d == "*":
				t.any = vh
			case strings.HasPrefix(d, "*"):
				t.suffixes = append(t.suffixes, wildcard{part: d[1:], vh: vh})
			case strings.HasSuffix(d, "*"):
				t.prefixes = append(t.prefixes, wildcard{part: d[:len(d)-1], vh: vh})
			default:
				t.exact[d] = vh
			}
		}
	}
	longestFirst := func(a, b wildcard) int { return len(b.part) - len(a.part) }
	slices.SortStableFunc(t.suffixes, longestFirst)
	slices.SortStableFunc(t.prefixes, longestFirst)
	return t, nil
}

func compileVirtualHost(pvh *routev3.VirtualHost, seenCluster map[string]bool, clusters *[]string) (*VirtualHost, error) {
	vh := &VirtualHost{Name: pvh.GetName(), IncludeAttemptCount: pvh.GetIncludeRequestAttemptCount()}
	for i, pr := range pvh.GetRoutes() {
		r, err := compileRoute(pr)
		if err != nil {
			return nil, fmt.Errorf("routes[%d]%w", i, err)
		}
		for _, c := range r.Action.clusterNames() {
			if !seenCluster[c] {
				seenCluster[c] = true
				*clusters = append(*clusters, c)
			}
		}
		vh.Routes = append(vh.Routes, r)
	}
	return vh, nil
}

// compileRoute's errors start with "." or "[" so the caller can prefix the route's index.
func compileRoute(pr *routev3.Route) (*Route, error) {
	r := &Route{Name: pr.GetName()}
	if err := compileMatch(pr.GetMatch(), &r.match); err != nil {
		return nil, fmt.Errorf(".match.%w", err)
	}
	switch a := pr.GetAction().(type) {
	case *routev3.Route_Route:
		if err := compileForward(a.Route, r); err != nil {
			return nil, fmt.Errorf(".route.%w", err)
		}
	case *routev3.Route_DirectResponse:
		r.Action.Kind = DirectResponse
		r.Action.Status = int(a.DirectResponse.GetStatus())
		if r.Action.Status < 200 || r.Action.Status > 599 {
			return nil, fmt.Errorf(".direct_response.status: %d is not an HTTP status (200-599)", r.Action.Status)
		}
		if b := a.DirectResponse.GetBody(); b != nil {
			switch s := b.GetSpecifier().(type) {
			case *corev3.DataSource_InlineBytes:
				r.Action.Body = s.InlineBytes
			case *corev3.DataSource_InlineString:
				r.Action.Body = []byte(s.InlineString)
			}
		}
	case *routev3.Route_Redirect:
		spec, err := compileRedirect(a.Redirect)
		if err != nil {
			return nil, fmt.Errorf(".redirect.%w", err)
		}
		r.Action.Kind = Redirect
		r.Action.RedirectSpec = spec
	default:
		return nil, errors.New(": a route needs one of route, redirect or direct_response")
	}
	return r, nil
}

func compileMatch(pm *routev3.RouteMatch, m *routeMatch) error {
	if pm == nil {
		return errors.New("path_specifier: a route needs a match")
	}
	m.caseInsensitive = pm.GetCaseSensitive() != nil && !pm.GetCaseSensitive().GetValue()
	switch ps := pm.GetPathSpecifier().(type) {
	case *routev3.RouteMatch_Prefix:
		m.kind, m.value = matchPrefix, ps.Prefix
	case *routev3.RouteMatch_Path:
		m.kind, m.value = matchPath, ps.Path
	case *routev3.RouteMatch_PathSeparatedPrefix:
		if strings.HasSuffix(ps.PathSeparatedPrefix, "/") || strings.ContainsAny(ps.PathSeparatedPrefix, "?#") {
			return fmt.Errorf("path_separated_prefix: %q must not end in / or hold ? or #", ps.PathSeparatedPrefix)
		}
		m.kind, m.value = matchSeparatedPrefix, ps.PathSeparatedPrefix
	case *routev3.RouteMatch_SafeRegex:
		re, err := compileRegex(ps.SafeRegex)
		if err != nil {
			return fmt.Errorf("safe_regex.regex: %w", err)
		}
		m.kind, m.re = matchRegex, re
	default:
		return errors.New("path_specifier: one of prefix, path, path_separated_prefix or safe_regex is required")
	}
	m.grpc = pm.GetGrpc() != nil
	for i, ph := range pm.GetHeaders() {
		h, err := compileHeader(ph)
		if err != nil {
			return fmt.Errorf("headers[%d] (%q).%w", i, ph.GetName(), err)
		}
		m.headers = append(m.headers, h)
	}
	for i, pq := range pm.GetQueryParameters() {
		q := queryMatcher{name: pq.GetName()}
		if q.name == "" {
			return fmt.Errorf("query_parameters[%d].name: required", i)
		}
		switch s := pq.GetQueryParameterMatchSpecifier().(type) {
		case *routev3.QueryParameterMatcher_PresentMatch:
			if !s.PresentMatch {
				return fmt.Errorf("query_parameters[%d].present_match: false is not allowed (Envoy rejects it too)", i)
			}
			q.present = true
		case *routev3.QueryParameterMatcher_StringMatch:
			sm, err := compileString(s.StringMatch)
			if err != nil {
				return fmt.Errorf("query_parameters[%d].string_match.%w", i, err)
			}
			q.str = sm
		default:
			q.present = true // Envoy: no specifier means presence
		}
		m.query = append(m.query, q)
	}
	return nil
}

func compileHeader(ph *routev3.HeaderMatcher) (headerMatcher, error) {
	h := headerMatcher{invert: ph.GetInvertMatch(), treatMissingAsEmpty: ph.GetTreatMissingHeaderAsEmpty()}
	name := strings.ToLower(ph.GetName())
	switch name {
	case "":
		return h, errors.New("name: required")
	case ":authority", "host":
		h.pseudo = pseudoAuthority
	case ":method":
		h.pseudo = pseudoMethod
	case ":path":
		h.pseudo = pseudoPath
	case ":scheme":
		h.pseudo = pseudoScheme
	default:
		if strings.HasPrefix(name, ":") {
			return h, fmt.Errorf("name: pseudo-header %q is not one of :authority, :method, :path, :scheme", name)
		}
		h.name = textproto.CanonicalMIMEHeaderKey(name)
	}
	var err error
	switch s := ph.GetHeaderMatchSpecifier().(type) {
	case nil:
		h.kind, h.present = hdrPresent, true // Envoy: no specifier means presence
	case *routev3.HeaderMatcher_PresentMatch:
		h.kind, h.present = hdrPresent, s.PresentMatch
	case *routev3.HeaderMatcher_StringMatch:
		h.str, err = compileString(s.StringMatch)
		if err != nil {
			return h, fmt.Errorf("string_match.%w", err)
		}
	case *routev3.HeaderMatcher_ExactMatch:
		h.str = stringMatcher{kind: strExact, value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		h.str = stringMatcher{kind: strPrefix, value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		h.str = stringMatcher{kind: strSuffix, value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		h.str = stringMatcher{kind: strContains, value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		re, err := compileRegex(s.SafeRegexMatch)
		if err != nil {
			return h, fmt.Errorf("safe_regex_match.regex: %w", err)
		}
		h.str = stringMatcher{kind: strRegex, re: re}
	case *routev3.HeaderMatcher_RangeMatch:
		h.kind = hdrRange
		h.rangeStart, h.rangeEnd = s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
		if h.rangeStart >= h.rangeEnd {
			return h, fmt.Errorf("range_match: start %d must be below end %d", h.rangeStart, h.rangeEnd)
		}
	}
	return h, nil
}

func compileString(sm *matcherv3.StringMatcher) (stringMatcher, error) {
	m := stringMatcher{ignoreCase: sm.GetIgnoreCase()}
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		m.kind, m.value = strExact, p.Exact
	case *matcherv3.StringMatcher_Prefix:
		m.kind, m.value = strPrefix, p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		m.kind, m.value = strSuffix, p.Suffix
	case *matcherv3.StringMatcher_Contains:
		m.kind, m.value = strContains, p.Contains
	case *matcherv3.StringMatcher_SafeRegex:
		re, err := compileRegex(p.SafeRegex)
		if err != nil {
			return m, fmt.Errorf("safe_regex.regex: %w", err)
		}
		// Envoy: ignore_case has no effect on a regex.
		m.kind, m.re = strRegex, re
	default:
		return m, errors.New("match_pattern: one of exact, prefix, suffix, contains or safe_regex is required")
	}
	return m, nil
}

// compileRegex compiles an RE2 regex that must match the whole input, as Envoy's safe_regex
// does.
func compileRegex(rm *matcherv3.RegexMatcher) (*regexp.Regexp, error) {
	re, err := regexp.Compile(`^(?:` + rm.GetRegex() + `)$`)
	if err != nil {
		// regexp's own "error parsing regexp: " prefix would repeat what the message says.
		return nil, fmt.Errorf("invalid RE2 regex %q: %s", rm.GetRegex(), strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
	return re, nil
}

func compileForward(ra *routev3.RouteAction, r *Route) error {
	a := &r.Action
	a.Kind = Forward
	switch cs := ra.GetClusterSpecifier().(type) {
	case *routev3.RouteAction_Cluster:
		if cs.Cluster == "" {
			return errors.New("cluster: empty cluster name")
		}
		a.Cluster = cs.Cluster
	case *routev3.RouteAction_ClusterHeader:
		if cs.ClusterHeader == "" {
			return errors.New("cluster_header: empty header name")
		}
		a.ClusterHeader = textproto.CanonicalMIMEHeaderKey(cs.ClusterHeader)
	case *routev3.RouteAction_WeightedClusters:
		wc := cs.WeightedClusters
		for i, c := range wc.GetClusters() {
			if c.GetName() == "" {
				return fmt.Errorf("weighted_clusters.clusters[%d].name: required", i)
			}
			if mm := c.GetMetadataMatch(); mm != nil && len(mm.GetFilterMetadata()) > 0 {
				return fmt.Errorf("weighted_clusters.clusters[%d].metadata_match: subset load balancing is not supported by sluice-proxy", i)
			}
			w := c.GetWeight().GetValue()
			a.Weighted = append(a.Weighted, WeightedCluster{Name: c.GetName(), Weight: w, HostRewrite: c.GetHostRewriteLiteral()})
			a.totalWeight += uint64(w)
		}
		if a.totalWeight == 0 {
			return errors.New("weighted_clusters.clusters: the weights add up to 0")
		}
		if tw := wc.GetTotalWeight(); tw != nil && uint64(tw.GetValue()) != a.totalWeight {
			return fmt.Errorf("weighted_clusters.total_weight: %d, but the weights add up to %d", tw.GetValue(), a.totalWeight)
		}
	default:
		return errors.New("cluster_specifier: one of cluster, cluster_header or weighted_clusters is required")
	}
	switch ra.GetClusterNotFoundResponseCode() {
	case routev3.RouteAction_SERVICE_UNAVAILABLE:
		a.ClusterNotFoundStatus = http.StatusServiceUnavailable
	case routev3.RouteAction_NOT_FOUND:
		a.ClusterNotFoundStatus = http.StatusNotFound
	case routev3.RouteAction_INTERNAL_SERVER_ERROR:
		a.ClusterNotFoundStatus = http.StatusInternalServerError
	default:
		return fmt.Errorf("cluster_not_found_response_code: %v is not supported by sluice-proxy", ra.GetClusterNotFoundResponseCode())
	}
	if ra.GetPrefixRewrite() != "" {
		if r.match.kind == matchRegex {
			return errors.New("prefix_rewrite: cannot rewrite the prefix of a safe_regex match")
		}
		a.PrefixRewrite, a.hasPrefixRewrite = ra.GetPrefixRewrite(), true
	}
	a.HostRewrite = ra.GetHostRewriteLiteral()
	a.Timeout = DefaultTimeout
	if ra.GetTimeout() != nil {
		d, err := duration(ra.GetTimeout())
		if err != nil {
			return fmt.Errorf("timeout: %w", err)
		}
		a.Timeout = d
	}
	gt := ra.GetMaxStreamDuration().GetGrpcTimeoutHeaderMax()
	if gt == nil {
		gt = ra.GetMaxGrpcTimeout() //nolint:staticcheck // deprecated, still sent by older control planes
	}
	if gt != nil {
		d, err := duration(gt)
		if err != nil {
			return fmt.Errorf("max_stream_duration.grpc_timeout_header_max: %w", err)
		}
		a.HonorGRPCTimeout, a.GRPCTimeoutMax = true, d
	}
	return nil
}

func duration(d *durationpb.Duration) (time.Duration, error) {
	if err := d.CheckValid(); err != nil {
		return 0, err
	}
	if d.AsDuration() < 0 {
		return 0, fmt.Errorf("%v is negative", d.AsDuration())
	}
	return d.AsDuration(), nil
}

func compileRedirect(pr *routev3.RedirectAction) (*RedirectSpec, error) {
	s := &RedirectSpec{Host: pr.GetHostRedirect(), Port: pr.GetPortRedirect(), StripQuery: pr.GetStripQuery()}
	switch sr := pr.GetSchemeRewriteSpecifier().(type) {
	case *routev3.RedirectAction_HttpsRedirect:
		if sr.HttpsRedirect {
			s.Scheme = "https"
		}
	case *routev3.RedirectAction_SchemeRedirect:
		s.Scheme = strings.ToLower(sr.SchemeRedirect)
	}
	switch pr := pr.GetPathRewriteSpecifier().(type) {
	case *routev3.RedirectAction_PathRedirect:
		s.Path = pr.PathRedirect
	case *routev3.RedirectAction_PrefixRewrite:
		s.PrefixRewrite = pr.PrefixRewrite
	}
	switch pr.GetResponseCode() {
	case routev3.RedirectAction_MOVED_PERMANENTLY:
		s.Status = http.StatusMovedPermanently
	case routev3.RedirectAction_FOUND:
		s.Status = http.StatusFound
	case routev3.RedirectAction_SEE_OTHER:
		s.Status = http.StatusSeeOther
	case routev3.RedirectAction_TEMPORARY_REDIRECT:
		s.Status = http.StatusTemporaryRedirect
	case routev3.RedirectAction_PERMANENT_REDIRECT:
		s.Status = http.StatusPermanentRedirect
	default:
		return nil, fmt.Errorf("response_code: %v is not a redirect code sluice-proxy knows", pr.GetResponseCode())
	}
	return s, nil
}

// clusterNames returns the clusters a Forward can reach, for warming.
func (a *Action) clusterNames() []string {
	switch {
	case a.Kind != Forward:
		return nil
	case a.Cluster != "":
		return []string{a.Cluster}
	default:
		names := make([]string, 0, len(a.Weighted))
		for _, w := range a.Weighted {
			names = append(names, w.Name)
		}
		return names
	}
}
