package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/internal/pgtest"
)

// mesh is Bookinfo (and httpbin) with a sidecar per workload and an ingress gateway.
type bookinfoMesh struct {
	cp      *controlPlane
	gateway string // the ingress gateway's address
	apps    map[string]*workload
}

// startBookinfo starts Bookinfo's six workloads, httpbin v1 and v2, each with its sidecar,
// and the ingress gateway (labels istio=ingressgateway).
func startBookinfo(t *testing.T, cp *controlPlane) *bookinfoMesh {
	t.Helper()
	m := &bookinfoMesh{cp: cp, apps: map[string]*workload{}}
	for _, w := range []struct{ service, version string }{
		{"ratings", "v1"}, {"details", "v1"}, {"reviews", "v1"}, {"reviews", "v2"}, {"reviews", "v3"}, {"productpage", "v1"},
	} {
		addr := nextAddr()
		name := w.service + "-" + w.version
		app := start(t, name, "bookinfo", []string{w.service, "--addr", addr + ":19080", "--version", w.version, "--name", name},
			"HTTP_PROXY=http://"+addr+":15001", "NO_PROXY=")
		sc := startSidecar(t, cp, addr, w.service, w.version, "--inbound", "9080=19080", "--service-account", "bookinfo-"+w.service)
		m.apps[name] = &workload{addr: addr, app: app, sidecar: sc}
	}
	for _, v := range []string{"v1", "v2"} {
		addr := nextAddr()
		app := start(t, "httpbin-"+v, "httpbin", []string{"--addr", addr + ":18000", "--version", v}, "HTTP_PROXY=http://"+addr+":15001")
		sc := startSidecar(t, cp, addr, "httpbin", v, "--inbound", "8000=18000")
		m.apps["httpbin-"+v] = &workload{addr: addr, app: app, sidecar: sc}
	}
	m.gateway = nextAddr()
	p := start(t, "gateway", "sluice-proxy", []string{"--control-plane", cp.xdsAddr, "--mode", "gateway",
		"--namespace", "istio-system", "--labels", "istio=ingressgateway,app=istio-ingressgateway",
		"--address", m.gateway, "--log-level", proxyLogLevel})
	eventually(t, 30*time.Second, "gateway ready", func() error {
		if p.exited() {
			t.Fatalf("gateway exited: %v\n%s", p.err, p.out.text())
		}
		return httpOK("http://" + m.gateway + ":15000/ready")
	})
	addrs := make([]string, 0, len(m.apps))
	for _, w := range m.apps {
		addrs = append(addrs, w.addr)
	}
	waitReady(t, cp, addrs...)
	return m
}

// sample reads one of Istio's sample files.
func sample(t *testing.T, rel string) string {
	t.Helper()
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(root, "server", "internal", "config", "testdata", "istio", rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// apply applies YAML through the REST API as admin and waits until every connected proxy
// has acknowledged the resulting revision (read from /api/v1/proxies, not slept on).
func (cp *controlPlane) apply(t *testing.T, yaml string) {
	t.Helper()
	cp.waitSynced(t, revisionOf(t, cp.write(t, http.MethodPost, "/api/v1/apply", "application/yaml", yaml, http.StatusOK)))
}

// setTraffic moves a service's canary slider through the REST API and returns the revision.
func (cp *controlPlane) setTraffic(t testing.TB, service, body string) int64 {
	t.Helper()
	return revisionOf(t, cp.write(t, http.MethodPut, "/api/v1/namespaces/default/services/"+service+"/traffic", "application/json", body, http.StatusOK))
}

// waitSynced waits until every connected proxy has applied configuration revision rev.
func (cp *controlPlane) waitSynced(t *testing.T, rev int64) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("every proxy at revision %d", rev), func() error {
		var pl struct {
			Revision int64 `json:"revision"`
			Proxies  []struct {
				NodeID         string            `json:"nodeId"`
				Connected      bool              `json:"connected"`
				SyncedRevision int64             `json:"syncedRevision"`
				Nacks          map[string]string `json:"nacks"`
			} `json:"proxies"`
		}
		if _, err := getJSONWith(cp.api, "http://"+cp.httpAddr+"/api/v1/proxies", &pl); err != nil {
			return err
		}
		if pl.Revision < rev {
			return fmt.Errorf("server serves revision %d", pl.Revision)
		}
		for _, p := range pl.Proxies {
			if len(p.Nacks) > 0 {
				t.Fatalf("proxy %s rejected the configuration: %v", p.NodeID, p.Nacks)
			}
			if p.Connected && p.SyncedRevision < rev {
				return fmt.Errorf("proxy %s at revision %d", p.NodeID, p.SyncedRevision)
			}
		}
		return nil
	})
}

// reviewsResult is what one request for the product's reviews showed.
type reviewsResult struct {
	Podname string
	Color   string // "", "black" or "red"
	Error   string // the rating's error text, when ratings failed
}

// bookinfoClient calls Bookinfo through the ingress gateway, signed in as user when not empty.
func (m *bookinfoMesh) client(t *testing.T, user string) *http.Client {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: nil},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if user != "" {
		resp, err := c.PostForm("http://"+m.gateway+":8080/login", url.Values{"username": {user}})
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound {
			t.Fatalf("login as %s through the gateway: %d", user, resp.StatusCode)
		}
	}
	return c
}

func (m *bookinfoMesh) reviews(t *testing.T, c *http.Client) reviewsResult {
	t.Helper()
	resp, err := c.Get("http://" + m.gateway + ":8080/api/v1/products/0/reviews")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("reviews through the gateway: %d %s (reason %q)", resp.StatusCode, b, resp.Header.Get("x-sluice-reason"))
	}
	var body struct {
		Podname string `json:"podname"`
		Reviews []struct {
			Rating *struct {
				Color string `json:"color"`
				Error string `json:"error"`
			} `json:"rating"`
		} `json:"reviews"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	r := reviewsResult{Podname: body.Podname}
	if len(body.Reviews) > 0 && body.Reviews[0].Rating != nil {
		r.Color = body.Reviews[0].Rating.Color
		r.Error = body.Reviews[0].Rating.Error
	}
	return r
}

// colors counts the star colours of n requests.
func (m *bookinfoMesh) colors(t *testing.T, c *http.Client, n int) map[string]int {
	t.Helper()
	out := map[string]int{}
	for range n {
		out[m.reviews(t, c).Color]++
	}
	return out
}

// within checks that color's share of counts is want percent, give or take 4.5 standard
// deviations of a share drawn from that many requests (so a correct split fails about once in
// 150,000 runs), and at least 2 points. With 1,000 requests that is ± 7.1 points at 50 % and
// ± 5.7 at 80 %, close enough to tell the Bookinfo samples' splits apart.
func within(t *testing.T, what string, counts map[string]int, color string, want float64) {
	t.Helper()
	total := 0
	for _, n := range counts {
		total += n
	}
	p := want / 100
	tol := max(4.5*100*math.Sqrt(p*(1-p)/float64(total)), 2)
	got := 100 * float64(counts[color]) / float64(total)
	if math.Abs(got-want) > tol {
		t.Errorf("%s: %q is %.1f%% of %v, want %.0f%% ± %.1f", what, color, got, counts, want, tol)
	}
}

// splitRequests is how many requests a weighted split is judged on.
const splitRequests = 1000

func status(t *testing.T, c *http.Client, rawURL, host string) int {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, rawURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// Istio's Bookinfo traffic-management samples, through the ingress gateway, with the
// behaviour Istio's task pages describe (../shared/reference/istio/README.md).
func TestBookinfoConformance(t *testing.T) {
	cp := startServer(t, pgtest.New(t, pgtest.Template{}))
	m := startBookinfo(t, cp)
	cp.apply(t, sample(t, "bookinfo/networking/bookinfo-gateway.yaml"))
	cp.apply(t, sample(t, "bookinfo/networking/destination-rule-all.yaml"))
	anon, jason := m.client(t, ""), m.client(t, "jason")

	t.Run("bookinfo-gateway", func(t *testing.T) {
		gw := "http://" + m.gateway + ":8080"
		for path, want := range map[string]int{
			"/productpage": 200, "/static/bookinfo.css": 200, "/api/v1/products": 200, "/logout": 302,
			"/": 404, "/health": 404, "/productpage/x": 404,
		} {
			if got := status(t, anon, gw+path, ""); got != want {
				t.Errorf("GET %s through the gateway: %d, want %d", path, got, want)
			}
		}
		resp, err := anon.Get(gw + "/productpage")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(page), "Simple Bookstore App") {
			t.Errorf("product page lacks its title")
		}
	})

	t.Run("no VirtualService: every reviews version", func(t *testing.T) {
		seen := map[string]int{}
		for range 90 {
			seen[m.reviews(t, anon).Podname]++
		}
		for _, v := range []string{"reviews-v1", "reviews-v2", "reviews-v3"} {
			if seen[v] == 0 {
				t.Errorf("%s never answered in 90 requests: %v", v, seen)
			}
		}
	})

	t.Run("all-v1: never any stars", func(t *testing.T) {
		cp.apply(t, sample(t, "bookinfo/networking/virtual-service-all-v1.yaml"))
		if got := m.colors(t, anon, 30); got[""] != 30 {
			t.Errorf("all-v1: %v, want no stars", got)
		}
		if got := m.colors(t, jason, 30); got[""] != 30 {
			t.Errorf("all-v1 for jason: %v, want no stars", got)
		}
	})

	t.Run("reviews-test-v2: jason black, others none", func(t *testing.T) {
		cp.apply(t, sample(t, "bookinfo/networking/virtual-service-reviews-test-v2.yaml"))
		if got := m.colors(t, jason, 30); got["black"] != 30 {
			t.Errorf("jason: %v, want black stars", got)
		}
		if got := m.colors(t, anon, 30); got[""] != 30 {
			t.Errorf("others: %v, want no stars", got)
		}
	})

	t.Run("jason-v2-v3: jason black, others red", func(t *testing.T) {
		cp.apply(t, sample(t, "bookinfo/networking/virtual-service-reviews-jason-v2-v3.yaml"))
		if got := m.colors(t, jason, 30); got["black"] != 30 {
			t.Errorf("jason: %v, want black", got)
		}
		if got := m.colors(t, anon, 30); got["red"] != 30 {
			t.Errorf("others: %v, want red", got)
		}
	})

	for _, split := range []struct {
		file   string
		color  string
		shares float64
	}{
		{"virtual-service-reviews-50-v3.yaml", "red", 50},
		{"virtual-service-reviews-80-20.yaml", "", 80},
		{"virtual-service-reviews-90-10.yaml", "", 90},
		{"virtual-service-reviews-v2-v3.yaml", "black", 50},
	} {
		t.Run(split.file, func(t *testing.T) {
			cp.apply(t, sample(t, "bookinfo/networking/"+split.file))
			within(t, split.file, m.colors(t, anon, splitRequests), split.color, split.shares)
		})
	}

	t.Run("reviews-v3: always red", func(t *testing.T) {
		cp.apply(t, sample(t, "bookinfo/networking/virtual-service-reviews-v3.yaml"))
		if got := m.colors(t, anon, 30); got["red"] != 30 {
			t.Errorf("v3: %v, want red", got)
		}
	})

	t.Run("canary slider keeps the header rule", func(t *testing.T) {
		cp.apply(t, sample(t, "bookinfo/networking/virtual-service-reviews-jason-v2-v3.yaml"))
		rev := cp.setTraffic(t, "reviews", `{"weights":{"v1":70,"v3":30}}`)
		cp.waitSynced(t, rev)
		within(t, "slider v1=70 v3=30", m.colors(t, anon, splitRequests), "red", 30)
		if got := m.colors(t, jason, 30); got["black"] != 30 {
			t.Errorf("jason after the slider moved: %v, want his black-star rule kept", got)
		}
	})

	t.Run("httpbin ingress", func(t *testing.T) {
		cp.apply(t, sample(t, "tasks/task-ingress-httpbin.yaml"))
		gw := "http://" + m.gateway + ":80"
		if got := status(t, anon, gw+"/status/200", "httpbin.example.com"); got != 200 {
			t.Errorf("httpbin.example.com /status/200: %d, want 200", got)
		}
		if got := status(t, anon, gw+"/headers", "httpbin.example.com"); got != 404 {
			t.Errorf("httpbin.example.com /headers: %d, want 404", got)
		}
		if got := status(t, anon, gw+"/status/200", "other.example.com"); got != 404 {
			t.Errorf("unknown host: %d, want 404", got)
		}
	})

	t.Run("ratings abort for jason", func(t *testing.T) {
		cp.apply(t, sample(t, "bookinfo/networking/virtual-service-all-v1.yaml"))
		cp.apply(t, sample(t, "bookinfo/networking/virtual-service-reviews-test-v2.yaml"))
		cp.apply(t, sample(t, "bookinfo/networking/virtual-service-ratings-test-abort.yaml"))
		for range 10 {
			if r := m.reviews(t, jason); r.Error != "Ratings service is currently unavailable" {
				t.Fatalf("jason: %+v, want the ratings error on every review", r)
			}
			if r := m.reviews(t, anon); r.Color != "" || r.Error != "" {
				t.Fatalf("others: %+v, want no stars and no error", r)
			}
		}
	})

	t.Run("details abort 555", func(t *testing.T) {
		cp.apply(t, sample(t, "bookinfo/networking/fault-injection-details-v1.yaml"))
		if got := status(t, anon, "http://"+m.gateway+":8080/api/v1/products/0", ""); got != 555 {
			t.Errorf("/api/v1/products/0 with details aborted: %d, want 555", got)
		}
		resp, err := anon.Get("http://" + m.gateway + ":8080/productpage")
		if err != nil {
			t.Fatal(err)
		}
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(page), "Sorry, product details are currently unavailable for this book.") {
			t.Errorf("the product page does not show the details error")
		}
	})

	t.Run("mirroring", func(t *testing.T) {
		cp.apply(t, sample(t, "tasks/task-mirroring.yaml"))
		v2 := "http://" + m.apps["httpbin-v2"].addr + ":18000/__sluice/seen"
		caller := m.apps["productpage-v1"].addr + ":15001"
		for range 20 {
			req, _ := http.NewRequest(http.MethodGet, "http://"+caller+"/headers", nil)
			req.Host = "httpbin:8000"
			resp, err := anon.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 || resp.Header.Get("X-Httpbin-Version") != "v1" {
				t.Fatalf("httpbin through the mesh: %d from %q, want 200 from v1", resp.StatusCode, resp.Header.Get("X-Httpbin-Version"))
			}
		}
		eventually(t, 10*time.Second, "v2 sees the shadow copies", func() error {
			var seen struct {
				Hosts map[string]int `json:"hosts"`
			}
			if _, err := getJSON(context.Background(), v2, &seen); err != nil {
				return err
			}
			if n := seen.Hosts["httpbin-shadow:8000"]; n < 20 {
				return fmt.Errorf("v2 saw %v", seen.Hosts)
			}
			return nil
		})
	})

	t.Run("corsPolicy preflight answered by the sidecar", func(t *testing.T) {
		cp.apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin}
spec:
  hosts: [httpbin]
  http:
  - route:
    - destination: {host: httpbin, subset: v1}
    corsPolicy:
      allowOrigins: [{exact: "https://shop.example.com"}]
      allowMethods: [GET, POST]
      maxAge: 24h
`)
		req, _ := http.NewRequest(http.MethodOptions, "http://"+m.apps["productpage-v1"].addr+":15001/anything", nil)
		req.Host = "httpbin:8000"
		req.Header.Set("Origin", "https://shop.example.com")
		req.Header.Set("Access-Control-Request-Method", "POST")
		resp, err := anon.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 || resp.Header.Get("Access-Control-Allow-Origin") != "https://shop.example.com" ||
			!strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "POST") || resp.Header.Get("Access-Control-Max-Age") != "86400" {
			t.Errorf("preflight: %d %v", resp.StatusCode, resp.Header)
		}
	})
}
