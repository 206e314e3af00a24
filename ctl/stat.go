package ctl

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"
)

var statCommand = command{
	name:    "stat",
	args:    "SERVICE",
	summary: "show a service's golden metrics per version: rate, success rate, latency",
	about: `
Shows, for each version of SERVICE that answered over the last --window, its requests per
second, success rate, and p50, p95 and p99 latency, and on the line "(all)" every request
to the service (including those its callers' proxies answered themselves, such as injected
faults). SERVICE is a host (reviews.default.svc.cluster.local) or a short name (reviews,
reviews.default); a short name may match the service in several namespaces. Windows up to
5m come from the server's live view, longer ones from its stored rollups. When a version
runs as several workloads, its percentiles are the highest of theirs.`,
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		window := time.Minute
		out := outTable
		fs.add(durationValue{&window}, "window", "", "DURATION", "1m", "what the figures cover")
		fs.add(stringValue{&out}, "output", "o", "FORMAT", outTable, "table or json")
		return func(ctx context.Context, args []string) error {
			if err := wantArgs("stat", "SERVICE", args, 1, 1); err != nil {
				return err
			}
			if err := checkOutput("stat", out, outTable, outJSON); err != nil {
				return err
			}
			if window < time.Second {
				return &UsageError{"stat: --window must be at least 1s"}
			}
			service := args[0]
			cl, err := c.apiClient()
			if err != nil {
				return err
			}
			g, err := getGraph(ctx, cl, window)
			if err != nil {
				return err
			}
			st := serviceStat(g, service)
			st.Window = window.String()
			if len(st.Rows) == 0 {
				if err := checkService(ctx, cl, service); err != nil {
					return err
				}
			}
			if out == outJSON {
				b, err := json.Marshal(st)
				if err != nil {
					return fmt.Errorf("encode the answer: %w", err)
				}
				return printJSON(c.stdout, b)
			}
			if len(st.Rows) == 0 {
				_, err := fmt.Fprintf(c.stderr, "No traffic to %s in the last %s.\n", service, window)
				return err
			}
			return writeStat(c.stdout, st)
		}
	},
}

// graphAnswer is GET /api/v1/graph's answer.
type graphAnswer struct {
	From  time.Time   `json:"from"`
	To    time.Time   `json:"to"`
	Nodes []graphNode `json:"nodes"`
	Edges []graphEdge `json:"edges"`
}

func getGraph(ctx context.Context, cl *client, window time.Duration) (graphAnswer, error) {
	var g graphAnswer
	_, err := cl.getJSON(ctx, "/api/v1/graph", url.Values{"window": {window.String()}}, &g)
	return g, err
}

// statAnswer is stat's -o json.
type statAnswer struct {
	Service string    `json:"service"`
	Window  string    `json:"window"`
	From    time.Time `json:"from"`
	To      time.Time `json:"to"`
	// Rows are per service host and version; Version "" is every request to the host.
	Rows []statRow `json:"versions"`
}

type statRow struct {
	Service string `json:"service"`
	Version string `json:"version"`
	trafficFigures
}

// matchService reports whether a SERVICE argument names host: the host itself, or a prefix
// of it ending before a dot ("reviews", "reviews.default"), as the server matches them.
func matchService(arg, host string) bool {
	return host == arg || (strings.HasPrefix(host, arg) && len(host) > len(arg) && host[len(arg)] == '.')
}

// serviceStat sums the graph's edges into and out of the services service names.
func serviceStat(g graphAnswer, service string) statAnswer {
	st := statAnswer{Service: service, From: g.From, To: g.To, Rows: []statRow{}}
	nodes := map[string]graphNode{}
	for _, n := range g.Nodes {
		nodes[n.ID] = n
	}
	type key struct{ host, version string }
	rows := map[key]*statRow{}
	add := func(k key, f trafficFigures) {
		r := rows[k]
		if r == nil {
			r = &statRow{Service: k.host, Version: k.version}
			rows[k] = r
		}
		r.add(f)
	}
	for _, e := range g.Edges {
		if src, ok := nodes[e.Source]; ok && src.Type == "service" && matchService(service, src.Service) {
			version := nodes[e.Target].Version
			if version == "" {
				version = "unknown"
			}
			add(key{src.Service, version}, e.trafficFigures)
		}
		if dst, ok := nodes[e.Target]; ok && dst.Type == "service" && matchService(service, dst.Service) {
			add(key{dst.Service, ""}, e.trafficFigures)
		}
	}
	for _, r := range rows {
		st.Rows = append(st.Rows, *r)
	}
	slices.SortFunc(st.Rows, func(a, b statRow) int {
		return cmp.Or(cmp.Compare(a.Service, b.Service), cmp.Compare(a.Version, b.Version))
	})
	return st
}

// add sums o into f: counts and rates exactly; the percentiles can only be bounded, by the
// highest.
func (f *trafficFigures) add(o trafficFigures) {
	f.Requests += o.Requests
	f.Errors += o.Errors
	f.RPS += o.RPS
	f.SuccessRate = nil
	if f.Requests > 0 {
		r := float64(f.Requests-min(f.Errors, f.Requests)) / float64(f.Requests)
		f.SuccessRate = &r
	}
	for _, p := range []struct{ dst, src **float64 }{{&f.P50, &o.P50}, {&f.P95, &o.P95}, {&f.P99, &o.P99}} {
		if *p.src != nil && (*p.dst == nil || **p.src > **p.dst) {
			v := **p.src
			*p.dst = &v
		}
	}
}

func writeStat(w io.Writer, st statAnswer) error {
	rows := make([][]string, 0, len(st.Rows))
	for _, r := range st.Rows {
		version := r.Version
		if version == "" {
			version = "(all)"
		}
		rows = append(rows, append([]string{shortHost(r.Service), version}, r.cells()...))
	}
	return writeTable(w, []string{"SERVICE", "VERSION", "RPS", "SUCCESS", "P50", "P95", "P99"}, rows)
}

// knownWindow is how far back checkService looks for traffic to a service.
const knownWindow = 5 * time.Minute

// checkService fails with an "unknown service" error unless a registered proxy serves
// service, or it had traffic in the last few minutes.
func checkService(ctx context.Context, cl *client, service string) error {
	var ps struct {
		Proxies []proxy `json:"proxies"`
	}
	if _, err := cl.getJSON(ctx, "/api/v1/proxies", nil, &ps); err != nil {
		return err
	}
	for _, p := range ps.Proxies {
		if matchService(service, p.Service+"."+p.Namespace+".svc.cluster.local") {
			return nil
		}
	}
	g, err := getGraph(ctx, cl, knownWindow)
	if err != nil {
		return err
	}
	for _, n := range g.Nodes {
		if n.Type == "service" && matchService(service, n.Service) {
			return nil
		}
	}
	return fmt.Errorf("unknown service %q: no proxy serves it and nothing called it in the last %s; check the name (reviews, reviews.default or the full host), or run sluicectl top to see the services with traffic", service, knownWindow)
}
