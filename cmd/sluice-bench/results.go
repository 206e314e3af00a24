package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
)

// Results is everything one run measured; results.json holds it and BENCHMARKS.md's generated
// section is written from it. Every figure's unit is in its JSON name.
type Results struct {
	Date    string  `json:"date"`
	Command string  `json:"command"`
	Mode    string  `json:"mode"` // "full" or "quick"
	Machine Machine `json:"machine"`

	DataPlane    DataPlane    `json:"data_plane"`
	ControlPlane ControlPlane `json:"control_plane"`
	Telemetry    Telemetry    `json:"telemetry"`
	Profiles     Profiles     `json:"profiles"`      // the HTTP/1.1 sidecar's
	GRPCProfiles Profiles     `json:"profiles_grpc"` // the gRPC sidecar's
	Targets      []Target     `json:"targets"`
}

// Machine describes where the run happened.
type Machine struct {
	NProc     int    `json:"nproc"`
	CPUModel  string `json:"cpu_model"`
	Kernel    string `json:"kernel"`
	GoVersion string `json:"go_version"`
	Nginx     string `json:"nginx_version"`
	HAProxy   string `json:"haproxy_version"`
	// Pinned says whether the proxies ran on CPU 0 and the load generator on CPU 1.
	Pinned       bool       `json:"pinned"`
	LoadAvgStart [3]float64 `json:"load_average_start"`
	LoadAvgEnd   [3]float64 `json:"load_average_end"`
}

// Latency is a latency distribution's percentiles, in milliseconds.
type Latency struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	P999 float64 `json:"p999_ms"`
}

// sub returns l minus o, percentile by percentile.
func (l Latency) sub(o Latency) Latency {
	return Latency{P50: l.P50 - o.P50, P90: l.P90 - o.P90, P99: l.P99 - o.P99, P999: l.P999 - o.P999}
}

// DataPlane is the open-loop latency, CPU and memory of each arm.
type DataPlane struct {
	// Protocols names what each protocol key of the cells means.
	Protocols   map[string]string `json:"protocols"`
	Rates       []int             `json:"rates_rps"`
	Connections []int             `json:"connections"`
	DurationS   float64           `json:"duration_s"`
	WarmupS     float64           `json:"warmup_s"`
	Repetitions int               `json:"repetitions"`
	Cells       []Cell            `json:"cells"`
	MaxRate     []MaxRate         `json:"max_rate"`
	// Skipped names the arms not run ("http1/nginx", "grpc/haproxy") and why.
	Skipped map[string]string `json:"skipped,omitempty"`
}

// Arm names.
const (
	armDirect  = "direct"
	armSluice1 = "sluice-1hop"
	armSluice2 = "sluice-2hop"
	armNginx   = "nginx"
	armHAProxy = "haproxy"
)

// arms lists the arms in table order.
var arms = []string{armDirect, armSluice1, armSluice2, armNginx, armHAProxy}

// Cell is one arm of one protocol at one rate and connection count: medians over the
// repetitions.
type Cell struct {
	Arm         string  `json:"arm"`
	Protocol    string  `json:"protocol"` // "http1" or "grpc"
	Rate        int     `json:"rate_rps"`
	Connections int     `json:"connections"`
	Latency     Latency `json:"latency"`
	// Added is Latency minus the direct arm's of the same protocol in the same run.
	Added     Latency `json:"added_over_direct"`
	ActualRPS float64 `json:"actual_rps"`
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	// CPUSecPer1k is the proxy processes' CPU seconds per 1,000 requests; numerically the
	// same as vCPU per 1,000 rps.
	CPUSecPer1k  float64 `json:"proxy_cpu_s_per_1k_requests"`
	VCPUPer1kRPS float64 `json:"proxy_vcpu_per_1k_rps"`
	PeakRSSMB    float64 `json:"proxy_peak_rss_mb"`
	RSSMB        float64 `json:"proxy_rss_mb"`
	// RatioNginx and RatioHAProxy are this arm's added p99 over nginx's and HAProxy's of the
	// same protocol (sluice-1hop only).
	RatioNginx   *float64 `json:"added_p99_ratio_to_nginx,omitempty"`
	RatioHAProxy *float64 `json:"added_p99_ratio_to_haproxy,omitempty"`
}

// MaxRate is how fast one arm goes, by two criteria measured in one search.
type MaxRate struct {
	Arm      string `json:"arm"`
	Protocol string `json:"protocol"`
	// Throughput is the highest rate sustained whatever the p99: actual at least 97 % of
	// the rate asked, and no errors. Its RPS is 0 when not even the lowest rate tried was.
	Throughput RateFigure `json:"throughput"`
	// LowLatency is the highest rate sustained with p99 under 1 ms; its RPS is 0 when no
	// rate tried passed, and its other figures are then the lowest rate's.
	LowLatency RateFigure `json:"p99_under_1ms"`
	// RPSPerCore is Throughput's rate over the proxy's CPU use at it: the rate one fully
	// used core would carry at the cost per request measured where the proxy was busiest
	// while keeping up.
	RPSPerCore float64 `json:"rps_per_proxy_core"`
}

// RateFigure is one run of a max-rate search and what stopped the search above it.
type RateFigure struct {
	AskedRPS int     `json:"asked_rps"`
	Conns    int     `json:"connections"` // of the search: throughputConns or lowLatencyConns
	RPS      float64 `json:"rps"`         // actual
	P99      float64 `json:"p99_ms"`
	// ProxyCores is the proxy's CPU use, LoadCores this driver's (the load generator and
	// the upstreams, on the other core), RestCores the benchmark's other processes' (the
	// control plane, PostgreSQL, the proxies of other arms), and OtherCores the machine's
	// busy time that was none of theirs (other work), all in cores.
	ProxyCores float64 `json:"proxy_cpu_cores"`
	LoadCores  float64 `json:"load_generator_cpu_cores"`
	RestCores  float64 `json:"benchmark_other_processes_cpu_cores"`
	OtherCores float64 `json:"other_work_cpu_cores"`
	// Bound says in words what stopped the search above this rate: the proxy's core, the
	// load generator's, the proxy's own tail latency, the machine, or the search's limit.
	Bound string `json:"bound"`
}

// ControlPlane is the ADS simulator's figures, one run per proxy count.
type ControlPlane struct {
	Runs []CPRun `json:"runs"`
}

// CPRun is the control plane with N simulated proxies.
type CPRun struct {
	Proxies  int `json:"proxies"`
	Services int `json:"services"`
	Changes  int `json:"changes"`
	// Propagation is from a weight change's commit to the last proxy's ACK, server-stamped.
	PropagationP50 float64 `json:"propagation_p50_ms"`
	PropagationP99 float64 `json:"propagation_p99_ms"`
	PropagationMax float64 `json:"propagation_max_ms"`
	// FirstSplitMs is the same for the change that creates the split (new subsets: clusters
	// and endpoints change for every proxy, not only routes); it is not among the changes above.
	FirstSplitMs float64 `json:"first_split_ms"`
	// CPUPerPushMs is the server's CPU time per change pushed to every proxy (includes the
	// API calls of the change and of the wait for the ACKs).
	CPUPerPushMs   float64 `json:"server_cpu_ms_per_push"`
	BaselineRSSMB  float64 `json:"server_rss_idle_mb"`
	ConnectedRSSMB float64 `json:"server_rss_connected_mb"`
	// PeakRSSMB is the server's peak RSS (VmHWM) by then: the connect storm's garbage included.
	PeakRSSMB       float64 `json:"server_rss_peak_mb"`
	RSSPerProxyMB   float64 `json:"server_rss_per_proxy_mb"`
	ConnectAllS     float64 `json:"connect_all_s"`
	ServerReadyS    float64 `json:"restart_ready_s"`
	ResyncAfterRest float64 `json:"resync_after_restart_s"`
	// Error says why the run stopped before all its figures were measured (full mode goes
	// on to the next phase; quick mode fails).
	Error string `json:"error,omitempty"`
}

// Telemetry is the intake of simulated sidecars' reports.
type Telemetry struct {
	Command            string  `json:"command"`
	Sidecars           int     `json:"sidecars"`
	Intervals          int     `json:"intervals"`
	ServerCPUMsPerS    float64 `json:"server_cpu_ms_per_s"`
	SidecarsCPUMsPerS  float64 `json:"simulated_sidecars_cpu_ms_per_s"`
	RowsPerS           float64 `json:"rows_per_s"`
	ServerCoreFraction float64 `json:"server_cpu_cores"`
	// LiveStreamLag says how the live stream's lag was measured; the figures are from a
	// request's time to its tap entry's arrival on GET /api/v1/live.
	LiveStreamLag  string  `json:"live_stream_lag_method"`
	LiveLagEntries int     `json:"live_lag_entries"`
	LiveLagP50     float64 `json:"live_lag_p50_ms"`
	LiveLagP99     float64 `json:"live_lag_p99_ms"`
	LiveLagMax     float64 `json:"live_lag_max_ms"`
}

// Profiles are the sidecar's CPU and allocation profiles under load.
type Profiles struct {
	Load     string         `json:"load"`
	CPUFile  string         `json:"cpu_profile"`
	HeapFile string         `json:"alloc_profile"`
	TopCPU   []ProfileEntry `json:"top_cpu"`
	TopAlloc []ProfileEntry `json:"top_alloc_space"`
}

// Target is one of the targets and whether this run met it.
type Target struct {
	Name        string `json:"name"`
	Target      string `json:"target"`
	Measured    string `json:"measured"`
	Met         bool   `json:"met"`
	Explanation string `json:"explanation,omitempty"`
}

// writeJSON writes r to dir/results.json.
func writeJSON(dir string, r *Results) error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// check returns every figure that is missing or not sane: negative, NaN, a p50 above its
// p99, no requests. It never compares a figure with a target.
func check(r *Results) error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	num := func(what string, v float64) {
		if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
			bad("%s = %v: want a non-negative number", what, v)
		}
	}
	if r.Machine.NProc <= 0 || r.Machine.GoVersion == "" {
		bad("machine: nproc or Go version missing")
	}
	seen := map[string]bool{}
	for _, c := range r.DataPlane.Cells {
		at := fmt.Sprintf("data_plane %s at %d rps, %d connections", armKey(c.Protocol, c.Arm), c.Rate, c.Connections)
		seen[armKey(c.Protocol, c.Arm)] = true
		if c.Requests <= 0 {
			bad("%s: no requests", at)
		}
		if c.Errors*100 > c.Requests {
			bad("%s: %d of %d requests failed", at, c.Errors, c.Requests)
		}
		l := c.Latency
		for name, v := range map[string]float64{"p50": l.P50, "p90": l.P90, "p99": l.P99, "p99.9": l.P999} {
			num(at+" "+name, v)
			if v == 0 {
				bad("%s %s is 0", at, name)
			}
		}
		if !(l.P50 <= l.P90 && l.P90 <= l.P99 && l.P99 <= l.P999) {
			bad("%s: percentiles out of order: %+v", at, l)
		}
		num(at+" actual rps", c.ActualRPS)
		if c.Arm != armDirect {
			num(at+" CPU per 1k requests", c.CPUSecPer1k)
			num(at+" vCPU per 1k rps", c.VCPUPer1kRPS)
			if c.PeakRSSMB <= 0 || c.PeakRSSMB < c.RSSMB {
				bad("%s: peak RSS %v MB below RSS %v MB or not positive", at, c.PeakRSSMB, c.RSSMB)
			}
		}
		for name, p := range map[string]*float64{"ratio to nginx": c.RatioNginx, "ratio to HAProxy": c.RatioHAProxy} {
			if p != nil && (math.IsNaN(*p) || math.IsInf(*p, 0)) {
				bad("%s %s = %v", at, name, *p)
			}
		}
	}
	for _, p := range protocols {
		for _, a := range arms {
			if k := armKey(p, a); !seen[k] && r.DataPlane.Skipped[k] == "" {
				bad("data_plane: arm %s neither measured nor skipped with a reason", k)
			}
		}
	}
	for _, m := range r.DataPlane.MaxRate {
		at := "max rate " + armKey(m.Protocol, m.Arm)
		for name, f := range map[string]RateFigure{"throughput": m.Throughput, "p99 under 1 ms": m.LowLatency} {
			num(at+" "+name+" rps", f.RPS)
			num(at+" "+name+" proxy cores", f.ProxyCores)
			num(at+" "+name+" load generator cores", f.LoadCores)
			num(at+" "+name+" other cores", f.OtherCores)
			num(at+" "+name+" benchmark's other processes' cores", f.RestCores)
			num(at+" "+name+" p99", f.P99)
			if f.Bound == "" || f.AskedRPS <= 0 || f.P99 <= 0 {
				bad("%s %s: no bound, rate asked or p99", at, name)
			}
		}
		if m.Throughput.RPS <= 0 || m.Throughput.ProxyCores <= 0 {
			bad("%s: no rate sustained, or no proxy CPU measured at it", at)
		}
		if m.Throughput.Conns != throughputConns || m.LowLatency.Conns != lowLatencyConns {
			bad("%s: searched over %d and %d connections, want %d and %d", at, m.Throughput.Conns, m.LowLatency.Conns, throughputConns, lowLatencyConns)
		}
		if m.RPSPerCore <= 0 || math.IsNaN(m.RPSPerCore) || math.IsInf(m.RPSPerCore, 0) {
			bad("%s: rps per proxy core %v", at, m.RPSPerCore)
		}
	}
	if len(r.DataPlane.MaxRate) == 0 {
		bad("data_plane: no max-rate figure")
	}
	if len(r.ControlPlane.Runs) == 0 {
		bad("control_plane: no run")
	}
	for _, c := range r.ControlPlane.Runs {
		at := fmt.Sprintf("control_plane with %d proxies", c.Proxies)
		if c.Error != "" {
			bad("%s: %s", at, c.Error)
		}
		for name, v := range map[string]float64{"p50": c.PropagationP50, "p99": c.PropagationP99, "max": c.PropagationMax, "first split": c.FirstSplitMs,
			"CPU per push": c.CPUPerPushMs, "idle RSS": c.BaselineRSSMB, "connected RSS": c.ConnectedRSSMB,
			"RSS per proxy": c.RSSPerProxyMB, "connect all": c.ConnectAllS, "resync": c.ResyncAfterRest} {
			num(at+" "+name, v)
		}
		if !(c.PropagationP50 <= c.PropagationP99 && c.PropagationP99 <= c.PropagationMax) {
			bad("%s: propagation p50 %v, p99 %v, max %v out of order", at, c.PropagationP50, c.PropagationP99, c.PropagationMax)
		}
		if c.Changes <= 0 || c.BaselineRSSMB <= 0 || c.ResyncAfterRest <= 0 || c.FirstSplitMs <= 0 || c.PeakRSSMB < c.ConnectedRSSMB {
			bad("%s: changes, idle RSS, resync time or first split missing, or peak RSS below RSS", at)
		}
	}
	t := r.Telemetry
	num("telemetry server CPU", t.ServerCPUMsPerS)
	num("telemetry rows/s", t.RowsPerS)
	if t.RowsPerS <= 0 || t.ServerCPUMsPerS <= 0 {
		bad("telemetry: rows per second or server CPU missing")
	}
	num("live lag p50", t.LiveLagP50)
	if t.LiveLagEntries <= 0 || !(t.LiveLagP50 <= t.LiveLagP99 && t.LiveLagP99 <= t.LiveLagMax) {
		bad("telemetry: live stream lag missing or out of order (%d entries, p50 %v, p99 %v, max %v)", t.LiveLagEntries, t.LiveLagP50, t.LiveLagP99, t.LiveLagMax)
	}
	for name, p := range map[string]Profiles{"HTTP/1.1": r.Profiles, "gRPC": r.GRPCProfiles} {
		if len(p.TopCPU) == 0 || len(p.TopAlloc) == 0 {
			bad("profiles of the %s sidecar: no top CPU or allocation entries", name)
		}
	}
	if len(r.Targets) == 0 {
		bad("targets: none evaluated")
	}
	return errors.Join(errs...)
}
