package telemetry

import (
	"cmp"
	"slices"
	"time"
)

// Node types of the graph.
const (
	// NodeService is a service (a destination_service host).
	NodeService = "service"
	// NodeWorkload is a workload: one version of a service's deployment, as a caller or as
	// the one that answered.
	NodeWorkload = "workload"
	// NodeGateway is a workload that is an ingress or egress gateway.
	NodeGateway = "gateway"
	// NodeUnknown is every caller the mesh cannot name (outside the mesh, or without a proxy
	// that says who it is).
	NodeUnknown = "unknown"
)

// UnknownNodeID is the ID of the one NodeUnknown node.
const UnknownNodeID = "unknown"

// Node is a node of the traffic graph.
type Node struct {
	// ID is "service:<host>", "workload:<namespace>/<name>" (for gateways too) or "unknown".
	ID   string `json:"id"`
	Type string `json:"type"`
	// Name is the service's short name or the workload's name.
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	// Service is a service node's host, such as "reviews.default.svc.cluster.local".
	Service string `json:"service,omitempty"`
	// Version is a workload's version label.
	Version string `json:"version,omitempty"`
}

// Edge is traffic from one node to another: from a caller to a service, or from a service to
// the workload (version) that answered.
type Edge struct {
	// ID is "<source>-><target>" (see EdgeID): stable for as long as the edge exists.
	ID     string `json:"id"`
	Source string `json:"source"`
	Target string `json:"target"`
	Summary
	// Protocols are the request protocols seen ("http", "grpc"), sorted.
	Protocols []string `json:"protocols"`
	// Codes counts requests by response code.
	Codes map[string]int64 `json:"codes"`
	// Flags counts requests by response flags, for requests that had any.
	Flags map[string]int64 `json:"flags,omitempty"`
	// MTLSShare is the share (0 to 1) of the requests reported by their destination's proxy
	// that came over mutual TLS; nil when no destination proxy reported any of the edge's
	// requests (a destination without a sidecar, or requests its caller answered itself).
	MTLSShare *float64 `json:"mtlsShare"`
}

// Graph is the mesh's traffic over a window.
type Graph struct {
	Nodes []Node `json:"nodes"`
	Edges []Edge `json:"edges"`
}

type edgeKey struct{ source, target string }

type edgeAcc struct {
	stats     Stats
	protocols map[string]bool
	codes     map[string]int64
	flags     map[string]int64
	// destRequests counts the requests reported by their destination, the base of MTLSShare.
	destRequests int64
}

// BuildGraph builds the traffic graph of rows (as reported: Select runs first), whose
// traffic spans window. isGateway tells which workloads are gateways; nil means none.
func BuildGraph(rows []Row, window time.Duration, isGateway func(namespace, workload string) bool) Graph {
	nodes := map[string]*Node{}
	edges := map[edgeKey]*edgeAcc{}
	node := func(n Node) string {
		if have, ok := nodes[n.ID]; ok {
			if isUnknown(have.Version) && !isUnknown(n.Version) {
				have.Version = n.Version
			}
			return n.ID
		}
		nodes[n.ID] = &n
		return n.ID
	}
	workload := func(namespace, name, version string) string {
		if isUnknown(name) {
			return node(Node{ID: UnknownNodeID, Type: NodeUnknown, Name: Unknown})
		}
		typ := NodeWorkload
		if isGateway != nil && isGateway(namespace, name) {
			typ = NodeGateway
		}
		if isUnknown(version) {
			version = ""
		}
		return node(Node{ID: "workload:" + namespace + "/" + name, Type: typ, Name: name, Namespace: namespace, Version: version})
	}
	add := func(from, to string, r *Row) {
		k := edgeKey{from, to}
		e := edges[k]
		if e == nil {
			e = &edgeAcc{protocols: map[string]bool{}, codes: map[string]int64{}, flags: map[string]int64{}}
			edges[k] = e
		}
		e.stats.Add(&r.Stats)
		if r.Series.Reporter == ReporterDestination {
			e.destRequests += r.Stats.Requests
		}
		if r.Series.Protocol != "" {
			e.protocols[r.Series.Protocol] = true
		}
		if r.Stats.Requests > 0 {
			e.codes[r.Series.ResponseCode] += r.Stats.Requests
			if f := r.Series.ResponseFlags; f != "" && f != "-" {
				e.flags[f] += r.Stats.Requests
			}
		}
	}

	for _, r := range Select(rows) {
		if r.Stats.IsZero() {
			continue
		}
		s := &r.Series
		src := workload(s.SourceNamespace, s.SourceWorkload, s.SourceVersion)
		host := s.DestinationService
		if host == "" {
			host = Unknown
		}
		name, ns := SplitService(host)
		svc := node(Node{ID: "service:" + host, Type: NodeService, Name: name, Namespace: ns, Service: host})
		add(src, svc, &r)
		// A workload's edge shows what it answered: not the requests its caller's proxy
		// answered itself (an injected abort names the subset, but never reached it).
		if !isUnknown(s.DestinationWorkload) && (s.Reporter == ReporterDestination || !NotForwarded(s.ResponseFlags)) {
			add(svc, workload(ns, s.DestinationWorkload, s.DestinationVersion), &r)
		}
	}

	g := Graph{Nodes: make([]Node, 0, len(nodes)), Edges: make([]Edge, 0, len(edges))}
	for _, n := range nodes {
		g.Nodes = append(g.Nodes, *n)
	}
	slices.SortFunc(g.Nodes, func(a, b Node) int { return cmp.Compare(a.ID, b.ID) })
	seconds := window.Seconds()
	for k, e := range edges {
		ed := Edge{ID: EdgeID(k.source, k.target), Source: k.source, Target: k.target, Summary: Summarize(&e.stats, seconds), Codes: e.codes, Protocols: []string{}}
		for p := range e.protocols {
			ed.Protocols = append(ed.Protocols, p)
		}
		slices.Sort(ed.Protocols)
		if len(e.flags) > 0 {
			ed.Flags = e.flags
		}
		if e.destRequests > 0 {
			share := min(float64(e.stats.MTLSRequests)/float64(e.destRequests), 1)
			ed.MTLSShare = &share
		}
		g.Edges = append(g.Edges, ed)
	}
	slices.SortFunc(g.Edges, func(a, b Edge) int {
		return cmp.Or(cmp.Compare(a.Source, b.Source), cmp.Compare(a.Target, b.Target))
	})
	return g
}
