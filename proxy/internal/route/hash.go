package route

import (
	"encoding/hex"
	"errors"
	"fmt"
	"math/bits"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/sluicemesh/sluice/proxy/internal/xxhash"
)

// HashPolicy is a route's compiled hash_policy: how to make a request's hash key for a
// consistent-hash cluster (RING_HASH, MAGLEV). It is immutable.
//
// As in Envoy, each method that finds its input contributes xxHash64 of it, combined with
// the key so far (rotated left by one bit, then xored), and a terminal method that produced
// a key ends the list. A request for which no method finds its input has no key, and the
// balancer picks at random.
type HashPolicy struct {
	methods []hashMethod
}

type hashKind uint8

const (
	hashHeader hashKind = iota
	hashCookie
	hashSourceIP
	hashQuery
)

type hashMethod struct {
	kind     hashKind
	name     string // canonical header name, cookie name or query parameter name
	terminal bool
	// A cookie method with a ttl makes the cookie when the request has none.
	hasTTL bool
	ttl    time.Duration
	path   string
}

func compileHashPolicy(ps []*routev3.RouteAction_HashPolicy) (*HashPolicy, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	hp := &HashPolicy{}
	for i, p := range ps {
		m := hashMethod{terminal: p.GetTerminal()}
		switch s := p.GetPolicySpecifier().(type) {
		case *routev3.RouteAction_HashPolicy_Header_:
			if s.Header.GetHeaderName() == "" {
				return nil, fmt.Errorf("hash_policy[%d].header.header_name: required", i)
			}
			m.kind, m.name = hashHeader, textproto.CanonicalMIMEHeaderKey(s.Header.GetHeaderName())
		case *routev3.RouteAction_HashPolicy_Cookie_:
			c := s.Cookie
			if c.GetName() == "" {
				return nil, fmt.Errorf("hash_policy[%d].cookie.name: required", i)
			}
			m.kind, m.name, m.path = hashCookie, c.GetName(), c.GetPath()
			if t := c.GetTtl(); t != nil {
				d, err := duration(t)
				if err != nil {
					return nil, fmt.Errorf("hash_policy[%d].cookie.ttl: %w", i, err)
				}
				m.hasTTL, m.ttl = true, d
			}
		case *routev3.RouteAction_HashPolicy_ConnectionProperties_:
			if !s.ConnectionProperties.GetSourceIp() {
				return nil, fmt.Errorf("hash_policy[%d].connection_properties.source_ip: must be true", i)
			}
			m.kind = hashSourceIP
		case *routev3.RouteAction_HashPolicy_QueryParameter_:
			if s.QueryParameter.GetName() == "" {
				return nil, fmt.Errorf("hash_policy[%d].query_parameter.name: required", i)
			}
			m.kind, m.name = hashQuery, s.QueryParameter.GetName()
		default:
			return nil, errors.New("hash_policy[" + strconv.Itoa(i) + "]: one of header, cookie, connection_properties or query_parameter is required")
		}
		hp.methods = append(hp.methods, m)
	}
	return hp, nil
}

// HashInput is what a hash key is made from besides the request's headers and path.
type HashInput struct {
	// RemoteAddr is the downstream connection's peer, "ip:port".
	RemoteAddr string
	// LocalAddr is the downstream connection's own end; nil when unknown.
	LocalAddr net.Addr
}

// Key returns the request's hash key; ok is false when no method found its input. setCookie,
// when not empty, is a Set-Cookie value for the answer: a cookie method with a ttl made the
// cookie the request lacked, as Envoy does, so the client's next requests hash the same.
func (p *HashPolicy) Key(req *Request, in HashInput) (key uint64, ok bool, setCookie string) {
	for i := range p.methods {
		m := &p.methods[i]
		var h uint64
		found := false
		switch m.kind {
		case hashHeader:
			if vs := req.Header[m.name]; len(vs) > 0 {
				h, found = headerHash(vs), true
			}
		case hashCookie:
			if v, has := cookieValue(req.Header["Cookie"], m.name); has && v != "" {
				h, found = xxhash.Sum64(v), true
			} else if m.hasTTL {
				v := newCookieValue(in)
				h, found = xxhash.Sum64(v), true
				setCookie = makeSetCookie(m.name, v, m.path, m.ttl)
			}
		case hashSourceIP:
			if host, _, err := net.SplitHostPort(in.RemoteAddr); err == nil {
				h, found = xxhash.Sum64(host), true
			}
		case hashQuery:
			_, q := splitQuery(req.Path)
			if v, has := rawQueryValue(q, m.name); has {
				h, found = xxhash.Sum64(v), true
			}
		}
		if found {
			if ok {
				// Rotating keeps two equal inputs from cancelling each other out.
				key = bits.RotateLeft64(key, 1) ^ h
			} else {
				key, ok = h, true
			}
		}
		if m.terminal && ok {
			break
		}
	}
	return key, ok, setCookie
}

// headerHash hashes a header's values as Envoy does: each value in sorted order, each hash
// seeding the next.
func headerHash(vs []string) uint64 {
	if len(vs) == 1 {
		return xxhash.Sum64(vs[0])
	}
	sorted := append([]string(nil), vs...)
	for i := 1; i < len(sorted); i++ {
		for j := i; j > 0 && sorted[j] < sorted[j-1]; j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	var h uint64
	for _, v := range sorted {
		h = xxhash.Seeded(v, h)
	}
	return h
}

// cookieValue finds cookie name in the Cookie header lines, without its double quotes.
func cookieValue(lines []string, name string) (string, bool) {
	for _, line := range lines {
		for line != "" {
			var part string
			part, line, _ = strings.Cut(line, ";")
			part = strings.TrimLeft(part, " ")
			k, v, hasEq := strings.Cut(part, "=")
			if !hasEq || k != name {
				continue
			}
			if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
				v = v[1 : len(v)-1]
			}
			return v, true
		}
	}
	return "", false
}

// newCookieValue makes a cookie value from the downstream connection's two ends, as Envoy
// does: the same for every request on one connection.
func newCookieValue(in HashInput) string {
	var b [8]byte
	local := ""
	if in.LocalAddr != nil {
		local = in.LocalAddr.String()
	}
	h := xxhash.Sum64(in.RemoteAddr + local)
	for i := range b {
		b[i] = byte(h >> (56 - 8*i))
	}
	return hex.EncodeToString(b[:])
}

// makeSetCookie formats a Set-Cookie value as Envoy does.
func makeSetCookie(name, value, path string, ttl time.Duration) string {
	s := name + `="` + value + `"`
	if secs := int64(ttl / time.Second); secs != 0 {
		s += "; Max-Age=" + strconv.FormatInt(secs, 10)
	}
	if path != "" {
		s += "; Path=" + path
	}
	return s + "; HttpOnly"
}

// rawQueryValue returns the first value of parameter name in rawQuery, as sent (Envoy hashes
// it undecoded).
func rawQueryValue(rawQuery, name string) (string, bool) {
	for rawQuery != "" {
		var kv string
		kv, rawQuery, _ = strings.Cut(rawQuery, "&")
		if k, v, _ := strings.Cut(kv, "="); k == name {
			return v, true
		}
	}
	return "", false
}
