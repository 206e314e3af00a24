package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// `make demo`'s program starts the whole demo mesh with mutual TLS: every proxy joins the
// authenticated xDS port with a workload token the demo made through the API, holds a
// certificate for its SPIFFE identity, and Bookinfo works through the ingress gateway. It
// stops every process it started on Ctrl-C, and starts again on the same data directory with
// the same tokens.
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
	tokenFile := filepath.Join(dataDir, "demo-identity", "default.bookinfo-productpage.token")
	var firstToken string

	for run := 1; run <= 2; run++ {
		cmd := exec.Command(filepath.Join(binDir, "sluice-demo"), "--bin", binDir, "--data-dir", dataDir,
			"--http-addr", httpAddr, "--xds-tls-addr", xdsAddr)
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
		if !strings.Contains(banner, "mutual TLS") || !strings.Contains(banner, "SPIFFE") {
			t.Errorf("run %d: banner does not say the mesh runs mTLS with SPIFFE identities:\n%s", run, banner)
		}
		// The product page calls details and reviews, which call ratings: all through the
		// sidecars, under the demo's mesh-wide STRICT PeerAuthentication.
		eventually(t, 30*time.Second, "Bookinfo through the ingress gateway", func() error {
			resp, err := client.Get("http://127.0.0.10:8080/productpage")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("productpage answered %d", resp.StatusCode)
			}
			for _, want := range []string{"Book Details", "PublisherA", "Reviews served by: reviews-"} {
				if !strings.Contains(string(b), want) {
					return fmt.Errorf("productpage lacks %q", want)
				}
			}
			if strings.Contains(string(b), "Error fetching") {
				return fmt.Errorf("productpage could not reach a service")
			}
			return nil
		})
		// STRICT: a client without a sidecar is refused at productpage's inbound port.
		direct := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
		eventually(t, 30*time.Second, "plaintext refused under the demo's STRICT PeerAuthentication", func() error {
			resp, err := direct.Get("http://127.0.0.4:9080/productpage")
			if err != nil {
				return nil
			}
			resp.Body.Close()
			return fmt.Errorf("a plaintext request to productpage's sidecar answered %d", resp.StatusCode)
		})
		var certs certsView
		if code, err := getJSON(context.Background(), "http://127.0.0.4:15000/certs", &certs); err != nil || code != http.StatusOK {
			t.Fatalf("run %d: GET /certs of productpage's sidecar: %d %v", run, code, err)
		}
		if certs.SPIFFEID != "spiffe://cluster.local/ns/default/sa/bookinfo-productpage" || !certs.Issued || certs.Serial == "" {
			t.Errorf("run %d: /certs of productpage's sidecar: %+v", run, certs)
		}
		var gw certsView
		if code, err := getJSON(context.Background(), "http://127.0.0.10:15000/certs", &gw); err != nil || code != http.StatusOK || !gw.Issued ||
			gw.SPIFFEID != "spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway" {
			t.Errorf("run %d: /certs of the ingress gateway: %d %v %+v", run, code, err, gw)
		}
		if n := adminStat(t, "127.0.0.4", "listener.downstream_cx_tls"); n == 0 {
			t.Errorf("run %d: productpage's sidecar counted no TLS connection from the gateway", run)
		}
		st, err := os.Stat(tokenFile)
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("run %d: %s has mode %v, want 0600", run, tokenFile, st.Mode().Perm())
		}
		token, _ := os.ReadFile(tokenFile)
		if run == 1 {
			firstToken = string(token)
		} else if string(token) != firstToken {
			t.Errorf("run %d made a new workload token where the first run's is still valid", run)
		}

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
