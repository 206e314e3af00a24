package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluicemesh/sluice/server/internal/store"
)

// AuditLog records and lists the audit log.
type AuditLog interface {
	RecordAudit(ctx context.Context, e store.AuditEntry) error
	ListAudit(ctx context.Context, f store.AuditFilter) ([]store.AuditEntry, error)
}

var _ AuditLog = (*store.Store)(nil)

// auditWriteTimeout bounds an audit write that outlives its request.
const auditWriteTimeout = 5 * time.Second

// recordAudit appends e for the request r, filling in the client address and, when e has
// none, the actor. It writes even if the client has hung up, since what it records has
// happened. A failed write is logged rather than answered: the change it describes is done,
// and reporting failure would invite a retry of something that succeeded.
func recordAudit(al AuditLog, log *slog.Logger, r *http.Request, e store.AuditEntry) {
	if e.ClientAddr == "" {
		e.ClientAddr = clientAddr(r)
	}
	if e.Actor == "" {
		e.Actor = principal(r).Username
	}
	// PostgreSQL text cannot hold NUL, which JSON strings (such as a username tried at
	// sign-in) can.
	for _, f := range []*string{&e.Actor, &e.Target, &e.Detail} {
		*f = strings.ReplaceAll(*f, "\x00", "\uFFFD")
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), auditWriteTimeout)
	defer cancel()
	if err := al.RecordAudit(ctx, e); err != nil {
		log.Error("record audit entry", "action", e.Action, "target", e.Target, "actor", e.Actor, "error", err)
	}
}

// auditJSON marshals a before or after state for the audit log.
func auditJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return nil
	}
	return b
}

// auditView is one entry of GET /api/v1/audit.
type auditView struct {
	ID         int64           `json:"id"`
	At         time.Time       `json:"at"`
	Actor      string          `json:"actor"`
	Action     string          `json:"action"`
	Target     string          `json:"target"`
	Outcome    string          `json:"outcome"`
	Detail     string          `json:"detail,omitempty"`
	ClientAddr string          `json:"clientAddr,omitempty"`
	Before     json.RawMessage `json:"before,omitempty"`
	After      json.RawMessage `json:"after,omitempty"`
}

// Page sizes of GET /api/v1/audit.
const (
	defaultAuditLimit = 100
	maxAuditLimit     = 1000
)

// handleListAudit answers GET /api/v1/audit?actor=&action=&target=&since=&until=&limit=&before=
// with {"entries":[…], "next":"<cursor>"}, newest first. actor, action and target match
// exactly; since (inclusive) and until (exclusive) are RFC 3339 times; next, present when there
// may be more, is passed as before= to get the following page.
func handleListAudit(al AuditLog, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		f, err := auditFilter(r)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		limit := f.Limit
		f.Limit++ // one more than asked tells whether there is a next page
		es, err := al.ListAudit(r.Context(), f)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		resp := struct {
			Entries []auditView `json:"entries"`
			Next    string      `json:"next,omitempty"`
		}{Entries: []auditView{}}
		if len(es) > limit {
			es = es[:limit]
			resp.Next = strconv.FormatInt(es[len(es)-1].ID, 10)
		}
		for _, e := range es {
			resp.Entries = append(resp.Entries, auditView{
				ID: e.ID, At: e.At, Actor: e.Actor, Action: e.Action, Target: e.Target,
				Outcome: e.Outcome, Detail: e.Detail, ClientAddr: e.ClientAddr,
				Before: e.Before, After: e.After,
			})
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

func auditFilter(r *http.Request) (store.AuditFilter, error) {
	q := r.URL.Query()
	f := store.AuditFilter{
		Actor: q.Get("actor"), Action: q.Get("action"), Target: q.Get("target"),
		Limit: defaultAuditLimit,
	}
	for _, t := range []struct {
		name string
		dst  *time.Time
	}{{"since", &f.Since}, {"until", &f.Until}} {
		v := q.Get(t.name)
		if v == "" {
			continue
		}
		at, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return f, &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("%s=%q is not an RFC 3339 time: use one such as 2025-01-31T15:04:05Z", t.name, v),
				Fields: []FieldError{{Path: t.name, Message: "not an RFC 3339 time"}}}
		}
		*t.dst = at
	}
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditLimit {
			return f, &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("limit=%q must be a number from 1 to %d", v, maxAuditLimit),
				Fields: []FieldError{{Path: "limit", Message: fmt.Sprintf("want 1 to %d", maxAuditLimit)}}}
		}
		f.Limit = n
	}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 {
			return f, &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("before=%q is not a cursor: pass the next value of the previous page", v),
				Fields: []FieldError{{Path: "before", Message: "not a cursor"}}}
		}
		f.Before = n
	}
	return f, nil
}
