package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/sluicemesh/sluice/server/internal/changes"
	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/store"
)

// FieldError is one problem with a request, located by its path in the request body, such as
// "documents[2].spec.http[0].route[1].weight".
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// problem is an RFC 9457 problem document, with the field errors Sluice adds.
type problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail,omitempty"`
	Errors []FieldError `json:"errors,omitempty"`
	// Extra members, such as the current resourceVersion on a conflict.
	Extra map[string]any `json:"-"`
}

func (p problem) MarshalJSON() ([]byte, error) {
	type plain problem
	b, err := json.Marshal(plain(p))
	if err != nil || len(p.Extra) == 0 {
		return b, err
	}
	m := map[string]any{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	for k, v := range p.Extra {
		if _, taken := m[k]; !taken {
			m[k] = v
		}
	}
	return json.Marshal(m)
}

// writeProblem answers with an application/problem+json document.
func writeProblem(w http.ResponseWriter, status int, detail string, errs []FieldError, extra map[string]any) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(problem{
		Type: "about:blank", Title: http.StatusText(status), Status: status,
		Detail: detail, Errors: errs, Extra: extra,
	})
}

// Error is an error that knows how it is shown to an API user: its status, a message that
// says what went wrong and what to do, and optionally field errors and extra members.
type Error struct {
	Status  int
	Message string
	Fields  []FieldError
	Extra   map[string]any
}

func (e *Error) Error() string { return e.Message }

// writeError turns any error into a problem response, once, at the edge: an *Error as it
// says, anything else as a 500 whose cause is logged and never shown.
func writeError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var (
		e    *Error
		errs config.Errors
		ce   *store.ConflictError
		nf   *store.NotFoundError
	)
	switch {
	case errors.As(err, &e):
		writeProblem(w, e.Status, e.Message, e.Fields, e.Extra)
		return
	case errors.As(err, &errs):
		fields := make([]FieldError, len(errs))
		for i, fe := range errs {
			fields[i] = FieldError{Path: fe.Path, Message: fe.Message}
		}
		writeProblem(w, http.StatusBadRequest, fmt.Sprintf("the configuration is invalid (%d problems); nothing was stored", len(errs)), fields, nil)
		return
	case errors.As(err, &ce):
		extra := map[string]any{"currentResourceVersion": strconv.FormatInt(ce.Current, 10), "updatedBy": ce.UpdatedBy}
		if !ce.UpdatedAt.IsZero() {
			extra["updatedAt"] = ce.UpdatedAt
		}
		writeProblem(w, http.StatusConflict, ce.Error(), nil, extra)
		return
	case errors.As(err, &nf):
		writeProblem(w, http.StatusNotFound, nf.Error(), nil, nil)
		return
	case errors.Is(err, changes.ErrEmpty):
		writeProblem(w, http.StatusBadRequest, err.Error()+": send one or more YAML documents", nil, nil)
		return
	}
	log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	writeProblem(w, http.StatusInternalServerError, "internal error: the server logged the cause; retry, and report it if it persists", nil, nil)
}
