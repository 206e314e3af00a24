package ca_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sluicemesh/sluice/server/internal/ca"
)

var td = spiffeid.RequireTrustDomainFromString("cluster.local")

func newRootCA(t *testing.T) *ca.Authority {
	t.Helper()
	cert, key, err := ca.GenerateRoot(td, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	a, err := ca.New(ca.Options{TrustDomain: td, Cert: cert, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// csr makes a PEM certificate request for a new P-256 key, with the given SANs.
func csr(t *testing.T, uris ...string) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{Subject: pkix.Name{CommonName: "ignored", Organization: []string{"ignored too"}}}
	for _, u := range uris {
		pu, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}

func workloadID(t *testing.T, ns, sa string) spiffeid.ID {
	t.Helper()
	id, err := ca.WorkloadID(td, ns, sa)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestGenerateRoot(t *testing.T) {
	now := time.Now()
	cert, _, err := ca.GenerateRoot(td, now)
	if err != nil {
		t.Fatal(err)
	}
	if !cert.IsCA || !cert.BasicConstraintsValid || cert.MaxPathLen != 1 || cert.MaxPathLenZero {
		t.Errorf("root: IsCA=%v MaxPathLen=%d, want a CA allowing one intermediate", cert.IsCA, cert.MaxPathLen)
	}
	if _, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || cert.PublicKey.(*ecdsa.PublicKey).Curve != elliptic.P256() {
		t.Errorf("root key is %T, want ECDSA P-256", cert.PublicKey)
	}
	if got := cert.NotAfter.Sub(now); got < ca.RootTTL-time.Hour || got > ca.RootTTL+time.Hour {
		t.Errorf("root lasts %s, want about %s", got, ca.RootTTL)
	}
	if cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		t.Error("root may not sign certificates")
	}
}

func TestSign(t *testing.T) {
	a := newRootCA(t)
	id := workloadID(t, "default", "bookinfo-reviews")
	if id.String() != "spiffe://cluster.local/ns/default/sa/bookinfo-reviews" {
		t.Fatalf("WorkloadID = %s", id)
	}
	for name, req := range map[string][]byte{
		"no SANs":          csr(t),
		"the identity SAN": csr(t, id.String()),
	} {
		t.Run(name, func(t *testing.T) {
			before := time.Now()
			iss, err := a.Sign(req, id, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			c := iss.Cert
			if len(c.URIs) != 1 || c.URIs[0].String() != id.String() || len(c.DNSNames)+len(c.IPAddresses)+len(c.EmailAddresses) != 0 {
				t.Errorf("SANs: URIs %v DNS %v IPs %v, want exactly %s", c.URIs, c.DNSNames, c.IPAddresses, id)
			}
			if c.Subject.CommonName == "ignored" || len(c.Subject.Organization) > 0 {
				t.Errorf("the CSR's subject was copied: %v", c.Subject)
			}
			if c.KeyUsage != x509.KeyUsageDigitalSignature|x509.KeyUsageKeyEncipherment {
				t.Errorf("key usage %v", c.KeyUsage)
			}
			if len(c.ExtKeyUsage) != 2 || c.ExtKeyUsage[0] != x509.ExtKeyUsageServerAuth || c.ExtKeyUsage[1] != x509.ExtKeyUsageClientAuth {
				t.Errorf("ext key usage %v, want serverAuth and clientAuth", c.ExtKeyUsage)
			}
			if c.IsCA {
				t.Error("a workload certificate is a CA")
			}
			if c.NotBefore.After(before.Add(-59*time.Second)) || c.NotBefore.Before(before.Add(-2*time.Minute)) {
				t.Errorf("NotBefore %s, want about a minute before %s", c.NotBefore, before)
			}
			if d := c.NotAfter.Sub(before); d < 59*time.Minute || d > 61*time.Minute {
				t.Errorf("lifetime from now %s, want 1h", d)
			}
			// A short certificate is backdated by a tenth of its life at most, so that half its
			// life from NotBefore is still ahead when it arrives.
			short, err := a.Sign(req, id, time.Minute)
			if err != nil {
				t.Fatal(err)
			}
			if back := before.Sub(short.Cert.NotBefore); back > 7*time.Second {
				t.Errorf("a 1m certificate is backdated %s, want at most 6s", back)
			}
			if c.SerialNumber.BitLen() < 64 {
				t.Errorf("serial %s is too short to be random 128-bit", c.SerialNumber)
			}
			if len(iss.ChainPEM) != 2 || iss.ChainPEM[1] != string(a.RootPEM()) {
				t.Errorf("chain has %d PEMs, want leaf and root last", len(iss.ChainPEM))
			}
			roots := x509.NewCertPool()
			roots.AddCert(a.Root())
			if _, err := c.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
				t.Errorf("the certificate does not verify against the root: %v", err)
			}
		})
	}
}

func TestSignSerialsDiffer(t *testing.T) {
	a := newRootCA(t)
	id := workloadID(t, "default", "a")
	x, err := a.Sign(csr(t), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	y, err := a.Sign(csr(t), id, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if x.Cert.SerialNumber.Cmp(y.Cert.SerialNumber) == 0 {
		t.Error("two certificates share a serial number")
	}
}

func TestSignRefuses(t *testing.T) {
	a := newRootCA(t)
	id := workloadID(t, "default", "a")
	good := csr(t)
	block, _ := pem.Decode(good)
	tampered := append([]byte(nil), block.Bytes...)
	tampered[len(tampered)-3] ^= 0xff // inside the signature
	badSig := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: tampered})

	smallRSA := func() []byte {
		// A 1024-bit RSA key is refused; generating one is quick.
		k, err := rsaKey(1024)
		if err != nil {
			t.Fatal(err)
		}
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}()
	dnsSAN := func() []byte {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{DNSNames: []string{"reviews.default.svc"}}, key)
		if err != nil {
			t.Fatal(err)
		}
		return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	}()

	tests := []struct {
		name    string
		csr     []byte
		want    error
		message string
	}{
		{"empty", nil, ca.ErrInvalidCSR, "csr is empty"},
		{"not PEM", []byte("hello"), ca.ErrInvalidCSR, "not PEM"},
		{"a certificate, not a request", a.RootPEM(), ca.ErrInvalidCSR, `"CERTIFICATE" block`},
		{"garbage DER", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: []byte{1, 2, 3}}), ca.ErrInvalidCSR, "does not parse"},
		{"bad signature", badSig, ca.ErrInvalidCSR, "signature does not verify"},
		{"too large", []byte(strings.Repeat("A", ca.MaxCSRBytes+1)), ca.ErrInvalidCSR, "more than"},
		{"small RSA key", smallRSA, ca.ErrInvalidCSR, "at least 2048"},
		{"another identity", csr(t, "spiffe://cluster.local/ns/default/sa/b"), ca.ErrIdentityMismatch, "spiffe://cluster.local/ns/default/sa/b"},
		{"another trust domain", csr(t, "spiffe://evil.example/ns/default/sa/a"), ca.ErrIdentityMismatch, "evil.example"},
		{"the identity and another", csr(t, id.String(), "spiffe://cluster.local/ns/default/sa/b"), ca.ErrIdentityMismatch, "leave the SANs out"},
		{"a DNS SAN", dnsSAN, ca.ErrIdentityMismatch, "reviews.default.svc"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := a.Sign(tc.csr, id, time.Hour)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.message) {
				t.Errorf("err = %q, want it to mention %q", err, tc.message)
			}
		})
	}

	// The identity itself must be a workload ID of this trust domain.
	for _, bad := range []string{"spiffe://cluster.local/ns/default", "spiffe://cluster.local/sa/x/ns/y", "spiffe://other.domain/ns/a/sa/b"} {
		if _, err := a.Sign(good, spiffeid.RequireFromString(bad), time.Hour); err == nil {
			t.Errorf("Sign for %s succeeded, want an error", bad)
		}
	}
	if _, err := a.Sign(good, id, time.Second); err == nil {
		t.Error("a one-second lifetime was issued")
	}
}

func TestSignTTLCappedByCA(t *testing.T) {
	now := time.Now()
	root, rootKey, err := ca.GenerateRoot(td, now)
	if err != nil {
		t.Fatal(err)
	}
	inter, interKey := intermediate(t, root, rootKey, now.Add(2*time.Hour))
	a, err := ca.New(ca.Options{TrustDomain: td, Cert: inter, Key: interKey, Root: root})
	if err != nil {
		t.Fatal(err)
	}
	iss, err := a.Sign(csr(t), workloadID(t, "default", "a"), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if !iss.Cert.NotAfter.Equal(inter.NotAfter) {
		t.Errorf("NotAfter %s, want it capped at the intermediate's %s", iss.Cert.NotAfter, inter.NotAfter)
	}
	// leaf, intermediate, root.
	if len(iss.ChainPEM) != 3 || iss.ChainPEM[1] != string(ca.EncodeCert(inter)) || iss.ChainPEM[2] != string(ca.EncodeCert(root)) {
		t.Errorf("chain of %d, want leaf, intermediate, root", len(iss.ChainPEM))
	}
	roots, inters := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	inters.AddCert(inter)
	if _, err := iss.Cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inters, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Errorf("leaf does not verify through the intermediate: %v", err)
	}
	if string(a.RootPEM()) != string(ca.EncodeCert(root)) {
		t.Error("the trust bundle is not the root")
	}
}

// intermediate issues a CA certificate below root, valid until notAfter.
func intermediate(t *testing.T, root *x509.Certificate, rootKey crypto.Signer, notAfter time.Time) (*x509.Certificate, *ecdsa.PrivateKey) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "test intermediate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: notAfter,
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, key.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	c, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return c, key
}

func TestNewValidates(t *testing.T) {
	now := time.Now()
	root, rootKey, _ := ca.GenerateRoot(td, now)
	otherRoot, otherKey, _ := ca.GenerateRoot(td, now)
	inter, interKey := intermediate(t, root, rootKey, now.Add(time.Hour))
	expired, expiredKey := intermediate(t, root, rootKey, now.Add(-time.Minute))
	leafCA := newRootCA(t)
	leaf, err := leafCA.Sign(csr(t), workloadID(t, "a", "b"), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		o    ca.Options
		want string
	}{
		{"key does not match", ca.Options{Cert: root, Key: otherKey}, "does not match"},
		{"not a CA", ca.Options{Cert: leaf.Cert, Key: rootKey}, "does not match"},
		{"expired", ca.Options{Cert: expired, Key: expiredKey, Root: root}, "expired"},
		{"intermediate without its root", ca.Options{Cert: inter, Key: interKey}, "--ca-root-file"},
		{"intermediate with another root", ca.Options{Cert: inter, Key: interKey, Root: otherRoot}, "does not chain"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.o.TrustDomain = td
			_, err := ca.New(tc.o)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	_ = otherRoot
}

func TestNotACA(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	c, _ := x509.ParseCertificate(der)
	if _, err := ca.New(ca.Options{TrustDomain: td, Cert: c, Key: key}); err == nil || !strings.Contains(err.Error(), "not a CA certificate") {
		t.Errorf("err = %v, want not a CA certificate", err)
	}
}

func TestSealOpen(t *testing.T) {
	cert, priv, _ := ca.GenerateRoot(td, time.Now())
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	sealed, err := ca.Seal(key, priv, cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if sealed.Version != 1 || len(sealed.Nonce) != 12 {
		t.Errorf("sealed version %d nonce %d bytes", sealed.Version, len(sealed.Nonce))
	}
	got, err := ca.Open(key, sealed, cert.Raw)
	if err != nil {
		t.Fatal(err)
	}
	if !priv.Public().(*ecdsa.PublicKey).Equal(got.Public()) {
		t.Error("opened another key")
	}
	wrong := append([]byte(nil), key...)
	wrong[0] ^= 1
	if _, err := ca.Open(wrong, sealed, cert.Raw); !errors.Is(err, ca.ErrWrongKey) {
		t.Errorf("wrong key: %v, want ErrWrongKey", err)
	}
	other, _, _ := ca.GenerateRoot(td, time.Now())
	if _, err := ca.Open(key, sealed, other.Raw); !errors.Is(err, ca.ErrWrongKey) {
		t.Errorf("beside another certificate: %v, want ErrWrongKey", err)
	}
}

func TestParseKey(t *testing.T) {
	raw := make([]byte, 32)
	_, _ = rand.Read(raw)
	for name, in := range map[string][]byte{
		"raw":          raw,
		"hex":          []byte(hex.EncodeToString(raw) + "\n"),
		"base64":       []byte(base64.StdEncoding.EncodeToString(raw) + "\n"),
		"base64 nopad": []byte(base64.RawStdEncoding.EncodeToString(raw)),
	} {
		got, err := ca.ParseKey(in)
		if err != nil || string(got) != string(raw) {
			t.Errorf("%s: %x, %v", name, got, err)
		}
	}
	for name, in := range map[string][]byte{
		"empty":     nil,
		"short":     raw[:16],
		"long":      append(raw, raw...),
		"short hex": []byte(hex.EncodeToString(raw[:16])),
		"text":      []byte("correct horse battery staple"),
	} {
		if _, err := ca.ParseKey(in); err == nil || !strings.Contains(err.Error(), "head -c 32 /dev/urandom > ca.key") {
			t.Errorf("%s: err = %v, want the hint to make one", name, err)
		}
	}
}

func TestServerCert(t *testing.T) {
	a := newRootCA(t)
	src, err := ca.NewServerCertSource(a, []string{"localhost", "cp.example"}, []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")}, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	c, err := src.GetCertificate(nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := c.Leaf
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/sluice-system/sa/sluice-server" {
		t.Errorf("URI SANs %v", leaf.URIs)
	}
	roots := x509.NewCertPool()
	roots.AddCert(a.Root())
	for _, host := range []string{"localhost", "cp.example", "127.0.0.1", "::1"} {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, DNSName: host}); err != nil {
			t.Errorf("%s: %v", host, err)
		}
	}
}

func TestParseWorkloadID(t *testing.T) {
	ns, sa, err := ca.ParseWorkloadID(td, workloadID(t, "prod", "web.frontend"))
	if err != nil || ns != "prod" || sa != "web.frontend" {
		t.Errorf("got %q %q %v", ns, sa, err)
	}
	if _, err := ca.WorkloadID(td, "", "x"); err == nil {
		t.Error("an empty namespace made an ID")
	}
	if _, err := ca.WorkloadID(td, "a/b", "x"); err == nil {
		t.Error("a namespace with a slash made an ID")
	}
}

func rsaKey(bits int) (crypto.Signer, error) { return rsa.GenerateKey(rand.Reader, bits) }
