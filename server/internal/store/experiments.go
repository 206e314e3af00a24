package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// ExperimentState is the state of one run of a FaultExperiment.
type ExperimentState string

// The states of a run. Scheduled and running are open; the others are final.
const (
	// ExperimentScheduled: the start is in the future.
	ExperimentScheduled ExperimentState = "scheduled"
	// ExperimentRunning: the fault is overlaid on the routes to the host.
	ExperimentRunning ExperimentState = "running"
	// ExperimentStoppedEarly: the guard tripped; the reason holds the measured error rate.
	ExperimentStoppedEarly ExperimentState = "stopped_early"
	// ExperimentFinished: the duration ran out.
	ExperimentFinished ExperimentState = "finished"
	// ExperimentStopped: an operator stopped it, or it was given a new start.
	ExperimentStopped ExperimentState = "stopped"
	// ExperimentDeleted: the FaultExperiment was deleted before the run ended.
	ExperimentDeleted ExperimentState = "deleted"
)

// Open reports whether a run in state s may still change state.
func (s ExperimentState) Open() bool { return s == ExperimentScheduled || s == ExperimentRunning }

// ExperimentRun is one run of a FaultExperiment: the experiment with the start it was given.
type ExperimentRun struct {
	ID        int64  `json:"id"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Host is the target, fully qualified.
	Host string `json:"host"`
	// Start and End are the planned window.
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Revision is the configuration revision of the spec the run follows.
	Revision int64           `json:"revision"`
	State    ExperimentState `json:"state"`
	Reason   string          `json:"reason,omitempty"`
	// StartedAt and EndedAt are when the fault was turned on and off; nil until then.
	StartedAt *time.Time `json:"startedAt,omitempty"`
	EndedAt   *time.Time `json:"endedAt,omitempty"`
	UpdatedAt time.Time  `json:"updatedAt"`
}

// ExperimentRunFilter selects runs, newest start first.
type ExperimentRunFilter struct {
	// Namespace and Name, when set, select one experiment's runs.
	Namespace, Name string
	// Closed keeps only the runs in a final state.
	Closed bool
	// Limit caps the count; zero means 100.
	Limit int
}

const runColumns = `id, namespace, name, host, start_at, end_at, revision, state, reason, started_at, ended_at, updated_at`

func scanRun(row pgx.CollectableRow) (ExperimentRun, error) {
	var r ExperimentRun
	err := row.Scan(&r.ID, &r.Namespace, &r.Name, &r.Host, &r.Start, &r.End, &r.Revision, &r.State, &r.Reason, &r.StartedAt, &r.EndedAt, &r.UpdatedAt)
	return r, err
}

func queryRuns(ctx context.Context, q querier, op, where string, args ...any) ([]ExperimentRun, error) {
	rows, err := q.Query(ctx, `SELECT `+runColumns+` FROM experiment_runs `+where, args...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	runs, err := pgx.CollectRows(rows, scanRun)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return runs, nil
}

// InsertExperimentRun records r unless a run of the same experiment and start exists, and
// returns the stored run either way. r's ID and UpdatedAt are ignored.
func (s *Store) InsertExperimentRun(ctx context.Context, r ExperimentRun) (ExperimentRun, error) {
	rows, err := s.pool.Query(ctx, `
		WITH ins AS (
			INSERT INTO experiment_runs (namespace, name, host, start_at, end_at, revision, state, reason, started_at, ended_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
			ON CONFLICT (namespace, name, start_at) DO NOTHING
			RETURNING `+runColumns+`)
		SELECT * FROM ins
		UNION ALL
		SELECT `+runColumns+` FROM experiment_runs WHERE namespace = $1 AND name = $2 AND start_at = $4
		LIMIT 1`,
		r.Namespace, r.Name, r.Host, r.Start, r.End, r.Revision, r.State, r.Reason, r.StartedAt, r.EndedAt)
	if err != nil {
		return ExperimentRun{}, fmt.Errorf("insert experiment run: %w", err)
	}
	got, err := pgx.CollectExactlyOneRow(rows, scanRun)
	if err != nil {
		return ExperimentRun{}, fmt.Errorf("insert experiment run %s/%s: %w", r.Namespace, r.Name, err)
	}
	return got, nil
}

// UpdateExperimentRunPlan follows an edit of an open run's experiment: its host, planned end
// and spec revision. A run that has ended is left as it is.
func (s *Store) UpdateExperimentRunPlan(ctx context.Context, id int64, host string, end time.Time, revision int64) error {
	if _, err := s.pool.Exec(ctx, `UPDATE experiment_runs SET host = $2, end_at = $3, revision = $4, updated_at = now()
		WHERE id = $1 AND state IN ('scheduled', 'running')`, id, host, end, revision); err != nil {
		return fmt.Errorf("update experiment run %d: %w", id, err)
	}
	return nil
}

// TransitionExperimentRun moves run id to state to, with reason, if it is in one of the
// states from, and reports whether it did. Moving to running records at as StartedAt; moving
// to a final state records it as EndedAt. The condition on from makes concurrent writers
// (the scheduler ending a run, an operator stopping it) agree on one outcome.
func (s *Store) TransitionExperimentRun(ctx context.Context, id int64, from []ExperimentState, to ExperimentState, reason string, at time.Time) (bool, error) {
	fromText := make([]string, len(from))
	for i, f := range from {
		fromText[i] = string(f)
	}
	// The NOTIFY commits with the update, or not at all.
	rows, err := s.pool.Query(ctx, `
		WITH moved AS (
			UPDATE experiment_runs SET state = $3, reason = $4, updated_at = now(),
				started_at = CASE WHEN $3 = 'running' THEN $5 ELSE started_at END,
				ended_at = CASE WHEN $3 IN ('scheduled', 'running') THEN ended_at ELSE $5 END
			WHERE id = $1 AND state = ANY($2)
			RETURNING id)
		SELECT pg_notify($6, id::text) FROM moved`, id, fromText, string(to), reason, at, ExperimentRunChannel)
	if err != nil {
		return false, fmt.Errorf("move experiment run %d to %s: %w", id, to, err)
	}
	n := 0
	for rows.Next() {
		n++
	}
	if err := rows.Err(); err != nil {
		return false, fmt.Errorf("move experiment run %d to %s: %w", id, to, err)
	}
	return n == 1, nil
}

// ExperimentRunChannel is the PostgreSQL NOTIFY channel that announces a run's change of state
// (by any replica); it carries the run's id.
const ExperimentRunChannel = "sluice_experiment_runs"

// WatchExperimentRuns calls fn once it listens, and after every change of a run's state, until
// ctx ends. It reconnects by itself when the database goes away, calling fn again, since a
// change may have been missed meanwhile.
func (s *Store) WatchExperimentRuns(ctx context.Context, fn func()) error {
	backoff := 100 * time.Millisecond
	for {
		err := s.watchExperimentRunsOnce(ctx, fn)
		if ctx.Err() != nil {
			return nil
		}
		s.log.Warn("experiment run feed interrupted; reconnecting", "error", err, "backoff", backoff.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func (s *Store) watchExperimentRunsOnce(ctx context.Context, fn func()) error {
	pooled, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("watch experiment runs: %w", err)
	}
	// A LISTENing connection must not go back to the pool.
	conn := pooled.Hijack()
	defer conn.Close(context.Background()) //nolint:errcheck // closing a dead connection
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{ExperimentRunChannel}.Sanitize()); err != nil {
		return fmt.Errorf("watch experiment runs: %w", err)
	}
	fn()
	for {
		if _, err := conn.WaitForNotification(ctx); err != nil {
			return fmt.Errorf("watch experiment runs: %w", err)
		}
		fn()
	}
}

// OpenExperimentRuns returns the runs that are scheduled or running, by start.
func (s *Store) OpenExperimentRuns(ctx context.Context) ([]ExperimentRun, error) {
	return queryRuns(ctx, s.pool, "list open experiment runs", `WHERE state IN ('scheduled', 'running') ORDER BY start_at, namespace, name`)
}

// HaltedExperimentRuns returns the runs ended early (stopped, stopped early, deleted) whose
// planned window had not passed by after: the runs whose faults must stay off.
func (s *Store) HaltedExperimentRuns(ctx context.Context, after time.Time) ([]ExperimentRun, error) {
	return queryRuns(ctx, s.pool, "list halted experiment runs",
		`WHERE state IN ('stopped_early', 'stopped', 'deleted') AND end_at > $1 ORDER BY start_at, namespace, name`, after)
}

// ExperimentRuns lists runs, newest start first.
func (s *Store) ExperimentRuns(ctx context.Context, f ExperimentRunFilter) ([]ExperimentRun, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	return queryRuns(ctx, s.pool, "list experiment runs", `
		WHERE ($1 = '' OR namespace = $1) AND ($2 = '' OR name = $2)
		  AND (NOT $3 OR state NOT IN ('scheduled', 'running'))
		ORDER BY start_at DESC, id DESC LIMIT $4`, f.Namespace, f.Name, f.Closed, f.Limit)
}
