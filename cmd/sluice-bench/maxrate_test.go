package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// fakeArm is a proxy and a load generator modelled by their capacities: each core carries
// so many requests per second, and the slower one caps the rate achieved; otherwise
// latency may (latencyCap, 0 for none), and other work takes otherCores.
type fakeArm struct {
	proxyCap, loadCap float64
	latencyCap        float64
	otherCores        float64
	restCores         float64                // the benchmark's other processes
	p99               func(rate int) float64 // the arm's p99 at a rate, in ms
	// p99At16, when set, is the p99 over 16 connections instead, where the load
	// generator's own queueing adds to it.
	p99At16   func(rate int) float64
	directP99 float64
}

func (f fakeArm) run(rate, conns int) (sample, error) {
	r := float64(rate)
	actual := min(r, f.proxyCap, f.loadCap)
	if f.latencyCap > 0 {
		actual = min(actual, f.latencyCap)
	}
	d := time.Second.Seconds()
	proxy, load := min(actual/f.proxyCap, 1)*d, min(actual/f.loadCap, 1)*d
	p99 := f.p99(rate)
	if conns == 16 && f.p99At16 != nil {
		p99 = f.p99At16(rate)
	}
	return sample{Arm: armSluice1, Protocol: protoHTTP1, Rate: rate, Conns: conns, ActualRPS: actual, Requests: int64(actual),
		Latency:    Latency{P50: 0.1, P90: 0.2, P99: p99, P999: 10},
		CPUSeconds: proxy, LoadCPUSeconds: load, RestCPUSeconds: f.restCores * d, MachineCPUSeconds: proxy + load + (f.restCores+f.otherCores)*d}, nil
}

func constP99(v float64) func(int) float64 { return func(int) float64 { return v } }

func TestMaxRateBounds(t *testing.T) {
	for name, tc := range map[string]struct {
		arm                      fakeArm
		throughput, lowLatency   float64
		perCore                  float64
		throughputBy, lowLatBy   string
		throughputNot, lowLatNot string
	}{
		"proxy core and proxy tail": {
			arm: fakeArm{proxyCap: 20000, loadCap: 60000, directP99: 0.3,
				p99: func(rate int) float64 { return map[bool]float64{true: 0.5, false: 3}[rate < 8000] }},
			throughput: 20000, lowLatency: 7500, perCore: 20000,
			throughputBy: "the proxy's core", lowLatBy: "the proxy's own tail", lowLatNot: "machine",
		},
		// The last full run's case: no rate passes the p99 criterion, yet the throughput
		// figure and its rate per core still come from a busy proxy.
		"p99 over 1 ms even at the lowest rate, the proxy's fault": {
			arm:        fakeArm{proxyCap: 25000, loadCap: 60000, directP99: 0.3, p99: constP99(3.7)},
			throughput: 20000, lowLatency: 0, perCore: 25000,
			throughputBy: "the proxy's core", lowLatBy: "p99 over 1 ms even at 625 rps", lowLatNot: "machine",
		},
		// Over 16 connections the tail is the load generator's; the criterion is judged
		// over 4.
		"p99 judged over 4 connections": {
			arm: fakeArm{proxyCap: 20000, loadCap: 60000, directP99: 0.3, p99At16: constP99(1.5),
				p99: func(rate int) float64 { return map[bool]float64{true: 0.5, false: 3}[rate < 8000] }},
			throughput: 20000, lowLatency: 7500, perCore: 20000,
			throughputBy: "the proxy's core", lowLatBy: "the proxy's own tail",
		},
		"p99 over 1 ms while other work ran": {
			arm:        fakeArm{proxyCap: 25000, loadCap: 60000, otherCores: 0.5, directP99: 0.3, p99: constP99(3.7)},
			throughput: 20000, lowLatency: 0, perCore: 25000,
			throughputBy: "the proxy's core", lowLatBy: "cannot tell apart", lowLatNot: "own tail",
		},
		"p99 over 1 ms direct too": {
			arm:        fakeArm{proxyCap: 25000, loadCap: 60000, directP99: 2, p99: constP99(3.7)},
			throughput: 20000, lowLatency: 0, perCore: 25000,
			throughputBy: "the proxy's core", lowLatBy: "the machine: direct's p99 too was over 1 ms at 625 rps",
		},
		"other work": {
			arm:        fakeArm{proxyCap: 100000, loadCap: 100000, latencyCap: 12000, otherCores: 0.8, directP99: 0.3, p99: constP99(0.5)},
			throughput: 10000, lowLatency: 10000, perCore: 100000,
			throughputBy: "other work on the machine: 15000 rps asked gave 12000", lowLatBy: "throughput, not p99: other work",
		},
		// The control plane busy with what the proxy sends it is the run's own cost, not
		// other work.
		"the benchmark's other processes": {
			arm:        fakeArm{proxyCap: 100000, loadCap: 100000, latencyCap: 12000, restCores: 0.8, directP99: 0.3, p99: constP99(0.5)},
			throughput: 10000, lowLatency: 10000, perCore: 100000,
			throughputBy: "the benchmark's other processes (control plane", throughputNot: "other work",
		},
		"latency with both cores idle": {
			arm:        fakeArm{proxyCap: 100000, loadCap: 100000, latencyCap: 12000, directP99: 0.3, p99: constP99(0.5)},
			throughput: 10000, lowLatency: 10000, perCore: 100000,
			throughputBy: "latency, with neither core full", throughputNot: "other work",
		},
		"load generator": {
			arm:        fakeArm{proxyCap: 100000, loadCap: 30000, directP99: 0.3, p99: constP99(0.5)},
			throughput: 30000, lowLatency: 30000, perCore: 100000,
			throughputBy: "the load generator and upstream's core", throughputNot: "the proxy's core",
			lowLatBy: "throughput, not p99: the load generator",
		},
		"search limit": {
			arm:        fakeArm{proxyCap: 100000, loadCap: 100000, directP99: 0.3, p99: constP99(0.5)},
			throughput: 40000, lowLatency: 40000, perCore: 100000,
			throughputBy: "the search's limit (40000 rps)", lowLatBy: "the search's limit",
		},
	} {
		t.Run(name, func(t *testing.T) {
			p := plans(true)
			direct := func(int) (float64, error) { return tc.arm.directP99, nil }
			log := slog.New(slog.NewTextHandler(io.Discard, nil))
			m, err := maxRate(log, target{arm: armSluice1, protocol: protoHTTP1}, p, tc.arm.run, direct)
			if err != nil {
				t.Fatal(err)
			}
			if m.Throughput.Conns != throughputConns || m.LowLatency.Conns != lowLatencyConns {
				t.Errorf("throughput over %d connections, p99 < 1 ms over %d; want %d and %d",
					m.Throughput.Conns, m.LowLatency.Conns, throughputConns, lowLatencyConns)
			}
			if m.Throughput.RPS != tc.throughput || m.LowLatency.RPS != tc.lowLatency || m.RPSPerCore != tc.perCore {
				t.Errorf("throughput %v, p99 < 1 ms %v, per core %v; want %v, %v, %v", m.Throughput.RPS, m.LowLatency.RPS, m.RPSPerCore,
					tc.throughput, tc.lowLatency, tc.perCore)
			}
			for _, c := range []struct{ got, want, not string }{
				{m.Throughput.Bound, tc.throughputBy, tc.throughputNot},
				{m.LowLatency.Bound, tc.lowLatBy, tc.lowLatNot},
			} {
				if !strings.Contains(c.got, c.want) || (c.not != "" && strings.Contains(c.got, c.not)) {
					t.Errorf("bound %q: want %q in it and not %q", c.got, c.want, c.not)
				}
			}
			if strings.Contains(m.Throughput.Bound+m.LowLatency.Bound, "busy machine") {
				t.Errorf("bounds blame a busy machine: %q, %q", m.Throughput.Bound, m.LowLatency.Bound)
			}
		})
	}
}
