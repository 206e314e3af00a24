// Package admin serves sluice-proxy's admin endpoints on <address>:15000, shaped after
// Envoy's admin interface so that the same habits and tools work: /ready, /config_dump,
// /stats, /stats/prometheus, /clusters, /certs, and POST /drain.
package admin

import (
	"net/http"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"

	"github.com/sluicemesh/sluice/proxy/internal/cluster"
	"github.com/sluicemesh/sluice/proxy/internal/identity"
	"github.com/sluicemesh/sluice/proxy/internal/listener"
	"github.com/sluicemesh/sluice/proxy/internal/telemetry"
	"github.com/sluicemesh/sluice/proxy/internal/xdsclient"
)

// Deps is what the admin endpoints read and do.
type Deps struct {
	// Ready reports whether the first complete configuration is applied and bound.
	Ready func() bool
	// Draining reports whether a graceful drain has begun.
	Draining func() bool
	// XDS returns what the xDS client holds.
	XDS func() xdsclient.Status
	// Warming returns the listeners and clusters still warming.
	Warming func() (listeners, clusters []string)
	// Listeners returns the serving listeners' addresses by name.
	Listeners func() map[string]string
	// Stats are the data plane's counters.
	Stats *listener.Stats
	// Clusters returns the clusters in use, for their circuit breakers and outlier
	// detection.
	Clusters func() cluster.Set
	// Node is the node the proxy registers with.
	Node *corev3.Node
	// Drain starts a graceful drain, as SIGTERM does.
	Drain func()
	// Started is when the proxy started.
	Started time.Time
	// Telemetry returns what the telemetry Pusher did; nil leaves it out of /stats.
	Telemetry func() telemetry.PushStats
	// Recorder holds the request metrics, also served at /stats/prometheus as Envoy's admin
	// does; nil serves none.
	Recorder *telemetry.Recorder
	// Pprof serves Go's profiles at /debug/pprof/ (sluice-proxy --pprof).
	Pprof bool
	// Identity returns the workload certificate's state, for /certs and /stats; nil means
	// the proxy has no identity (no --token-file).
	Identity func() identity.Status
}

// NewServer returns the admin handler.
func NewServer(d Deps) http.Handler {
	mux := http.NewServeMux()
	addRoutes(mux, d)
	return mux
}
