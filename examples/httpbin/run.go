package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

const usage = `Usage: httpbin [flags]

Serves go-httpbin, as the httpbin workload of Istio's tasks. Every answer
carries X-Httpbin-Version. Test aid: GET /__sluice/seen returns request counts
per Host header; DELETE /__sluice/seen resets them.

Flags (each falls back to its environment variable, then to the default):
  --addr ADDR          listen address (HTTPBIN_ADDR; default :8080)
  --version VERSION    v1|v2 (HTTPBIN_VERSION; default v1)
  --log-level LEVEL    debug|info|warn|error; debug logs every request's
                       method, path and Host (HTTPBIN_LOG_LEVEL; default info)
`

// versions are the deployments of Istio's mirroring task.
var versions = []string{"v1", "v2"}

// config is the start-up configuration, from flags and environment.
type config struct {
	addr     string
	version  string
	logLevel slog.Level
}

// run serves httpbin until ctx ends or the process gets SIGINT or SIGTERM,
// then shuts down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, err := parseConfig(args[min(1, len(args)):], getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		_, _ = io.WriteString(stdout, usage)
		return nil
	}
	if err != nil {
		return err
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel})).
		With(slog.String("service", "httpbin"), slog.String("version", cfg.version))
	return serve(ctx, cfg.addr, newHandler(cfg.version, logger), logger)
}

// parseConfig decodes the flags over the environment variables, then
// validates the result.
func parseConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var cfg config
	fs := flag.NewFlagSet("httpbin", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { _, _ = io.WriteString(stderr, usage) }
	fs.StringVar(&cfg.addr, "addr", envOr(getenv, "HTTPBIN_ADDR", ":8080"), "listen address")
	fs.StringVar(&cfg.version, "version", envOr(getenv, "HTTPBIN_VERSION", "v1"), "version")
	logLevel := fs.String("log-level", envOr(getenv, "HTTPBIN_LOG_LEVEL", "info"), "log level")
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q: httpbin takes flags only", fs.Args()))
	}
	if _, _, err := net.SplitHostPort(cfg.addr); err != nil {
		errs = append(errs, fmt.Errorf("--addr %q: want host:port, e.g. 127.0.0.1:8000", cfg.addr))
	}
	if cfg.version != versions[0] && cfg.version != versions[1] {
		errs = append(errs, fmt.Errorf("--version %q: want v1 or v2", cfg.version))
	}
	if err := cfg.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel))
	}
	return cfg, errors.Join(errs...)
}

// envOr returns the environment variable key, or def when it is empty.
func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

// shutdownGrace bounds how long in-flight requests may take after a signal.
const shutdownGrace = 10 * time.Second

// serve answers on addr until ctx ends or a SIGINT or SIGTERM arrives, then
// stops accepting, lets in-flight requests finish and returns.
func serve(ctx context.Context, addr string, h http.Handler, logger *slog.Logger) error {
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		// No read or write timeout: /delay, /drip and /sse are slow on
		// purpose, and go-httpbin bounds them itself (10 s at most).
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       slog.NewLogLogger(logger.Handler(), slog.LevelWarn),
	}

	served := make(chan error, 1)
	var wg sync.WaitGroup
	wg.Go(func() { served <- srv.Serve(ln) })
	logger.Info("listening", slog.String("addr", ln.Addr().String()))

	select {
	case err := <-served:
		wg.Wait()
		return fmt.Errorf("serve on %s: %w", addr, err)
	case <-ctx.Done():
	}

	logger.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownGrace)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	wg.Wait()
	if err != nil {
		return fmt.Errorf("shut down: %w", err)
	}
	logger.Info("stopped")
	return nil
}
