// Package experiments runs FaultExperiments. A Scheduler records each run of an experiment
// (the experiment with the start it was given) in the store and moves it through its states:
// scheduled while its start is ahead, running while its fault is overlaid, and then finished,
// stopped early by its guard, stopped by an operator, or deleted with its resource. It asks
// for a new translation at each start and end, and tells the translator which runs ended
// early, so their faults are lifted at once; the overlay itself is the xds package's.
//
// One goroutine owns the clock: it sleeps until the next start or end, or a configuration
// change, or, while a guarded run is running, a guard interval.
package experiments

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/sluicemesh/sluice/server/internal/changes"
	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/store"
	"github.com/sluicemesh/sluice/server/internal/telemetry"
	"github.com/sluicemesh/sluice/server/internal/xds"
)

// Runs keeps the experiment runs. The PostgreSQL store implements it.
type Runs interface {
	InsertExperimentRun(ctx context.Context, r store.ExperimentRun) (store.ExperimentRun, error)
	UpdateExperimentRunPlan(ctx context.Context, id int64, host string, end time.Time, revision int64) error
	TransitionExperimentRun(ctx context.Context, id int64, from []store.ExperimentState, to store.ExperimentState, reason string, at time.Time) (bool, error)
	OpenExperimentRuns(ctx context.Context) ([]store.ExperimentRun, error)
	HaltedExperimentRuns(ctx context.Context, after time.Time) ([]store.ExperimentRun, error)
	ExperimentRuns(ctx context.Context, f store.ExperimentRunFilter) ([]store.ExperimentRun, error)
}

// RunFeed announces changes of runs made by any replica. The PostgreSQL store implements it;
// Runs that do not leave each replica to notice others' stops at its next reconcile.
type RunFeed interface {
	WatchExperimentRuns(ctx context.Context, fn func()) error
}

// ConfigSource is the stored configuration and its feed of revisions.
type ConfigSource interface {
	List(ctx context.Context, kind, namespace string) ([]*store.Object, error)
	CurrentRevision(ctx context.Context) (int64, error)
	Subscribe(ctx context.Context, after int64, fn func(store.Revision) error) error
}

// Overlay is the translator: it overlays the active experiments and rebuilds on Kick.
type Overlay interface {
	SetHaltedExperiments(runs []xds.RunKey)
	Kick()
}

// ErrorRates measures a destination service's traffic; the telemetry Aggregator implements it.
type ErrorRates interface {
	DestinationErrors(host string, window time.Duration) (requests, errors int64)
}

var (
	_ Runs         = (*store.Store)(nil)
	_ RunFeed      = (*store.Store)(nil)
	_ ConfigSource = (*store.Store)(nil)
	_ Overlay      = (*xds.Server)(nil)
	_ ErrorRates   = (*telemetry.Aggregator)(nil)
)

// DefaultMinGuardRequests is the fewest requests over a guard's window that let it trip: below
// it, one or two failures of a quiet service would be a large rate that says little.
const DefaultMinGuardRequests = 20

// Options configure a Scheduler.
type Options struct {
	// Runs, Config and Overlay are required.
	Runs    Runs
	Config  ConfigSource
	Overlay Overlay
	// Rates measures error rates for guards; nil means guards never trip.
	Rates ErrorRates
	// Log receives state changes and failures; nil discards them.
	Log *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// GuardInterval is how often a running guarded experiment's error rate is read; zero
	// means a second.
	GuardInterval time.Duration
	// MinGuardRequests is the fewest requests over the window for a guard to trip; zero means
	// DefaultMinGuardRequests.
	MinGuardRequests int64
}

// Scheduler runs FaultExperiments. Its methods are safe for concurrent use.
type Scheduler struct {
	o    Options
	log  *slog.Logger
	wake chan struct{}
	// halted is the set last given to the Overlay; only the loop touches it.
	halted []xds.RunKey
	// sent is set once halted was given to the Overlay.
	sent bool
}

// New returns a Scheduler; call Run to start it.
func New(o Options) (*Scheduler, error) {
	if o.Runs == nil || o.Config == nil || o.Overlay == nil {
		return nil, errors.New("experiments: Options.Runs, Config and Overlay are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.GuardInterval <= 0 {
		o.GuardInterval = time.Second
	}
	if o.MinGuardRequests <= 0 {
		o.MinGuardRequests = DefaultMinGuardRequests
	}
	return &Scheduler{o: o, log: o.Log, wake: make(chan struct{}, 1)}, nil
}

// Wake asks the scheduler to look at the experiments again now.
func (s *Scheduler) Wake() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// Run keeps the runs current until ctx ends: it follows the configuration's revisions and
// the runs' changes of state (when Runs is a RunFeed), and sleeps between them until the next
// start, end or guard check.
func (s *Scheduler) Run(ctx context.Context) error {
	rev, err := s.o.Config.CurrentRevision(ctx)
	if err != nil {
		return fmt.Errorf("experiments: %w", err)
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return s.o.Config.Subscribe(ctx, rev, func(store.Revision) error {
			s.Wake()
			return nil
		})
	})
	if feed, ok := s.o.Runs.(RunFeed); ok {
		// Another replica's stop, or its tripped guard, lifts the fault here too.
		g.Go(func() error { return feed.WatchExperimentRuns(ctx, s.Wake) })
	}
	g.Go(func() error { return s.loop(ctx) })
	return g.Wait()
}

// retryAfter is how long the loop waits after a failed reconcile (the database may be
// restarting).
const retryAfter = time.Second

func (s *Scheduler) loop(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next, err := s.Reconcile(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			s.log.Error("reconcile experiments", "error", err)
			next = s.o.Now().Add(retryAfter)
		}
		var fire <-chan time.Time
		if !next.IsZero() {
			timer.Reset(max(next.Sub(s.o.Now()), 0))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.wake:
		case <-fire:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// experiment is a stored FaultExperiment with the start the server gave it.
type experiment struct {
	namespace, name string
	host            string
	spec            *config.FaultExperimentSpec
	revision        int64
	start, end      time.Time
}

func (e *experiment) key() xds.RunKey { return xds.NewRunKey(e.namespace, e.name, e.start) }

// experimentsNow reads the stored FaultExperiments that have a start.
func (s *Scheduler) experimentsNow(ctx context.Context) ([]*experiment, error) {
	objs, err := s.o.Config.List(ctx, config.KindFaultExperiment, "")
	if err != nil {
		return nil, err
	}
	var out []*experiment
	for _, o := range objs {
		r, err := changes.FromObject(o)
		if err != nil {
			s.log.Error("stored FaultExperiment skipped", "resource", o.Key().String(), "error", err)
			continue
		}
		spec := r.Spec.(*config.FaultExperimentSpec)
		if spec.Start == nil {
			continue // stored before starts were stamped: it never runs
		}
		out = append(out, &experiment{
			namespace: r.Namespace, name: r.Name, host: config.ResolveHost(spec.Host, r.Namespace),
			spec: spec, revision: o.Version(),
			start: spec.Start.UTC(), end: spec.Start.Add(time.Duration(spec.Duration)).UTC(),
		})
	}
	return out, nil
}

// Reconcile brings every run up to date at the current time: it records new runs, starts and
// ends them, checks the guards of the running ones, ends the runs whose experiment is gone,
// and hands the translator the halted runs. It returns when it next has something to do
// (zero for never, until a configuration change).
func (s *Scheduler) Reconcile(ctx context.Context) (time.Time, error) {
	now := s.o.Now()
	exps, err := s.experimentsNow(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("reconcile experiments: %w", err)
	}
	open, err := s.o.Runs.OpenExperimentRuns(ctx)
	if err != nil {
		return time.Time{}, fmt.Errorf("reconcile experiments: %w", err)
	}
	openByKey := map[xds.RunKey]store.ExperimentRun{}
	for _, r := range open {
		openByKey[xds.NewRunKey(r.Namespace, r.Name, r.Start)] = r
	}
	var next time.Time
	soonest := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	kick := false
	current := map[xds.RunKey]bool{}
	names := map[[2]string]bool{}
	for _, e := range exps {
		current[e.key()] = true
		names[[2]string{e.namespace, e.name}] = true
		run, ok := openByKey[e.key()]
		if !ok {
			if run, err = s.o.Runs.InsertExperimentRun(ctx, newRun(e, now)); err != nil {
				return time.Time{}, fmt.Errorf("reconcile experiments: %w", err)
			}
			s.log.Debug("experiment run", "experiment", e.namespace+"/"+e.name, "start", e.start, "state", run.State)
		} else if run.Host != e.host || !run.End.Equal(e.end) || run.Revision != e.revision {
			if err := s.o.Runs.UpdateExperimentRunPlan(ctx, run.ID, e.host, e.end, e.revision); err != nil {
				return time.Time{}, fmt.Errorf("reconcile experiments: %w", err)
			}
		}
		if !run.State.Open() {
			continue
		}
		state, reason, checked := s.stateAt(e, run, now)
		if state != run.State {
			from := []store.ExperimentState{run.State}
			moved, err := s.o.Runs.TransitionExperimentRun(ctx, run.ID, from, state, reason, now)
			if err != nil {
				return time.Time{}, fmt.Errorf("reconcile experiments: %w", err)
			}
			if moved {
				s.log.Info("experiment run", "experiment", e.namespace+"/"+e.name, "start", e.start, "state", state, "reason", reason)
				kick = true
			}
			run.State = state
		}
		switch {
		case run.State == store.ExperimentScheduled:
			soonest(e.start)
		case run.State == store.ExperimentRunning:
			soonest(e.end)
			if checked {
				soonest(now.Add(s.o.GuardInterval))
			}
		}
	}
	for _, r := range open {
		k := xds.NewRunKey(r.Namespace, r.Name, r.Start)
		if current[k] {
			continue
		}
		state, reason := store.ExperimentDeleted, "the FaultExperiment was deleted"
		if names[[2]string{r.Namespace, r.Name}] {
			state, reason = store.ExperimentStopped, "the FaultExperiment was given another start"
		}
		moved, err := s.o.Runs.TransitionExperimentRun(ctx, r.ID, []store.ExperimentState{r.State}, state, reason, now)
		if err != nil {
			return time.Time{}, fmt.Errorf("reconcile experiments: %w", err)
		}
		if moved {
			s.log.Info("experiment run", "experiment", r.Namespace+"/"+r.Name, "start", r.Start, "state", state, "reason", reason)
		}
	}
	if err := s.publishHalted(ctx, now); err != nil {
		return time.Time{}, err
	}
	if kick {
		s.o.Overlay.Kick()
	}
	return next, nil
}

// newRun is the first record of a run seen at now.
func newRun(e *experiment, now time.Time) store.ExperimentRun {
	r := store.ExperimentRun{
		Namespace: e.namespace, Name: e.name, Host: e.host, Start: e.start, End: e.end,
		Revision: e.revision, State: store.ExperimentScheduled,
	}
	if !now.Before(e.end) {
		// Applied (or first seen) after its window: it never ran.
		r.State, r.Reason = store.ExperimentFinished, "its window had passed when the server first saw it"
		r.EndedAt = &now
	}
	return r
}

// stateAt is the state run should be in at now, with its reason, and whether a guard was
// checked (so that it is checked again).
func (s *Scheduler) stateAt(e *experiment, run store.ExperimentRun, now time.Time) (store.ExperimentState, string, bool) {
	switch {
	case !now.Before(e.end):
		return store.ExperimentFinished, "", false
	case now.Before(e.start):
		return store.ExperimentScheduled, "", false
	}
	g := e.spec.Guard
	if g == nil || g.MaxErrorRate == nil || s.o.Rates == nil {
		return store.ExperimentRunning, "", false
	}
	window := time.Duration(g.Window)
	reqs, errs := s.o.Rates.DestinationErrors(e.host, window)
	if reqs >= s.o.MinGuardRequests && reqs > 0 {
		rate := float64(errs) / float64(reqs)
		if rate > *g.MaxErrorRate {
			return store.ExperimentStoppedEarly, fmt.Sprintf("guard tripped: error rate %s over the last %s (%d of %d requests failed) exceeded maxErrorRate %s",
				percent(rate), window, errs, reqs, percent(*g.MaxErrorRate)), false
		}
	}
	return store.ExperimentRunning, "", true
}

func percent(f float64) string {
	p := f * 100
	if p == math.Trunc(p) {
		return fmt.Sprintf("%.0f %%", p)
	}
	return fmt.Sprintf("%.1f %%", p)
}

// publishHalted hands the translator the runs ended early whose window has not passed, when
// they changed.
func (s *Scheduler) publishHalted(ctx context.Context, now time.Time) error {
	runs, err := s.o.Runs.HaltedExperimentRuns(ctx, now)
	if err != nil {
		return fmt.Errorf("reconcile experiments: %w", err)
	}
	keys := make([]xds.RunKey, 0, len(runs))
	for _, r := range runs {
		keys = append(keys, xds.NewRunKey(r.Namespace, r.Name, r.Start))
	}
	if s.sent && slices.Equal(keys, s.halted) {
		return nil
	}
	s.halted, s.sent = keys, true
	s.o.Overlay.SetHaltedExperiments(keys)
	return nil
}

// NotRunningError is a stop of an experiment that has no scheduled or running run.
type NotRunningError struct{ Namespace, Name string }

func (e *NotRunningError) Error() string {
	return fmt.Sprintf("FaultExperiment %s/%s is neither scheduled nor running: there is nothing to stop", e.Namespace, e.Name)
}

// Stop ends the open run of experiment namespace/name now, as stopped by who, and returns it.
// Its fault is lifted at once; the FaultExperiment resource stays, as history.
func (s *Scheduler) Stop(ctx context.Context, namespace, name, who string) (store.ExperimentRun, error) {
	open, err := s.o.Runs.OpenExperimentRuns(ctx)
	if err != nil {
		return store.ExperimentRun{}, fmt.Errorf("stop experiment %s/%s: %w", namespace, name, err)
	}
	now := s.o.Now()
	var stopped *store.ExperimentRun
	for _, r := range open {
		if r.Namespace != namespace || r.Name != name {
			continue
		}
		reason := "stopped by " + who
		moved, err := s.o.Runs.TransitionExperimentRun(ctx, r.ID, []store.ExperimentState{store.ExperimentScheduled, store.ExperimentRunning}, store.ExperimentStopped, reason, now)
		if err != nil {
			return store.ExperimentRun{}, fmt.Errorf("stop experiment %s/%s: %w", namespace, name, err)
		}
		if moved {
			r.State, r.Reason, r.EndedAt = store.ExperimentStopped, reason, &now
			stopped = &r
			s.log.Info("experiment run", "experiment", namespace+"/"+name, "start", r.Start, "state", r.State, "reason", reason)
		}
	}
	if stopped == nil {
		objs, err := s.o.Config.List(ctx, config.KindFaultExperiment, namespace)
		if err != nil {
			return store.ExperimentRun{}, fmt.Errorf("stop experiment %s/%s: %w", namespace, name, err)
		}
		for _, o := range objs {
			if o.Metadata.Name == name {
				return store.ExperimentRun{}, &NotRunningError{Namespace: namespace, Name: name}
			}
		}
		return store.ExperimentRun{}, &store.NotFoundError{What: "FaultExperiment " + namespace + "/" + name}
	}
	s.Wake()
	return *stopped, nil
}
