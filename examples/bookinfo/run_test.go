package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/sluicemesh/sluice/examples/bookinfo/internal/bookinfo"
)

// env returns a getenv over vars.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func TestPeerURL(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		service string
		want    string
		wantErr string
	}{
		{name: "Istio's default", service: "details", want: "http://details:9080"},
		{name: "hostname and port", service: "reviews",
			env:  map[string]string{"REVIEWS_HOSTNAME": "127.0.0.1", "REVIEWS_SERVICE_PORT": "19083"},
			want: "http://127.0.0.1:19083"},
		{name: "services domain", service: "ratings",
			env:  map[string]string{"SERVICES_DOMAIN": "bookinfo.svc.cluster.local"},
			want: "http://ratings.bookinfo.svc.cluster.local:9080"},
		{name: "IPv6 host", service: "details", env: map[string]string{"DETAILS_HOSTNAME": "::1"}, want: "http://[::1]:9080"},
		{name: "bad port", service: "details", env: map[string]string{"DETAILS_SERVICE_PORT": "http"}, wantErr: "DETAILS_SERVICE_PORT"},
		{name: "port out of range", service: "details", env: map[string]string{"DETAILS_SERVICE_PORT": "70000"}, wantErr: "DETAILS_SERVICE_PORT"},
		{name: "bad host", service: "ratings", env: map[string]string{"RATINGS_HOSTNAME": "a/b"}, wantErr: "RATINGS_HOSTNAME"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := peerURL(env(tt.env), tt.service)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("peerURL = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	tests := []struct {
		name    string
		service string
		args    []string
		env     map[string]string
		want    config
		wantErr string
	}{
		{name: "defaults", service: "details",
			want: config{service: "details", addr: ":9080", version: "v1", name: "details-v1"}},
		{name: "flags", service: "reviews", args: []string{"--addr", "127.0.0.3:19080", "--version", "v2", "--name", "reviews-v2-xyz"},
			want: config{service: "reviews", addr: "127.0.0.3:19080", version: "v2", name: "reviews-v2-xyz"}},
		{name: "environment", service: "reviews",
			env:  map[string]string{"BOOKINFO_ADDR": "127.0.0.4:19080", "BOOKINFO_VERSION": "v3", "BOOKINFO_LOG_LEVEL": "debug"},
			want: config{service: "reviews", addr: "127.0.0.4:19080", version: "v3", name: "reviews-v3", logLevel: -4}},
		{name: "flags beat environment", service: "ratings", args: []string{"--addr", "127.0.0.5:1"},
			env:  map[string]string{"BOOKINFO_ADDR": "127.0.0.4:19080"},
			want: config{service: "ratings", addr: "127.0.0.5:1", version: "v1", name: "ratings-v1"}},
		{name: "session key", service: "productpage", args: []string{"--session-key", "0123456789abcdef"},
			want: config{service: "productpage", addr: ":9080", version: "v1", name: "productpage-v1", sessionKey: "0123456789abcdef"}},
		{name: "unknown service", service: "payments", wantErr: `unknown service "payments"`},
		{name: "details has no v2", service: "details", args: []string{"--version", "v2"}, wantErr: "details has versions v1"},
		{name: "reviews has no v4", service: "reviews", args: []string{"--version", "v4"}, wantErr: "reviews has versions v1, v2, v3"},
		{name: "address without port", service: "details", args: []string{"--addr", "localhost"}, wantErr: "want host:port"},
		{name: "short session key", service: "productpage", args: []string{"--session-key", "short"}, wantErr: "at least 16 bytes"},
		{name: "session key on another service", service: "details", args: []string{"--session-key", "0123456789abcdef"}, wantErr: "flag provided but not defined"},
		{name: "bad log level", service: "details", args: []string{"--log-level", "loud"}, wantErr: "--log-level"},
		{name: "stray argument", service: "details", args: []string{"9080"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.service, tt.args, env(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("err = %v", err)
			}
			if got != tt.want {
				t.Errorf("config = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestRunUsage(t *testing.T) {
	var out strings.Builder
	if err := run(t.Context(), []string{"bookinfo", "-h"}, env(nil), &out, io.Discard); err != nil {
		t.Fatalf("run -h: %v", err)
	}
	if !strings.Contains(out.String(), "DETAILS_HOSTNAME") {
		t.Errorf("usage lacks the environment variables:\n%s", out.String())
	}
	if err := run(t.Context(), []string{"bookinfo"}, env(nil), io.Discard, io.Discard); !errors.Is(err, errUsage) {
		t.Errorf("run without a service: err = %v, want errUsage", err)
	}
}

// followLog reads the service's JSON log lines from r, copying them to the
// test log, and returns the address of its "listening" line. The test waits,
// before it ends, for r to reach EOF and fails if no "stopped" line came:
// that is the graceful shutdown.
func followLog(t *testing.T, r io.Reader) string {
	t.Helper()
	addr := make(chan string, 1)
	stopped := make(chan bool, 1)
	go func() {
		sawStop := false
		sc := bufio.NewScanner(r)
		for sc.Scan() {
			t.Log(sc.Text())
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) != nil {
				continue
			}
			switch line.Msg {
			case "listening":
				addr <- line.Addr
			case "stopped":
				sawStop = true
			}
		}
		close(addr)
		stopped <- sawStop
	}()
	t.Cleanup(func() {
		if !<-stopped && !t.Failed() {
			t.Error(`the service did not log "stopped"`)
		}
	})
	a, ok := <-addr
	if !ok {
		t.Fatal("the service exited before listening")
	}
	return a
}

// healthy fails the test unless GET /health on addr answers 200 with want.
func healthy(t *testing.T, addr, want string) {
	t.Helper()
	res, err := http.Get("http://" + addr + "/health")
	if err != nil {
		t.Fatalf("GET /health: %v", err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK || !strings.Contains(string(body), want) {
		t.Errorf("GET /health = %d %s, want 200 with %q", res.StatusCode, body, want)
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"bookinfo", "ratings", "--addr", "127.0.0.1:0"}, env(nil), io.Discard, pw)
		pw.Close()
	}()
	addr := followLog(t, pr)
	healthy(t, addr, "Ratings is healthy")

	cancel()
	if err := <-done; err != nil {
		t.Errorf("run returned %v after cancel, want nil", err)
	}
}

// buildBinary builds the bookinfo command into a temporary directory.
func buildBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the binary")
	}
	gobin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command to build with")
	}
	bin := filepath.Join(t.TempDir(), "bookinfo")
	build := exec.CommandContext(t.Context(), gobin, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// start runs the binary with args and extra environment, and returns the
// command and the address it listens on.
func start(t *testing.T, bin string, environ []string, args ...string) (*exec.Cmd, string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), bin, args...)
	cmd.Env = append(os.Environ(), environ...)
	// An os.Pipe rather than StderrPipe: Wait closes a StderrPipe as soon as the process
	// exits, which can drop its last lines ("stopped") before followLog reads them; this
	// pipe is read to its end whatever Wait does.
	stderr, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stderr.Close() })
	cmd.Stderr = w
	if err := cmd.Start(); err != nil {
		t.Fatalf("start: %v", err)
	}
	w.Close() // the child holds its own copy; EOF comes when it exits
	return cmd, followLog(t, stderr)
}

// stop sends SIGTERM and expects a clean exit.
func stop(t *testing.T, cmd *exec.Cmd) {
	t.Helper()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("SIGTERM: %v", err)
	}
	if err := cmd.Wait(); err != nil {
		t.Errorf("after SIGTERM the process ended with %v, want a clean exit", err)
	}
}

func TestBinary(t *testing.T) {
	bin := buildBinary(t)

	t.Run("health then SIGTERM", func(t *testing.T) {
		cmd, addr := start(t, bin, nil, "reviews", "--addr", "127.0.0.1:0", "--version", "v1")
		healthy(t, addr, "Reviews is healthy")
		stop(t, cmd)
	})

	t.Run("productpage calls peers by name through HTTP_PROXY", func(t *testing.T) {
		// A stand-in for the sidecar's outbound listener: it routes each
		// proxied request by its Host to the real handlers, as the mesh would.
		ratings := httptest.NewServer(bookinfo.NewRatings(nil))
		defer ratings.Close()
		reviews, err := bookinfo.NewReviews(bookinfo.ReviewsConfig{Version: "v2", RatingsURL: ratings.URL})
		if err != nil {
			t.Fatal(err)
		}
		upstreams := map[string]http.Handler{"details:9080": bookinfo.NewDetails(nil), "reviews:9080": reviews}
		var mu sync.Mutex
		var hosts []string
		sidecar := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			mu.Lock()
			hosts = append(hosts, r.Host)
			mu.Unlock()
			h, ok := upstreams[r.Host]
			if !ok || !r.URL.IsAbs() {
				http.Error(w, "no route to "+r.Host, http.StatusNotFound)
				return
			}
			h.ServeHTTP(w, r)
		}))
		defer sidecar.Close()

		cmd, addr := start(t, bin, []string{
			"HTTP_PROXY=" + sidecar.URL, "http_proxy=" + sidecar.URL, "NO_PROXY=", "no_proxy=",
		}, "productpage", "--addr", "127.0.0.1:0")

		res, err := http.Get("http://" + addr + "/productpage")
		if err != nil {
			t.Fatalf("GET /productpage: %v", err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		for _, want := range []string{"Book Details", "PublisherA", "Book Reviews", "Reviews served by: reviews-v2", "★★★★☆"} {
			if !strings.Contains(string(body), want) {
				t.Errorf("page lacks %q", want)
			}
		}
		mu.Lock()
		got := strings.Join(hosts, ",")
		mu.Unlock()
		if got != "details:9080,reviews:9080" {
			t.Errorf("the proxy saw hosts %q, want details:9080,reviews:9080", got)
		}
		stop(t, cmd)
	})
}
