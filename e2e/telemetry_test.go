package e2e

import (
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/internal/pgtest"
)

// The request telemetry of the mesh is exact, end to end: a known mix of requests through
// real sidecars (a caller's sidecar, two versions of httpbin behind theirs) shows up with
// exactly those counts in the sidecars' Prometheus endpoints, under Istio's names and labels,
// and in the control plane's graph and time series, each request counted once although both
// sidecars report it. Latency percentiles fall within a histogram bucket of the latency the
// backends were asked for. The history survives a control-plane restart, and a sidecar that
// restarts (its counters begin again) adds its new requests, never a negative or a doubled
// count.
func TestTelemetryExact(t *testing.T) {
	db := pgtest.New(t, pgtest.Template{})
	cp := startServer(t, db)
	// The routing comes first, so the caller's sidecar starts with it and nothing else is
	// sent while it converges: every request the test sends is one the counts must show.
	// Retries are off, so that each request reaches a backend exactly once.
	cp.apply(t, `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin, namespace: default}
spec:
  host: httpbin
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin]
  http:
  - match: [{headers: {x-version: {exact: v2}}}]
    route: [{destination: {host: httpbin, subset: v2}}]
    retries: {attempts: 0}
  - route: [{destination: {host: httpbin, subset: v1}}]
    retries: {attempts: 0}
`)
	backends := map[string]*workload{}
	for _, v := range []string{"v1", "v2"} {
		addr := nextAddr()
		app := start(t, "httpbin-"+v, "httpbin", []string{"--addr", addr + ":18000", "--version", v})
		sc := startSidecar(t, cp, addr, "httpbin", v, "--inbound", "8000=18000")
		backends[v] = &workload{addr: addr, app: app, sidecar: sc}
		waitReady(t, cp, addr)
	}
	caller := nextAddr()
	callerSidecar := startSidecar(t, cp, caller, "client", "v1")
	from := time.Now().Add(-time.Minute)

	// The mix: v1 answers 300 × 200 after 60 ms and 70 × 503 at once; v2 answers 200 × 200
	// after 300 ms and 30 × 404 at once.
	const fast, slow = 60, 300 // ms
	send(t, caller, "v1", fmt.Sprintf("/delay/%dms", fast), 300, http.StatusOK)
	send(t, caller, "v1", "/status/503", 70, http.StatusServiceUnavailable)
	send(t, caller, "v2", fmt.Sprintf("/delay/%dms", slow), 200, http.StatusOK)
	send(t, caller, "v2", "/status/404", 30, http.StatusNotFound)

	want := traffic{
		"v1": {"200": 300, "503": 70},
		"v2": {"200": 200, "404": 30},
	}
	checkSidecars(t, caller, backends, want)
	checkServer(t, cp, from, want, map[string]float64{"v1": fast, "v2": slow})

	// History is in PostgreSQL: a new server process answers the same.
	cp.stop(syscall.SIGTERM, 30*time.Second)
	restartServer(t, cp, db)
	checkServer(t, cp, from, want, nil)

	// Every sidecar reports to the new server (which takes each proxy's first report as its
	// baseline) before more traffic flows.
	for _, addr := range []string{caller, backends["v1"].addr, backends["v2"].addr} {
		waitReporting(t, addr, false)
	}

	// httpbin v1's sidecar restarts: its counters begin again from zero.
	v1 := backends["v1"]
	v1.sidecar.stop(syscall.SIGTERM, 30*time.Second)
	v1.sidecar = startSidecar(t, cp, v1.addr, "httpbin", "v1", "--inbound", "8000=18000")
	waitReporting(t, v1.addr, true)
	eventually(t, 30*time.Second, "the caller's sidecar has httpbin v1's endpoint again", func() error {
		body, err := get("http://" + caller + ":15000/clusters")
		if err != nil {
			return err
		}
		line := "outbound|8000|v1|httpbin.default.svc.cluster.local::" + v1.addr + ":8000::health_flags::healthy"
		if !strings.Contains(body, line) {
			return fmt.Errorf("no %q in\n%s", line, body)
		}
		return nil
	})
	send(t, caller, "v1", fmt.Sprintf("/delay/%dms", fast), 50, http.StatusOK)
	want["v1"]["200"] += 50

	checkServer(t, cp, from, want, map[string]float64{"v1": fast, "v2": slow})
	// The caller kept counting; the restarted sidecar counts only what it saw.
	checkPrometheus(t, caller, "source", "client-v1", want)
	checkPrometheus(t, v1.addr, "destination", "client-v1", traffic{"v1": {"200": 50}})
	if callerSidecar.exited() {
		t.Fatal("the caller's sidecar exited")
	}
}

// traffic counts requests by destination version and response code.
type traffic map[string]map[string]int64

func (tr traffic) total(version string) (requests, errors int64) {
	for code, n := range tr[version] {
		requests += n
		if c, _ := strconv.Atoi(code); c >= 500 {
			errors += n
		}
	}
	return requests, errors
}

// send sends n requests for path from the caller's application (the test) through the
// caller's sidecar to httpbin's version, 16 at a time, and fails the test unless each is
// answered with want.
func send(t *testing.T, caller, version, path string, n int, want int) {
	t.Helper()
	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}}
	defer c.CloseIdleConnections()
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range 16 {
		wg.Go(func() {
			for next.Add(1) <= int64(n) {
				req, _ := http.NewRequest(http.MethodGet, "http://"+caller+":15001"+path, nil)
				req.Host = "httpbin:8000"
				if version == "v2" {
					req.Header.Set("X-Version", "v2")
				}
				res, err := c.Do(req)
				if err != nil {
					errs <- err
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				if res.StatusCode != want || res.Header.Get("X-Httpbin-Version") != version {
					errs <- fmt.Errorf("GET %s (%s): %d from %q (%s), want %d from %s", path, version, res.StatusCode,
						res.Header.Get("X-Httpbin-Version"), res.Header.Get("X-Sluice-Reason"), want, version)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func get(u string) (string, error) {
	res, err := client.Get(u)
	if err != nil {
		return "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %d %s", u, res.StatusCode, b)
	}
	return string(b), err
}

// waitReporting waits until the sidecar at addr has a metrics stream open to the control
// plane and has sent a report on it. A sidecar sends a report each second once it has
// counted a request; before that only its stream's first message, so for a fresh one (no
// traffic yet) that first message is what is waited for.
func waitReporting(t *testing.T, addr string, fresh bool) {
	t.Helper()
	stat := func(body, name string) int64 {
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + `: (\d+)$`).FindStringSubmatch(body)
		if m == nil {
			return -1
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	var streams, sent int64 = -1, -1
	eventually(t, 60*time.Second, "sidecar "+addr+" reports to the control plane", func() error {
		body, err := get("http://" + addr + ":15000/stats")
		if err != nil {
			return err
		}
		s, m := stat(body, "telemetry.metrics_streams_opened"), stat(body, "telemetry.metrics_messages_sent")
		if stat(body, "telemetry.metrics_connected") != 1 {
			streams = -1
			return fmt.Errorf("metrics stream not connected")
		}
		if fresh && s == 1 && m >= 1 {
			return nil
		}
		// A message sent after the stream seen open went on that stream.
		if s != streams {
			streams, sent = s, m
			return fmt.Errorf("stream %d open, waiting for a report on it", s)
		}
		if m <= sent {
			return fmt.Errorf("no report since stream %d opened", s)
		}
		return nil
	})
}

// promSample is one istio_requests_total sample.
type promSample struct {
	labels map[string]string
	value  int64
}

var sampleLine = regexp.MustCompile(`^istio_requests_total\{(.*)\} (\d+)$`)
var labelPair = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

func scrapeRequests(t *testing.T, addr string) []promSample {
	t.Helper()
	body, err := get("http://" + addr + ":15090/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	var out []promSample
	for _, line := range strings.Split(body, "\n") {
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		s := promSample{labels: map[string]string{}}
		for _, kv := range labelPair.FindAllStringSubmatch(m[1], -1) {
			s.labels[kv[1]] = kv[2]
		}
		s.value, _ = strconv.ParseInt(m[2], 10, 64)
		out = append(out, s)
	}
	return out
}

// checkPrometheus checks that the sidecar at addr reports exactly want as reporter, with
// the caller source and httpbin's versions as destinations, under Istio's labels. The
// sidecar counts in memory, so its numbers are final once the requests are answered.
func checkPrometheus(t *testing.T, addr, reporter, source string, want traffic) {
	t.Helper()
	got := traffic{}
	for _, s := range scrapeRequests(t, addr) {
		l := s.labels
		if l["reporter"] != reporter {
			continue
		}
		fixed := map[string]string{
			"source_workload": source, "source_workload_namespace": "default", "source_app": "client", "source_version": "v1",
			"destination_service": "httpbin.default.svc.cluster.local", "destination_workload": "httpbin-" + l["destination_version"],
			"destination_workload_namespace": "default", "destination_app": "httpbin",
			"request_protocol": "http", "grpc_response_status": "", "response_flags": "-",
		}
		for k, v := range fixed {
			if l[k] != v {
				t.Errorf("sidecar %s: %s=%q, want %q in %v", addr, k, l[k], v, l)
			}
		}
		if got[l["destination_version"]] == nil {
			got[l["destination_version"]] = map[string]int64{}
		}
		got[l["destination_version"]][l["response_code"]] += s.value
	}
	if !equalTraffic(got, want) {
		t.Errorf("sidecar %s, reporter %s: istio_requests_total %v, want %v", addr, reporter, got, want)
	}
}

func checkSidecars(t *testing.T, caller string, backends map[string]*workload, want traffic) {
	t.Helper()
	checkPrometheus(t, caller, "source", "client-v1", want)
	for v, w := range backends {
		checkPrometheus(t, w.addr, "destination", "client-v1", traffic{v: want[v]})
	}
}

func equalTraffic(a, b traffic) bool {
	return maps.EqualFunc(a, b, func(x, y map[string]int64) bool { return maps.Equal(x, y) })
}

// graphEdge is an edge of GET /api/v1/graph.
type graphEdge struct {
	Source   string           `json:"source"`
	Target   string           `json:"target"`
	Requests int64            `json:"requests"`
	Errors   int64            `json:"errors"`
	P50      *float64         `json:"p50"`
	Codes    map[string]int64 `json:"codes"`
}

// timeSeries is a series of GET /api/v1/metrics.
type timeSeries struct {
	Labels map[string]string `json:"labels"`
	Points []struct {
		Requests int64 `json:"requests"`
		Errors   int64 `json:"errors"`
	} `json:"points"`
}

const (
	httpbinNode = "service:httpbin.default.svc.cluster.local"
	callerNode  = "workload:default/client-v1"
)

// serverView is what the control plane says about the test's traffic.
type serverView struct {
	edges  map[[2]string]graphEdge
	series map[string][2]int64 // requests and errors by version
}

func (v serverView) requests() int64 {
	return v.edges[[2]string{callerNode, httpbinNode}].Requests
}

func readServer(t *testing.T, cp *controlPlane, from time.Time) (serverView, error) {
	v := serverView{edges: map[[2]string]graphEdge{}, series: map[string][2]int64{}}
	var g struct {
		Source string      `json:"source"`
		Edges  []graphEdge `json:"edges"`
	}
	// A window past the live span is read from the stored 10-second rollups.
	if code, err := getJSONWith(cp.api, "http://"+cp.httpAddr+"/api/v1/graph?window=10m", &g); err != nil || code != http.StatusOK {
		return v, fmt.Errorf("GET /api/v1/graph: %d %v", code, err)
	}
	for _, e := range g.Edges {
		v.edges[[2]string{e.Source, e.Target}] = e
	}
	var m struct {
		Series []timeSeries `json:"series"`
	}
	q := url.Values{"service": {"httpbin.default.svc.cluster.local"}, "by": {"version"},
		"from": {strconv.FormatInt(from.Unix(), 10)}, "step": {"1h"}}
	if code, err := getJSONWith(cp.api, "http://"+cp.httpAddr+"/api/v1/metrics?"+q.Encode(), &m); err != nil || code != http.StatusOK {
		return v, fmt.Errorf("GET /api/v1/metrics: %d %v", code, err)
	}
	for _, s := range m.Series {
		var sum [2]int64
		for _, p := range s.Points {
			if p.Requests < 0 || p.Errors < 0 {
				t.Fatalf("metrics series %v has a negative point: %+v", s.Labels, s.Points)
			}
			sum[0] += p.Requests
			sum[1] += p.Errors
		}
		v.series[s.Labels["version"]] = sum
	}
	return v, nil
}

// checkServer waits until the control plane's graph and time series hold every request the
// test sent and stop changing, then checks them exactly. latency gives, by version, the
// latency most of its requests took (nil skips the percentiles).
func checkServer(t *testing.T, cp *controlPlane, from time.Time, want traffic, latency map[string]float64) {
	t.Helper()
	var total int64
	for v := range want {
		n, _ := want.total(v)
		total += n
	}
	// Wait on the data: all of it has arrived once the caller's edge counts every request,
	// and it has settled once two reads a few seconds apart agree.
	var v serverView
	eventually(t, 90*time.Second, "the control plane counts every request", func() error {
		var err error
		if v, err = readServer(t, cp, from); err != nil {
			return err
		}
		if v.requests() < total {
			return fmt.Errorf("%d of %d requests counted", v.requests(), total)
		}
		return nil
	})
	eventually(t, 60*time.Second, "the control plane's counts settle", func() error {
		time.Sleep(3 * time.Second)
		next, err := readServer(t, cp, from)
		if err != nil {
			return err
		}
		same := next.requests() == v.requests() && maps.Equal(next.series, v.series)
		v = next
		if !same {
			return fmt.Errorf("still changing")
		}
		return nil
	})

	for _, k := range slices.SortedFunc(maps.Keys(v.edges), func(a, b [2]string) int { return strings.Compare(a[0]+a[1], b[0]+b[1]) }) {
		e := v.edges[k]
		t.Logf("graph %s → %s: %d requests, %d errors, codes %v, p50 %v ms", k[0], k[1], e.Requests, e.Errors, e.Codes, ptr(e.P50))
	}
	t.Logf("metrics by version (requests, errors): %v", v.series)
	var callerCodes = map[string]int64{}
	var callerErrors int64
	for ver, codes := range want {
		for code, n := range codes {
			callerCodes[code] += n
		}
		_, e := want.total(ver)
		callerErrors += e
	}
	edge := v.edges[[2]string{callerNode, httpbinNode}]
	if edge.Requests != total || edge.Errors != callerErrors || !maps.Equal(edge.Codes, callerCodes) {
		t.Errorf("graph edge client-v1 → httpbin: %d requests, %d errors, codes %v; want %d, %d, %v",
			edge.Requests, edge.Errors, edge.Codes, total, callerErrors, callerCodes)
	}
	for _, ver := range slices.Sorted(maps.Keys(want)) {
		e := v.edges[[2]string{httpbinNode, "workload:default/httpbin-" + ver}]
		n, errs := want.total(ver)
		if e.Requests != n || e.Errors != errs || !maps.Equal(e.Codes, want[ver]) {
			t.Errorf("graph edge httpbin → httpbin-%s: %d requests, %d errors, codes %v; want %d, %d, %v",
				ver, e.Requests, e.Errors, e.Codes, n, errs, want[ver])
		}
		if got := v.series[ver]; got != [2]int64{n, errs} {
			t.Errorf("metrics for httpbin %s: %d requests, %d errors; want %d, %d", ver, got[0], got[1], n, errs)
		}
		if ms, ok := latency[ver]; ok {
			lo, hi := neighbourBounds(ms)
			if e.P50 == nil || *e.P50 < lo || *e.P50 > hi {
				t.Errorf("graph edge httpbin → httpbin-%s: p50 %v ms; want within one bucket of %v ms (%v to %v)", ver, ptr(e.P50), ms, lo, hi)
			}
		}
	}
	if len(v.series) != len(want) {
		t.Errorf("metrics series by version %v; want versions %v", v.series, slices.Sorted(maps.Keys(want)))
	}
}

func ptr(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// durationBounds are Istio's duration buckets (ms), as the sidecars report them.
var durationBounds = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000}

// neighbourBounds returns the range from the lower bound of the bucket below ms's bucket to
// the upper bound of the bucket above it: a percentile estimated from the histogram is
// "within one bucket" of ms when it lies there.
func neighbourBounds(ms float64) (lo, hi float64) {
	i, _ := slices.BinarySearch(durationBounds, ms) // ms's bucket is (bounds[i-1], bounds[i]]
	lo, hi = 0, durationBounds[len(durationBounds)-1]
	if i >= 2 {
		lo = durationBounds[i-2]
	}
	if i+1 < len(durationBounds) {
		hi = durationBounds[i+1]
	}
	return lo, hi
}

// Requests through the ingress gateway are reported by the gateway as reporter "source",
// with the gateway's workload as the source, and by the backend's sidecar as "destination"
// with the same source; the graph shows the gateway as such and counts each request once.
func TestTelemetryGateway(t *testing.T) {
	cp := startServer(t, pgtest.New(t, pgtest.Template{}))
	cp.apply(t, `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: httpbin-gateway, namespace: default}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["httpbin.example.com"]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin-ingress, namespace: default}
spec:
  hosts: ["httpbin.example.com"]
  gateways: [httpbin-gateway]
  http:
  - route: [{destination: {host: httpbin, port: {number: 8000}}}]
    retries: {attempts: 0}
`)
	backend := nextAddr()
	start(t, "httpbin-v1", "httpbin", []string{"--addr", backend + ":18000", "--version", "v1"})
	startSidecar(t, cp, backend, "httpbin", "v1", "--inbound", "8000=18000")
	waitReady(t, cp, backend)
	gw := nextAddr()
	p := start(t, "gateway", "sluice-proxy", []string{"--control-plane", cp.xdsAddr, "--mode", "gateway",
		"--namespace", "istio-system", "--labels", "istio=ingressgateway,app=istio-ingressgateway",
		"--address", gw, "--log-level", proxyLogLevel})
	eventually(t, 30*time.Second, "gateway serves port 8080", func() error {
		if p.exited() {
			t.Fatalf("gateway exited: %v\n%s", p.err, p.out.text())
		}
		body, err := get("http://" + gw + ":15000/stats")
		if err != nil {
			return err
		}
		if !strings.Contains(body, gw+":8080") {
			return fmt.Errorf("no listener on %s:8080 yet", gw)
		}
		return nil
	})

	// The control plane takes a proxy's first report as its baseline: requests counted before
	// it would not be the gateway's.
	waitReporting(t, gw, true)
	waitReporting(t, backend, true)

	c := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: nil}}
	defer c.CloseIdleConnections()
	for i := range 50 {
		path, want := "/status/200", http.StatusOK
		if i%5 == 0 {
			path, want = "/status/418", http.StatusTeapot
		}
		req, _ := http.NewRequest(http.MethodGet, "http://"+gw+":8080"+path, nil)
		req.Host = "httpbin.example.com"
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != want {
			t.Fatalf("GET %s through the gateway: %d (%s), want %d", path, res.StatusCode, res.Header.Get("X-Sluice-Reason"), want)
		}
	}
	want := map[string]int64{"200": 40, "418": 10}

	for _, side := range []struct{ addr, reporter string }{{gw, "source"}, {backend, "destination"}} {
		got := map[string]int64{}
		for _, s := range scrapeRequests(t, side.addr) {
			l := s.labels
			if l["reporter"] != side.reporter {
				continue
			}
			if l["source_workload"] != "istio-ingressgateway" || l["source_workload_namespace"] != "istio-system" ||
				l["destination_workload"] != "httpbin-v1" || l["destination_service"] != "httpbin.default.svc.cluster.local" {
				t.Errorf("%s's sample has labels %v", side.reporter, l)
			}
			got[l["response_code"]] += s.value
		}
		if !maps.Equal(got, want) {
			t.Errorf("%s reports %v, want %v", side.reporter, got, want)
		}
	}

	gwNode := "workload:istio-system/istio-ingressgateway"
	var g struct {
		Nodes []struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		} `json:"nodes"`
		Edges []graphEdge `json:"edges"`
	}
	// Both proxies' reports have arrived once the edge counts every request (the backend's)
	// and the gateway is known as one (from the gateway's own reports).
	eventually(t, 60*time.Second, "the graph counts the gateway's requests", func() error {
		g.Nodes, g.Edges = nil, nil
		if code, err := getJSONWith(cp.api, "http://"+cp.httpAddr+"/api/v1/graph?window=5m", &g); err != nil || code != http.StatusOK {
			return fmt.Errorf("GET /api/v1/graph: %d %v", code, err)
		}
		counted, isGateway := false, false
		for _, e := range g.Edges {
			counted = counted || (e.Source == gwNode && e.Target == httpbinNode && e.Requests >= 50)
		}
		for _, n := range g.Nodes {
			isGateway = isGateway || (n.ID == gwNode && n.Type == "gateway")
		}
		if !counted || !isGateway {
			return fmt.Errorf("nodes %+v, edges %+v", g.Nodes, g.Edges)
		}
		return nil
	})
	time.Sleep(2 * time.Second) // a report still on its way would show in the next read
	if code, err := getJSONWith(cp.api, "http://"+cp.httpAddr+"/api/v1/graph?window=5m", &g); err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/v1/graph: %d %v", code, err)
	}
	found := false
	for _, e := range g.Edges {
		if e.Source == gwNode && e.Target == httpbinNode {
			found = true
			if e.Requests != 50 || !maps.Equal(e.Codes, want) {
				t.Errorf("gateway → httpbin: %d requests, codes %v; want 50, %v", e.Requests, e.Codes, want)
			}
		}
	}
	if !found {
		t.Errorf("no edge %s → %s in %+v", gwNode, httpbinNode, g.Edges)
	}
}
