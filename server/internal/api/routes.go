package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"
)

func routes(d Deps) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)

	r.Get("/healthz", handleHealthz())
	r.Get("/readyz", handleReadyz(d.DB, d.XDSServing))

	r.Route("/api/v1", func(r chi.Router) {
		r.Get("/proxies", handleListProxies(d.Proxies))
	})

	r.Handle("/*", handleConsole(d.Console))
	return r
}
