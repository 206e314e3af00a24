package telemetry

import (
	"math"
	"sync"
	"time"
)

// Value is one metric's cumulative value for a series in one report: what the proxy has
// counted since it created the series (Prometheus semantics).
type Value struct {
	// Present says the report carried the metric; a metric left out is unchanged.
	Present bool
	// Created is when the proxy created the series (Prometheus's created timestamp), in Unix
	// nanoseconds; 0 when the proxy does not say. A change means the counters began again.
	Created int64
	// Count is a counter's value, or a histogram's sample count.
	Count float64
	// Sum is a histogram's sum: milliseconds or bytes.
	Sum float64
}

// Cumulative is one series' values in one report. A report holds each series once: series
// that differ only in labels this package ignores must be summed first.
type Cumulative struct {
	Series Series
	// Requests is istio_requests_total (Count).
	Requests Value
	// MTLSRequests is the part of Requests whose connection_security_policy was
	// "mutual_tls" (Count); Present whenever Requests is.
	MTLSRequests Value
	// Duration is istio_request_duration_milliseconds (Count, Sum and Buckets).
	Duration Value
	// Buckets are the duration histogram's cumulative counts by DurationBounds, +Inf last.
	Buckets [DurationBuckets]float64
	// RequestBytes and ResponseBytes are istio_request_bytes and istio_response_bytes
	// (Count and Sum).
	RequestBytes, ResponseBytes Value
}

// Sample is the traffic of one series since the previous report.
type Sample struct {
	Series Series
	Stats  Stats
}

// TrackerOptions configure a Tracker. The zero value is usable.
type TrackerOptions struct {
	// IdleTTL is how long a proxy that stopped reporting keeps its last values; zero means
	// 5 minutes. A proxy that reports again within it (after reconnecting, or restarting with
	// the same node id) continues exactly; after it, its next report is a new baseline.
	IdleTTL time.Duration
	// MaxSeriesPerNode bounds the series remembered per proxy; zero means 10,000. Further
	// series are dropped (and counted) so one proxy cannot exhaust memory.
	MaxSeriesPerNode int
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Tracker turns proxies' cumulative reports into deltas. It keeps each proxy's last values in
// memory, keyed by node id, and is safe for concurrent use (each proxy's reports are
// processed in the order Observe is called for it).
type Tracker struct {
	ttl       time.Duration
	maxSeries int
	now       func() time.Time

	mu        sync.Mutex
	nodes     map[string]*nodeValues
	lastSweep time.Time
}

// nodeValues is one proxy's last values.
type nodeValues struct {
	seen time.Time // last report, under Tracker.mu

	mu     sync.Mutex
	series map[Series]*seriesValues
	// baseline is set while the proxy's first report is being received (see Observe), from
	// born on; empty is set once it was an empty message.
	baseline, empty bool
	born            time.Time
}

// baselineSpan bounds the first report of a proxy: its messages come back to back, well
// within it, and the next report comes an interval (a second) later.
const baselineSpan = 500 * time.Millisecond

// seriesValues are a series' previous values.
type seriesValues struct {
	requests, mtlsRequests, duration, requestBytes, responseBytes last
	buckets                                                       [DurationBuckets]float64
}

// last is a metric's previous value; known is false until the metric was first reported.
type last struct {
	known      bool
	count, sum float64
	created    int64
}

// NewTracker returns an empty Tracker.
func NewTracker(o TrackerOptions) *Tracker {
	// Five minutes outlasts any reconnect or restart of a sidecar, yet forgets a proxy
	// that went away before its memory matters.
	if o.IdleTTL <= 0 {
		o.IdleTTL = 5 * time.Minute
	}
	// Far above what a sidecar reports (its series are its callers × codes), far below
	// what would hurt: about 5 MB for one proxy at the limit.
	if o.MaxSeriesPerNode <= 0 {
		o.MaxSeriesPerNode = 10000
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Tracker{ttl: o.IdleTTL, maxSeries: o.MaxSeriesPerNode, now: o.Now, nodes: map[string]*nodeValues{}}
}

// Observe takes one message of the proxy node's reports and appends to dst the traffic
// since the series' previous values, one Sample per series with any (see the package's
// counting rules). dropped counts the series ignored because the proxy has too many.
//
// A report may come in several messages sent back to back, each series in one of them. The
// first report of a proxy the Tracker does not know is a baseline: every message of it, that
// is every message until one repeats a series, or follows an empty message (a proxy that had
// counted nothing yet), or comes half a second after the first.
func (t *Tracker) Observe(node string, report []Cumulative, dst []Sample) (samples []Sample, dropped int) {
	nv := t.node(node)
	nv.mu.Lock()
	defer nv.mu.Unlock()
	if nv.baseline {
		if nv.empty || t.now().Sub(nv.born) >= baselineSpan {
			nv.baseline = false
		}
		for i := 0; i < len(report) && nv.baseline; i++ {
			_, repeated := nv.series[report[i].Series]
			nv.baseline = !repeated
		}
		nv.empty = len(report) == 0
	}
	first := nv.baseline

	for i := range report {
		c := &report[i]
		prev := nv.series[c.Series]
		if prev == nil {
			if len(nv.series) >= t.maxSeries {
				dropped++
				continue
			}
			prev = &seriesValues{}
			nv.series[c.Series] = prev
		}
		var st Stats
		if c.Requests.Present {
			// The first report of a proxy is a baseline: whatever it holds may have been
			// counted before this server started.
			count, _, reset := prev.requests.delta(&c.Requests)
			if !first {
				st.Requests = count
			}
			prev.requests.set(&c.Requests)
			if c.MTLSRequests.Present {
				// After the requests counter began again, so did its mutual TLS part.
				mtls, _, _ := prev.mtlsRequests.delta(&c.MTLSRequests)
				if reset && prev.mtlsRequests.known {
					mtls = round(c.MTLSRequests.Count)
				}
				if !first {
					st.MTLSRequests = min(mtls, st.Requests)
				}
				prev.mtlsRequests.set(&c.MTLSRequests)
			}
		}
		if c.Duration.Present {
			if !first {
				durationDelta(&st, prev, c)
			}
			prev.duration.set(&c.Duration)
			prev.buckets = c.Buckets
		}
		if c.RequestBytes.Present {
			if !first {
				_, st.RequestBytes, _ = prev.requestBytes.delta(&c.RequestBytes)
			}
			prev.requestBytes.set(&c.RequestBytes)
		}
		if c.ResponseBytes.Present {
			if !first {
				_, st.ResponseBytes, _ = prev.responseBytes.delta(&c.ResponseBytes)
			}
			prev.responseBytes.set(&c.ResponseBytes)
		}
		if st.IsZero() {
			continue
		}
		if IsError(c.Series) {
			st.Errors = st.Requests
		}
		dst = append(dst, Sample{Series: c.Series, Stats: st})
	}
	return dst, dropped
}

// node returns the values of node, creating them (in their baseline) when the Tracker has
// none, and forgets the proxies idle for longer than the TTL.
func (t *Tracker) node(id string) *nodeValues {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if now.Sub(t.lastSweep) >= t.ttl/4 {
		for k, v := range t.nodes {
			if now.Sub(v.seen) > t.ttl {
				delete(t.nodes, k)
			}
		}
		t.lastSweep = now
	}
	nv := t.nodes[id]
	if nv == nil {
		nv = &nodeValues{series: map[Series]*seriesValues{}, baseline: true, born: now}
		t.nodes[id] = nv
	}
	nv.seen = now
	return nv
}

// Nodes returns the number of proxies whose values the Tracker holds.
func (t *Tracker) Nodes() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.nodes)
}

func (l *last) set(v *Value) {
	l.known, l.count, l.sum, l.created = true, v.Count, v.Sum, v.Created
}

// resetBy reports whether v, following l, shows that the proxy's counters began again: a
// value went down, or the created timestamp changed. A metric not reported before counts
// from zero.
func (l *last) resetBy(v *Value) bool {
	return !l.known || v.Count < l.count || v.Sum < l.sum ||
		(v.Created != 0 && l.created != 0 && v.Created != l.created)
}

// delta returns the count and sum added since l: v minus l, or all of v after a reset.
func (l *last) delta(v *Value) (count, sum int64, reset bool) {
	if l.resetBy(v) {
		return round(v.Count), round(v.Sum), true
	}
	return round(v.Count - l.count), round(v.Sum - l.sum), false
}

// durationDelta adds to st the duration histogram's traffic since prev: per bucket, and
// whole after a reset (any bucket that went down is one too).
func durationDelta(st *Stats, prev *seriesValues, c *Cumulative) {
	reset := prev.duration.resetBy(&c.Duration)
	for i := 0; i < DurationBuckets && !reset; i++ {
		reset = c.Buckets[i] < prev.buckets[i]
	}
	var base [DurationBuckets]float64
	baseCount, baseSum := 0.0, 0.0
	if !reset {
		base, baseCount, baseSum = prev.buckets, prev.duration.count, prev.duration.sum
	}
	st.DurationCount += round(c.Duration.Count - baseCount)
	if d := c.Duration.Sum - baseSum; d > 0 {
		st.DurationSumMs += d
	}
	var below int64 // the cumulative delta of the bucket before
	for i := range c.Buckets {
		cum := round(c.Buckets[i] - base[i])
		st.Duration[i] += max(cum-below, 0)
		below = max(cum, below)
	}
}

// round turns a difference of counts, exact in float64 for any count below 2^53, into an
// integer, and never below zero.
func round(f float64) int64 {
	if !(f > 0) {
		return 0
	}
	return int64(math.Round(f))
}

// Rebin returns a histogram's cumulative counts by DurationBounds from the proxy's own
// buckets (upperBounds ascending, cumulative counts) and its sample count: each of the
// proxy's buckets counts in the first of DurationBounds at or above its upper bound, so bounds
// equal to DurationBounds (Istio's defaults) are kept exactly, and any others err towards the
// slower bucket, by at most one.
func Rebin(upperBounds, cumulative []float64, count float64) [DurationBuckets]float64 {
	var out [DurationBuckets]float64
	j := 0
	var at float64 // cumulative count at the last proxy bound at or below the bound
	for i, b := range DurationBounds {
		// A tolerance for bounds written in another unit and converted (0.5 s → 500 ms).
		for j < len(upperBounds) && upperBounds[j] <= b*(1+1e-9) {
			at = max(at, cumulative[j])
			j++
		}
		out[i] = at
	}
	// The +Inf bucket holds everything; a proxy may send it as a bucket or only as the count.
	for _, c := range cumulative {
		count = max(count, c)
	}
	out[len(DurationBounds)] = count
	return out
}
