package admin

import "net/http"

func addRoutes(mux *http.ServeMux, d Deps) {
	mux.Handle("GET /ready", handleReady(d.Ready, d.Draining))
	mux.Handle("GET /config_dump", handleConfigDump(d.XDS, d.Warming, d.Node, d.Clusters))
	mux.Handle("GET /clusters", handleClusters(d.Clusters))
	mux.Handle("GET /stats", handleStats(d))
	mux.Handle("POST /drain", handleDrain(d.Drain))
}
