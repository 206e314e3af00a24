package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"time"
)

// runControlPlane measures the control plane with n simulated proxies, on a freshly
// restarted server. When the server has a profiler, its heap with the proxies connected and
// its CPU during the weight changes go to profDir (server-heap-N.pprof, server-cpu-N.pprof).
func runControlPlane(ctx context.Context, log *slog.Logger, cp *controlPlane, n, changes int, profDir string) (CPRun, error) {
	services := min(200, max(n/2, 1))
	run := CPRun{Proxies: n, Services: services, Changes: changes}
	cp.proc.stop(30 * time.Second)
	if err := cp.start(ctx); err != nil {
		return run, err
	}
	settle := 20 * time.Second
	if n < 1000 {
		settle = 6 * time.Second // a small run's garbage may stay under the server's threshold
	}
	idle, err := cp.settledMemory(ctx, settle)
	if err != nil {
		return run, err
	}
	run.BaselineRSSMB = round(float64(idle.RSSKB)/1024, 1)

	log.Info("control plane: connecting simulated proxies", "proxies", n, "services", services)
	sim, err := newSimulator(log, cp.xdsAddr, n, services)
	if err != nil {
		return run, err
	}
	defer sim.stop()
	start := time.Now()
	sim.start(ctx)
	if err := sim.waitSynced(ctx, 10*time.Minute); err != nil {
		return run, err
	}
	run.ConnectAllS = round(time.Since(start).Seconds(), 2)
	conn, err := cp.settledMemory(ctx, settle)
	if err != nil {
		return run, err
	}
	run.ConnectedRSSMB = round(float64(conn.RSSKB)/1024, 1)
	run.PeakRSSMB = round(float64(conn.HWMKB)/1024, 1)
	run.RSSPerProxyMB = round(max(float64(conn.RSSKB-idle.RSSKB), 0)/1024/float64(n), 4)
	cpuProfile := func() error { return nil }
	if cp.debugAddr != "" {
		base := "http://" + cp.debugAddr + "/debug/pprof/"
		if err := fetch(ctx, base+"heap?gc=1", filepath.Join(profDir, fmt.Sprintf("server-heap-%d.pprof", n))); err != nil {
			return run, err
		}
		// The CPU profile covers the changes below, about two seconds each.
		errc := make(chan error, 1)
		go func() {
			errc <- fetch(ctx, base+"profile?seconds="+strconv.Itoa(2*(changes+1)), filepath.Join(profDir, fmt.Sprintf("server-cpu-%d.pprof", n)))
		}()
		cpuProfile = func() error { return <-errc }
	}

	// The first change creates the split: the service's subsets are new, so every proxy gets
	// new clusters and endpoints besides its routes, and asks for the new endpoint names. It
	// is reported on its own; the weight changes after it move routes only.
	// Each run splits a service no earlier run split (runs share the database).
	service := simService(cp.splits % services)
	cp.splits++
	var lat, cpu []float64
	for i := range changes + 1 {
		body := `{"weights":{"v1":90,"v2":10}}`
		if i%2 == 0 {
			body = `{"weights":{"v1":10,"v2":90}}`
		}
		before, err := measure([]int{cp.proc.pid()})
		if err != nil {
			return run, err
		}
		rev, err := cp.write("PUT", "/api/v1/namespaces/default/services/"+service+"/traffic", "application/json", body)
		if err != nil {
			return run, err
		}
		if rev == 0 {
			return run, fmt.Errorf("PUT %s traffic %s changed nothing: the benchmark wants every change to be a new revision", service, body)
		}
		// The proxies' sync times are stamped by the server, so polling less often only
		// spares its CPU without blurring the figure. Listing 1,000 proxies costs the server
		// about 70 ms of CPU, so the first look waits a second: a list taken during the push
		// would slow the push it measures.
		last, err := cp.waitApplied(ctx, rev, n, time.Second)
		if err != nil {
			return run, err
		}
		after, err := measure([]int{cp.proc.pid()})
		if err != nil {
			return run, err
		}
		committed, err := cp.revisionTime(rev)
		if err != nil {
			return run, err
		}
		ms := float64(last.Sub(committed).Microseconds()) / 1000
		log.Info("weight change propagated", "proxies", n, "revision", rev, "ms", round(ms, 1), "creates_split", i == 0)
		if i == 0 {
			run.FirstSplitMs = round(ms, 1)
		} else {
			lat = append(lat, ms)
			cpu = append(cpu, (after.CPUSeconds-before.CPUSeconds)*1000)
		}
		time.Sleep(300 * time.Millisecond)
	}
	run.PropagationP50, run.PropagationP99, run.PropagationMax = round(percentile(lat, 50), 1), round(percentile(lat, 99), 1), round(percentile(lat, 100), 1)
	run.CPUPerPushMs = round(median(cpu), 1)
	if err := cpuProfile(); err != nil {
		return run, err
	}

	log.Info("control plane: restarting the server", "proxies", n)
	cp.proc.stop(30 * time.Second)
	sim.gen.Add(1)
	t0 := time.Now()
	if err := cp.start(ctx); err != nil {
		return run, err
	}
	run.ServerReadyS = round(time.Since(t0).Seconds(), 2)
	if err := sim.waitSynced(ctx, 10*time.Minute); err != nil {
		return run, err
	}
	run.ResyncAfterRest = round(time.Since(t0).Seconds(), 2)
	return run, nil
}

// settledMemory measures the server once its memory has settled: the server returns the
// pages a push storm freed within about fifteen seconds of quiet (server/memory.go), so RSS
// is read after wait (twenty seconds for the large runs), and shows what the server holds.
// HWMKB keeps the peak.
func (cp *controlPlane) settledMemory(ctx context.Context, wait time.Duration) (usage, error) {
	select {
	case <-ctx.Done():
		return usage{}, ctx.Err()
	case <-time.After(wait):
	}
	return measure([]int{cp.proc.pid()})
}
