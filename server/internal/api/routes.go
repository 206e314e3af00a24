package api

import (
	"net/http"

	"github.com/go-chi/chi/v5"
	"github.com/go-chi/chi/v5/middleware"

	"github.com/sluicemesh/sluice/server/internal/auth"
)

func routes(d Deps) http.Handler {
	r := chi.NewRouter()
	r.Use(middleware.Recoverer)

	r.Get("/healthz", handleHealthz())
	r.Get("/readyz", handleReadyz(d.DB, d.XDSServing))

	r.Route("/api/v1", func(r chi.Router) {
		r.Use(limitBody(defaultBodyLimit))
		// Public: signing in, and this API's description. Every other /api/v1 route is in the
		// group below.
		r.Post("/login", handleLogin(d.Auth, d.Audit, d.Log))
		r.Get("/openapi.json", handleOpenAPI())
		r.Get("/ca/root", handleCARoot(d.CA))

		r.Group(func(r chi.Router) {
			r.Use(authenticate(d.Auth, d.Log))
			r.Get("/proxies", handleListProxies(d.Proxies, d.ProxySecurity))
			r.Get("/proxies/{node}/config_dump", handleProxyConfigDump(d.Proxies, d.Log))
			r.Get("/graph", handleGraph(d.Telemetry, d.Log))
			r.Get("/metrics", handleMetrics(d.Telemetry, d.Log))
			// Static segments are matched before the {kind} parameters below: "experiments"
			// is not a kind's plural (that is "faultexperiments").
			r.Get("/experiments", handleListExperiments(d.Experiments, d.Log))
			r.Get("/namespaces/{namespace}/experiments/{name}", handleGetExperiment(d.Experiments, d.Log))
			r.With(requireRole(auth.RoleOperator)).Post("/namespaces/{namespace}/experiments/{name}/stop", handleStopExperiment(d.Experiments, d.Audit, d.Log))
			r.Get("/live", handleLive(d.Live, d.Log))
			// TLS secrets: static segments, matched before the {kind} routes below.
			r.With(requireRole(auth.RoleOperator)).Get("/namespaces/{namespace}/secrets", handleListSecrets(d.Secrets, d.Log))
			r.With(requireRole(auth.RoleOperator)).Get("/namespaces/{namespace}/secrets/{name}", handleGetSecret(d.Secrets, d.Log))
			r.With(requireRole(auth.RoleAdmin)).Post("/namespaces/{namespace}/secrets", handlePutSecret(d.Secrets, d.Audit, d.Log, false))
			r.With(requireRole(auth.RoleAdmin)).Put("/namespaces/{namespace}/secrets/{name}", handlePutSecret(d.Secrets, d.Audit, d.Log, true))
			r.With(requireRole(auth.RoleAdmin)).Delete("/namespaces/{namespace}/secrets/{name}", handleDeleteSecret(d.Secrets, d.Audit, d.Log))

			// Mesh configuration: reads for every role; rollback for operators; other writes
			// for admins.
			r.Get("/{kind}", handleListResources(d.Config, d.Log))
			r.Get("/namespaces/{namespace}/{kind}", handleListResources(d.Config, d.Log))
			r.Get("/namespaces/{namespace}/{kind}/{name}", handleGetResource(d.Config, d.Log))
			r.Get("/namespaces/{namespace}/{kind}/{name}/history", handleResourceHistory(d.Config, d.Log))
			r.Get("/revisions", handleListRevisions(d.Config, d.Log))
			r.Get("/revisions/{revision}", handleGetRevision(d.Config, d.Log))
			r.Get("/diff", handleDiff(d.Config, d.Log))
			r.Get("/namespaces/{namespace}/services", handleListServices(d.Proxies, d.Changes, d.Log))
			r.Get("/namespaces/{namespace}/services/{name}", handleGetService(d.Proxies, d.Changes, d.Log))
			r.Group(func(r chi.Router) {
				r.Use(requireRole(auth.RoleOperator))
				r.Put("/namespaces/{namespace}/services/{name}/traffic", handleSetTraffic(d.Changes, d.Log))
				r.Post("/namespaces/{namespace}/{kind}/{name}/rollback", handleRollbackResource(d.Changes, d.Log))
				r.Post("/revisions/{revision}/rollback", handleRollbackMesh(d.Changes, d.Log))
			})
			r.Group(func(r chi.Router) {
				r.Use(requireRole(auth.RoleAdmin))
				r.With(limitBody(maxApplyBytes)).Post("/apply", handleApply(d.Changes, d.Log))
				r.With(limitBody(maxApplyBytes)).Post("/namespaces/{namespace}/{kind}", handlePutResource(d.Changes, d.Log, true))
				r.With(limitBody(maxApplyBytes)).Put("/namespaces/{namespace}/{kind}/{name}", handlePutResource(d.Changes, d.Log, false))
				r.Delete("/namespaces/{namespace}/{kind}/{name}", handleDeleteResource(d.Changes, d.Log))
			})

			r.Post("/logout", handleLogout(d.Auth, d.Audit, d.Log))
			r.Get("/whoami", handleWhoami())
			r.Get("/tokens", handleListTokens(d.Auth, d.Log))
			r.Post("/tokens", handleCreateToken(d.Auth, d.Audit, d.Log))
			r.Delete("/tokens/{id}", handleRevokeToken(d.Auth, d.Audit, d.Log))
			r.Route("/workload-tokens", func(r chi.Router) {
				r.Use(requireRole(auth.RoleAdmin))
				r.Get("/", handleListWorkloadTokens(d.Auth, d.Log))
				r.Post("/", handleCreateWorkloadToken(d.Auth, d.Audit, d.Log))
				r.Delete("/{id}", handleRevokeWorkloadToken(d.Auth, d.Audit, d.Log))
			})
			r.With(requireRole(auth.RoleOperator)).Get("/audit", handleListAudit(d.Audit, d.Log))
			r.Route("/users", func(r chi.Router) {
				r.Use(requireRole(auth.RoleAdmin))
				r.Get("/", handleListUsers(d.Auth, d.Log))
				r.Post("/", handleCreateUser(d.Auth, d.Audit, d.Log))
				r.Get("/{name}", handleGetUser(d.Auth, d.Log))
				r.Patch("/{name}", handleUpdateUser(d.Auth, d.Audit, d.Log))
				r.Delete("/{name}", handleDeleteUser(d.Auth, d.Audit, d.Log))
			})
		})
	})

	r.Handle("/*", handleConsole(d.Console))
	return r
}
