package api

import (
	"context"
	"net/http"
	"time"
)

// handleHealthz answers 200 while the process is up.
func handleHealthz() http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	}
}

// handleReadyz answers 200 when the database is reachable and xDS is serving, and 503 with
// the failing checks otherwise.
func handleReadyz(db Pinger, xdsServing func() bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		checks := map[string]string{"database": "ok", "xds": "ok"}
		ready := true
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if db == nil {
			checks["database"], ready = "not configured", false
		} else if err := db.Ping(ctx); err != nil {
			checks["database"], ready = "unreachable", false
		}
		if xdsServing == nil || !xdsServing() {
			checks["xds"], ready = "not serving", false
		}
		status := http.StatusOK
		if !ready {
			status = http.StatusServiceUnavailable
		}
		writeJSON(w, status, map[string]any{"ready": ready, "checks": checks})
	}
}
