package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"github.com/sluicemesh/sluice/internal/pgtest"
)

// TestWorkloadCertificateOverTLS is the bootstrap a proxy goes through: an admin creates a
// workload token with sluicectl, the proxy fetches the trust bundle from GET /api/v1/ca/root,
// dials the authenticated port with TLS verified against it, and obtains a certificate for its
// own SPIFFE identity with the token. A revoked token is then refused, and a restart with the
// wrong CA key fails instead of making a new root.
func TestWorkloadCertificateOverTLS(t *testing.T) {
	dbURL := pgtest.New(t, pgtest.Template{})
	dataDir := t.TempDir()
	tlsAddr := freePort(t)
	cp := startServer(t, dbURL, "--xds-tls-addr", tlsAddr, "--data-dir", dataDir, "--trust-domain", "e2e.example")

	server := "http://" + cp.httpAddr
	ctl := sluicectl{t: t, env: []string{"SLUICE_SERVER=" + server, "SLUICE_CONFIG=" + filepath.Join(t.TempDir(), "config.json"), "SLUICE_TOKEN="}}
	ctl.ok(adminPassword+"\n", "login", "--username", "admin", "--password-stdin")
	token := strings.TrimSpace(ctl.ok("", "token", "create", "workload", "--namespace", "default", "--service-account", "reviews", "--expires", "1h"))
	if !strings.HasPrefix(token, "slcw_") || strings.Contains(token, "\n") {
		t.Fatalf("token create printed %q, want one slcw_ token", token)
	}
	list := ctl.ok("", "token", "list")
	if !strings.Contains(list, "ns/default/sa/reviews") || !strings.Contains(list, "workload") || strings.Contains(list, token) {
		t.Errorf("token list shows no workload token for ns/default/sa/reviews, or shows its secret:\n%s", list)
	}

	// The trust bundle, anonymously, and the copy written for local proxies.
	resp, err := http.Get(server + "/api/v1/ca/root")
	if err != nil {
		t.Fatal(err)
	}
	rootPEM, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/ca/root: %d %s", resp.StatusCode, rootPEM)
	}
	if onDisk, err := os.ReadFile(filepath.Join(dataDir, "root-cert.pem")); err != nil || string(onDisk) != string(rootPEM) {
		t.Errorf("<data-dir>/root-cert.pem differs from GET /api/v1/ca/root (%v)", err)
	}
	if fi, err := os.Stat(filepath.Join(dataDir, "ca.key")); err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Errorf("ca.key: %v, want a 32-byte file of mode 0600", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(rootPEM) {
		t.Fatalf("GET /api/v1/ca/root is not PEM: %q", rootPEM)
	}

	conn, err := grpc.NewClient(tlsAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	certs := securityv1alpha1.NewIstioCertificateServiceClient(conn)
	call := func(token string) (*securityv1alpha1.IstioCertificateResponse, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		}
		return certs.CreateCertificate(ctx, &securityv1alpha1.IstioCertificateRequest{Csr: e2eCSR(t), ValidityDuration: 3600})
	}

	res, err := call(token)
	if err != nil {
		t.Fatalf("CreateCertificate with the workload token: %v", err)
	}
	chain := res.GetCertChain()
	if len(chain) < 2 || chain[len(chain)-1] != string(rootPEM) {
		t.Fatalf("chain of %d certificates, want the leaf first and the root last", len(chain))
	}
	block, _ := pem.Decode([]byte(chain[0]))
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://e2e.example/ns/default/sa/reviews" {
		t.Errorf("leaf URI SANs %v, want spiffe://e2e.example/ns/default/sa/reviews", leaf.URIs)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("the leaf does not verify against the trust bundle: %v", err)
	}

	if _, err := call(""); grpcstatus.Code(err) != codes.Unauthenticated {
		t.Errorf("without a token: %v, want Unauthenticated", err)
	}

	// Revoke with sluicectl: the next call is refused once the server's short cache of token
	// checks has run out.
	var id string
	for _, line := range strings.Split(ctl.ok("", "token", "list"), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "wt-") {
			id = f[0]
		}
	}
	if id == "" {
		t.Fatal("token list shows no wt- ID")
	}
	if out := ctl.ok("", "token", "revoke", id); !strings.Contains(out, "Revoked workload token "+id) {
		t.Errorf("token revoke printed %q", out)
	}
	eventually(t, 30*time.Second, "the revoked token refused", func() error {
		_, err := call(token)
		if grpcstatus.Code(err) != codes.Unauthenticated {
			return fmt.Errorf("CreateCertificate with the revoked token: %v", err)
		}
		return nil
	})

	// Another server on the same database with another CA key must not start.
	badKey := filepath.Join(t.TempDir(), "other.key")
	other := make([]byte, 32)
	_, _ = rand.Read(other)
	if err := os.WriteFile(badKey, other, 0o600); err != nil {
		t.Fatal(err)
	}
	code, stderr := runBinary(t, "sluice-server", []string{"DATABASE_URL=" + dbURL},
		"--http-addr", "127.0.0.1:0", "--xds-tls-addr", "127.0.0.1:0", "--ca-key-file", badKey)
	if code != 1 || !strings.Contains(stderr, badKey) || !strings.Contains(stderr, "does not open the root") {
		t.Errorf("start with a wrong CA key: exit %d, stderr:\n%s\nwant exit 1 naming %s", code, stderr, badKey)
	}
}

func e2eCSR(t *testing.T) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

// TestPlaintextXDSOnlyWhenAsked starts sluice-server without --insecure-xds: the plaintext
// port stays closed, and the authenticated one answers.
func TestPlaintextXDSOnlyWhenAsked(t *testing.T) {
	httpAddr, xdsAddr, tlsAddr := freePort(t), freePort(t), freePort(t)
	p := start(t, "server", "sluice-server",
		[]string{"--http-addr", httpAddr, "--xds-addr", xdsAddr, "--xds-tls-addr", tlsAddr, "--data-dir", t.TempDir()},
		"SLUICE_ADMIN_PASSWORD="+adminPassword, "DATABASE_URL="+pgtest.New(t, pgtest.Template{}))
	eventually(t, 60*time.Second, "sluice-server ready", func() error {
		if p.exited() {
			t.Fatalf("sluice-server exited: %v\n%s", p.err, p.out.text())
		}
		return httpOK("http://" + httpAddr + "/readyz")
	})
	if c, err := net.DialTimeout("tcp", xdsAddr, 5*time.Second); err == nil {
		c.Close()
		t.Errorf("the plaintext xDS port %s accepts connections without --insecure-xds", xdsAddr)
	}
	c, err := tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only the handshake is checked here
	if err != nil {
		t.Fatalf("TLS handshake with %s: %v", tlsAddr, err)
	}
	defer c.Close()
	leaf := c.ConnectionState().PeerCertificates[0]
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/sluice-system/sa/sluice-server" {
		t.Errorf("the server certificate's URI SANs are %v", leaf.URIs)
	}
	if strings.Contains(p.out.text(), "INSECURE") {
		t.Error("the insecure warning was logged without --insecure-xds")
	}
}
