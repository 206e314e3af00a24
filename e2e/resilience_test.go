package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/internal/pgtest"
)

// Istio's resilience tasks, through real sidecars: fault delays and request timeouts on
// Bookinfo (../shared/reference/istio/README.md), then the DestinationRule policies that the
// sidecars enforce: circuit breaking, outlier detection and consistent hashing, with the
// retries of a VirtualService.

// msgReviewsUnavailable is what productpage shows when reviews fails or is too slow.
const msgReviewsUnavailable = "Sorry, product reviews are currently unavailable for this book."

func TestResilienceBookinfo(t *testing.T) {
	cp := startServer(t, pgtest.New(t, pgtest.Template{}))
	m := startBookinfo(t, cp)
	cp.apply(t, sample(t, "bookinfo/networking/bookinfo-gateway.yaml"))
	cp.apply(t, sample(t, "bookinfo/networking/destination-rule-all.yaml"))
	cp.apply(t, sample(t, "bookinfo/networking/virtual-service-all-v1.yaml"))
	anon, jason := m.client(t, ""), m.client(t, "jason")
	page := func(t *testing.T, c *http.Client) string {
		t.Helper()
		resp, err := c.Get("http://" + m.gateway + ":8080/productpage")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/productpage: %d %s", resp.StatusCode, b)
		}
		return string(b)
	}

	t.Run("ratings delay for jason", func(t *testing.T) {
		cp.apply(t, sample(t, "bookinfo/networking/virtual-service-reviews-test-v2.yaml"))
		cp.apply(t, sample(t, "bookinfo/networking/virtual-service-ratings-test-delay.yaml"))
		// reviews v2 waits out the 7 s delay (its own timeout to ratings is 10 s), but
		// productpage gives up on reviews after 3 s, twice: one page, about 6 s.
		if p := page(t, jason); !strings.Contains(p, msgReviewsUnavailable) {
			t.Errorf("jason's page does not show the reviews error")
		}
		for range 5 {
			if r := m.reviews(t, anon); r.Podname != "reviews-v1" || r.Color != "" || r.Error != "" {
				t.Fatalf("others: %+v, want reviews v1 at once, without stars or errors", r)
			}
		}
		if p := page(t, anon); strings.Contains(p, msgReviewsUnavailable) || !strings.Contains(p, "Reviewer1") {
			t.Errorf("others' page must show the reviews, without the error")
		}
	})

	t.Run("request timeouts", func(t *testing.T) {
		// Step one: reviews v2, with ratings delayed 2 s: slow, but stars.
		cp.apply(t, sample(t, "bookinfo/networking/virtual-service-all-v1.yaml"))
		cp.apply(t, strings.SplitN(sample(t, "tasks/task-request-timeouts.yaml"), "\n---\n", 2)[0])
		cp.apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v2}
`)
		if r := m.reviews(t, anon); r.Color != "black" {
			t.Fatalf("reviews v2 with ratings delayed 2 s: %+v, want black stars", r)
		}
		// Step two: a 0.5 s timeout on reviews. productpage's sidecar answers 504 itself, and
		// the page shows the reviews error.
		cp.apply(t, sample(t, "tasks/task-request-timeouts.yaml"))
		if p := page(t, anon); !strings.Contains(p, msgReviewsUnavailable) {
			t.Errorf("with a 0.5 s timeout on reviews, the page does not show the reviews error")
		}
		pp := m.apps["productpage-v1"]
		before := adminStat(t, pp.addr, "http.response_flags.UT")
		res := sidecarGet(t, http.DefaultClient, pp.addr, "reviews:9080", "/reviews/0", nil)
		if res.status != http.StatusGatewayTimeout || res.body != "upstream request timeout" {
			t.Errorf("reviews from productpage's sidecar: %d %q, want 504 upstream request timeout", res.status, res.body)
		}
		if after := adminStat(t, pp.addr, "http.response_flags.UT"); after <= before {
			t.Errorf("response flag UT counted %d then %d: the timeout must be flagged UT", before, after)
		}
	})
}

func TestResiliencePolicies(t *testing.T) {
	cp := startServer(t, pgtest.New(t, pgtest.Template{}))
	client := startWorkload(t, cp, "client", "v1")

	t.Run("circuit breaking", func(t *testing.T) {
		addr := nextAddr()
		start(t, "httpbin", "httpbin", []string{"--addr", addr + ":18000", "--version", "v1"}, "HTTP_PROXY=http://"+addr+":15001")
		startSidecar(t, cp, addr, "httpbin", "v1", "--inbound", "8000=18000")
		waitReady(t, cp, addr)
		eventually(t, 30*time.Second, "httpbin reachable through the mesh", func() error {
			if r := sidecarGet(t, http.DefaultClient, client.addr, "httpbin:8000", "/get", nil); r.status != http.StatusOK {
				return fmt.Errorf("%d %s", r.status, r.body)
			}
			return nil
		})
		cp.apply(t, sample(t, "tasks/task-circuit-breaking-dr.yaml"))

		// One client at a time never meets the limits.
		for i := range 20 {
			if r := sidecarGet(t, http.DefaultClient, client.addr, "httpbin:8000", "/get", nil); r.status != http.StatusOK {
				t.Fatalf("request %d, one client: %d %q (%s), want 200", i, r.status, r.body, r.reason)
			}
		}

		// Three clients against a slow endpoint: one request in flight and one pending fit,
		// the third overflows while both are taken.
		const clients, each = 3, 10
		var mu sync.Mutex
		codes := map[int]int{}
		var wrong []string
		var wg sync.WaitGroup
		for range clients {
			c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: nil}}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.CloseIdleConnections()
				for range each {
					r := sidecarGet(t, c, client.addr, "httpbin:8000", "/delay/300ms", nil)
					mu.Lock()
					codes[r.status]++
					if r.status != http.StatusOK && (r.status != http.StatusServiceUnavailable || r.header.Get("X-Envoy-Overloaded") != "true") {
						wrong = append(wrong, fmt.Sprintf("%d %q overloaded=%q", r.status, r.body, r.header.Get("X-Envoy-Overloaded")))
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		t.Logf("three concurrent clients, answers by status: %v", codes)
		if len(wrong) > 0 {
			t.Errorf("answers other than 200 or a 503 overflow: %v", wrong)
		}
		// Istio's task sees 19 of 30 turned away; every period of 300 ms leaves at least one
		// client out, and it spends its requests on immediate 503s.
		if codes[http.StatusServiceUnavailable] < clients*each/5 || codes[http.StatusOK] == 0 {
			t.Errorf("three concurrent clients: %v, want a large share of 503 overflows and some 200s", codes)
		}
		if n := adminStat(t, client.addr, "cluster.outbound|8000||httpbin.default.svc.cluster.local.upstream_rq_pending_overflow"); n == 0 {
			t.Errorf("no pending overflow counted on the client's sidecar")
		}
	})

	t.Run("retries", func(t *testing.T) {
		// Every other request to the backend fails with a 500, which Istio's default retry
		// policy does not retry: only the VirtualService's retries can hide it.
		startEcho(t, cp, "flaky", "v1", "--fail-every", "2")
		eventually(t, 30*time.Second, "flaky reachable through the mesh", func() error {
			if r := sidecarGet(t, http.DefaultClient, client.addr, "flaky:8080", "/", nil); r.status != http.StatusOK && r.status != http.StatusInternalServerError {
				return fmt.Errorf("%d %s", r.status, r.body)
			}
			return nil
		})
		failures := func(n int) int {
			bad := 0
			for range n {
				if r := sidecarGet(t, http.DefaultClient, client.addr, "flaky:8080", "/", nil); r.status != http.StatusOK {
					bad++
				}
			}
			return bad
		}
		if bad := failures(20); bad < 5 {
			t.Fatalf("without retries %d of 20 requests failed: the backend must fail every other request", bad)
		}
		cp.apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: flaky}
spec:
  hosts: [flaky]
  http:
  - route:
    - destination: {host: flaky}
    retries: {attempts: 3, retryOn: 5xx}
`)
		const n = 300
		if bad := failures(n); bad > n/100 {
			t.Errorf("with retries 3 on 5xx, %d of %d requests failed, want at most 1%%", bad, n)
		}
		if got := adminStat(t, client.addr, "cluster.upstream_rq_retry_success"); got == 0 {
			t.Errorf("no successful retry counted on the client's sidecar")
		}
	})

	t.Run("outlier detection", func(t *testing.T) {
		good := startEcho(t, cp, "backend", "v1")
		bad := startEcho(t, cp, "backend", "v2", "--fail-every", "1")
		goodName, badName := instanceName(good, "backend", "v1"), instanceName(bad, "backend", "v2")
		const host = "backend:8080"
		const cluster = "outbound|8080||backend.default.svc.cluster.local"
		// Both endpoints take traffic: the bad one fails.
		eventually(t, 30*time.Second, "both endpoints reached", func() error {
			seen := map[string]int{}
			for range 10 {
				r := sidecarGet(t, http.DefaultClient, client.addr, host, "/", nil)
				seen[fmt.Sprint(r.status, " ", r.instance)]++
			}
			if seen["200 "+goodName] == 0 || seen["500 "+badName] == 0 {
				return fmt.Errorf("answers %v", seen)
			}
			return nil
		})
		cp.apply(t, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: backend}
spec:
  host: backend
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 8s
      maxEjectionPercent: 100
`)
		// The bad endpoint's first failure ejects it: the sidecar says so.
		eventually(t, 30*time.Second, "the failing endpoint ejected", func() error {
			sidecarGet(t, http.DefaultClient, client.addr, host, "/", nil)
			return ejected(t, client.addr, cluster, bad.addr)
		})
		for i := range 10 {
			if r := sidecarGet(t, http.DefaultClient, client.addr, host, "/", nil); r.status != http.StatusOK || r.instance != goodName {
				t.Fatalf("request %d with the bad endpoint ejected: %d from %q, want 200 from %s", i, r.status, r.instance, goodName)
			}
		}

		// Fixed, the endpoint gets traffic again once its ejection ends.
		bad.app.stop(syscall.SIGTERM, 15*time.Second)
		bad.app = start(t, badName+"-fixed", "echo", []string{"--service", "backend", "--instance", badName,
			"--http-addr", bad.addr + ":18080"}, "HTTP_PROXY=http://"+bad.addr+":15001", "NO_PROXY=")
		eventually(t, 30*time.Second, "the fixed app listening", func() error { return httpOK("http://" + bad.addr + ":18080/") })
		eventually(t, 60*time.Second, "the fixed endpoint back in rotation", func() error {
			r := sidecarGet(t, http.DefaultClient, client.addr, host, "/", nil)
			if r.status != http.StatusOK || r.instance != badName {
				return fmt.Errorf("%d from %q", r.status, r.instance)
			}
			return nil
		})
		for i := range 20 {
			if r := sidecarGet(t, http.DefaultClient, client.addr, host, "/", nil); r.status != http.StatusOK {
				t.Fatalf("request %d after the fix: %d %q", i, r.status, r.body)
			}
		}
	})

	t.Run("consistent hash", func(t *testing.T) {
		var names []string
		for _, v := range []string{"v1", "v2", "v3"} {
			w := startEcho(t, cp, "sticky", v)
			names = append(names, instanceName(w, "sticky", v))
		}
		const host = "sticky:8080"
		eventually(t, 30*time.Second, "every sticky endpoint reached", func() error {
			seen := map[string]bool{}
			for range 30 {
				seen[sidecarGet(t, http.DefaultClient, client.addr, host, "/", nil).instance] = true
			}
			for _, n := range names {
				if !seen[n] {
					return fmt.Errorf("%s not reached: %v", n, seen)
				}
			}
			return nil
		})
		cp.apply(t, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: sticky}
spec:
  host: sticky
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
`)
		owners := map[string]bool{}
		for u := range 20 {
			user := fmt.Sprintf("user-%d", u)
			first := ""
			for i := range 5 {
				r := sidecarGet(t, http.DefaultClient, client.addr, host, "/", http.Header{"X-User": {user}})
				if r.status != http.StatusOK {
					t.Fatalf("%s request %d: %d %q", user, i, r.status, r.body)
				}
				if first == "" {
					first = r.instance
				} else if r.instance != first {
					t.Fatalf("%s answered by %s, then by %s: the same key must reach the same endpoint", user, first, r.instance)
				}
			}
			owners[first] = true
		}
		if len(owners) < 2 {
			t.Errorf("20 users all reached %v: different keys must spread over the endpoints", owners)
		}
	})
}

// startEcho starts an echo instance with extra flags (appArgs) and its sidecar, serving
// port 8080, and waits for its reported readiness, as startWorkload does.
func startEcho(t *testing.T, cp *controlPlane, service, version string, appArgs ...string) *workload {
	t.Helper()
	w := &workload{addr: nextAddr()}
	instance := fmt.Sprintf("%s-%s-%s", service, version, w.addr)
	w.app = start(t, instance, "echo", append([]string{"--service", service, "--instance", instance,
		"--http-addr", w.addr + ":18080"}, appArgs...), "HTTP_PROXY=http://"+w.addr+":15001", "NO_PROXY=")
	w.sidecar = startSidecar(t, cp, w.addr, service, version, "--inbound", "8080=18080")
	waitReady(t, cp, w.addr)
	return w
}

// sidecarAnswer is one answer through a sidecar's outbound listener.
type sidecarAnswer struct {
	status   int
	body     string
	header   http.Header
	reason   string // x-sluice-reason, when the sidecar answered itself
	instance string // the echo instance that answered, if any
}

// sidecarGet sends GET path for host (the Host header) to the outbound listener of the
// sidecar at addr, as its application would; a transport error fails the test.
func sidecarGet(t *testing.T, c *http.Client, addr, host, path string, header http.Header) sidecarAnswer {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+":15001"+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Host = host
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Errorf("GET %s%s through %s: %v", host, path, addr, err)
		return sidecarAnswer{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := sidecarAnswer{status: resp.StatusCode, body: strings.TrimSpace(string(b)), header: resp.Header, reason: resp.Header.Get("X-Sluice-Reason")}
	var who struct {
		Instance string `json:"instance"`
	}
	if json.Unmarshal(b, &who) == nil {
		a.instance = who.Instance
	}
	return a
}

// adminStat reads one counter from the /stats of the sidecar at addr.
func adminStat(t *testing.T, addr, name string) uint64 {
	t.Helper()
	resp, err := client.Get("http://" + addr + ":15000/stats")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, name+": "); ok {
			var n uint64
			if _, err := fmt.Sscan(v, &n); err != nil {
				t.Fatalf("%s is %q: %v", name, v, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in the /stats of %s", name, addr)
	return 0
}

// ejected reports nil when the sidecar at addr shows the endpoint of cluster at endpointAddr
// ejected by outlier detection (its /clusters health flags).
func ejected(t *testing.T, addr, cluster, endpointAddr string) error {
	t.Helper()
	resp, err := client.Get("http://" + addr + ":15000/clusters")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	prefix := cluster + "::" + endpointAddr + ":"
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, prefix) && strings.Contains(line, "::health_flags::") {
			if strings.Contains(line, "failed_outlier_check") {
				return nil
			}
			return fmt.Errorf("%s", line)
		}
	}
	return fmt.Errorf("%s not in /clusters of %s", prefix, addr)
}
