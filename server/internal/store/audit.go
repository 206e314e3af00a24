package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// AuditEntry is one row of the audit log: who (Actor) did what (Action) to what (Target), when,
// from where, how it went (Outcome), and the state before and after where that applies.
// Entries never hold a secret: no password, hash, session cookie or API token.
type AuditEntry struct {
	// ID orders entries; it is assigned on insert.
	ID int64
	// At is when it happened; zero means the time of the insert's transaction.
	At time.Time
	// Actor is the username acting, or for a failed sign-in the username tried.
	Actor string
	// Action names what was done, such as "login", "token.create" or "user.delete".
	Action string
	// Target names what it was done to, such as "users/alice" or "tokens/1f2e3d4c5b6a7980".
	Target string
	// Outcome is AuditSuccess or AuditFailure.
	Outcome string
	// Detail says more, such as why it failed.
	Detail string
	// ClientAddr is the IP address of the client.
	ClientAddr string
	// Before and After are JSON documents of the target's state; nil for none.
	Before json.RawMessage
	After  json.RawMessage
}

// Outcomes of an AuditEntry.
const (
	AuditSuccess = "success"
	AuditFailure = "failure"
)

// AuditFilter selects audit entries; zero fields select everything.
type AuditFilter struct {
	// Actor, Action and Target match exactly.
	Actor, Action, Target string
	// Since (inclusive) and Until (exclusive) bound At.
	Since, Until time.Time
	// Limit is the most entries returned; zero means 100.
	Limit int
	// Before is a cursor: only entries with an ID below it. Pass the last ID of one page to
	// get the next.
	Before int64
}

// InsertAudit appends e to the audit log through q: the pool, or a transaction that also
// makes the change being audited, so that the change and its record commit together.
func (s *Store) InsertAudit(ctx context.Context, q querier, e AuditEntry) error {
	if e.Action == "" || e.Outcome == "" {
		return errors.New("insert audit entry: action and outcome are required")
	}
	var at *time.Time
	if !e.At.IsZero() {
		at = &e.At
	}
	_, err := q.Exec(ctx, `
		INSERT INTO audit_log (at, actor, action, target, outcome, detail, before, after, client_addr)
		VALUES (COALESCE($1, now()), $2, $3, $4, $5, $6, $7, $8, $9)`,
		at, e.Actor, e.Action, e.Target, e.Outcome, e.Detail, jsonOrNull(e.Before), jsonOrNull(e.After), e.ClientAddr)
	if err != nil {
		return fmt.Errorf("insert audit entry %s %s: %w", e.Action, e.Target, err)
	}
	return nil
}

// RecordAudit appends e to the audit log on its own.
func (s *Store) RecordAudit(ctx context.Context, e AuditEntry) error {
	return s.InsertAudit(ctx, s.pool, e)
}

// ListAudit returns the entries f selects, newest first.
func (s *Store) ListAudit(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	var (
		where []string
		args  []any
	)
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, strings.ReplaceAll(cond, "?", "$"+strconv.Itoa(len(args))))
	}
	if f.Actor != "" {
		add("actor = ?", f.Actor)
	}
	if f.Action != "" {
		add("action = ?", f.Action)
	}
	if f.Target != "" {
		add("target = ?", f.Target)
	}
	if !f.Since.IsZero() {
		add("at >= ?", f.Since)
	}
	if !f.Until.IsZero() {
		add("at < ?", f.Until)
	}
	if f.Before > 0 {
		add("id < ?", f.Before)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	sql := `SELECT id, at, actor, action, target, outcome, detail, before, after, client_addr FROM audit_log`
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	sql += " ORDER BY id DESC LIMIT $" + strconv.Itoa(len(args))

	rows, err := s.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	defer rows.Close()
	var out []AuditEntry
	for rows.Next() {
		var (
			e             AuditEntry
			before, after []byte
		)
		if err := rows.Scan(&e.ID, &e.At, &e.Actor, &e.Action, &e.Target, &e.Outcome, &e.Detail,
			&before, &after, &e.ClientAddr); err != nil {
			return nil, fmt.Errorf("list audit entries: %w", err)
		}
		if before != nil {
			e.Before = json.RawMessage(before)
		}
		if after != nil {
			e.After = json.RawMessage(after)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list audit entries: %w", err)
	}
	return out, nil
}

// jsonOrNull passes an empty document as SQL NULL.
func jsonOrNull(b json.RawMessage) any {
	if len(b) == 0 {
		return nil
	}
	return []byte(b)
}
