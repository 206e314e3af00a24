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
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/sluicemesh/sluice/examples/bookinfo/internal/bookinfo"
)

// services lists the subcommands, and the versions each one has.
var services = map[string][]string{
	"productpage": {"v1"},
	"details":     {"v1"},
	"reviews":     bookinfo.ReviewsVersions,
	"ratings":     {"v1"},
}

const usage = `Usage: bookinfo productpage|details|reviews|ratings [flags]

Runs one service of Istio's Bookinfo sample. Every service answers on port
9080 in Istio's manifests; here --addr picks the address.

Flags (each falls back to its environment variable, then to the default):
  --addr ADDR          listen address (BOOKINFO_ADDR; default :9080)
  --version VERSION    v1, or for reviews v1|v2|v3 (BOOKINFO_VERSION; default v1)
  --name NAME          instance name; reviews reports it as "podname"
                       (BOOKINFO_NAME; default <service>-<version>)
  --session-key KEY    productpage only: HMAC key for the session cookie, at
                       least 16 bytes (BOOKINFO_SESSION_KEY; default random
                       per process)
  --log-level LEVEL    debug|info|warn|error (BOOKINFO_LOG_LEVEL; default info)

Peers (environment only, as in Istio's Bookinfo):
  DETAILS_HOSTNAME, REVIEWS_HOSTNAME, RATINGS_HOSTNAME
                       peer host (default details, reviews, ratings)
  DETAILS_SERVICE_PORT, REVIEWS_SERVICE_PORT, RATINGS_SERVICE_PORT
                       peer port (default 9080)
  SERVICES_DOMAIN      appended to every peer host after a dot (default none)
  CLUSTER_NAME         reviews reports it as "clustername" (default "null")
  HTTP_PROXY, NO_PROXY outbound proxy, e.g. the sidecar's outbound listener
`

// config is a service's start-up configuration, from flags and environment.
type config struct {
	service    string
	addr       string
	version    string
	name       string
	sessionKey string
	logLevel   slog.Level
}

// errUsage reports a command line that names no service.
var errUsage = errors.New("name a service: productpage, details, reviews or ratings (see bookinfo -h)")

// run runs the service named by args[1] until ctx ends or the process gets
// SIGINT or SIGTERM, then shuts it down gracefully.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return errUsage
	}
	switch args[1] {
	case "-h", "-help", "--help", "help":
		_, _ = io.WriteString(stdout, usage)
		return nil
	}
	cfg, err := parseConfig(args[1], args[2:], getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		_, _ = io.WriteString(stdout, usage)
		return nil
	}
	if err != nil {
		return err
	}

	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: cfg.logLevel})).
		With(slog.String("service", cfg.service), slog.String("version", cfg.version), slog.String("name", cfg.name))
	handler, err := newHandler(cfg, getenv, logger)
	if err != nil {
		return err
	}
	return serve(ctx, cfg.addr, handler, logger)
}

// parseConfig decodes the flags of service over its environment variables,
// provisions defaults and validates the result.
func parseConfig(service string, args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	versions, ok := services[service]
	if !ok {
		return config{}, fmt.Errorf("unknown service %q: %w", service, errUsage)
	}
	cfg := config{service: service}

	fs := flag.NewFlagSet("bookinfo "+service, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { _, _ = io.WriteString(stderr, usage) }
	fs.StringVar(&cfg.addr, "addr", envOr(getenv, "BOOKINFO_ADDR", ":9080"), "listen address")
	fs.StringVar(&cfg.version, "version", envOr(getenv, "BOOKINFO_VERSION", "v1"), "service version")
	fs.StringVar(&cfg.name, "name", getenv("BOOKINFO_NAME"), "instance name")
	logLevel := fs.String("log-level", envOr(getenv, "BOOKINFO_LOG_LEVEL", "info"), "log level")
	if service == "productpage" {
		fs.StringVar(&cfg.sessionKey, "session-key", getenv("BOOKINFO_SESSION_KEY"), "session cookie key")
	}
	if err := fs.Parse(args); err != nil {
		return config{}, err
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments %q: bookinfo takes flags only after the service", fs.Args())
	}

	// The name defaults to what Istio's pods would be called, minus the
	// random suffix: it is how a reader tells reviews versions apart.
	if cfg.name == "" {
		cfg.name = service + "-" + cfg.version
	}

	var errs []error
	if _, _, err := net.SplitHostPort(cfg.addr); err != nil {
		errs = append(errs, fmt.Errorf("--addr %q: want host:port, e.g. 127.0.0.1:9080", cfg.addr))
	}
	if !slices.Contains(versions, cfg.version) {
		errs = append(errs, fmt.Errorf("--version %q: %s has versions %s", cfg.version, service, strings.Join(versions, ", ")))
	}
	if err := cfg.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("--log-level %q: want debug, info, warn or error", *logLevel))
	}
	if cfg.sessionKey != "" && len(cfg.sessionKey) < 16 {
		errs = append(errs, errors.New("--session-key: use at least 16 bytes, or none for a random key"))
	}
	return cfg, errors.Join(errs...)
}

// newHandler builds the handler of cfg.service.
func newHandler(cfg config, getenv func(string) string, logger *slog.Logger) (http.Handler, error) {
	switch cfg.service {
	case "details":
		return bookinfo.NewDetails(logger), nil
	case "ratings":
		return bookinfo.NewRatings(logger), nil
	case "reviews":
		ratingsURL, err := peerURL(getenv, "ratings")
		if err != nil {
			return nil, err
		}
		return bookinfo.NewReviews(bookinfo.ReviewsConfig{
			Version:     cfg.version,
			PodName:     cfg.name,
			ClusterName: getenv("CLUSTER_NAME"),
			RatingsURL:  ratingsURL,
			Logger:      logger,
		})
	case "productpage":
		pc := bookinfo.ProductPageConfig{SessionKey: []byte(cfg.sessionKey), Logger: logger}
		var errs []error
		for _, p := range []struct {
			service string
			dst     *string
		}{{"details", &pc.DetailsURL}, {"reviews", &pc.ReviewsURL}, {"ratings", &pc.RatingsURL}} {
			u, err := peerURL(getenv, p.service)
			errs = append(errs, err)
			*p.dst = u
		}
		if err := errors.Join(errs...); err != nil {
			return nil, err
		}
		return bookinfo.NewProductPage(pc)
	}
	return nil, fmt.Errorf("unknown service %q: %w", cfg.service, errUsage)
}

// peerURL returns the base URL of a peer from the environment, the way
// Istio's Bookinfo finds its peers: <SERVICE>_HOSTNAME (default the service
// name), SERVICES_DOMAIN, and <SERVICE>_SERVICE_PORT (default 9080).
func peerURL(getenv func(string) string, service string) (string, error) {
	prefix := strings.ToUpper(service)
	host := envOr(getenv, prefix+"_HOSTNAME", service)
	if domain := getenv("SERVICES_DOMAIN"); domain != "" {
		host += "." + domain
	}
	port := envOr(getenv, prefix+"_SERVICE_PORT", "9080")
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "", fmt.Errorf("%s_SERVICE_PORT %q: want a port number", prefix, port)
	}
	u := "http://" + net.JoinHostPort(host, port)
	if parsed, err := url.Parse(u); err != nil || parsed.Host != net.JoinHostPort(host, port) {
		return "", fmt.Errorf("%s_HOSTNAME %q: want a host name or IP address", prefix, host)
	}
	return u, nil
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
		ReadTimeout:       30 * time.Second,
		// Longer than productpage's worst case: two 3 s tries at reviews
		// after 3 s at details.
		WriteTimeout:   60 * time.Second,
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
