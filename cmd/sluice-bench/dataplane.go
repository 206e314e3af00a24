package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"time"

	"fortio.org/fortio/fhttp"
	"fortio.org/fortio/periodic"
	"fortio.org/fortio/stats"
)

// upstreamBody is what the Go upstream answers: 1 KiB.
var upstreamBody = bytes.Repeat([]byte("s"), 1024)

// upstream is the Go application every arm ends at, listening on several addresses.
type upstream struct {
	srv *http.Server
	lns []net.Listener
}

// startUpstream serves 1 KiB on each of addrs.
func startUpstream(log *slog.Logger, addrs ...string) (*upstream, error) {
	u := &upstream{srv: &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
			// The address the request arrived on tells a route check which hop delivered it.
			if a, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
				w.Header().Set(upstreamAddrHeader, a.String())
			}
			_, _ = w.Write(upstreamBody)
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}}
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			u.close()
			return nil, fmt.Errorf("upstream listen on %s: %w", a, err)
		}
		u.lns = append(u.lns, l)
	}
	for _, l := range u.lns {
		go func() { _ = u.srv.Serve(l) }() // ends when close shuts the server down
	}
	return u, nil
}

func (u *upstream) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = u.srv.Shutdown(ctx)
	for _, l := range u.lns {
		l.Close()
	}
}

// target is where one arm's load goes, and the processes whose cost it measures.
type target struct {
	arm      string
	protocol string // protoHTTP1 or protoGRPC
	url      string // an http:// URL, or host:port for gRPC
	host     string // the Host header (gRPC: the :authority), when it is not the URL's
	// via is the upstream address the requests must arrive on: the address of the hop that
	// delivers them (checkRoute and checkGRPCRoute fail otherwise). Empty skips the check.
	via  string
	pids func() []int
	// rest lists the benchmark's processes (the control plane, PostgreSQL, every proxy);
	// those not in pids are the rest of the run, whose CPU use is told apart from other
	// work on the machine. Nil for none.
	rest func() []int
}

// name is the arm and its protocol, as logs and the Skipped map name them.
func (t target) name() string { return armKey(t.protocol, t.arm) }

// armKey names an arm of a protocol: "http1/nginx", "grpc/sluice-1hop".
func armKey(protocol, arm string) string { return protocol + "/" + arm }

// loadResult is one fortio run's figures.
type loadResult struct {
	Latency   Latency
	ActualRPS float64
	Requests  int64
	Errors    int64
}

// runLoad loads t with its protocol: runHTTPLoad or runGRPCLoad.
func runLoad(ctx context.Context, t target, rate, conns int, d time.Duration) (loadResult, error) {
	if t.protocol == protoGRPC {
		return runGRPCLoad(ctx, t, rate, conns, d)
	}
	return runHTTPLoad(ctx, t, rate, conns, d)
}

// runHTTPLoad sends rate requests per second over conns keep-alive connections for d, open
// loop (fortio's periodic runner: each connection keeps its own schedule and catches up when
// late), and returns the latency percentiles.
func runHTTPLoad(ctx context.Context, t target, rate, conns int, d time.Duration) (loadResult, error) {
	o := fhttp.HTTPRunnerOptions{}
	o.RunnerOptions = periodic.RunnerOptions{
		QPS:         float64(rate),
		Duration:    d,
		NumThreads:  conns,
		Percentiles: []float64{50, 90, 99, 99.9},
		Resolution:  0.00001,
		Out:         io.Discard,
		Stop:        periodic.NewAborter(),
	}
	o.HTTPOptions.Init(t.url)
	if t.host != "" {
		if err := o.HTTPOptions.AddAndValidateExtraHeader("Host: " + t.host); err != nil {
			return loadResult{}, fmt.Errorf("load %s: Host header: %w", t.arm, err)
		}
	}
	o.HTTPReqTimeOut = 5 * time.Second
	o.AllowInitialErrors = true
	stop := context.AfterFunc(ctx, func() { o.Stop.Abort(false) })
	defer stop()
	res, err := fhttp.RunHTTPTest(&o)
	if err != nil {
		return loadResult{}, fmt.Errorf("load %s at %d rps: %w", t.arm, rate, err)
	}
	if ctx.Err() != nil {
		return loadResult{}, ctx.Err()
	}
	h := res.DurationHistogram
	if h == nil || h.Count == 0 {
		return loadResult{}, fmt.Errorf("load %s at %d rps: no request completed", t.arm, rate)
	}
	return loadResult{ActualRPS: res.ActualQPS, Requests: h.Count, Errors: h.Count - res.RetCodes[http.StatusOK], Latency: latencyOf(h)}, nil
}

// latencyOf reads fortio's percentiles (in seconds) of h in milliseconds.
func latencyOf(h *stats.HistogramData) Latency {
	var l Latency
	for _, p := range h.Percentiles {
		v := p.Value * 1000
		switch p.Percentile {
		case 50:
			l.P50 = v
		case 90:
			l.P90 = v
		case 99:
			l.P99 = v
		case 99.9:
			l.P999 = v
		}
	}
	return l
}

// measured runs runLoad and the proxy processes' CPU and memory around it.
func measured(ctx context.Context, t target, rate, conns int, d time.Duration) (sample, error) {
	s := sample{Arm: t.arm, Protocol: t.protocol, Rate: rate, Conns: conns}
	pids := t.pids()
	// The peak RSS of a cell is its own: each proxy process carries every rate and connection
	// count of its arm, and its lifetime peak would otherwise carry the busiest cell's into
	// every other.
	resetPeakRSS(pids)
	before, err := measure(pids)
	if err != nil {
		return s, err
	}
	// This process is the load generator and the upstreams (and nothing else busy while a
	// load runs): its CPU use tells whether their core was the limit.
	selfBefore, err := measure([]int{os.Getpid()})
	if err != nil {
		return s, err
	}
	var restPids []int
	if t.rest != nil {
		in := map[int]bool{}
		for _, p := range pids {
			in[p] = true
		}
		for _, p := range t.rest() {
			if !in[p] {
				restPids = append(restPids, p)
			}
		}
	}
	restBefore := cpuSeconds(restPids)
	busyBefore, err := readCPUBusy()
	if err != nil {
		return s, err
	}
	r, err := runLoad(ctx, t, rate, conns, d)
	if err != nil {
		return s, err
	}
	after, err := measure(pids)
	if err != nil {
		return s, err
	}
	selfAfter, err := measure([]int{os.Getpid()})
	if err != nil {
		return s, err
	}
	busyAfter, err := readCPUBusy()
	if err != nil {
		return s, err
	}
	s.RestCPUSeconds = cpuSecondsSince(restBefore, cpuSeconds(restPids))
	s.Latency, s.ActualRPS, s.Requests, s.Errors = r.Latency, r.ActualRPS, r.Requests, r.Errors
	s.CPUSeconds = after.CPUSeconds - before.CPUSeconds
	s.LoadCPUSeconds = selfAfter.CPUSeconds - selfBefore.CPUSeconds
	s.MachineCPUSeconds = busyAfter - busyBefore
	s.RSSKB, s.HWMKB = after.RSSKB, after.HWMKB
	return s, nil
}

// matrix runs every arm at every rate and connection count, reps times, interleaved: each
// repetition goes through all cells, and within a cell through all arms in an order rotated
// per repetition, so that a slow spell of the machine hits every arm alike.
func matrix(ctx context.Context, log *slog.Logger, targets []target, rates, conns []int, reps int, warm, d time.Duration) ([]sample, error) {
	var out []sample
	for rep := range reps {
		for _, rate := range rates {
			for _, c := range conns {
				for i := range targets {
					t := targets[(i+rep)%len(targets)]
					if warm > 0 {
						if _, err := runLoad(ctx, t, rate, c, warm); err != nil {
							return nil, err
						}
					}
					s, err := measured(ctx, t, rate, c, d)
					if err != nil {
						return nil, err
					}
					log.Info("measured", "rep", rep+1, "arm", t.name(), "rps", rate, "conns", c,
						"p50_ms", round(s.Latency.P50, 3), "p99_ms", round(s.Latency.P99, 3), "cpu_s", round(s.CPUSeconds, 2), "errors", s.Errors)
					out = append(out, s)
				}
			}
		}
	}
	return out, nil
}

// maxRate measures how fast t goes, by two criteria, each from its own search:
//
//   - throughput, over throughputConns connections: the highest rate sustained (actual ≥
//     97 % of the rate asked, no errors), whatever the p99. Rates grow by p.maxRateGrowth
//     from p.maxRateStart until one fails or p.maxRateLimit passes (or halve while even the
//     start fails, down to minMaxRate), then p.maxRateSteps rounds of bisection narrow the
//     gap. RPSPerCore comes from this search: the run where the proxy was busiest while
//     still keeping up.
//   - low latency, over lowLatencyConns connections: the highest rate sustained with p99
//     under 1 ms, searched the same way. Fewer connections keep the load generator's own
//     queueing out of the tail: over 16, even the direct arm's p99 passes 1 ms on a 2-core
//     machine at rates every proxy carries easily, which would judge the machine, not the
//     proxy.
//
// Each figure's Bound says what stopped it, from the CPU use of the proxy and of this
// process (the load generator and the upstreams) at the first rate that failed, and for the
// latency criterion from directP99: the direct arm's p99 at that rate over the same
// connections.
//
// run measures t at a rate over conns connections for p.maxRateDur (measured, in a real run);
// a rate and connection count already run is not run again.
func maxRate(log *slog.Logger, t target, p plan, run func(rate, conns int) (sample, error), directP99 func(rate int) (float64, error)) (MaxRate, error) {
	type try struct {
		s                     sample
		proxyCores, loadCores float64
		// restCores is the rest of the benchmark's processes; otherCores the machine's busy
		// time that was none of theirs: other work.
		restCores, otherCores float64
	}
	type key struct{ rate, conns int }
	tries := map[key]try{}
	get := func(rate, conns int) (try, error) {
		if tr, ok := tries[key{rate, conns}]; ok {
			return tr, nil
		}
		s, err := run(rate, conns)
		if err != nil {
			return try{}, err
		}
		secs := p.maxRateDur.Seconds()
		tr := try{s, s.CPUSeconds / secs, s.LoadCPUSeconds / secs, s.RestCPUSeconds / secs,
			max(s.MachineCPUSeconds-s.CPUSeconds-s.LoadCPUSeconds-s.RestCPUSeconds, 0) / secs}
		log.Info("max-rate step", "arm", t.name(), "rps", rate, "conns", conns, "actual", round(s.ActualRPS, 0), "errors", s.Errors,
			"p99_ms", round(s.Latency.P99, 3), "proxy_cores", round(tr.proxyCores, 2), "load_cores", round(tr.loadCores, 2),
			"rest_cores", round(tr.restCores, 2), "other_cores", round(tr.otherCores, 2))
		tries[key{rate, conns}] = tr
		return tr, nil
	}
	sustained := func(tr try) bool { return tr.s.Errors == 0 && tr.s.ActualRPS >= 0.97*float64(tr.s.Rate) }
	lowLatency := func(tr try) bool { return sustained(tr) && tr.s.Latency.P99 < maxRateP99LimitMs }
	// bracket returns the highest rate found to pass over conns connections and the lowest
	// found to fail above it (0 for none).
	bracket := func(conns int, pass func(try) bool) (good, bad int, err error) {
		for rate := p.maxRateStart; ; {
			tr, err := get(rate, conns)
			if err != nil {
				return 0, 0, err
			}
			if pass(tr) {
				good = rate
				if rate >= p.maxRateLimit || bad != 0 {
					break
				}
				rate = min(int(float64(rate)*p.maxRateGrowth), p.maxRateLimit)
				continue
			}
			bad = rate
			if good != 0 || rate/2 < minMaxRate {
				break
			}
			rate /= 2
		}
		for range p.maxRateSteps {
			if good == 0 || bad == 0 || bad-good < good/20 {
				break
			}
			mid := (good + bad) / 2
			tr, err := get(mid, conns)
			if err != nil {
				return 0, 0, err
			}
			if pass(tr) {
				good = mid
			} else {
				bad = mid
			}
		}
		return good, bad, nil
	}
	figure := func(tr try, ok bool) RateFigure {
		f := RateFigure{AskedRPS: tr.s.Rate, Conns: tr.s.Conns, P99: round(tr.s.Latency.P99, 3), ProxyCores: round(tr.proxyCores, 3), LoadCores: round(tr.loadCores, 3),
			RestCores: round(tr.restCores, 3), OtherCores: round(tr.otherCores, 3)}
		if ok {
			f.RPS = round(tr.s.ActualRPS, 0)
		}
		return f
	}
	// limitedBy says which core, if either, was full when rate was not sustained.
	limitedBy := func(tr try) string {
		s := tr.s
		got := fmt.Sprintf("%d rps asked gave %.0f (%d errors)", s.Rate, s.ActualRPS, s.Errors)
		switch {
		case tr.proxyCores >= saturatedCoreShare:
			return fmt.Sprintf("the proxy's core: %s with the proxy at %.2f cores", got, tr.proxyCores)
		case tr.loadCores >= saturatedCoreShare:
			return fmt.Sprintf("the load generator and upstream's core: %s with them at %.2f cores and the proxy at %.2f", got, tr.loadCores, tr.proxyCores)
		case s.Errors > 0:
			return fmt.Sprintf("errors: %s, the proxy at %.2f cores", got, tr.proxyCores)
		case tr.restCores >= otherWorkCores:
			return fmt.Sprintf("the benchmark's other processes (control plane, PostgreSQL, the other proxies): %s with the proxy at %.2f cores, the load generator and upstream at %.2f, and those at %.2f",
				got, tr.proxyCores, tr.loadCores, tr.restCores)
		case tr.otherCores >= otherWorkCores:
			return fmt.Sprintf("other work on the machine: %s with the proxy at %.2f cores, the load generator and upstream at %.2f, and %.2f cores taken by processes that are not the benchmark's",
				got, tr.proxyCores, tr.loadCores, tr.otherCores)
		default:
			// Each connection carries one request at a time, so the rate cannot pass
			// connections over the mean latency, whoever's core is idle.
			return fmt.Sprintf("latency, with neither core full: %s with the proxy at %.2f cores and the load generator and upstream at %.2f (%d connections, one request in flight on each)",
				got, tr.proxyCores, tr.loadCores, s.Conns)
		}
	}

	m := MaxRate{Arm: t.arm, Protocol: t.protocol}
	good, bad, err := bracket(throughputConns, sustained)
	at := func(rate int) try { return tries[key{rate, throughputConns}] }
	if err != nil {
		return m, err
	}
	switch {
	case good == 0:
		m.Throughput = figure(at(bad), false)
		m.Throughput.Bound = "not sustained even at the lowest rate tried: " + limitedBy(at(bad))
		if c := at(bad).proxyCores; c > 0 {
			m.RPSPerCore = round(at(bad).s.ActualRPS/c, 0)
		}
	default:
		g := at(good)
		m.Throughput = figure(g, true)
		if bad == 0 {
			m.Throughput.Bound = fmt.Sprintf("the search's limit (%d rps), with the proxy at %.2f cores", p.maxRateLimit, g.proxyCores)
		} else {
			m.Throughput.Bound = limitedBy(at(bad))
		}
		if g.proxyCores > 0 {
			m.RPSPerCore = round(g.s.ActualRPS/g.proxyCores, 0)
		}
	}

	good, bad, err = bracket(lowLatencyConns, lowLatency)
	at = func(rate int) try { return tries[key{rate, lowLatencyConns}] }
	if err != nil {
		return m, err
	}
	switch {
	case bad == 0:
		m.LowLatency = figure(at(good), true)
		m.LowLatency.Bound = fmt.Sprintf("the search's limit (%d rps)", p.maxRateLimit)
	case !sustained(at(bad)):
		if good == 0 {
			m.LowLatency = figure(at(bad), false)
		} else {
			m.LowLatency = figure(at(good), true)
		}
		m.LowLatency.Bound = "throughput, not p99: " + limitedBy(at(bad))
	default:
		b := at(bad)
		d, err := directP99(bad)
		if err != nil {
			return m, err
		}
		var why string
		switch {
		case b.proxyCores >= saturatedCoreShare:
			why = fmt.Sprintf("the proxy's core: p99 %.2f ms at %d rps with the proxy at %.2f cores", b.s.Latency.P99, bad, b.proxyCores)
		case d >= maxRateP99LimitMs:
			why = fmt.Sprintf("the machine: direct's p99 too was over 1 ms at %d rps (%.2f ms), so no proxy could pass there (this one's %.2f ms at %.2f cores; load generator and upstream at %.2f cores, other work at %.2f)",
				bad, d, b.s.Latency.P99, b.proxyCores, b.loadCores, b.otherCores)
		case b.otherCores+b.restCores >= otherWorkCores:
			why = fmt.Sprintf("the proxy's tail or the machine's, which this run cannot tell apart: p99 %.2f ms at %d rps with the proxy at %.2f cores, where direct's was %.2f ms, while other processes took %.2f cores",
				b.s.Latency.P99, bad, b.proxyCores, d, b.otherCores+b.restCores)
		default:
			why = fmt.Sprintf("the proxy's own tail: p99 %.2f ms at %d rps with the proxy at %.2f cores, where direct's was %.2f ms and no other process was busy", b.s.Latency.P99, bad, b.proxyCores, d)
		}
		if good == 0 {
			m.LowLatency = figure(b, false)
			m.LowLatency.Bound = fmt.Sprintf("p99 over 1 ms even at %d rps, the lowest rate tried; %s", bad, why)
		} else {
			m.LowLatency = figure(at(good), true)
			m.LowLatency.Bound = why
		}
	}
	return m, nil
}

// fetch saves GET url to path.
func fetch(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	c := &http.Client{Transport: &http.Transport{Proxy: nil}}
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 500))
		return fmt.Errorf("fetch %s: %d %s", url, resp.StatusCode, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("fetch %s: %w", url, err)
	}
	return nil
}

// checkRoute fails unless one request to t answers 200 with the upstream's 1 KiB, from the
// address t.via names: the hop that must have delivered it.
func checkRoute(t target) error {
	req, err := http.NewRequest(http.MethodGet, t.url, nil)
	if err != nil {
		return err
	}
	if t.host != "" {
		req.Host = t.host
	}
	resp, err := plainClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || len(b) != len(upstreamBody) {
		return fmt.Errorf("%s: %d, %d bytes: %.200s", t.arm, resp.StatusCode, len(b), b)
	}
	if got := resp.Header.Get(upstreamAddrHeader); t.via != "" && got != t.via {
		return fmt.Errorf("%s: the request reached the upstream on %q, want %s", t.arm, got, t.via)
	}
	return nil
}
