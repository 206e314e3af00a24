package api

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sluicemesh/sluice/internal/pgtest"
	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/changes"
	"github.com/sluicemesh/sluice/server/internal/store"
	"github.com/sluicemesh/sluice/server/internal/xds"
)

// TestMain is the api package's one TestMain: tests get their own database from pgtest.
func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var migrated = pgtest.Template{Name: "migrated", Setup: store.Migrate}

// fastParams keep password hashing cheap in tests.
var fastParams = auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

const adminPassword = "admin password for tests"

// testClock is the auth service's time in tests, settable.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

type noProxies struct{}

func (noProxies) Proxies() []xds.ProxyInfo { return nil }
func (noProxies) Revision() int64          { return 0 }
func (noProxies) Problems() []xds.Problem  { return nil }

// env is a control plane's HTTP surface on a database of its own, with the admin bootstrapped.
type env struct {
	t     *testing.T
	srv   *httptest.Server
	st    *store.Store
	dbURL string
	clock *testClock
	// api is the handler NewServer returned, for tests that inspect its routes.
	api http.Handler
}

type envOptions struct {
	tls bool
}

// routeOperatorWrite is a route, beside the real ones, that needs an operator to write; it
// answers 200.
const routeOperatorWrite = "/test/operator-write"

func newEnv(t *testing.T, opts ...envOptions) *env {
	t.Helper()
	var o envOptions
	if len(opts) > 0 {
		o = opts[0]
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(logWriter{t}, nil))
	url := pgtest.New(t, migrated)
	st, err := store.Open(ctx, url, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	clk := &testClock{t: time.Now()}
	svc, err := auth.NewService(st, auth.Options{Params: fastParams, Now: clk.Now, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Bootstrap(ctx, adminPassword, io.Discard); err != nil {
		t.Fatal(err)
	}
	api := NewServer(Deps{
		Log: log, DB: st, XDSServing: func() bool { return true }, Proxies: noProxies{},
		Console: fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>Sluice</title>")}},
		Auth:    svc, Audit: st, Config: st, Changes: changes.New(st),
	})
	mux := http.NewServeMux()
	mux.Handle("/", api)
	mux.Handle(routeOperatorWrite, authenticate(svc, log)(requireRole(auth.RoleOperator)(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"by": principal(r).Username})
	}))))
	e := &env{t: t, st: st, dbURL: url, clock: clk, api: api}
	if o.tls {
		e.srv = httptest.NewTLSServer(mux)
	} else {
		e.srv = httptest.NewServer(mux)
	}
	t.Cleanup(e.srv.Close)
	return e
}

// client speaks to the env as a browser (cookie jar and CSRF token) or a script (bearer token).
type client struct {
	e     *env
	hc    *http.Client
	csrf  string
	token string
	// noCSRF leaves X-CSRF-Token off writes.
	noCSRF bool
}

func (e *env) browser() *client {
	jar, _ := cookiejar.New(nil)
	hc := *e.srv.Client() // a copy: the server's client is shared
	hc.Jar = jar
	return &client{e: e, hc: &hc}
}

func (e *env) script(token string) *client {
	hc := *e.srv.Client()
	return &client{e: e, hc: &hc, token: token}
}

// signedIn returns a browser signed in as user.
func (e *env) signedIn(user, password string) *client {
	e.t.Helper()
	c := e.browser()
	var v loginView
	if res := c.do("POST", "/api/v1/login", map[string]string{"username": user, "password": password}, &v); res.status != http.StatusOK {
		e.t.Fatalf("login %s: %d %s", user, res.status, res.detail)
	}
	c.csrf = v.CSRFToken
	return c
}

func (e *env) admin() *client { return e.signedIn("admin", adminPassword) }

// addUser creates a user through the API as admin.
func (e *env) addUser(admin *client, name, password string, role auth.Role) {
	e.t.Helper()
	res := admin.do("POST", "/api/v1/users", map[string]string{"username": name, "password": password, "role": string(role)}, nil)
	if res.status != http.StatusCreated {
		e.t.Fatalf("create user %s: %d %s", name, res.status, res.detail)
	}
}

type result struct {
	status int
	header http.Header
	body   []byte
	// detail is a problem's detail.
	detail string
}

// do sends a request with a JSON body (a string or []byte is sent as is), decoding a 2xx
// answer into out.
func (c *client) do(method, path string, body any, out any) result {
	c.e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			c.e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.e.srv.URL+path, rd)
	if err != nil {
		c.e.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.csrf != "" && !c.noCSRF {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	return c.send(req, out)
}

func (c *client) send(req *http.Request, out any) result {
	c.e.t.Helper()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.e.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := result{status: resp.StatusCode, header: resp.Header, body: b}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/problem+json") {
		var p struct {
			Detail string `json:"detail"`
			Status int    `json:"status"`
		}
		if err := json.Unmarshal(b, &p); err != nil || p.Status != resp.StatusCode {
			c.e.t.Errorf("%s %s: problem %q does not parse or has the wrong status", req.Method, req.URL.Path, b)
		}
		r.detail = p.Detail
	}
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(b, out); err != nil {
			c.e.t.Fatalf("%s %s: decode %q: %v", req.Method, req.URL.Path, b, err)
		}
	}
	return r
}

func wantStatus(t *testing.T, what string, r result, status int, detailPart string) {
	t.Helper()
	if r.status != status {
		t.Errorf("%s: status %d (%s), want %d", what, r.status, r.body, status)
		return
	}
	if detailPart != "" && !strings.Contains(r.detail, detailPart) {
		t.Errorf("%s: detail %q does not say %q", what, r.detail, detailPart)
	}
}

func sessionCookie(t *testing.T, h http.Header) *http.Cookie {
	t.Helper()
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == "sluice_session" {
			return c
		}
	}
	t.Fatalf("no sluice_session cookie in %v", h.Values("Set-Cookie"))
	return nil
}

func TestLoginSetsSessionCookie(t *testing.T) {
	t.Parallel()
	for _, tls := range []bool{false, true} {
		name := map[bool]string{false: "http", true: "https"}[tls]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{tls: tls})
			c := e.browser()
			var v loginView
			res := c.do("POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword}, &v)
			wantStatus(t, "login", res, http.StatusOK, "")
			if v.Username != "admin" || v.Role != auth.RoleAdmin || len(v.CSRFToken) < 40 {
				t.Errorf("login answered %+v", v)
			}
			ck := sessionCookie(t, res.header)
			if !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Secure != tls {
				t.Errorf("cookie %s: want HttpOnly, SameSite=Strict, Path=/, Secure=%v", ck, tls)
			}
			if ck.MaxAge != int(auth.DefaultSessionTTL/time.Second) {
				t.Errorf("cookie Max-Age %d, want the session's %v", ck.MaxAge, auth.DefaultSessionTTL)
			}
			if res.header.Get("Cache-Control") != "no-store" {
				t.Errorf("login answer may be cached: Cache-Control %q", res.header.Get("Cache-Control"))
			}

			var who whoamiView
			wantStatus(t, "whoami", c.do("GET", "/api/v1/whoami", nil, &who), http.StatusOK, "")
			if who != (whoamiView{Username: "admin", Role: auth.RoleAdmin, CSRFToken: v.CSRFToken, AuthMethod: auth.MethodSession}) {
				t.Errorf("whoami %+v", who)
			}
		})
	}
}

func TestLoginFailures(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.browser()
	wrong := c.do("POST", "/api/v1/login", map[string]string{"username": "admin", "password": "not the password"}, nil)
	wantStatus(t, "wrong password", wrong, http.StatusUnauthorized, "wrong username or password")
	unknown := c.do("POST", "/api/v1/login", map[string]string{"username": "ghost", "password": "not the password"}, nil)
	wantStatus(t, "unknown user", unknown, http.StatusUnauthorized, "")
	if unknown.detail != wrong.detail {
		t.Errorf("unknown user says %q, wrong password %q: want the same", unknown.detail, wrong.detail)
	}
	if len((&http.Response{Header: wrong.header}).Cookies()) != 0 {
		t.Error("a failed login set a cookie")
	}

	tests := []struct {
		name, contentType, body string
		status                  int
		detail                  string
	}{
		{"form post", "application/x-www-form-urlencoded", "username=admin&password=x", http.StatusUnsupportedMediaType, "Content-Type: application/json"},
		{"no content type", "", `{"username":"admin","password":"x"}`, http.StatusUnsupportedMediaType, "application/json"},
		{"missing password", "application/json", `{"username":"admin"}`, http.StatusBadRequest, "required"},
		{"unknown field", "application/json", `{"username":"admin","password":"x","remember":true}`, http.StatusBadRequest, "remember"},
		{"not json", "application/json", `username=admin`, http.StatusBadRequest, ""},
		{"charset is fine", "application/json; charset=utf-8", `{"username":"admin","password":"wrong one"}`, http.StatusUnauthorized, "wrong username or password"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/login", strings.NewReader(tt.body))
			if tt.contentType != "" {
				req.Header.Set("Content-Type", tt.contentType)
			}
			wantStatus(t, tt.name, c.send(req, nil), tt.status, tt.detail)
		})
	}
}

func TestLoginRateLimited(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.browser()
	for i := range 5 {
		res := c.do("POST", "/api/v1/login", map[string]string{"username": "admin", "password": "guess " + string(rune('a'+i))}, nil)
		wantStatus(t, "guess", res, http.StatusUnauthorized, "")
	}
	res := c.do("POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword}, nil)
	wantStatus(t, "6th attempt", res, http.StatusTooManyRequests, "too many sign-in attempts")
	if ra := res.header.Get("Retry-After"); ra == "" || ra == "0" || strings.Trim(ra, "0123456789") != "" {
		t.Errorf("Retry-After %q, want a positive number of seconds", ra)
	}
	// Waiting as told is enough.
	e.clock.Add(time.Minute)
	wantStatus(t, "after waiting", c.do("POST", "/api/v1/login", map[string]string{"username": "admin", "password": adminPassword}, nil), http.StatusOK, "")
}

func TestUnauthenticatedRequestsAreRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	anon := e.browser()
	for _, r := range []struct{ method, path string }{
		{"GET", "/api/v1/whoami"}, {"GET", "/api/v1/proxies"}, {"GET", "/api/v1/tokens"},
		{"POST", "/api/v1/tokens"}, {"GET", "/api/v1/users"}, {"DELETE", "/api/v1/users/admin"},
		{"GET", "/api/v1/audit"}, {"POST", "/api/v1/logout"}, {"POST", routeOperatorWrite},
	} {
		res := anon.do(r.method, r.path, nil, nil)
		wantStatus(t, r.method+" "+r.path, res, http.StatusUnauthorized, "not signed in")
		if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s %s: WWW-Authenticate %q, want Bearer", r.method, r.path, res.header.Get("WWW-Authenticate"))
		}
	}

	for _, tt := range []struct{ name, header, detail string }{
		{"basic auth", "Basic YWRtaW46eA==", `"Bearer <token>"`},
		{"malformed token", "Bearer hunter2", "malformed"},
		{"unknown token", "Bearer slc_" + strings.Repeat("A", 43), "unknown"},
	} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/whoami", nil)
		req.Header.Set("Authorization", tt.header)
		wantStatus(t, tt.name, anon.send(req, nil), http.StatusUnauthorized, tt.detail)
	}

	// A dead session cookie is refused and cleared.
	req, _ := http.NewRequest("GET", e.srv.URL+"/api/v1/whoami", nil)
	req.AddCookie(&http.Cookie{Name: "sluice_session", Value: strings.Repeat("x", 43)})
	res := anon.send(req, nil)
	wantStatus(t, "stale cookie", res, http.StatusUnauthorized, "sign in again")
	if ck := sessionCookie(t, res.header); ck.MaxAge >= 0 || ck.Value != "" {
		t.Errorf("stale cookie answered with %s, want it cleared", ck)
	}

	// Public routes.
	for _, path := range []string{"/healthz", "/readyz", "/", "/services/reviews"} {
		if res := anon.do("GET", path, nil, nil); res.status != http.StatusOK {
			t.Errorf("GET %s without credentials: %d, want 200", path, res.status)
		}
	}
}

func TestSessionExpiresAndLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.admin()
	e.clock.Add(auth.DefaultSessionTTL)
	wantStatus(t, "after 12h", c.do("GET", "/api/v1/whoami", nil, nil), http.StatusUnauthorized, "session expired: sign in again")

	c = e.admin()
	wantStatus(t, "logout", c.do("POST", "/api/v1/logout", nil, nil), http.StatusNoContent, "")
	wantStatus(t, "after logout", c.do("GET", "/api/v1/whoami", nil, nil), http.StatusUnauthorized, "")

	// Signing out is for sessions; a token says how to revoke it instead.
	tok := e.createToken(e.admin(), map[string]string{"name": "x"})
	wantStatus(t, "logout with a token", e.script(tok.Token).do("POST", "/api/v1/logout", nil, nil), http.StatusBadRequest, "DELETE /api/v1/tokens/"+tok.ID)
}

func TestCSRF(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.admin()
	body := map[string]string{"name": "ci"}

	c.noCSRF = true
	wantStatus(t, "cookie write without X-CSRF-Token", c.do("POST", "/api/v1/tokens", body, nil), http.StatusForbidden, "missing X-CSRF-Token")
	wantStatus(t, "cookie read without X-CSRF-Token", c.do("GET", "/api/v1/tokens", nil, nil), http.StatusOK, "")

	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/tokens", strings.NewReader(`{"name":"ci"}`))
	req.Header.Set("X-CSRF-Token", strings.Repeat("A", 43))
	wantStatus(t, "cookie write with a wrong X-CSRF-Token", c.send(req, nil), http.StatusForbidden, "does not match")

	// Another session's token does not do either.
	other := e.admin()
	req, _ = http.NewRequest("DELETE", e.srv.URL+"/api/v1/users/nobody", nil)
	req.Header.Set("X-CSRF-Token", other.csrf)
	wantStatus(t, "another session's X-CSRF-Token", c.send(req, nil), http.StatusForbidden, "does not match")

	c.noCSRF = false
	var tok struct{ ID, Token string }
	wantStatus(t, "cookie write with X-CSRF-Token", c.do("POST", "/api/v1/tokens", body, &tok), http.StatusCreated, "")

	// A bearer token needs no CSRF token: no browser sends it by itself.
	s := e.script(tok.Token)
	wantStatus(t, "bearer write", s.do("POST", "/api/v1/users", map[string]string{"username": "vera", "password": "viewer password!"}, nil), http.StatusCreated, "")
	wantStatus(t, "bearer write", s.do("POST", routeOperatorWrite, nil, nil), http.StatusOK, "")
}
