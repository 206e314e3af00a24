// Package api is the control plane's HTTP surface: the REST API under /api/v1, the health
// endpoints, and the console's static files. Every route is listed in routes.go; each handler
// is built by a maker function that takes only what it uses.
package api

import (
	"github.com/sluicemesh/sluice/server/internal/changes"

	"context"
	"encoding/json"
	"io/fs"
	"log/slog"
	"net/http"

	"github.com/sluicemesh/sluice/server/internal/auth"
)

// Pinger reports whether a dependency answers.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Deps are the parts of the control plane the HTTP surface uses.
type Deps struct {
	Log *slog.Logger
	// DB is pinged by /readyz.
	DB Pinger
	// XDSServing reports whether the xDS listener is serving; nil means it is not.
	XDSServing func() bool
	// Config reads stored configuration; Changes writes it.
	Config  ConfigReader
	Changes *changes.Service
	// Proxies lists the mesh's proxies.
	Proxies ProxyLister
	// ProxySecurity adds identity, mTLS modes and certificates to the proxy views; the zero
	// value leaves them out.
	ProxySecurity ProxySecurity
	// Console holds the console's files, with index.html at its root.
	Console fs.FS
	// Auth signs users in and authenticates every /api/v1 request but login. Required.
	Auth *auth.Service
	// Audit records sign-ins and changes, and lists them. Required.
	Audit AuditLog
	// Telemetry answers the traffic graph and metrics; nil answers them with 503.
	Telemetry TelemetryReader
	// Experiments reports on FaultExperiments and stops them; nil answers those routes with 503.
	Experiments ExperimentService
	// Live serves the live WebSocket (GET /api/v1/live); nil answers it with 503.
	Live *LiveHub
	// CA is the mesh's certificate authority, whose root GET /api/v1/ca/root serves; nil
	// answers it with 503.
	CA TrustBundle
	// Secrets keeps the gateways' TLS credentials; its zero value answers those routes with 503.
	Secrets Secrets
}

// NewServer returns the HTTP handler of the control plane.
func NewServer(d Deps) http.Handler {
	return routes(d)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// handle adapts a handler that returns its error: writeError answers it, once, at the edge.
func handle(log *slog.Logger, h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			writeError(w, r, log, err)
		}
	}
}
