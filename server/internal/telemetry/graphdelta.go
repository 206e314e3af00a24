package telemetry

import (
	"maps"
	"reflect"
	"slices"
)

// EdgeID is the ID of the edge from the node source to the node target. Node IDs never hold
// "->", so the ID names one edge.
func EdgeID(source, target string) string { return source + "->" + target }

// GraphDelta is what changed from one graph to the next: the nodes and edges that are new or
// whose content changed (whole), and the IDs of those that are gone. Its slices are never
// nil, so that it encodes as empty JSON arrays.
type GraphDelta struct {
	Nodes        []Node   `json:"nodes"`
	Edges        []Edge   `json:"edges"`
	RemovedNodes []string `json:"removedNodes"`
	RemovedEdges []string `json:"removedEdges"`
}

// Size is the number of items the delta carries: changed nodes and edges, and removed IDs.
func (d GraphDelta) Size() int {
	return len(d.Nodes) + len(d.Edges) + len(d.RemovedNodes) + len(d.RemovedEdges)
}

// Empty reports whether nothing changed.
func (d GraphDelta) Empty() bool { return d.Size() == 0 }

// DiffGraph returns the delta that turns prev into next. Nodes and edges are matched by ID
// (an edge without one by EdgeID of its ends); an edge whose figures changed in any way is
// in the delta whole. The result lists items in next's order, and removed IDs sorted.
// Neither graph is modified, and the delta shares no maps with them.
func DiffGraph(prev, next Graph) GraphDelta {
	d := GraphDelta{Nodes: []Node{}, Edges: []Edge{}, RemovedNodes: []string{}, RemovedEdges: []string{}}
	oldNodes := make(map[string]*Node, len(prev.Nodes))
	for i := range prev.Nodes {
		oldNodes[prev.Nodes[i].ID] = &prev.Nodes[i]
	}
	seen := make(map[string]bool, len(next.Nodes))
	for _, n := range next.Nodes {
		seen[n.ID] = true
		if old, ok := oldNodes[n.ID]; !ok || *old != n {
			d.Nodes = append(d.Nodes, n)
		}
	}
	for id := range oldNodes {
		if !seen[id] {
			d.RemovedNodes = append(d.RemovedNodes, id)
		}
	}

	oldEdges := make(map[string]*Edge, len(prev.Edges))
	for i := range prev.Edges {
		oldEdges[edgeID(&prev.Edges[i])] = &prev.Edges[i]
	}
	clear(seen)
	for i := range next.Edges {
		e := &next.Edges[i]
		id := edgeID(e)
		seen[id] = true
		if old, ok := oldEdges[id]; !ok || !sameEdge(old, e) {
			d.Edges = append(d.Edges, cloneEdge(e, id))
		}
	}
	for id := range oldEdges {
		if !seen[id] {
			d.RemovedEdges = append(d.RemovedEdges, id)
		}
	}
	slices.Sort(d.RemovedNodes)
	slices.Sort(d.RemovedEdges)
	return d
}

func edgeID(e *Edge) string {
	if e.ID != "" {
		return e.ID
	}
	return EdgeID(e.Source, e.Target)
}

// sameEdge reports whether two edges would show the same: same ends and the same figures.
// Missing and empty maps are alike, as they are to a client reading the JSON.
func sameEdge(a, b *Edge) bool {
	return a.Source == b.Source && a.Target == b.Target &&
		reflect.DeepEqual(a.Summary, b.Summary) && reflect.DeepEqual(a.MTLSShare, b.MTLSShare) &&
		slices.Equal(a.Protocols, b.Protocols) &&
		maps.Equal(a.Codes, b.Codes) && maps.Equal(a.Flags, b.Flags)
}

// cloneEdge copies e with its ID set, so that a delta kept by a caller does not change with
// the graph it came from.
func cloneEdge(e *Edge, id string) Edge {
	c := *e
	c.ID = id
	c.Protocols = slices.Clone(e.Protocols)
	c.Codes = maps.Clone(e.Codes)
	c.Flags = maps.Clone(e.Flags)
	for _, p := range []**float64{&c.SuccessRate, &c.P50, &c.P95, &c.P99, &c.MTLSShare} {
		if *p != nil {
			v := **p
			*p = &v
		}
	}
	return c
}
