package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// loopback returns the n-th loopback address of this run: one per workload, so that each
// sidecar can bind the well-known ports.
func loopback(n int) string {
	return fmt.Sprintf("127.%d.%d.%d", 20+os.Getpid()%80, 200+n/250, 2+n%250)
}

// upstreamHost is the ServiceEntry host of the one-hop arms: port 80 is the HTTP upstream,
// port grpcPort the gRPC one.
const upstreamHost = "upstream.bench.example"

// Ports of the gRPC upstream (the application's) and of the mesh port in front of it.
const (
	grpcAppPort = "18090"
	grpcPort    = "9090"
)

// runDataPlane measures every arm of both protocols and fills r.DataPlane, r.Profiles and
// the reference versions.
//
// pgPids lists PostgreSQL's processes, counted with the benchmark's other processes (see
// target.rest).
func runDataPlane(ctx context.Context, log *slog.Logger, cs *children, cp *controlPlane, pgPids func() []int, proxyBin string, p plan, profDir string, r *Results) error {
	// Each protocol has its own pair of sidecars, so that each cell's peak RSS is that of
	// a sidecar carrying only its protocol.
	upAddr, calleeAddr, callerAddr := loopback(1), loopback(2), loopback(3)
	grpcCalleeAddr, grpcCallerAddr := loopback(4), loopback(5)
	up, err := startUpstream(log, upAddr+":18080", calleeAddr+":18080")
	if err != nil {
		return err
	}
	defer up.close()
	gup, err := startGRPCUpstream(log, upAddr+":"+grpcAppPort, grpcCalleeAddr+":"+grpcAppPort)
	if err != nil {
		return err
	}
	defer gup.close()

	// The sidecars join on the authenticated port with workload tokens, so they hold
	// certificates and speak mutual TLS to each other, as in a mesh.
	sidecar := func(name, addr, service string, extra ...string) (*child, error) {
		token, err := cp.workloadToken(cs.dir, service)
		if err != nil {
			return nil, err
		}
		args := append([]string{"--control-plane", cp.tlsAddr, "--token-file", token, "--ca-root-file", cp.rootFile(),
			"--namespace", "default", "--service", service,
			"--labels", "app=" + service + ",version=v1", "--address", addr, "--service-account", service,
			"--log-level", "warn"}, extra...)
		c, err := cs.start(name, true, proxyBin, args)
		if err != nil {
			return nil, err
		}
		return c, waitFor(ctx, c, 60*time.Second, name+" ready", func() error { return httpOK("http://" + addr + ":15000/ready") })
	}
	callee, err := sidecar("sidecar-callee", calleeAddr, "bench-b", "--inbound", "8080=18080")
	if err != nil {
		return err
	}
	caller, err := sidecar("sidecar-caller", callerAddr, "bench-client", "--inbound", "8080=18081", "--health-interval", "0", "--pprof", "true")
	if err != nil {
		return err
	}
	grpcCallee, err := sidecar("sidecar-grpc-callee", grpcCalleeAddr, "bench-g", "--inbound", grpcPort+"="+grpcAppPort)
	if err != nil {
		return err
	}
	grpcCaller, err := sidecar("sidecar-grpc-caller", grpcCallerAddr, "bench-grpc-client", "--inbound", "8080=18082", "--health-interval", "0", "--pprof", "true")
	if err != nil {
		return err
	}
	// The gRPC port's protocol makes the sidecar speak h2c to the upstream. The callees (each
	// with its inbound port) take only mutual TLS (STRICT), so a two-hop request that arrives
	// at all came over it.
	callees := map[string]string{"bench-b": "8080", "bench-g": grpcPort}
	var strict strings.Builder
	for svc := range callees {
		fmt.Fprintf(&strict, `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: %s-strict, namespace: default}
spec:
  selector: {matchLabels: {app: %s}}
  mtls: {mode: STRICT}
---
`, svc, svc)
	}
	rev, err := cp.write("POST", "/api/v1/apply", "application/yaml", strict.String()+fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bench-upstream, namespace: default}
spec:
  hosts: [%s]
  location: MESH_EXTERNAL
  ports:
  - {number: 80, name: http, protocol: HTTP, targetPort: 18080}
  - {number: %s, name: grpc, protocol: GRPC, targetPort: %s}
  resolution: STATIC
  endpoints: [{address: %s}]
`, upstreamHost, grpcPort, grpcAppPort, upAddr))
	if err != nil {
		return fmt.Errorf("apply the upstream's ServiceEntry and the callees' PeerAuthentications: %w", err)
	}
	if _, err := cp.waitApplied(ctx, rev, 4, 50*time.Millisecond); err != nil {
		return err
	}
	for svc, port := range callees {
		if err := waitFor(ctx, nil, 30*time.Second, svc+" STRICT", func() error { return cp.strictMTLS(svc, port) }); err != nil {
			return err
		}
	}

	pidsOf := func(cs ...*child) func() []int {
		return func() []int {
			var pids []int
			for _, c := range cs {
				pids = append(pids, c.pid())
			}
			return pids
		}
	}
	none := func() []int { return nil }
	// Each arm's requests must reach the upstream on the address its last hop connects to:
	// the callee's application address only the callee's sidecar forwards to.
	httpUp, grpcUp := upAddr+":18080", upAddr+":"+grpcAppPort
	targets := []target{
		{arm: armDirect, protocol: protoHTTP1, url: "http://" + httpUp + "/", via: httpUp, pids: none},
		{arm: armSluice1, protocol: protoHTTP1, url: "http://" + callerAddr + ":15001/", host: upstreamHost, via: httpUp, pids: pidsOf(caller)},
		{arm: armSluice2, protocol: protoHTTP1, url: "http://" + callerAddr + ":15001/", host: "bench-b:8080", via: calleeAddr + ":18080", pids: pidsOf(caller, callee)},
	}
	grpcTargets := []target{
		{arm: armDirect, protocol: protoGRPC, url: grpcUp, via: grpcUp, pids: none},
		{arm: armSluice1, protocol: protoGRPC, url: grpcCallerAddr + ":15001", host: upstreamHost + ":" + grpcPort, via: grpcUp, pids: pidsOf(grpcCaller)},
		{arm: armSluice2, protocol: protoGRPC, url: grpcCallerAddr + ":15001", host: "bench-g:" + grpcPort, via: grpcCalleeAddr + ":" + grpcAppPort, pids: pidsOf(grpcCaller, grpcCallee)},
	}
	for _, t := range append(slices.Clone(targets), grpcTargets...) {
		if err := waitFor(ctx, nil, 30*time.Second, "route of "+t.name(), func() error { return checkTarget(ctx, t) }); err != nil {
			return err
		}
	}
	r.DataPlane.Skipped = map[string]string{}
	for _, proto := range protocols {
		upstream := httpUp
		if proto == protoGRPC {
			upstream = grpcUp
		}
		for _, name := range []string{armNginx, armHAProxy} {
			listen, err := freePort("127.0.0.1")
			if err != nil {
				return err
			}
			t := target{arm: name, protocol: proto, via: upstream}
			if proto == protoGRPC {
				t.url = "127.0.0.1:" + listen
			} else {
				t.url = "http://127.0.0.1:" + listen + "/"
			}
			ref, err := startReference(ctx, log, cs, name, proto, "127.0.0.1:"+listen, upstream, func() error { return checkTarget(ctx, t) })
			if errors.Is(err, errSkipped) {
				log.Warn("reference arm skipped", "arm", t.name(), "reason", err)
				r.DataPlane.Skipped[t.name()] = err.Error()
				continue
			}
			if err != nil {
				return err
			}
			if name == armNginx {
				r.Machine.Nginx = ref.version
			} else {
				r.Machine.HAProxy = ref.version
			}
			pid := ref.proc.pid()
			t.pids = func() []int { return withChildren(pid) }
			if proto == protoGRPC {
				grpcTargets = append(grpcTargets, t)
			} else {
				targets = append(targets, t)
			}
		}
	}

	d := &r.DataPlane
	d.Protocols = map[string]string{
		protoHTTP1: "HTTP/1.1 GET, keep-alive, one request in flight per connection; the upstream answers 1 KiB",
		protoGRPC: "gRPC unary calls over h2c (HTTP/2 without TLS, by prior knowledge), one connection per load thread and one call in flight on it; " +
			"fortio's ping service, the request empty, the upstream answering a 1 KiB payload",
	}
	d.Rates, d.Connections = p.rates, p.conns
	d.DurationS, d.WarmupS, d.Repetitions = p.duration.Seconds(), p.warm.Seconds(), p.reps
	all := append(slices.Clone(targets), grpcTargets...)
	rest := func() []int { return append(cs.pids(), pgPids()...) }
	for _, ts := range [][]target{targets, grpcTargets, all} {
		for i := range ts {
			ts[i].rest = rest
		}
	}
	log.Debug("the benchmark's other processes", "pids", rest())
	log.Info("data plane: interleaved matrix", "arms", len(all), "rates", p.rates, "conns", p.conns, "reps", p.reps, "duration", p.duration)
	samples, err := matrix(ctx, log, all, p.rates, p.conns, p.reps, p.warm, p.duration)
	if err != nil {
		return err
	}
	d.Cells = aggregate(samples, p.rates, p.conns)

	for _, ts := range [][]target{targets, grpcTargets} {
		directP99 := directP99Of(ctx, ts[0], lowLatencyConns, p.maxRateDur)
		for _, t := range ts {
			if !maxRateArm(t, p) {
				continue
			}
			run := func(rate, conns int) (sample, error) { return measured(ctx, t, rate, conns, p.maxRateDur) }
			m, err := maxRate(log, t, p, run, directP99)
			if err != nil {
				return err
			}
			d.MaxRate = append(d.MaxRate, m)
		}
	}

	for _, pr := range []struct {
		t     target
		admin string
		into  *Profiles
	}{{targets[1], callerAddr, &r.Profiles}, {grpcTargets[1], grpcCallerAddr, &r.GRPCProfiles}} {
		prof, err := profile(ctx, log, pr.t, pr.admin, profDir, p.profileDur)
		if root, err := moduleRoot(); err == nil {
			for _, f := range []*string{&prof.CPUFile, &prof.HeapFile} {
				if rel, err := filepath.Rel(root, *f); err == nil && !strings.HasPrefix(rel, "..") {
					*f = rel
				}
			}
		}
		if err != nil {
			return err
		}
		*pr.into = prof
	}

	const lagRate, lagConns = 1000, 4
	lagDur := max(p.duration, 2*time.Second)
	log.Info("live stream: tap lag", "rps", lagRate, "duration", lagDur)
	lags, err := tapLag(ctx, cp, "bench-b", func() error {
		_, err := runLoad(ctx, targets[2], lagRate, lagConns, lagDur)
		return err
	})
	if err != nil {
		return err
	}
	t := &r.Telemetry
	t.LiveStreamLag = fmt.Sprintf("tap of service bench-b on GET /api/v1/live while %d rps go through two sidecars for %v: "+
		"from each request's time (as its sidecar logged it) to its entry's arrival; sidecars push once a second, the tap sends every 250 ms about 100 entries a second, a uniform sample of those that arrived since its last message", lagRate, lagDur)
	t.LiveLagEntries = len(lags)
	t.LiveLagP50, t.LiveLagP99, t.LiveLagMax = round(percentile(lags, 50), 1), round(percentile(lags, 99), 1), round(percentile(lags, 100), 1)
	for _, c := range []*child{caller, callee, grpcCaller, grpcCallee} {
		c.stop(15 * time.Second)
	}
	return nil
}

// The connection counts of the max-rate searches: throughput over as many as the matrix's
// busiest cells, p99 under 1 ms over as few (maxRate says why).
const throughputConns, lowLatencyConns = 16, 4

// maxRateArm says whether t gets a max-rate search: every proxy of one hop over HTTP/1.1;
// over gRPC only the Sluice sidecar, and only in a full run (quick mode's three minutes have
// no room for more).
func maxRateArm(t target, p plan) bool {
	if t.arm == armDirect || t.arm == armSluice2 {
		return false
	}
	return t.protocol == protoHTTP1 || (t.arm == armSluice1 && !p.quick)
}

// directP99Of returns the p99 of direct (the direct arm) at a rate, measuring each rate once.
func directP99Of(ctx context.Context, direct target, conns int, d time.Duration) func(rate int) (float64, error) {
	seen := map[int]float64{}
	return func(rate int) (float64, error) {
		if v, ok := seen[rate]; ok {
			return v, nil
		}
		r, err := runLoad(ctx, direct, rate, conns, d)
		if err != nil {
			return 0, err
		}
		seen[rate] = r.Latency.P99
		return r.Latency.P99, nil
	}
}

// checkTarget checks t's route with its protocol.
func checkTarget(ctx context.Context, t target) error {
	if t.protocol == protoGRPC {
		return checkGRPCRoute(ctx, t)
	}
	return checkRoute(t)
}

// profile keeps the CPU profile of t's sidecar under 5,000 rps and its allocation profile,
// and reads their top entries. The gRPC sidecar's files are named sidecar-grpc-*.
func profile(ctx context.Context, log *slog.Logger, t target, adminAddr, dir string, d time.Duration) (Profiles, error) {
	const rate, conns = 5000, 16
	prefix := "sidecar-"
	if t.protocol == protoGRPC {
		prefix = "sidecar-grpc-"
	}
	p := Profiles{
		Load: fmt.Sprintf("One %s sidecar hop (`%s`) at %d rps over %d connections for %v; the allocation profile covers the sidecar's whole run, in which it carried only %s",
			protocolName(t.protocol), t.arm, rate, conns, d, protocolName(t.protocol)),
		CPUFile:  filepath.Join(dir, prefix+"cpu.pprof"),
		HeapFile: filepath.Join(dir, prefix+"allocs.pprof"),
	}
	log.Info("profiling the sidecar", "protocol", t.protocol, "duration", d)
	errc := make(chan error, 1)
	go func() {
		errc <- fetch(ctx, "http://"+adminAddr+":15000/debug/pprof/profile?seconds="+strconv.Itoa(int(d.Seconds())), p.CPUFile)
	}()
	if _, err := runLoad(ctx, t, rate, conns, d+500*time.Millisecond); err != nil {
		<-errc
		return p, err
	}
	if err := <-errc; err != nil {
		return p, err
	}
	if err := fetch(ctx, "http://"+adminAddr+":15000/debug/pprof/allocs", p.HeapFile); err != nil {
		return p, err
	}
	top := func(file string, extra ...string) ([]ProfileEntry, error) {
		args := append([]string{"tool", "pprof", "-top", "-nodecount=12"}, extra...)
		out, err := exec.CommandContext(ctx, "go", append(args, file)...).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("go tool pprof %s: %w: %s", file, err, lastLines(string(out), 3))
		}
		return parsePprofTop(string(out)), nil
	}
	var err error
	if p.TopCPU, err = top(p.CPUFile); err != nil {
		return p, err
	}
	if p.TopAlloc, err = top(p.HeapFile, "-sample_index=alloc_space"); err != nil {
		return p, err
	}
	return p, nil
}

// runIntake runs the telemetry intake benchmark (its own simulated sidecars and PostgreSQL)
// and reads its figures.
func runIntake(ctx context.Context, log *slog.Logger, root string, intervals int, t *Telemetry) error {
	args := []string{"test", "-run", "^$", "-bench", "^BenchmarkIntake$", "-benchtime", strconv.Itoa(intervals) + "x", "-count", "1", "./server/internal/telemetry/intake/"}
	t.Command, t.Sidecars, t.Intervals = "go "+joinArgs(args), 1000, intervals
	log.Info("telemetry: intake benchmark", "intervals", intervals)
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w\n%s", t.Command, err, lastLines(string(out), 20))
	}
	m, err := parseBenchMetrics(string(out), "BenchmarkIntake")
	if err != nil {
		return err
	}
	t.ServerCPUMsPerS = round(m["server-cpu-ms/interval"], 1)
	t.SidecarsCPUMsPerS = round(m["sidecars-cpu-ms/interval"], 1)
	t.RowsPerS = round(m["rows/s"], 0)
	t.ServerCoreFraction = round(t.ServerCPUMsPerS/1000, 3)
	return nil
}

// joinArgs quotes the arguments that need it for a shell.
func joinArgs(args []string) string {
	s := ""
	for i, a := range args {
		if i > 0 {
			s += " "
		}
		if a == "" || containsAny(a, " ^$*") {
			a = "'" + a + "'"
		}
		s += a
	}
	return s
}

func containsAny(s, chars string) bool {
	for _, c := range chars {
		for _, d := range s {
			if c == d {
				return true
			}
		}
	}
	return false
}
