package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/internal/pgtest"
)

// securedMesh is a control plane serving only its authenticated port, and what a proxy
// needs to join it: workload tokens (made with sluicectl, or through the REST API) and the
// trust bundle from the API.
type securedMesh struct {
	cp       *controlPlane
	tlsAddr  string
	rootFile string
	roots    *x509.CertPool
	ctl      sluicectl
	dir      string
}

// startSecuredMesh starts sluice-server without --insecure-xds (overriding the harness's
// flag), on its own data directory, with extra flags.
func startSecuredMesh(t *testing.T, extra ...string) *securedMesh {
	t.Helper()
	m := &securedMesh{tlsAddr: freePort(t), dir: t.TempDir()}
	flags := append([]string{"--insecure-xds=false", "--xds-tls-addr", m.tlsAddr, "--data-dir", filepath.Join(m.dir, "data")}, extra...)
	m.cp = startServer(t, pgtest.New(t, pgtest.Template{}), flags...)
	server := "http://" + m.cp.httpAddr
	m.ctl = sluicectl{t: t, env: []string{"SLUICE_SERVER=" + server, "SLUICE_CONFIG=" + filepath.Join(m.dir, "config.json"), "SLUICE_TOKEN="}}
	m.ctl.ok(adminPassword+"\n", "login", "--username", "admin", "--password-stdin")

	resp, err := http.Get(server + "/api/v1/ca/root")
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/ca/root: %d %s", resp.StatusCode, rootPEM)
	}
	m.roots = x509.NewCertPool()
	if !m.roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("GET /api/v1/ca/root is not PEM: %q", rootPEM)
	}
	m.rootFile = filepath.Join(m.dir, "root-cert.pem")
	if err := os.WriteFile(m.rootFile, rootPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	return m
}

// token creates a workload token for default/sa with sluicectl and writes it to a file of
// mode 0600; it returns the file and the token.
func (m *securedMesh) token(t *testing.T, sa string) (file, token string) {
	t.Helper()
	token = strings.TrimSpace(m.ctl.ok("", "token", "create", "workload", "--namespace", "default", "--service-account", sa, "--expires", "1h"))
	if !strings.HasPrefix(token, "slcw_") {
		t.Fatalf("token create printed %q", token)
	}
	file = filepath.Join(m.dir, sa+".token")
	if err := os.WriteFile(file, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file, token
}

// revoke revokes the workload token of default/sa with sluicectl.
func (m *securedMesh) revoke(t *testing.T, sa string) {
	t.Helper()
	for _, line := range strings.Split(m.ctl.ok("", "token", "list"), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "wt-") && strings.Contains(line, "ns/default/sa/"+sa+" ") && strings.Contains(line, "active") {
			m.ctl.ok("", "token", "revoke", f[0])
			return
		}
	}
	t.Fatalf("no active workload token for ns/default/sa/%s", sa)
}

// proxyArgs are the flags that make a sidecar join over TLS with tokenFile.
func (m *securedMesh) proxyArgs(tokenFile string) []string {
	return []string{"--control-plane", m.tlsAddr, "--token-file", tokenFile, "--ca-root-file", m.rootFile}
}

// workload starts an echo application with a sidecar of service account service that joins
// with tokenFile, and waits until the sidecar is ready.
func (m *securedMesh) workload(t *testing.T, service, tokenFile string) *workload {
	t.Helper()
	w := &workload{addr: nextAddr()}
	instance := fmt.Sprintf("%s-v1-%s", service, w.addr)
	w.app = start(t, instance, "echo",
		[]string{"--service", service, "--instance", instance, "--http-addr", w.addr + ":18080", "--grpc-addr", w.addr + ":19090"},
		"HTTP_PROXY=http://"+w.addr+":15001", "NO_PROXY=")
	w.sidecar = startSidecar(t, m.cp, w.addr, service, "v1", append(m.proxyArgs(tokenFile), "--inbound", "8080=18080")...)
	waitReady(t, m.cp, w.addr)
	return w
}

// certsView is a sidecar's GET /certs.
type certsView struct {
	SPIFFEID  string    `json:"spiffe_id"`
	Issued    bool      `json:"issued"`
	Serial    string    `json:"serial"`
	NotBefore time.Time `json:"not_before"`
	NotAfter  time.Time `json:"not_after"`
	Issuer    string    `json:"issuer"`
	Roots     int       `json:"roots"`
	Rotations uint64    `json:"rotations"`
	LastError string    `json:"last_error"`
}

func readCerts(t *testing.T, addr string) certsView {
	t.Helper()
	var v certsView
	if code, err := getJSON(context.Background(), "http://"+addr+":15000/certs", &v); err != nil || code != http.StatusOK {
		t.Fatalf("GET /certs of %s: %d %v", addr, code, err)
	}
	return v
}

// restToken creates a workload token for default/sa through POST /api/v1/workload-tokens,
// signed in as admin, and writes it to a file of mode 0600; it returns the file.
func (m *securedMesh) restToken(t *testing.T, sa string) string {
	t.Helper()
	answer := m.cp.write(t, http.MethodPost, "/api/v1/workload-tokens", "application/json",
		`{"namespace":"default","serviceAccount":"`+sa+`","expiresIn":"1h"}`, http.StatusCreated)
	var created struct {
		Token          string `json:"token"`
		Namespace      string `json:"namespace"`
		ServiceAccount string `json:"serviceAccount"`
	}
	if err := json.Unmarshal(answer, &created); err != nil {
		t.Fatalf("POST /api/v1/workload-tokens answered %s: %v", answer, err)
	}
	if !strings.HasPrefix(created.Token, "slcw_") || created.Namespace != "default" || created.ServiceAccount != sa {
		t.Fatalf("POST /api/v1/workload-tokens answered %s", answer)
	}
	file := filepath.Join(m.dir, sa+".token")
	if err := os.WriteFile(file, []byte(created.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}
