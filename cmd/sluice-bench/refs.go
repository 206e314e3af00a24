package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// ensureInstalled returns the path of program, installing its Debian package with apt-get
// when it is missing and the driver runs as root; otherwise the error says why the arm is
// skipped.
func ensureInstalled(ctx context.Context, log *slog.Logger, program, pkg string) (string, error) {
	if p, err := lookSbin(program); err == nil {
		return p, nil
	}
	if os.Geteuid() != 0 {
		return "", fmt.Errorf("%s is not installed and the benchmark is not running as root: install it with `apt-get install %s`", program, pkg)
	}
	if _, err := exec.LookPath("apt-get"); err != nil {
		return "", fmt.Errorf("%s is not installed and apt-get is missing: install %s with the system's package manager", program, pkg)
	}
	log.Info("installing a reference server", "package", pkg)
	install := func() error {
		cmd := exec.CommandContext(ctx, "apt-get", "install", "-y", "-qq", "--no-install-recommends", pkg)
		cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return fmt.Errorf("apt-get install %s: %w: %s", pkg, err, lastLines(string(out), 3))
		}
		return nil
	}
	if err := install(); err != nil {
		upd := exec.CommandContext(ctx, "apt-get", "update", "-qq")
		if out, uerr := upd.CombinedOutput(); uerr != nil {
			return "", fmt.Errorf("apt-get update: %w: %s", uerr, lastLines(string(out), 3))
		}
		if err := install(); err != nil {
			return "", err
		}
	}
	// Debian's packages start a system service of their own; the benchmark runs its own
	// instance, so stop theirs.
	_ = exec.CommandContext(ctx, "service", program, "stop").Run()
	return lookSbin(program)
}

// lookSbin finds program on PATH or in /usr/sbin (not on a plain user's PATH).
func lookSbin(program string) (string, error) {
	if p, err := exec.LookPath(program); err == nil {
		return p, nil
	}
	p := filepath.Join("/usr/sbin", program)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("%s not found", program)
	}
	return p, nil
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, " / ")
}

// versionOf runs program with flag and returns the first line of what it prints.
func versionOf(program, flag string) string {
	out, _ := exec.Command(program, flag).CombinedOutput()
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(line)
}

// nginxConfig is nginx's configuration: one worker, keep-alive on both sides with a high
// request limit, access logs off, loopback only. For gRPC the listener speaks HTTP/2
// without TLS (h2c by prior knowledge) and grpc_pass keeps h2c connections to the upstream.
func nginxConfig(dir, protocol, listen, upstream string) string {
	server := `    listen %[2]s;
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_buffering on;
    }`
	if protocol == protoGRPC {
		server = `    listen %[2]s http2;
    location / {
      grpc_pass grpc://app;
    }`
	}
	return fmt.Sprintf(`daemon off;
master_process on;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path %[1]s/client_body;
  proxy_temp_path %[1]s/proxy;
  fastcgi_temp_path %[1]s/fastcgi;
  uwsgi_temp_path %[1]s/uwsgi;
  scgi_temp_path %[1]s/scgi;
  upstream app {
    server %[3]s;
    keepalive 64;
    keepalive_requests 10000000;
    keepalive_timeout 300s;
  }
  server {
`+server+`
  }
}
`, dir, listen, upstream)
}

// haproxyConfig is HAProxy's configuration: one thread, maxconn within the descriptor limit,
// keep-alive and connection reuse to the upstream, no logging, loopback only. For gRPC both
// the bind and the server speak HTTP/2 without TLS (`proto h2`).
func haproxyConfig(dir, protocol, listen, upstream string) string {
	h2 := ""
	if protocol == protoGRPC {
		h2 = " proto h2"
	}
	return fmt.Sprintf(`global
  nbthread 1
  maxconn 4096
  pidfile %[1]s/haproxy.pid
defaults
  mode http
  option http-keep-alive
  http-reuse always
  timeout connect 5s
  timeout client 300s
  timeout server 300s
  timeout http-keep-alive 300s
frontend bench
  bind %[2]s%[4]s
  default_backend app
backend app
  server app %[3]s maxconn 4096%[4]s
`, dir, listen, upstream, h2)
}

// reference is a started nginx or HAProxy.
type reference struct {
	proc    *child
	version string
}

// startReference installs (if need be), configures and starts nginx or HAProxy on listen,
// proxying protocol to upstream, and waits until ready succeeds.
func startReference(ctx context.Context, log *slog.Logger, cs *children, name, protocol, listen, upstream string, ready func() error) (*reference, error) {
	dir := filepath.Join(cs.dir, name+"-"+protocol)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	var (
		path, cfgPath string
		args          []string
		ver           string
	)
	switch name {
	case armNginx:
		p, err := ensureInstalled(ctx, log, "nginx", "nginx")
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errSkipped, err)
		}
		path, cfgPath = p, filepath.Join(dir, "nginx.conf")
		if err := os.WriteFile(cfgPath, []byte(nginxConfig(dir, protocol, listen, upstream)), 0o644); err != nil {
			return nil, fmt.Errorf("nginx config: %w", err)
		}
		args = []string{"-e", filepath.Join(dir, "nginx-error.log"), "-p", dir, "-c", cfgPath}
		ver = strings.TrimPrefix(versionOf(path, "-v"), "nginx version: ")
	case armHAProxy:
		p, err := ensureInstalled(ctx, log, "haproxy", "haproxy")
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errSkipped, err)
		}
		path, cfgPath = p, filepath.Join(dir, "haproxy.cfg")
		if err := os.WriteFile(cfgPath, []byte(haproxyConfig(dir, protocol, listen, upstream)), 0o644); err != nil {
			return nil, fmt.Errorf("haproxy config: %w", err)
		}
		args = []string{"-db", "-f", cfgPath}
		ver = versionOf(path, "-v")
		if f := strings.Fields(ver); len(f) >= 3 {
			ver = f[2]
		}
	default:
		return nil, fmt.Errorf("unknown reference %q", name)
	}
	p, err := cs.start(name+"-"+protocol, true, path, args)
	if err != nil {
		return nil, err
	}
	if err := waitFor(ctx, p, 30*time.Second, name+" ("+protocolName(protocol)+") answering", ready); err != nil {
		return nil, err
	}
	return &reference{proc: p, version: ver}, nil
}
