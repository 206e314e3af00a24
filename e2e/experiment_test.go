package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/internal/pgtest"
)

// upstreamStatus asks workload from's application to call url through its sidecar and
// returns the status it got.
func upstreamStatus(from *workload, url string) (int, error) {
	var res callResult
	code, err := getJSON(context.Background(), "http://"+from.addr+":18080/call?url="+url, &res)
	if err != nil {
		return 0, err
	}
	if code != http.StatusOK {
		return 0, fmt.Errorf("call %s: app answered %d", url, code)
	}
	return res.Status, nil
}

// experimentState reads an experiment's current state through sluicectl.
func experimentState(ctl sluicectl, name string) string {
	ctl.t.Helper()
	var out struct {
		Experiment *struct {
			State string `json:"state"`
		} `json:"experiment"`
	}
	if err := json.Unmarshal([]byte(ctl.ok("", "experiment", "get", "default/"+name, "-o", "json")), &out); err != nil {
		ctl.t.Fatal(err)
	}
	if out.Experiment == nil {
		return ""
	}
	return out.Experiment.State
}

// A FaultExperiment aborts every request to a service behind sidecars while it runs, and
// nothing when it is over; the VirtualService of the service is never edited. sluicectl
// starts, lists, shows and stops experiments.
func TestFaultExperiment(t *testing.T) {
	cp := startServer(t, pgtest.New(t, pgtest.Template{}))
	b := startWorkload(t, cp, "b", "v1")
	a := startWorkload(t, cp, "a", "v1")
	const url = "http://b:8080/"
	waitServes(t, a, url, instanceName(b, "b", "v1"))

	cp.apply(t, `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b, namespace: default}
spec:
  hosts: [b]
  http:
  - route:
    - destination: {host: b}
`)
	vsBefore := cp.resource(t, "virtualservices", "b")
	if n := len(cp.history(t, "virtualservices", "b")); n != 1 {
		t.Fatalf("the VirtualService has %d revisions, want 1", n)
	}
	if code, err := upstreamStatus(a, url); err != nil || code != http.StatusOK {
		t.Fatalf("before any experiment: %d %v", code, err)
	}

	dir := t.TempDir()
	ctl := sluicectl{t: t, env: []string{"SLUICE_SERVER=http://" + cp.httpAddr, "SLUICE_CONFIG=" + filepath.Join(dir, "config.json"), "SLUICE_TOKEN="}}
	ctl.ok(adminPassword+"\n", "login", "--username", "admin", "--password-stdin")
	file := func(name, duration string) string {
		p := filepath.Join(dir, name+".yaml")
		doc := fmt.Sprintf("apiVersion: sluice.dev/v1alpha1\nkind: FaultExperiment\nmetadata: {name: %s, namespace: default}\nspec:\n  host: b\n  abort: {httpStatus: 503, percentage: 100}\n  duration: %s\n", name, duration)
		if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}

	t.Run("runs for its duration, then finishes", func(t *testing.T) {
		out := ctl.ok("", "experiment", "start", "-f", file("b-abort", "20s"))
		if !strings.Contains(out, "faultexperiment/b-abort created") {
			t.Errorf("experiment start printed %q", out)
		}
		var states []string
		note := func() string {
			s := experimentState(ctl, "b-abort")
			if len(states) == 0 || states[len(states)-1] != s {
				states = append(states, s)
			}
			return s
		}
		eventually(t, 30*time.Second, "requests to b aborted with 503", func() error {
			note()
			code, err := upstreamStatus(a, url)
			if err != nil {
				return err
			}
			if code != http.StatusServiceUnavailable {
				return fmt.Errorf("status %d", code)
			}
			return nil
		})
		if s := note(); s != "running" {
			t.Errorf("while requests are aborted, the experiment is %q, want running", s)
		}
		list := ctl.ok("", "experiment", "list")
		if !strings.Contains(list, "b-abort") || !strings.Contains(list, "running") {
			t.Errorf("experiment list while running:\n%s", list)
		}
		eventually(t, 60*time.Second, "requests to b answered again after the experiment", func() error {
			note()
			code, err := upstreamStatus(a, url)
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("status %d", code)
			}
			return nil
		})
		eventually(t, 30*time.Second, "experiment finished", func() error {
			if s := note(); s != "finished" {
				return fmt.Errorf("state %s", s)
			}
			return nil
		})
		// Nothing may come after finished, and running must come before it.
		if i := slices.Index(states, "running"); i < 0 || states[len(states)-1] != "finished" || slices.Contains(states[i+1:len(states)-1], "running") {
			t.Errorf("states seen %v, want running then finished", states)
		}
		// Once over, the fault stays lifted.
		for i := 0; i < 5; i++ {
			if code, err := upstreamStatus(a, url); err != nil || code != http.StatusOK {
				t.Fatalf("after the experiment: %d %v", code, err)
			}
		}
	})

	t.Run("sluicectl experiment stop ends one early", func(t *testing.T) {
		ctl.ok("", "experiment", "start", "-f", file("b-long", "10m"))
		eventually(t, 30*time.Second, "requests to b aborted with 503", func() error {
			code, err := upstreamStatus(a, url)
			if err != nil {
				return err
			}
			if code != http.StatusServiceUnavailable {
				return fmt.Errorf("status %d", code)
			}
			return nil
		})
		out := ctl.ok("", "experiment", "stop", "b-long")
		if !strings.Contains(out, "Experiment default/b-long stopped") {
			t.Errorf("experiment stop printed %q", out)
		}
		eventually(t, 30*time.Second, "requests to b answered after the stop", func() error {
			code, err := upstreamStatus(a, url)
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("status %d", code)
			}
			return nil
		})
		if s := experimentState(ctl, "b-long"); s != "stopped" {
			t.Errorf("after stop the experiment is %q, want stopped", s)
		}
		get := ctl.ok("", "experiment", "get", "-n", "default", "b-long")
		if !strings.Contains(get, "stopped by admin") {
			t.Errorf("experiment get after stop:\n%s", get)
		}
		r := ctl.run("", "experiment", "stop", "b-long")
		wantOneLine(t, r, 1, "nothing to stop")
	})

	// The experiments lived only in the generated configuration.
	vsAfter := cp.resource(t, "virtualservices", "b")
	if vsAfter.Metadata.ResourceVersion != vsBefore.Metadata.ResourceVersion {
		t.Errorf("the VirtualService changed: resourceVersion %s, was %s", vsAfter.Metadata.ResourceVersion, vsBefore.Metadata.ResourceVersion)
	}
	if n := len(cp.history(t, "virtualservices", "b")); n != 1 {
		t.Errorf("the VirtualService has %d revisions after the experiments, want 1", n)
	}
}

// An experiment's guard reads the target's error rate from the sidecars' telemetry: on a
// service already failing half its requests, an experiment with a 20 % limit is stopped
// early, with the measured rate in its reason.
func TestFaultExperimentGuard(t *testing.T) {
	cp := startServer(t, pgtest.New(t, pgtest.Template{}))
	addr := nextAddr()
	instance := "b-v1-" + addr
	start(t, instance, "echo", []string{"--service", "b", "--instance", instance,
		"--http-addr", addr + ":18080", "--fail-every", "2"})
	startSidecar(t, cp, addr, "b", "v1", "--inbound", "8080=18080")
	a := startWorkload(t, cp, "a", "v1")
	const url = "http://b:8080/"
	eventually(t, 30*time.Second, "b reachable through the mesh", func() error {
		code, err := upstreamStatus(a, url)
		if err == nil && code != http.StatusOK && code != http.StatusInternalServerError {
			err = fmt.Errorf("status %d", code)
		}
		return err
	})

	dir := t.TempDir()
	ctl := sluicectl{t: t, env: []string{"SLUICE_SERVER=http://" + cp.httpAddr, "SLUICE_CONFIG=" + filepath.Join(dir, "config.json"), "SLUICE_TOKEN="}}
	ctl.ok(adminPassword+"\n", "login", "--username", "admin", "--password-stdin")
	p := filepath.Join(dir, "guarded.yaml")
	doc := "apiVersion: sluice.dev/v1alpha1\nkind: FaultExperiment\nmetadata: {name: guarded, namespace: default}\n" +
		"spec:\n  host: b\n  delay: {fixedDelay: 5ms, percentage: 100}\n  duration: 10m\n  guard: {maxErrorRate: 0.2, window: 10s}\n"
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	ctl.ok("", "experiment", "start", "-f", p)

	// Traffic keeps flowing until the guard trips; the wait is on the experiment's state.
	eventually(t, 90*time.Second, "the guard stops the experiment", func() error {
		for range 10 {
			if _, err := upstreamStatus(a, url); err != nil {
				return err
			}
		}
		if s := experimentState(ctl, "guarded"); s != "stopped_early" {
			return fmt.Errorf("state %q", s)
		}
		return nil
	})
	out := ctl.ok("", "experiment", "get", "default/guarded")
	if !strings.Contains(out, "guard tripped: error rate") || !strings.Contains(out, "exceeded maxErrorRate") {
		t.Errorf("experiment get does not give the guard's reason:\n%s", out)
	}
}
