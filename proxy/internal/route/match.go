package route

import (
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

type pathKind uint8

const (
	matchPrefix pathKind = iota
	matchPath
	matchSeparatedPrefix
	matchRegex
)

type routeMatch struct {
	kind            pathKind
	value           string
	caseInsensitive bool
	re              *regexp.Regexp
	grpc            bool
	headers         []headerMatcher
	query           []queryMatcher
}

// matches reports whether req matches; path is req.Path without its query.
func (m *routeMatch) matches(req *Request, path string) bool {
	switch m.kind {
	case matchPrefix:
		if !hasPrefixFold(req.Path, m.value, m.caseInsensitive) {
			return false
		}
	case matchPath:
		if !equalFold(path, m.value, m.caseInsensitive) {
			return false
		}
	case matchSeparatedPrefix:
		if !hasPrefixFold(path, m.value, m.caseInsensitive) ||
			(len(path) > len(m.value) && path[len(m.value)] != '/') {
			return false
		}
	case matchRegex:
		if !m.re.MatchString(path) {
			return false
		}
	}
	if m.grpc && !isGRPC(req) {
		return false
	}
	for i := range m.headers {
		if !m.headers[i].matches(req) {
			return false
		}
	}
	for i := range m.query {
		if !m.query[i].matches(req.Path) {
			return false
		}
	}
	return true
}

func isGRPC(req *Request) bool {
	ct := req.Header.Get("Content-Type")
	return strings.HasPrefix(ct, "application/grpc") &&
		(len(ct) == len("application/grpc") || ct[len("application/grpc")] == '+' || ct[len("application/grpc")] == ';')
}

func hasPrefixFold(s, prefix string, fold bool) bool {
	if len(s) < len(prefix) {
		return false
	}
	if fold {
		return strings.EqualFold(s[:len(prefix)], prefix)
	}
	return s[:len(prefix)] == prefix
}

func equalFold(a, b string, fold bool) bool {
	if fold {
		return strings.EqualFold(a, b)
	}
	return a == b
}

// stringMatcher is a compiled envoy.type.matcher.v3.StringMatcher.
type stringMatcher struct {
	kind       stringKind
	value      string
	ignoreCase bool
	re         *regexp.Regexp
}

type stringKind uint8

const (
	strExact stringKind = iota
	strPrefix
	strSuffix
	strContains
	strRegex
)

func (m *stringMatcher) matches(s string) bool {
	switch m.kind {
	case strExact:
		return equalFold(s, m.value, m.ignoreCase)
	case strPrefix:
		return hasPrefixFold(s, m.value, m.ignoreCase)
	case strSuffix:
		if len(s) < len(m.value) {
			return false
		}
		return equalFold(s[len(s)-len(m.value):], m.value, m.ignoreCase)
	case strContains:
		if m.ignoreCase {
			return containsFold(s, m.value)
		}
		return strings.Contains(s, m.value)
	case strRegex:
		return m.re.MatchString(s)
	}
	return false
}

// containsFold is strings.Contains ignoring ASCII case, without allocating.
func containsFold(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if strings.EqualFold(s[i:i+len(sub)], sub) {
			return true
		}
	}
	return false
}

type headerKind uint8

const (
	hdrString headerKind = iota
	hdrPresent
	hdrRange
)

// pseudo names the HTTP/2 pseudo-header a matcher reads, or none for a real header.
type pseudo uint8

const (
	notPseudo pseudo = iota
	pseudoAuthority
	pseudoMethod
	pseudoPath
	pseudoScheme
)

// headerMatcher is a compiled envoy.config.route.v3.HeaderMatcher.
type headerMatcher struct {
	name                string // canonical key for net/http's Header map
	pseudo              pseudo
	kind                headerKind
	str                 stringMatcher
	present             bool
	rangeStart          int64
	rangeEnd            int64
	invert              bool
	treatMissingAsEmpty bool
}

// value returns the header's value as Envoy sees it: repeated headers joined by ",".
func (h *headerMatcher) value(req *Request) (string, bool) {
	switch h.pseudo {
	case pseudoAuthority:
		return req.Authority, true
	case pseudoMethod:
		return req.Method, true
	case pseudoPath:
		return req.Path, true
	case pseudoScheme:
		return req.Scheme, true
	}
	vs, ok := req.Header[h.name]
	switch {
	case !ok:
		return "", false
	case len(vs) == 1:
		return vs[0], true
	default:
		return strings.Join(vs, ","), true
	}
}

// matches follows Envoy: a missing header (unless treated as empty) matches only an absence
// test, that is present_match false, or present_match true inverted.
func (h *headerMatcher) matches(req *Request) bool {
	v, ok := h.value(req)
	if !ok && !h.treatMissingAsEmpty {
		if h.kind != hdrPresent {
			return false
		}
		return h.present == h.invert
	}
	var m bool
	switch h.kind {
	case hdrPresent:
		// With treat_missing_header_as_empty an absent header counts as present.
		m = h.present
	case hdrString:
		m = h.str.matches(v)
	case hdrRange:
		n, err := strconv.ParseInt(v, 10, 64)
		m = err == nil && n >= h.rangeStart && n < h.rangeEnd
	}
	return m != h.invert
}

// queryMatcher is a compiled envoy.config.route.v3.QueryParameterMatcher.
type queryMatcher struct {
	name    string
	present bool // present_match: only presence is tested
	str     stringMatcher
}

func (q *queryMatcher) matches(target string) bool {
	_, rawQuery := splitQuery(target)
	v, ok := firstQueryValue(rawQuery, q.name)
	if !ok {
		return false
	}
	if q.present {
		return true
	}
	return q.str.matches(v)
}

// firstQueryValue returns the decoded value of the first parameter named name in rawQuery.
// It allocates only when the value is percent- or plus-encoded.
func firstQueryValue(rawQuery, name string) (string, bool) {
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		k, v, _ := strings.Cut(kv, "=")
		if k != name {
			if strings.IndexAny(k, "%+") < 0 {
				continue
			}
			if dk, err := url.QueryUnescape(k); err != nil || dk != name {
				continue
			}
		}
		if strings.IndexAny(v, "%+") >= 0 {
			dv, err := url.QueryUnescape(v)
			if err != nil {
				return v, true
			}
			return dv, true
		}
		return v, true
	}
	return "", false
}
