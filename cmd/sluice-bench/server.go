package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// benchPassword is the first admin's password on the benchmark's server.
const benchPassword = "sluice-bench-admin-password"

// controlPlane is a running sluice-server on the driver's PostgreSQL database.
type controlPlane struct {
	cs                *children
	bin               string
	dbURL, dataDir    string
	insecureXDS       bool
	httpAddr, xdsAddr string
	// tlsAddr is the authenticated xDS port (TLS and workload tokens) beside the plaintext
	// one of --insecure-xds: the data plane's sidecars join there, to get certificates.
	tlsAddr string
	// debugAddr is the server's profiler address (--debug-addr), empty when its version has none.
	debugAddr string
	// splits counts the services the control-plane runs have split.
	splits int
	proc   *child
	api    *http.Client
	csrf   string
}

// start starts sluice-server (again, on the same ports) and signs in.
func (cp *controlPlane) start(ctx context.Context) error {
	args := []string{"--http-addr", cp.httpAddr, "--xds-addr", cp.xdsAddr, "--log-level", "warn"}
	if cp.insecureXDS {
		args = append(args, "--insecure-xds", "--xds-tls-addr", cp.tlsAddr)
	}
	if cp.debugAddr == "" {
		if help, _ := exec.Command(cp.bin, "--help").CombinedOutput(); strings.Contains(string(help), "-debug-addr") {
			addr, err := freeAddr()
			if err != nil {
				return err
			}
			cp.debugAddr = addr
		}
	}
	if cp.debugAddr != "" {
		args = append(args, "--debug-addr", cp.debugAddr)
	}
	p, err := cp.cs.start("sluice-server", false, cp.bin, args,
		"SLUICE_ADMIN_PASSWORD="+benchPassword, "DATABASE_URL="+cp.dbURL, "SLUICE_DATA_DIR="+cp.dataDir)
	if err != nil {
		return err
	}
	cp.proc = p
	if err := waitFor(ctx, p, 120*time.Second, "sluice-server ready", func() error {
		return httpOK("http://" + cp.httpAddr + "/readyz")
	}); err != nil {
		return err
	}
	return cp.login()
}

// login signs the API client in as admin, retrying for up to two minutes: a restarted server
// that thousands of proxies reconnect to at once may be slow to answer.
func (cp *controlPlane) login() error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		err := cp.tryLogin()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(time.Second)
	}
}

func (cp *controlPlane) tryLogin() error {
	jar, _ := cookiejar.New(nil)
	cp.api = &http.Client{Timeout: 30 * time.Second, Jar: jar, Transport: &http.Transport{Proxy: nil}}
	resp, err := cp.api.Post("http://"+cp.httpAddr+"/api/v1/login", "application/json",
		strings.NewReader(`{"username":"admin","password":"`+benchPassword+`"}`))
	if err != nil {
		return fmt.Errorf("sign in to sluice-server: %w", err)
	}
	defer resp.Body.Close()
	var out struct {
		CSRFToken string `json:"csrfToken"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		return fmt.Errorf("sign in to sluice-server: status %d, %v", resp.StatusCode, err)
	}
	cp.csrf = out.CSRFToken
	return nil
}

// write sends a signed-in write and returns the revision it committed.
func (cp *controlPlane) write(method, path, contentType, body string) (int64, error) {
	b, err := cp.send(method, path, contentType, body, http.StatusOK)
	if err != nil {
		return 0, err
	}
	var out struct {
		Revision int64 `json:"revision"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return 0, fmt.Errorf("%s %s: answer %q: %w", method, path, b, err)
	}
	return out.Revision, nil
}

// send makes a signed-in write and returns the answer's body, failing unless its status is
// want.
func (cp *controlPlane) send(method, path, contentType, body string, want int) ([]byte, error) {
	req, err := http.NewRequest(method, "http://"+cp.httpAddr+path, strings.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-CSRF-Token", cp.csrf)
	resp, err := cp.api.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	return b, nil
}

// workloadToken creates a workload token for default/sa (POST /api/v1/workload-tokens) and
// writes it to a file of mode 0600 in dir, whose path it returns.
func (cp *controlPlane) workloadToken(dir, sa string) (string, error) {
	b, err := cp.send("POST", "/api/v1/workload-tokens", "application/json",
		fmt.Sprintf(`{"namespace":"default","serviceAccount":%q,"expiresIn":"24h"}`, sa), http.StatusCreated)
	if err != nil {
		return "", fmt.Errorf("workload token for default/%s: %w", sa, err)
	}
	var out struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.Token == "" {
		return "", fmt.Errorf("workload token for default/%s: answer %.200q: %v", sa, b, err)
	}
	path := filepath.Join(dir, sa+".token")
	if err := os.WriteFile(path, []byte(out.Token+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("workload token for default/%s: %w", sa, err)
	}
	return path, nil
}

// rootFile is the trust bundle the server writes for local proxies.
func (cp *controlPlane) rootFile() string { return filepath.Join(cp.dataDir, "root-cert.pem") }

// getJSON reads a signed-in GET into v.
func (cp *controlPlane) getJSON(path string, v any) error {
	resp, err := cp.api.Get("http://" + cp.httpAddr + path)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("GET %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("GET %s: not JSON: %w", path, err)
	}
	return nil
}

// proxyList is GET /api/v1/proxies, the fields the benchmark reads.
type proxyList struct {
	Revision int64 `json:"revision"`
	Proxies  []struct {
		Service        string            `json:"service"`
		Connected      bool              `json:"connected"`
		SyncedRevision int64             `json:"syncedRevision"`
		SyncedAt       time.Time         `json:"syncedAt"`
		Identity       string            `json:"identity"`
		MTLS           map[string]string `json:"mtls"`
	} `json:"proxies"`
}

// strictMTLS fails unless service's connected proxies have a SPIFFE identity and take only
// mutual TLS on port.
func (cp *controlPlane) strictMTLS(service, port string) error {
	var pl proxyList
	if err := cp.getJSON("/api/v1/proxies", &pl); err != nil {
		return err
	}
	found := false
	for _, p := range pl.Proxies {
		if p.Service != service || !p.Connected {
			continue
		}
		found = true
		if !strings.HasPrefix(p.Identity, "spiffe://") || p.MTLS[port] != "STRICT" {
			return fmt.Errorf("%s's sidecar: identity %q, mTLS on port %s %q; want a SPIFFE identity and STRICT", service, p.Identity, port, p.MTLS[port])
		}
	}
	if !found {
		return fmt.Errorf("no connected sidecar of %s", service)
	}
	return nil
}

// waitApplied waits until n connected proxies have applied revision rev and returns the newest
// syncedAt among them. It looks every poll, the first time after one.
func (cp *controlPlane) waitApplied(ctx context.Context, rev int64, n int, poll time.Duration) (time.Time, error) {
	var last time.Time
	deadline := time.Now().Add(120 * time.Second)
	for {
		select {
		case <-ctx.Done():
			return last, ctx.Err()
		case <-time.After(poll):
		}
		var pl proxyList
		if err := cp.getJSON("/api/v1/proxies", &pl); err != nil {
			return last, err
		}
		synced := 0
		last = time.Time{}
		for _, p := range pl.Proxies {
			if p.Connected && p.SyncedRevision >= rev {
				synced++
				if p.SyncedAt.After(last) {
					last = p.SyncedAt
				}
			}
		}
		if synced >= n {
			return last, nil
		}
		if time.Now().After(deadline) {
			return last, fmt.Errorf("wait for revision %d: %d of %d proxies applied it after 120 s", rev, synced, n)
		}
	}
}

// revisionTime returns when revision rev was committed.
func (cp *controlPlane) revisionTime(rev int64) (time.Time, error) {
	var r struct {
		At time.Time `json:"at"`
	}
	if err := cp.getJSON(fmt.Sprintf("/api/v1/revisions/%d", rev), &r); err != nil {
		return time.Time{}, err
	}
	return r.At, nil
}
