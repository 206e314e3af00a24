package telemetry

import (
	"encoding/json"
	"slices"
	"testing"
	"time"
)

func TestDiffGraph(t *testing.T) {
	t.Parallel()
	f := func(v float64) *float64 { return &v }
	svc := Node{ID: "service:" + reviews, Type: NodeService, Name: "reviews", Namespace: "default", Service: reviews}
	caller := Node{ID: "workload:default/productpage-v1", Type: NodeWorkload, Name: "productpage-v1", Namespace: "default", Version: "v1"}
	v1 := Node{ID: "workload:default/reviews-v1", Type: NodeWorkload, Name: "reviews-v1", Namespace: "default", Version: "v1"}
	v2 := Node{ID: "workload:default/reviews-v2", Type: NodeWorkload, Name: "reviews-v2", Namespace: "default", Version: "v2"}
	edge := func(from, to Node, requests int64, p50 float64) Edge {
		return Edge{
			ID: EdgeID(from.ID, to.ID), Source: from.ID, Target: to.ID,
			Summary:   Summary{Requests: requests, RPS: float64(requests) / 10, SuccessRate: f(1), P50: f(p50), P95: f(p50), P99: f(p50)},
			Protocols: []string{"http"}, Codes: map[string]int64{"200": requests},
		}
	}
	base := Graph{
		Nodes: []Node{svc, caller, v1},
		Edges: []Edge{edge(caller, svc, 10, 20), edge(svc, v1, 10, 20)},
	}
	withFlags := edge(svc, v1, 10, 20)
	withFlags.Flags = map[string]int64{"UF": 1}
	withMTLS := edge(svc, v1, 10, 20)
	withMTLS.MTLSShare = f(1)
	noID := edge(caller, svc, 10, 20)
	noID.ID = ""
	v1Versionless := v1
	v1Versionless.Version = ""

	for _, tc := range []struct {
		name       string
		prev, next Graph
		want       GraphDelta
	}{
		{name: "same graph", prev: base, next: base, want: GraphDelta{}},
		{name: "from nothing", prev: Graph{}, next: base, want: GraphDelta{Nodes: base.Nodes, Edges: base.Edges}},
		{name: "to nothing", prev: base, next: Graph{},
			want: GraphDelta{RemovedNodes: []string{v1.ID, svc.ID, caller.ID}, RemovedEdges: []string{base.Edges[1].ID, base.Edges[0].ID}}},
		{name: "a new version answers",
			prev: base,
			next: Graph{Nodes: []Node{svc, caller, v1, v2}, Edges: []Edge{edge(caller, svc, 20, 20), edge(svc, v1, 10, 20), edge(svc, v2, 10, 30)}},
			want: GraphDelta{Nodes: []Node{v2}, Edges: []Edge{edge(caller, svc, 20, 20), edge(svc, v2, 10, 30)}}},
		{name: "a version stops answering",
			prev: Graph{Nodes: []Node{svc, caller, v1, v2}, Edges: []Edge{edge(caller, svc, 20, 20), edge(svc, v1, 10, 20), edge(svc, v2, 10, 30)}},
			next: base,
			want: GraphDelta{Edges: []Edge{edge(caller, svc, 10, 20)}, RemovedNodes: []string{v2.ID}, RemovedEdges: []string{EdgeID(svc.ID, v2.ID)}}},
		{name: "only a percentile changed", prev: base,
			next: Graph{Nodes: base.Nodes, Edges: []Edge{edge(caller, svc, 10, 20), edge(svc, v1, 10, 21)}},
			want: GraphDelta{Edges: []Edge{edge(svc, v1, 10, 21)}}},
		{name: "flags appeared", prev: base,
			next: Graph{Nodes: base.Nodes, Edges: []Edge{edge(caller, svc, 10, 20), withFlags}},
			want: GraphDelta{Edges: []Edge{withFlags}}},
		{name: "mutual TLS share appeared", prev: base,
			next: Graph{Nodes: base.Nodes, Edges: []Edge{edge(caller, svc, 10, 20), withMTLS}},
			want: GraphDelta{Edges: []Edge{withMTLS}}},
		{name: "a node learned its version", prev: Graph{Nodes: []Node{svc, caller, v1Versionless}, Edges: base.Edges}, next: base,
			want: GraphDelta{Nodes: []Node{v1}}},
		{name: "an edge without an id is matched by its ends", prev: Graph{Nodes: base.Nodes, Edges: []Edge{noID, edge(svc, v1, 10, 20)}}, next: base,
			want: GraphDelta{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := DiffGraph(tc.prev, tc.next)
			want := tc.want
			for _, p := range []*[]string{&want.RemovedNodes, &want.RemovedEdges} {
				if *p == nil {
					*p = []string{}
				}
				slices.Sort(*p)
			}
			if want.Nodes == nil {
				want.Nodes = []Node{}
			}
			if want.Edges == nil {
				want.Edges = []Edge{}
			}
			g, _ := json.Marshal(got)
			w, _ := json.Marshal(want)
			if string(g) != string(w) {
				t.Errorf("DiffGraph:\n got %s\nwant %s", g, w)
			}
			if got.Empty() != (want.Size() == 0) {
				t.Errorf("Empty() = %v with %d items", got.Empty(), want.Size())
			}
		})
	}
}

// TestDiffGraphAppliedGivesNext holds the delta to its purpose: a client that applies it to
// the previous graph has the next one. The graphs are real ones, built from traffic.
func TestDiffGraphAppliedGivesNext(t *testing.T) {
	t.Parallel()
	rows := bookinfo()
	prev := BuildGraph(rows[:len(rows)/2], 10*time.Second, nil)
	next := BuildGraph(rows[len(rows)/3:], 10*time.Second, nil)
	d := DiffGraph(prev, next)
	if d.Empty() {
		t.Fatal("two different graphs gave an empty delta")
	}

	nodes := map[string]Node{}
	for _, n := range prev.Nodes {
		nodes[n.ID] = n
	}
	edges := map[string]Edge{}
	for _, e := range prev.Edges {
		edges[e.ID] = e
	}
	for _, id := range d.RemovedNodes {
		delete(nodes, id)
	}
	for _, id := range d.RemovedEdges {
		delete(edges, id)
	}
	for _, n := range d.Nodes {
		nodes[n.ID] = n
	}
	for _, e := range d.Edges {
		edges[e.ID] = e
	}
	var applied Graph
	for _, n := range nodes {
		applied.Nodes = append(applied.Nodes, n)
	}
	for _, e := range edges {
		applied.Edges = append(applied.Edges, e)
	}
	slices.SortFunc(applied.Nodes, func(a, b Node) int { return compareStrings(a.ID, b.ID) })
	slices.SortFunc(applied.Edges, func(a, b Edge) int { return compareStrings(a.ID, b.ID) })
	want := next
	want.Nodes = slices.Clone(next.Nodes)
	want.Edges = slices.Clone(next.Edges)
	slices.SortFunc(want.Nodes, func(a, b Node) int { return compareStrings(a.ID, b.ID) })
	slices.SortFunc(want.Edges, func(a, b Edge) int { return compareStrings(a.ID, b.ID) })
	a, _ := json.Marshal(applied)
	w, _ := json.Marshal(want)
	if string(a) != string(w) {
		t.Errorf("prev with the delta applied:\n%s\nwant next:\n%s", a, w)
	}
	if again := DiffGraph(next, next); !again.Empty() {
		t.Errorf("a graph against itself: %+v", again)
	}
}

func compareStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
