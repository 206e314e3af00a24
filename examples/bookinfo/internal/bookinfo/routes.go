package bookinfo

import (
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
)

// This file lists every route of the four services.

func addDetailsRoutes(mux *http.ServeMux) {
	mux.Handle("GET /details/{id}", handleDetails())
	mux.Handle("GET /health", handleHealth("Details is healthy"))
}

func addRatingsRoutes(mux *http.ServeMux) {
	mux.Handle("GET /ratings/{id}", handleRatings())
	mux.Handle("GET /health", handleHealth("Ratings is healthy"))
}

func addReviewsRoutes(mux *http.ServeMux, logger *slog.Logger, podName, clusterName, color string, ratings *peer) {
	mux.Handle("GET /reviews/{id}", handleReviews(logger, podName, clusterName, color, ratings))
	mux.Handle("GET /health", handleHealth("Reviews is healthy"))
}

func addProductPageRoutes(mux *http.ServeMux, logger *slog.Logger, peers *productPeers, sess sessions, pages *template.Template, static fs.FS) {
	mux.Handle("GET /{$}", handleIndex(logger, pages, peers))
	mux.Handle("GET /index.html", handleIndex(logger, pages, peers))
	mux.Handle("GET /health", handleHealth("Product page is healthy"))
	// Signing in changes state, so refuse it from other sites' pages.
	mux.Handle("POST /login", http.NewCrossOriginProtection().Handler(handleLogin(sess)))
	mux.Handle("GET /logout", handleLogout(sess))
	mux.Handle("GET /productpage", handleProductPage(logger, peers, sess, pages))
	mux.Handle("GET /api/v1/products", handleProducts())
	mux.Handle("GET /api/v1/products/{id}", handlePeerAPI(peers.fetchDetails, sess))
	mux.Handle("GET /api/v1/products/{id}/reviews", handlePeerAPI(peers.fetchReviews, sess))
	mux.Handle("GET /api/v1/products/{id}/ratings", handlePeerAPI(peers.fetchRatings, sess))
	mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
}
