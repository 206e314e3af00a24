package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/server/internal/store"
)

func TestExperimentRuns(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	run := store.ExperimentRun{
		Namespace: "default", Name: "chaos", Host: "ratings.default.svc.cluster.local",
		Start: t0, End: t0.Add(time.Minute), Revision: 3, State: store.ExperimentScheduled,
	}
	a, err := st.InsertExperimentRun(ctx, run)
	if err != nil {
		t.Fatal(err)
	}
	if a.ID == 0 || a.State != store.ExperimentScheduled || !a.Start.Equal(t0) || a.StartedAt != nil {
		t.Fatalf("inserted %+v", a)
	}
	// The same experiment and start is the same run, whatever else is sent.
	again := run
	again.State = store.ExperimentRunning
	b, err := st.InsertExperimentRun(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if b.ID != a.ID || b.State != store.ExperimentScheduled {
		t.Fatalf("second insert gave %+v, want run %d unchanged", b, a.ID)
	}

	if err := st.UpdateExperimentRunPlan(ctx, a.ID, run.Host, t0.Add(2*time.Minute), 4); err != nil {
		t.Fatal(err)
	}
	// A final state cannot be reached from one it does not come from.
	ok, err := st.TransitionExperimentRun(ctx, a.ID, []store.ExperimentState{store.ExperimentRunning}, store.ExperimentFinished, "", t0)
	if err != nil || ok {
		t.Fatalf("finish a scheduled run: ok %v err %v, want refused", ok, err)
	}
	at := t0.Add(time.Second)
	if ok, err := st.TransitionExperimentRun(ctx, a.ID, []store.ExperimentState{store.ExperimentScheduled}, store.ExperimentRunning, "", at); err != nil || !ok {
		t.Fatalf("start: ok %v err %v", ok, err)
	}
	open, err := st.OpenExperimentRuns(ctx)
	if err != nil || len(open) != 1 {
		t.Fatalf("open runs %+v err %v", open, err)
	}
	if r := open[0]; r.State != store.ExperimentRunning || r.StartedAt == nil || !r.StartedAt.Equal(at) || !r.End.Equal(t0.Add(2*time.Minute)) || r.Revision != 4 {
		t.Fatalf("running run %+v", r)
	}
	stopAt := t0.Add(10 * time.Second)
	if ok, err := st.TransitionExperimentRun(ctx, a.ID, []store.ExperimentState{store.ExperimentScheduled, store.ExperimentRunning}, store.ExperimentStopped, "stopped by alice", stopAt); err != nil || !ok {
		t.Fatalf("stop: ok %v err %v", ok, err)
	}
	// Once final, a run stays as it is.
	if ok, _ := st.TransitionExperimentRun(ctx, a.ID, []store.ExperimentState{store.ExperimentScheduled, store.ExperimentRunning}, store.ExperimentFinished, "", stopAt); ok {
		t.Fatal("a stopped run was finished")
	}
	if err := st.UpdateExperimentRunPlan(ctx, a.ID, "other", t0.Add(time.Hour), 9); err != nil {
		t.Fatal(err)
	}

	halted, err := st.HaltedExperimentRuns(ctx, t0.Add(time.Minute))
	if err != nil || len(halted) != 1 || halted[0].ID != a.ID {
		t.Fatalf("halted during its window: %+v err %v", halted, err)
	}
	if halted[0].Host != run.Host || halted[0].Revision != 4 || halted[0].Reason != "stopped by alice" || !halted[0].EndedAt.Equal(stopAt) {
		t.Fatalf("stopped run %+v", halted[0])
	}
	if halted, _ := st.HaltedExperimentRuns(ctx, t0.Add(2*time.Minute)); len(halted) != 0 {
		t.Fatalf("halted after its window: %+v", halted)
	}

	second := run
	second.Start, second.End, second.State = t0.Add(time.Hour), t0.Add(time.Hour+time.Minute), store.ExperimentScheduled
	if _, err := st.InsertExperimentRun(ctx, second); err != nil {
		t.Fatal(err)
	}
	other := run
	other.Name = "other"
	if _, err := st.InsertExperimentRun(ctx, other); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		f    store.ExperimentRunFilter
		want int
	}{
		{"all", store.ExperimentRunFilter{}, 3},
		{"one experiment", store.ExperimentRunFilter{Namespace: "default", Name: "chaos"}, 2},
		{"closed", store.ExperimentRunFilter{Closed: true}, 1},
		{"limit", store.ExperimentRunFilter{Limit: 1}, 1},
	}
	for _, tc := range tests {
		runs, err := st.ExperimentRuns(ctx, tc.f)
		if err != nil || len(runs) != tc.want {
			t.Errorf("%s: %d runs (%v), want %d", tc.name, len(runs), err, tc.want)
		}
	}
	runs, _ := st.ExperimentRuns(ctx, store.ExperimentRunFilter{Namespace: "default", Name: "chaos"})
	if !runs[0].Start.Equal(second.Start) {
		t.Errorf("runs not newest first: %+v", runs)
	}
	bad := run
	bad.Start = t0.Add(3 * time.Hour)
	bad.State = "exploded"
	if _, err := st.InsertExperimentRun(ctx, bad); err == nil {
		t.Error("a run in an unknown state was stored")
	}
}
