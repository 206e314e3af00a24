package route

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"slices"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluicemesh/sluice/proxy/internal/filter"
	"github.com/sluicemesh/sluice/proxy/internal/match"
	"github.com/sluicemesh/sluice/proxy/internal/support"
)

// DefaultTimeout is Envoy's route timeout when a route does not set one.
const DefaultTimeout = 15 * time.Second

// Supported lists the route fields sluice-proxy implements. A RouteConfiguration that sets
// any other field is rejected by Compile, naming the field. Decorator is accepted and unused:
// it only names spans, and the proxy does not trace yet. validate_clusters may be false only.
var Supported = support.Fields{
	"envoy.config.route.v3.RouteConfiguration": {"name", "virtual_hosts",
		"ignore_port_in_host_matching", "max_direct_response_body_size_bytes",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add",
		"response_headers_to_remove", "most_specific_header_mutations_wins"},
	"envoy.config.route.v3.VirtualHost": {"name", "domains", "routes", "include_request_attempt_count", "retry_policy",
		"metadata", "typed_per_filter_config", "request_headers_to_add", "request_headers_to_remove", "response_headers_to_add",
		"response_headers_to_remove"},
	"envoy.config.route.v3.Route": {"name", "match", "route", "redirect", "direct_response",
		"metadata", "decorator", "typed_per_filter_config", "request_headers_to_add", "request_headers_to_remove",
		"response_headers_to_add", "response_headers_to_remove"},
	"envoy.config.core.v3.HeaderValueOption": {"header", "append", "append_action", "keep_empty_value"},
	"envoy.config.core.v3.HeaderValue":       {"key", "value", "raw_value"},
	"envoy.config.route.v3.RouteMatch": {"prefix", "path", "safe_regex", "path_separated_prefix",
		"case_sensitive", "headers", "query_parameters", "grpc"},
	"envoy.config.route.v3.HeaderMatcher": {"name", "exact_match", "safe_regex_match", "range_match",
		"present_match", "prefix_match", "suffix_match", "contains_match", "string_match",
		"invert_match", "treat_missing_header_as_empty"},
	"envoy.config.route.v3.QueryParameterMatcher": {"name", "string_match", "present_match"},
	"envoy.type.matcher.v3.StringMatcher":         {"exact", "prefix", "suffix", "safe_regex", "contains", "ignore_case"},
	"envoy.type.matcher.v3.RegexMatcher":          {"regex", "google_re2"},
	"envoy.config.route.v3.RouteAction": {"cluster", "cluster_header", "weighted_clusters",
		"cluster_not_found_response_code", "prefix_rewrite", "regex_rewrite", "host_rewrite_literal", "timeout",
		"max_stream_duration", "max_grpc_timeout", "request_mirror_policies", "retry_policy", "hash_policy"},
	"envoy.config.route.v3.RouteAction.HashPolicy": {"header", "cookie", "connection_properties",
		"query_parameter", "terminal"},
	"envoy.config.route.v3.RouteAction.HashPolicy.Header":               {"header_name"},
	"envoy.config.route.v3.RouteAction.HashPolicy.Cookie":               {"name", "ttl", "path"},
	"envoy.config.route.v3.RouteAction.HashPolicy.ConnectionProperties": {"source_ip"},
	"envoy.config.route.v3.RouteAction.HashPolicy.QueryParameter":       {"name"},
	"envoy.config.route.v3.RetryPolicy": {"retry_on", "num_retries", "per_try_timeout", "retriable_status_codes",
		"retry_host_predicate", "host_selection_retry_max_attempts", "retry_back_off"},
	"envoy.config.route.v3.RetryPolicy.RetryHostPredicate": {"name", "typed_config"},
	"envoy.config.route.v3.RetryPolicy.RetryBackOff":       {"base_interval", "max_interval"},
	// trace_sampled is accepted and has no effect: the proxy does not trace. A runtime_key
	// names a runtime value the proxy does not have, so default_value applies, as in an
	// Envoy whose runtime does not set the key.
	"envoy.config.route.v3.RouteAction.RequestMirrorPolicy": {"cluster", "runtime_fraction", "trace_sampled",
		"disable_shadow_host_suffix_append"},
	"envoy.config.core.v3.RuntimeFractionalPercent": {"default_value", "runtime_key"},
	// typed_per_filter_config["envoy.filters.http.cors"]. A runtime_key of filter_enabled or
	// shadow_enabled names a runtime value the proxy does not have: default_value applies.
	"envoy.extensions.filters.http.cors.v3.CorsPolicy": {"allow_origin_string_match", "allow_methods",
		"allow_headers", "expose_headers", "max_age", "allow_credentials", "filter_enabled", "shadow_enabled",
		"allow_private_network_access", "forward_not_matching_preflights"},
	// typed_per_filter_config["envoy.filters.http.fault"], and the fault filter's own config.
	"envoy.extensions.filters.http.fault.v3.HTTPFault":    {"delay", "abort", "headers"},
	"envoy.extensions.filters.common.fault.v3.FaultDelay": {"fixed_delay", "percentage"},
	"envoy.extensions.filters.http.fault.v3.FaultAbort":   {"http_status", "grpc_status", "percentage"},
	"envoy.type.matcher.v3.RegexMatchAndSubstitute":       {"pattern", "substitution"},
	"envoy.config.route.v3.RouteAction.MaxStreamDuration": {"grpc_timeout_header_max"},
	"envoy.config.route.v3.WeightedCluster":               {"clusters", "total_weight"},
	"envoy.config.route.v3.WeightedCluster.ClusterWeight": {"name", "weight", "host_rewrite_literal", "metadata_match",
		"request_headers_to_add", "request_headers_to_remove", "response_headers_to_add", "response_headers_to_remove"},
	"envoy.config.route.v3.DirectResponseAction": {"status", "body"},
	"envoy.config.core.v3.DataSource":            {"inline_bytes", "inline_string"},
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
	global, err := compileLevelHeaders(rc)
	if err != nil {
		return nil, err
	}
	global.mostSpecificWins = rc.GetMostSpecificHeaderMutationsWins()
	seenDomain := map[string]bool{}
	seenCluster := map[string]bool{}
	for i, pvh := range rc.GetVirtualHosts() {
		vh, err := compileVirtualHost(pvh, global, seenCluster, &t.clusters)
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

// levelHeaders are the header mutations of one level of a route configuration.
type levelHeaders struct {
	request, response *filter.HeaderOps
	mostSpecificWins  bool // only on the route configuration's level
}

// headerLevel is a message with the four header mutation fields.
type headerLevel interface {
	GetRequestHeadersToAdd() []*corev3.HeaderValueOption
	GetRequestHeadersToRemove() []string
	GetResponseHeadersToAdd() []*corev3.HeaderValueOption
	GetResponseHeadersToRemove() []string
}

func compileLevelHeaders(m headerLevel) (levelHeaders, error) {
	var l levelHeaders
	var err error
	l.request, err = filter.CompileHeaderOps(m.GetRequestHeadersToAdd(), m.GetRequestHeadersToRemove(),
		"request_headers_to_add", "request_headers_to_remove")
	if err != nil {
		return l, err
	}
	l.response, err = filter.CompileHeaderOps(m.GetResponseHeadersToAdd(), m.GetResponseHeadersToRemove(),
		"response_headers_to_add", "response_headers_to_remove")
	return l, err
}

// ordered returns the non-nil mutations from most to least specific, or the reverse when
// the route configuration asks for most_specific_header_mutations_wins.
func ordered(reverse bool, levels ...*filter.HeaderOps) []*filter.HeaderOps {
	var out []*filter.HeaderOps
	for _, o := range levels {
		if o != nil {
			out = append(out, o)
		}
	}
	if reverse {
		slices.Reverse(out)
	}
	return out
}

func compileVirtualHost(pvh *routev3.VirtualHost, global levelHeaders, seenCluster map[string]bool, clusters *[]string) (*VirtualHost, error) {
	vh := &VirtualHost{Name: pvh.GetName(), IncludeAttemptCount: pvh.GetIncludeRequestAttemptCount()}
	vhHeaders, err := compileLevelHeaders(pvh)
	if err != nil {
		return nil, err
	}
	vhFilters, err := compilePerFilter(pvh.GetTypedPerFilterConfig())
	if err != nil {
		return nil, err
	}
	var vhRetry *RetryPolicy
	if p := pvh.GetRetryPolicy(); p != nil {
		if vhRetry, err = compileRetryPolicy(p); err != nil {
			return nil, fmt.Errorf("retry_policy.%w", err)
		}
	}
	for i, pr := range pvh.GetRoutes() {
		r, err := compileRoute(pr)
		if err != nil {
			return nil, fmt.Errorf("routes[%d]%w", i, err)
		}
		if r.Action.Kind == Forward && r.Action.Retry == nil {
			// A route without a retry policy of its own uses its virtual host's.
			r.Action.Retry = vhRetry
		}
		rh, err := compileLevelHeaders(pr)
		if err != nil {
			return nil, fmt.Errorf("routes[%d].%w", i, err)
		}
		rf, err := compilePerFilter(pr.GetTypedPerFilterConfig())
		if err != nil {
			return nil, fmt.Errorf("routes[%d].%w", i, err)
		}
		mergePerFilter(r, rf, vhFilters)
		r.RequestHeaders = ordered(global.mostSpecificWins, rh.request, vhHeaders.request, global.request)
		r.ResponseHeaders = ordered(global.mostSpecificWins, rh.response, vhHeaders.response, global.response)
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
		re, err := match.Regex(ps.SafeRegex)
		if err != nil {
			return fmt.Errorf("safe_regex.regex: %w", err)
		}
		m.kind, m.re = matchRegex, re
	default:
		return errors.New("path_specifier: one of prefix, path, path_separated_prefix or safe_regex is required")
	}
	m.grpc = pm.GetGrpc() != nil
	hs, err := match.CompileHeaders(pm.GetHeaders())
	if err != nil {
		return fmt.Errorf("headers%w", err)
	}
	m.headers = hs
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
			sm, err := match.CompileString(s.StringMatch)
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
			wh, err := compileLevelHeaders(c)
			if err != nil {
				return fmt.Errorf("weighted_clusters.clusters[%d].%w", i, err)
			}
			a.Weighted = append(a.Weighted, WeightedCluster{Name: c.GetName(), Weight: w, HostRewrite: c.GetHostRewriteLiteral(),
				RequestHeaders: wh.request, ResponseHeaders: wh.response})
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
	hp, err := compileHashPolicy(ra.GetHashPolicy())
	if err != nil {
		return err
	}
	a.Hash = hp
	if p := ra.GetRetryPolicy(); p != nil {
		rp, err := compileRetryPolicy(p)
		if err != nil {
			return fmt.Errorf("retry_policy.%w", err)
		}
		a.Retry = rp
	}
	for i, mp := range ra.GetRequestMirrorPolicies() {
		m := Mirror{Cluster: mp.GetCluster(), Fraction: filter.Always, KeepHost: mp.GetDisableShadowHostSuffixAppend()}
		if m.Cluster == "" {
			return fmt.Errorf("request_mirror_policies[%d].cluster: required", i)
		}
		if rf := mp.GetRuntimeFraction(); rf != nil {
			f, err := filter.CompilePercent(rf.GetDefaultValue())
			if err != nil {
				return fmt.Errorf("request_mirror_policies[%d].runtime_fraction.default_value.%w", i, err)
			}
			m.Fraction = f
		}
		a.Mirrors = append(a.Mirrors, m)
	}
	if rr := ra.GetRegexRewrite(); rr != nil {
		if a.hasPrefixRewrite {
			return errors.New("regex_rewrite: cannot be set together with prefix_rewrite (Envoy rejects this too)")
		}
		re, err := match.UnanchoredRegex(rr.GetPattern())
		if err != nil {
			return fmt.Errorf("regex_rewrite.pattern.regex: %w", err)
		}
		subst, err := substitution(rr.GetSubstitution(), re.NumSubexp())
		if err != nil {
			return fmt.Errorf("regex_rewrite.substitution: %w", err)
		}
		a.regexRewrite, a.regexSubst = re, subst
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

// substitution turns an RE2 rewrite string, in which \1 names capture group 1 and \\ is a
// backslash, into a Go regexp template, checking that every group it names exists.
func substitution(rewrite string, groups int) (string, error) {
	var b strings.Builder
	for i := 0; i < len(rewrite); i++ {
		c := rewrite[i]
		switch {
		case c == '$':
			b.WriteString("$$")
		case c != '\\':
			b.WriteByte(c)
		case i+1 < len(rewrite) && rewrite[i+1] == '\\':
			b.WriteByte('\\')
			i++
		case i+1 < len(rewrite) && rewrite[i+1] >= '0' && rewrite[i+1] <= '9':
			n := int(rewrite[i+1] - '0')
			if n > groups {
				return "", fmt.Errorf("%q refers to capture group \\%d, but the pattern has %d", rewrite, n, groups)
			}
			b.WriteString("${" + string(rewrite[i+1]) + "}")
			i++
		default:
			return "", fmt.Errorf("%q: a backslash must be followed by a digit or a backslash", rewrite)
		}
	}
	return b.String(), nil
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
	if a.Kind != Forward {
		return nil
	}
	var names []string
	if a.Cluster != "" {
		names = append(names, a.Cluster)
	}
	for _, w := range a.Weighted {
		names = append(names, w.Name)
	}
	// A mirror's cluster warms and stays like the others, so copies are not lost to an
	// update that adds it.
	for _, m := range a.Mirrors {
		names = append(names, m.Cluster)
	}
	return names
}
