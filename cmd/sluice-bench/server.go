package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os/exec"
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
		args = append(args, "--insecure-xds", "--xds-tls-addr", "127.0.0.1:0")
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
	req, err := http.NewRequest(method, "http://"+cp.httpAddr+path, strings.NewReader(body))
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-CSRF-Token", cp.csrf)
	resp, err := cp.api.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, b)
	}
	var out struct {
		Revision int64 `json:"revision"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return 0, fmt.Errorf("%s %s: answer %q: %w", method, path, b, err)
	}
	return out.Revision, nil
}

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
		Connected      bool      `json:"connected"`
		SyncedRevision int64     `json:"syncedRevision"`
		SyncedAt       time.Time `json:"syncedAt"`
	} `json:"proxies"`
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
