// Package proxy is sluice-proxy: the Sluice sidecar, and with --mode gateway its ingress
// gateway. Run wires it together.
//
// The proxy is a small Envoy: it speaks xDS v3 to the control plane over one ADS stream
// (internal/xdsclient) and serves HTTP/1.1 and h2c as Envoy's HTTP connection manager with the
// router filter would. The stream delivers Listeners, RouteConfigurations, Clusters and
// ClusterLoadAssignments; each update is compiled into immutable values (internal/listener,
// internal/route, internal/cluster) and either accepted (ACK) or rejected with the reason
// (NACK), so a field the proxy does not implement is never silently ignored. The dataplane
// type applies Envoy's warming rules to what was accepted and publishes the result to each
// listener as one immutable value behind an atomic pointer: the listener's settings, its
// route table and the set of clusters those routes lead to. A request loads that pointer once
// and so sees one consistent version of all three; no lock is on the request path.
//
// In sidecar mode the control plane sends the outbound listener <address>:15001, which routes
// by authority to the mesh's clusters (the application uses it as HTTP_PROXY, or by Host),
// and one inbound listener per --inbound port, which forwards to the application's own port.
// Those sockets, and the admin server's <address>:15000, are bound before anything else, so
// a port conflict stops the proxy at start with a message naming the holder. In gateway mode
// only the admin socket is bound at start and the listeners are whatever LDS says.
//
// Upstream requests go through pooled keep-alive transports (internal/cluster), HTTP/1.1 or
// h2c as the cluster says, to an endpoint chosen by the cluster's balancer. Failures are
// answered locally with Envoy's status codes and an x-sluice-reason header saying why in
// words; each local reply counts its Envoy response flag (NR, UH, UO, FI, ...) in /stats and
// is logged with it at debug level.
//
// # Envoy features
//
// Besides matching, weighted splits, timeouts, rewrites, redirects and direct responses, the
// proxy implements these Envoy features, configured exactly as Istio's pilot writes them:
//
//   - Header manipulation: request_headers_to_add/remove and response_headers_to_add/remove
//     on the RouteConfiguration, VirtualHost, Route and WeightedCluster.ClusterWeight, with
//     every append_action, the deprecated append, keep_empty_value and
//     most_specific_header_mutations_wins. Values are literals ("%%" for "%"); Envoy's
//     %COMMAND% substitutions are rejected.
//   - RouteAction.regex_rewrite (RE2, \N groups), beside prefix_rewrite.
//   - RouteAction.request_mirror_policies: cluster, runtime_fraction.default_value,
//     disable_shadow_host_suffix_append (trace_sampled is accepted and unused). Copies go
//     with Envoy's "-shadow" host suffix, on their own goroutines, at most 128 in flight;
//     a request body is copied only when it fits in 64 KiB.
//   - The CORS filter, envoy.filters.http.cors in the HCM chain, with CorsPolicy from
//     typed_per_filter_config["envoy.filters.http.cors"] of the route or virtual host.
//   - The fault filter, envoy.filters.http.fault in the HCM chain (its own HTTPFault applies
//     to routes without one), with HTTPFault from
//     typed_per_filter_config["envoy.filters.http.fault"]: delay.fixed_delay, abort.http_status
//     or abort.grpc_status, their percentages, and headers. Flags DI and FI.
//   - RouteAction.retry_policy (and VirtualHost.retry_policy): retry_on 5xx, gateway-error,
//     reset, connect-failure, refused-stream, retriable-4xx, retriable-status-codes,
//     envoy-ratelimited and the gRPC cancelled, deadline-exceeded, internal,
//     resource-exhausted, unavailable; num_retries, per_try_timeout, retriable_status_codes,
//     the previous_hosts retry host predicate, host_selection_retry_max_attempts,
//     retry_back_off. A body is resent only when it fits in 64 KiB; see the listener's
//     forward for what is never retried. x-envoy-attempt-count with
//     include_request_attempt_count.
//   - Cluster circuit_breakers (the DEFAULT priority's max_connections,
//     max_pending_requests, max_requests, max_retries; Envoy's defaults 1024/1024/1024/3 when
//     unset), counted per proxy per cluster: overflow answers 503 with
//     x-envoy-overloaded: true, flag UO. HttpProtocolOptions.common_http_protocol_options
//     idle_timeout and max_requests_per_connection (HTTP/1.1 upstreams).
//   - Cluster outlier_detection: consecutive_5xx, consecutive_gateway_failure, interval,
//     base_ejection_time (times the ejection count), max_ejection_time, max_ejection_percent,
//     always_eject_one_host, max_ejection_time_jitter, the enforcing_* of both; success-rate
//     detection must be off (enforcing_success_rate 0, as Istio sends it). And
//     common_lb_config.healthy_panic_threshold with Envoy's panic mode (50% by default):
//     below it the cluster balances over all its endpoints; with none usable, 503 "no
//     healthy upstream", flag UH. Ejections show in /stats, /clusters and /config_dump.
//   - lb_policy RING_HASH (ring_hash_lb_config minimum_ring_size, maximum_ring_size, XX_HASH)
//     and MAGLEV (maglev_lb_config.table_size), keyed by RouteAction.hash_policy: header,
//     cookie (with ttl: made when absent, and set on the answer), connection_properties
//     source_ip, query_parameter, terminal. Keys are xxHash64, as in Envoy. The ring gives
//     each endpoint points by weight alone, so a joining endpoint moves only ~1/N of the keys,
//     all to itself (Envoy's ring also moves keys between the others).
//
// Anything else is NACKed with its field path: see the Supported lists of internal/route,
// internal/listener and internal/cluster.
//
// # Telemetry
//
// Every request a listener handles is recorded (internal/telemetry) with Istio's metric and
// label names, off the request's path: the outbound listener and a gateway's listeners report
// as "source", inbound listeners as "destination" (see listener.Telemetry for where each label
// comes from, and meta.TelemetryWorkload for the workload names). The metrics are served at
// <address>:15090/stats/prometheus (--prometheus-port; 0 turns it off) and on the admin port,
// and a telemetry.Pusher streams them each second, with sampled access logs, to the control
// plane's xDS address over Envoy's MetricsService and AccessLogService on a gRPC connection of
// its own (shared with the certificate requests, and dialled with the xDS client's
// credentials); it reconnects with backoff up to 15 s, and while the server is unreachable nothing
// waits (counters are cumulative, so the next report carries what was missed; access-log
// entries wait in a bounded queue that drops its oldest). A drain sends one last report after
// the listeners have finished. --telemetry false records nothing.
//
// # Control plane security and identity
//
// With --token-file (and --ca-root-file) every connection to the control plane is TLS,
// verified against the trust bundle, and every call carries the workload token as
// "authorization: Bearer slcw_…"; the node metadata's namespace and service account must be
// the token's. An internal/identity Manager then obtains the workload's certificate
// (spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>, from a fresh ECDSA P-256
// key) through Istio's certificate service on the same credentials, and renews it at about
// half its life; /certs on the admin port shows it, and the proxy is not ready before it holds
// one. A refusal by the control plane (token unknown, expired or revoked; identity not the
// token's; a TLS handshake that fails) is logged once with what to fix, and every client then
// retries only every 15 s. Without --token-file the proxy dials plaintext, which only a
// control plane started with --insecure-xds answers, and warns once at start.
//
// On SIGINT or SIGTERM (or when Run's context ends, or on POST /drain) the proxy drains: it
// tells the control plane first (DRAINING=true in its node metadata, so the server removes
// its endpoints everywhere at once), then stops accepting connections, waits up to
// --drain-timeout for requests in flight, closes the xDS stream and returns nil.
package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"golang.org/x/sync/errgroup"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/proxy/internal/admin"
	"github.com/sluicemesh/sluice/proxy/internal/cluster"
	"github.com/sluicemesh/sluice/proxy/internal/health"
	"github.com/sluicemesh/sluice/proxy/internal/identity"
	"github.com/sluicemesh/sluice/proxy/internal/listener"
	"github.com/sluicemesh/sluice/proxy/internal/telemetry"
	"github.com/sluicemesh/sluice/proxy/internal/xdsclient"
)

// Run runs sluice-proxy with the command line args (without the program name) and the
// environment getenv until SIGINT or SIGTERM, or until ctx ends, then drains and returns nil.
// A bad command line or a port in use returns an error of one line saying what to change.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	o, err := parseOptions(args, getenv, stdout)
	if errors.Is(err, errHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: o.logLevel}))
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	p, err := newProxy(o, log)
	if err != nil {
		return err
	}
	// The collector's settings are the process's: sluice-proxy is the only thing running in
	// it.
	o.gc.apply()
	return p.run(ctx)
}

// proxy is one running sluice-proxy.
type proxy struct {
	o         *options
	log       *slog.Logger
	node      *corev3.Node
	stats     listener.Stats
	pools     cluster.Pools
	listeners *listener.Manager
	dp        *dataplane
	xds       *xdsclient.Client
	adminLn   net.Listener
	// rec records every request the listeners handle; promLn serves it to Prometheus (nil
	// with --prometheus-port 0) and pusher streams it to the control plane over telemetryConn.
	rec           *telemetry.Recorder
	promLn        net.Listener
	telemetryConn *grpc.ClientConn
	pusher        *telemetry.Pusher
	// creds are the control plane's credentials, the same for every connection to it;
	// refusals logs the control plane's refusals of them once for all of those.
	creds    xdsclient.Credentials
	refusals *xdsclient.Refusals
	// certs obtains and renews the workload certificate over telemetryConn; nil without
	// --token-file. identity is the identity.Source the mutual-TLS listeners and clusters
	// read on every handshake: certs, or without --token-file an identity.Static without a
	// certificate.
	certs    *identity.Manager
	identity identity.Source
	started  time.Time
	draining atomic.Bool
	drainReq chan struct{}
	health   *health.Prober // nil when the application is not probed
}

// newProxy builds the proxy and binds its sockets: the admin address and, in sidecar mode,
// the outbound and inbound listeners' addresses.
func newProxy(o *options, log *slog.Logger) (*proxy, error) {
	p := &proxy{o: o, log: log, node: buildNode(o), started: time.Now(), drainReq: make(chan struct{}, 1)}
	p.creds = o.security.credentials()
	p.refusals = xdsclient.NewRefusals(log)
	p.pools.SourceIP = net.IP(o.address.AsSlice())
	p.listeners = listener.NewManager(&p.stats, log, o.drainTimeout)
	if o.telemetry {
		p.rec = telemetry.NewRecorder(telemetry.Options{})
	}
	p.listeners.UseTelemetry(listener.Telemetry{Recorder: p.rec, Self: selfPeer(o), Service: meta.FQDN(o.service, o.namespace)})
	p.dp = newDataplane(log, &p.pools, p.listeners)
	p.xds = xdsclient.New(xdsclient.Config{Target: o.controlPlane, Node: p.node, Handler: p.dp, Log: log,
		Credentials: p.creds, Refusals: p.refusals})
	if o.health.port != 0 {
		var err error
		if p.health, err = newHealth(p, o.health, p.xds); err != nil {
			return nil, err
		}
	}

	adminAddr := p.addr(meta.AdminPort)
	ln, err := listener.Listen(adminAddr)
	if err != nil {
		return nil, p.bindError(err, "admin port", "is another sluice-proxy running with --address "+o.address.String()+"? Each workload needs its own address")
	}
	p.adminLn = ln
	if o.prometheusPort != 0 {
		if p.promLn, err = listener.Listen(p.addr(o.prometheusPort)); err != nil {
			p.closeSockets()
			return nil, p.bindError(err, "Prometheus port", "use --prometheus-port to pick another port, or 0 to turn it off")
		}
	}
	if o.mode == meta.ModeSidecar {
		reserve := func(port uint32, what, hint string) error {
			if err := p.listeners.Reserve(p.addr(port)); err != nil {
				return p.bindError(err, what, hint)
			}
			return nil
		}
		if err := reserve(meta.OutboundPort, "outbound listener", "is another sluice-proxy running with --address "+o.address.String()+"? Each workload needs its own address"); err != nil {
			p.closeSockets()
			return nil, err
		}
		for _, m := range o.inbound {
			hint := fmt.Sprintf("the application must listen on its app port %d, not on %d, and only one sluice-proxy may use --address %s", m.AppPort, m.Port, o.address)
			if err := reserve(m.Port, fmt.Sprintf("inbound port %d", m.Port), hint); err != nil {
				p.closeSockets()
				return nil, err
			}
		}
	}
	return p, nil
}

func (p *proxy) addr(port uint32) string {
	return net.JoinHostPort(p.o.address.String(), strconv.FormatUint(uint64(port), 10))
}

// bindError turns a failure to bind at start into one line that says who is in the way.
func (p *proxy) bindError(err error, what, hint string) error {
	var be *listener.BindError
	if !errors.As(err, &be) {
		return err
	}
	switch {
	case be.InUse():
		return fmt.Errorf("%s (%s); %s", be, what, hint)
	case errors.Is(be.Err, syscall.EADDRNOTAVAIL):
		return fmt.Errorf("--address %s is not an address of this machine (use a loopback address, such as 127.0.0.6)", p.o.address)
	default:
		return fmt.Errorf("%s (%s)", be, what)
	}
}

func (p *proxy) closeSockets() {
	p.adminLn.Close()
	if p.promLn != nil {
		p.promLn.Close()
	}
	_ = p.listeners.Drain(context.Background())
}

// selfPeer is this proxy's workload as telemetry labels it; see meta.TelemetryWorkload.
func selfPeer(o *options) listener.Peer {
	return listener.Peer{
		Workload:  meta.TelemetryWorkload(o.name, o.service, o.labels["version"], o.address.String()),
		Namespace: o.namespace,
		Version:   o.labels["version"],
		App:       o.labels["app"],
	}
}

// dialControlPlane opens the connection the telemetry streams and the certificate service
// share, with the same credentials as the xDS client's (gRPC connects lazily and keeps
// reconnecting; the Pusher and the identity Manager back off between attempts), and creates
// those two as the options ask.
func (p *proxy) dialControlPlane() error {
	if !p.creds.Secure() {
		// Plaintext development: an identity without a certificate, so mutual TLS stays
		// off (Certificate answers ErrNoCertificate).
		p.setIdentity(&identity.Static{Identity: p.o.security.id})
	}
	if p.rec == nil && !p.creds.Secure() {
		return nil
	}
	conn, err := xdsclient.Dial(p.o.controlPlane, p.creds)
	if err != nil {
		return fmt.Errorf("connection to the control plane %s: %w", p.o.controlPlane, err)
	}
	p.telemetryConn = conn
	if p.rec != nil {
		p.pusher = telemetry.NewPusher(p.rec, conn, p.node, telemetry.PushOptions{Log: p.log, Refused: p.refusals.Refused})
	}
	if m := p.o.security.newIdentity(identity.NewGRPCIssuer(conn), p.refusals, p.log); m != nil {
		p.certs = m
		p.setIdentity(m)
	}
	return nil
}

// setIdentity gives the workload identity to all that speaks mutual TLS: the listeners and
// the upstream pools. It runs before the xDS client starts, so before any listener or
// cluster is built from the control plane's config.
func (p *proxy) setIdentity(id identity.Source) {
	p.identity = id
	p.listeners.SetIdentity(id)
	p.pools.Identity = id
}

// ready reports whether the proxy can serve: its first complete configuration is applied
// and, with --token-file, it holds its first workload certificate, without which no mutual
// TLS handshake could succeed.
func (p *proxy) ready() bool {
	if p.certs != nil {
		select {
		case <-p.certs.Issued():
		default:
			return false
		}
	}
	return p.dp.Ready()
}

// run serves until ctx ends or a drain is asked for, then drains. An errgroup owns every
// goroutine; each ends when runCtx does.
func (p *proxy) run(ctx context.Context) error {
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelRun()
	if err := p.dialControlPlane(); err != nil {
		p.closeSockets()
		return err
	}
	if p.telemetryConn != nil {
		defer p.telemetryConn.Close()
	}
	var pushStats func() telemetry.PushStats
	if p.pusher != nil {
		pushStats = p.pusher.Stats
	}
	var identityStatus func() identity.Status
	if p.certs != nil {
		identityStatus = p.certs.Status
	}
	g, gctx := errgroup.WithContext(runCtx)

	adminSrv := &http.Server{
		Handler: admin.NewServer(admin.Deps{
			Ready:     p.ready,
			Draining:  p.draining.Load,
			XDS:       p.xds.Status,
			Warming:   p.dp.Warming,
			Listeners: p.listeners.Addresses,
			Stats:     &p.stats,
			Clusters:  p.dp.Clusters,
			Node:      p.node,
			Drain:     p.requestDrain,
			Started:   p.started,
			Telemetry: pushStats,
			Recorder:  p.rec,
			Pprof:     p.o.pprof,
			Identity:  identityStatus,
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	if p.creds.Secure() {
		p.log.Info("sluice-proxy starting", "mode", p.o.mode, "node_id", p.node.GetId(),
			"control_plane", p.o.controlPlane, "control_plane_tls", true, "spiffe_id", p.o.security.id.String(),
			"admin", p.adminLn.Addr().String())
	} else {
		p.log.Info("sluice-proxy starting", "mode", p.o.mode, "node_id", p.node.GetId(),
			"control_plane", p.o.controlPlane, "control_plane_tls", false, "admin", p.adminLn.Addr().String())
		p.log.Warn("INSECURE: no --token-file, so the proxy dials the control plane in plaintext without credentials and has no workload certificate; only sluice-server --insecure-xds answers this, for local development (give --token-file and --ca-root-file otherwise)")
	}

	g.Go(func() error {
		if err := adminSrv.Serve(p.adminLn); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("admin server: %w", err)
		}
		return nil
	})
	var promSrv *http.Server
	if p.promLn != nil {
		mux := http.NewServeMux()
		mux.Handle("/stats/prometheus", telemetry.PrometheusHandler(p.rec))
		promSrv = &http.Server{
			Handler:           mux,
			ReadHeaderTimeout: 10 * time.Second,
			ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
		}
		g.Go(func() error {
			if err := promSrv.Serve(p.promLn); !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("prometheus server: %w", err)
			}
			return nil
		})
	}
	if p.pusher != nil {
		g.Go(func() error { return p.pusher.Run(gctx) })
	}
	if p.certs != nil {
		g.Go(func() error { return p.certs.Run(gctx) })
	}
	if p.health != nil {
		// Probed once before the xDS stream opens, so that the proxy registers with its
		// application's health known and peers never route to an application not yet up.
		p.health.Init(gctx)
		g.Go(func() error { return p.health.Run(gctx) })
	}
	xdsDone := make(chan struct{})
	g.Go(func() error {
		defer close(xdsDone)
		return p.xds.Run(gctx)
	})
	g.Go(func() error { return p.dp.run(gctx) })
	g.Go(func() error {
		select {
		case <-ctx.Done():
			p.log.Info("shutting down", "reason", context.Cause(ctx))
		case <-p.drainReq:
			p.log.Info("shutting down", "reason", "drain requested on the admin server")
		case <-gctx.Done():
		}
		p.drain()
		// The requests drained are counted: send them before the streams close.
		if p.pusher != nil {
			fctx, cancelFlush := context.WithTimeout(context.Background(), time.Second)
			p.pusher.Flush(fctx)
			cancelFlush()
		}
		p.xds.Close()
		select {
		case <-xdsDone:
		case <-time.After(time.Second):
			// The server did not end the stream in time: cancel it.
		}
		cancelRun()
		sctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		if err := adminSrv.Shutdown(sctx); err != nil {
			adminSrv.Close()
		}
		if promSrv != nil {
			if err := promSrv.Shutdown(sctx); err != nil {
				promSrv.Close()
			}
		}
		return nil
	})
	err := g.Wait()
	p.pools.CloseIdle()
	if err == nil {
		p.log.Info("sluice-proxy stopped")
	}
	return err
}

func (p *proxy) requestDrain() {
	select {
	case p.drainReq <- struct{}{}:
	default:
	}
}

// drain tells the control plane, then stops accepting and waits for requests in flight.
func (p *proxy) drain() {
	p.draining.Store(true)
	if err := p.xds.Drain(); err != nil {
		p.log.Warn("could not tell the control plane about the drain; it drops this proxy when its stream's grace period ends", "error", err)
	} else {
		p.log.Info("draining: the control plane was told", "drain_delay", p.o.drainDelay, "drain_timeout", p.o.drainTimeout)
		// Peers pick this proxy until their endpoint update arrives; keep answering them
		// meanwhile rather than refusing connections they would see as failures.
		time.Sleep(p.o.drainDelay)
	}
	ctx, cancel := context.WithTimeout(context.Background(), p.o.drainTimeout)
	defer cancel()
	if err := p.listeners.Drain(ctx); err != nil {
		p.log.Warn("drain timeout passed; connections with requests in flight were closed", "drain_timeout", p.o.drainTimeout)
	}
}

// buildNode returns the xDS node: Istio's node id form and every key of internal/meta.
func buildNode(o *options) *corev3.Node {
	kind := "sidecar"
	if o.mode == meta.ModeGateway {
		kind = "router"
	}
	labels := &structpb.Struct{Fields: map[string]*structpb.Value{}}
	for k, v := range o.labels {
		labels.Fields[k] = structpb.NewStringValue(v)
	}
	str := structpb.NewStringValue
	version := "(devel)"
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		version = bi.Main.Version
	}
	return &corev3.Node{
		Id:      kind + "~" + o.address.String() + "~" + o.name + "." + o.namespace + "~" + o.namespace + ".svc." + meta.DefaultDomain,
		Cluster: o.service,
		Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
			meta.KeyNamespace:      str(o.namespace),
			meta.KeyService:        str(o.service),
			meta.KeyLabels:         structpb.NewStructValue(labels),
			meta.KeyAddress:        str(o.address.String()),
			meta.KeyInboundPorts:   str(meta.FormatInboundPorts(o.inbound)),
			meta.KeyServiceAccount: str(o.serviceAccount),
			meta.KeyWorkloadName:   str(o.name),
			meta.KeyMode:           str(o.mode),
		}},
		UserAgentName:        "sluice-proxy",
		UserAgentVersionType: &corev3.Node_UserAgentVersion{UserAgentVersion: version},
	}
}
