package main

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// The generated part of BENCHMARKS.md lies between these markers; the rest of the file is
// written by hand and kept.
const (
	markBegin = "<!-- bench:begin -->"
	markEnd   = "<!-- bench:end -->"
)

// replaceSection returns doc with the text between the markers replaced by section. A
// document without the markers gets them, with section, before its first "## " heading (or at
// its end).
func replaceSection(doc, section string) (string, error) {
	block := markBegin + "\n" + strings.TrimSpace(section) + "\n" + markEnd
	b := strings.Index(doc, markBegin)
	e := strings.Index(doc, markEnd)
	switch {
	case b >= 0 && e > b:
		return doc[:b] + block + doc[e+len(markEnd):], nil
	case b >= 0 || e >= 0:
		return "", fmt.Errorf("update BENCHMARKS.md: only one of %s and %s is present, or they are out of order: fix the file by hand", markBegin, markEnd)
	}
	if i := strings.Index(doc, "\n## "); i >= 0 {
		return doc[:i+1] + block + "\n\n" + doc[i+1:], nil
	}
	return strings.TrimRight(doc, "\n") + "\n\n" + block + "\n", nil
}

// ms formats milliseconds with two decimals; a signed one for added figures.
func ms(v float64) string { return fmt.Sprintf("%.2f", v) }
func addMs(v float64) string {
	return fmt.Sprintf("%+.2f", v)
}

// metWord is how a target's outcome reads in the tables.
func metWord(met bool) string {
	if met {
		return "met"
	}
	return "**not met**"
}

// markdown renders the generated section of BENCHMARKS.md from r.
func markdown(r *Results) string {
	var b strings.Builder
	w := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	m := r.Machine
	w("## Suite: data plane against nginx and HAProxy, control plane at scale (generated)\n\n")
	w("This section is written by `%s` from `bench/results.json`; do not edit it by hand.\n\n", r.Command)
	w("Run %s (%s mode). Machine: %d vCPU (%s), kernel %s, %s, nginx %s, HAProxy %s. ",
		r.Date, r.Mode, m.NProc, m.CPUModel, m.Kernel, m.GoVersion, orNone(m.Nginx), orNone(m.HAProxy))
	if m.Pinned {
		w("Proxies pinned to CPU 0, load generator and upstream to CPU 1 (`taskset`). ")
	} else {
		w("Processes not pinned (taskset missing or fewer than 2 CPUs). ")
	}
	w("Load average %.2f / %.2f / %.2f at the start and %.2f / %.2f / %.2f at the end: ",
		m.LoadAvgStart[0], m.LoadAvgStart[1], m.LoadAvgStart[2], m.LoadAvgEnd[0], m.LoadAvgEnd[1], m.LoadAvgEnd[2])
	// Only the load before the run tells of other work: the suite's own 5,000 simulated
	// proxies raise the load at its end.
	if m.LoadAvgStart[0] > 1 {
		w("the machine was shared with other work while this ran, so the figures are noisy; re-run on a quiet machine to compare small differences.\n\n")
	} else {
		w("a quiet machine.\n\n")
	}

	w("### Targets\n\n| target | goal | measured | |\n|---|---|---|---|\n")
	for _, t := range r.Targets {
		w("| %s | %s | %s | %s |\n", t.Name, t.Target, t.Measured, metWord(t.Met))
	}
	w("\n")
	for _, t := range r.Targets {
		if !t.Met && t.Explanation != "" {
			w("- *%s*: %s\n", t.Name, t.Explanation)
		}
	}
	w("\n")

	d := r.DataPlane
	w("### Data plane\n\n")
	w("Open-loop constant rate (fortio's `periodic`, `fhttp` and `fgrpc` packages, histogram resolution 10 µs), " +
		"a Go upstream answering 1 KiB, all on loopback, in two protocols:\n\n")
	for _, p := range protocols {
		if what := d.Protocols[p]; what != "" {
			w("- %s: %s.\n", protocolName(p), what)
		}
	}
	w("\nEach cell is the median of %d repetitions of %g s after %g s of warm-up; the arms of both protocols "+
		"are interleaved in every repetition. Arms: `direct` to the upstream; `sluice-1hop` through one sidecar's "+
		"outbound listener to the upstream (a ServiceEntry, its gRPC port declared `protocol: GRPC`); `sluice-2hop` "+
		"through the caller's sidecar and the callee's sidecar (the mesh path: the sidecars hold workload certificates and the callee's "+
		"PeerAuthentication is STRICT, so the hop between them is mutual TLS); each protocol has its own pair of sidecars, "+
		"so a cell's RSS is that of sidecars carrying only its protocol; `nginx` and `haproxy`, one hop each, "+
		"keep-alive to the upstream, access logs off, one worker (for gRPC: nginx's `grpc_pass` behind an `http2` "+
		"listener, HAProxy's `proto h2` on the bind and the server). Before the load, one request of each arm is "+
		"checked to reach the upstream on the address of its last hop. *Added* is over `direct` of the same protocol "+
		"in the same run. CPU is the proxy processes' utime+stime from /proc (both sidecars for `sluice-2hop`, master "+
		"and worker for nginx); CPU seconds per 1,000 requests equals vCPU per 1,000 rps. Peak RSS is VmHWM (summed "+
		"likewise).\n\n",
		d.Repetitions, d.DurationS, d.WarmupS)
	for _, k := range sortedKeys(d.Skipped) {
		w("Arm `%s` skipped: %s\n\n", k, d.Skipped[k])
	}
	for _, p := range protocols {
		w("#### %s\n\n", protocolName(p))
		w("| rps | conns | arm | p50 | p90 | p99 | p99.9 | added p50 | added p99 | added p99.9 | CPU s / 1k req | peak RSS |\n")
		w("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
		for _, c := range d.Cells {
			if c.Protocol != p {
				continue
			}
			l, a := c.Latency, c.Added
			cpu, rss := "—", "—"
			addP50, addP99, addP999 := "—", "—", "—"
			if c.Arm != armDirect {
				cpu = fmt.Sprintf("%.3f", c.CPUSecPer1k)
				rss = fmt.Sprintf("%.1f MB", c.PeakRSSMB)
				addP50, addP99, addP999 = addMs(a.P50), addMs(a.P99), addMs(a.P999)
			}
			w("| %d | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", c.Rate, c.Connections, c.Arm,
				ms(l.P50), ms(l.P90), ms(l.P99), ms(l.P999), addP50, addP99, addP999, cpu, rss)
		}
		w("\nLatencies in ms.\n\n")
		w("Added p99 of one Sluice hop over nginx's and HAProxy's, %s (below 1 is better than the reference):\n\n", protocolName(p))
		w("| rps | conns | Sluice / nginx | Sluice / HAProxy |\n|---|---|---|---|\n")
		for _, c := range d.Cells {
			if c.Arm == armSluice1 && c.Protocol == p {
				w("| %d | %d | %s | %s |\n", c.Rate, c.Connections, ratio(c.RatioNginx), ratio(c.RatioHAProxy))
			}
		}
		w("\n")
	}

	w("#### Highest rates\n\n")
	w("Two searches per arm, each with rates growing from the first until one fails, then bisected; each figure says what bound it:\n\n")
	w("- *throughput*, over %d connections: the highest rate sustained, whatever its p99: actual at least 97 %% of the rate asked and no errors. "+
		"*rps per proxy core* is its rate over the proxy's CPU use in that run, the busiest the proxy was while keeping up.\n", throughputConns)
	w("- *p99 < 1 ms*, over %d connections: the highest rate sustained with p99 under 1 ms (0 when none tried was; the row then shows the lowest rate tried). "+
		"Over %d connections the load generator's own queueing puts even the direct arm's p99 over 1 ms on this machine, at rates every proxy carries; over %d it judges the proxy.\n\n",
		lowLatencyConns, throughputConns, lowLatencyConns)
	w("The proxy runs on one core, the load generator and the upstreams on the other. Their CPU use at the first rate that " +
		"failed, that of the benchmark's other processes (*rest of run*: the control plane, PostgreSQL, the proxies of other " +
		"arms), the machine's busy time that was none of these (*other work*: processes that are not the benchmark's), and " +
		"the direct arm's p99 at that rate tell what bound the search. The CPU figures of a row are from that row's own run.\n\n")
	w("| protocol | arm | criterion | conns | asked | sustained rps | p99 | proxy CPU | load generator CPU | rest of run | other work | rps per proxy core | bound by |\n")
	w("|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, mr := range d.MaxRate {
		for i, f := range []RateFigure{mr.Throughput, mr.LowLatency} {
			crit, perCore := "throughput", fmt.Sprintf("%.0f", mr.RPSPerCore)
			if i == 1 {
				crit, perCore = "p99 < 1 ms", "—"
			}
			w("| %s | %s | %s | %d | %d | %.0f | %s ms | %.2f cores | %.2f cores | %.2f cores | %.2f cores | %s | %s |\n", protocolName(mr.Protocol), mr.Arm, crit,
				f.Conns, f.AskedRPS, f.RPS, ms(f.P99), f.ProxyCores, f.LoadCores, f.RestCores, f.OtherCores, perCore, f.Bound)
		}
	}
	w("\n")

	w("### Control plane\n\n")
	w("Simulated proxies: each a real ADS stream (go-control-plane's protos on a plain gRPC client) " +
		"that subscribes as sluice-proxy does (LDS and CDS wildcard, then the RDS and EDS names they " +
		"hold) and ACKs every response, against a real sluice-server with PostgreSQL. Propagation is " +
		"from a weight change's commit (`PUT /api/v1/namespaces/default/services/{name}/traffic`) to " +
		"the last proxy's ACK, both stamped by the server; the first change of a run creates the split " +
		"(new subsets, so new clusters and endpoints for every proxy besides routes) and is shown on its own. CPU per push includes the API calls that " +
		"make the change and poll for the ACKs. RSS idle and connected are read once memory has settled " +
		"(20 s after the server starts or the last proxy syncs, in which the server returns the pages a " +
		"push storm freed); RSS per proxy is (RSS connected − RSS idle) / N; peak is the server's VmHWM " +
		"by then, the connect storm's in-flight configuration included. " +
		"Resync is from the restarted server's exec to every stream holding an ACKed LDS, CDS, RDS and EDS.\n\n")
	w("| proxies | services | changes | propagation p50 / p99 / max | first split | server CPU per push | server RSS idle → connected (peak) | RSS per proxy | connect all | ready after restart | resync after restart |\n")
	w("|---|---|---|---|---|---|---|---|---|---|---|\n")
	var stopped []CPRun
	for _, c := range r.ControlPlane.Runs {
		if c.Error != "" {
			stopped = append(stopped, c)
		}
		w("| %d | %d | %d | %.0f / %.0f / %.0f ms | %.0f ms | %.0f ms | %.0f → %.0f MB (%.0f MB) | %.3f MB | %.1f s | %.1f s | %.1f s |\n",
			c.Proxies, c.Services, c.Changes, c.PropagationP50, c.PropagationP99, c.PropagationMax, c.FirstSplitMs, c.CPUPerPushMs,
			c.BaselineRSSMB, c.ConnectedRSSMB, c.PeakRSSMB, c.RSSPerProxyMB, c.ConnectAllS, c.ServerReadyS, c.ResyncAfterRest)
	}
	w("\n")

	for _, c := range stopped {
		w("The run with %d proxies stopped early: %s. Its row holds what was measured before that (0 where nothing was).\n\n", c.Proxies, c.Error)
	}
	t := r.Telemetry
	w("### Telemetry intake\n\n")
	w("Command: `%s` (the intake benchmark: %d simulated sidecars in another process, each reporting once per simulated second over loopback gRPC, real PostgreSQL).\n\n", t.Command, t.Sidecars)
	w("| figure | value |\n|---|---|\n")
	w("| server CPU per second of reports | %.0f ms (%.2f cores) |\n", t.ServerCPUMsPerS, t.ServerCoreFraction)
	w("| simulated sidecars' CPU per second | %.0f ms |\n", t.SidecarsCPUMsPerS)
	w("| rows written to PostgreSQL | %.0f rows/s |\n", t.RowsPerS)
	w("| live stream lag, request to tap entry (p50 / p99 / max of %d entries) | %.0f / %.0f / %.0f ms |\n\n", t.LiveLagEntries, t.LiveLagP50, t.LiveLagP99, t.LiveLagMax)
	w("Live stream lag: %s.\n\n", t.LiveStreamLag)

	w("### Sidecar profiles\n\n")
	for _, pp := range []struct {
		proto string
		p     Profiles
	}{{protoHTTP1, r.Profiles}, {protoGRPC, r.GRPCProfiles}} {
		p := pp.p
		if p.CPUFile == "" {
			continue
		}
		w("#### %s\n\n", protocolName(pp.proto))
		w("%s. Files: `%s`, `%s` (open with `go tool pprof`).\n\n", p.Load, p.CPUFile, p.HeapFile)
		w("| CPU: function | flat | cum |\n|---|---|---|\n")
		for _, e := range p.TopCPU {
			w("| `%s` | %.1f %% | %.1f %% |\n", e.Function, e.FlatPct, e.CumPct)
		}
		w("\n| allocated bytes: function | flat | cum |\n|---|---|---|\n")
		for _, e := range p.TopAlloc {
			w("| `%s` | %.1f %% | %.1f %% |\n", e.Function, e.FlatPct, e.CumPct)
		}
		w("\n")
	}
	return b.String()
}

// sortedKeys returns m's keys in order.
func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func orNone(s string) string {
	if s == "" {
		return "(not installed)"
	}
	return s
}

func ratio(p *float64) string {
	if p == nil || math.IsNaN(*p) {
		return "—"
	}
	return fmt.Sprintf("%.2f", *p)
}
