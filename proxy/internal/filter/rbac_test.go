package filter

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sluicemesh/sluice/proxy/internal/match"
)

// compileRBACJSON compiles an RBAC filter config written in Envoy's JSON form.
func compileRBACJSON(t testing.TB, js string) *RBAC {
	t.Helper()
	var c rbachttpv3.RBAC
	if err := protojson.Unmarshal([]byte(js), &c); err != nil {
		t.Fatalf("config: %v", err)
	}
	r, err := CompileRBAC(&c)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return r
}

// policy is one RBAC policy in JSON, named as Istio names rule 0 of default/<name>.
func policy(name, perm, id string) string {
	return `"ns[default]-policy[` + name + `]-rule[0]": {"permissions": [` + perm + `], "principals": [` + id + `]}`
}

func rbacJSON(action string, policies ...string) string {
	return `{"rules": {"action": "` + action + `", "policies": {` + strings.Join(policies, ",") + `}}}`
}

const anyJSON = `{"any": true}`

// req is a request from 10.0.0.5 to 127.0.0.6:9080 without TLS.
func req(method, path string, h http.Header) *RBACRequest {
	if h == nil {
		h = http.Header{}
	}
	return &RBACRequest{
		Req:          &match.Request{Authority: "reviews:9080", Method: method, Path: path, Header: h},
		DirectRemote: netip.MustParseAddr("10.0.0.5"), Remote: netip.MustParseAddr("10.0.0.5"),
		Local: netip.MustParseAddrPort("127.0.0.6:9080"),
	}
}

func withPrincipal(q *RBACRequest, p string) *RBACRequest {
	q.Principal, q.Authenticated = p, true
	return q
}

// chain runs RBAC filters in order as the listener does: the first refusal wins.
func chain(q *RBACRequest, fs ...*RBAC) (bool, string) {
	for _, f := range fs {
		if ok, reason := f.Decide(q); !ok {
			return false, reason
		}
	}
	return true, ""
}

func TestRBACMatchKinds(t *testing.T) {
	pp := "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
	tests := []struct {
		name   string
		perm   string
		id     string
		q      *RBACRequest
		wantOK bool // whether the policy matches
	}{
		{"any", anyJSON, anyJSON, req("GET", "/", nil), true},
		{"method", `{"header": {"name": ":method", "stringMatch": {"exact": "GET"}}}`, anyJSON, req("GET", "/", nil), true},
		{"method other", `{"header": {"name": ":method", "stringMatch": {"exact": "GET"}}}`, anyJSON, req("POST", "/", nil), false},
		{"path exact ignores query", `{"urlPath": {"path": {"exact": "/ratings"}}}`, anyJSON, req("GET", "/ratings?x=1", nil), true},
		{"path prefix", `{"urlPath": {"path": {"prefix": "/api/"}}}`, anyJSON, req("GET", "/api/v1", nil), true},
		{"path suffix", `{"urlPath": {"path": {"suffix": ".php"}}}`, anyJSON, req("GET", "/a/b.php", nil), true},
		{"path suffix other", `{"urlPath": {"path": {"suffix": ".php"}}}`, anyJSON, req("GET", "/a/b.html", nil), false},
		{"template one segment", `{"uriTemplate": {"name": "t", "typedConfig": {"@type": "` + uriTemplateTypeURL + `", "pathTemplate": "/api/*/ratings"}}}`, anyJSON, req("GET", "/api/v1/ratings", nil), true},
		{"template one segment is one", `{"uriTemplate": {"name": "t", "typedConfig": {"@type": "` + uriTemplateTypeURL + `", "pathTemplate": "/api/*/ratings"}}}`, anyJSON, req("GET", "/api/v1/x/ratings", nil), false},
		{"template rest", `{"uriTemplate": {"name": "t", "typedConfig": {"@type": "` + uriTemplateTypeURL + `", "pathTemplate": "/api/**"}}}`, anyJSON, req("GET", "/api/v1/x/ratings?q", nil), true},
		{"destination port", `{"destinationPort": 9080}`, anyJSON, req("GET", "/", nil), true},
		{"destination port other", `{"destinationPort": 9090}`, anyJSON, req("GET", "/", nil), false},
		{"destination ip", `{"destinationIp": {"addressPrefix": "127.0.0.0", "prefixLen": 8}}`, anyJSON, req("GET", "/", nil), true},
		{"not method", `{"notRule": {"header": {"name": ":method", "stringMatch": {"exact": "GET"}}}}`, anyJSON, req("GET", "/", nil), false},
		{"and", `{"andRules": {"rules": [{"destinationPort": 9080}, {"header": {"name": ":method", "stringMatch": {"exact": "POST"}}}]}}`, anyJSON, req("GET", "/", nil), false},
		{"or", `{"orRules": {"rules": [{"destinationPort": 9090}, {"header": {"name": ":method", "stringMatch": {"exact": "GET"}}}]}}`, anyJSON, req("GET", "/", nil), true},
		{"host with port", `{"orRules": {"rules": [{"header": {"name": ":authority", "stringMatch": {"exact": "reviews", "ignoreCase": true}}}, {"header": {"name": ":authority", "stringMatch": {"prefix": "reviews:", "ignoreCase": true}}}]}}`, anyJSON, req("GET", "/", nil), true},
		{"sni", `{"requestedServerName": {"suffix": ".local"}}`, anyJSON, func() *RBACRequest { q := req("GET", "/", nil); q.SNI = "reviews.local"; return q }(), true},
		{"principal exact", anyJSON, `{"authenticated": {"principalName": {"exact": "` + pp + `"}}}`, withPrincipal(req("GET", "/", nil), pp), true},
		{"principal without TLS", anyJSON, `{"authenticated": {"principalName": {"exact": "` + pp + `"}}}`, req("GET", "/", nil), false},
		{"any authenticated without TLS", anyJSON, `{"authenticated": {"principalName": {"safeRegex": {"regex": ".+"}}}}`, req("GET", "/", nil), false},
		{"namespace regex", anyJSON, `{"authenticated": {"principalName": {"safeRegex": {"regex": ".*/ns/default/.*"}}}}`, withPrincipal(req("GET", "/", nil), pp), true},
		{"namespace regex other", anyJSON, `{"authenticated": {"principalName": {"safeRegex": {"regex": ".*/ns/prod/.*"}}}}`, withPrincipal(req("GET", "/", nil), pp), false},
		{"not principal", anyJSON, `{"notId": {"authenticated": {"principalName": {"exact": "` + pp + `"}}}}`, withPrincipal(req("GET", "/", nil), pp), false},
		{"not principal without TLS", anyJSON, `{"notId": {"authenticated": {"principalName": {"exact": "` + pp + `"}}}}`, req("GET", "/", nil), true},
		{"ip block", anyJSON, `{"directRemoteIp": {"addressPrefix": "10.0.0.0", "prefixLen": 8}}`, req("GET", "/", nil), true},
		{"ip block other", anyJSON, `{"directRemoteIp": {"addressPrefix": "192.168.0.0", "prefixLen": 16}}`, req("GET", "/", nil), false},
		{"single address", anyJSON, `{"directRemoteIp": {"addressPrefix": "10.0.0.5"}}`, req("GET", "/", nil), true},
		{"remote ip from x-forwarded-for", anyJSON, `{"remoteIp": {"addressPrefix": "203.0.113.0", "prefixLen": 24}}`, func() *RBACRequest {
			q := req("GET", "/", http.Header{"X-Forwarded-For": {"198.51.100.1, 203.0.113.9"}})
			q.Remote = RemoteAddr(q.Req.Header, q.DirectRemote)
			return q
		}(), true},
		{"header", anyJSON, `{"header": {"name": "x-canary", "stringMatch": {"exact": "yes"}}}`, req("GET", "/", http.Header{"X-Canary": {"yes"}}), true},
		{"header missing", anyJSON, `{"header": {"name": "x-canary", "stringMatch": {"exact": "yes"}}}`, req("GET", "/", nil), false},
		{"permission and principal both needed", `{"destinationPort": 9080}`, `{"directRemoteIp": {"addressPrefix": "192.168.0.0", "prefixLen": 16}}`, req("GET", "/", nil), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := compileRBACJSON(t, rbacJSON("DENY", policy("p", tc.perm, tc.id)))
			_, matched := r.Match(tc.q)
			if matched != tc.wantOK {
				t.Errorf("matched = %v, want %v", matched, tc.wantOK)
			}
			ok, reason := r.Decide(tc.q)
			if ok == tc.wantOK {
				t.Errorf("DENY allowed = %v, want %v", ok, !tc.wantOK)
			}
			if !ok && reason != "denied by AuthorizationPolicy default/p rule 0 (ns[default]-policy[p]-rule[0])" {
				t.Errorf("reason = %q", reason)
			}
		})
	}
}

// Istio's evaluation: DENY first, then ALLOW; no ALLOW filter allows what is not denied; an
// ALLOW filter (even without policies) allows only what one of its policies matches; a LOG
// filter never decides.
func TestRBACEvaluationOrder(t *testing.T) {
	get := `{"header": {"name": ":method", "stringMatch": {"exact": "GET"}}}`
	admin := `{"urlPath": {"path": {"prefix": "/admin"}}}`
	deny := compileRBACJSON(t, rbacJSON("DENY", policy("no-admin", admin, anyJSON)))
	allow := compileRBACJSON(t, rbacJSON("ALLOW", policy("viewer", get, anyJSON)))
	denyAll := compileRBACJSON(t, rbacJSON("ALLOW", `"ns[default]-policy[deny-all]-rule[none]": {"permissions": [{"notRule": {"any": true}}], "principals": [{"any": true}]}`))
	audit := compileRBACJSON(t, rbacJSON("LOG", policy("audit", anyJSON, anyJSON)))
	empty := compileRBACJSON(t, `{}`)
	tests := []struct {
		name       string
		fs         []*RBAC
		q          *RBACRequest
		want       bool
		wantReason string
	}{
		{"no policies", nil, req("POST", "/", nil), true, ""},
		{"filter without rules", []*RBAC{empty}, req("POST", "/", nil), true, ""},
		{"no ALLOW: not denied is allowed", []*RBAC{deny}, req("POST", "/x", nil), true, ""},
		{"DENY over ALLOW", []*RBAC{deny, allow}, req("GET", "/admin/x", nil), false, "denied by AuthorizationPolicy default/no-admin rule 0 (ns[default]-policy[no-admin]-rule[0])"},
		{"ALLOW matches", []*RBAC{deny, allow}, req("GET", "/x", nil), true, ""},
		{"ALLOW does not match", []*RBAC{deny, allow}, req("POST", "/x", nil), false, "denied by AuthorizationPolicy default/viewer: no ALLOW rule matches the request"},
		{"deny-all", []*RBAC{denyAll}, req("GET", "/", nil), false, "denied by AuthorizationPolicy default/deny-all: no ALLOW rule matches the request"},
		{"AUDIT decides nothing", []*RBAC{audit}, req("DELETE", "/", nil), true, ""},
		{"AUDIT before DENY", []*RBAC{audit, deny}, req("GET", "/admin", nil), false, "denied by AuthorizationPolicy default/no-admin rule 0 (ns[default]-policy[no-admin]-rule[0])"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ok, reason := chain(tc.q, tc.fs...)
			if ok != tc.want || reason != tc.wantReason {
				t.Errorf("got (%v, %q), want (%v, %q)", ok, reason, tc.want, tc.wantReason)
			}
		})
	}
	if ok, reason := audit.Decide(req("GET", "/", nil)); !ok || reason != "logged by AuthorizationPolicy default/audit rule 0 (ns[default]-policy[audit]-rule[0])" {
		t.Errorf("audit: (%v, %q)", ok, reason)
	}
}

func TestRBACCompileErrors(t *testing.T) {
	tests := []struct{ name, js, want string }{
		{"unsupported action", `{"rules": {"action": "DENY", "policies": {"p": {"permissions": [{"metadata": {}}], "principals": [{"any": true}]}}}}`, `rules.policies["p"].permissions[0].metadata: not supported by sluice-proxy`},
		{"bad cidr", rbacJSON("DENY", policy("p", anyJSON, `{"directRemoteIp": {"addressPrefix": "ten"}}`)), `rules.policies["ns[default]-policy[p]-rule[0]"].principals[0].direct_remote_ip.address_prefix: "ten" is not an IP address`},
		{"bad template", rbacJSON("DENY", policy("p", `{"uriTemplate": {"name": "t", "typedConfig": {"@type": "`+uriTemplateTypeURL+`", "pathTemplate": "/a/**/b"}}}`, anyJSON)), `** must be the last segment`},
		{"no principals", `{"rules": {"action": "ALLOW", "policies": {"p": {"permissions": [{"any": true}]}}}}`, `rules.policies["p"]: a policy needs at least one permission and one principal`},
		{"shadow rules", `{"shadowRules": {}}`, `shadow_rules: not supported by sluice-proxy`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c rbachttpv3.RBAC
			if err := protojson.Unmarshal([]byte(tc.js), &c); err != nil {
				t.Fatal(err)
			}
			_, err := CompileRBAC(&c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// The principal comes from the client certificate of a real mutual TLS handshake.
func TestPeerPrincipalFromTLS(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	leaf := func(uri string) tls.Certificate {
		lk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		u, _ := url.Parse(uri)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			URIs: []*url.URL{u}, DNSNames: []string{"reviews.local"},
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &lk.PublicKey, key)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: lk}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	const client = "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
	c1, c2 := net.Pipe()
	srv := tls.Server(c1, &tls.Config{Certificates: []tls.Certificate{leaf("spiffe://cluster.local/ns/default/sa/bookinfo-reviews")},
		ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool})
	cli := tls.Client(c2, &tls.Config{Certificates: []tls.Certificate{leaf(client)}, RootCAs: pool, ServerName: "reviews.local"})
	done := make(chan error, 1)
	go func() { done <- cli.Handshake() }()
	if err := srv.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	defer cli.Close()
	cs := srv.ConnectionState()
	p, ok := PeerPrincipal(&cs)
	if !ok || p != client {
		t.Fatalf("PeerPrincipal = %q, %v; want %q", p, ok, client)
	}
	q := req("GET", "/", nil)
	q.Principal, q.Authenticated, q.SNI = p, ok, cs.ServerName
	details := compileRBACJSON(t, rbacJSON("ALLOW", policy("details-viewer", `{"header": {"name": ":method", "stringMatch": {"exact": "GET"}}}`,
		`{"authenticated": {"principalName": {"exact": "`+client+`"}}}`)))
	if ok, reason := details.Decide(q); !ok {
		t.Errorf("productpage's certificate refused: %s", reason)
	}
	if ok, _ := details.Decide(req("GET", "/", nil)); ok {
		t.Error("a plaintext caller was allowed by a principal rule")
	}
	if _, ok := PeerPrincipal(nil); ok {
		t.Error("PeerPrincipal(nil) reported a principal")
	}
}

func TestPathTemplate(t *testing.T) {
	tests := []struct {
		tmpl string
		yes  []string
		no   []string
	}{
		{"/api/*/ratings", []string{"/api/v1/ratings"}, []string{"/api//ratings", "/api/v1/ratings/", "/api/v1/x/ratings", "/api/v1"}},
		{"/api/**", []string{"/api/", "/api/a", "/api/a/b/c"}, []string{"/api", "/apix/a"}},
		{"/*/**", []string{"/a/", "/a/b"}, []string{"/", "/a"}},
		{"/", []string{"/"}, []string{"/a", ""}},
		{"/a/{id}/b/{rest=**}", []string{"/a/1/b/c/d"}, []string{"/a/1/c/d"}},
	}
	for _, tc := range tests {
		p, err := CompilePathTemplate(tc.tmpl)
		if err != nil {
			t.Fatalf("%s: %v", tc.tmpl, err)
		}
		for _, s := range tc.yes {
			if !p.Matches(s) {
				t.Errorf("%s does not match %q", tc.tmpl, s)
			}
		}
		for _, s := range tc.no {
			if p.Matches(s) {
				t.Errorf("%s matches %q", tc.tmpl, s)
			}
		}
	}
	for _, bad := range []string{"api/*", "/a/**/b", "/a*", "/{=*}", "/a/{x"} {
		if _, err := CompilePathTemplate(bad); err == nil {
			t.Errorf("%q compiled", bad)
		}
	}
}

// templateRegexp is the reference reading of a template: * is one or more characters other
// than /, ** anything (it is last), the rest literal.
func templateRegexp(tmpl string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString(`(?s)^/`)
	for i, seg := range strings.Split(tmpl[1:], "/") {
		if i > 0 {
			b.WriteString("/")
		}
		switch seg {
		case "*":
			b.WriteString(`[^/]+`)
		case "**":
			b.WriteString(`.*`)
		default:
			b.WriteString(regexp.QuoteMeta(seg))
		}
	}
	b.WriteString(`$`)
	return regexp.MustCompile(b.String())
}

// FuzzPathMatch checks template matching against a regexp reading of the same template.
func FuzzPathMatch(f *testing.F) {
	for _, s := range [][2]string{
		{"/api/*/ratings", "/api/v1/ratings"}, {"/api/**", "/api/a/b"}, {"/a/*/b/**", "/a/x/b/"},
		{"/", "/"}, {"/*", "/a/b"}, {"/x/y", "/x/y?q=1"}, {"/*/*", "//"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, tmpl, path string) {
		p, err := CompilePathTemplate(tmpl)
		// The reference is a regexp, which reads UTF-8; variables are read as * and **.
		if err != nil || strings.ContainsAny(tmpl, "{}") || !utf8.ValidString(tmpl) || !utf8.ValidString(path) {
			return
		}
		got := p.Matches(path)
		want := templateRegexp(tmpl).MatchString(path)
		if got != want {
			t.Fatalf("template %q, path %q: Matches = %v, reference %v", tmpl, path, got, want)
		}
	})
}

// BenchmarkRBAC measures deciding a request against an ALLOW filter of n Istio-shaped
// policies (principal, method and path prefix each), where only the last one matches: the
// whole list is walked, the worst case.
func BenchmarkRBAC(b *testing.B) {
	pp := "spiffe://cluster.local/ns/default/sa/bookinfo-productpage"
	for _, n := range []int{10, 100} {
		b.Run(strconv.Itoa(n)+"-policies", func(b *testing.B) {
			var ps []string
			for i := range n {
				perm := `{"andRules": {"rules": [{"orRules": {"rules": [{"header": {"name": ":method", "stringMatch": {"exact": "GET"}}}]}},
					{"orRules": {"rules": [{"urlPath": {"path": {"prefix": "/api/v` + strconv.Itoa(i) + `/"}}}]}}]}}`
				id := `{"orIds": {"ids": [{"authenticated": {"principalName": {"exact": "` + pp + `"}}}]}}`
				ps = append(ps, policy("p"+strconv.Itoa(1000+i), perm, id))
			}
			r := compileRBACJSON(b, rbacJSON("ALLOW", ps...))
			q := withPrincipal(req("GET", "/api/v"+strconv.Itoa(n-1)+"/products?x=1", nil), pp)
			if ok, reason := r.Decide(q); !ok {
				b.Fatalf("refused: %s", reason)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				r.Decide(q)
			}
		})
	}
}

// BenchmarkRateLimit measures taking a token from a per-header bucket.
func BenchmarkRateLimit(b *testing.B) {
	l := compileRateLimitJSON(b, strings.Replace(perUser, `"maxTokens": 2`, `"maxTokens": 1000000000`, 1))
	r := rlReq("/api/v1/products", "jason")
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		l.Check(r, now)
	}
}
