// Package match holds Envoy's request matchers, compiled once and shared read-only by every
// request: string matchers (envoy.type.matcher.v3.StringMatcher), header matchers
// (envoy.config.route.v3.HeaderMatcher) and RE2 regexes. Routes, the fault filter and the CORS
// filter all match with them. Matching does not allocate unless a matched header repeats.
package match

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"regexp"
	"strconv"
	"strings"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
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

// String is a compiled StringMatcher. The zero value matches only "".
type String struct {
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

// CompileString compiles sm. The error names the offending field relative to sm.
func CompileString(sm *matcherv3.StringMatcher) (String, error) {
	m := String{ignoreCase: sm.GetIgnoreCase()}
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
		re, err := Regex(p.SafeRegex)
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

// Exact returns a matcher of exactly s.
func Exact(s string) String { return String{kind: strExact, value: s} }

// Matches reports whether s matches.
func (m *String) Matches(s string) bool {
	switch m.kind {
	case strExact:
		return equalFold(s, m.value, m.ignoreCase)
	case strPrefix:
		return HasPrefixFold(s, m.value, m.ignoreCase)
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

// Regex compiles an RE2 regex that must match the whole input, as Envoy's safe_regex does.
func Regex(rm *matcherv3.RegexMatcher) (*regexp.Regexp, error) {
	re, err := regexp.Compile(`^(?:` + rm.GetRegex() + `)$`)
	if err != nil {
		return nil, regexError(rm.GetRegex(), err)
	}
	return re, nil
}

// UnanchoredRegex compiles an RE2 regex that may match anywhere in its input, for
// substitutions (regex_rewrite).
func UnanchoredRegex(rm *matcherv3.RegexMatcher) (*regexp.Regexp, error) {
	re, err := regexp.Compile(rm.GetRegex())
	if err != nil {
		return nil, regexError(rm.GetRegex(), err)
	}
	return re, nil
}

func regexError(re string, err error) error {
	// regexp's own "error parsing regexp: " prefix would repeat what the message says.
	return fmt.Errorf("invalid RE2 regex %q: %s", re, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
}

// HasPrefixFold reports whether s begins with prefix, ignoring ASCII case when fold is set.
func HasPrefixFold(s, prefix string, fold bool) bool {
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

// EqualFold reports whether a equals b, ignoring ASCII case when fold is set.
func EqualFold(a, b string, fold bool) bool { return equalFold(a, b, fold) }

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

// Header is a compiled HeaderMatcher.
type Header struct {
	name                string // canonical key for net/http's Header map
	pseudo              pseudo
	kind                headerKind
	str                 String
	present             bool
	rangeStart          int64
	rangeEnd            int64
	invert              bool
	treatMissingAsEmpty bool
}

// CompileHeader compiles ph. The error names the offending field relative to ph.
func CompileHeader(ph *routev3.HeaderMatcher) (Header, error) {
	h := Header{invert: ph.GetInvertMatch(), treatMissingAsEmpty: ph.GetTreatMissingHeaderAsEmpty()}
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
		h.str, err = CompileString(s.StringMatch)
		if err != nil {
			return h, fmt.Errorf("string_match.%w", err)
		}
	case *routev3.HeaderMatcher_ExactMatch:
		h.str = String{kind: strExact, value: s.ExactMatch}
	case *routev3.HeaderMatcher_PrefixMatch:
		h.str = String{kind: strPrefix, value: s.PrefixMatch}
	case *routev3.HeaderMatcher_SuffixMatch:
		h.str = String{kind: strSuffix, value: s.SuffixMatch}
	case *routev3.HeaderMatcher_ContainsMatch:
		h.str = String{kind: strContains, value: s.ContainsMatch}
	case *routev3.HeaderMatcher_SafeRegexMatch:
		re, err := Regex(s.SafeRegexMatch)
		if err != nil {
			return h, fmt.Errorf("safe_regex_match.regex: %w", err)
		}
		h.str = String{kind: strRegex, re: re}
	case *routev3.HeaderMatcher_RangeMatch:
		h.kind = hdrRange
		h.rangeStart, h.rangeEnd = s.RangeMatch.GetStart(), s.RangeMatch.GetEnd()
		if h.rangeStart >= h.rangeEnd {
			return h, fmt.Errorf("range_match: start %d must be below end %d", h.rangeStart, h.rangeEnd)
		}
	}
	return h, nil
}

// CompileHeaders compiles a list of header matchers; the error starts with the index, as
// "[2] (\"x-user\").string_match...".
func CompileHeaders(phs []*routev3.HeaderMatcher) ([]Header, error) {
	var out []Header
	for i, ph := range phs {
		h, err := CompileHeader(ph)
		if err != nil {
			return nil, fmt.Errorf("[%d] (%q).%w", i, ph.GetName(), err)
		}
		out = append(out, h)
	}
	return out, nil
}

// value returns the header's value as Envoy sees it: repeated headers joined by ",".
func (h *Header) value(req *Request) (string, bool) {
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

// Matches follows Envoy: a missing header (unless treated as empty) matches only an absence
// test, that is present_match false, or present_match true inverted.
func (h *Header) Matches(req *Request) bool {
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
		m = h.str.Matches(v)
	case hdrRange:
		n, err := strconv.ParseInt(v, 10, 64)
		m = err == nil && n >= h.rangeStart && n < h.rangeEnd
	}
	return m != h.invert
}

// All reports whether every matcher of hs matches req (true for none).
func All(hs []Header, req *Request) bool {
	for i := range hs {
		if !hs[i].Matches(req) {
			return false
		}
	}
	return true
}
