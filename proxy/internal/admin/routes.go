package admin

import (
	"net/http"
	"net/http/pprof"

	"github.com/sluicemesh/sluice/proxy/internal/telemetry"
)

func addRoutes(mux *http.ServeMux, d Deps) {
	mux.Handle("GET /ready", handleReady(d.Ready, d.Draining))
	mux.Handle("GET /config_dump", handleConfigDump(d.XDS, d.Warming, d.Node, d.Clusters))
	mux.Handle("GET /clusters", handleClusters(d.Clusters))
	mux.Handle("GET /stats", handleStats(d))
	mux.Handle("GET /certs", handleCerts(d.Identity))
	mux.Handle("POST /drain", handleDrain(d.Drain))
	if d.Recorder != nil {
		mux.Handle("GET /stats/prometheus", telemetry.PrometheusHandler(d.Recorder))
	}
	if d.Pprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
}
