package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/store"
)

// userView is a user in the API: never the password hash.
type userView struct {
	Username  string    `json:"username"`
	Role      auth.Role `json:"role"`
	CreatedAt time.Time `json:"createdAt"`
	UpdatedAt time.Time `json:"updatedAt"`
}

func viewUser(u auth.User) userView {
	return userView{Username: u.Username, Role: u.Role, CreatedAt: u.CreatedAt, UpdatedAt: u.UpdatedAt}
}

// userAudit is what the audit log keeps of a user.
func userAudit(u auth.User) map[string]any {
	return map[string]any{"username": u.Username, "role": u.Role}
}

// handleListUsers answers GET /api/v1/users.
func handleListUsers(svc *auth.Service, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		us, err := svc.ListUsers(r.Context())
		if err != nil {
			writeAuthError(w, r, log, err)
			return
		}
		out := make([]userView, 0, len(us))
		for _, u := range us {
			out = append(out, viewUser(u))
		}
		writeJSON(w, http.StatusOK, map[string]any{"users": out})
	}
}

// handleGetUser answers GET /api/v1/users/{name}.
func handleGetUser(svc *auth.Service, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := svc.GetUser(r.Context(), chi.URLParam(r, "name"))
		if err != nil {
			writeAuthError(w, r, log, err)
			return
		}
		writeJSON(w, http.StatusOK, viewUser(u))
	}
}

// handleCreateUser answers POST /api/v1/users {"username","password","role"?} with 201; the
// role defaults to viewer.
func handleCreateUser(svc *auth.Service, al AuditLog, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Username string `json:"username"`
			Password string `json:"password"`
			Role     string `json:"role"`
		}
		if err := decodeJSON(w, r, &req); err != nil {
			writeError(w, r, log, err)
			return
		}
		u, err := svc.CreateUser(r.Context(), req.Username, req.Password, auth.Role(req.Role))
		if err != nil {
			writeAuthError(w, r, log, err)
			return
		}
		recordAudit(al, log, r, store.AuditEntry{
			Action: "user.create", Target: "users/" + u.Username, Outcome: store.AuditSuccess,
			After: auditJSON(userAudit(u)),
		})
		w.Header().Set("Location", "/api/v1/users/"+u.Username)
		writeJSON(w, http.StatusCreated, viewUser(u))
	}
}

// handleUpdateUser answers PATCH /api/v1/users/{name} {"role"?, "password"?}. A new password
// ends the user's other sessions. Demoting the last admin is refused with 409.
func handleUpdateUser(svc *auth.Service, al AuditLog, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Role     *auth.Role `json:"role"`
			Password *string    `json:"password"`
		}
		if err := decodeJSON(w, r, &req); err != nil {
			writeError(w, r, log, err)
			return
		}
		name := chi.URLParam(r, "name")
		before, after, err := svc.UpdateUser(r.Context(), principal(r), name, auth.UserUpdate{Role: req.Role, Password: req.Password})
		if err != nil {
			writeAuthError(w, r, log, err)
			return
		}
		var changes []string
		if before.Role != after.Role {
			changes = append(changes, fmt.Sprintf("role %s to %s", before.Role, after.Role))
		}
		if req.Password != nil {
			changes = append(changes, "password changed")
		}
		recordAudit(al, log, r, store.AuditEntry{
			Action: "user.update", Target: "users/" + name, Outcome: store.AuditSuccess,
			Detail: strings.Join(changes, "; "),
			Before: auditJSON(userAudit(before)), After: auditJSON(userAudit(after)),
		})
		writeJSON(w, http.StatusOK, viewUser(after))
	}
}

// handleDeleteUser answers DELETE /api/v1/users/{name} with 204, ending the user's sessions
// and tokens. Deleting the last admin is refused with 409.
func handleDeleteUser(svc *auth.Service, al AuditLog, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u, err := svc.DeleteUser(r.Context(), chi.URLParam(r, "name"))
		if err != nil {
			writeAuthError(w, r, log, err)
			return
		}
		recordAudit(al, log, r, store.AuditEntry{
			Action: "user.delete", Target: "users/" + u.Username, Outcome: store.AuditSuccess,
			Before: auditJSON(userAudit(u)),
		})
		w.WriteHeader(http.StatusNoContent)
	}
}
