package api

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluicemesh/sluice/server/internal/telemetry"
)

// TelemetryReader answers the traffic queries: the live graph and time series.
type TelemetryReader interface {
	Graph(ctx context.Context, window time.Duration) (telemetry.GraphResult, error)
	Metrics(ctx context.Context, q telemetry.MetricsQuery) (telemetry.MetricsResult, error)
}

var _ TelemetryReader = (*telemetry.Aggregator)(nil)

// defaultGraphWindow is the graph's window when the request names none: the live view's.
const defaultGraphWindow = time.Minute

// graphView is the answer of GET /api/v1/graph.
type graphView struct {
	// WindowSeconds is the window the rates are over; From and To bound it.
	WindowSeconds int64     `json:"windowSeconds"`
	From          time.Time `json:"from"`
	To            time.Time `json:"to"`
	// Source is "live" (per-second sums in memory) or the resolution of the stored rollups
	// read ("10s", "1m").
	Source string           `json:"source"`
	Nodes  []telemetry.Node `json:"nodes"`
	Edges  []telemetry.Edge `json:"edges"`
}

// handleGraph answers GET /api/v1/graph?window=1m with the mesh's traffic graph over the last
// window: callers, services and the versions that answered, with each edge's rate, success
// rate and latency percentiles. Each request counts once, however many proxies reported it.
func handleGraph(tr TelemetryReader, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if tr == nil {
			writeError(w, r, log, errTelemetryOff)
			return
		}
		window := defaultGraphWindow
		if v := r.URL.Query().Get("window"); v != "" {
			d, err := parseDuration(v)
			if err != nil {
				writeError(w, r, log, badParam("window", fmt.Sprintf("window=%q is not a duration: use one such as 30s, 1m or 1h", v)))
				return
			}
			window = d
		}
		g, err := tr.Graph(r.Context(), window)
		if err != nil {
			writeError(w, r, log, telemetryError(err))
			return
		}
		writeJSON(w, http.StatusOK, graphView{
			WindowSeconds: int64(g.To.Sub(g.From) / time.Second), From: g.From, To: g.To, Source: g.Source,
			Nodes: g.Nodes, Edges: g.Edges,
		})
	}
}

// metricsView is the answer of GET /api/v1/metrics.
type metricsView struct {
	From        time.Time              `json:"from"`
	To          time.Time              `json:"to"`
	StepSeconds int64                  `json:"stepSeconds"`
	Resolution  string                 `json:"resolution"`
	Series      []telemetry.TimeSeries `json:"series"`
}

// handleMetrics answers GET /api/v1/metrics?service=&version=&source=&from=&to=&step=&by=
// with time series of rate, success rate and latency percentiles of the traffic selected:
// to a service (its host, or a prefix of it such as "reviews" or "reviews.default"), to one of
// its versions, from a caller ("<namespace>/<workload>", "<workload>" or "unknown"), or any
// combination; by= splits it per service, version or source. from and to are RFC 3339 times
// or Unix seconds (default: the last hour); step is a duration or seconds (default: about 240
// points).
func handleMetrics(tr TelemetryReader, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if tr == nil {
			writeError(w, r, log, errTelemetryOff)
			return
		}
		q, err := metricsQuery(r)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		m, err := tr.Metrics(r.Context(), q)
		if err != nil {
			writeError(w, r, log, telemetryError(err))
			return
		}
		writeJSON(w, http.StatusOK, metricsView{
			From: m.From, To: m.To, StepSeconds: int64(m.Step / time.Second), Resolution: m.Resolution.String(),
			Series: m.Series,
		})
	}
}

func metricsQuery(r *http.Request) (telemetry.MetricsQuery, error) {
	v := r.URL.Query()
	q := telemetry.MetricsQuery{Service: v.Get("service"), Version: v.Get("version"), By: telemetry.GroupBy(v.Get("by"))}
	if src := v.Get("source"); src != "" {
		if ns, wl, ok := strings.Cut(src, "/"); ok {
			if ns == "" || wl == "" {
				return q, badParam("source", fmt.Sprintf("source=%q must be <namespace>/<workload>, <workload> or unknown", src))
			}
			q.SourceNamespace, q.SourceWorkload = ns, wl
		} else {
			q.SourceWorkload = src
		}
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"from", &q.From}, {"to", &q.To}} {
		s := v.Get(t.name)
		if s == "" {
			continue
		}
		at, err := parseTime(s)
		if err != nil {
			return q, badParam(t.name, fmt.Sprintf("%s=%q is not a time: use RFC 3339 (2026-01-31T15:04:05Z) or Unix seconds", t.name, s))
		}
		*t.dst = at
	}
	if s := v.Get("step"); s != "" {
		d, err := parseDuration(s)
		if err != nil {
			return q, badParam("step", fmt.Sprintf("step=%q is not a duration: use one such as 10s, 1m or 60", s))
		}
		q.Step = d
	}
	if !q.By.Valid() {
		return q, badParam("by", fmt.Sprintf("by=%q must be service, version or source", q.By))
	}
	return q, nil
}

// parseDuration reads a positive Go duration ("90s", "1h30m") or a number of seconds.
func parseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err != nil {
		f, ferr := strconv.ParseFloat(s, 64)
		if ferr != nil || math.IsNaN(f) || f > math.MaxInt64/float64(time.Second) {
			return 0, err
		}
		d = time.Duration(f * float64(time.Second))
	}
	if d <= 0 {
		return 0, errors.New("not positive")
	}
	return d, nil
}

// parseTime reads an RFC 3339 time or Unix seconds.
func parseTime(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || math.Abs(f) > 1e11 {
		return time.Time{}, errors.New("not a time")
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), nil
}

func badParam(name, msg string) *Error {
	return &Error{Status: http.StatusBadRequest, Message: msg, Fields: []FieldError{{Path: name, Message: msg}}}
}

// errTelemetryOff answers traffic queries on a server built without telemetry.
var errTelemetryOff = &Error{Status: http.StatusServiceUnavailable, Message: "telemetry is not running on this server"}

// telemetryError words a query the telemetry cannot answer as a 400 naming the parameter.
func telemetryError(err error) error {
	var qe *telemetry.QueryError
	if errors.As(err, &qe) {
		return badParam(qe.Param, qe.Message)
	}
	return err
}
