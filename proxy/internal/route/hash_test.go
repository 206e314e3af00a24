package route

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluicemesh/sluice/proxy/internal/xxhash"
)

func headerHashPolicy(name string, terminal bool) *routev3.RouteAction_HashPolicy {
	return &routev3.RouteAction_HashPolicy{Terminal: terminal, PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{
		Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: name}}}
}

func cookieHashPolicy(name string, ttl *durationpb.Duration) *routev3.RouteAction_HashPolicy {
	return &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{
		Cookie: &routev3.RouteAction_HashPolicy_Cookie{Name: name, Ttl: ttl, Path: "/"}}}
}

func TestHashPolicyKey(t *testing.T) {
	sourceIP := &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_ConnectionProperties_{
		ConnectionProperties: &routev3.RouteAction_HashPolicy_ConnectionProperties{SourceIp: true}}}
	query := &routev3.RouteAction_HashPolicy{PolicySpecifier: &routev3.RouteAction_HashPolicy_QueryParameter_{
		QueryParameter: &routev3.RouteAction_HashPolicy_QueryParameter{Name: "user"}}}
	in := HashInput{RemoteAddr: "10.0.0.7:5555", LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 6), Port: 15001}}
	x := xxhash.Sum64
	rotx := func(a, b uint64) uint64 { return (a<<1 | a>>63) ^ b }
	tests := []struct {
		name       string
		policies   []*routev3.RouteAction_HashPolicy
		req        *Request
		wantKey    uint64
		wantOK     bool
		wantCookie string // a prefix of the Set-Cookie made
	}{
		{"header", []*routev3.RouteAction_HashPolicy{headerHashPolicy("x-user", false)}, req("/", "X-User", "jason"), x("jason"), true, ""},
		{"no header: no key", []*routev3.RouteAction_HashPolicy{headerHashPolicy("x-user", false)}, req("/"), 0, false, ""},
		{"two methods combine", []*routev3.RouteAction_HashPolicy{headerHashPolicy("x-a", false), headerHashPolicy("x-b", false)},
			req("/", "X-A", "1", "X-B", "2"), rotx(x("1"), x("2")), true, ""},
		{"a terminal method that found its input ends the list", []*routev3.RouteAction_HashPolicy{headerHashPolicy("x-a", true), headerHashPolicy("x-b", false)},
			req("/", "X-A", "1", "X-B", "2"), x("1"), true, ""},
		{"a terminal method without input does not", []*routev3.RouteAction_HashPolicy{headerHashPolicy("x-a", true), headerHashPolicy("x-b", false)},
			req("/", "X-B", "2"), x("2"), true, ""},
		{"cookie, quoted", []*routev3.RouteAction_HashPolicy{cookieHashPolicy("session", nil)},
			req("/", "Cookie", `a=b; session="abc"; c=d`), x("abc"), true, ""},
		{"no cookie and no ttl: no key", []*routev3.RouteAction_HashPolicy{cookieHashPolicy("session", nil)}, req("/"), 0, false, ""},
		{"no cookie with a ttl: one is made", []*routev3.RouteAction_HashPolicy{cookieHashPolicy("session", durationpb.New(time.Hour))},
			req("/"), 0, true, `session="`},
		{"source ip", []*routev3.RouteAction_HashPolicy{sourceIP}, req("/"), x("10.0.0.7"), true, ""},
		{"query parameter, undecoded", []*routev3.RouteAction_HashPolicy{query}, req("/a?x=1&user=j%20s"), x("j%20s"), true, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hp, err := compileHashPolicy(tt.policies)
			if err != nil {
				t.Fatal(err)
			}
			key, ok, cookie := hp.Key(tt.req, in)
			if ok != tt.wantOK || (tt.wantCookie == "" && key != tt.wantKey) {
				t.Errorf("key %#x %v, want %#x %v", key, ok, tt.wantKey, tt.wantOK)
			}
			if !strings.HasPrefix(cookie, tt.wantCookie) || (tt.wantCookie == "") != (cookie == "") {
				t.Errorf("Set-Cookie %q, want one starting %q", cookie, tt.wantCookie)
			}
		})
	}
}

func TestGeneratedCookieSticks(t *testing.T) {
	hp, _ := compileHashPolicy([]*routev3.RouteAction_HashPolicy{cookieHashPolicy("session", durationpb.New(90*time.Second))})
	in := HashInput{RemoteAddr: "10.0.0.7:5555"}
	key, _, setCookie := hp.Key(req("/"), in)
	if !strings.HasSuffix(setCookie, `"; Max-Age=90; Path=/; HttpOnly`) {
		t.Fatalf("Set-Cookie %q", setCookie)
	}
	// The client sends the cookie back: same key, no new cookie.
	c := (&http.Response{Header: http.Header{"Set-Cookie": {setCookie}}}).Cookies()[0]
	again, ok, set := hp.Key(req("/", "Cookie", c.Name+"="+c.Value), in)
	if !ok || again != key || set != "" {
		t.Errorf("with the cookie: key %#x (want %#x) and Set-Cookie %q", again, key, set)
	}
}
