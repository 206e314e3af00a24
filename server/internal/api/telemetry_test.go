package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"testing/fstest"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/changes"
	"github.com/sluicemesh/sluice/server/internal/telemetry"
	"github.com/sluicemesh/sluice/server/internal/telemetry/intake"
	"github.com/sluicemesh/sluice/server/internal/telemetry/telemetrytest"
)

// telemetryEnv is an env whose API serves the telemetry of a real intake, which sidecars
// reach over gRPC on a loopback port.
type telemetryEnv struct {
	*env
	agg  *telemetry.Aggregator
	rec  *telemetrytest.Recorder
	conn *grpc.ClientConn
}

func newTelemetryEnv(t *testing.T) *telemetryEnv {
	t.Helper()
	e := newEnv(t)
	log := slog.New(slog.NewTextHandler(logWriter{t}, nil))
	agg, err := telemetry.New(telemetry.Options{Store: e.st, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	rec := &telemetrytest.Recorder{Next: agg}
	in, err := intake.New(intake.Options{Log: log, Metrics: rec, Logs: telemetry.NewTap(telemetry.TapOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	in.Register(g)
	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		conn.Close()
		g.Stop()
		if err := <-served; err != nil {
			t.Errorf("gRPC server: %v", err)
		}
	})

	// The same API as newEnv's, on the same database, with the telemetry.
	svc, err := auth.NewService(e.st, auth.Options{Params: fastParams, Now: e.clock.Now, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	e.api = NewServer(Deps{
		Log: log, DB: e.st, XDSServing: func() bool { return true }, Proxies: noProxies{},
		Console: fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>Sluice</title>")}},
		Auth:    svc, Audit: e.st, Config: e.st, Changes: changes.New(e.st),
		Telemetry: agg,
	})
	e.srv = httptest.NewServer(e.api)
	t.Cleanup(e.srv.Close)
	return &telemetryEnv{env: e, agg: agg, rec: rec, conn: conn}
}

// The mesh of the test: the ingress gateway calls productpage, which calls reviews v1 and v2.
var (
	gatewayToProductpage = telemetry.Series{
		SourceWorkload: "istio-ingressgateway", SourceNamespace: "istio-system", SourceVersion: "unknown",
		DestinationService: "productpage.default.svc.cluster.local", DestinationWorkload: "productpage-v1", DestinationVersion: "v1",
		ResponseCode: "200", ResponseFlags: "-", Protocol: "http",
	}
	productpageToReviews = telemetry.Series{
		SourceWorkload: "productpage-v1", SourceNamespace: "default", SourceVersion: "v1",
		DestinationService: "reviews.default.svc.cluster.local",
		ResponseFlags:      "-", Protocol: "http",
	}
)

// traffic is requests of one kind: to a version, with a code, all taking ms.
type traffic struct {
	version, code string
	n             int
	ms            float64
}

// reviewsMix is 600 requests to reviews: 500×200, 70×503, 30×404, split evenly between the
// versions, with each kind's latency in a known bucket.
var reviewsMix = []traffic{
	{"v1", "200", 250, 20},  // (10, 25]
	{"v1", "503", 35, 200},  // (100, 250]
	{"v1", "404", 15, 700},  // (500, 1000]
	{"v2", "200", 250, 40},  // (25, 50]
	{"v2", "503", 35, 3000}, // (2500, 5000]
	{"v2", "404", 15, 7},    // (5, 10]
}

func (tr traffic) series(reporter string) telemetry.Series {
	s := productpageToReviews
	s.Reporter, s.DestinationWorkload, s.DestinationVersion, s.ResponseCode = reporter, "reviews-"+tr.version, tr.version, tr.code
	return s
}

// bucketOf returns the bounds of the duration bucket ms falls in.
func bucketOf(ms float64) (lower, upper float64) {
	for _, b := range telemetry.DurationBounds {
		if ms <= b {
			return lower, b
		}
		lower = b
	}
	return lower, lower
}

// TestTelemetryExactness streams a known mix of requests from five simulated sidecars (both
// ends of every call report it) as cumulative snapshots over real gRPC, and reads it back
// through GET /api/v1/graph and GET /api/v1/metrics: every count exact, each request once,
// and each percentile within the bucket that holds the true one.
func TestTelemetryExactness(t *testing.T) {
	t.Parallel()
	e := newTelemetryEnv(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	started := time.Now()

	gateway := telemetrytest.NewSidecar("router~127.0.0.10~istio-ingressgateway.istio-system~istio-system.svc.cluster.local")
	gateway.Gateway = true
	productpage := telemetrytest.NewSidecar("sidecar~127.0.0.5~productpage-v1.default~default.svc.cluster.local")
	reviews := map[string]*telemetrytest.Sidecar{
		"v1": telemetrytest.NewSidecar("sidecar~127.0.0.6~reviews-v1.default~default.svc.cluster.local"),
		"v2": telemetrytest.NewSidecar("sidecar~127.0.0.7~reviews-v2.default~default.svc.cluster.local"),
	}
	sidecars := []*telemetrytest.Sidecar{gateway, productpage, reviews["v1"], reviews["v2"]}
	streams := map[*telemetrytest.Sidecar]*telemetrytest.Stream{}
	reports := 0
	reportAll := func() {
		t.Helper()
		for _, sc := range sidecars {
			if err := streams[sc].Report(); err != nil {
				t.Fatal(err)
			}
			reports++
		}
		if err := e.rec.Wait(ctx, reports); err != nil {
			t.Fatal(err)
		}
	}
	for _, sc := range sidecars {
		s, err := sc.Connect(ctx, e.conn)
		if err != nil {
			t.Fatal(err)
		}
		streams[sc] = s
	}
	reportAll() // baselines

	// The traffic arrives in three parts, each followed by a report of every sidecar's
	// cumulative values.
	for part := range 3 {
		fromGateway := 200
		gw := gatewayToProductpage
		gw.Reporter = telemetry.ReporterSource
		gateway.Serve(gw, fromGateway, 30)
		gw.Reporter = telemetry.ReporterDestination
		productpage.Serve(gw, fromGateway, 30)
		for _, tr := range reviewsMix {
			n := tr.n / 3
			if part == 2 {
				n = tr.n - 2*(tr.n/3)
			}
			productpage.Serve(tr.series(telemetry.ReporterSource), n, tr.ms)
			reviews[tr.version].Serve(tr.series(telemetry.ReporterDestination), n, tr.ms)
		}
		reportAll()
	}
	for _, s := range streams {
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}

	viewer := e.admin()
	checkGraph := func(window string, wantSource string) {
		t.Helper()
		var g graphView
		if res := viewer.do("GET", "/api/v1/graph?window="+window, nil, &g); res.status != http.StatusOK {
			t.Fatalf("graph: %d %s", res.status, res.body)
		}
		if g.Source != wantSource {
			t.Errorf("window %s read from %q, want %q", window, g.Source, wantSource)
		}
		nodes := map[string]string{}
		for _, n := range g.Nodes {
			nodes[n.ID] = n.Type
		}
		wantNodes := map[string]string{
			"workload:istio-system/istio-ingressgateway":    "gateway",
			"service:productpage.default.svc.cluster.local": "service",
			"workload:default/productpage-v1":               "workload",
			"service:reviews.default.svc.cluster.local":     "service",
			"workload:default/reviews-v1":                   "workload",
			"workload:default/reviews-v2":                   "workload",
		}
		if !maps.Equal(nodes, wantNodes) {
			t.Errorf("window %s: nodes %v, want %v", window, nodes, wantNodes)
		}

		type want struct {
			requests, errors int64
			codes            map[string]int64
			mix              []traffic // for the percentiles
		}
		v1, v2 := reviewsMix[:3], reviewsMix[3:]
		edges := map[[2]string]want{
			{"workload:istio-system/istio-ingressgateway", "service:productpage.default.svc.cluster.local"}: {600, 0, map[string]int64{"200": 600}, []traffic{{n: 600, ms: 30}}},
			{"service:productpage.default.svc.cluster.local", "workload:default/productpage-v1"}:            {600, 0, map[string]int64{"200": 600}, []traffic{{n: 600, ms: 30}}},
			{"workload:default/productpage-v1", "service:reviews.default.svc.cluster.local"}:                {600, 70, map[string]int64{"200": 500, "503": 70, "404": 30}, reviewsMix},
			{"service:reviews.default.svc.cluster.local", "workload:default/reviews-v1"}:                    {300, 35, map[string]int64{"200": 250, "503": 35, "404": 15}, v1},
			{"service:reviews.default.svc.cluster.local", "workload:default/reviews-v2"}:                    {300, 35, map[string]int64{"200": 250, "503": 35, "404": 15}, v2},
		}
		if len(g.Edges) != len(edges) {
			t.Errorf("window %s: %d edges, want %d: %+v", window, len(g.Edges), len(edges), g.Edges)
		}
		for _, ed := range g.Edges {
			w, ok := edges[[2]string{ed.Source, ed.Target}]
			if !ok {
				t.Errorf("window %s: unexpected edge %s → %s", window, ed.Source, ed.Target)
				continue
			}
			what := fmt.Sprintf("window %s, %s → %s", window, ed.Source, ed.Target)
			if ed.Requests != w.requests || ed.Errors != w.errors || !maps.Equal(ed.Codes, w.codes) {
				t.Errorf("%s: %d requests, %d errors, codes %v; want %d, %d, %v", what, ed.Requests, ed.Errors, ed.Codes, w.requests, w.errors, w.codes)
			}
			if want := float64(w.requests) / float64(g.WindowSeconds); ed.RPS != want {
				t.Errorf("%s: rps %v, want %v", what, ed.RPS, want)
			}
			if want := float64(w.requests-w.errors) / float64(w.requests); ed.SuccessRate == nil || *ed.SuccessRate != want {
				t.Errorf("%s: success rate %v, want %v", what, ed.SuccessRate, want)
			}
			if ed.RequestBytes != w.requests*telemetrytest.RequestSize || ed.ResponseBytes != w.requests*telemetrytest.ResponseSize {
				t.Errorf("%s: bytes %d / %d", what, ed.RequestBytes, ed.ResponseBytes)
			}
			checkPercentiles(t, what, ed.Summary, w.mix)
		}
	}
	checkGraph("1m", "live")

	// What the rollups hold once written: the same, from the 10 s table.
	if err := e.agg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	checkGraph("10m", "10s")

	// Time series per version, and of the edge from productpage.
	from := started.Add(-time.Minute).UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Minute).UTC().Format(time.RFC3339)
	var m metricsView
	q := url.Values{"service": {"reviews"}, "by": {"version"}, "from": {from}, "to": {to}, "step": {"24h"}}
	if res := viewer.do("GET", "/api/v1/metrics?"+q.Encode(), nil, &m); res.status != http.StatusOK {
		t.Fatalf("metrics: %d %s", res.status, res.body)
	}
	if m.Resolution != "10s" || m.StepSeconds != 86400 || len(m.Series) != 2 {
		t.Fatalf("metrics: resolution %s, step %d s, %d series", m.Resolution, m.StepSeconds, len(m.Series))
	}
	for i, version := range []string{"v1", "v2"} {
		ts := m.Series[i]
		if ts.Labels["version"] != version || ts.Labels["service"] != "reviews.default.svc.cluster.local" {
			t.Errorf("series %d labels %v", i, ts.Labels)
		}
		requests, errs := total(ts.Points)
		if requests != 300 || errs != 35 {
			t.Errorf("%s: %d requests, %d errors; want 300 and 35", version, requests, errs)
		}
		if p := onlyPoint(ts.Points); p != nil {
			checkPercentiles(t, "metrics "+version, p.Summary, reviewsMix[3*i:3*i+3])
		} else {
			t.Logf("%s: the traffic straddles two steps; percentiles not checked", version)
		}
	}

	q = url.Values{"source": {"default/productpage-v1"}, "service": {"reviews.default"}, "from": {from}, "to": {to}, "step": {"10s"}}
	m = metricsView{}
	if res := viewer.do("GET", "/api/v1/metrics?"+q.Encode(), nil, &m); res.status != http.StatusOK {
		t.Fatalf("metrics: %d %s", res.status, res.body)
	}
	if len(m.Series) != 1 || len(m.Series[0].Labels) != 0 {
		t.Fatalf("edge metrics: %+v", m.Series)
	}
	if requests, errs := total(m.Series[0].Points); requests != 600 || errs != 70 {
		t.Errorf("edge productpage → reviews: %d requests, %d errors; want 600 and 70", requests, errs)
	}
	for _, p := range m.Series[0].Points {
		if p.Requests == 0 && (p.SuccessRate != nil || p.P50 != nil || p.RPS != 0) {
			t.Errorf("an empty point has rates: %+v", p)
		}
		if p.Requests > 0 && p.RPS != float64(p.Requests)/10 {
			t.Errorf("point %+v: rps is not requests per 10 s", p)
		}
	}
	if neg := e.rec.Negative(); len(neg) > 0 {
		t.Errorf("negative deltas: %+v", neg)
	}
}

func total(points []telemetry.Point) (requests, errs int64) {
	for _, p := range points {
		requests += p.Requests
		errs += p.Errors
	}
	return requests, errs
}

// onlyPoint returns the one point with traffic, or nil when several have some.
func onlyPoint(points []telemetry.Point) *telemetry.Point {
	var only *telemetry.Point
	for i := range points {
		if points[i].Requests > 0 {
			if only != nil {
				return nil
			}
			only = &points[i]
		}
	}
	return only
}

// checkPercentiles checks that p50, p95 and p99 of s lie in the duration bucket holding the
// true percentile of mix.
func checkPercentiles(t *testing.T, what string, s telemetry.Summary, mix []traffic) {
	t.Helper()
	for _, p := range []struct {
		name string
		q    float64
		got  *float64
	}{{"p50", 0.50, s.P50}, {"p95", 0.95, s.P95}, {"p99", 0.99, s.P99}} {
		trueMs := truePercentile(mix, p.q)
		lower, upper := bucketOf(trueMs)
		if p.got == nil || *p.got < lower || *p.got > upper {
			t.Errorf("%s: %s = %v, want within (%v, %v], the bucket of the true %v ms", what, p.name, deref(p.got), lower, upper, trueMs)
		}
	}
}

// truePercentile is the q-quantile of the requests of mix, each taking its kind's ms.
func truePercentile(mix []traffic, q float64) float64 {
	sorted := append([]traffic(nil), mix...)
	for i := range sorted { // insertion sort by latency: the mixes are tiny
		for j := i; j > 0 && sorted[j].ms < sorted[j-1].ms; j-- {
			sorted[j], sorted[j-1] = sorted[j-1], sorted[j]
		}
	}
	n := 0
	for _, tr := range sorted {
		n += tr.n
	}
	rank := int(math.Ceil(q * float64(n))) // nearest rank
	seen := 0
	for _, tr := range sorted {
		seen += tr.n
		if seen >= rank {
			return tr.ms
		}
	}
	return sorted[len(sorted)-1].ms
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestTelemetryQueryErrors checks the answers to queries that cannot be answered as asked,
// and to a server without telemetry.
func TestTelemetryQueryErrors(t *testing.T) {
	t.Parallel()
	e := newTelemetryEnv(t)
	c := e.admin()
	for _, tt := range []struct {
		path, param string
	}{
		{"/api/v1/graph?window=soon", "window"},
		{"/api/v1/graph?window=-1m", "window"},
		{"/api/v1/graph?window=8760h", "window"},
		{"/api/v1/metrics?from=yesterday", "from"},
		{"/api/v1/metrics?to=1700000000&from=1800000000", "from"},
		{"/api/v1/metrics?step=0", "step"},
		{"/api/v1/metrics?step=1s&from=2026-01-01T00:00:00Z&to=2026-01-20T00:00:00Z", "step"},
		{"/api/v1/metrics?by=pod", "by"},
		{"/api/v1/metrics?source=/productpage", "source"},
	} {
		res := c.do("GET", tt.path, nil, nil)
		wantStatus(t, tt.path, res, http.StatusBadRequest, "")
		var p struct {
			Errors []FieldError `json:"errors"`
		}
		_ = json.Unmarshal(res.body, &p)
		if len(p.Errors) != 1 || p.Errors[0].Path != tt.param {
			t.Errorf("%s: errors %+v, want one about %s (%s)", tt.path, p.Errors, tt.param, res.detail)
		}
	}
	// Seconds are durations too, and Unix times are times.
	wantStatus(t, "graph in seconds", c.do("GET", "/api/v1/graph?window=30", nil, nil), http.StatusOK, "")
	wantStatus(t, "metrics in Unix seconds", c.do("GET", "/api/v1/metrics?from=1800000000&to=1800003600&step=60", nil, nil), http.StatusOK, "")

	// Without telemetry (newEnv's API) the routes exist and say so.
	plain := newEnv(t).admin()
	wantStatus(t, "graph without telemetry", plain.do("GET", "/api/v1/graph", nil, nil), http.StatusServiceUnavailable, "telemetry is not running")
	wantStatus(t, "metrics without telemetry", plain.do("GET", "/api/v1/metrics", nil, nil), http.StatusServiceUnavailable, "telemetry is not running")
	// And without credentials, nothing.
	wantStatus(t, "graph signed out", e.browser().do("GET", "/api/v1/graph", nil, nil), http.StatusUnauthorized, "")
}
