package telemetry

import (
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	productpage = "productpage.default.svc.cluster.local"
	reviews     = "reviews.default.svc.cluster.local"
	ratings     = "ratings.default.svc.cluster.local"
	details     = "details.default.svc.cluster.local"
)

// call describes requests from a caller (namespace/workload/version, "" for unknown) to a
// destination (service, workload, version; workload "" for unknown).
type call struct {
	reporter                 string
	srcNS, srcWL, srcVersion string
	svc, dstWL, dstVersion   string
	code, flags              string
	n                        int64
	// ms is the duration bucket (upper bound) all n fall in; 0 means 25.
	ms float64
}

func (c call) row() Row {
	s := Series{
		Reporter: c.reporter, SourceNamespace: or(c.srcNS), SourceWorkload: or(c.srcWL), SourceVersion: or(c.srcVersion),
		DestinationService: c.svc, DestinationWorkload: or(c.dstWL), DestinationVersion: or(c.dstVersion),
		ResponseCode: c.code, ResponseFlags: c.flags, Protocol: "http",
	}
	if s.ResponseFlags == "" {
		s.ResponseFlags = "-"
	}
	st := Stats{Requests: c.n, DurationCount: c.n}
	if IsError(s) {
		st.Errors = c.n
	}
	ms := c.ms
	if ms == 0 {
		ms = 25
	}
	st.Duration[bucketIndex(ms)] = c.n
	return Row{Series: s, Stats: st}
}

func or(v string) string {
	if v == "" {
		return Unknown
	}
	return v
}

// bookinfo is a minute of traffic as both ends report it.
func bookinfo() []Row {
	var calls []call
	both := func(c call) {
		c.reporter = ReporterSource
		calls = append(calls, c)
		c.reporter = ReporterDestination
		calls = append(calls, c)
	}
	// Gateway → productpage, 600 OK.
	both(call{srcNS: "istio-system", srcWL: "istio-ingressgateway", svc: productpage, dstWL: "productpage-v1", dstVersion: "v1", code: "200", n: 600})
	// Callers outside the mesh, seen only by productpage.
	calls = append(calls, call{reporter: ReporterDestination, svc: productpage, dstWL: "productpage-v1", dstVersion: "v1", code: "200", n: 10})
	// productpage → reviews v1 and v2: 250×200, 35×503, 15×404 each.
	for _, v := range []string{"v1", "v2"} {
		for _, cn := range []struct {
			code string
			n    int64
			ms   float64
		}{{"200", 250, 25}, {"503", 35, 250}, {"404", 15, 1000}} {
			both(call{srcNS: "default", srcWL: "productpage-v1", srcVersion: "v1", svc: reviews, dstWL: "reviews-" + v, dstVersion: v, code: cn.code, n: cn.n, ms: cn.ms})
		}
	}
	// productpage → ratings, which has no sidecar: only the caller reports.
	calls = append(calls, call{reporter: ReporterSource, srcNS: "default", srcWL: "productpage-v1", srcVersion: "v1", svc: ratings, code: "200", n: 20})
	// productpage → details: 40 OK reported by both; 5 aborted by an injected fault at the
	// caller, which details never saw.
	both(call{srcNS: "default", srcWL: "productpage-v1", srcVersion: "v1", svc: details, dstWL: "details-v1", dstVersion: "v1", code: "200", n: 40})
	calls = append(calls, call{reporter: ReporterSource, srcNS: "default", srcWL: "productpage-v1", srcVersion: "v1", svc: details, dstWL: "details-v1", dstVersion: "v1", code: "500", flags: "FI", n: 5})
	rows := make([]Row, len(calls))
	for i, c := range calls {
		rows[i] = c.row()
	}
	return rows
}

func TestSelect(t *testing.T) {
	rows := bookinfo()
	var total int64
	for _, r := range rows {
		total += r.Stats.Requests
	}
	var kept int64
	for _, r := range Select(rows) {
		kept += r.Stats.Requests
	}
	// Everything once: 600 + 10 + 600 + 20 + 40 + 5.
	if kept != 1275 {
		t.Errorf("Select kept %d of %d requests, want 1275", kept, total)
	}
	odd := rows[0]
	odd.Series.Reporter = "waypoint"
	if got := Select([]Row{odd}); len(got) != 0 {
		t.Errorf("an unknown reporter was kept: %+v", got)
	}
}

func TestBuildGraph(t *testing.T) {
	gateways := func(ns, wl string) bool { return ns == "istio-system" && wl == "istio-ingressgateway" }
	g := BuildGraph(bookinfo(), time.Minute, gateways)

	nodes := map[string]Node{}
	for _, n := range g.Nodes {
		nodes[n.ID] = n
	}
	wantNodes := map[string]Node{
		"unknown": {ID: "unknown", Type: NodeUnknown, Name: Unknown},
		"workload:istio-system/istio-ingressgateway": {ID: "workload:istio-system/istio-ingressgateway", Type: NodeGateway, Name: "istio-ingressgateway", Namespace: "istio-system"},
		"service:" + productpage:                     {ID: "service:" + productpage, Type: NodeService, Name: "productpage", Namespace: "default", Service: productpage},
		"service:" + reviews:                         {ID: "service:" + reviews, Type: NodeService, Name: "reviews", Namespace: "default", Service: reviews},
		"service:" + ratings:                         {ID: "service:" + ratings, Type: NodeService, Name: "ratings", Namespace: "default", Service: ratings},
		"service:" + details:                         {ID: "service:" + details, Type: NodeService, Name: "details", Namespace: "default", Service: details},
		"workload:default/productpage-v1":            {ID: "workload:default/productpage-v1", Type: NodeWorkload, Name: "productpage-v1", Namespace: "default", Version: "v1"},
		"workload:default/reviews-v1":                {ID: "workload:default/reviews-v1", Type: NodeWorkload, Name: "reviews-v1", Namespace: "default", Version: "v1"},
		"workload:default/reviews-v2":                {ID: "workload:default/reviews-v2", Type: NodeWorkload, Name: "reviews-v2", Namespace: "default", Version: "v2"},
		"workload:default/details-v1":                {ID: "workload:default/details-v1", Type: NodeWorkload, Name: "details-v1", Namespace: "default", Version: "v1"},
	}
	if !maps.Equal(nodes, wantNodes) {
		t.Errorf("nodes:\n%v\nwant:\n%v", nodes, wantNodes)
	}
	if !slices.IsSortedFunc(g.Nodes, func(a, b Node) int { return strings.Compare(a.ID, b.ID) }) {
		t.Error("nodes are not sorted by id")
	}

	type want struct {
		requests, errors int64
		codes            map[string]int64
		flags            map[string]int64
	}
	wantEdges := map[[2]string]want{
		{"workload:istio-system/istio-ingressgateway", "service:" + productpage}: {600, 0, map[string]int64{"200": 600}, nil},
		{"unknown", "service:" + productpage}:                                    {10, 0, map[string]int64{"200": 10}, nil},
		{"service:" + productpage, "workload:default/productpage-v1"}:            {610, 0, map[string]int64{"200": 610}, nil},
		{"workload:default/productpage-v1", "service:" + reviews}:                {600, 70, map[string]int64{"200": 500, "503": 70, "404": 30}, nil},
		{"service:" + reviews, "workload:default/reviews-v1"}:                    {300, 35, map[string]int64{"200": 250, "503": 35, "404": 15}, nil},
		{"service:" + reviews, "workload:default/reviews-v2"}:                    {300, 35, map[string]int64{"200": 250, "503": 35, "404": 15}, nil},
		{"workload:default/productpage-v1", "service:" + ratings}:                {20, 0, map[string]int64{"200": 20}, nil},
		{"workload:default/productpage-v1", "service:" + details}:                {45, 5, map[string]int64{"200": 40, "500": 5}, map[string]int64{"FI": 5}},
		// The injected faults name the subset the route picked, but details-v1 never saw
		// them: its edge has only what it answered.
		{"service:" + details, "workload:default/details-v1"}: {40, 0, map[string]int64{"200": 40}, nil},
	}
	if len(g.Edges) != len(wantEdges) {
		t.Errorf("%d edges, want %d: %v", len(g.Edges), len(wantEdges), edgeKeys(g))
	}
	for _, e := range g.Edges {
		w, ok := wantEdges[[2]string{e.Source, e.Target}]
		if !ok {
			t.Errorf("unexpected edge %s → %s", e.Source, e.Target)
			continue
		}
		if e.Requests != w.requests || e.Errors != w.errors || !maps.Equal(e.Codes, w.codes) || !maps.Equal(e.Flags, w.flags) {
			t.Errorf("%s → %s: %d requests, %d errors, codes %v, flags %v; want %+v", e.Source, e.Target, e.Requests, e.Errors, e.Codes, e.Flags, w)
		}
		if e.RPS != float64(w.requests)/60 {
			t.Errorf("%s → %s: rps %v, want %v", e.Source, e.Target, e.RPS, float64(w.requests)/60)
		}
		if !slices.Equal(e.Protocols, []string{"http"}) {
			t.Errorf("%s → %s: protocols %v", e.Source, e.Target, e.Protocols)
		}
	}

	// reviews' versions: 250 in (10,25], 35 in (100,250], 15 in (500,1000] each.
	for _, e := range g.Edges {
		if e.Target != "workload:default/reviews-v1" {
			continue
		}
		if *e.SuccessRate != 265.0/300 {
			t.Errorf("success rate %v, want %v", *e.SuccessRate, 265.0/300)
		}
		// p50: rank 150 of 250 in (10,25] → 19; p95: rank 285 is the last in (100,250] →
		// 250; p99: rank 297, 12 of 15 into (500,1000] → 900.
		if *e.P50 != 19 || *e.P95 != 250 || *e.P99 != 900 {
			t.Errorf("percentiles %v %v %v, want 19 250 900", *e.P50, *e.P95, *e.P99)
		}
	}

	// The JSON shape the API serves: Summary's fields flattened into the edge.
	b, err := json.Marshal(g.Edges[0])
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"source", "target", "requests", "errors", "rps", "successRate", "p50", "p95", "p99", "codes", "protocols", "requestBytes", "responseBytes"} {
		if _, ok := m[k]; !ok {
			t.Errorf("edge JSON %s lacks %q", b, k)
		}
	}
}

func TestBuildGraphEmpty(t *testing.T) {
	g := BuildGraph(nil, time.Minute, nil)
	b, _ := json.Marshal(g)
	if string(b) != `{"nodes":[],"edges":[]}` {
		t.Errorf("empty graph is %s", b)
	}
}

func edgeKeys(g Graph) [][2]string {
	var out [][2]string
	for _, e := range g.Edges {
		out = append(out, [2]string{e.Source, e.Target})
	}
	return out
}

func TestBuildTimeSeries(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0).UTC() // a multiple of 60 s
	at := func(r Row, offset time.Duration) Row { r.Bucket = t0.Add(offset); return r }
	v1 := call{reporter: ReporterDestination, srcNS: "default", srcWL: "productpage-v1", svc: reviews, dstWL: "reviews-v1", dstVersion: "v1", code: "200", n: 30}
	v2 := v1
	v2.dstWL, v2.dstVersion, v2.code, v2.n = "reviews-v2", "v2", "503", 6
	v2src := v2
	v2src.reporter = ReporterSource // reviews-v2's own report covers it: not counted again
	rows := []Row{
		at(v1.row(), 0), at(v1.row(), 10*time.Second), at(v2.row(), 20*time.Second), at(v2src.row(), 20*time.Second),
		at(v1.row(), 60*time.Second),
		at(v1.row(), 3*time.Minute), // outside [t0, t0+2m)
	}

	all := BuildTimeSeries(rows, t0, t0.Add(2*time.Minute), time.Minute, GroupNone)
	if len(all) != 1 || len(all[0].Points) != 2 {
		t.Fatalf("got %+v, want one series of 2 points", all)
	}
	p := all[0].Points
	if !p[0].T.Equal(t0) || p[0].Requests != 66 || p[0].Errors != 6 || p[0].RPS != 66.0/60 || *p[0].SuccessRate != 60.0/66 {
		t.Errorf("first point %+v", p[0])
	}
	if !p[1].T.Equal(t0.Add(time.Minute)) || p[1].Requests != 30 || p[1].Errors != 0 {
		t.Errorf("second point %+v", p[1])
	}

	byVersion := BuildTimeSeries(rows, t0, t0.Add(2*time.Minute), time.Minute, GroupVersion)
	if len(byVersion) != 2 {
		t.Fatalf("%d series by version, want 2", len(byVersion))
	}
	if l := byVersion[0].Labels; l["service"] != reviews || l["version"] != "v1" || byVersion[0].Points[0].Requests != 60 {
		t.Errorf("v1 series %+v", byVersion[0])
	}
	// v2 had no traffic in the second minute: the point is there, with null rates.
	if l := byVersion[1].Labels; l["version"] != "v2" || byVersion[1].Points[0].Requests != 6 || byVersion[1].Points[1].Requests != 0 || byVersion[1].Points[1].SuccessRate != nil {
		t.Errorf("v2 series %+v", byVersion[1])
	}

	bySource := BuildTimeSeries(rows, t0, t0.Add(2*time.Minute), time.Minute, GroupSource)
	if len(bySource) != 1 || bySource[0].Labels["source"] != "default/productpage-v1" {
		t.Errorf("by source %+v", bySource)
	}

	// No traffic: still one series with every point, for a chart's axis.
	none := BuildTimeSeries(nil, t0, t0.Add(time.Minute), 10*time.Second, GroupNone)
	if len(none) != 1 || len(none[0].Points) != 6 || none[0].Labels == nil {
		t.Errorf("no traffic: %+v", none)
	}
	if none := BuildTimeSeries(nil, t0, t0.Add(time.Minute), 10*time.Second, GroupVersion); len(none) != 0 {
		t.Errorf("no traffic by version: %+v, want no series", none)
	}
}

func TestAlignDown(t *testing.T) {
	for _, tt := range []struct {
		in   int64
		step time.Duration
		want int64
	}{{125, 10 * time.Second, 120}, {120, time.Minute, 120}, {179, time.Minute, 120}, {-5, 10 * time.Second, -10}} {
		if got := AlignDown(time.Unix(tt.in, 0), tt.step).Unix(); got != tt.want {
			t.Errorf("AlignDown(%d, %s) = %d, want %d", tt.in, tt.step, got, tt.want)
		}
	}
}

// TestBuildGraphMTLSShare gives each edge the share of its destination-reported requests that
// came over mutual TLS, and none to an edge no destination reported.
func TestBuildGraphMTLSShare(t *testing.T) {
	const D, S = ReporterDestination, ReporterSource
	mtls := func(c call, n int64) Row {
		r := c.row()
		r.Stats.MTLSRequests = n
		return r
	}
	rows := []Row{
		// reviews: all over mutual TLS, reported by both ends (the caller's rows drop out).
		mtls(call{reporter: D, srcNS: "default", srcWL: "productpage-v1", srcVersion: "v1", svc: reviews, dstWL: "reviews-v1", dstVersion: "v1", code: "200", n: 10}, 10),
		call{reporter: S, srcNS: "default", srcWL: "productpage-v1", srcVersion: "v1", svc: reviews, dstWL: "reviews-v1", dstVersion: "v1", code: "200", n: 10}.row(),
		// ratings: 4 of 10 over mutual TLS.
		mtls(call{reporter: D, srcNS: "default", srcWL: "reviews-v2", srcVersion: "v2", svc: ratings, dstWL: "ratings-v1", dstVersion: "v1", code: "200", n: 6}, 0),
		mtls(call{reporter: D, srcNS: "default", srcWL: "reviews-v2", srcVersion: "v2", svc: ratings, dstWL: "ratings-v1", dstVersion: "v1", code: "503", n: 4}, 4),
		// details: the aborts the caller answered itself are not in the share's base.
		mtls(call{reporter: D, srcNS: "default", srcWL: "productpage-v1", srcVersion: "v1", svc: details, dstWL: "details-v1", dstVersion: "v1", code: "200", n: 40}, 40),
		call{reporter: S, srcNS: "default", srcWL: "productpage-v1", srcVersion: "v1", svc: details, dstWL: "details-v1", dstVersion: "v1", code: "500", flags: "FI", n: 5}.row(),
		// A destination without a sidecar: only its caller reported.
		call{reporter: S, srcNS: "default", srcWL: "productpage-v1", srcVersion: "v1", svc: "httpbin.org", code: "200", n: 3}.row(),
	}
	g := BuildGraph(rows, time.Minute, nil)
	one, part := 1.0, 0.4
	for _, tc := range []struct {
		from, to string
		want     *float64
	}{
		{"workload:default/productpage-v1", "service:" + reviews, &one},
		{"service:" + reviews, "workload:default/reviews-v1", &one},
		{"workload:default/reviews-v2", "service:" + ratings, &part},
		{"service:" + ratings, "workload:default/ratings-v1", &part},
		{"workload:default/productpage-v1", "service:" + details, &one},
		{"workload:default/productpage-v1", "service:httpbin.org", nil},
	} {
		var e *Edge
		for i := range g.Edges {
			if g.Edges[i].Source == tc.from && g.Edges[i].Target == tc.to {
				e = &g.Edges[i]
			}
		}
		switch {
		case e == nil:
			t.Errorf("no edge %s → %s", tc.from, tc.to)
		case (e.MTLSShare == nil) != (tc.want == nil) || (e.MTLSShare != nil && *e.MTLSShare != *tc.want):
			t.Errorf("%s → %s: mtlsShare %v, want %v", tc.from, tc.to, ptrString(e.MTLSShare), ptrString(tc.want))
		}
		if e != nil && tc.want == nil {
			b, _ := json.Marshal(e)
			if !strings.Contains(string(b), `"mtlsShare":null`) {
				t.Errorf("edge JSON %s, want mtlsShare null", b)
			}
		}
	}
}

func ptrString(f *float64) string {
	if f == nil {
		return "null"
	}
	return strconv.FormatFloat(*f, 'g', -1, 64)
}
