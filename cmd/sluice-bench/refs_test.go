package main

import (
	"strings"
	"testing"
)

// The references are configured as ../shared/BENCH-NOTES.md says they must be to compare
// fairly: keep-alive on both sides with a high request limit, no access log, one worker or
// thread, loopback only, files in the run's own directory.
func TestReferenceConfigs(t *testing.T) {
	for name, tc := range map[string]struct {
		config string
		want   []string
	}{
		"nginx": {nginxConfig("/tmp/run/nginx", protoHTTP1, "127.0.0.1:8081", "127.20.200.3:18080"), []string{
			"worker_processes 1;", "access_log off;", "keepalive_requests 10000000;", "listen 127.0.0.1:8081;",
			"server 127.20.200.3:18080;", "keepalive 64;", "proxy_http_version 1.1;", `proxy_set_header Connection "";`,
			"pid /tmp/run/nginx/nginx.pid;", "daemon off;",
		}},
		"haproxy": {haproxyConfig("/tmp/run/haproxy", protoHTTP1, "127.0.0.1:8082", "127.20.200.3:18080"), []string{
			"nbthread 1", "maxconn 4096", "http-reuse always", "option http-keep-alive", "bind 127.0.0.1:8082\n",
			"server app 127.20.200.3:18080 maxconn 4096\n", "pidfile /tmp/run/haproxy/haproxy.pid",
		}},
		// gRPC: h2c by prior knowledge on both sides, keep-alive to the upstream.
		"nginx gRPC": {nginxConfig("/tmp/run/nginx", protoGRPC, "127.0.0.1:8083", "127.20.200.3:18090"), []string{
			"worker_processes 1;", "access_log off;", "keepalive_requests 10000000;", "listen 127.0.0.1:8083 http2;",
			"server 127.20.200.3:18090;", "keepalive 64;", "grpc_pass grpc://app;", "pid /tmp/run/nginx/nginx.pid;",
		}},
		"haproxy gRPC": {haproxyConfig("/tmp/run/haproxy", protoGRPC, "127.0.0.1:8084", "127.20.200.3:18090"), []string{
			"nbthread 1", "maxconn 4096", "http-reuse always", "bind 127.0.0.1:8084 proto h2\n",
			"server app 127.20.200.3:18090 maxconn 4096 proto h2\n",
		}},
	} {
		for _, w := range tc.want {
			if !strings.Contains(tc.config, w) {
				t.Errorf("%s configuration lacks %q", name, w)
			}
		}
		if strings.Contains(tc.config, "0.0.0.0") {
			t.Errorf("%s listens beyond loopback", name)
		}
	}
}

func TestJoinArgs(t *testing.T) {
	got := joinArgs([]string{"test", "-run", "^$", "-bench", "^BenchmarkIntake$", "./x/"})
	if want := "test -run '^$' -bench '^BenchmarkIntake$' ./x/"; got != want {
		t.Errorf("joinArgs = %q, want %q", got, want)
	}
}
