package telemetry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// Store keeps the rollups. The PostgreSQL store implements it.
type Store interface {
	// WriteRollups adds rows, each the traffic of one series over the bucket of width res
	// starting at its Bucket, to what is stored: a row whose bucket and series are stored
	// already is added to them. Writing a bucket's traffic in two parts (before and after a
	// restart, say) therefore stores it once, in full.
	WriteRollups(ctx context.Context, res Resolution, rows []Row) error
	// ReadRollups returns the stored traffic in [q.From, q.To) that q selects, summed per
	// series and per q.Step (each row's Bucket the start of its step, a multiple of q.Step
	// since the Unix epoch), or over the whole range when q.Step is 0 (Bucket is then q.From).
	// It fails with ErrTooManyRows rather than return more than q.Limit rows.
	ReadRollups(ctx context.Context, res Resolution, q HistoryQuery) ([]Row, error)
	// DeleteRollupsBefore deletes the buckets of res that start before before.
	DeleteRollupsBefore(ctx context.Context, res Resolution, before time.Time) (int64, error)
}

// HistoryQuery selects stored traffic. Empty filters select everything.
type HistoryQuery struct {
	From, To time.Time
	// Step is the width of the returned buckets, a multiple of the resolution; 0 means one
	// bucket for the whole range.
	Step time.Duration
	// Service selects destination services as MatchService does.
	Service string
	// Version selects a destination version.
	Version string
	// SourceNamespace and SourceWorkload select a caller; SourceWorkload "unknown" selects
	// the callers the mesh cannot name.
	SourceNamespace, SourceWorkload string
	// Limit is the most rows to return.
	Limit int
}

// ErrTooManyRows is ReadRollups' answer to a query that selects more than its Limit.
var ErrTooManyRows = errors.New("the query selects too much traffic")

// QueryError is a graph or metrics query that cannot be answered as asked; Param names the
// parameter to change.
type QueryError struct {
	Param   string
	Message string
}

func (e *QueryError) Error() string { return e.Message }

// Options configure an Aggregator.
type Options struct {
	// Store keeps the rollups. Required.
	Store Store
	// Log receives flush and retention failures; nil discards them.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// LiveSpan is how much traffic is kept in memory for the live graph, a multiple of 10
	// seconds from 1 to 60 minutes; zero means 5 minutes. Graph windows up to it are
	// answered from memory, longer ones from the Store. It also bounds how long traffic
	// that could not be written is kept for another try.
	LiveSpan time.Duration
	// Retention10s and Retention1m are how long the 10-second and 1-minute rollups are kept;
	// zero means 24 hours and 30 days.
	Retention10s, Retention1m time.Duration
	// RetentionInterval is how often RunRetention deletes expired rollups; zero means a
	// minute.
	RetentionInterval time.Duration
	// MaxQueryRows bounds the rows one query reads from the Store; zero means 500,000.
	MaxQueryRows int
}

// liveSeconds is the span of the per-second counts: graph windows up to it have rates exact
// to the second.
const liveSeconds = 60

// Aggregator sums the proxies' traffic (Record) per second and per 10-second bucket for the
// live graph, and into pending 10-second and 1-minute rollups, which Run writes to the Store
// as each bucket closes; it answers the graph and metrics queries. Safe for concurrent use.
type Aggregator struct {
	o   Options
	log *slog.Logger

	ids interner
	// seconds and tens are rings indexed by Unix second (or 10-second bucket) modulo their
	// length. Each slot has its own lock, so a reader summing a window holds up Record for
	// one slot at most.
	seconds []secondSlot
	tens    []tenSlot

	mu        sync.Mutex
	pending10 map[int64]*idStats // bucket start (Unix s) → traffic not yet written
	pending1m map[int64]*idStats
	gateways  map[workloadID]bool

	flushMu     sync.Mutex // one flush at a time
	rowsWritten atomic.Int64
	flushFailed atomic.Bool // the last flush failed: log the next success
}

type workloadID struct{ namespace, name string }

// New returns an Aggregator; call Run and RunRetention to write and expire rollups.
func New(o Options) (*Aggregator, error) {
	if o.Store == nil {
		return nil, errors.New("telemetry: Options.Store is nil")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	// Five minutes covers the live view's choices (1m, 5m); at a thousand sidecars with
	// twenty busy series each it costs about 80 MB.
	if o.LiveSpan == 0 {
		o.LiveSpan = 5 * time.Minute
	}
	if o.Retention10s == 0 {
		o.Retention10s = 24 * time.Hour
	}
	if o.Retention1m == 0 {
		o.Retention1m = 30 * 24 * time.Hour
	}
	if o.RetentionInterval == 0 {
		o.RetentionInterval = time.Minute
	}
	if o.MaxQueryRows == 0 {
		o.MaxQueryRows = 500_000
	}
	switch {
	case o.LiveSpan < time.Minute || o.LiveSpan > time.Hour || o.LiveSpan%(10*time.Second) != 0:
		return nil, fmt.Errorf("telemetry: live span %s must be a multiple of 10s from 1m to 1h", o.LiveSpan)
	case o.Retention10s < 10*time.Second:
		return nil, fmt.Errorf("telemetry: 10-second retention %s must be at least 10s", o.Retention10s)
	case o.Retention1m < time.Minute:
		return nil, fmt.Errorf("telemetry: 1-minute retention %s must be at least 1m", o.Retention1m)
	case o.RetentionInterval < 0 || o.MaxQueryRows < 0:
		return nil, errors.New("telemetry: negative retention interval or query limit")
	}
	a := &Aggregator{
		o: o, log: o.Log,
		// One more slot than the span: the current second (bucket) is still filling.
		seconds:   make([]secondSlot, liveSeconds+1),
		tens:      make([]tenSlot, int(o.LiveSpan/(10*time.Second))+1),
		pending10: map[int64]*idStats{},
		pending1m: map[int64]*idStats{},
		gateways:  map[workloadID]bool{},
	}
	for i := range a.seconds {
		a.seconds[i] = secondSlot{sec: -1, requests: map[uint32]uint32{}}
	}
	for i := range a.tens {
		a.tens[i] = tenSlot{start: -1, stats: newIDStats()}
	}
	return a, nil
}

// keepSeconds is how long traffic waits in memory: for the live view, and for another try
// when it could not be written.
func (a *Aggregator) keepSeconds() int64 { return int64(a.o.LiveSpan / time.Second) }

// Record adds a proxy's traffic since its previous report to the current second. It does not
// keep samples.
func (a *Aggregator) Record(o Origin, samples []Sample) {
	if len(samples) == 0 {
		return
	}
	now := a.o.Now().Unix()
	ids := a.ids.internAll(samples, now, make([]uint32, 0, len(samples)))
	// Ids unused for longer than anything in memory can refer to them are freed.
	a.ids.sweep(now, now-a.keepSeconds()-5*60, 60)

	ss := &a.seconds[mod(now, int64(len(a.seconds)))]
	ss.mu.Lock()
	if ss.sec != now {
		clear(ss.requests)
		ss.sec = now
	}
	for i, id := range ids {
		if n := samples[i].Stats.Requests; n > 0 {
			ss.requests[id] += uint32(n)
		}
	}
	ss.mu.Unlock()

	start10, start1m := now-mod(now, 10), now-mod(now, 60)
	ts := &a.tens[mod(start10/10, int64(len(a.tens)))]
	ts.mu.Lock()
	if ts.start != start10 {
		ts.stats.reset()
		ts.start = start10
	}
	for i, id := range ids {
		ts.stats.slot(id).add(&samples[i].Stats)
	}
	ts.mu.Unlock()

	a.mu.Lock()
	defer a.mu.Unlock()
	for _, p := range []struct {
		m     map[int64]*idStats
		start int64
	}{{a.pending10, start10}, {a.pending1m, start1m}} {
		set := p.m[p.start]
		if set == nil {
			set = newIDStats()
			p.m[p.start] = set
		}
		for i, id := range ids {
			set.slot(id).add(&samples[i].Stats)
		}
	}
	if o.Gateway {
		for i := range samples {
			if s := &samples[i].Series; s.Reporter == ReporterSource && !isUnknown(s.SourceWorkload) {
				a.gateways[workloadID{s.SourceNamespace, s.SourceWorkload}] = true
			}
		}
	}
}

func mod(a, b int64) int64 { return ((a % b) + b) % b }

// Run writes each rollup bucket to the Store once it has closed, every second, until ctx is
// done; then it writes what is pending, closed or not, and returns. A failed write is logged
// and tried again on the next tick (for as long as the live span), so Run returns only nil.
func (a *Aggregator) Run(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			// The server is stopping: write the partial buckets too. A server that takes
			// over adds its own part to the same buckets.
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			err := a.flush(fctx, true)
			cancel()
			if err != nil {
				a.log.Error("write telemetry rollups at shutdown; the last seconds of traffic are lost", "error", err)
			}
			return nil
		case <-t.C:
			if err := a.FlushClosed(ctx); err != nil && ctx.Err() == nil {
				if !a.flushFailed.Swap(true) {
					a.log.Error("write telemetry rollups; retrying every second", "error", err)
				}
			} else if err == nil && a.flushFailed.Swap(false) {
				a.log.Info("telemetry rollups written again")
			}
		}
	}
}

// Flush writes every pending bucket to the Store now, including the ones still open (their
// later traffic is added when they close).
func (a *Aggregator) Flush(ctx context.Context) error { return a.flush(ctx, true) }

// FlushClosed writes the buckets that have closed by the clock, as Run does every second;
// for callers that drive the clock themselves.
func (a *Aggregator) FlushClosed(ctx context.Context) error { return a.flush(ctx, false) }

// RowsWritten returns the number of rollup rows written to the Store so far.
func (a *Aggregator) RowsWritten() int64 { return a.rowsWritten.Load() }

// flush writes the closed buckets (all of them when all is set). What fails to be written
// goes back to pending for the next flush, unless it is older than the live span.
func (a *Aggregator) flush(ctx context.Context, all bool) error {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	now := a.o.Now().Unix()

	var errs []error
	for _, p := range []struct {
		res     Resolution
		pending map[int64]*idStats
	}{{Res10s, a.pending10}, {Res1m, a.pending1m}} {
		w := int64(p.res.Duration() / time.Second)
		due := map[int64]*idStats{}
		a.mu.Lock()
		for start, set := range p.pending {
			if all || start+w <= now {
				due[start] = set
				delete(p.pending, start)
			}
		}
		a.mu.Unlock()
		if len(due) == 0 {
			continue
		}
		var rows []Row
		var series []Series
		for start, set := range due {
			t := time.Unix(start, 0).UTC()
			series = a.ids.lookup(set.ids, series[:0])
			for i := range set.ids {
				rows = append(rows, Row{Bucket: t, Series: series[i], Stats: set.stats[i].stats()})
			}
		}
		if err := a.o.Store.WriteRollups(ctx, p.res, rows); err != nil {
			errs = append(errs, fmt.Errorf("write %d %s rollup rows: %w", len(rows), p.res, err))
			a.requeue(p.res, p.pending, due, now)
			continue
		}
		a.rowsWritten.Add(int64(len(rows)))
	}
	return errors.Join(errs...)
}

// requeue puts buckets that failed to be written back into pending, merged with what arrived
// meanwhile, and drops the ones older than the live span.
func (a *Aggregator) requeue(res Resolution, pending, buckets map[int64]*idStats, now int64) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for start, set := range buckets {
		if start < now-a.keepSeconds() {
			a.log.Error("dropping telemetry that could not be written", "resolution", res.String(), "bucket", time.Unix(start, 0).UTC(), "series", len(set.ids))
			continue
		}
		if have := pending[start]; have != nil {
			have.mergeAll(set)
			continue
		}
		pending[start] = set
	}
}

// RunRetention deletes expired rollups now and then every RetentionInterval until ctx is
// done. Failures are logged and tried again next time; it returns only nil.
func (a *Aggregator) RunRetention(ctx context.Context) error {
	t := time.NewTicker(a.o.RetentionInterval)
	defer t.Stop()
	for {
		if err := a.EnforceRetention(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("delete expired telemetry", "error", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// EnforceRetention deletes the rollup buckets older than their retention.
func (a *Aggregator) EnforceRetention(ctx context.Context) error {
	now := a.o.Now()
	var errs []error
	for _, r := range []struct {
		res  Resolution
		keep time.Duration
	}{{Res10s, a.o.Retention10s}, {Res1m, a.o.Retention1m}} {
		n, err := a.o.Store.DeleteRollupsBefore(ctx, r.res, now.Add(-r.keep))
		if err != nil {
			errs = append(errs, fmt.Errorf("expire %s rollups: %w", r.res, err))
			continue
		}
		if n > 0 {
			a.log.Debug("deleted expired telemetry", "resolution", r.res.String(), "rows", n)
		}
	}
	return errors.Join(errs...)
}

// liveRows sums the traffic of the last seconds (the current one included) per series, and
// returns the time it spans. Up to liveSeconds the requests (and so rates, errors and codes)
// are exact to the second, and the rest (bytes, durations) covers the window rounded out to
// whole 10-second buckets; longer windows are whole 10-second buckets throughout, the
// current (partial) one included.
func (a *Aggregator) liveRows(now, seconds int64) (rows []Row, from, to int64) {
	to = now + 1
	from = to - seconds
	first10 := from - mod(from, 10)
	tens := newIDStats()
	for i := range a.tens {
		ts := &a.tens[i]
		ts.mu.Lock()
		if ts.start >= first10 && ts.start <= now {
			tens.mergeAll(ts.stats)
		}
		ts.mu.Unlock()
	}
	ids := tens.ids
	series := a.ids.lookup(ids, make([]Series, 0, len(ids)))
	rows = make([]Row, len(ids))
	for i := range ids {
		rows[i] = Row{Series: series[i], Stats: tens.stats[i].stats()}
	}
	if seconds > liveSeconds {
		return rows, first10, to
	}

	requests := map[uint32]int64{}
	for i := range a.seconds {
		ss := &a.seconds[i]
		ss.mu.Lock()
		if ss.sec >= from && ss.sec <= now {
			for id, n := range ss.requests {
				requests[id] += int64(n)
			}
		}
		ss.mu.Unlock()
	}
	kept := rows[:0]
	for i, id := range ids {
		r := rows[i]
		r.Stats.Requests = requests[id]
		r.Stats.Errors = 0
		if IsError(r.Series) {
			r.Stats.Errors = r.Stats.Requests
		}
		if r.Stats.Requests > 0 {
			kept = append(kept, r)
		}
	}
	return kept, from, to
}

// isGateway returns a snapshot of the gateways learned so far, as a lookup.
func (a *Aggregator) isGateway() func(namespace, workload string) bool {
	a.mu.Lock()
	set := make(map[workloadID]bool, len(a.gateways))
	for k := range a.gateways {
		set[k] = true
	}
	a.mu.Unlock()
	return func(ns, wl string) bool { return set[workloadID{ns, wl}] }
}
