package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/store"
)

// tokenView is an API token in GET /api/v1/tokens: never its secret.
type tokenView struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Username   string     `json:"username"`
	Role       auth.Role  `json:"role"`
	CreatedAt  time.Time  `json:"createdAt"`
	ExpiresAt  time.Time  `json:"expiresAt"`
	LastUsedAt *time.Time `json:"lastUsedAt"`
	Revoked    bool       `json:"revoked"`
	RevokedAt  *time.Time `json:"revokedAt,omitempty"`
}

func viewToken(t auth.Token) tokenView {
	v := tokenView{ID: t.ID, Name: t.Name, Username: t.Username, Role: t.Role,
		CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Revoked: t.Revoked()}
	if !t.LastUsedAt.IsZero() {
		v.LastUsedAt = &t.LastUsedAt
	}
	if t.Revoked() {
		v.RevokedAt = &t.RevokedAt
	}
	return v
}

// tokenAudit is what the audit log keeps of a token: never its secret or hash.
func tokenAudit(t auth.Token) map[string]any {
	return map[string]any{"id": t.ID, "name": t.Name, "username": t.Username, "role": t.Role,
		"expiresAt": t.ExpiresAt, "revoked": t.Revoked()}
}

// handleCreateToken answers POST /api/v1/tokens {"name", "expiresIn"?: "720h", "role"?} with
// 201 {"id","token",…}. The token is in this answer only: the server keeps its hash.
func handleCreateToken(svc *auth.Service, al AuditLog, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name      string `json:"name"`
			ExpiresIn string `json:"expiresIn"`
			Role      string `json:"role"`
		}
		if err := decodeJSON(w, r, &req); err != nil {
			writeError(w, r, log, err)
			return
		}
		var ttl time.Duration
		if req.ExpiresIn != "" {
			d, err := time.ParseDuration(req.ExpiresIn)
			if err != nil || d <= 0 {
				writeError(w, r, log, &Error{Status: http.StatusBadRequest,
					Message: fmt.Sprintf("expiresIn %q is not a positive duration: use hours, such as \"720h\" for 30 days", req.ExpiresIn),
					Fields:  []FieldError{{Path: "expiresIn", Message: "not a positive duration"}}})
				return
			}
			ttl = d
		}
		nt, err := svc.CreateToken(r.Context(), principal(r), auth.TokenRequest{Name: req.Name, Role: auth.Role(req.Role), TTL: ttl})
		if err != nil {
			writeAuthError(w, r, log, err)
			return
		}
		recordAudit(al, log, r, store.AuditEntry{
			Action: "token.create", Target: "tokens/" + nt.ID, Outcome: store.AuditSuccess,
			After: auditJSON(tokenAudit(nt.Token)),
		})
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Location", "/api/v1/tokens/"+nt.ID)
		writeJSON(w, http.StatusCreated, struct {
			ID        string    `json:"id"`
			Token     string    `json:"token"`
			Name      string    `json:"name"`
			Role      auth.Role `json:"role"`
			ExpiresAt time.Time `json:"expiresAt"`
		}{nt.ID, nt.Secret, nt.Name, nt.Role, nt.ExpiresAt})
	}
}

// handleListTokens answers GET /api/v1/tokens: the caller's tokens, or an admin's view of
// everyone's, newest first, revoked and expired included.
func handleListTokens(svc *auth.Service, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ts, err := svc.ListTokens(r.Context(), principal(r))
		if err != nil {
			writeAuthError(w, r, log, err)
			return
		}
		out := make([]tokenView, 0, len(ts))
		for _, t := range ts {
			out = append(out, viewToken(t))
		}
		writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
	}
}

// handleRevokeToken answers DELETE /api/v1/tokens/{id} with 204: the token stops working at
// once. Revoking a revoked token is not an error.
func handleRevokeToken(svc *auth.Service, al AuditLog, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, changed, err := svc.RevokeToken(r.Context(), principal(r), chi.URLParam(r, "id"))
		if err != nil {
			writeAuthError(w, r, log, err)
			return
		}
		if changed {
			after := t
			after.RevokedAt = time.Now()
			recordAudit(al, log, r, store.AuditEntry{
				Action: "token.revoke", Target: "tokens/" + t.ID, Outcome: store.AuditSuccess,
				Before: auditJSON(tokenAudit(t)), After: auditJSON(tokenAudit(after)),
			})
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
