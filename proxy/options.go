package proxy

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/proxy/internal/health"
)

// options is sluice-proxy's command line, decoded, provisioned and validated.
type options struct {
	controlPlane   string
	namespace      string
	service        string
	labels         map[string]string
	address        netip.Addr
	inbound        []meta.PortMapping
	serviceAccount string
	mode           string
	name           string
	drainTimeout   time.Duration
	drainDelay     time.Duration
	logLevel       slog.Level
	// prometheusPort is the port of /stats/prometheus on the workload's address; 0 serves
	// none.
	prometheusPort uint32
	// telemetry says whether requests are recorded (and so served to Prometheus and pushed
	// to the control plane).
	telemetry bool
	// health is the probe of the application.
	health healthOptions
	// pprof serves Go's profiles at /debug/pprof/ on the admin port.
	pprof bool
	// security is the control plane's credentials and the workload's identity.
	security securityOptions
	// gc is how the Go garbage collector runs in this process.
	gc gcOptions
}

// errHelp is returned by parseOptions when the usage was asked for and printed.
var errHelp = errors.New("help requested")

// inboundFlag collects repeated --inbound values.
type inboundFlag []string

func (f *inboundFlag) String() string { return strings.Join(*f, ",") }
func (f *inboundFlag) Set(v string) error {
	*f = append(*f, v)
	return nil
}

// flagDocs describes each flag, in the order --help lists them.
var flagDocs = []struct{ name, usage string }{
	{"control-plane", "the control plane's xDS address, HOST:PORT: its authenticated TLS port with --token-file (such as 127.0.0.1:15012), else its plaintext --insecure-xds port (such as 127.0.0.1:15010)"},
	{"token-file", "a file holding the workload token (slcw_…, from sluicectl token create workload --namespace NS --service-account SA): the proxy then dials the control plane over TLS, sends the token on every call and obtains its certificate from the mesh CA. Without it the proxy dials plaintext, for local development only"},
	{"ca-root-file", "the mesh's root certificate in PEM (GET http://<server>/api/v1/ca/root, or the server's <data-dir>/root-cert.pem): verifies the control plane's TLS certificate; required with --token-file"},
	{"trust-domain", "the mesh's SPIFFE trust domain, as the control plane's --trust-domain; the workload's identity is spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>"},
	{"namespace", "the workload's namespace"},
	{"service", "the service this workload serves (gateway: defaults to istio-ingressgateway)"},
	{"labels", "the workload's labels, k=v,k=v (version selects its subset)"},
	{"address", "the workload's own IP address, which every listener binds (such as 127.0.0.6)"},
	{"inbound", "an inbound port, PORT=APPPORT: the proxy listens on PORT and forwards to the app on APPPORT; repeatable"},
	{"service-account", "the workload's service account"},
	{"mode", "sidecar or gateway"},
	{"name", "the workload's name (default <service>-<version label or v1>-<address>)"},
	{"drain-timeout", "how long a graceful shutdown waits for requests in flight"},
	{"drain-delay", "how long a draining proxy keeps accepting requests after telling the control plane, so that its peers stop choosing it first"},
	{"log-level", "debug, info, warn or error"},
	{"prometheus-port", "the port on --address that serves Istio's request metrics at /stats/prometheus; 0 turns it off"},
	{"telemetry", "record request metrics, serve them to Prometheus and stream them to the control plane each second (true or false)"},
	{"health-path", "the application's readiness path, probed with an HTTP GET that must answer 2xx or 3xx; empty probes with a TCP connect"},
	{"health-port", "the application port probed (default the first --inbound's APPPORT)"},
	{"health-interval", "the time between probes of the application; 0 stops probing. A not-ready application gets no traffic from the mesh"},
	{"gc-percent", "the Go garbage collector's GOGC: how far the heap may grow over what is live before a collection, in percent, or off (then --memory-limit alone starts collections). Higher collects less often for more memory: at 5,000 requests a second, 800 with --memory-limit 20MiB halves the collections for 3 to 6 MB more RSS. A GOGC environment variable wins over the default"},
	{"memory-limit", "a soft limit on the Go runtime's memory (heap, stacks and GC metadata; not the binary's mapped code), such as 64MiB or 1GiB, or off: the collector then runs as often as it must to stay under it, whatever --gc-percent allows. Keep it well above the proxy's live heap, which grows with the mesh's config, or the proxy spends its CPU collecting. A GOMEMLIMIT environment variable wins over the default"},
	{"pprof", "serve Go's CPU, heap and allocation profiles at /debug/pprof/ on the admin port, for benchmarks and debugging (true or false)"},
}

// envName returns the environment variable a flag may also come from: SLUICE_CONTROL_PLANE.
func envName(flagName string) string {
	return "SLUICE_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseOptions decodes args (flags win) and the SLUICE_* environment, provisions defaults
// and validates. Its errors are one line that names the flag and says what to change.
func parseOptions(args []string, getenv func(string) string, stdout io.Writer) (*options, error) {
	fs := flag.NewFlagSet("sluice-proxy", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var (
		controlPlane, namespace, service, labels, address  = new(string), new(string), new(string), new(string), new(string)
		serviceAccount, mode, name, drainTimeout, logLevel = new(string), new(string), new(string), new(string), new(string)
		drainDelay, prometheusPort, telemetry              = new(string), new(string), new(string)
		healthPath, healthPort, healthInterval             = new(string), new(string), new(string)
		pprof, gcPercent, memoryLimit                      = new(string), new(string), new(string)
		tokenFile, caRootFile, trustDomain                 = new(string), new(string), new(string)
		inbound                                            inboundFlag
	)
	fs.StringVar(controlPlane, "control-plane", "", "")
	fs.StringVar(namespace, "namespace", "default", "")
	fs.StringVar(service, "service", "", "")
	fs.StringVar(labels, "labels", "", "")
	fs.StringVar(address, "address", "", "")
	fs.Var(&inbound, "inbound", "")
	fs.StringVar(serviceAccount, "service-account", "", "")
	fs.StringVar(mode, "mode", meta.ModeSidecar, "")
	fs.StringVar(name, "name", "", "")
	fs.StringVar(drainTimeout, "drain-timeout", "5s", "")
	fs.StringVar(drainDelay, "drain-delay", "1s", "")
	fs.StringVar(logLevel, "log-level", "info", "")
	fs.StringVar(healthPath, "health-path", "", "")
	fs.StringVar(healthPort, "health-port", "", "")
	fs.StringVar(healthInterval, "health-interval", health.DefaultInterval.String(), "")
	fs.StringVar(prometheusPort, "prometheus-port", strconv.Itoa(meta.PrometheusPort), "")
	fs.StringVar(telemetry, "telemetry", "true", "")
	fs.StringVar(pprof, "pprof", "false", "")
	fs.StringVar(gcPercent, "gc-percent", strconv.Itoa(defaultGCPercent), "")
	fs.StringVar(memoryLimit, "memory-limit", formatBytes(defaultMemoryLimit), "")
	fs.StringVar(tokenFile, "token-file", "", "")
	fs.StringVar(caRootFile, "ca-root-file", "", "")
	fs.StringVar(trustDomain, "trust-domain", "cluster.local", "")
	for _, d := range flagDocs {
		fs.Lookup(d.name).Usage = d.usage
	}

	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printUsage(stdout, fs)
			return nil, errHelp
		}
		msg := err.Error()
		if f, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
			return nil, fmt.Errorf("unknown flag -%s (see sluice-proxy --help)", f)
		}
		if f, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
			return nil, fmt.Errorf("flag %s needs a value (see sluice-proxy --help)", f)
		}
		return nil, fmt.Errorf("%s (see sluice-proxy --help)", msg)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q: sluice-proxy takes only flags (see sluice-proxy --help)", fs.Arg(0))
	}

	// Flags given on the command line win; the rest may come from SLUICE_<FLAG>.
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for _, d := range flagDocs {
		v := getenv(envName(d.name))
		if set[d.name] || v == "" {
			continue
		}
		if d.name == "inbound" {
			for _, part := range strings.Split(v, ",") {
				inbound = append(inbound, strings.TrimSpace(part))
			}
			continue
		}
		_ = fs.Set(d.name, v) // string flags accept any value
	}

	o := &options{controlPlane: *controlPlane, namespace: *namespace, service: *service,
		serviceAccount: *serviceAccount, mode: *mode, name: *name}

	switch o.mode {
	case meta.ModeSidecar, meta.ModeGateway:
	default:
		return nil, fmt.Errorf("--mode %q is not sidecar or gateway", o.mode)
	}
	if o.controlPlane == "" {
		return nil, errors.New("--control-plane is required (the control plane's xDS address, such as 127.0.0.1:15010; or set SLUICE_CONTROL_PLANE)")
	}
	if host, port, err := net.SplitHostPort(o.controlPlane); err != nil || host == "" || !isPort(port) {
		return nil, fmt.Errorf("--control-plane %q is not HOST:PORT (such as 127.0.0.1:15010)", o.controlPlane)
	}
	if *address == "" {
		return nil, errors.New("--address is required (the workload's own loopback address, such as 127.0.0.6; or set SLUICE_ADDRESS)")
	}
	ip, err := netip.ParseAddr(*address)
	if err != nil || ip.Zone() != "" {
		return nil, fmt.Errorf("--address %q is not an IP address (use the workload's own loopback address, such as 127.0.0.6)", *address)
	}
	if ip.IsUnspecified() {
		return nil, fmt.Errorf("--address %s would listen on every interface (use the workload's own loopback address, such as 127.0.0.6)", *address)
	}
	o.address = ip.Unmap()
	if o.namespace == "" {
		return nil, errors.New("--namespace is empty (use the workload's namespace, such as default)")
	}
	if o.labels, err = meta.ParseLabels(*labels); err != nil {
		return nil, fmt.Errorf("--labels %q: %w", *labels, err)
	}
	if o.mode == meta.ModeGateway {
		if len(inbound) > 0 {
			return nil, errors.New("--inbound is not used in gateway mode (a gateway binds the ports its Gateways name; drop --inbound or use --mode sidecar)")
		}
		if o.service == "" {
			// Istio's ingress gateway service: Gateways select it by default.
			o.service = "istio-ingressgateway"
		}
	}
	if o.service == "" {
		return nil, errors.New("--service is required in sidecar mode (the service this workload serves, such as reviews)")
	}
	promPort, err := strconv.ParseUint(*prometheusPort, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("--prometheus-port %q is not a port number (use 1-65535, or 0 to turn the Prometheus endpoint off)", *prometheusPort)
	}
	o.prometheusPort = uint32(promPort)
	if o.pprof, err = strconv.ParseBool(*pprof); err != nil {
		return nil, fmt.Errorf("--pprof %q is not true or false", *pprof)
	}
	if o.telemetry, err = strconv.ParseBool(*telemetry); err != nil {
		return nil, fmt.Errorf("--telemetry %q is not true or false", *telemetry)
	}
	if !o.telemetry {
		o.prometheusPort = 0 // nothing is recorded, so there is nothing to serve
	}
	switch o.prometheusPort {
	case meta.AdminPort, meta.OutboundPort:
		return nil, fmt.Errorf("--prometheus-port %d is already the admin port or the outbound listener (pick another port, such as %d)", o.prometheusPort, meta.PrometheusPort)
	}
	seen := map[uint32]string{
		meta.AdminPort:    "the admin port",
		meta.OutboundPort: "the outbound listener",
	}
	if o.prometheusPort != 0 {
		seen[o.prometheusPort] = "the Prometheus port"
	}
	for _, v := range inbound {
		m, err := meta.ParsePortMapping(v)
		if err != nil {
			return nil, fmt.Errorf("--inbound %q: %w", v, err)
		}
		for _, p := range []uint32{m.Port, m.AppPort} {
			if what, dup := seen[p]; dup {
				return nil, fmt.Errorf("--inbound %q: port %d is already %s on %s (pick another port)", v, p, what, o.address)
			}
			seen[p] = "used by --inbound " + v
		}
		o.inbound = append(o.inbound, m)
	}
	if o.drainTimeout, err = time.ParseDuration(*drainTimeout); err != nil || o.drainTimeout < 0 {
		return nil, fmt.Errorf("--drain-timeout %q is not a duration (such as 5s)", *drainTimeout)
	}
	if o.drainDelay, err = time.ParseDuration(*drainDelay); err != nil || o.drainDelay < 0 {
		return nil, fmt.Errorf("--drain-delay %q is not a duration (such as 1s)", *drainDelay)
	}
	if err := o.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level %q is not debug, info, warn or error", *logLevel)
	}
	if o.health, err = parseHealthOptions(o, *healthPath, *healthPort, *healthInterval); err != nil {
		return nil, err
	}
	if o.security, err = parseSecurityOptions(o, *tokenFile, *caRootFile, *trustDomain); err != nil {
		return nil, err
	}
	if o.gc, err = parseGCOptions(*gcPercent, *memoryLimit, set["gc-percent"] || getenv(envName("gc-percent")) != "",
		set["memory-limit"] || getenv(envName("memory-limit")) != "", getenv); err != nil {
		return nil, err
	}
	if o.name == "" {
		o.name = meta.DefaultInstanceName(o.service, o.labels["version"], o.address.String())
	}
	return o, nil
}

func isPort(s string) bool {
	n, err := strconv.ParseUint(s, 10, 16)
	return err == nil && n > 0
}

func printUsage(w io.Writer, fs *flag.FlagSet) {
	fmt.Fprintln(w, "usage: sluice-proxy --control-plane HOST:PORT --address IP --service NAME [flags]")
	fmt.Fprintln(w, "\nsluice-proxy is the Sluice sidecar (or, with --mode gateway, ingress gateway).")
	fmt.Fprintln(w, "Every flag can also be set with SLUICE_<FLAG>, such as SLUICE_CONTROL_PLANE; flags win.")
	fmt.Fprintln(w, "\nWith --token-file and --ca-root-file the proxy speaks to the control plane's authenticated")
	fmt.Fprintln(w, "port (TLS, :15012) with its workload token, and obtains and renews its own certificate,")
	fmt.Fprintln(w, "spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>; --namespace and --service-account")
	fmt.Fprintln(w, "must be the token's. Without --token-file it dials plaintext, which only a control plane")
	fmt.Fprintln(w, "started with --insecure-xds answers: for local development only.")
	fmt.Fprintln(w, "\nflags:")
	for _, d := range flagDocs {
		f := fs.Lookup(d.name)
		def := ""
		if f.DefValue != "" {
			def = " (default " + f.DefValue + ")"
		}
		fmt.Fprintf(w, "  --%s\n        %s%s\n", d.name, d.usage, def)
	}
}
