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

// TrustBundle is the mesh CA's public side; *ca.Authority implements it.
type TrustBundle interface {
	// RootPEM is the root certificate that workload certificates chain to, in PEM.
	RootPEM() []byte
}

// handleCARoot answers GET /api/v1/ca/root with the trust bundle in PEM. It is public: the
// root certificate is no secret, and a proxy needs it before it has any credential to verify
// the authenticated port.
func handleCARoot(b TrustBundle) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if b == nil {
			writeProblem(w, http.StatusServiceUnavailable, "the certificate authority is not running on this server", nil, nil)
			return
		}
		w.Header().Set("Content-Type", "application/x-pem-file")
		w.Header().Set("Cache-Control", "no-cache")
		_, _ = w.Write(b.RootPEM())
	}
}

// workloadTokenView is a workload token in GET /api/v1/workload-tokens: never its secret.
type workloadTokenView struct {
	ID             string     `json:"id"`
	Name           string     `json:"name"`
	Namespace      string     `json:"namespace"`
	ServiceAccount string     `json:"serviceAccount"`
	CreatedBy      string     `json:"createdBy"`
	CreatedAt      time.Time  `json:"createdAt"`
	ExpiresAt      time.Time  `json:"expiresAt"`
	LastUsedAt     *time.Time `json:"lastUsedAt"`
	Revoked        bool       `json:"revoked"`
	RevokedAt      *time.Time `json:"revokedAt,omitempty"`
}

func viewWorkloadToken(t auth.WorkloadToken) workloadTokenView {
	v := workloadTokenView{ID: t.ID, Name: t.Name, Namespace: t.Identity.Namespace, ServiceAccount: t.Identity.ServiceAccount,
		CreatedBy: t.CreatedBy, CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, Revoked: t.Revoked()}
	if !t.LastUsedAt.IsZero() {
		v.LastUsedAt = &t.LastUsedAt
	}
	if t.Revoked() {
		v.RevokedAt = &t.RevokedAt
	}
	return v
}

// workloadTokenAudit is what the audit log keeps of a workload token: never its secret.
func workloadTokenAudit(t auth.WorkloadToken) map[string]any {
	return map[string]any{"id": t.ID, "name": t.Name, "namespace": t.Identity.Namespace,
		"serviceAccount": t.Identity.ServiceAccount, "expiresAt": t.ExpiresAt, "revoked": t.Revoked()}
}

// handleCreateWorkloadToken answers POST /api/v1/workload-tokens {"namespace",
// "serviceAccount", "name"?, "expiresIn"?: "720h"} with 201 {"id","token",…}. The token is in
// this answer only.
func handleCreateWorkloadToken(svc *auth.Service, al AuditLog, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Name           string `json:"name"`
			Namespace      string `json:"namespace"`
			ServiceAccount string `json:"serviceAccount"`
			ExpiresIn      string `json:"expiresIn"`
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
		nt, err := svc.CreateWorkloadToken(r.Context(), principal(r), auth.WorkloadTokenRequest{
			Name: req.Name, TTL: ttl,
			Identity: auth.WorkloadIdentity{Namespace: req.Namespace, ServiceAccount: req.ServiceAccount},
		})
		if err != nil {
			writeAuthError(w, r, log, err)
			return
		}
		recordAudit(al, log, r, store.AuditEntry{
			Action: "workload-token.create", Target: "workload-tokens/" + nt.ID, Outcome: store.AuditSuccess,
			After: auditJSON(workloadTokenAudit(nt.WorkloadToken)),
		})
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Location", "/api/v1/workload-tokens/"+nt.ID)
		writeJSON(w, http.StatusCreated, struct {
			ID             string    `json:"id"`
			Token          string    `json:"token"`
			Name           string    `json:"name"`
			Namespace      string    `json:"namespace"`
			ServiceAccount string    `json:"serviceAccount"`
			ExpiresAt      time.Time `json:"expiresAt"`
		}{nt.ID, nt.Secret, nt.Name, nt.Identity.Namespace, nt.Identity.ServiceAccount, nt.ExpiresAt})
	}
}

// handleListWorkloadTokens answers GET /api/v1/workload-tokens: every workload token, newest
// first, revoked and expired included.
func handleListWorkloadTokens(svc *auth.Service, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ts, err := svc.ListWorkloadTokens(r.Context(), principal(r))
		if err != nil {
			writeAuthError(w, r, log, err)
			return
		}
		out := make([]workloadTokenView, 0, len(ts))
		for _, t := range ts {
			out = append(out, viewWorkloadToken(t))
		}
		writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
	}
}

// handleRevokeWorkloadToken answers DELETE /api/v1/workload-tokens/{id} with 204.
func handleRevokeWorkloadToken(svc *auth.Service, al AuditLog, log *slog.Logger) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		t, changed, err := svc.RevokeWorkloadToken(r.Context(), principal(r), chi.URLParam(r, "id"))
		if err != nil {
			writeAuthError(w, r, log, err)
			return
		}
		if changed {
			after := t
			after.RevokedAt = time.Now()
			recordAudit(al, log, r, store.AuditEntry{
				Action: "workload-token.revoke", Target: "workload-tokens/" + t.ID, Outcome: store.AuditSuccess,
				Before: auditJSON(workloadTokenAudit(t)), After: auditJSON(workloadTokenAudit(after)),
			})
		}
		w.WriteHeader(http.StatusNoContent)
	}
}
