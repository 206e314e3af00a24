package api

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/ca"
	"github.com/sluicemesh/sluice/server/internal/ca/cagrpc"
	"github.com/sluicemesh/sluice/server/internal/registry"
	"github.com/sluicemesh/sluice/server/internal/xds"
)

// listedProxies is a ProxyLister over a fixed list.
type listedProxies []xds.ProxyInfo

func (l listedProxies) Proxies() []xds.ProxyInfo { return l }
func (listedProxies) Revision() int64            { return 3 }
func (listedProxies) Problems() []xds.Problem    { return nil }

// portModes answers MTLSModes with one mode for every port of the workload.
type portModes string

func (m portModes) MTLSModes(w registry.Workload) map[uint32]string {
	out := map[uint32]string{}
	for _, p := range w.Ports {
		out[p.Port] = string(m)
	}
	return out
}

// noMTLS is a mesh whose proxies do not enforce mutual TLS.
type noMTLS struct{}

func (noMTLS) MTLSModes(registry.Workload) map[uint32]string { return nil }

// issue has the real certificate service sign a certificate for namespace/sa and returns it.
func issue(t *testing.T, svc *cagrpc.CertificateService, namespace, sa string) *x509.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	ctx := auth.WithWorkload(context.Background(), auth.AuthenticatedWorkload{
		Identity: auth.WorkloadIdentity{Namespace: namespace, ServiceAccount: sa}, TokenID: "t1", ExpiresAt: time.Now().Add(time.Hour)})
	res, err := svc.CreateCertificate(ctx, &securityv1alpha1.IstioCertificateRequest{
		Csr: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))})
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode([]byte(res.GetCertChain()[0]))
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return leaf
}

func TestProxiesShowIdentityMTLSAndCertificate(t *testing.T) {
	td := spiffeid.RequireTrustDomainFromString("example.org")
	root, key, err := ca.GenerateRoot(td, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New(ca.Options{TrustDomain: td, Cert: root, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	certs := cagrpc.NewCertificateService(authority, 24*time.Hour, nil)
	first := issue(t, certs, "default", "bookinfo-reviews")
	latest := issue(t, certs, "default", "bookinfo-reviews")

	proxy := func(node, mode, sa string, ports ...uint32) xds.ProxyInfo {
		w := registry.Workload{NodeID: node, Namespace: "default", Service: "reviews", Name: node, Mode: mode,
			ServiceAccount: sa, Address: netip.MustParseAddr("127.0.0.9")}
		for _, p := range ports {
			w.Ports = append(w.Ports, meta.PortMapping{Port: p, AppPort: p + 10000})
		}
		return xds.ProxyInfo{Entry: registry.Entry{Workload: w, Connected: true}}
	}
	proxies := listedProxies{
		proxy("reviews-v1", meta.ModeSidecar, "bookinfo-reviews", 9080, 9090),
		proxy("reviews-v2", meta.ModeSidecar, "bookinfo-reviews", 9080),
		proxy("ingress", meta.ModeGateway, "ingress", 8080),
		proxy("client", meta.ModeProxyless, "client"),
	}
	sec := ProxySecurity{TrustDomain: td, MTLS: portModes("STRICT"), Certificates: certs}

	type want struct {
		identity string
		mtls     map[string]string
		serial   string
		notAfter time.Time
	}
	latestWant := func(mtls map[string]string) want {
		return want{"spiffe://example.org/ns/default/sa/bookinfo-reviews", mtls, latest.SerialNumber.Text(16), latest.NotAfter}
	}
	for _, tc := range []struct {
		name string
		sec  ProxySecurity
		want map[string]want
	}{
		{
			name: "everything known",
			sec:  sec,
			want: map[string]want{
				"reviews-v1": latestWant(map[string]string{"9080": "STRICT", "9090": "STRICT"}),
				// Both proxies share the identity, so both show its newest certificate.
				"reviews-v2": latestWant(map[string]string{"9080": "STRICT"}),
				// A gateway has an identity but no inbound mTLS mode, and no certificate
				// was issued to it.
				"ingress": {identity: "spiffe://example.org/ns/default/sa/ingress"},
				"client":  {identity: "spiffe://example.org/ns/default/sa/client"},
			},
		},
		{
			name: "mutual TLS not enforced",
			sec:  ProxySecurity{TrustDomain: td, MTLS: noMTLS{}, Certificates: certs},
			want: map[string]want{
				"reviews-v1": latestWant(nil),
			},
		},
		{
			name: "no security wired",
			sec:  ProxySecurity{},
			want: map[string]want{"reviews-v1": {}, "ingress": {}},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			handleListProxies(proxies, tc.sec).ServeHTTP(rec, httptest.NewRequest("GET", "/api/v1/proxies", nil))
			var body struct {
				Proxies []struct {
					NodeID      string            `json:"nodeId"`
					Identity    *string           `json:"identity"`
					MTLS        map[string]string `json:"mtls"`
					Certificate *struct {
						Serial   string    `json:"serial"`
						NotAfter time.Time `json:"notAfter"`
					} `json:"certificate"`
				} `json:"proxies"`
			}
			if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
				t.Fatal(err)
			}
			seen := 0
			for _, p := range body.Proxies {
				w, ok := tc.want[p.NodeID]
				if !ok {
					continue
				}
				seen++
				if got := derefString(p.Identity); got != w.identity || (w.identity == "") != (p.Identity == nil) {
					t.Errorf("%s: identity %q, want %q (absent when empty)", p.NodeID, got, w.identity)
				}
				if len(p.MTLS) != len(w.mtls) {
					t.Errorf("%s: mtls %v, want %v", p.NodeID, p.MTLS, w.mtls)
				}
				for port, mode := range w.mtls {
					if p.MTLS[port] != mode {
						t.Errorf("%s: mtls %v, want %v", p.NodeID, p.MTLS, w.mtls)
					}
				}
				switch {
				case w.serial == "" && p.Certificate != nil:
					t.Errorf("%s: certificate %+v, want none", p.NodeID, *p.Certificate)
				case w.serial != "" && p.Certificate == nil:
					t.Errorf("%s: no certificate, want serial %s", p.NodeID, w.serial)
				case w.serial != "" && (p.Certificate.Serial != w.serial || !p.Certificate.NotAfter.Equal(w.notAfter)):
					t.Errorf("%s: certificate %+v, want serial %s expiring %s", p.NodeID, *p.Certificate, w.serial, w.notAfter)
				}
			}
			if seen != len(tc.want) {
				t.Errorf("%d of the %d proxies listed", seen, len(tc.want))
			}
		})
	}
	if first.SerialNumber.Cmp(latest.SerialNumber) == 0 {
		t.Fatal("the two certificates share a serial; the test cannot tell them apart")
	}
}

func derefString(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}
