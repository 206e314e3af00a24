package api

import (
	"errors"
	"log/slog"
	"mime"
	"net/http"
	"strconv"
	"time"

	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/store"
)

// authStatus is the one table from auth's error kinds to HTTP statuses.
var authStatus = map[auth.Kind]int{
	auth.KindInvalid:         http.StatusBadRequest,
	auth.KindUnauthenticated: http.StatusUnauthorized,
	auth.KindForbidden:       http.StatusForbidden,
	auth.KindNotFound:        http.StatusNotFound,
	auth.KindConflict:        http.StatusConflict,
	auth.KindRateLimited:     http.StatusTooManyRequests,
}

// writeAuthError answers with an auth error, adding the headers its status calls for
// (WWW-Authenticate on 401, Retry-After on 429). Any other error goes to writeError as is.
func writeAuthError(w http.ResponseWriter, r *http.Request, log *slog.Logger, err error) {
	var ae *auth.Error
	if !errors.As(err, &ae) {
		writeError(w, r, log, err)
		return
	}
	status, ok := authStatus[ae.Kind]
	if !ok {
		writeError(w, r, log, err)
		return
	}
	switch ae.Kind {
	case auth.KindUnauthenticated:
		w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
	case auth.KindRateLimited:
		secs := int64((ae.RetryAfter + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(max(secs, 1), 10))
	}
	e := &Error{Status: status, Message: ae.Message}
	if ae.Field != "" {
		e.Fields = []FieldError{{Path: ae.Field, Message: ae.Message}}
	}
	writeError(w, r, log, e)
}

// loginView answers POST /api/v1/login.
type loginView struct {
	Username  string    `json:"username"`
	Role      auth.Role `json:"role"`
	CSRFToken string    `json:"csrfToken"`
}

// handleLogin answers POST /api/v1/login {"username","password"}: it sets the session cookie
// and returns the user, role and CSRF token. A wrong password and an unknown user get the same
// 401; too many attempts get 429 with Retry-After. Successes and failures are audited, with
// the name tried and never the password.
func handleLogin(svc *auth.Service, al AuditLog, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		// A cross-site HTML form cannot send JSON, so this also stops other sites from
		// signing a browser in to an account of their choosing.
		if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
			writeError(w, r, log, &Error{Status: http.StatusUnsupportedMediaType, Message: `send the credentials as JSON {"username","password"} with Content-Type: application/json`})
			return
		}
		var req struct {
			Username string `json:"username"`
			Password string `json:"password"`
		}
		if err := decodeJSON(w, r, &req); err != nil {
			writeError(w, r, log, err)
			return
		}
		in, err := svc.Login(r.Context(), req.Username, req.Password, clientAddr(r))
		if err != nil {
			var ae *auth.Error
			if errors.As(err, &ae) && ae.Kind == auth.KindUnauthenticated {
				recordAudit(al, log, r, store.AuditEntry{
					Actor: req.Username, Action: "login", Target: "users/" + req.Username,
					Outcome: store.AuditFailure, Detail: ae.Reason,
				})
			}
			writeAuthError(w, r, log, err)
			return
		}
		setSessionCookie(w, r, in.Cookie, int(in.Session.ExpiresAt.Sub(in.Session.CreatedAt)/time.Second))
		recordAudit(al, log, r, store.AuditEntry{
			Actor: in.User.Username, Action: "login", Target: "users/" + in.User.Username,
			Outcome: store.AuditSuccess, Detail: "session " + in.Session.ID,
		})
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, loginView{Username: in.User.Username, Role: in.User.Role, CSRFToken: in.Session.CSRFToken})
	}
}

// handleLogout answers POST /api/v1/logout: it ends the session and clears its cookie.
func handleLogout(svc *auth.Service, al AuditLog, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := principal(r)
		if err := svc.Logout(r.Context(), p); err != nil {
			writeAuthError(w, r, log, err)
			return
		}
		clearSessionCookie(w, r)
		recordAudit(al, log, r, store.AuditEntry{
			Action: "logout", Target: "users/" + p.Username, Outcome: store.AuditSuccess,
			Detail: "session " + p.SessionID,
		})
		w.WriteHeader(http.StatusNoContent)
	}
}

// whoamiView answers GET /api/v1/whoami.
type whoamiView struct {
	Username   string      `json:"username"`
	Role       auth.Role   `json:"role"`
	CSRFToken  string      `json:"csrfToken,omitempty"`
	AuthMethod auth.Method `json:"authMethod"`
}

// handleWhoami answers GET /api/v1/whoami: who the credentials belong to, their effective
// role, and for a session its CSRF token (so a reloaded console can recover it).
func handleWhoami() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		p := principal(r)
		csrf, _ := r.Context().Value(csrfKey{}).(string)
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, http.StatusOK, whoamiView{Username: p.Username, Role: p.Role, CSRFToken: csrf, AuthMethod: p.Method})
	}
}
