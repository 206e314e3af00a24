package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// loopback returns the n-th loopback address of this run: one per workload, so that each
// sidecar can bind the well-known ports.
func loopback(n int) string {
	return fmt.Sprintf("127.%d.%d.%d", 20+os.Getpid()%80, 200+n/250, 2+n%250)
}

// upstreamHost is the ServiceEntry host of the one-hop arm.
const upstreamHost = "upstream.bench.example"

// runDataPlane measures every arm and fills r.DataPlane, r.Profiles and the reference
// versions.
func runDataPlane(ctx context.Context, log *slog.Logger, cs *children, cp *controlPlane, proxyBin string, p plan, profDir string, r *Results) error {
	upAddr, calleeAddr, callerAddr := loopback(1), loopback(2), loopback(3)
	up, err := startUpstream(log, upAddr+":18080", calleeAddr+":18080")
	if err != nil {
		return err
	}
	defer up.close()

	sidecar := func(name, addr, service string, extra ...string) (*child, error) {
		args := append([]string{"--control-plane", cp.xdsAddr, "--namespace", "default", "--service", service,
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
	rev, err := cp.write("POST", "/api/v1/apply", "application/yaml", fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bench-upstream, namespace: default}
spec:
  hosts: [%s]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 18080}]
  resolution: STATIC
  endpoints: [{address: %s}]
`, upstreamHost, upAddr))
	if err != nil {
		return fmt.Errorf("apply the upstream's ServiceEntry: %w", err)
	}
	if _, err := cp.waitApplied(ctx, rev, 2, 50*time.Millisecond); err != nil {
		return err
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
	targets := []target{
		{arm: armDirect, url: "http://" + upAddr + ":18080/", pids: func() []int { return nil }},
		{arm: armSluice1, url: "http://" + callerAddr + ":15001/", host: upstreamHost, pids: pidsOf(caller)},
		{arm: armSluice2, url: "http://" + callerAddr + ":15001/", host: "bench-b:8080", pids: pidsOf(caller, callee)},
	}
	for _, t := range targets {
		if err := waitFor(ctx, nil, 30*time.Second, "route of "+t.arm, func() error { return checkRoute(t) }); err != nil {
			return err
		}
	}
	r.DataPlane.Skipped = map[string]string{}
	for i, name := range []string{armNginx, armHAProxy} {
		listen, err := freePort("127.0.0.1")
		if err != nil {
			return err
		}
		ref, err := startReference(ctx, log, cs, name, "127.0.0.1:"+listen, upAddr+":18080")
		if errors.Is(err, errSkipped) {
			log.Warn("reference arm skipped", "arm", name, "reason", err)
			r.DataPlane.Skipped[name] = err.Error()
			continue
		}
		if err != nil {
			return err
		}
		if i == 0 {
			r.Machine.Nginx = ref.version
		} else {
			r.Machine.HAProxy = ref.version
		}
		pid := ref.proc.pid()
		targets = append(targets, target{arm: name, url: "http://127.0.0.1:" + listen + "/", pids: func() []int { return withChildren(pid) }})
	}

	d := &r.DataPlane
	d.Protocol, d.Rates, d.Connections = "HTTP/1.1", p.rates, p.conns
	d.DurationS, d.WarmupS, d.Repetitions = p.duration.Seconds(), p.warm.Seconds(), p.reps
	d.GRPC = "not run: the gRPC arms need an h2c upstream speaking fortio's ping service and grpc_pass / `proto h2` configurations for the references; only HTTP/1.1 is measured so far."
	log.Info("data plane: interleaved matrix", "arms", len(targets), "rates", p.rates, "conns", p.conns, "reps", p.reps, "duration", p.duration)
	samples, err := matrix(ctx, log, targets, p.rates, p.conns, p.reps, p.warm, p.duration)
	if err != nil {
		return err
	}
	d.Cells = aggregate(samples, p.rates, p.conns)

	for _, t := range targets {
		if t.arm == armDirect || t.arm == armSluice2 {
			continue
		}
		m, err := maxRate(ctx, log, t, 16, p.maxRateStart, p.maxRateLimit, p.maxRateSteps, p.maxRateDur)
		if err != nil {
			return err
		}
		d.MaxRate = append(d.MaxRate, m)
	}

	prof, err := profile(ctx, log, targets[1], callerAddr, profDir, p.profileDur)
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
	r.Profiles = prof

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
		"from each request's time (as its sidecar logged it) to its entry's arrival; sidecars push once a second, the tap sends every 250 ms, at most 100 entries a second", lagRate, lagDur)
	t.LiveLagEntries = len(lags)
	t.LiveLagP50, t.LiveLagP99, t.LiveLagMax = round(percentile(lags, 50), 1), round(percentile(lags, 99), 1), round(percentile(lags, 100), 1)
	caller.stop(15 * time.Second)
	callee.stop(15 * time.Second)
	return nil
}

// profile keeps the sidecar's CPU profile under 5,000 rps and its allocation profile, and
// reads their top entries.
func profile(ctx context.Context, log *slog.Logger, t target, adminAddr, dir string, d time.Duration) (Profiles, error) {
	const rate, conns = 5000, 16
	p := Profiles{
		Load:     fmt.Sprintf("One sidecar hop (`%s`) at %d rps over %d connections for %v; the allocation profile covers the sidecar's whole run", t.arm, rate, conns, d),
		CPUFile:  filepath.Join(dir, "sidecar-cpu.pprof"),
		HeapFile: filepath.Join(dir, "sidecar-allocs.pprof"),
	}
	log.Info("profiling the sidecar", "duration", d)
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
