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
		Handler: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/octet-stream")
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
	arm  string
	url  string
	host string // the Host header, when it is not the URL's
	pids func() []int
}

// loadResult is one fortio run's figures.
type loadResult struct {
	Latency   Latency
	ActualRPS float64
	Requests  int64
	Errors    int64
}

// runLoad sends rate requests per second over conns keep-alive connections for d, open loop
// (fortio's periodic runner: each connection keeps its own schedule and catches up when
// late), and returns the latency percentiles.
func runLoad(ctx context.Context, t target, rate, conns int, d time.Duration) (loadResult, error) {
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
	r := loadResult{ActualRPS: res.ActualQPS, Requests: h.Count, Errors: h.Count - res.RetCodes[http.StatusOK]}
	for _, p := range h.Percentiles {
		v := p.Value * 1000
		switch p.Percentile {
		case 50:
			r.Latency.P50 = v
		case 90:
			r.Latency.P90 = v
		case 99:
			r.Latency.P99 = v
		case 99.9:
			r.Latency.P999 = v
		}
	}
	return r, nil
}

// measured runs runLoad and the proxy processes' CPU and memory around it.
func measured(ctx context.Context, t target, rate, conns int, d time.Duration) (sample, error) {
	s := sample{Arm: t.arm, Rate: rate, Conns: conns}
	pids := t.pids()
	before, err := measure(pids)
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
	s.Latency, s.ActualRPS, s.Requests, s.Errors = r.Latency, r.ActualRPS, r.Requests, r.Errors
	s.CPUSeconds = after.CPUSeconds - before.CPUSeconds
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
					log.Info("measured", "rep", rep+1, "arm", t.arm, "rps", rate, "conns", c,
						"p50_ms", round(s.Latency.P50, 3), "p99_ms", round(s.Latency.P99, 3), "cpu_s", round(s.CPUSeconds, 2), "errors", s.Errors)
					out = append(out, s)
				}
			}
		}
	}
	return out, nil
}

// maxRate finds the highest rate t sustains over conns connections with p99 under 1 ms and
// no errors: from start, rates grow by half until one fails or limit is reached (or halve
// while even start fails, down to minMaxRate), then a bisection of steps rounds narrows the
// gap. RPS is 0 when no rate tried passed. RPSPerCore comes from the busiest run tried: its
// rate over the proxy's CPU use.
func maxRate(ctx context.Context, log *slog.Logger, t target, conns, start, limit, steps int, d time.Duration) (MaxRate, error) {
	type try struct {
		ok    bool
		s     sample
		cores float64
	}
	var busiest try
	run := func(rate int) (try, error) {
		s, err := measured(ctx, t, rate, conns, d)
		if err != nil {
			return try{}, err
		}
		cores := s.CPUSeconds / d.Seconds()
		ok := s.Errors == 0 && s.Latency.P99 < maxRateP99LimitMs && s.ActualRPS >= 0.97*float64(rate)
		log.Info("max-rate step", "arm", t.arm, "rps", rate, "actual", round(s.ActualRPS, 0), "p99_ms", round(s.Latency.P99, 3),
			"proxy_cores", round(cores, 2), "ok", ok)
		tr := try{ok, s, cores}
		if s.ActualRPS > busiest.s.ActualRPS && cores > 0 {
			busiest = tr
		}
		return tr, nil
	}
	var good, bad try
	goodRate, badRate := 0, 0
	for rate := start; ; {
		tr, err := run(rate)
		if err != nil {
			return MaxRate{}, err
		}
		if tr.ok {
			good, goodRate = tr, rate
			if rate >= limit || badRate != 0 {
				break
			}
			rate = min(rate*3/2, limit)
			continue
		}
		bad, badRate = tr, rate
		if goodRate != 0 || rate/2 < minMaxRate {
			break
		}
		rate /= 2
	}
	if badRate != 0 && goodRate != 0 {
		for range steps {
			mid := (goodRate + badRate) / 2
			if badRate-goodRate < goodRate/20 {
				break
			}
			tr, err := run(mid)
			if err != nil {
				return MaxRate{}, err
			}
			if tr.ok {
				good, goodRate = tr, mid
			} else {
				bad, badRate = tr, mid
			}
		}
	}
	m := MaxRate{Arm: t.arm, Conn: conns, ProxyCores: round(busiest.cores, 3)}
	if busiest.cores > 0 {
		m.RPSPerCore = round(busiest.s.ActualRPS/busiest.cores, 0)
	}
	if goodRate != 0 {
		m.RPS, m.P99 = round(good.s.ActualRPS, 0), round(good.s.Latency.P99, 3)
	} else {
		m.P99 = round(bad.s.Latency.P99, 3)
	}
	switch {
	case goodRate == 0:
		m.Bound = fmt.Sprintf("p99 over 1 ms even at %d rps (a busy machine)", badRate)
	case good.cores >= saturatedCoreShare || bad.cores >= saturatedCoreShare:
		m.Bound = "proxy core"
	case badRate != 0:
		m.Bound = "p99 over 1 ms before the proxy's core was full (the load generator and upstream share the other core)"
	default:
		m.Bound = "search limit"
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

// checkRoute fails unless one request to t answers 200 with the upstream's 1 KiB.
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
	return nil
}
