package experiments_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/sluicemesh/sluice/internal/pgtest"
	"github.com/sluicemesh/sluice/server/internal/changes"
	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/experiments"
	"github.com/sluicemesh/sluice/server/internal/store"
	"github.com/sluicemesh/sluice/server/internal/telemetry"
	"github.com/sluicemesh/sluice/server/internal/xds"
)

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

// overlay records what the scheduler tells the translator.
type overlay struct {
	mu     sync.Mutex
	halted []xds.RunKey
	kicks  int
}

func (o *overlay) SetHaltedExperiments(runs []xds.RunKey) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.halted = slices.Clone(runs)
}

func (o *overlay) Kick() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.kicks++
}

func (o *overlay) state() ([]xds.RunKey, int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.halted), o.kicks
}

type fixture struct {
	t     *testing.T
	st    *store.Store
	svc   *changes.Service
	clk   *clock
	ov    *overlay
	agg   *telemetry.Aggregator
	sched *experiments.Scheduler
}

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func newFixture(t *testing.T) *fixture {
	t.Helper()
	log := slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	st, err := store.Open(context.Background(), pgtest.New(t, migrated), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	f := &fixture{t: t, st: st, svc: changes.New(st), clk: &clock{t: t0}, ov: &overlay{}}
	f.agg, err = telemetry.New(telemetry.Options{Store: st, Log: log, Now: f.clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	f.sched, err = experiments.New(experiments.Options{
		Runs: st, Config: st, Overlay: f.ov, Rates: f.agg, Log: log, Now: f.clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// apply applies a FaultExperiment default/<name> on ratings starting at start.
func (f *fixture) apply(name string, start time.Time, extra string) {
	f.t.Helper()
	doc := fmt.Sprintf("apiVersion: sluice.dev/v1alpha1\nkind: FaultExperiment\nmetadata: {name: %s, namespace: default}\nspec:\n  host: ratings\n  abort: {httpStatus: 503, percentage: 10}\n  start: %s\n  duration: 1m\n%s",
		name, start.Format(time.RFC3339), extra)
	if _, err := f.svc.Apply(context.Background(), changes.Actor{Name: "alice"}, []byte(doc), "", false); err != nil {
		f.t.Fatalf("apply %s: %v", name, err)
	}
}

// reconcile runs the scheduler once at the fixture's time and returns when it next wakes.
func (f *fixture) reconcile() time.Time {
	f.t.Helper()
	next, err := f.sched.Reconcile(context.Background())
	if err != nil {
		f.t.Fatal(err)
	}
	return next
}

// runs returns the runs of default/<name>, newest first.
func (f *fixture) runs(name string) []store.ExperimentRun {
	f.t.Helper()
	_, runs, err := f.sched.Get(context.Background(), "default", name)
	if err != nil {
		f.t.Fatal(err)
	}
	return runs
}

func (f *fixture) wantState(name string, want store.ExperimentState) store.ExperimentRun {
	f.t.Helper()
	runs := f.runs(name)
	if len(runs) == 0 || runs[0].State != want {
		f.t.Fatalf("runs of %s: %+v, want the latest %s", name, runs, want)
	}
	return runs[0]
}

func TestLifecycle(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	start := t0.Add(10 * time.Second)
	f.apply("chaos", start, "")

	if next := f.reconcile(); !next.Equal(start) {
		t.Errorf("scheduled: next wake %v, want the start %v", next, start)
	}
	f.wantState("chaos", store.ExperimentScheduled)
	if _, kicks := f.ov.state(); kicks != 0 {
		t.Errorf("%d kicks before the start", kicks)
	}

	f.clk.Set(start)
	if next := f.reconcile(); !next.Equal(start.Add(time.Minute)) {
		t.Errorf("running: next wake %v, want the end", next)
	}
	r := f.wantState("chaos", store.ExperimentRunning)
	if r.StartedAt == nil || !r.StartedAt.Equal(start) || r.Host != "ratings.default.svc.cluster.local" || r.Revision == 0 {
		t.Errorf("running run %+v", r)
	}
	if _, kicks := f.ov.state(); kicks != 1 {
		t.Errorf("%d kicks at the start, want 1", kicks)
	}

	f.clk.Set(start.Add(time.Minute))
	if next := f.reconcile(); !next.IsZero() {
		t.Errorf("finished: next wake %v, want none", next)
	}
	r = f.wantState("chaos", store.ExperimentFinished)
	if r.EndedAt == nil || !r.EndedAt.Equal(start.Add(time.Minute)) {
		t.Errorf("finished run %+v", r)
	}
	if halted, kicks := f.ov.state(); kicks != 2 || len(halted) != 0 {
		t.Errorf("after the end: %d kicks (want 2), halted %v (want none)", kicks, halted)
	}

	st, _, err := f.sched.Get(context.Background(), "default", "chaos")
	if err != nil || st == nil || st.State != store.ExperimentFinished || !st.Start.Equal(start) || st.Duration != "1m0s" {
		t.Fatalf("status %+v err %v", st, err)
	}
}

// An experiment applied after its window never runs.
func TestAppliedAfterItsWindow(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.apply("late", t0.Add(-time.Hour), "")
	f.reconcile()
	r := f.wantState("late", store.ExperimentFinished)
	if r.StartedAt != nil || r.Reason == "" {
		t.Errorf("late run %+v, want never started, with a reason", r)
	}
}

func (f *fixture) traffic(code string, n int64) {
	f.agg.Record(telemetry.Origin{NodeID: "ratings"}, []telemetry.Sample{{
		Series: telemetry.Series{
			Reporter: telemetry.ReporterDestination, SourceWorkload: "reviews-v1", SourceNamespace: "default",
			DestinationService: "ratings.default.svc.cluster.local", DestinationWorkload: "ratings-v1", DestinationVersion: "v1",
			ResponseCode: code, ResponseFlags: "-", Protocol: "http",
		},
		Stats: telemetry.Stats{Requests: n},
	}})
}

// The guard stops a run early once the error rate over its window exceeds maxErrorRate with
// enough requests to judge, and the translator is told to lift the fault.
func TestGuardStopsEarly(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.apply("guarded", t0, "  guard: {maxErrorRate: 0.1, window: 10s}\n")
	f.reconcile()
	f.wantState("guarded", store.ExperimentRunning)

	// Half of the requests fail, but there are too few to judge.
	f.traffic("200", 5)
	f.traffic("503", 5)
	f.clk.Set(t0.Add(time.Second))
	if next := f.reconcile(); !next.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("guarded run: next wake %v, want a guard interval later", next)
	}
	f.wantState("guarded", store.ExperimentRunning)

	// 100 requests, 9 failures: 9 % is within the guard.
	f.traffic("200", 86)
	f.traffic("503", 4)
	f.reconcile()
	f.wantState("guarded", store.ExperimentRunning)

	f.traffic("503", 21) // 30 of 121
	f.reconcile()
	r := f.wantState("guarded", store.ExperimentStoppedEarly)
	for _, want := range []string{"24.8 %", "30 of 121", "maxErrorRate 10 %"} {
		if !strings.Contains(r.Reason, want) {
			t.Errorf("reason %q does not say %q", r.Reason, want)
		}
	}
	halted, _ := f.ov.state()
	if want := []xds.RunKey{xds.NewRunKey("default", "guarded", t0)}; !slices.Equal(halted, want) {
		t.Errorf("halted %v, want %v", halted, want)
	}
	// Stopped early stays stopped early, whatever the traffic does next.
	f.clk.Set(t0.Add(30 * time.Second))
	f.reconcile()
	f.wantState("guarded", store.ExperimentStoppedEarly)
	// Once its window has passed, the halted run no longer needs to be named.
	f.clk.Set(t0.Add(time.Minute))
	f.reconcile()
	if halted, _ := f.ov.state(); len(halted) != 0 {
		t.Errorf("halted after the window %v", halted)
	}
}

func TestStopDeleteAndRestart(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	ctx := context.Background()
	f.apply("chaos", t0, "")
	f.reconcile()

	run, err := f.sched.Stop(ctx, "default", "chaos", "bob")
	if err != nil || run.State != store.ExperimentStopped || run.Reason != "stopped by bob" {
		t.Fatalf("stop: %+v err %v", run, err)
	}
	f.reconcile()
	f.wantState("chaos", store.ExperimentStopped)
	if halted, _ := f.ov.state(); len(halted) != 1 {
		t.Errorf("halted %v, want the stopped run", halted)
	}
	var notRunning *experiments.NotRunningError
	if _, err := f.sched.Stop(ctx, "default", "chaos", "bob"); !errors.As(err, &notRunning) {
		t.Errorf("second stop: %v, want NotRunningError", err)
	}
	if _, err := f.sched.Stop(ctx, "default", "nope", "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("stop of an unknown experiment: %v, want not found", err)
	}

	// A new start is a new run.
	f.apply("chaos", t0.Add(time.Second), "")
	f.clk.Set(t0.Add(time.Second))
	f.reconcile()
	f.wantState("chaos", store.ExperimentRunning)
	if n := len(f.runs("chaos")); n != 2 {
		t.Errorf("%d runs, want 2", n)
	}
	// Given another start while running: the running one is stopped, the new one scheduled.
	f.apply("chaos", t0.Add(time.Hour), "")
	f.reconcile()
	runs := f.runs("chaos")
	if len(runs) != 3 || runs[0].State != store.ExperimentScheduled || runs[1].State != store.ExperimentStopped || !strings.Contains(runs[1].Reason, "another start") {
		t.Fatalf("runs after a new start: %+v", runs)
	}

	// Deleting ends the open run at once.
	if _, err := f.svc.Delete(ctx, changes.Actor{Name: "alice"}, store.Key{Kind: config.KindFaultExperiment, Namespace: "default", Name: "chaos"}, 0); err != nil {
		t.Fatal(err)
	}
	f.reconcile()
	st, runs, err := f.sched.Get(ctx, "default", "chaos")
	if err != nil || st != nil || len(runs) != 3 || runs[0].State != store.ExperimentDeleted {
		t.Fatalf("after delete: status %+v runs %+v err %v", st, runs, err)
	}
	items, history, err := f.sched.List(ctx)
	if err != nil || len(items) != 0 || len(history) != 3 {
		t.Fatalf("list after delete: %d items, %d history, err %v", len(items), len(history), err)
	}
}

// Run follows the configuration by itself: a short experiment applied without a start starts
// at once and finishes when its duration runs out.
func TestRunFollowsConfiguration(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(logWriter{t}, nil))
	st, err := store.Open(context.Background(), pgtest.New(t, migrated), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	ov := &overlay{}
	sched, err := experiments.New(experiments.Options{Runs: st, Config: st, Overlay: ov, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- sched.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()

	doc := "apiVersion: sluice.dev/v1alpha1\nkind: FaultExperiment\nmetadata: {name: quick}\nspec: {host: ratings, delay: {fixedDelay: 1s}, duration: 2s}\n"
	if _, err := changes.New(st).Apply(ctx, changes.Actor{Name: "alice"}, []byte(doc), "", false); err != nil {
		t.Fatal(err)
	}
	var seen []store.ExperimentState
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		_, runs, err := sched.Get(ctx, "default", "quick")
		if err == nil && len(runs) == 1 {
			if s := runs[0].State; len(seen) == 0 || seen[len(seen)-1] != s {
				seen = append(seen, s)
			}
			if runs[0].State == store.ExperimentFinished {
				break
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A run may be read in the instant between its record and the scheduler's first pass,
	// as scheduled; what matters is that it runs, then finishes, and nothing else.
	if len(seen) > 0 && seen[0] == store.ExperimentScheduled {
		seen = seen[1:]
	}
	if want := []store.ExperimentState{store.ExperimentRunning, store.ExperimentFinished}; !slices.Equal(seen, want) {
		t.Fatalf("states seen %v, want %v", seen, want)
	}
	if _, kicks := ov.state(); kicks < 2 {
		t.Errorf("%d kicks, want one at the start and one at the end", kicks)
	}
}

// A stop recorded by one replica lifts the fault on another: the run's change of state is
// announced to every scheduler.
func TestStopReachesOtherReplicas(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(logWriter{t}, nil))
	url := pgtest.New(t, migrated)
	open := func() *store.Store {
		st, err := store.Open(context.Background(), url, log)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		return st
	}
	stA, stB := open(), open()
	ovA, ovB := &overlay{}, &overlay{}
	a, err := experiments.New(experiments.Options{Runs: stA, Config: stA, Overlay: ovA, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	b, err := experiments.New(experiments.Options{Runs: stB, Config: stB, Overlay: ovB, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	doc := "apiVersion: sluice.dev/v1alpha1\nkind: FaultExperiment\nmetadata: {name: long}\nspec: {host: ratings, abort: {httpStatus: 503}, duration: 1h}\n"
	if _, err := changes.New(stA).Apply(context.Background(), changes.Actor{Name: "alice"}, []byte(doc), "", false); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not after 30s", what)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	waitFor("replica b running", func() bool {
		_, runs, err := b.Get(ctx, "default", "long")
		return err == nil && len(runs) == 1 && runs[0].State == store.ExperimentRunning
	})
	if _, err := a.Stop(ctx, "default", "long", "bob"); err != nil {
		t.Fatal(err)
	}
	waitFor("replica b halts the stopped run", func() bool {
		halted, _ := ovB.state()
		return len(halted) == 1 && halted[0].Name == "long"
	})
}
