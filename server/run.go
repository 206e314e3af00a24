// Package server is sluice-server, the control plane. Run wires its parts together: the
// PostgreSQL store (an external database, or a private cluster it supervises), the workload
// registry, the xDS server that streams configuration to proxies, and the HTTP API and
// console. One errgroup owns every long-running part, and a failure of any of them stops the
// rest.
package server

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
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/experimental"
	"google.golang.org/grpc/keepalive"

	"github.com/sluicemesh/sluice/internal/grpccodec"
	"github.com/sluicemesh/sluice/internal/pgembed"
	"github.com/sluicemesh/sluice/internal/version"
	"github.com/sluicemesh/sluice/server/internal/api"
	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/ca"
	"github.com/sluicemesh/sluice/server/internal/ca/cagrpc"
	"github.com/sluicemesh/sluice/server/internal/changes"
	"github.com/sluicemesh/sluice/server/internal/experiments"
	"github.com/sluicemesh/sluice/server/internal/registry"
	"github.com/sluicemesh/sluice/server/internal/store"
	"github.com/sluicemesh/sluice/server/internal/telemetry"
	"github.com/sluicemesh/sluice/server/internal/telemetry/intake"
	"github.com/sluicemesh/sluice/server/internal/xds"
	"github.com/sluicemesh/sluice/web"
)

// Config is sluice-server's configuration, from flags and SLUICE_* environment variables.
type Config struct {
	HTTPAddr string
	XDSAddr  string
	DataDir  string
	// DatabaseURL selects an external PostgreSQL; empty means the private cluster in DataDir.
	DatabaseURL string
	// RegistrationGrace is how long a disconnected proxy keeps its endpoints.
	RegistrationGrace time.Duration
	LogLevel          slog.Level
	LogFormat         string
	// DebugAddr, when set, serves Go's profiler (/debug/pprof/) there, unauthenticated: bind
	// it to loopback.
	DebugAddr string
	// AdminPassword is the first admin's password (SLUICE_ADMIN_PASSWORD), used only when the
	// database has no users yet; empty means generate one and print it once.
	AdminPassword string
	// TelemetryRetention10s and TelemetryRetention1m are how long the 10-second and
	// 1-minute traffic rollups are kept.
	TelemetryRetention10s time.Duration
	TelemetryRetention1m  time.Duration
	// Security configures the certificate authority and the authenticated xDS port.
	Security SecurityConfig
}

// proxyFeatures lists the optional route and cluster features this release's sluice-proxy
// enforces; the translator leaves the others out of the proxies' configuration and reports
// them (see xds.Features).
var proxyFeatures = xds.Features{HeaderRewrite: true, RegexRewrite: true, Retries: true, Fault: true, Mirror: true, CORS: true,
	ConsistentHash: true, ConnectionPool: true, OutlierDetection: true, MTLS: true}

// usageError marks bad flags or arguments: main prints it and exits 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

// Run is sluice-server's main. args excludes the program name.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) > 0 {
		switch args[0] {
		case "migrate":
			return runMigrate(ctx, args[1:], getenv, stdout, stderr)
		case "version":
			fmt.Fprintln(stdout, "sluice-server", version.String())
			return nil
		}
	}
	cfg, err := parseFlags("sluice-server", args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg)
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	return serve(ctx, cfg, log, stdout)
}

func parseFlags(name string, args []string, getenv func(string) string, stderr io.Writer) (*Config, error) {
	cfg := &Config{}
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Parse errors are reported once, as one line, by main; --help prints the flags.
	fs.SetOutput(io.Discard)
	env := func(key, def string) string {
		if v := getenv(key); v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&cfg.HTTPAddr, "http-addr", env("SLUICE_HTTP_ADDR", "127.0.0.1:8080"), "address of the console and REST API (env SLUICE_HTTP_ADDR)")
	fs.StringVar(&cfg.XDSAddr, "xds-addr", env("SLUICE_XDS_ADDR", "127.0.0.1:15010"), "address of the plaintext, unauthenticated xDS server, opened only with --insecure-xds (env SLUICE_XDS_ADDR)")
	sec := &cfg.Security
	fs.StringVar(&sec.XDSTLSAddr, "xds-tls-addr", env("SLUICE_XDS_TLS_ADDR", ":15012"), "address of the authenticated xDS, CA and telemetry server: TLS, workload tokens (env SLUICE_XDS_TLS_ADDR)")
	insecureDefault := env("SLUICE_INSECURE_XDS", "false")
	fs.BoolVar(&sec.InsecureXDS, "insecure-xds", insecureDefault == "true" || insecureDefault == "1", "also serve plaintext, unauthenticated xDS on --xds-addr, for local development only (env SLUICE_INSECURE_XDS=true)")
	trustDomain := fs.String("trust-domain", env("SLUICE_TRUST_DOMAIN", "cluster.local"), "SPIFFE trust domain of workload identities (env SLUICE_TRUST_DOMAIN)")
	fs.StringVar(&sec.CAKeyFile, "ca-key-file", env("SLUICE_CA_KEY_FILE", ""), "file of the 32-byte key sealing the generated root CA's private key; default <data-dir>/ca.key, created on first start (env SLUICE_CA_KEY_FILE)")
	fs.StringVar(&sec.CACertFile, "ca-cert-file", env("SLUICE_CA_CERT_FILE", ""), "PEM signing CA certificate (root or intermediate) to use instead of a generated root (env SLUICE_CA_CERT_FILE)")
	fs.StringVar(&sec.CASigningKeyFile, "ca-signing-key-file", env("SLUICE_CA_SIGNING_KEY_FILE", ""), "PEM private key of --ca-cert-file (env SLUICE_CA_SIGNING_KEY_FILE)")
	fs.StringVar(&sec.CARootFile, "ca-root-file", env("SLUICE_CA_ROOT_FILE", ""), "PEM root certificate, the trust anchor, when --ca-cert-file is an intermediate (env SLUICE_CA_ROOT_FILE)")
	workloadTTL := fs.String("workload-cert-ttl", env("SLUICE_WORKLOAD_CERT_TTL", "24h"), "lifetime of workload certificates, and the most a proxy may ask for (env SLUICE_WORKLOAD_CERT_TTL)")
	tlsHosts := fs.String("xds-tls-hosts", env("SLUICE_XDS_TLS_HOSTS", defaultTLSHosts()), "comma-separated DNS names and IP addresses in the authenticated port's certificate (env SLUICE_XDS_TLS_HOSTS)")
	fs.StringVar(&cfg.DataDir, "data-dir", env("SLUICE_DATA_DIR", "./.sluice"), "directory of the private PostgreSQL cluster, used when DATABASE_URL is unset (env SLUICE_DATA_DIR)")
	grace := fs.String("registration-grace", env("SLUICE_REGISTRATION_GRACE", "10s"), "how long a disconnected proxy keeps its endpoints (env SLUICE_REGISTRATION_GRACE)")
	retention10s := fs.String("telemetry-retention-10s", env("SLUICE_TELEMETRY_RETENTION_10S", "24h"), "how long 10-second traffic rollups are kept (env SLUICE_TELEMETRY_RETENTION_10S)")
	retention1m := fs.String("telemetry-retention-1m", env("SLUICE_TELEMETRY_RETENTION_1M", "720h"), "how long 1-minute traffic rollups are kept (env SLUICE_TELEMETRY_RETENTION_1M)")
	level := fs.String("log-level", env("SLUICE_LOG_LEVEL", "info"), "debug, info, warn or error (env SLUICE_LOG_LEVEL)")
	fs.StringVar(&cfg.LogFormat, "log-format", env("SLUICE_LOG_FORMAT", "text"), "text or json (env SLUICE_LOG_FORMAT)")
	fs.StringVar(&cfg.DebugAddr, "debug-addr", env("SLUICE_DEBUG_ADDR", ""), "address of Go's profiler (/debug/pprof/), unauthenticated, off when empty; keep it on loopback (env SLUICE_DEBUG_ADDR)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stderr)
			fmt.Fprintf(stderr, "Usage: %s [flags]\n", name)
			fs.PrintDefaults()
			return nil, err
		}
		return nil, &usageError{fmt.Sprintf("%v (see --help)", err)}
	}
	if fs.NArg() > 0 {
		return nil, &usageError{fmt.Sprintf("unexpected argument %q (subcommands: migrate, version)", fs.Arg(0))}
	}
	cfg.DatabaseURL = getenv("DATABASE_URL")
	cfg.AdminPassword = getenv("SLUICE_ADMIN_PASSWORD")
	if cfg.DatabaseURL != "" {
		if err := store.ValidateURL(cfg.DatabaseURL); err != nil {
			return nil, &usageError{err.Error()}
		}
	}

	// Validate everything before anything starts, and say which setting to change.
	for _, a := range []struct{ flag, value string }{{"--http-addr", cfg.HTTPAddr}, {"--xds-addr", cfg.XDSAddr}, {"--xds-tls-addr", sec.XDSTLSAddr}, {"--debug-addr", cfg.DebugAddr}} {
		if a.value == "" && a.flag == "--debug-addr" {
			continue
		}
		if _, _, err := net.SplitHostPort(a.value); err != nil {
			return nil, &usageError{fmt.Sprintf("%s %q is not HOST:PORT (for example 127.0.0.1:8080)", a.flag, a.value)}
		}
	}
	d, err := time.ParseDuration(*grace)
	if err != nil || d <= 0 {
		return nil, &usageError{fmt.Sprintf("--registration-grace %q is not a positive duration (for example 10s)", *grace)}
	}
	cfg.RegistrationGrace = d
	for _, r := range []struct {
		flag, value, min string
		dst              *time.Duration
	}{
		{"--telemetry-retention-10s", *retention10s, "10s", &cfg.TelemetryRetention10s},
		{"--telemetry-retention-1m", *retention1m, "1m", &cfg.TelemetryRetention1m},
	} {
		d, err := time.ParseDuration(r.value)
		if least, _ := time.ParseDuration(r.min); err != nil || d < least {
			return nil, &usageError{fmt.Sprintf("%s %q is not a duration of at least %s (for example 24h)", r.flag, r.value, r.min)}
		}
		*r.dst = d
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(*level)); err != nil {
		return nil, &usageError{fmt.Sprintf("--log-level %q must be debug, info, warn or error", *level)}
	}
	if cfg.LogFormat != "text" && cfg.LogFormat != "json" {
		return nil, &usageError{fmt.Sprintf("--log-format %q must be text or json", cfg.LogFormat)}
	}
	if cfg.DatabaseURL == "" && strings.TrimSpace(cfg.DataDir) == "" {
		return nil, &usageError{"--data-dir is empty: give a directory for the private PostgreSQL, or set DATABASE_URL"}
	}
	if err := parseSecurityFlags(cfg, *trustDomain, *workloadTTL, *tlsHosts); err != nil {
		return nil, err
	}
	return cfg, nil
}

func newLogger(w io.Writer, cfg *Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel}
	if cfg.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// listen binds addr, naming the flag to change when the port is taken.
func listen(flagName, addr string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("%s %s is already in use: stop the process holding it or choose another address with %s", flagName, addr, flagName)
		}
		return nil, fmt.Errorf("%s %s: %w", flagName, addr, err)
	}
	return l, nil
}

// database returns the URL of the database to use, starting the private cluster when
// DATABASE_URL is unset; stop (never nil) stops what was started.
func database(ctx context.Context, cfg *Config, log *slog.Logger) (url string, stop func(), err error) {
	if cfg.DatabaseURL != "" {
		return cfg.DatabaseURL, func() {}, nil
	}
	cluster, err := pgembed.Start(ctx, pgembed.Options{DataDir: cfg.DataDir, Logger: log.With("component", "postgres"), Durable: true})
	if err != nil {
		return "", nil, err
	}
	stop = func() {
		sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := cluster.Stop(sctx); err != nil {
			log.Error("stop private PostgreSQL", "error", err)
		}
	}
	return cluster.URL("sluice"), stop, nil
}

func serve(ctx context.Context, cfg *Config, log *slog.Logger, stdout io.Writer) error {
	// Bind the ports first: a taken port fails before anything else has started.
	httpLn, err := listen("--http-addr", cfg.HTTPAddr)
	if err != nil {
		return err
	}
	defer httpLn.Close()
	tlsLn, err := listen("--xds-tls-addr", cfg.Security.XDSTLSAddr)
	if err != nil {
		return err
	}
	defer tlsLn.Close()
	var xdsLn net.Listener // the plaintext port, only with --insecure-xds
	if cfg.Security.InsecureXDS {
		if xdsLn, err = listen("--xds-addr", cfg.XDSAddr); err != nil {
			return err
		}
		defer xdsLn.Close()
		log.Warn("INSECURE: --insecure-xds serves xDS, telemetry intake and configuration to ANY local process WITHOUT authentication on the plaintext port; use it for local development only, and point proxies at the authenticated TLS port otherwise",
			"xds_addr", xdsLn.Addr().String())
	}

	var debugLn net.Listener
	if cfg.DebugAddr != "" {
		if debugLn, err = listen("--debug-addr", cfg.DebugAddr); err != nil {
			return err
		}
		defer debugLn.Close()
		log.Warn("the profiler is served without authentication", "debug_addr", debugLn.Addr().String())
	}

	dbURL, stopDB, err := database(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stopDB()
	if err := store.Migrate(ctx, dbURL); err != nil {
		return err
	}
	st, err := store.Open(ctx, dbURL, log)
	if err != nil {
		return err
	}
	defer st.Close()
	authSvc, err := auth.NewService(st, auth.Options{Log: log.With("component", "auth")})
	if err != nil {
		return err
	}
	if err := authSvc.Bootstrap(ctx, cfg.AdminPassword, stdout); err != nil {
		return err
	}
	authority, err := setUpCA(ctx, cfg, st, log.With("component", "ca"))
	if err != nil {
		return err
	}
	if path, err := writeRootFile(cfg.DataDir, authority); err != nil {
		log.Warn("the trust bundle is served at GET /api/v1/ca/root but could not be written for local proxies", "error", err)
	} else {
		log.Info("wrote the trust bundle for local proxies", "path", path, "trust_domain", cfg.Security.TrustDomain.Name())
	}
	serverCerts, err := ca.NewServerCertSource(authority, cfg.Security.XDSTLSHosts, cfg.Security.XDSTLSIPs, 0, log.With("component", "ca"))
	if err != nil {
		return err
	}

	reg := registry.New(st, log.With("component", "registry"), cfg.RegistrationGrace)
	if err := reg.Load(ctx); err != nil {
		return err
	}

	g, ctx := errgroup.WithContext(ctx)
	xdsSrv := xds.New(ctx, log.With("component", "xds"), reg, st, st, proxyFeatures)
	xdsSrv.SetTrustDomain(cfg.Security.TrustDomain.Name())
	secKey, err := secretKey(cfg, log.With("component", "ca"))
	if err != nil {
		return err
	}
	secrets := &gatewaySecretLoader{st: st, key: secKey, xds: xdsSrv, log: log.With("component", "secrets")}
	if err := secrets.load(ctx); err != nil {
		return err
	}
	configRev, err := xdsSrv.LoadConfig(ctx)
	if err != nil {
		return err
	}
	// One pool for the transports and the codec: every power of two, so that a 40 KiB
	// response is not held in gRPC's default 1 MiB buffer (grpccodec).
	pool := grpccodec.NewPool()
	codec := grpccodec.New(pool)
	newGRPCServer := func(opts ...grpc.ServerOption) *grpc.Server {
		return grpc.NewServer(append([]grpc.ServerOption{
			experimental.BufferPool(pool),
			grpc.ForceServerCodecV2(codec),
			// Stop returns once every stream's handler has, so each proxy's disconnection is
			// recorded before the store closes (otherwise each failed with "closed pool").
			grpc.WaitForHandlers(true),
			grpc.MaxConcurrentStreams(1 << 20),
			grpc.KeepaliveParams(keepalive.ServerParameters{Time: 30 * time.Second, Timeout: 10 * time.Second}),
			grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: 10 * time.Second, PermitWithoutStream: true}),
		}, opts...)...)
	}
	// The authenticated port: TLS with the mesh CA's certificate, and a workload token on every
	// call, whose identity the xDS server and the certificate service hold the proxy to.
	workloadAuth := cagrpc.NewAuthenticator(authSvc, cagrpc.AuthenticatorOptions{Log: log.With("component", "xds-auth")})
	tlsSrv := newGRPCServer(
		grpc.Creds(credentials.NewTLS(serverTLSConfig(serverCerts))),
		grpc.ChainUnaryInterceptor(workloadAuth.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(workloadAuth.StreamInterceptor()),
	)
	grpcSrvs := []*grpc.Server{tlsSrv}
	var grpcSrv *grpc.Server // the plaintext port's server, only with --insecure-xds
	if xdsLn != nil {
		grpcSrv = newGRPCServer()
		grpcSrvs = append(grpcSrvs, grpcSrv)
	}
	for _, g := range grpcSrvs {
		xdsSrv.Register(g)
	}
	certSvc := cagrpc.NewCertificateService(authority, cfg.Security.WorkloadCertTTL, log.With("component", "ca"))
	certSvc.Register(tlsSrv)
	tel, err := telemetry.New(telemetry.Options{
		Store: st, Log: log.With("component", "telemetry"),
		Retention10s: cfg.TelemetryRetention10s, Retention1m: cfg.TelemetryRetention1m,
	})
	if err != nil {
		return err
	}
	tap := telemetry.NewTap(telemetry.TapOptions{})
	telIntake, err := intake.New(intake.Options{Log: log.With("component", "telemetry-intake"), Metrics: tel, Logs: tap})
	if err != nil {
		return err
	}
	for _, g := range grpcSrvs {
		telIntake.Register(g)
	}
	sched, err := experiments.New(experiments.Options{
		Runs: st, Config: st, Overlay: xdsSrv, Rates: tel, Log: log.With("component", "experiments"),
	})
	if err != nil {
		return err
	}
	// One pass before serving, so that the first push already leaves out the runs that were
	// stopped before a restart.
	if _, err := sched.Reconcile(ctx); err != nil {
		return err
	}
	var xdsServing atomic.Bool
	proxySec := api.ProxySecurity{TrustDomain: cfg.Security.TrustDomain, MTLS: xdsSrv, Certificates: certSvc}
	live := api.NewLiveHub(api.LiveOptions{Log: log.With("component", "live"), Graph: tel, Tap: tap, Revisions: st, Proxies: xdsSrv, ProxySecurity: proxySec})

	httpSrv := &http.Server{
		Handler: api.NewServer(api.Deps{
			Log:           log.With("component", "api"),
			DB:            st,
			XDSServing:    xdsServing.Load,
			Proxies:       xdsSrv,
			ProxySecurity: proxySec,
			Console:       web.Assets(),
			Auth:          authSvc,
			Audit:         st,
			Config:        st,
			Changes:       changes.New(st),
			Telemetry:     tel,
			Experiments:   sched,
			Live:          live,
			CA:            authority,
			Secrets:       api.Secrets{Store: st, Key: secKey, Changed: secrets.changed},
		}),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	g.Go(func() error { return reg.Run(ctx) })
	g.Go(func() error { return xdsSrv.Run(ctx) })
	g.Go(func() error { return xdsSrv.WatchConfig(ctx, configRev) })
	g.Go(func() error { return tel.Run(ctx) })
	g.Go(func() error { return tel.RunRetention(ctx) })
	g.Go(func() error { return sched.Run(ctx) })
	g.Go(func() error { return live.Run(ctx) })
	g.Go(func() error { return serverCerts.Run(ctx) })
	g.Go(func() error { return secrets.run(ctx) })
	g.Go(func() error { return trimMemory(ctx, log.With("component", "memory"), trimInterval) })
	g.Go(func() error {
		xdsServing.Store(true)
		if err := tlsSrv.Serve(tlsLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			return fmt.Errorf("authenticated xds server: %w", err)
		}
		return nil
	})
	if grpcSrv != nil {
		g.Go(func() error {
			if err := grpcSrv.Serve(xdsLn); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				return fmt.Errorf("xds server: %w", err)
			}
			return nil
		})
	}
	g.Go(func() error {
		if err := httpSrv.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("http server: %w", err)
		}
		return nil
	})
	if debugLn != nil {
		g.Go(func() error { return serveDebug(ctx, debugLn) })
	}
	g.Go(func() error {
		<-ctx.Done()
		xdsServing.Store(false)
		sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = httpSrv.Shutdown(sctx)
		// Proxies hold their streams open forever, so a graceful stop would wait for them all;
		// they reconnect to the next server and keep serving meanwhile.
		for _, g := range grpcSrvs {
			g.Stop()
		}
		return nil
	})
	plain := "off"
	if xdsLn != nil {
		plain = xdsLn.Addr().String()
	}
	log.Info("sluice-server started", "version", version.String(), "http_addr", httpLn.Addr().String(),
		"xds_tls_addr", tlsLn.Addr().String(), "xds_addr", plain, "trust_domain", cfg.Security.TrustDomain.Name())
	fmt.Fprintf(stdout, "sluice-server is ready: console http://%s  xDS (TLS, workload tokens) %s  plaintext xDS %s\n", httpLn.Addr(), tlsLn.Addr(), plain)
	err = g.Wait()
	log.Info("sluice-server stopped")
	return err
}

// runMigrate is `sluice-server migrate up|down|version`.
func runMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return &usageError{"migrate: want up, down [N] or version"}
	}
	sub, rest := args[0], args[1:]
	steps := 0
	if sub == "down" && len(rest) > 0 && !strings.HasPrefix(rest[0], "-") {
		if _, err := fmt.Sscanf(rest[0], "%d", &steps); err != nil || steps <= 0 {
			return &usageError{fmt.Sprintf("migrate down: %q is not a positive number of steps", rest[0])}
		}
		rest = rest[1:]
	}
	cfg, err := parseFlags("sluice-server migrate "+sub, rest, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(stderr, cfg)
	dbURL, stopDB, err := database(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer stopDB()
	switch sub {
	case "up":
		if err := store.Migrate(ctx, dbURL); err != nil {
			return err
		}
	case "down":
		if err := store.MigrateDown(ctx, dbURL, steps); err != nil {
			return err
		}
	case "version":
	default:
		return &usageError{fmt.Sprintf("migrate: unknown step %q: want up, down [N] or version", sub)}
	}
	v, dirty, err := store.MigrationVersion(ctx, dbURL)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "schema version %d", v)
	if dirty {
		fmt.Fprint(stdout, " (dirty: a migration failed half-way; fix the database, then run migrate again)")
	}
	fmt.Fprintln(stdout)
	return nil
}

// ExitCode maps an error returned by Run to the process's exit status: 0 for none or --help,
// 2 for bad usage, 1 for anything else.
func ExitCode(err error) int {
	var u *usageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &u):
		return 2
	}
	return 1
}
