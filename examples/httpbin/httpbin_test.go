package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// request sends method path with Host host to srv and returns the answer,
// its body read.
func request(t *testing.T, srv *httptest.Server, method, host, path string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if host != "" {
		req.Host = host
	}
	res, err := srv.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read %s: %v", path, err)
	}
	return res, body
}

func seen(t *testing.T, srv *httptest.Server) seenBody {
	t.Helper()
	res, body := request(t, srv, http.MethodGet, "", seenPath)
	if res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s = %d", seenPath, res.StatusCode)
	}
	var s seenBody
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatalf("decode %s: %v\n%s", seenPath, err, body)
	}
	return s
}

func TestSeenCountsRequestsPerHost(t *testing.T) {
	srv := httptest.NewServer(newHandler("v2", testLogger(t)))
	defer srv.Close()

	if s := seen(t, srv); s.Total != 0 || len(s.Hosts) != 0 || s.Version != "v2" {
		t.Fatalf("fresh counts = %+v, want none for v2", s)
	}

	res, _ := request(t, srv, http.MethodGet, "httpbin-shadow:8000", "/headers")
	if res.StatusCode != http.StatusOK {
		t.Errorf("GET /headers = %d, want 200", res.StatusCode)
	}
	request(t, srv, http.MethodGet, "httpbin-shadow:8000", "/status/418")
	request(t, srv, http.MethodPost, "HTTPBIN:8000", "/post")

	s := seen(t, srv)
	want := map[string]int64{"httpbin-shadow:8000": 2, "httpbin:8000": 1}
	if !maps.Equal(s.Hosts, want) || s.Total != 3 {
		t.Errorf("counts = %v (total %d), want %v (total 3); %s itself is not counted", s.Hosts, s.Total, want, seenPath)
	}

	res, _ = request(t, srv, http.MethodDelete, "", seenPath)
	if res.StatusCode != http.StatusNoContent {
		t.Errorf("DELETE %s = %d, want 204", seenPath, res.StatusCode)
	}
	if s := seen(t, srv); s.Total != 0 || len(s.Hosts) != 0 {
		t.Errorf("after reset counts = %+v, want none", s)
	}
}

func TestHostCounterIsBounded(t *testing.T) {
	c := newHostCounter()
	for i := range maxSeenHosts + 10 {
		c.add(fmt.Sprintf("host-%d", i))
	}
	c.add("host-0")
	hosts, total := c.snapshot()
	if len(hosts) != maxSeenHosts+1 || hosts[otherHosts] != 10 || hosts["host-0"] != 2 || total != maxSeenHosts+11 {
		t.Errorf("got %d hosts, %d other, host-0 %d, total %d; want %d hosts, 10 other, host-0 2, total %d",
			len(hosts), hosts[otherHosts], hosts["host-0"], total, maxSeenHosts+1, maxSeenHosts+11)
	}
}

func TestServesHttpbinWithVersionHeader(t *testing.T) {
	srv := httptest.NewServer(newHandler("v1", testLogger(t)))
	defer srv.Close()
	tests := []struct {
		path       string
		wantStatus int
		wantBody   string
	}{
		{"/status/200", 200, ""},
		{"/status/503", 503, ""},
		{"/headers", 200, `"Host"`},
		{"/hostname", 200, `"httpbin-v1"`},
		{"/get?show_env=1", 200, `"args"`},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			res, body := request(t, srv, http.MethodGet, "httpbin.example.com", tt.path)
			if res.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", res.StatusCode, tt.wantStatus)
			}
			if v := res.Header.Get(versionHeader); v != "v1" {
				t.Errorf("%s = %q, want v1", versionHeader, v)
			}
			if !strings.Contains(string(body), tt.wantBody) {
				t.Errorf("body lacks %q:\n%s", tt.wantBody, body)
			}
		})
	}
}

func TestParseConfig(t *testing.T) {
	getenv := func(vars map[string]string) func(string) string { return func(k string) string { return vars[k] } }
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		want    config
		wantErr string
	}{
		{name: "defaults", want: config{addr: ":8080", version: "v1"}},
		{name: "flags", args: []string{"--addr", "127.0.0.9:18000", "--version", "v2"}, want: config{addr: "127.0.0.9:18000", version: "v2"}},
		{name: "environment", env: map[string]string{"HTTPBIN_ADDR": "127.0.0.9:18001", "HTTPBIN_VERSION": "v2", "HTTPBIN_LOG_LEVEL": "debug"},
			want: config{addr: "127.0.0.9:18001", version: "v2", logLevel: slog.LevelDebug}},
		{name: "unknown version", args: []string{"--version", "v3"}, wantErr: "want v1 or v2"},
		{name: "bad address", args: []string{"--addr", "18000"}, wantErr: "want host:port"},
		{name: "stray argument", args: []string{"serve"}, wantErr: "unexpected arguments"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseConfig(tt.args, getenv(tt.env), io.Discard)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("config = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"httpbin", "--addr", "127.0.0.1:0", "--version", "v2"}, func(string) string { return "" }, io.Discard, pw)
		pw.Close()
	}()

	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				addr <- line.Addr
			}
		}
		close(addr)
	}()
	a, ok := <-addr
	if !ok {
		t.Fatalf("run ended before listening: %v", <-done)
	}

	res, err := http.Get("http://" + a + "/status/200")
	if err != nil {
		t.Fatalf("GET /status/200: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get(versionHeader) != "v2" {
		t.Errorf("GET /status/200 = %d with version %q, want 200 v2", res.StatusCode, res.Header.Get(versionHeader))
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("run returned %v after cancel, want nil", err)
	}
}
