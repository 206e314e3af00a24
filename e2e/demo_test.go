package e2e

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `make demo`'s program starts the whole demo mesh, serves Bookinfo, stops every process it
// started on Ctrl-C, and starts again on the same data directory.
func TestDemoStartsAndStops(t *testing.T) {
	parent, err := os.MkdirTemp("", "sluice-demo-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(parent) })
	if err := os.Chmod(parent, 0o755); err != nil { // reachable by PostgreSQL's user under root
		t.Fatal(err)
	}
	dataDir := filepath.Join(parent, "data")
	httpAddr, xdsAddr := freePort(t), freePort(t)

	for run := 1; run <= 2; run++ {
		cmd := exec.Command(filepath.Join(binDir, "sluice-demo"), "--bin", binDir, "--data-dir", dataDir,
			"--http-addr", httpAddr, "--xds-addr", xdsAddr)
		cmd.Env = append(os.Environ(), "SLUICE_ADMIN_PASSWORD=")
		cmd.Stderr = &logTail{t: t, prefix: "demo"}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		ready := make(chan string, 1)
		go func() {
			var banner strings.Builder
			s := bufio.NewScanner(stdout)
			for s.Scan() {
				banner.WriteString(s.Text() + "\n")
				if strings.HasPrefix(s.Text(), "State is kept in") {
					ready <- banner.String()
				}
			}
		}()
		var banner string
		select {
		case banner = <-ready:
		case <-time.After(3 * time.Minute):
			_ = cmd.Process.Kill()
			t.Fatalf("run %d: the demo did not come up", run)
		}
		if !strings.Contains(banner, "sign in as admin, password demo-") {
			t.Errorf("run %d: banner does not give the admin password:\n%s", run, banner)
		}
		eventually(t, 30*time.Second, "Bookinfo through the ingress gateway", func() error {
			return httpOK("http://127.0.0.10:8080/productpage")
		})

		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d: demo exit after Ctrl-C: %v", run, err)
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("run %d: the demo did not stop", run)
		}
		if left := processesUsing(t, binDir, dataDir); len(left) > 0 {
			t.Fatalf("run %d: processes left after the demo stopped:\n%s", run, strings.Join(left, "\n"))
		}
	}
}

// processesUsing lists the running processes whose command line mentions any of the paths.
func processesUsing(t *testing.T, paths ...string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue // gone, or a zombie
		}
		stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if strings.Contains(string(stat), ") Z ") {
			continue
		}
		cmdline := strings.ReplaceAll(string(b), "\x00", " ")
		for _, p := range paths {
			if strings.Contains(cmdline, p) {
				out = append(out, e.Name()+": "+cmdline)
				break
			}
		}
	}
	return out
}
