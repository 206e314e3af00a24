package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// samplesFor returns two repetitions of every arm of proto at one rate and connection count,
// with the latencies given for the arms' first repetition (the second is 0.1 ms slower).
func samplesFor(proto string, rate, conns int, p99 map[string]float64) []sample {
	var out []sample
	for rep := range 2 {
		for _, arm := range arms {
			l := p99[arm] + float64(rep)*0.1
			out = append(out, sample{Arm: arm, Protocol: proto, Rate: rate, Conns: conns,
				Latency:   Latency{P50: l / 4, P90: l / 2, P99: l, P999: l * 2},
				ActualRPS: float64(rate), Requests: int64(rate * 10), CPUSeconds: float64(rep+1) * 0.5 * float64(rate) / 1000,
				RSSKB: 20480, HWMKB: int64(25600 + rep*1024)})
		}
	}
	return out
}

func TestAggregate(t *testing.T) {
	p99 := map[string]float64{armDirect: 0.2, armSluice1: 0.6, armSluice2: 1.0, armNginx: 0.4, armHAProxy: 0.3}
	// gRPC's arms, given first, are slower by 1 ms each; their added figures and ratios
	// must come from gRPC's own direct arm and references.
	grpcP99 := map[string]float64{}
	for a, v := range p99 {
		grpcP99[a] = v + 1
	}
	grpcP99[armSluice1] = 2.2
	samples := append(samplesFor(protoGRPC, 1000, 4, grpcP99), samplesFor(protoHTTP1, 1000, 4, p99)...)
	all := aggregate(samples, []int{1000}, []int{4})
	if len(all) != 2*len(arms) {
		t.Fatalf("%d cells, want %d", len(all), 2*len(arms))
	}
	for i, c := range all {
		if want, proto := arms[i%len(arms)], protocols[i/len(arms)]; c.Arm != want || c.Protocol != proto {
			t.Errorf("cell %d is %s %s, want %s %s (table order)", i, c.Protocol, c.Arm, proto, want)
		}
	}
	g := all[len(arms)+1]
	// gRPC sluice-1hop: medians 2.2 and 2.3 over direct's 1.2 and 1.3; nginx adds 0.2, HAProxy 0.1.
	if g.Added.P99 != 1 || g.RatioNginx == nil || *g.RatioNginx != 5 || g.RatioHAProxy == nil || *g.RatioHAProxy != 10 {
		t.Errorf("gRPC sluice-1hop added p99 %v, ratios %v %v; want 1, 5 and 10", g.Added.P99, g.RatioNginx, g.RatioHAProxy)
	}
	cells := all[:len(arms)]
	s := cells[1]
	// Medians of 0.6 and 0.7; direct's of 0.2 and 0.3.
	if s.Latency.P99 != 0.65 || s.Added.P99 != 0.4 {
		t.Errorf("sluice-1hop p99 %v added %v, want 0.65 and 0.4", s.Latency.P99, s.Added.P99)
	}
	if s.RatioNginx == nil || *s.RatioNginx != 2 || s.RatioHAProxy == nil || *s.RatioHAProxy != 4 {
		t.Errorf("ratios %v %v, want 2 and 4", s.RatioNginx, s.RatioHAProxy)
	}
	// CPU: 0.5 s and 1 s over 10,000 requests: median 0.075 s per 1,000.
	if s.CPUSecPer1k != 0.075 || s.VCPUPer1kRPS != s.CPUSecPer1k {
		t.Errorf("CPU per 1k = %v, vCPU per 1k rps = %v, want 0.075 both", s.CPUSecPer1k, s.VCPUPer1kRPS)
	}
	if s.PeakRSSMB != 26 || s.RSSMB != 20 || s.Requests != 20000 {
		t.Errorf("peak RSS %v, RSS %v, requests %v", s.PeakRSSMB, s.RSSMB, s.Requests)
	}
	if cells[0].Added != (Latency{}) || cells[0].RatioNginx != nil {
		t.Errorf("direct has added figures or ratios: %+v", cells[0])
	}
}

func TestAggregateWithoutReferences(t *testing.T) {
	var only []sample
	for _, s := range samplesFor(protoHTTP1, 5000, 16, map[string]float64{armDirect: 0.2, armSluice1: 0.5}) {
		if s.Arm == armDirect || s.Arm == armSluice1 {
			only = append(only, s)
		}
	}
	cells := aggregate(only, []int{5000}, []int{16})
	if len(cells) != 2 || cells[1].RatioHAProxy != nil || cells[1].RatioNginx != nil {
		t.Errorf("cells without references = %+v", cells)
	}
}

// fullResults is a complete, sane result set.
func fullResults() *Results {
	r := &Results{Date: "2026-11-25T13:00:00Z", Command: "make bench-quick", Mode: "quick",
		Machine: Machine{NProc: 2, CPUModel: "AMD EPYC", Kernel: "6.1", GoVersion: "go1.26.8", Nginx: "nginx/1.22.1", HAProxy: "2.6.12", Pinned: true,
			LoadAvgStart: [3]float64{3, 2, 1}, LoadAvgEnd: [3]float64{0.5, 0.4, 0.3}}}
	p99 := map[string]float64{armDirect: 0.2, armSluice1: 0.6, armSluice2: 1.0, armNginx: 0.4, armHAProxy: 0.3}
	var samples []sample
	for _, proto := range protocols {
		for _, rate := range []int{1000, 5000} {
			for _, c := range []int{4, 16} {
				samples = append(samples, samplesFor(proto, rate, c, p99)...)
			}
		}
	}
	r.DataPlane = DataPlane{Protocols: map[string]string{protoHTTP1: "HTTP/1.1 GET", protoGRPC: "gRPC unary pings over h2c"},
		Rates: []int{1000, 5000}, Connections: []int{4, 16}, DurationS: 1, WarmupS: 0.3, Repetitions: 2,
		Cells: aggregate(samples, []int{1000, 5000}, []int{4, 16}),
		MaxRate: []MaxRate{{Arm: armSluice1, Protocol: protoHTTP1, RPSPerCore: 25000,
			Throughput: RateFigure{AskedRPS: 20000, Conns: 16, RPS: 20000, P99: 4.5, ProxyCores: 0.8, LoadCores: 0.6, RestCores: 0.05, OtherCores: 0.1, Bound: "the proxy's core: 30000 rps asked gave 24000 (0 errors) with the proxy at 0.98 cores"},
			LowLatency: RateFigure{AskedRPS: 5000, Conns: 4, RPS: 5000, P99: 0.9, ProxyCores: 0.2, LoadCores: 0.3, Bound: "the proxy's own tail: p99 1.40 ms at 7500 rps"}}}}
	r.ControlPlane.Runs = []CPRun{{Proxies: 1000, Services: 200, Changes: 3, PropagationP50: 40, PropagationP99: 90, PropagationMax: 90,
		FirstSplitMs: 300, CPUPerPushMs: 200, BaselineRSSMB: 100, ConnectedRSSMB: 250, PeakRSSMB: 600, RSSPerProxyMB: 0.15, ConnectAllS: 3, ServerReadyS: 1, ResyncAfterRest: 4}}
	r.Telemetry = Telemetry{Command: "go test", Sidecars: 1000, Intervals: 20, ServerCPUMsPerS: 480, RowsPerS: 2300,
		LiveStreamLag: "tap", LiveLagEntries: 300, LiveLagP50: 600, LiveLagP99: 1300, LiveLagMax: 1400}
	r.Profiles = Profiles{Load: "load", CPUFile: "cpu.pprof", HeapFile: "allocs.pprof",
		TopCPU: []ProfileEntry{{"syscall.Syscall6", 50, 50}}, TopAlloc: []ProfileEntry{{"net/textproto.readMIMEHeader", 13, 13}}}
	r.GRPCProfiles = Profiles{Load: "grpc load", CPUFile: "grpc-cpu.pprof", HeapFile: "grpc-allocs.pprof",
		TopCPU: []ProfileEntry{{"golang.org/x/net/http2.(*Framer).ReadFrame", 9, 20}}, TopAlloc: []ProfileEntry{{"net/http.(*http2serverConn).newStream", 11, 11}}}
	r.Targets = evaluateTargets(r)
	return r
}

func TestCheckAcceptsSaneResults(t *testing.T) {
	if err := check(fullResults()); err != nil {
		t.Errorf("check(sane results) = %v", err)
	}
}

func TestCheckRejects(t *testing.T) {
	for name, spoil := range map[string]func(*Results){
		"p50 above p99":         func(r *Results) { r.DataPlane.Cells[1].Latency.P50 = 9 },
		"no requests":           func(r *Results) { r.DataPlane.Cells[2].Requests = 0 },
		"negative CPU":          func(r *Results) { r.DataPlane.Cells[1].CPUSecPer1k = -1 },
		"arm missing":           func(r *Results) { r.DataPlane.Cells = r.DataPlane.Cells[:1] },
		"no control-plane run":  func(r *Results) { r.ControlPlane.Runs = nil },
		"propagation unordered": func(r *Results) { r.ControlPlane.Runs[0].PropagationP50 = 200 },
		"no telemetry rows":     func(r *Results) { r.Telemetry.RowsPerS = 0 },
		"no live lag":           func(r *Results) { r.Telemetry.LiveLagEntries = 0 },
		"no profile":            func(r *Results) { r.Profiles.TopAlloc = nil },
		"no gRPC profile":       func(r *Results) { r.GRPCProfiles.TopCPU = nil },
		"no max rate":           func(r *Results) { r.DataPlane.MaxRate = nil },
		"gRPC arm missing": func(r *Results) {
			var kept []Cell
			for _, c := range r.DataPlane.Cells {
				if c.Protocol != protoGRPC || c.Arm != armSluice2 {
					kept = append(kept, c)
				}
			}
			r.DataPlane.Cells = kept
		},
		"nothing sustained":         func(r *Results) { r.DataPlane.MaxRate[0].Throughput.RPS = 0 },
		"no CPU at the max rate":    func(r *Results) { r.DataPlane.MaxRate[0].Throughput.ProxyCores = 0 },
		"max rate without a bound":  func(r *Results) { r.DataPlane.MaxRate[0].LowLatency.Bound = "" },
		"searched over other conns": func(r *Results) { r.DataPlane.MaxRate[0].LowLatency.Conns = 16 },
		"no rate per core":          func(r *Results) { r.DataPlane.MaxRate[0].RPSPerCore = 0 },
		"many failed requests":      func(r *Results) { r.DataPlane.Cells[3].Errors = r.DataPlane.Cells[3].Requests / 2 },
		"peak RSS below the RSS":    func(r *Results) { r.DataPlane.Cells[1].PeakRSSMB = 1 },
		"first split missing":       func(r *Results) { r.ControlPlane.Runs[0].FirstSplitMs = 0 },
		"server peak below RSS":     func(r *Results) { r.ControlPlane.Runs[0].PeakRSSMB = 1 },
	} {
		r := fullResults()
		spoil(r)
		if err := check(r); err == nil {
			t.Errorf("%s: check passed", name)
		}
	}
	// A skipped reference with its reason is not a missing figure; a reason for one
	// protocol does not excuse the other's.
	r := fullResults()
	var kept []Cell
	for _, c := range r.DataPlane.Cells {
		if c.Arm != armNginx {
			kept = append(kept, c)
		}
	}
	r.DataPlane.Cells, r.DataPlane.Skipped = kept, map[string]string{armKey(protoHTTP1, armNginx): "nginx is not installed"}
	if err := check(r); err == nil || !strings.Contains(err.Error(), "grpc/nginx") {
		t.Errorf("gRPC nginx missing without a reason: check = %v", err)
	}
	r.DataPlane.Skipped[armKey(protoGRPC, armNginx)] = "nginx is not installed"
	if err := check(r); err != nil {
		t.Errorf("skipped nginx: %v", err)
	}
}

// check never compares a figure with a target: results that miss every target still pass.
func TestCheckIgnoresTargets(t *testing.T) {
	r := fullResults()
	r.ControlPlane.Runs[0].PropagationP99, r.ControlPlane.Runs[0].PropagationMax = 5000, 5000
	r.ControlPlane.Runs[0].RSSPerProxyMB = 3
	r.Targets = evaluateTargets(r)
	if err := check(r); err != nil {
		t.Errorf("check failed on missed targets: %v", err)
	}
}

func TestEvaluateTargets(t *testing.T) {
	r := fullResults()
	got := map[string]Target{}
	for _, tg := range r.Targets {
		got[tg.Name] = tg
	}
	for name, met := range map[string]bool{
		"added p99 per hop vs HAProxy":   false, // 0.4 ms against 0.1 ms
		"rps per proxy core":             false, // 25,000
		"vCPU per 1,000 rps (one hop)":   false, // 0.075
		"sidecar RSS under load":         false, // 26 MB
		"propagation p99":                true,  // 90 ms
		"control-plane memory per proxy": true,  // 0.15 MB
	} {
		tg, ok := got[name]
		if !ok {
			t.Errorf("target %q not evaluated", name)
			continue
		}
		if tg.Met != met {
			t.Errorf("%s: met = %v, want %v (%s)", name, tg.Met, met, tg.Measured)
		}
		if !tg.Met && tg.Explanation == "" {
			t.Errorf("%s: not met without an explanation", name)
		}
	}
}

func TestJSONRoundTrip(t *testing.T) {
	dir := t.TempDir()
	r := fullResults()
	if err := writeJSON(dir, r); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(dir, "results.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{`"p99_ms"`, `"proxy_vcpu_per_1k_rps"`, `"propagation_p99_ms"`, `"server_rss_per_proxy_mb"`, `"rows_per_s"`, `"load_average_start"`, `"haproxy_version"`} {
		if !strings.Contains(string(b), key) {
			t.Errorf("results.json has no %s", key)
		}
	}
	var back Results
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if err := check(&back); err != nil {
		t.Errorf("decoded results: %v", err)
	}
}

func TestReplaceSection(t *testing.T) {
	doc := "# Benchmarks\n\nIntro.\n\n" + markBegin + "\nold\n" + markEnd + "\n\n## Hand-written\n\nKept.\n"
	got, err := replaceSection(doc, "new table\n")
	if err != nil {
		t.Fatal(err)
	}
	want := "# Benchmarks\n\nIntro.\n\n" + markBegin + "\nnew table\n" + markEnd + "\n\n## Hand-written\n\nKept.\n"
	if got != want {
		t.Errorf("replaceSection:\n%s\nwant:\n%s", got, want)
	}
	// Without markers: inserted before the first section.
	got, err = replaceSection("# B\n\nIntro.\n\n## Other\n", "gen")
	if err != nil || got != "# B\n\nIntro.\n\n"+markBegin+"\ngen\n"+markEnd+"\n\n## Other\n" {
		t.Errorf("no markers: %q, %v", got, err)
	}
	if _, err := replaceSection("a "+markEnd+" b "+markBegin, "x"); err == nil {
		t.Error("markers out of order accepted")
	}
}

func TestMarkdownStoppedRun(t *testing.T) {
	r := fullResults()
	r.ControlPlane.Runs = append(r.ControlPlane.Runs, CPRun{Proxies: 5000, Services: 200, Changes: 10, Error: "sign in to sluice-server: timeout"})
	if md := markdown(r); !strings.Contains(md, "The run with 5000 proxies stopped early: sign in to sluice-server: timeout.") {
		t.Error("markdown does not say why the 5000-proxy run stopped")
	}
	if err := check(r); err == nil || !strings.Contains(err.Error(), "5000 proxies") {
		t.Errorf("check of a stopped run = %v", err)
	}
}

func TestMarkdown(t *testing.T) {
	r := fullResults()
	r.DataPlane.Skipped = map[string]string{"grpc/nginx": "nginx is not installed"}
	md := markdown(r)
	for _, want := range []string{
		"make bench-quick", "go1.26.8", "nginx/1.22.1", "Load average 3.00 / 2.00 / 1.00",
		"the machine was shared", // load average above 1
		"| 5000 | 16 | sluice-1hop | 0.16 | 0.33 | 0.65 | 1.30 | +0.10 | +0.40 | +0.80 | 0.075 | 26.0 MB |",
		"| 5000 | 16 | 2.00 | 4.00 |", "**not met**", "| propagation p99 |",
		"| 1000 | 200 | 3 | 40 / 90 / 90 ms |", "2300 rows/s", "| 600 / 1300 / 1400 ms |", "`syscall.Syscall6`",
		"Arm `grpc/nginx` skipped: nginx is not installed",
		"#### HTTP/1.1", "#### gRPC (h2c)", "- gRPC (h2c): gRPC unary pings over h2c.",
		"Added p99 of one Sluice hop over nginx's and HAProxy's, gRPC (h2c)",
		"| protocol | arm | criterion | conns | asked | sustained rps | p99 | proxy CPU | load generator CPU | rest of run | other work | rps per proxy core | bound by |",
		"| HTTP/1.1 | sluice-1hop | throughput | 16 | 20000 | 20000 | 4.50 ms | 0.80 cores | 0.60 cores | 0.05 cores | 0.10 cores | 25000 | the proxy's core: 30000 rps asked",
		"| HTTP/1.1 | sluice-1hop | p99 < 1 ms | 4 | 5000 | 5000 | 0.90 ms | 0.20 cores | 0.30 cores | 0.00 cores | 0.00 cores | — | the proxy's own tail",
		"grpc load. Files: `grpc-cpu.pprof`, `grpc-allocs.pprof`", "`golang.org/x/net/http2.(*Framer).ReadFrame` | 9.0 % | 20.0 % |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q", want)
		}
	}
	if strings.Contains(md, markBegin) || strings.Contains(md, markEnd) {
		t.Error("the section holds a marker itself")
	}
}
