package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Workload tokens the demo creates live this long, and one expiring sooner than
// tokenRenewBefore is replaced on the next start.
const (
	tokenLifetime    = "720h"
	tokenRenewBefore = 7 * 24 * time.Hour
)

// apiClient is a session of the demo's admin with the control plane's REST API.
type apiClient struct {
	base string
	c    *http.Client
	csrf string
}

// signIn signs in as the first admin, whose password the server was started with.
func signIn(ctx context.Context, httpAddr, password string) (*apiClient, error) {
	jar, _ := cookiejar.New(nil)
	api := &apiClient{base: "http://" + httpAddr + "/api/v1", c: &http.Client{Timeout: 30 * time.Second, Jar: jar}}
	login, _ := json.Marshal(map[string]string{"username": "admin", "password": password})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, api.base+"/login", bytes.NewReader(login))
	if err != nil {
		return nil, fmt.Errorf("sign in as admin: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := api.c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("sign in as admin: %w", err)
	}
	defer resp.Body.Close()
	var session struct {
		CSRFToken string `json:"csrfToken"`
	}
	err = json.NewDecoder(resp.Body).Decode(&session)
	if resp.StatusCode != http.StatusOK || err != nil {
		return nil, fmt.Errorf("sign in as admin: %s (if the data directory was created with another admin password, set SLUICE_ADMIN_PASSWORD to it)", resp.Status)
	}
	api.csrf = session.CSRFToken
	return api, nil
}

// do sends a request to path (under /api/v1) and returns the answer's body, or an error
// unless the status is want.
func (a *apiClient) do(ctx context.Context, method, path, contentType, body string, want int) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, a.base+path, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("X-CSRF-Token", a.csrf)
	resp, err := a.c.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: read the answer: %w", method, path, err)
	}
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	return b, nil
}

// meshIdentity is what the demo's proxies join the mesh with: the trust bundle and a workload
// token for each identity, in files under the data directory.
type meshIdentity struct {
	dir      string
	rootFile string
}

// proxyArgs are the flags that make a proxy of namespace/serviceAccount join over TLS.
func (m *meshIdentity) proxyArgs(namespace, serviceAccount string) []string {
	return []string{"--token-file", m.tokenFile(namespace, serviceAccount), "--ca-root-file", m.rootFile}
}

func (m *meshIdentity) tokenFile(namespace, serviceAccount string) string {
	return filepath.Join(m.dir, namespace+"."+serviceAccount+".token")
}

// tokenRecord is what the demo remembers of a token it created; the secret is in its own file.
type tokenRecord struct {
	ID        string    `json:"id"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// prepareIdentities fetches the mesh's root certificate and makes sure every identity of the
// demo (each workload's service account, and the gateway's) has a workload token in a file
// of mode 0600: one from an earlier run while the server still lists it as active and it has
// more than tokenRenewBefore left, else a new one.
func prepareIdentities(ctx context.Context, api *apiClient, dataDir string) (*meshIdentity, error) {
	m := &meshIdentity{dir: filepath.Join(dataDir, "demo-identity")}
	m.rootFile = filepath.Join(m.dir, "root-cert.pem")
	if err := os.MkdirAll(m.dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", m.dir, err)
	}
	root, err := api.do(ctx, http.MethodGet, "/ca/root", "", "", http.StatusOK)
	if err != nil {
		return nil, fmt.Errorf("fetch the mesh's root certificate: %w", err)
	}
	if !bytes.Contains(root, []byte("-----BEGIN CERTIFICATE-----")) {
		return nil, fmt.Errorf("fetch the mesh's root certificate: GET /api/v1/ca/root answered no PEM certificate")
	}
	if err := writeFileAtomic(m.rootFile, root, 0o644); err != nil {
		return nil, fmt.Errorf("keep the mesh's root certificate: %w", err)
	}

	recordsFile := filepath.Join(m.dir, "tokens.json")
	records := map[string]tokenRecord{}
	if b, err := os.ReadFile(recordsFile); err == nil {
		if err := json.Unmarshal(b, &records); err != nil {
			records = map[string]tokenRecord{} // unreadable: make new tokens
		}
	}
	listed, err := api.do(ctx, http.MethodGet, "/workload-tokens", "", "", http.StatusOK)
	if err != nil {
		return nil, fmt.Errorf("list the workload tokens: %w", err)
	}
	var list struct {
		Tokens []struct {
			ID        string    `json:"id"`
			ExpiresAt time.Time `json:"expiresAt"`
			Revoked   bool      `json:"revoked"`
		} `json:"tokens"`
	}
	if err := json.Unmarshal(listed, &list); err != nil {
		return nil, fmt.Errorf("list the workload tokens: %w", err)
	}
	active := map[string]bool{}
	for _, tk := range list.Tokens {
		if !tk.Revoked && time.Until(tk.ExpiresAt) > tokenRenewBefore {
			active[tk.ID] = true
		}
	}

	identities := [][2]string{{gatewayNamespace, gatewayServiceAccount}}
	for _, w := range topology {
		identities = append(identities, [2]string{"default", w.serviceAccount})
	}
	seen := map[string]bool{}
	for _, id := range identities {
		key := id[0] + "/" + id[1]
		if seen[key] {
			continue
		}
		seen[key] = true
		file := m.tokenFile(id[0], id[1])
		if rec, ok := records[key]; ok && active[rec.ID] {
			if b, err := os.ReadFile(file); err == nil && strings.HasPrefix(string(b), "slcw_") {
				continue
			}
		}
		body, _ := json.Marshal(map[string]string{"namespace": id[0], "serviceAccount": id[1], "name": "sluice-demo " + key, "expiresIn": tokenLifetime})
		answer, err := api.do(ctx, http.MethodPost, "/workload-tokens", "application/json", string(body), http.StatusCreated)
		if err != nil {
			return nil, fmt.Errorf("create the workload token of %s: %w", key, err)
		}
		var created struct {
			ID        string    `json:"id"`
			Token     string    `json:"token"`
			ExpiresAt time.Time `json:"expiresAt"`
		}
		if err := json.Unmarshal(answer, &created); err != nil || !strings.HasPrefix(created.Token, "slcw_") {
			return nil, fmt.Errorf("create the workload token of %s: unexpected answer (%v)", key, err)
		}
		if err := writeFileAtomic(file, []byte(created.Token+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("keep the workload token of %s: %w", key, err)
		}
		records[key] = tokenRecord{ID: created.ID, ExpiresAt: created.ExpiresAt}
		b, _ := json.MarshalIndent(records, "", "  ")
		if err := writeFileAtomic(recordsFile, b, 0o600); err != nil {
			return nil, fmt.Errorf("keep the list of workload tokens: %w", err)
		}
	}
	return m, nil
}

// writeFileAtomic writes b to file with mode perm through a temporary file and a rename, so
// that a reader sees the old content or the new, never part of it.
func writeFileAtomic(file string, b []byte, perm os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), file)
}
