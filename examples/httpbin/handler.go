package main

import (
	"encoding/json"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"

	"github.com/mccutchen/go-httpbin/v2/httpbin"
)

// seenPath is the test aid's endpoint. Its prefix keeps it clear of every
// httpbin route.
const seenPath = "/__sluice/seen"

// versionHeader names the response header that tells which version answered.
const versionHeader = "X-Httpbin-Version"

// newHandler returns go-httpbin wrapped with the version header, a debug log
// line per request, and the /__sluice/seen test aid.
//
// Test aid: GET /__sluice/seen answers
//
//	{"version":"v2","total":3,"hosts":{"httpbin-shadow:8000":3}}
//
// counting every request this process served, by its Host header exactly as
// received (port included when the client sent one, lower-cased). Requests
// to /__sluice/seen itself are not counted. DELETE /__sluice/seen resets the
// counts. Istio's mirroring task needs it: the mirrored copy's answer is
// discarded, so only v2 itself can tell that it saw Host "httpbin-shadow".
func newHandler(version string, logger *slog.Logger) http.Handler {
	seen := newHostCounter()
	bin := httpbin.New(httpbin.WithHostname("httpbin-" + version))

	mux := http.NewServeMux()
	mux.Handle("GET "+seenPath, handleSeen(version, seen))
	mux.Handle("DELETE "+seenPath, handleSeenReset(seen))
	mux.Handle("/", countHosts(seen, bin))

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		logger.LogAttrs(r.Context(), slog.LevelDebug, "request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path), slog.String("host", r.Host))
		w.Header().Set(versionHeader, version)
		mux.ServeHTTP(w, r)
	})
}

// maxSeenHosts bounds the distinct hosts counted: the Host header is the
// client's to choose. Beyond it, requests count under otherHosts.
const maxSeenHosts = 1024

// otherHosts is the key of requests whose host did not fit.
const otherHosts = "(other)"

// hostCounter counts requests per Host header. Its methods are safe for
// concurrent use.
type hostCounter struct {
	mu     sync.Mutex
	counts map[string]int64
	total  int64
}

func newHostCounter() *hostCounter {
	return &hostCounter{counts: make(map[string]int64)}
}

func (c *hostCounter) add(host string) {
	host = strings.ToLower(host)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.counts[host]; !ok && len(c.counts) >= maxSeenHosts {
		host = otherHosts
	}
	c.counts[host]++
	c.total++
}

func (c *hostCounter) snapshot() (map[string]int64, int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.counts), c.total
}

func (c *hostCounter) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.counts)
	c.total = 0
}

// seenBody is the answer of GET /__sluice/seen.
type seenBody struct {
	Version string           `json:"version"`
	Total   int64            `json:"total"`
	Hosts   map[string]int64 `json:"hosts"`
}

// countHosts counts each request by Host before passing it on.
func countHosts(seen *hostCounter, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen.add(r.Host)
		next.ServeHTTP(w, r)
	})
}

func handleSeen(version string, seen *hostCounter) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		hosts, total := seen.snapshot()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(seenBody{Version: version, Total: total, Hosts: hosts})
	}
}

func handleSeenReset(seen *hostCounter) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		seen.reset()
		w.WriteHeader(http.StatusNoContent)
	}
}
