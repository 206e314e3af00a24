package ctl

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestLiveGraphApply(t *testing.T) {
	g := liveGraph{nodes: map[string]graphNode{}, edges: map[string]graphEdge{}}
	msg := func(s string) liveMessage {
		var m liveMessage
		if err := json.Unmarshal([]byte(s), &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	steps := []struct {
		name string
		msg  string
		want []string // rows, as "SOURCE DESTINATION RPS"
	}{
		{"full", `{"type":"graph","full":true,
			"nodes":[{"id":"workload:default/productpage-v1","type":"workload","name":"productpage-v1","namespace":"default"},
			         {"id":"service:reviews.default.svc.cluster.local","type":"service","name":"reviews","namespace":"default","service":"reviews.default.svc.cluster.local"},
			         {"id":"workload:default/reviews-v1","type":"workload","name":"reviews-v1","namespace":"default","version":"v1"}],
			"edges":[{"id":"a","source":"workload:default/productpage-v1","target":"service:reviews.default.svc.cluster.local","rps":3},
			         {"id":"b","source":"service:reviews.default.svc.cluster.local","target":"workload:default/reviews-v1","rps":3}]}`,
			[]string{"default/productpage-v1 reviews.default 3.00", "reviews.default default/reviews-v1 3.00"}},
		{"delta: a new version, busier", `{"type":"graph","full":false,
			"nodes":[{"id":"workload:default/reviews-v2","type":"workload","name":"reviews-v2","namespace":"default","version":"v2"}],
			"edges":[{"id":"a","source":"workload:default/productpage-v1","target":"service:reviews.default.svc.cluster.local","rps":25},
			         {"id":"c","source":"service:reviews.default.svc.cluster.local","target":"workload:default/reviews-v2","rps":22}],
			"removedNodes":[],"removedEdges":[]}`,
			[]string{"default/productpage-v1 reviews.default 25.0", "reviews.default default/reviews-v2 22.0", "reviews.default default/reviews-v1 3.00"}},
		{"delta: v1 leaves", `{"type":"graph","full":false,"nodes":[],"edges":[],
			"removedNodes":["workload:default/reviews-v1"],"removedEdges":["b"]}`,
			[]string{"default/productpage-v1 reviews.default 25.0", "reviews.default default/reviews-v2 22.0"}},
		{"full again replaces all", `{"type":"graph","full":true,"nodes":[],"edges":[]}`, nil},
	}
	for _, s := range steps {
		if err := g.apply(msg(s.msg)); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		var got []string
		for _, r := range g.rows() {
			got = append(got, strings.Join(r[:3], " "))
		}
		if strings.Join(got, "\n") != strings.Join(s.want, "\n") {
			t.Errorf("%s: rows\n%s\nwant\n%s", s.name, strings.Join(got, "\n"), strings.Join(s.want, "\n"))
		}
	}
}

func TestTrafficFiguresAdd(t *testing.T) {
	f := func(v float64) *float64 { return &v }
	var sum trafficFigures
	sum.add(trafficFigures{Requests: 40, RPS: 4, P50: f(18), P95: f(24), P99: f(25)})
	sum.add(trafficFigures{Requests: 10, Errors: 10, RPS: 1, P50: f(375), P95: f(488), P99: nil})
	if sum.Requests != 50 || sum.Errors != 10 || sum.RPS != 5 || *sum.SuccessRate != 0.8 {
		t.Errorf("sum %+v, want 50 requests, 10 errors, 5 rps, 80%% success", sum)
	}
	if *sum.P50 != 375 || *sum.P95 != 488 || *sum.P99 != 25 {
		t.Errorf("percentiles %v %v %v, want the highest of each", *sum.P50, *sum.P95, *sum.P99)
	}
	if got := strings.Join(sum.cells(), " "); got != "5.00 80.00% 375ms 488ms 25ms" {
		t.Errorf("cells %q", got)
	}
}

func TestTapLine(t *testing.T) {
	raw := json.RawMessage(`{"time":"2026-01-31T15:04:05.5Z","sourceWorkload":"productpage-v1","sourceNamespace":"default",
		"destinationService":"reviews.default.svc.cluster.local","destinationVersion":"v2","method":"GET",
		"path":"/reviews/0\u001b[2J","responseCode":503,"responseFlags":"UF","durationMs":1500}`)
	got, err := tapLine(raw, outLines)
	if err != nil {
		t.Fatal(err)
	}
	if want := "2026-01-31T15:04:05.500Z GET /reviews/0 [2J 503 1.50s default/productpage-v1 → reviews.default v2 UF"; got != want {
		t.Errorf("line\n%q\nwant\n%q", got, want)
	}
	got, err = tapLine(json.RawMessage(`{"time":"2026-01-31T15:04:05Z","sourceWorkload":"unknown","destinationService":"httpbin.org"}`), outLines)
	if err != nil {
		t.Fatal(err)
	}
	if want := "2026-01-31T15:04:05.000Z - - - 0.0ms unknown → httpbin.org - -"; got != want {
		t.Errorf("line of an entry with little in it\n%q\nwant\n%q", got, want)
	}
	got, err = tapLine(json.RawMessage("{\n  \"path\": \"/x\"\n}"), outJSON)
	if err != nil || got != `{"path":"/x"}` {
		t.Errorf("-o json line %q, %v", got, err)
	}
}
