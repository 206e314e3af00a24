package e2e

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	grpcstatus "google.golang.org/grpc/status"
	securityv1alpha1 "istio.io/api/security/v1alpha1"
)

// TestProxyJoinsOverTLSWithItsIdentity runs sidecars against a control plane with no
// plaintext port: each joins over TLS with a workload token made by sluicectl and the trust
// bundle from GET /api/v1/ca/root, obtains a certificate for its own SPIFFE ID, registers,
// streams its telemetry, and renews the certificate at about half its life. A token for
// another identity, and a revoked token, get nothing.
func TestProxyJoinsOverTLSWithItsIdentity(t *testing.T) {
	// The server's shortest lifetime (2 minutes, backdated 1) puts the renewal about half a
	// minute after the issuance.
	m := startSecuredMesh(t, "--workload-cert-ttl", "2m")
	reviewsToken, reviewsSecret := m.token(t, "reviews")
	productpageToken, productpageSecret := m.token(t, "productpage")

	reviews := m.workload(t, "reviews", reviewsToken)
	productpage := m.workload(t, "productpage", productpageToken)

	c := readCerts(t, reviews.addr)
	if c.SPIFFEID != "spiffe://cluster.local/ns/default/sa/reviews" || !c.Issued || c.Serial == "" || c.Issuer == "" || c.Roots != 1 {
		t.Fatalf("/certs of reviews: %+v", c)
	}
	if life := c.NotAfter.Sub(c.NotBefore); life > 4*time.Minute || life < 2*time.Minute {
		t.Errorf("certificate from %v to %v, want the server's 2m lifetime", c.NotBefore, c.NotAfter)
	}
	for _, w := range []*workload{reviews, productpage} {
		if found, connected := m.cp.registered(t, w.addr); !found || !connected {
			t.Errorf("sidecar %s: registered %v, connected %v", w.addr, found, connected)
		}
	}
	resp, err := client.Get("http://" + reviews.addr + ":15000/stats")
	if err != nil {
		t.Fatal(err)
	}
	stats, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"identity.cert_issued: 1\n", "identity.cert_expiry_seconds: ", "identity.rotations: "} {
		if !strings.Contains(string(stats), want) {
			t.Errorf("/stats lacks %q", want)
		}
	}
	for _, w := range []*workload{reviews, productpage} {
		out := w.sidecar.out.text()
		if strings.Contains(out, reviewsSecret) || strings.Contains(out, productpageSecret) {
			t.Errorf("sidecar %s logged a workload token", w.addr)
		}
		if strings.Contains(out, "INSECURE") {
			t.Errorf("sidecar %s warned about plaintext while on TLS", w.addr)
		}
	}

	t.Run("telemetry over TLS reaches the graph", func(t *testing.T) {
		waitServes(t, productpage, "http://reviews:8080/", "reviews-v1-"+reviews.addr)
		for range 9 {
			if _, err := callThrough(productpage, "http://reviews:8080/"); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, 30*time.Second, "the graph shows productpage → reviews", func() error {
			var g struct {
				Edges []graphEdge `json:"edges"`
			}
			if _, err := getJSONWith(m.cp.api, "http://"+m.cp.httpAddr+"/api/v1/graph?window=5m", &g); err != nil {
				return err
			}
			for _, e := range g.Edges {
				if e.Source == "workload:default/productpage-v1" && e.Target == "service:reviews.default.svc.cluster.local" && e.Requests >= 10 {
					return nil
				}
			}
			return fmt.Errorf("edges %+v", g.Edges)
		})
	})

	t.Run("a token for another identity is refused", func(t *testing.T) {
		ratingsToken, _ := m.token(t, "ratings")
		addr := nextAddr()
		// The proxy claims service account details with the token of ratings.
		p := start(t, "proxy details@"+addr, "sluice-proxy", append(m.proxyArgs(ratingsToken),
			"--namespace", "default", "--service", "details", "--service-account", "details", "--address", addr, "--log-level", "debug"))
		eventually(t, 30*time.Second, "the refusal logged", func() error {
			if p.exited() {
				t.Fatalf("sluice-proxy exited: %v", p.err)
			}
			if out := p.out.text(); !strings.Contains(out, "the control plane refused this proxy") || !strings.Contains(out, "PermissionDenied") {
				return fmt.Errorf("no refusal in the log yet")
			}
			return nil
		})
		out := p.out.text()
		if !strings.Contains(out, "--namespace and --service-account must be the workload token's") {
			t.Errorf("the refusal does not say what to fix:\n%s", out)
		}
		if n := strings.Count(out, "level=ERROR"); n != 1 {
			t.Errorf("%d error lines, want the one refusal", n)
		}
		if err := httpOK("http://" + addr + ":15000/ready"); err == nil {
			t.Error("the refused proxy is ready")
		}
		if found, _ := m.cp.registered(t, addr); found {
			t.Error("the refused proxy is registered")
		}
		if c := readCerts(t, addr); c.Issued || c.SPIFFEID != "spiffe://cluster.local/ns/default/sa/details" {
			t.Errorf("/certs of the refused proxy: %+v", c)
		}
	})

	t.Run("a revoked token is refused on the next connection", func(t *testing.T) {
		m.revoke(t, "productpage")
		// The server reuses a token check for up to 2 seconds: wait until the revocation
		// shows on a new call.
		m.waitRefused(t, productpageSecret)
		addr := nextAddr()
		p := start(t, "proxy productpage@"+addr, "sluice-proxy", append(m.proxyArgs(productpageToken),
			"--namespace", "default", "--service", "productpage", "--service-account", "productpage", "--address", addr, "--log-level", "debug"))
		eventually(t, 30*time.Second, "the refusal logged", func() error {
			if p.exited() {
				t.Fatalf("sluice-proxy exited: %v", p.err)
			}
			if out := p.out.text(); !strings.Contains(out, "the control plane refused the workload token") || !strings.Contains(out, "Unauthenticated") {
				return fmt.Errorf("no refusal in the log yet")
			}
			return nil
		})
		if err := httpOK("http://" + addr + ":15000/ready"); err == nil {
			t.Error("the proxy with a revoked token is ready")
		}
		if found, _ := m.cp.registered(t, addr); found {
			t.Error("the proxy with a revoked token is registered")
		}
	})

	t.Run("the certificate is renewed", func(t *testing.T) {
		first := c
		eventually(t, 3*time.Minute, "a rotation in /certs", func() error {
			now := readCerts(t, reviews.addr)
			if now.Rotations == 0 || now.Serial == first.Serial {
				return fmt.Errorf("serial %s, rotations %d", now.Serial, now.Rotations)
			}
			if !now.NotAfter.After(first.NotAfter) || now.SPIFFEID != first.SPIFFEID {
				t.Fatalf("the renewed certificate: %+v, after %+v", now, first)
			}
			return nil
		})
		// Traffic still flows, and the sidecar is still ready.
		waitServes(t, productpage, "http://reviews:8080/", "reviews-v1-"+reviews.addr)
		if err := httpOK("http://" + reviews.addr + ":15000/ready"); err != nil {
			t.Error(err)
		}
	})
}

// waitRefused waits until the authenticated port refuses token on a new call.
func (m *securedMesh) waitRefused(t *testing.T, token string) {
	t.Helper()
	conn, err := grpc.NewClient(m.tlsAddr, grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: m.roots})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	certs := securityv1alpha1.NewIstioCertificateServiceClient(conn)
	eventually(t, 30*time.Second, "the revoked token refused", func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token)
		_, err := certs.CreateCertificate(ctx, &securityv1alpha1.IstioCertificateRequest{Csr: e2eCSR(t)})
		if grpcstatus.Code(err) != codes.Unauthenticated {
			return fmt.Errorf("CreateCertificate with the revoked token: %v", err)
		}
		return nil
	})
}
