package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/internal/pgtest"
)

// authzTask returns document i (0-based) of Istio's authorization task (authz-http):
// deny-all, productpage-viewer, details-viewer, reviews-viewer, ratings-viewer.
func authzTask(t *testing.T, i int) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "server", "internal", "xds", "testdata", "task-authz-http.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(b), "\n---\n")
	return docs[i]
}

// answer is what one request got.
type answer struct {
	status int
	body   string
	header http.Header
}

func do(t *testing.T, c *http.Client, method, rawURL string, form url.Values) answer {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, rawURL, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b), resp.Header}
}

// noRedirects is a client that shows redirects rather than following them.
func noRedirects() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Timeout: 20 * time.Second, Jar: jar, Transport: &http.Transport{Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// TestAuthorizationBookinfo follows Istio's authorization task on Bookinfo through the
// ingress gateway, for the steps that need no workload identity: deny-all, then
// productpage-viewer (GET only), then rules by path and by method on other workloads.
func TestAuthorizationBookinfo(t *testing.T) {
	cp := startServer(t, pgtest.New(t, pgtest.Template{}))
	m := startBookinfo(t, cp)
	cp.apply(t, sample(t, "bookinfo/networking/bookinfo-gateway.yaml"))
	cp.apply(t, sample(t, "bookinfo/networking/destination-rule-all.yaml"))
	cp.apply(t, sample(t, "bookinfo/networking/virtual-service-reviews-v3.yaml"))
	gw := "http://" + m.gateway + ":8080"
	c := noRedirects()

	if a := do(t, c, http.MethodGet, gw+"/productpage", nil); a.status != http.StatusOK {
		t.Fatalf("before any policy: /productpage %d", a.status)
	}

	t.Run("deny-all", func(t *testing.T) {
		cp.apply(t, authzTask(t, 0))
		a := do(t, c, http.MethodGet, gw+"/productpage", nil)
		if a.status != http.StatusForbidden || a.body != "RBAC: access denied" {
			t.Fatalf("/productpage: %d %q, want 403 \"RBAC: access denied\"", a.status, a.body)
		}
		if r := a.header.Get("X-Sluice-Reason"); r != "denied by AuthorizationPolicy default/deny-all: no ALLOW rule matches the request" {
			t.Errorf("x-sluice-reason %q", r)
		}
	})

	t.Run("productpage-viewer", func(t *testing.T) {
		cp.apply(t, authzTask(t, 1))
		a := do(t, c, http.MethodGet, gw+"/productpage", nil)
		if a.status != http.StatusOK {
			t.Fatalf("/productpage: %d %q", a.status, a.body)
		}
		for _, want := range []string{"Simple Bookstore App", "Sorry, product details are currently unavailable for this book.",
			"Sorry, product reviews are currently unavailable for this book."} {
			if !strings.Contains(a.body, want) {
				t.Errorf("the page lacks %q", want)
			}
		}
		// The API shows the peers' own refusals.
		for _, p := range []string{"/api/v1/products/0", "/api/v1/products/0/reviews"} {
			if a := do(t, c, http.MethodGet, gw+p, nil); a.status != http.StatusForbidden {
				t.Errorf("%s: %d %q, want the peer's 403", p, a.status, a.body)
			}
		}
		if a := do(t, c, http.MethodPost, gw+"/login", url.Values{"username": {"jason"}}); a.status != http.StatusForbidden || a.body != "RBAC: access denied" {
			t.Errorf("POST /login: %d %q, want 403", a.status, a.body)
		}
	})

	t.Run("rules by method and path without identities", func(t *testing.T) {
		cp.apply(t, `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-get, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  rules:
  - to: [{operation: {methods: [GET], paths: ["/reviews/{*}"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: ratings-get, namespace: default}
spec:
  selector: {matchLabels: {app: ratings}}
  rules:
  - to: [{operation: {methods: [GET], paths: ["/ratings/*"]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-reviews-api, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  action: DENY
  rules:
  - to: [{operation: {paths: ["/api/v1/products/{*}/reviews"]}}]
`)
		a := do(t, c, http.MethodGet, gw+"/productpage", nil)
		if a.status != http.StatusOK || strings.Contains(a.body, "Sorry, product reviews are currently unavailable") || !strings.Contains(a.body, "Sorry, product details are currently unavailable") {
			t.Errorf("/productpage: %d; want reviews shown and details still refused", a.status)
		}
		if !strings.Contains(a.body, `data-color="red"`) {
			t.Errorf("reviews v3 shows no red stars although ratings allows GET")
		}
		// The DENY policy on productpage's API wins over productpage-viewer's ALLOW.
		a = do(t, c, http.MethodGet, gw+"/api/v1/products/0/reviews", nil)
		if a.status != http.StatusForbidden || a.body != "RBAC: access denied" {
			t.Errorf("/api/v1/products/0/reviews: %d %q, want 403 from the DENY policy", a.status, a.body)
		}
		if r := a.header.Get("X-Sluice-Reason"); !strings.HasPrefix(r, "denied by AuthorizationPolicy default/no-reviews-api rule 0") {
			t.Errorf("x-sluice-reason %q", r)
		}
		if a := do(t, c, http.MethodGet, gw+"/api/v1/products", nil); a.status != http.StatusOK {
			t.Errorf("/api/v1/products: %d, want 200 (not under the DENY path)", a.status)
		}
	})
}

// TestAuthorizationByPrincipal is the rest of Istio's task: details-viewer and
// reviews-viewer allow only productpage's identity, ratings-viewer only reviews'. It needs
// sidecars holding workload certificates and speaking mutual TLS to each other.
func TestAuthorizationByPrincipal(t *testing.T) {
	m := startSecuredMesh(t)
	ns := func(sa string) string {
		tok := strings.TrimSpace(m.ctl.ok("", "token", "create", "workload", "--namespace", "istio-system", "--service-account", sa, "--expires", "1h"))
		file := filepath.Join(m.dir, "istio-system-"+sa+".token")
		if err := os.WriteFile(file, []byte(tok+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		return file
	}
	apps := map[string]*workload{}
	for _, w := range []struct{ service, version string }{
		{"ratings", "v1"}, {"details", "v1"}, {"reviews", "v2"}, {"productpage", "v1"},
	} {
		sa := "bookinfo-" + w.service
		file, _ := m.token(t, sa)
		addr := nextAddr()
		name := w.service + "-" + w.version
		app := start(t, name, "bookinfo", []string{w.service, "--addr", addr + ":19080", "--version", w.version, "--name", name},
			"HTTP_PROXY=http://"+addr+":15001", "NO_PROXY=")
		sc := startSidecar(t, m.cp, addr, w.service, w.version, append(m.proxyArgs(file), "--inbound", "9080=19080", "--service-account", sa)...)
		apps[name] = &workload{addr: addr, app: app, sidecar: sc}
	}
	gateway := nextAddr()
	p := start(t, "gateway", "sluice-proxy", append(m.proxyArgs(ns("istio-ingressgateway")), "--mode", "gateway",
		"--namespace", "istio-system", "--service-account", "istio-ingressgateway",
		"--labels", "istio=ingressgateway,app=istio-ingressgateway", "--address", gateway, "--log-level", proxyLogLevel))
	eventually(t, 30*time.Second, "gateway ready", func() error {
		if p.exited() {
			t.Fatalf("gateway exited: %v\n%s", p.err, p.out.text())
		}
		return httpOK("http://" + gateway + ":15000/ready")
	})
	for _, w := range apps {
		waitReady(t, m.cp, w.addr)
	}
	for name, w := range apps {
		if c := readCerts(t, w.addr); !c.Issued {
			t.Skipf("sidecar %s holds no workload certificate (/certs: %+v): principal rules need sidecars with certificates and mutual TLS between them", name, c)
		}
	}
	m.cp.apply(t, sample(t, "bookinfo/networking/bookinfo-gateway.yaml"))
	m.cp.apply(t, sample(t, "bookinfo/networking/destination-rule-all.yaml"))
	m.cp.apply(t, authzTask(t, 0))
	m.cp.apply(t, authzTask(t, 1))
	gw := "http://" + gateway + ":8080"
	c := noRedirects()
	page := func() string {
		a := do(t, c, http.MethodGet, gw+"/productpage", nil)
		if a.status != http.StatusOK {
			t.Fatalf("/productpage: %d %q", a.status, a.body)
		}
		return a.body
	}
	if b := page(); !strings.Contains(b, "Sorry, product details are currently unavailable") {
		t.Fatalf("productpage-viewer alone: details shown")
	}
	// Principals exist only over mutual TLS between sidecars. Probe it with details under
	// STRICT: a plaintext caller must be refused, and productpage must still reach details
	// (which answers its 403, not a connection failure).
	m.cp.apply(t, `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: details-strict, namespace: default}
spec:
  selector: {matchLabels: {app: details}}
  mtls: {mode: STRICT}
`)
	if resp, err := client.Get("http://" + apps["details-v1"].addr + ":9080/details/0"); err == nil {
		resp.Body.Close()
		t.Skipf("a plaintext caller still reaches details under STRICT (%d): principal rules need inbound listeners that terminate mutual TLS with the workload certificate", resp.StatusCode)
	}
	if a := do(t, c, http.MethodGet, gw+"/api/v1/products/0", nil); a.status != http.StatusForbidden {
		t.Skipf("productpage reaches details under STRICT with %d %q, not the RBAC 403: principal rules need sidecars that call each other over mutual TLS", a.status, a.body)
	}

	t.Run("details-viewer and reviews-viewer", func(t *testing.T) {
		m.cp.apply(t, authzTask(t, 2))
		m.cp.apply(t, authzTask(t, 3))
		b := page()
		if strings.Contains(b, "Sorry, product details are currently unavailable") || strings.Contains(b, "Sorry, product reviews are currently unavailable") {
			t.Errorf("details or reviews still refused to productpage's identity")
		}
		if !strings.Contains(b, "Ratings service is currently unavailable") {
			t.Errorf("reviews v2 shows ratings although ratings allows nobody yet")
		}
		// reviews has no STRICT policy: a plaintext caller gets through to its RBAC filter,
		// which refuses it for want of productpage's identity.
		a := do(t, c, http.MethodGet, "http://"+apps["reviews-v2"].addr+":9080/reviews/0", nil)
		if a.status != http.StatusForbidden || a.body != "RBAC: access denied" {
			t.Errorf("plaintext call to reviews: %d %q, want 403", a.status, a.body)
		}
	})

	t.Run("ratings-viewer", func(t *testing.T) {
		m.cp.apply(t, authzTask(t, 4))
		if b := page(); strings.Contains(b, "Ratings service is currently unavailable") || !strings.Contains(b, `data-color="black"`) {
			t.Errorf("reviews v2 shows no black stars: ratings still refused to reviews' identity")
		}
	})
}

// TestRateLimitBurst applies a RateLimit of 5 requests a minute to a workload: 5 requests
// pass, the next is answered 429 with Retry-After and the RL flag, which the sidecar's
// istio_requests_total reports.
func TestRateLimitBurst(t *testing.T) {
	cp := startServer(t, pgtest.New(t, pgtest.Template{}))
	w := startWorkload(t, cp, "limited", "v1")
	other := startWorkload(t, cp, "unlimited", "v1")
	cp.apply(t, `apiVersion: sluice.dev/v1alpha1
kind: RateLimit
metadata: {name: five-a-minute, namespace: default}
spec:
  selector: {matchLabels: {app: limited}}
  requestsPerUnit: 5
  unit: minute
`)
	target := "http://" + w.addr + ":8080/"
	for i := range 5 {
		if a := do(t, client, http.MethodGet, target, nil); a.status != http.StatusOK {
			t.Fatalf("request %d within the limit: %d %q", i+1, a.status, a.body)
		}
	}
	a := do(t, client, http.MethodGet, target, nil)
	if a.status != http.StatusTooManyRequests || a.body != "local_rate_limited" {
		t.Fatalf("request 6: %d %q, want 429 local_rate_limited", a.status, a.body)
	}
	ra, err := strconv.Atoi(a.header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > 60 {
		t.Errorf("Retry-After %q, want seconds until a token (1-60)", a.header.Get("Retry-After"))
	}
	if got := a.header.Get("X-Sluice-Ratelimit"); got != "default/five-a-minute" {
		t.Errorf("x-sluice-ratelimit %q", got)
	}
	// Another workload is not limited.
	for i := range 10 {
		if a := do(t, client, http.MethodGet, "http://"+other.addr+":8080/", nil); a.status != http.StatusOK {
			t.Fatalf("unlimited workload, request %d: %d", i+1, a.status)
		}
	}
	var limited, flagged int64
	for _, s := range scrapeRequests(t, w.addr) {
		if s.labels["reporter"] == "destination" && s.labels["response_code"] == "429" {
			limited += s.value
			if s.labels["response_flags"] == "RL" {
				flagged += s.value
			}
		}
	}
	if limited != 1 || flagged != 1 {
		t.Errorf("istio_requests_total: %d answers 429, %d with response_flags RL; want 1 and 1", limited, flagged)
	}
	if err := httpOK(fmt.Sprintf("http://%s:15000/ready", w.addr)); err != nil {
		t.Error(err)
	}
}
