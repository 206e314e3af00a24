package ctl

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

var topCommand = command{
	name:    "top",
	summary: "watch the mesh's traffic live: rate, success rate and latency per edge",
	about: `
Shows one row per edge of the traffic graph, busiest first: a caller calling a service
(SOURCE workload, DESTINATION service) and a service answered by one of its versions
(SOURCE service, DESTINATION workload), with requests per second, success rate and the
p50, p95 and p99 latency over the last --window. It follows the server's live graph
(GET /api/v1/live) and redraws every second until interrupted; on a terminal it redraws in
place, otherwise it prints one table a second. --once prints the current table and exits.`,
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		namespace := ""
		window := 10 * time.Second
		once := false
		fs.add(stringValue{&namespace}, "namespace", "n", "NS", "all", "show only the edges with an end in this namespace")
		fs.add(durationValue{&window}, "window", "", "DURATION", "10s", "what each figure covers, from 1s to 5m")
		fs.add(boolValue{&once}, "once", "", "", "", "print the current table and exit")
		return func(ctx context.Context, args []string) error {
			if err := wantArgs("top", "", args, 0, 0); err != nil {
				return err
			}
			if window < time.Second || window > 5*time.Minute {
				return &UsageError{fmt.Sprintf("top: --window %s must be from 1s to 5m", window)}
			}
			cl, err := c.apiClient()
			if err != nil {
				return err
			}
			ls, err := cl.openLive(ctx)
			if err != nil {
				return err
			}
			defer ls.close()
			params := map[string]string{"window": window.String(), "namespace": namespace}
			if err := ls.subscribe("top", "graph", params); err != nil {
				return err
			}
			terminal := isTerminal(c.stdout)
			g := liveGraph{nodes: map[string]graphNode{}, edges: map[string]graphEdge{}}
			for {
				m, err := ls.next()
				if err != nil {
					return err
				}
				if m.Type != "graph" {
					continue
				}
				if err := g.apply(m); err != nil {
					return err
				}
				if terminal {
					fmt.Fprintf(c.stdout, "\x1b[H\x1b[2J%s  traffic over the last %s (Ctrl-C to stop)\n\n", m.Time.Local().Format("15:04:05"), window)
				}
				if err := writeTable(c.stdout, []string{"SOURCE", "DESTINATION", "RPS", "SUCCESS", "P50", "P95", "P99"}, g.rows()); err != nil {
					return err
				}
				if once {
					if len(g.edges) == 0 {
						fmt.Fprintf(c.stderr, "No traffic in the last %s.\n", window)
					}
					return nil
				}
				if !terminal {
					fmt.Fprintln(c.stdout)
				}
			}
		}
	},
}

// graphNode and graphEdge are the parts of the server's graph JSON (GET /api/v1/graph and
// the live graph topic) that sluicectl shows.
type graphNode struct {
	ID        string `json:"id"`
	Type      string `json:"type"`
	Name      string `json:"name"`
	Namespace string `json:"namespace"`
	Service   string `json:"service"`
	Version   string `json:"version"`
}

type graphEdge struct {
	ID     string `json:"id"`
	Source string `json:"source"`
	Target string `json:"target"`
	trafficFigures
}

// trafficFigures are the server's figures of some traffic (its "Traffic" schema).
type trafficFigures struct {
	Requests    int64    `json:"requests"`
	Errors      int64    `json:"errors"`
	RPS         float64  `json:"rps"`
	SuccessRate *float64 `json:"successRate"`
	P50         *float64 `json:"p50"`
	P95         *float64 `json:"p95"`
	P99         *float64 `json:"p99"`
}

// liveGraph is the graph as the live topic's full and delta messages build it.
type liveGraph struct {
	nodes map[string]graphNode
	edges map[string]graphEdge
}

func (g *liveGraph) apply(m liveMessage) error {
	var nodes []graphNode
	var edges []graphEdge
	if err := json.Unmarshal(orEmpty(m.Nodes), &nodes); err != nil {
		return fmt.Errorf("the live graph from the server is not what sluicectl expects: %w", err)
	}
	if err := json.Unmarshal(orEmpty(m.Edges), &edges); err != nil {
		return fmt.Errorf("the live graph from the server is not what sluicectl expects: %w", err)
	}
	if m.Full {
		clear(g.nodes)
		clear(g.edges)
	}
	for _, id := range m.RemovedNodes {
		delete(g.nodes, id)
	}
	for _, id := range m.RemovedEdges {
		delete(g.edges, id)
	}
	for _, n := range nodes {
		g.nodes[n.ID] = n
	}
	for _, e := range edges {
		if e.ID == "" {
			e.ID = e.Source + "->" + e.Target
		}
		g.edges[e.ID] = e
	}
	return nil
}

func orEmpty(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return json.RawMessage("null")
	}
	return raw
}

// rows lists the edges busiest first, then by name.
func (g *liveGraph) rows() [][]string {
	type row struct {
		rps   float64
		cells []string
	}
	rows := make([]row, 0, len(g.edges))
	for _, e := range g.edges {
		rows = append(rows, row{e.RPS, append([]string{g.label(e.Source), g.label(e.Target)}, e.trafficFigures.cells()...)})
	}
	slices.SortFunc(rows, func(a, b row) int {
		return cmp.Or(cmp.Compare(b.rps, a.rps), cmp.Compare(a.cells[0], b.cells[0]), cmp.Compare(a.cells[1], b.cells[1]))
	})
	out := make([][]string, len(rows))
	for i, r := range rows {
		out[i] = r.cells
	}
	return out
}

// label names a node as people know it: "reviews.default" for a service, "default/reviews-v1"
// for a workload.
func (g *liveGraph) label(id string) string {
	n, ok := g.nodes[id]
	if !ok {
		return id
	}
	switch n.Type {
	case "service":
		return shortHost(n.Service)
	case "workload", "gateway":
		if n.Namespace != "" {
			return n.Namespace + "/" + n.Name
		}
	}
	return n.Name
}

// shortHost drops a mesh host's ".svc.<domain>": "reviews.default.svc.cluster.local" is
// "reviews.default". Other hosts are shown whole.
func shortHost(host string) string {
	parts := strings.SplitN(host, ".", 4)
	if len(parts) >= 3 && parts[2] == "svc" {
		return parts[0] + "." + parts[1]
	}
	return host
}

// cells are the RPS, SUCCESS, P50, P95 and P99 columns.
func (f trafficFigures) cells() []string {
	success := ""
	if f.SuccessRate != nil {
		success = fmt.Sprintf("%.2f%%", *f.SuccessRate*100)
	}
	rps := fmt.Sprintf("%.1f", f.RPS)
	if f.RPS < 10 {
		rps = fmt.Sprintf("%.2f", f.RPS) // a trickle still shows
	}
	return []string{rps, success, millis(f.P50), millis(f.P95), millis(f.P99)}
}

// millis shows a duration in milliseconds, or "" for none.
func millis(ms *float64) string {
	switch {
	case ms == nil:
		return ""
	case *ms >= 1000:
		return fmt.Sprintf("%.2fs", *ms/1000)
	case *ms >= 10:
		return fmt.Sprintf("%.0fms", *ms)
	}
	return fmt.Sprintf("%.1fms", *ms)
}

// isTerminal reports whether w is a terminal, where top redraws in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	if err != nil || fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	null, err := os.Stat(os.DevNull)
	return err != nil || !os.SameFile(fi, null)
}

// liveStream is an open live WebSocket (GET /api/v1/live). Its messages are read with next
// by one goroutine; close ends it.
type liveStream struct {
	cl   *client
	ws   *websocket.Conn
	stop func() bool
	ctx  context.Context

	closeOnce sync.Once
}

// liveMessage is a message from the server; each topic uses some of the fields.
type liveMessage struct {
	Type         string          `json:"type"`
	ID           string          `json:"id"`
	Message      string          `json:"message"`
	Time         time.Time       `json:"time"`
	Full         bool            `json:"full"`
	Nodes        json.RawMessage `json:"nodes"`
	Edges        json.RawMessage `json:"edges"`
	RemovedNodes []string        `json:"removedNodes"`
	RemovedEdges []string        `json:"removedEdges"`
	Entries      json.RawMessage `json:"entries"`
	Dropped      int             `json:"dropped"`
}

// maxLiveMessage bounds a message read from the server: a full graph of a large mesh is a
// few MiB.
const maxLiveMessage = 32 << 20

// openLive connects to the server's live WebSocket with the client's credentials. An
// interrupt (ctx) closes it.
func (cl *client) openLive(ctx context.Context) (*liveStream, error) {
	u := "ws" + strings.TrimPrefix(cl.base, "http") + "/api/v1/live"
	d := websocket.Dialer{Proxy: http.ProxyFromEnvironment, HandshakeTimeout: cl.timeout}
	h := http.Header{"User-Agent": {"sluicectl"}}
	if cl.token != "" {
		h.Set("Authorization", "Bearer "+cl.token)
	}
	dctx, cancel := context.WithTimeout(ctx, cl.timeout)
	defer cancel()
	ws, resp, err := d.DialContext(dctx, u, h)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			defer resp.Body.Close()
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			return nil, cl.statusError(resp, body, request{method: http.MethodGet, path: "/api/v1/live"})
		}
		if ctx.Err() == nil && dctx.Err() != nil {
			err = context.DeadlineExceeded
		}
		return nil, cl.transportError(ctx, err)
	}
	ws.SetReadLimit(maxLiveMessage)
	ls := &liveStream{cl: cl, ws: ws, ctx: ctx}
	// An interrupt unblocks a read in progress by closing the connection.
	ls.stop = context.AfterFunc(ctx, func() { _ = ws.Close() })
	return ls, nil
}

// subscribe asks for a topic under id.
func (ls *liveStream) subscribe(id, topic string, params map[string]string) error {
	msg := map[string]any{"type": "subscribe", "id": id, "topic": topic, "params": params}
	_ = ls.ws.SetWriteDeadline(time.Now().Add(ls.cl.timeout))
	if err := ls.ws.WriteJSON(msg); err != nil {
		return ls.readError(err)
	}
	return nil
}

// next returns the next message. An error message from the server, or the end of the
// stream, is an error.
func (ls *liveStream) next() (liveMessage, error) {
	var m liveMessage
	_, b, err := ls.ws.ReadMessage()
	if err != nil {
		return m, ls.readError(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("a live message from %s is not the JSON sluicectl expects (%v): is it a sluice-server of this version?", ls.cl.base, err)
	}
	if m.Type == "error" {
		return m, fmt.Errorf("%s refused the subscription: %s", ls.cl.base, oneLine(m.Message))
	}
	return m, nil
}

// readError explains why the stream ended.
func (ls *liveStream) readError(err error) error {
	var ce *websocket.CloseError
	switch {
	case ls.ctx.Err() != nil:
		return errors.New("interrupted")
	case errors.As(err, &ce) && ce.Code == websocket.ClosePolicyViolation:
		return fmt.Errorf("%s closed the live stream: %s (sluicectl could not keep up; is the output blocked?)", ls.cl.base, oneLine(ce.Text))
	case errors.As(err, &ce) && ce.Code == websocket.CloseGoingAway:
		return fmt.Errorf("%s closed the live stream: it is shutting down; run the command again once it is back", ls.cl.base)
	case errors.As(err, &ce):
		return fmt.Errorf("%s closed the live stream (%d %s)", ls.cl.base, ce.Code, oneLine(ce.Text))
	}
	return fmt.Errorf("the live stream from %s broke: %v; is the server still running?", ls.cl.base, err)
}

// close ends the stream, telling the server so.
func (ls *liveStream) close() {
	ls.closeOnce.Do(func() {
		ls.stop()
		_ = ls.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		_ = ls.ws.Close()
	})
}
