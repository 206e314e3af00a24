package telemetry

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Limits of the queries.
const (
	// MaxPoints bounds the points of one time series, as Prometheus does.
	MaxPoints = 11000
	// autoPoints is about how many points a time series has when the step is not given.
	autoPoints = 240
	// historyLimit10s is the longest range answered from the 10-second rollups.
	historyLimit10s = 24 * time.Hour
)

// GraphResult is the traffic graph over [From, To).
type GraphResult struct {
	From, To time.Time
	// Source is where the traffic came from: "live" (the in-memory per-second sums), or the
	// rollups' resolution ("10s", "1m").
	Source string
	Graph
}

// Graph returns the traffic graph of the last window: from memory when window is at most
// the live span, otherwise from the 10-second rollups (windows up to 24 hours, within their
// retention) or the 1-minute ones. Rates are requests per second over the window the result
// spans (From to To): to the second for windows up to a minute, whose latency percentiles
// cover the window rounded out to whole 10-second buckets; whole 10-second buckets (or
// minutes) beyond, the current one included.
func (a *Aggregator) Graph(ctx context.Context, window time.Duration) (GraphResult, error) {
	window = window.Truncate(time.Second)
	if window < time.Second || window > a.o.Retention1m {
		return GraphResult{}, &QueryError{Param: "window", Message: fmt.Sprintf("window %s must be from 1s to %s (the 1-minute retention)", window, a.o.Retention1m)}
	}
	now := a.o.Now()
	if window <= a.o.LiveSpan {
		rows, from, to := a.liveRows(now.Unix(), int64(window/time.Second))
		return GraphResult{
			From: time.Unix(from, 0).UTC(), To: time.Unix(to, 0).UTC(), Source: "live",
			Graph: BuildGraph(rows, time.Duration(to-from)*time.Second, a.isGateway()),
		}, nil
	}
	res := a.resolution(now, now.Add(-window), now)
	to := AlignDown(now, res.Duration()).Add(res.Duration())
	from := to.Add(-max(window.Round(res.Duration()), res.Duration()))
	rows, err := a.o.Store.ReadRollups(ctx, res, HistoryQuery{From: from, To: to, Limit: a.o.MaxQueryRows})
	if err != nil {
		return GraphResult{}, a.queryError(err, "window")
	}
	return GraphResult{From: from, To: to, Source: res.String(), Graph: BuildGraph(rows, to.Sub(from), a.isGateway())}, nil
}

// MetricsQuery asks for time series of stored traffic.
type MetricsQuery struct {
	// From and To bound the range; zero To means now, zero From means an hour before To.
	From, To time.Time
	// Step is the width of a point; zero picks about 240 points. It is rounded up to a
	// multiple of the resolution.
	Step time.Duration
	// Service, Version, SourceNamespace and SourceWorkload select traffic as in HistoryQuery.
	Service, Version, SourceNamespace, SourceWorkload string
	// By splits the traffic into series.
	By GroupBy
}

// MetricsResult is the answer to a MetricsQuery: From and To are aligned to Step.
type MetricsResult struct {
	From, To   time.Time
	Step       time.Duration
	Resolution Resolution
	Series     []TimeSeries
}

// Metrics returns time series of the stored traffic q selects: from the 10-second rollups
// for ranges up to 24 hours that lie within their retention, otherwise from the 1-minute
// ones. Traffic reaches the rollups when its 10-second bucket closes, so the last point may
// lag the live graph by up to about 11 seconds.
func (a *Aggregator) Metrics(ctx context.Context, q MetricsQuery) (MetricsResult, error) {
	now := a.o.Now()
	if q.To.IsZero() {
		q.To = now
	}
	if q.From.IsZero() {
		q.From = q.To.Add(-time.Hour)
	}
	if !q.To.After(q.From) {
		return MetricsResult{}, &QueryError{Param: "from", Message: "from must be before to"}
	}
	if !q.By.Valid() {
		return MetricsResult{}, &QueryError{Param: "by", Message: fmt.Sprintf("by %q must be service, version or source", q.By)}
	}
	if q.Step < 0 {
		return MetricsResult{}, &QueryError{Param: "step", Message: "step must be positive"}
	}
	res := a.resolution(now, q.From, q.To)
	r := res.Duration()
	step := q.Step
	if step == 0 {
		step = q.To.Sub(q.From) / autoPoints
	}
	step = max(r, (step+r-1)/r*r)
	from := AlignDown(q.From, step)
	to := AlignDown(q.To.Add(step-time.Nanosecond), step)
	if n := to.Sub(from) / step; n > MaxPoints {
		return MetricsResult{}, &QueryError{Param: "step", Message: fmt.Sprintf("%d points of %s is over the limit of %d: choose a larger step or a shorter range", n, step, MaxPoints)}
	}
	rows, err := a.o.Store.ReadRollups(ctx, res, HistoryQuery{
		From: from, To: to, Step: step,
		Service: q.Service, Version: q.Version, SourceNamespace: q.SourceNamespace, SourceWorkload: q.SourceWorkload,
		Limit: a.o.MaxQueryRows,
	})
	if err != nil {
		return MetricsResult{}, a.queryError(err, "step")
	}
	return MetricsResult{From: from, To: to, Step: step, Resolution: res, Series: BuildTimeSeries(rows, from, to, step, q.By)}, nil
}

// resolution picks the rollups for a range: the 10-second ones when the range is at most 24
// hours and starts within their retention, the 1-minute ones otherwise.
func (a *Aggregator) resolution(now, from, to time.Time) Resolution {
	if to.Sub(from) <= historyLimit10s && !from.Before(now.Add(-a.o.Retention10s)) {
		return Res10s
	}
	return Res1m
}

func (a *Aggregator) queryError(err error, param string) error {
	if errors.Is(err, ErrTooManyRows) {
		return &QueryError{Param: param, Message: fmt.Sprintf("the query selects more than %d series-buckets: narrow it (service, version, source) or choose a larger step", a.o.MaxQueryRows)}
	}
	return err
}
