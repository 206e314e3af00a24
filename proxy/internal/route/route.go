// Package route compiles an Envoy RouteConfiguration into an immutable Table and matches
// requests against it.
//
// A Table is built once per RDS update (or per listener with an inline route_config) and is then
// shared read-only by every request, so matching takes no locks. Matching follows Envoy:
//
//   - The virtual host is chosen by authority: an exact domain first, then suffix wildcards
//     ("*.foo.com", longest first), then prefix wildcards ("foo.*", longest first), then "*".
//     Domains and hosts compare case-insensitively. The port is part of the host: a domain
//     "reviews:9080" matches only "reviews:9080" and "reviews" only "reviews", unless the
//     configuration asks to ignore ports (ignore_port_in_host_matching, or the listener's
//     strip_any_host_port).
//   - Routes are tried in order and the first match wins. prefix compares with the whole
//     request target (query included, as Envoy does); path, path_separated_prefix and
//     safe_regex compare with the path without its query, and a regex must match all of it.
//
// Match itself does not allocate unless a host holds upper-case letters or a matched header
// repeats.
//
// Beyond matching, a Table carries what the listener's filters and router act on: header
// mutations of every level (in Envoy's order), prefix and regex rewrites, retry policies
// (retry.go), hash policies (hash.go), mirror policies, and the per-route configs of the
// CORS and fault filters (perfilter.go).
package route

import (
	"math/rand/v2"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/sluicemesh/sluice/proxy/internal/filter"
	"github.com/sluicemesh/sluice/proxy/internal/match"
)

// Request is what matching looks at; see match.Request.
type Request = match.Request

// Table is a compiled RouteConfiguration. The zero value routes nothing.
type Table struct {
	// Name is the RouteConfiguration's name.
	Name string

	exact      map[string]*VirtualHost
	suffixes   []wildcard // longest first
	prefixes   []wildcard // longest first
	any        *VirtualHost
	ignorePort bool
	clusters   []string
}

type wildcard struct {
	part string // the domain without its "*", lower case
	vh   *VirtualHost
}

// VirtualHost is a compiled virtual host: routes tried in order.
type VirtualHost struct {
	// Name is the virtual host's name.
	Name string
	// Routes are tried in order; the first that matches wins.
	Routes []*Route
	// IncludeAttemptCount asks the forwarder to send x-envoy-attempt-count upstream.
	IncludeAttemptCount bool
}

// Route is one compiled route: a match and what to do with a matching request.
type Route struct {
	// Name is the route's name, often empty.
	Name string
	// Action says where the request goes.
	Action Action
	// RequestHeaders are the header mutations of the route, its virtual host and its route
	// configuration, in the order Envoy applies them to a request sent upstream: most
	// specific first, so a less specific level's overwrite wins (reversed when the route
	// configuration sets most_specific_header_mutations_wins). A chosen weighted cluster's
	// own mutations are applied before these. Levels without mutations are left out.
	RequestHeaders []*filter.HeaderOps
	// ResponseHeaders are the response's header mutations, in the same order, applied to
	// upstream responses and to the replies the router makes itself (direct responses,
	// redirects, local replies).
	ResponseHeaders []*filter.HeaderOps
	// CORS is the CORS policy for the route (its own typed_per_filter_config merged over its
	// virtual host's), nil for none. It applies when the listener runs the CORS filter.
	CORS *filter.CORS
	// Fault is the fault filter's config for the route (its own typed_per_filter_config, else
	// its virtual host's) when FaultSet; nil with FaultSet means the filter is disabled for the
	// route. Without FaultSet the filter's own config in the listener applies.
	Fault    *filter.Fault
	FaultSet bool

	match routeMatch
}

// Kind says what a route does with a request it matched.
type Kind uint8

// The kinds of route action.
const (
	// Forward sends the request to an upstream cluster.
	Forward Kind = iota
	// DirectResponse answers from the proxy with a fixed status and body.
	DirectResponse
	// Redirect answers with a redirect built from the request.
	Redirect
)

// Action is a compiled route action.
type Action struct {
	// Kind says which of the fields below apply.
	Kind Kind

	// Cluster names the upstream cluster of a Forward with one cluster.
	Cluster string
	// ClusterHeader names the request header whose value names the cluster.
	ClusterHeader string
	// Weighted splits a Forward between clusters in proportion to their weights.
	Weighted []WeightedCluster
	// ClusterNotFoundStatus is the status answered when the cluster is unknown (503 unless
	// configured otherwise).
	ClusterNotFoundStatus int
	// Timeout bounds the whole upstream exchange; zero means no limit. Envoy's default,
	// when the route does not say, is 15s.
	Timeout time.Duration
	// HonorGRPCTimeout uses the request's grpc-timeout header as the timeout, capped by
	// GRPCTimeoutMax when that is not zero (max_stream_duration.grpc_timeout_header_max).
	HonorGRPCTimeout bool
	// GRPCTimeoutMax caps a grpc-timeout; zero means no cap.
	GRPCTimeoutMax time.Duration
	// PrefixRewrite replaces the matched prefix (or the whole matched path) upstream.
	PrefixRewrite    string
	hasPrefixRewrite bool
	// regexRewrite replaces every match of a regex in the path (not the query) with
	// regexSubst, a Go regexp template.
	regexRewrite *regexp.Regexp
	regexSubst   string
	// HostRewrite replaces the authority sent upstream when not empty.
	HostRewrite string

	// Status is a DirectResponse's status code.
	Status int
	// Body is a DirectResponse's body, answered as text/plain.
	Body []byte

	// RedirectSpec describes a Redirect.
	RedirectSpec *RedirectSpec

	// Retry is the retry policy of a Forward (the route's, else its virtual host's); nil for
	// none.
	Retry *RetryPolicy
	// Hash makes the hash key of a request to a consistent-hash cluster; nil for none.
	Hash *HashPolicy

	// Mirrors are the request_mirror_policies of a Forward: each sends a copy of a share of
	// the requests to another cluster and ignores the answer.
	Mirrors []Mirror

	totalWeight uint64
}

// WeightedCluster is one branch of a weighted split.
type WeightedCluster struct {
	// Name names the cluster.
	Name string
	// Weight is the branch's share, relative to the sum of all weights.
	Weight uint32
	// HostRewrite replaces the authority sent upstream when this branch is chosen.
	HostRewrite string
	// RequestHeaders and ResponseHeaders are the branch's own header mutations, applied
	// before the route's (nil for none).
	RequestHeaders, ResponseHeaders *filter.HeaderOps
}

// Mirror is a compiled RequestMirrorPolicy.
type Mirror struct {
	// Cluster names the cluster the copies go to.
	Cluster string
	// Fraction is the share of requests copied (runtime_fraction.default_value; 100% when
	// unset, as in Envoy).
	Fraction filter.Percent
	// KeepHost sends the copy with the request's authority unchanged
	// (disable_shadow_host_suffix_append); otherwise its host gets Envoy's "-shadow" suffix.
	KeepHost bool
}

// ShadowAuthority returns the authority a mirrored copy is sent with: "-shadow" appended to
// the host part, before any port, as Envoy does ("httpbin:8000" becomes
// "httpbin-shadow:8000").
func ShadowAuthority(authority string) string {
	host := StripPort(authority)
	return host + "-shadow" + authority[len(host):]
}

// RedirectSpec is a compiled RedirectAction. Empty fields keep the request's value.
type RedirectSpec struct {
	// Scheme replaces the request's scheme ("https" for https_redirect).
	Scheme string
	// Host replaces the request's host.
	Host string
	// Port replaces the request's port.
	Port uint32
	// Path replaces the request's path (and its query, if Path has one).
	Path string
	// PrefixRewrite replaces the prefix the route matched.
	PrefixRewrite string
	// StripQuery drops the request's query.
	StripQuery bool
	// Status is the redirect's status code (301 unless configured otherwise).
	Status int
}

// Pick returns the cluster a Forward goes to and, for a weighted split, the branch chosen
// (nil otherwise). A weighted split draws from a per-thread RNG, so concurrent requests do
// not contend.
func (a *Action) Pick(req *Request) (cluster string, branch *WeightedCluster) {
	switch {
	case a.Cluster != "":
		return a.Cluster, nil
	case a.ClusterHeader != "":
		return req.Header.Get(a.ClusterHeader), nil
	case len(a.Weighted) > 0:
		n := rand.Uint64N(a.totalWeight)
		for i := range a.Weighted {
			w := uint64(a.Weighted[i].Weight)
			if n < w {
				return a.Weighted[i].Name, &a.Weighted[i]
			}
			n -= w
		}
	}
	return "", nil
}

// HostRewriteFor returns the authority to send upstream when branch (nil for none) was
// picked, or "" to keep the request's.
func (a *Action) HostRewriteFor(branch *WeightedCluster) string {
	if branch != nil && branch.HostRewrite != "" {
		return branch.HostRewrite
	}
	return a.HostRewrite
}

// RewritePath returns the path (query included) to send upstream for a request this route
// matched.
func (r *Route) RewritePath(path string) string {
	if re := r.Action.regexRewrite; re != nil {
		p, q := splitQuery(path)
		p = re.ReplaceAllString(p, r.Action.regexSubst)
		if q != "" || strings.HasSuffix(path, "?") {
			return p + "?" + q
		}
		return p
	}
	if !r.Action.hasPrefixRewrite {
		return path
	}
	switch r.match.kind {
	case matchPrefix:
		return r.Action.PrefixRewrite + path[len(r.match.value):]
	default: // path and path_separated_prefix: the matched path is replaced, the query kept
		p, q := splitQuery(path)
		rest := p[min(len(r.match.value), len(p)):]
		if q != "" {
			return r.Action.PrefixRewrite + rest + "?" + q
		}
		return r.Action.PrefixRewrite + rest
	}
}

// Clusters returns the names of every cluster the table's routes can send to (not those
// named by a request header). The caller must not modify the slice.
func (t *Table) Clusters() []string { return t.clusters }

// Match returns the virtual host and the first route that match req. vh is nil when no
// virtual host matches the authority; r is nil when no route of vh matches.
func (t *Table) Match(req *Request) (vh *VirtualHost, r *Route) {
	vh = t.VirtualHost(req.Authority)
	if vh == nil {
		return nil, nil
	}
	p, _ := splitQuery(req.Path)
	for _, rt := range vh.Routes {
		if rt.match.matches(req, p) {
			return vh, rt
		}
	}
	return vh, nil
}

// VirtualHost returns the virtual host serving authority, or nil.
func (t *Table) VirtualHost(authority string) *VirtualHost {
	if t == nil {
		return nil
	}
	host := authority
	if t.ignorePort {
		host = StripPort(host)
	}
	if hasUpper(host) {
		host = strings.ToLower(host)
	}
	if vh, ok := t.exact[host]; ok {
		return vh
	}
	for _, w := range t.suffixes {
		// Envoy's suffix wildcard needs at least one character before the suffix.
		if len(host) > len(w.part) && strings.HasSuffix(host, w.part) {
			return w.vh
		}
	}
	for _, w := range t.prefixes {
		if len(host) > len(w.part) && strings.HasPrefix(host, w.part) {
			return w.vh
		}
	}
	return t.any
}

// StripPort returns host without a trailing ":port", keeping IPv6 brackets intact.
func StripPort(host string) string {
	i := strings.LastIndexByte(host, ':')
	if i < 0 || strings.IndexByte(host[i:], ']') >= 0 {
		return host
	}
	if strings.HasPrefix(host, "[") {
		if host[i-1] != ']' {
			return host // a bare IPv6 address inside brackets without a port
		}
	} else if strings.IndexByte(host[:i], ':') >= 0 {
		return host // an IPv6 address without brackets has no port
	}
	for _, c := range host[i+1:] {
		if c < '0' || c > '9' {
			return host
		}
	}
	return host[:i]
}

func hasUpper(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			return true
		}
	}
	return false
}

func splitQuery(path string) (p, q string) {
	if i := strings.IndexByte(path, '?'); i >= 0 {
		return path[:i], path[i+1:]
	}
	return path, ""
}

// Location returns the redirect target for a request that route r matched.
func (s *RedirectSpec) Location(req *Request, r *Route) string {
	scheme := req.Scheme
	if s.Scheme != "" {
		scheme = s.Scheme
	}
	host := req.Authority
	if s.Host != "" {
		host = s.Host
	}
	switch {
	case s.Port != 0:
		host = StripPort(host) + ":" + strconv.FormatUint(uint64(s.Port), 10)
	case scheme == "https" && strings.HasSuffix(host, ":80"), scheme == "http" && strings.HasSuffix(host, ":443"):
		// The old scheme's default port means nothing under the new scheme.
		host = StripPort(host)
	}
	path, query := splitQuery(req.Path)
	switch {
	case s.Path != "":
		if p, q, ok := strings.Cut(s.Path, "?"); ok {
			path, query = p, q
		} else {
			path = s.Path
		}
	case s.PrefixRewrite != "" && r != nil && (r.match.kind == matchPrefix || r.match.kind == matchSeparatedPrefix):
		path = s.PrefixRewrite + path[min(len(r.match.value), len(path)):]
	}
	if s.StripQuery && !strings.Contains(s.Path, "?") {
		query = ""
	}
	loc := scheme + "://" + host + path
	if query != "" {
		loc += "?" + query
	}
	return loc
}
