package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Revision is one committed change of the mesh's configuration.
type Revision struct {
	Revision     int64     `json:"revision"`
	At           time.Time `json:"at"`
	Actor        string    `json:"actor"`
	Message      string    `json:"message,omitempty"`
	RolledBackTo int64     `json:"rolledBackTo,omitempty"`
	Changes      []Change  `json:"changes"`
}

// Change is what one revision did to one resource. Before and After are nil where the
// resource did not exist.
type Change struct {
	Key
	Action string  `json:"action"`
	Before *Object `json:"before,omitempty"`
	After  *Object `json:"after,omitempty"`
}

// RevisionFilter selects revisions, newest first.
type RevisionFilter struct {
	// Key, when set, keeps the revisions that changed that resource, and only its change.
	Key *Key
	// After and Before bound the revision numbers (exclusive); zero means unbounded.
	After, Before int64
	// Limit caps the count; zero means 100.
	Limit int
	// Ascending lists oldest first.
	Ascending bool
}

// Revisions lists revisions with their changes.
func (s *Store) Revisions(ctx context.Context, f RevisionFilter) ([]Revision, error) {
	return listRevisions(ctx, s.pool, f)
}

func listRevisions(ctx context.Context, q querier, f RevisionFilter) ([]Revision, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	order := "DESC"
	if f.Ascending {
		order = "ASC"
	}
	var kind, ns, name string
	if f.Key != nil {
		kind, ns, name = f.Key.Kind, f.Key.Namespace, f.Key.Name
	}
	rows, err := q.Query(ctx, `
		SELECT r.revision, r.at, r.actor, r.message, COALESCE(r.rolled_back_to, 0)
		FROM revisions r
		WHERE ($1 = 0 OR r.revision > $1) AND ($2 = 0 OR r.revision < $2)
		  AND ($3 = '' OR EXISTS (SELECT 1 FROM revision_changes c WHERE c.revision = r.revision
		                          AND c.kind = $3 AND c.namespace = $4 AND c.name = $5))
		ORDER BY r.revision `+order+` LIMIT $6`,
		f.After, f.Before, kind, ns, name, f.Limit)
	if err != nil {
		return nil, fmt.Errorf("list revisions: %w", err)
	}
	revs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Revision, error) {
		var r Revision
		err := row.Scan(&r.Revision, &r.At, &r.Actor, &r.Message, &r.RolledBackTo)
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("list revisions: %w", err)
	}
	if len(revs) == 0 {
		return revs, nil
	}
	ids := make([]int64, len(revs))
	index := make(map[int64]int, len(revs))
	for i, r := range revs {
		ids[i] = r.Revision
		index[r.Revision] = i
		revs[i].Changes = []Change{}
	}
	crows, err := q.Query(ctx, `
		SELECT revision, kind, namespace, name, action, before, after FROM revision_changes
		WHERE revision = ANY($1) AND ($2 = '' OR (kind = $2 AND namespace = $3 AND name = $4))
		ORDER BY revision, kind, namespace, name`, ids, kind, ns, name)
	if err != nil {
		return nil, fmt.Errorf("list revision changes: %w", err)
	}
	defer crows.Close()
	for crows.Next() {
		var (
			rev           int64
			c             Change
			before, after []byte
		)
		if err := crows.Scan(&rev, &c.Kind, &c.Namespace, &c.Name, &c.Action, &before, &after); err != nil {
			return nil, fmt.Errorf("list revision changes: %w", err)
		}
		if c.Before, err = decodeObject(before); err != nil {
			return nil, err
		}
		if c.After, err = decodeObject(after); err != nil {
			return nil, err
		}
		revs[index[rev]].Changes = append(revs[index[rev]].Changes, c)
	}
	return revs, crows.Err()
}

func decodeObject(b []byte) (*Object, error) {
	if b == nil {
		return nil, nil
	}
	var o Object
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("decode stored object: %w", err)
	}
	return &o, nil
}

// GetRevision returns one revision with its changes.
func (s *Store) GetRevision(ctx context.Context, rev int64) (*Revision, error) {
	revs, err := listRevisions(ctx, s.pool, RevisionFilter{After: rev - 1, Before: rev + 1, Limit: 1})
	if err != nil {
		return nil, err
	}
	if len(revs) == 0 {
		return nil, &NotFoundError{What: fmt.Sprintf("revision %d", rev)}
	}
	return &revs[0], nil
}

// StateAt returns a resource as it was right after revision rev: nil if it did not exist
// then. rev must not be newer than the current revision.
func (s *Store) StateAt(ctx context.Context, k Key, rev int64) (*Object, error) {
	var after []byte
	err := s.pool.QueryRow(ctx, `
		SELECT after FROM revision_changes
		WHERE kind = $1 AND namespace = $2 AND name = $3 AND revision <= $4
		ORDER BY revision DESC LIMIT 1`, k.Kind, k.Namespace, k.Name, rev).Scan(&after)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("state of %s at revision %d: %w", k, rev, err)
	}
	return decodeObject(after)
}

// ChangedSince returns the keys of every resource that a revision after rev changed.
func (s *Store) ChangedSince(ctx context.Context, rev int64) ([]Key, error) {
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT kind, namespace, name FROM revision_changes
		WHERE revision > $1 ORDER BY kind, namespace, name`, rev)
	if err != nil {
		return nil, fmt.Errorf("changed since %d: %w", rev, err)
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (Key, error) {
		var k Key
		err := row.Scan(&k.Kind, &k.Namespace, &k.Name)
		return k, err
	})
}

// Subscribe delivers every revision committed after `after` to fn, in order, exactly once,
// until ctx ends or fn fails. NOTIFY only wakes it: it reads what to deliver from the
// revisions table, so a subscriber that was disconnected (or restarted with the last number
// it saw) misses nothing. It reconnects by itself when the database goes away.
func (s *Store) Subscribe(ctx context.Context, after int64, fn func(Revision) error) error {
	backoff := 100 * time.Millisecond
	for {
		err := s.subscribeOnce(ctx, &after, fn)
		if ctx.Err() != nil {
			return nil
		}
		var fnErr *subscriberError
		if errors.As(err, &fnErr) {
			return fnErr.err
		}
		s.log.Warn("revision feed interrupted; reconnecting", "error", err, "after", after, "backoff", backoff.String())
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

type subscriberError struct{ err error }

func (e *subscriberError) Error() string { return e.err.Error() }

func (s *Store) subscribeOnce(ctx context.Context, after *int64, fn func(Revision) error) error {
	pooled, err := s.pool.Acquire(ctx)
	if err != nil {
		return err
	}
	// A LISTENing connection must not go back to the pool.
	conn := pooled.Hijack()
	defer conn.Close(context.Background()) //nolint:errcheck // closing a dead connection
	if _, err := conn.Exec(ctx, "LISTEN "+pgx.Identifier{RevisionChannel}.Sanitize()); err != nil {
		return err
	}
	for {
		// Catch up first: everything committed since the last delivered revision.
		for {
			revs, err := listRevisions(ctx, conn, RevisionFilter{After: *after, Limit: 500, Ascending: true})
			if err != nil {
				return err
			}
			for _, r := range revs {
				if err := fn(r); err != nil {
					return &subscriberError{err}
				}
				*after = r.Revision
			}
			if len(revs) < 500 {
				break
			}
		}
		// Then sleep until a commit wakes us; the timeout is a safety net, not the mechanism.
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		if err != nil && ctx.Err() != nil {
			return ctx.Err()
		}
		if err != nil && !errors.Is(err, context.DeadlineExceeded) {
			return err
		}
	}
}
