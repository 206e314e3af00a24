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
package route

import (
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Request is what matching looks at. The zero value is a request for "" with no headers.
type Request struct {
	// Authority is the Host header or HTTP/2 :authority, port included when it was sent.
	Authority string
	// Method is the request method, such as "GET".
	Method string
	// Path is the request target in origin form, not decoded, query included: "/a/b?x=1".
	Path string
	// Scheme is "http" or "https".
	Scheme string
	// Header holds the request's headers with canonical keys, as net/http keeps them.
	Header http.Header
}

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
	// HostRewrite replaces the authority sent upstream when not empty.
	HostRewrite string

	// Status is a DirectResponse's status code.
	Status int
	// Body is a DirectResponse's body, answered as text/plain.
	Body []byte

	// RedirectSpec describes a Redirect.
	RedirectSpec *RedirectSpec

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

// Pick returns the cluster a Forward goes to, and the authority to send upstream if the
// chosen branch rewrites it. A weighted split draws from a per-thread RNG, so concurrent
// requests do not contend.
func (a *Action) Pick(req *Request) (cluster, hostRewrite string) {
	switch {
	case a.Cluster != "":
		return a.Cluster, a.HostRewrite
	case a.ClusterHeader != "":
		return req.Header.Get(a.ClusterHeader), a.HostRewrite
	case len(a.Weighted) > 0:
		n := rand.Uint64N(a.totalWeight)
		for i := range a.Weighted {
			w := uint64(a.Weighted[i].Weight)
			if n < w {
				hr := a.Weighted[i].HostRewrite
				if hr == "" {
					hr = a.HostRewrite
				}
				return a.Weighted[i].Name, hr
			}
			n -= w
		}
	}
	return "", ""
}

// RewritePath returns the path (query included) to send upstream for a request this route
// matched.
func (r *Route) RewritePath(path string) string {
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
