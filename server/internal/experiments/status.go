package experiments

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/sluicemesh/sluice/server/internal/changes"
	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/store"
)

// Status is a FaultExperiment as it stands: what it targets, when it runs, and the state of
// its current run.
type Status struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Host is the target, fully qualified.
	Host string `json:"host"`
	// Start and End are the run's window; nil for an experiment stored without a start.
	Start    *time.Time `json:"start,omitempty"`
	End      *time.Time `json:"end,omitempty"`
	Duration string     `json:"duration"`
	// State is the current run's state, and Reason why it ended early.
	State  store.ExperimentState `json:"state"`
	Reason string                `json:"reason,omitempty"`
	// StartedAt and EndedAt are when the fault was turned on and off.
	StartedAt *time.Time `json:"startedAt,omitempty"`
	EndedAt   *time.Time `json:"endedAt,omitempty"`
	// ResourceVersion is the FaultExperiment's, and Spec its stored spec.
	ResourceVersion string          `json:"resourceVersion"`
	Spec            json.RawMessage `json:"spec"`
}

// historyLimit bounds the runs List and Get return.
const historyLimit = 50

// List returns every FaultExperiment with its status, and the latest ended runs (of
// experiments still present or deleted), newest first.
func (s *Scheduler) List(ctx context.Context) ([]Status, []store.ExperimentRun, error) {
	objs, err := s.o.Config.List(ctx, config.KindFaultExperiment, "")
	if err != nil {
		return nil, nil, fmt.Errorf("list experiments: %w", err)
	}
	open, err := s.o.Runs.OpenExperimentRuns(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("list experiments: %w", err)
	}
	history, err := s.o.Runs.ExperimentRuns(ctx, store.ExperimentRunFilter{Closed: true, Limit: historyLimit})
	if err != nil {
		return nil, nil, fmt.Errorf("list experiments: %w", err)
	}
	known := append(append([]store.ExperimentRun(nil), open...), history...)
	out := make([]Status, 0, len(objs))
	for _, o := range objs {
		st, err := s.status(ctx, o, known)
		if err != nil {
			return nil, nil, err
		}
		out = append(out, st)
	}
	return out, history, nil
}

// Get returns one FaultExperiment's status (nil once it was deleted) and its runs, newest
// first. It fails with a store.NotFoundError when there is neither.
func (s *Scheduler) Get(ctx context.Context, namespace, name string) (*Status, []store.ExperimentRun, error) {
	runs, err := s.o.Runs.ExperimentRuns(ctx, store.ExperimentRunFilter{Namespace: namespace, Name: name, Limit: historyLimit})
	if err != nil {
		return nil, nil, fmt.Errorf("get experiment %s/%s: %w", namespace, name, err)
	}
	objs, err := s.o.Config.List(ctx, config.KindFaultExperiment, namespace)
	if err != nil {
		return nil, nil, fmt.Errorf("get experiment %s/%s: %w", namespace, name, err)
	}
	for _, o := range objs {
		if o.Metadata.Name == name {
			st, err := s.status(ctx, o, runs)
			if err != nil {
				return nil, nil, err
			}
			return &st, runs, nil
		}
	}
	if len(runs) == 0 {
		return nil, nil, &store.NotFoundError{What: "FaultExperiment " + namespace + "/" + name}
	}
	return nil, runs, nil
}

// status is a stored experiment's status: its run's, when the run is among known (or in the
// store), else what the clock says until the scheduler records it.
func (s *Scheduler) status(ctx context.Context, o *store.Object, known []store.ExperimentRun) (Status, error) {
	r, err := changes.FromObject(o)
	if err != nil {
		return Status{}, fmt.Errorf("experiment %s: %w", o.Key(), err)
	}
	spec := r.Spec.(*config.FaultExperimentSpec)
	st := Status{
		Namespace: r.Namespace, Name: r.Name, Host: config.ResolveHost(spec.Host, r.Namespace),
		Duration: spec.Duration.String(), ResourceVersion: o.Metadata.ResourceVersion, Spec: o.Spec,
	}
	if spec.Start == nil {
		st.State, st.Reason = store.ExperimentScheduled, "no start was recorded: apply the experiment again to start it"
		return st, nil
	}
	start, end := spec.Start.UTC(), spec.Start.Add(time.Duration(spec.Duration)).UTC()
	st.Start, st.End = &start, &end
	find := func(runs []store.ExperimentRun) *store.ExperimentRun {
		for i := range runs {
			if runs[i].Start.Equal(start) {
				return &runs[i]
			}
		}
		return nil
	}
	run := find(known)
	if run == nil {
		runs, err := s.o.Runs.ExperimentRuns(ctx, store.ExperimentRunFilter{Namespace: r.Namespace, Name: r.Name, Limit: historyLimit})
		if err != nil {
			return Status{}, fmt.Errorf("experiment %s: %w", o.Key(), err)
		}
		run = find(runs)
	}
	if run != nil {
		st.State, st.Reason, st.StartedAt, st.EndedAt = run.State, run.Reason, run.StartedAt, run.EndedAt
		return st, nil
	}
	switch now := s.o.Now(); {
	case now.Before(start):
		st.State = store.ExperimentScheduled
	case now.Before(end):
		st.State = store.ExperimentRunning
	default:
		st.State = store.ExperimentFinished
	}
	return st, nil
}
