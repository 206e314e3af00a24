package telemetry_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicemesh/sluice/internal/pgtest"
	"github.com/sluicemesh/sluice/server/internal/store"
	"github.com/sluicemesh/sluice/server/internal/telemetry"
)

// TestMain gives tests their databases and fails the package if a test leaves a goroutine
// running.
func TestMain(m *testing.M) {
	code := pgtest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var migrated = pgtest.Template{Name: "migrated", Setup: store.Migrate}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// clock is a settable time.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func openStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), pgtest.New(t, migrated), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func newAggregator(t testing.TB, s telemetry.Store, clk *clock) *telemetry.Aggregator {
	t.Helper()
	a, err := telemetry.New(telemetry.Options{Store: s, Log: testLog(t), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

var reviewsV1 = telemetry.Series{
	Reporter: telemetry.ReporterDestination, SourceWorkload: "productpage-v1", SourceNamespace: "default", SourceVersion: "v1",
	DestinationService: "reviews.default.svc.cluster.local", DestinationWorkload: "reviews-v1", DestinationVersion: "v1",
	ResponseCode: "200", ResponseFlags: "-", Protocol: "http",
}

func sample(n int64) []telemetry.Sample {
	st := telemetry.Stats{Requests: n, DurationCount: n}
	st.Duration[4] = n
	return []telemetry.Sample{{Series: reviewsV1, Stats: st}}
}

// stored sums the requests of each bucket of res.
func stored(t *testing.T, st *store.Store, res telemetry.Resolution, from time.Time) map[time.Time]int64 {
	t.Helper()
	rows, err := st.ReadRollups(context.Background(), res, telemetry.HistoryQuery{From: from.Add(-24 * time.Hour), To: from.Add(24 * time.Hour), Step: res.Duration()})
	if err != nil {
		t.Fatal(err)
	}
	out := map[time.Time]int64{}
	for _, r := range rows {
		out[r.Bucket] += r.Stats.Requests
	}
	return out
}

func equalCounts(a, b map[time.Time]int64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestAggregatorWritesClosedBuckets records traffic across bucket boundaries and checks that
// each bucket is written once it closes, at both resolutions.
func TestAggregatorWritesClosedBuckets(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	t0 := time.Unix(1_800_000_000, 0).UTC() // a whole minute
	clk := &clock{t: t0.Add(2 * time.Second)}
	a := newAggregator(t, st, clk)

	a.Record(telemetry.Origin{NodeID: "n"}, sample(10))
	clk.Set(t0.Add(8 * time.Second))
	a.Record(telemetry.Origin{NodeID: "n"}, sample(5))
	clk.Set(t0.Add(12 * time.Second))
	if err := a.FlushClosed(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, st, telemetry.Res10s, t0); !equalCounts(got, map[time.Time]int64{t0: 15}) {
		t.Errorf("10s after the first bucket closed: %v, want 15 at %s", got, t0)
	}
	if got := stored(t, st, telemetry.Res1m, t0); len(got) != 0 {
		t.Errorf("1m before the minute closed: %v, want nothing", got)
	}

	a.Record(telemetry.Origin{NodeID: "n"}, sample(7))
	clk.Set(t0.Add(61 * time.Second))
	if err := a.FlushClosed(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, st, telemetry.Res10s, t0); !equalCounts(got, map[time.Time]int64{t0: 15, t0.Add(10 * time.Second): 7}) {
		t.Errorf("10s: %v", got)
	}
	if got := stored(t, st, telemetry.Res1m, t0); !equalCounts(got, map[time.Time]int64{t0: 22}) {
		t.Errorf("1m: %v, want 22 at %s", got, t0)
	}
	if n := a.RowsWritten(); n != 3 {
		t.Errorf("%d rows written, want 3", n)
	}
}

// TestAggregatorRestartAddsToTheSameBucket stops one aggregator mid-bucket (writing its part)
// and lets a new one, on the same database, write the rest.
func TestAggregatorRestartAddsToTheSameBucket(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	t0 := time.Unix(1_800_000_000, 0).UTC()
	clk := &clock{t: t0.Add(2 * time.Second)}

	first := newAggregator(t, st, clk)
	first.Record(telemetry.Origin{NodeID: "n"}, sample(10))
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error)
	go func() { done <- first.Run(runCtx) }()
	stop() // shutting down writes the open buckets
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	clk.Set(t0.Add(4 * time.Second))
	second := newAggregator(t, st, clk)
	second.Record(telemetry.Origin{NodeID: "n"}, sample(5))
	if err := second.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, res := range []telemetry.Resolution{telemetry.Res10s, telemetry.Res1m} {
		if got := stored(t, st, res, t0); !equalCounts(got, map[time.Time]int64{t0: 15}) {
			t.Errorf("%s: %v, want 15 at %s", res, got, t0)
		}
	}
}

// failingStore fails the writes while fail is set; everything else goes to the real store.
type failingStore struct {
	*store.Store
	fail atomic.Bool
}

func (f *failingStore) WriteRollups(ctx context.Context, res telemetry.Resolution, rows []telemetry.Row) error {
	if f.fail.Load() {
		return errors.New("database down")
	}
	return f.Store.WriteRollups(ctx, res, rows)
}

func TestAggregatorRetriesFailedWrites(t *testing.T) {
	st := &failingStore{Store: openStore(t)}
	ctx := context.Background()
	t0 := time.Unix(1_800_000_000, 0).UTC()
	clk := &clock{t: t0.Add(2 * time.Second)}
	a := newAggregator(t, st, clk)

	a.Record(telemetry.Origin{NodeID: "n"}, sample(10))
	clk.Set(t0.Add(12 * time.Second))
	st.fail.Store(true)
	if err := a.FlushClosed(ctx); err == nil {
		t.Fatal("a failed write was not reported")
	}
	// Meanwhile more traffic lands in the same (open) minute, and a new 10 s bucket.
	a.Record(telemetry.Origin{NodeID: "n"}, sample(3))
	st.fail.Store(false)
	clk.Set(t0.Add(60 * time.Second))
	if err := a.FlushClosed(ctx); err != nil {
		t.Fatal(err)
	}
	if got := stored(t, st.Store, telemetry.Res10s, t0); !equalCounts(got, map[time.Time]int64{t0: 10, t0.Add(10 * time.Second): 3}) {
		t.Errorf("10s after the retry: %v", got)
	}
	if got := stored(t, st.Store, telemetry.Res1m, t0); !equalCounts(got, map[time.Time]int64{t0: 13}) {
		t.Errorf("1m after the retry: %v", got)
	}
}

// TestRetentionRemovesOldBuckets runs the retention job against buckets on either side of
// each retention, and waits for it to delete the old ones.
func TestRetentionRemovesOldBuckets(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	now := time.Unix(1_800_000_000, 0).UTC()
	clk := &clock{t: now}
	a, err := telemetry.New(telemetry.Options{
		Store: st, Log: testLog(t), Now: clk.Now,
		Retention10s: 6 * time.Hour, Retention1m: 7 * 24 * time.Hour, RetentionInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	write := func(res telemetry.Resolution, at time.Time, n int64) {
		t.Helper()
		if err := st.WriteRollups(ctx, res, []telemetry.Row{{Bucket: at, Series: reviewsV1, Stats: telemetry.Stats{Requests: n}}}); err != nil {
			t.Fatal(err)
		}
	}
	old10, kept10 := now.Add(-6*time.Hour-10*time.Second), now.Add(-6*time.Hour)
	old1m, kept1m := now.Add(-7*24*time.Hour-time.Minute), now.Add(-7*24*time.Hour)
	write(telemetry.Res10s, old10, 1)
	write(telemetry.Res10s, kept10, 2)
	write(telemetry.Res1m, old1m, 3)
	write(telemetry.Res1m, kept1m, 4)
	write(telemetry.Res1m, old10, 5) // a 1-minute bucket as old as an expired 10 s one is kept

	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- a.RunRetention(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("RunRetention returned %v", err)
		}
	}()
	want10 := map[time.Time]int64{kept10: 2}
	want1m := map[time.Time]int64{kept1m: 4, old10: 5}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got10, got1m := stored10(t, st, now), stored1m(t, st, now)
		if equalCounts(got10, want10) && equalCounts(got1m, want1m) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention left 10s %v and 1m %v; want %v and %v", got10, got1m, want10, want1m)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func stored10(t *testing.T, st *store.Store, now time.Time) map[time.Time]int64 {
	return storedRange(t, st, telemetry.Res10s, now.Add(-30*24*time.Hour), now)
}

func stored1m(t *testing.T, st *store.Store, now time.Time) map[time.Time]int64 {
	return storedRange(t, st, telemetry.Res1m, now.Add(-30*24*time.Hour), now)
}

func storedRange(t *testing.T, st *store.Store, res telemetry.Resolution, from, to time.Time) map[time.Time]int64 {
	t.Helper()
	// Steps of 10 s keep each bucket of either resolution apart.
	rows, err := st.ReadRollups(context.Background(), res, telemetry.HistoryQuery{From: from, To: to, Step: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	out := map[time.Time]int64{}
	for _, r := range rows {
		out[r.Bucket] += r.Stats.Requests
	}
	return out
}

// TestAggregatorQueries answers the graph from memory and from the rollups, and time series
// at the resolution the range calls for.
func TestAggregatorQueries(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	t0 := time.Unix(1_800_000_000, 0).UTC()
	clk := &clock{t: t0.Add(5 * time.Second)}
	a := newAggregator(t, st, clk)
	gw := reviewsV1
	gw.Reporter, gw.SourceNamespace, gw.SourceWorkload = telemetry.ReporterSource, "istio-system", "istio-ingressgateway"
	gw.DestinationService, gw.DestinationWorkload = "productpage.default.svc.cluster.local", "productpage-v1"
	a.Record(telemetry.Origin{NodeID: "gw", Gateway: true}, []telemetry.Sample{{Series: gw, Stats: telemetry.Stats{Requests: 4}}})
	a.Record(telemetry.Origin{NodeID: "n"}, sample(30))
	clk.Set(t0.Add(20 * time.Second))
	a.Record(telemetry.Origin{NodeID: "n"}, sample(30))

	live, err := a.Graph(ctx, time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if live.Source != "live" || !live.To.Equal(t0.Add(21*time.Second)) || live.To.Sub(live.From) != time.Minute {
		t.Errorf("live graph over %s–%s from %s", live.From, live.To, live.Source)
	}
	if e := findEdge(live.Graph, "workload:default/productpage-v1", "service:reviews.default.svc.cluster.local"); e.Requests != 60 || e.RPS != 1 {
		t.Errorf("live edge %+v, want 60 requests at 1 rps", e)
	}
	// The gateway reported as the caller, and productpage did not report its side.
	if e := findEdge(live.Graph, "workload:istio-system/istio-ingressgateway", "service:productpage.default.svc.cluster.local"); e.Requests != 4 {
		t.Errorf("gateway edge %+v, want 4 requests", e)
	}
	for _, n := range live.Nodes {
		if n.Name == "istio-ingressgateway" && n.Type != telemetry.NodeGateway {
			t.Errorf("gateway node %+v", n)
		}
	}
	// A window of 10 s sees only the last record.
	if g, _ := a.Graph(ctx, 10*time.Second); findEdge(g.Graph, "workload:default/productpage-v1", "service:reviews.default.svc.cluster.local").Requests != 30 {
		t.Errorf("10 s window: %+v", g.Edges)
	}

	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	hist, err := a.Graph(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if hist.Source != "10s" || findEdge(hist.Graph, "workload:default/productpage-v1", "service:reviews.default.svc.cluster.local").Requests != 60 {
		t.Errorf("an hour's graph from %s: %+v", hist.Source, hist.Edges)
	}
	long, err := a.Graph(ctx, 48*time.Hour)
	if err != nil || long.Source != "1m" || findEdge(long.Graph, "workload:default/productpage-v1", "service:reviews.default.svc.cluster.local").Requests != 60 {
		t.Errorf("two days' graph from %s: %+v (%v)", long.Source, long.Edges, err)
	}

	m, err := a.Metrics(ctx, telemetry.MetricsQuery{From: t0, To: t0.Add(time.Minute), Step: 10 * time.Second, Service: "reviews"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Resolution != telemetry.Res10s || m.Step != 10*time.Second || len(m.Series) != 1 || len(m.Series[0].Points) != 6 {
		t.Fatalf("metrics %+v", m)
	}
	if p := m.Series[0].Points; p[0].Requests != 30 || p[1].Requests != 0 || p[2].Requests != 30 || p[0].RPS != 3 {
		t.Errorf("points %+v", p)
	}
	// Beyond the 10 s retention, or longer than a day: the 1-minute rollups.
	m, err = a.Metrics(ctx, telemetry.MetricsQuery{From: t0.Add(-47 * time.Hour), To: t0.Add(time.Hour)})
	if err != nil || m.Resolution != telemetry.Res1m || m.Step != 12*time.Minute {
		t.Errorf("two days: resolution %s step %s (%v)", m.Resolution, m.Step, err)
	}

	for _, bad := range []struct {
		name  string
		q     telemetry.MetricsQuery
		param string
	}{
		{"from after to", telemetry.MetricsQuery{From: t0, To: t0.Add(-time.Second)}, "from"},
		{"too many points", telemetry.MetricsQuery{From: t0.Add(-29 * 24 * time.Hour), To: t0, Step: time.Minute}, "step"},
		{"bad grouping", telemetry.MetricsQuery{By: "pod"}, "by"},
	} {
		var qe *telemetry.QueryError
		if _, err := a.Metrics(ctx, bad.q); !errors.As(err, &qe) || qe.Param != bad.param {
			t.Errorf("%s: %v, want a QueryError about %s", bad.name, err, bad.param)
		}
	}
	var qe *telemetry.QueryError
	if _, err := a.Graph(ctx, 365*24*time.Hour); !errors.As(err, &qe) || qe.Param != "window" {
		t.Errorf("a year's graph: %v, want a QueryError about the window", err)
	}
}

func findEdge(g telemetry.Graph, from, to string) *telemetry.Edge {
	for i := range g.Edges {
		if g.Edges[i].Source == from && g.Edges[i].Target == to {
			return &g.Edges[i]
		}
	}
	return &telemetry.Edge{}
}

// TestAggregatorMTLSShare carries the mutual TLS count from samples to the live graph and
// through the rollups to the stored graphs.
func TestAggregatorMTLSShare(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	t0 := time.Unix(1_800_000_000, 0).UTC()
	clk := &clock{t: t0.Add(5 * time.Second)}
	a := newAggregator(t, st, clk)
	withMTLS := func(n, mtls int64) []telemetry.Sample {
		s := sample(n)
		s[0].Stats.MTLSRequests = mtls
		return s
	}
	a.Record(telemetry.Origin{NodeID: "n"}, withMTLS(30, 15))
	clk.Set(t0.Add(20 * time.Second))
	a.Record(telemetry.Origin{NodeID: "n"}, withMTLS(30, 30))

	const from, to = "workload:default/productpage-v1", "service:reviews.default.svc.cluster.local"
	check := func(what string, g telemetry.GraphResult, err error, source string) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		e := findEdge(g.Graph, from, to)
		if g.Source != source || e.MTLSShare == nil || *e.MTLSShare != 0.75 {
			t.Errorf("%s from %s: edge %+v, mtlsShare %v, want 0.75 from %s", what, g.Source, e, derefFloat(e.MTLSShare), source)
		}
	}
	g, err := a.Graph(ctx, time.Minute)
	check("live graph", g, err, "live")
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	g, err = a.Graph(ctx, time.Hour)
	check("an hour's graph", g, err, "10s")
	g, err = a.Graph(ctx, 48*time.Hour)
	check("two days' graph", g, err, "1m")
}

func derefFloat(f *float64) any {
	if f == nil {
		return nil
	}
	return *f
}
