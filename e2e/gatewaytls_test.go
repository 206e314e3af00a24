package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/internal/pgtest"
)

// TLS at the ingress gateway, after Istio's secure ingress tasks: a credential made with
// sluicectl secret create tls, a Gateway server with tls.mode SIMPLE for httpbin.example.com,
// one with MUTUAL for mtls.example.com on the same port (told apart by SNI), an HTTP server
// redirecting to https, and the credential rotated under the gateway's feet.

// testCA is a certificate authority made in the test.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name, Organization: []string{"example Inc."}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return &testCA{cert: c, key: k, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue signs a leaf certificate for name, for servers or clients, and returns it and its
// key in PEM.
func (ca *testCA) issue(t *testing.T, name string, serial int64, client bool) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
		DNSNames: []string{name}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

func writeFile(t *testing.T, dir, name string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// gatewayClient calls the gateway at addr whatever the URL's host, over TLS trusting roots,
// with cert as its client certificate when not nil.
func gatewayClient(addr string, roots *x509.CertPool, cert *tls.Certificate) *http.Client {
	cfg := &tls.Config{RootCAs: roots}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	return &http.Client{
		Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
		Transport: &http.Transport{
			TLSClientConfig: cfg,
			DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
				_, port, _ := net.SplitHostPort(a)
				return (&net.Dialer{}).DialContext(ctx, network, net.JoinHostPort(addr, port))
			},
		},
	}
}

// fingerprint is the SHA-256 of a PEM certificate's DER, as the API shows it.
func fingerprint(certPEM []byte) string {
	b, _ := pem.Decode(certPEM)
	sum := sha256.Sum256(b.Bytes)
	return hex.EncodeToString(sum[:])
}

const secureIngressYAML = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: mygateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8443, name: https, protocol: HTTPS}
    tls: {mode: SIMPLE, credentialName: httpbin-credential}
    hosts: [httpbin.example.com]
  - port: {number: 8443, name: https-mtls, protocol: HTTPS}
    tls: {mode: MUTUAL, credentialName: mtls-credential}
    hosts: [mtls.example.com]
  - port: {number: 8080, name: http, protocol: HTTP}
    tls: {httpsRedirect: true}
    hosts: [httpbin.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin}
spec:
  hosts: [httpbin.example.com, mtls.example.com]
  gateways: [istio-system/mygateway]
  http:
  - match:
    - uri: {prefix: /status}
    - uri: {prefix: /delay}
    route:
    - destination:
        port: {number: 8000}
        host: httpbin
`

func TestGatewayTLS(t *testing.T) {
	cp := startServer(t, pgtest.New(t, pgtest.Template{}))
	addr := nextAddr()
	start(t, "httpbin-v1", "httpbin", []string{"--addr", addr + ":18000", "--version", "v1"}, "HTTP_PROXY=http://"+addr+":15001")
	startSidecar(t, cp, addr, "httpbin", "v1", "--inbound", "8000=18000")
	waitReady(t, cp, addr)
	gw := nextAddr()
	gwProc := start(t, "gateway", "sluice-proxy", []string{"--control-plane", cp.xdsAddr, "--mode", "gateway",
		"--namespace", "istio-system", "--labels", "istio=ingressgateway,app=istio-ingressgateway",
		"--address", gw, "--log-level", proxyLogLevel})
	eventually(t, 30*time.Second, "gateway ready", func() error {
		if gwProc.exited() {
			t.Fatalf("gateway exited: %v\n%s", gwProc.err, gwProc.out.text())
		}
		return httpOK("http://" + gw + ":15000/ready")
	})

	dir := t.TempDir()
	ca := newTestCA(t, "example.com")
	roots := x509.NewCertPool()
	roots.AddCert(ca.cert)
	serverCert, serverKey := ca.issue(t, "httpbin.example.com", 2, false)
	mtlsCert, mtlsKey := ca.issue(t, "mtls.example.com", 3, false)
	clientCertPEM, clientKeyPEM := ca.issue(t, "client.example.com", 4, true)
	clientCert, err := tls.X509KeyPair(clientCertPEM, clientKeyPEM)
	if err != nil {
		t.Fatal(err)
	}

	ctl := sluicectl{t: t, env: []string{"SLUICE_SERVER=http://" + cp.httpAddr, "SLUICE_CONFIG=" + filepath.Join(dir, "config.json"), "SLUICE_TOKEN="}}
	ctl.ok(adminPassword+"\n", "login", "--username", "admin", "--password-stdin")
	ctl.ok("", "secret", "create", "tls", "httpbin-credential", "-n", "istio-system",
		"--cert", writeFile(t, dir, "httpbin.crt", serverCert), "--key", writeFile(t, dir, "httpbin.key", serverKey))
	ctl.ok("", "secret", "create", "tls", "mtls-credential", "-n", "istio-system",
		"--cert", writeFile(t, dir, "mtls.crt", mtlsCert), "--key", writeFile(t, dir, "mtls.key", mtlsKey),
		"--ca-cert", writeFile(t, dir, "ca.crt", ca.pem))
	if list := ctl.ok("", "secret", "list", "-n", "istio-system"); !strings.Contains(list, "httpbin-credential") || !strings.Contains(list, "mtls-credential") {
		t.Fatalf("secret list:\n%s", list)
	}
	get := ctl.ok("", "secret", "get", "httpbin-credential", "-n", "istio-system", "-o", "json")
	if strings.Contains(get, "PRIVATE KEY") || !strings.Contains(get, fingerprint(serverCert)) {
		t.Fatalf("secret get shows a key, or not the certificate's fingerprint:\n%s", get)
	}
	cp.apply(t, secureIngressYAML)

	status := func(c *http.Client, url string) (int, *http.Response, error) {
		resp, err := c.Get(url)
		if err != nil {
			return 0, nil, err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode, resp, nil
	}

	t.Run("SIMPLE", func(t *testing.T) {
		c := gatewayClient(gw, roots, nil)
		eventually(t, 30*time.Second, "httpbin over TLS through the gateway", func() error {
			code, _, err := status(c, "https://httpbin.example.com:8443/status/200")
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("status %d", code)
			}
			return nil
		})
		code, resp, err := status(c, "https://httpbin.example.com:8443/status/418")
		if err != nil || code != http.StatusTeapot {
			t.Fatalf("/status/418: %d %v", code, err)
		}
		if got := resp.TLS.PeerCertificates[0].Subject.CommonName; got != "httpbin.example.com" {
			t.Errorf("the gateway presented %q for SNI httpbin.example.com", got)
		}
		// A client that does not trust the test CA refuses the gateway.
		if _, _, err := status(gatewayClient(gw, x509.NewCertPool(), nil), "https://httpbin.example.com:8443/status/200"); err == nil {
			t.Error("a client without the test CA accepted the gateway's certificate")
		}
	})

	t.Run("MUTUAL", func(t *testing.T) {
		if _, _, err := status(gatewayClient(gw, roots, nil), "https://mtls.example.com:8443/status/200"); err == nil {
			t.Fatal("MUTUAL served a client without a certificate")
		}
		c := gatewayClient(gw, roots, &clientCert)
		code, resp, err := status(c, "https://mtls.example.com:8443/status/200")
		if err != nil || code != http.StatusOK {
			t.Fatalf("with a client certificate: %d %v", code, err)
		}
		if got := resp.TLS.PeerCertificates[0].Subject.CommonName; got != "mtls.example.com" {
			t.Errorf("the gateway presented %q for SNI mtls.example.com", got)
		}
		other := newTestCA(t, "other.example")
		strangerPEM, strangerKey := other.issue(t, "stranger.example", 5, true)
		stranger, _ := tls.X509KeyPair(strangerPEM, strangerKey)
		if _, _, err := status(gatewayClient(gw, roots, &stranger), "https://mtls.example.com:8443/status/200"); err == nil {
			t.Error("MUTUAL served a client whose certificate another CA signed")
		}
	})

	t.Run("httpsRedirect", func(t *testing.T) {
		req, _ := http.NewRequest(http.MethodGet, "http://"+gw+":8080/status/200?x=1", nil)
		req.Host = "httpbin.example.com"
		resp, err := gatewayClient(gw, roots, nil).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		loc := resp.Header.Get("Location")
		if resp.StatusCode != http.StatusMovedPermanently || !strings.HasPrefix(loc, "https://httpbin.example.com") || !strings.HasSuffix(loc, "/status/200?x=1") {
			t.Fatalf("http://httpbin.example.com:8080/status/200?x=1: %d Location %q, want 301 to https://httpbin.example.com…/status/200?x=1", resp.StatusCode, loc)
		}
	})

	t.Run("config_dump redacts keys", func(t *testing.T) {
		resp, err := http.Get("http://" + gw + ":15000/config_dump")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		dump := string(b)
		if !strings.Contains(dump, "dynamic_active_secrets") || !strings.Contains(dump, "kubernetes://httpbin-credential") || !strings.Contains(dump, "[redacted]") {
			t.Fatalf("config_dump has no redacted SDS secrets:\n%.2000s", dump)
		}
		block, _ := pem.Decode(serverKey)
		// protojson renders inline bytes in base64: look for the key in that form too.
		if strings.Contains(dump, "PRIVATE KEY") || strings.Contains(dump, string(serverKey[40:80])) ||
			strings.Contains(dump, base64.StdEncoding.EncodeToString(serverKey)[:40]) || strings.Contains(dump, hex.EncodeToString(block.Bytes[:16])) {
			t.Fatal("config_dump shows a private key")
		}
		for name, out := range map[string]string{"sluice-server": cp.out.text(), "gateway": gwProc.out.text()} {
			if strings.Contains(out, "PRIVATE KEY") || strings.Contains(out, string(serverKey[40:80])) ||
				strings.Contains(out, base64.StdEncoding.EncodeToString(serverKey)[:40]) || strings.Contains(out, hex.EncodeToString(block.Bytes[:16])) {
				t.Errorf("the %s log shows a private key", name)
			}
		}
	})

	t.Run("rotation", func(t *testing.T) {
		c := gatewayClient(gw, roots, nil)
		// A connection opened before the rotation keeps serving after it.
		if code, _, err := status(c, "https://httpbin.example.com:8443/status/200"); err != nil || code != http.StatusOK {
			t.Fatalf("before rotation: %d %v", code, err)
		}
		newCert, newKey := ca.issue(t, "httpbin.example.com", 6, false)
		out := ctl.ok("", "secret", "replace", "tls", "httpbin-credential", "-n", "istio-system",
			"--cert", writeFile(t, dir, "httpbin2.crt", newCert), "--key", writeFile(t, dir, "httpbin2.key", newKey))
		if !strings.Contains(out, fingerprint(newCert)) {
			t.Errorf("secret replace printed %q, want the new fingerprint", out)
		}
		if code, _, err := status(c, "https://httpbin.example.com:8443/status/200"); err != nil || code != http.StatusOK {
			t.Fatalf("the open connection after rotation: %d %v", code, err)
		}
		eventually(t, 30*time.Second, "the gateway serving the new certificate", func() error {
			fresh := gatewayClient(gw, roots, nil)
			code, resp, err := status(fresh, "https://httpbin.example.com:8443/status/200")
			if err != nil {
				return err
			}
			if code != http.StatusOK {
				return fmt.Errorf("status %d", code)
			}
			if serial := resp.TLS.PeerCertificates[0].SerialNumber.Int64(); serial != 6 {
				return fmt.Errorf("the gateway still presents certificate serial %d", serial)
			}
			return nil
		})
		if gwProc.exited() {
			t.Fatal("the gateway exited")
		}
	})

	t.Run("missing secret", func(t *testing.T) {
		ctl.ok("", "secret", "delete", "mtls-credential", "-n", "istio-system")
		eventually(t, 30*time.Second, "the missing secret reported", func() error {
			var pl struct {
				Problems []struct{ Resource, Message string } `json:"problems"`
			}
			if _, err := getJSONWith(cp.api, "http://"+cp.httpAddr+"/api/v1/proxies", &pl); err != nil {
				return err
			}
			for _, p := range pl.Problems {
				if strings.Contains(p.Message, "secret istio-system/mtls-credential not found") {
					return nil
				}
			}
			return fmt.Errorf("problems: %+v", pl.Problems)
		})
		// The other server on the port keeps serving.
		if code, _, err := status(gatewayClient(gw, roots, nil), "https://httpbin.example.com:8443/status/200"); err != nil || code != http.StatusOK {
			t.Fatalf("httpbin.example.com with mtls-credential gone: %d %v", code, err)
		}
		eventually(t, 30*time.Second, "mtls.example.com refusing handshakes", func() error {
			if _, _, err := status(gatewayClient(gw, roots, &clientCert), "https://mtls.example.com:8443/status/200"); err == nil {
				return fmt.Errorf("still served")
			}
			return nil
		})
	})
}
