package main

import (
	"context"
	"log/slog"
	"time"
)

// runControlPlane measures the control plane with n simulated proxies, on a freshly
// restarted server.
func runControlPlane(ctx context.Context, log *slog.Logger, cp *controlPlane, n, changes int) (CPRun, error) {
	services := min(200, max(n/2, 1))
	run := CPRun{Proxies: n, Services: services, Changes: changes}
	cp.proc.stop(30 * time.Second)
	if err := cp.start(ctx); err != nil {
		return run, err
	}
	time.Sleep(2 * time.Second)
	idle, err := measure([]int{cp.proc.pid()})
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
	time.Sleep(2 * time.Second)
	conn, err := measure([]int{cp.proc.pid()})
	if err != nil {
		return run, err
	}
	run.ConnectedRSSMB = round(float64(conn.RSSKB)/1024, 1)
	run.RSSPerProxyMB = round(max(float64(conn.RSSKB-idle.RSSKB), 0)/1024/float64(n), 4)

	service := simService(0)
	var lat, cpu []float64
	for i := range changes {
		body := `{"weights":{"v1":90,"v2":10}}`
		if i%2 == 1 {
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
		last, err := cp.waitApplied(ctx, rev, n, 100*time.Millisecond)
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
		lat = append(lat, float64(last.Sub(committed).Microseconds())/1000)
		cpu = append(cpu, (after.CPUSeconds-before.CPUSeconds)*1000)
		log.Info("weight change propagated", "proxies", n, "revision", rev, "ms", round(lat[len(lat)-1], 1))
		time.Sleep(300 * time.Millisecond)
	}
	run.PropagationP50, run.PropagationP99, run.PropagationMax = round(percentile(lat, 50), 1), round(percentile(lat, 99), 1), round(percentile(lat, 100), 1)
	run.CPUPerPushMs = round(median(cpu), 1)

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
