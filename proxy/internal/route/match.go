package route

import (
	"net/url"
	"regexp"
	"strings"

	"github.com/sluicemesh/sluice/proxy/internal/match"
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
	headers         []match.Header
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
	if !match.All(m.headers, req) {
		return false
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

func hasPrefixFold(s, prefix string, fold bool) bool { return match.HasPrefixFold(s, prefix, fold) }

func equalFold(a, b string, fold bool) bool { return match.EqualFold(a, b, fold) }

// queryMatcher is a compiled envoy.config.route.v3.QueryParameterMatcher.
type queryMatcher struct {
	name    string
	present bool // present_match: only presence is tested
	str     match.String
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
	return q.str.Matches(v)
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
