// Package ca is the mesh's certificate authority: it holds a signing certificate and key (a
// root it generated, or a root or intermediate the operator supplied) and issues X.509 SVIDs
// to workloads, spiffe://<trust domain>/ns/<namespace>/sa/<service account>, and the
// certificate of the control plane's authenticated port.
//
// The package does no I/O. A generated root is kept through the RootStore interface, which
// the PostgreSQL adapter implements, with its private key sealed under a 32-byte key (Seal);
// reading the key file and the operator's PEM files is the caller's job (ParseKey,
// ParseCertsPEM and ParseKeyPEM read their contents).
package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Lifetimes and bounds.
const (
	// RootTTL is the validity of a generated root: ten years.
	RootTTL = 10 * 365 * 24 * time.Hour
	// DefaultWorkloadTTL is a workload certificate's lifetime when none is configured.
	DefaultWorkloadTTL = 24 * time.Hour
	// MinWorkloadTTL is the shortest lifetime Sign issues: shorter ones would expire before
	// a proxy could use them.
	MinWorkloadTTL = time.Minute
	// MaxCSRBytes bounds a PEM certificate request; real ones are under 2 KiB.
	MaxCSRBytes = 64 << 10
	// backdate is how far before now a certificate becomes valid, to allow for clock skew
	// between the server and its proxies; at most a tenth of the certificate's lifetime, so
	// that a proxy renewing at half the lifetime from NotBefore never renews at once.
	backdate = time.Minute
)

// Errors Sign wraps, which the gRPC edge turns into status codes.
var (
	// ErrInvalidCSR means the certificate request cannot be used: not PEM, not a CSR, a bad
	// signature or an unsupported key.
	ErrInvalidCSR = errors.New("invalid certificate request")
	// ErrIdentityMismatch means the request names an identity other than the caller's.
	ErrIdentityMismatch = errors.New("certificate request names another identity")
)

// WorkloadID returns spiffe://<td>/ns/<namespace>/sa/<serviceAccount>.
func WorkloadID(td spiffeid.TrustDomain, namespace, serviceAccount string) (spiffeid.ID, error) {
	id, err := spiffeid.FromSegments(td, "ns", namespace, "sa", serviceAccount)
	if err != nil {
		return spiffeid.ID{}, fmt.Errorf("SPIFFE ID for namespace %q, service account %q: %w", namespace, serviceAccount, err)
	}
	return id, nil
}

// ParseWorkloadID returns the namespace and service account of a workload SPIFFE ID of trust
// domain td, or an error saying how id differs from spiffe://<td>/ns/<ns>/sa/<sa>.
func ParseWorkloadID(td spiffeid.TrustDomain, id spiffeid.ID) (namespace, serviceAccount string, err error) {
	if !id.MemberOf(td) {
		return "", "", fmt.Errorf("SPIFFE ID %s is not in trust domain %s", id, td)
	}
	segs := strings.Split(id.Path(), "/")
	if len(segs) != 5 || segs[1] != "ns" || segs[3] != "sa" || segs[2] == "" || segs[4] == "" {
		return "", "", fmt.Errorf("SPIFFE ID %s is not of the form spiffe://%s/ns/<namespace>/sa/<service account>", id, td)
	}
	return segs[2], segs[4], nil
}

// Options describe an Authority.
type Options struct {
	// TrustDomain is the trust domain of the identities it issues. Required.
	TrustDomain spiffeid.TrustDomain
	// Cert and Key sign workload certificates. Cert is a CA: a root, or an intermediate.
	Cert *x509.Certificate
	Key  crypto.Signer
	// Intermediates are the certificates between Cert and Root, Cert's issuer first; empty
	// when Root issued Cert.
	Intermediates []*x509.Certificate
	// Root is the trust anchor; nil means Cert is the root.
	Root *x509.Certificate
	// Now tells the time (time.Now).
	Now func() time.Time
}

// Authority issues certificates. It is safe for concurrent use.
type Authority struct {
	td    spiffeid.TrustDomain
	cert  *x509.Certificate
	key   crypto.Signer
	chain []*x509.Certificate // Cert (when not the root) and the Intermediates, leaf side first
	root  *x509.Certificate
	now   func() time.Time
	// notAfter is the earliest expiry along the chain: no certificate it issues outlives it.
	notAfter time.Time
}

// New checks o and returns an Authority: the key must match the certificate, the certificate
// must be a CA that may sign certificates, be valid now, and chain to the root.
func New(o Options) (*Authority, error) {
	if o.TrustDomain.IsZero() {
		return nil, errors.New("certificate authority: the trust domain is empty")
	}
	if o.Cert == nil || o.Key == nil {
		return nil, errors.New("certificate authority: a signing certificate and its key are both required")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	now := o.Now()
	if !publicKeysEqual(o.Key.Public(), o.Cert.PublicKey) {
		return nil, errors.New("the signing key does not match the signing certificate's public key: give the key the certificate was issued for")
	}
	if !o.Cert.BasicConstraintsValid || !o.Cert.IsCA {
		return nil, fmt.Errorf("the signing certificate %q is not a CA certificate (basicConstraints CA:TRUE): give a root or intermediate CA certificate", o.Cert.Subject)
	}
	if o.Cert.KeyUsage != 0 && o.Cert.KeyUsage&x509.KeyUsageCertSign == 0 {
		return nil, fmt.Errorf("the signing certificate %q may not sign certificates (its key usage lacks certSign)", o.Cert.Subject)
	}
	root := o.Root
	if root == nil {
		if err := o.Cert.CheckSignatureFrom(o.Cert); err != nil || !bytes.Equal(o.Cert.RawIssuer, o.Cert.RawSubject) {
			return nil, fmt.Errorf("the signing certificate %q is not self-signed, so it is an intermediate: give its root as well (--ca-root-file)", o.Cert.Subject)
		}
		root = o.Cert
	}
	all := append([]*x509.Certificate{o.Cert}, o.Intermediates...)
	if root != o.Cert {
		all = append(all, root)
	}
	a := &Authority{td: o.TrustDomain, cert: o.Cert, key: o.Key, root: root, now: o.Now}
	for _, c := range all {
		if now.Before(c.NotBefore) {
			return nil, fmt.Errorf("CA certificate %q is not valid before %s: check the clock, or wait", c.Subject, c.NotBefore.UTC().Format(time.RFC3339))
		}
		if !now.Before(c.NotAfter) {
			return nil, fmt.Errorf("CA certificate %q expired at %s: renew it", c.Subject, c.NotAfter.UTC().Format(time.RFC3339))
		}
		if a.notAfter.IsZero() || c.NotAfter.Before(a.notAfter) {
			a.notAfter = c.NotAfter
		}
	}
	if root != o.Cert {
		roots, inter := x509.NewCertPool(), x509.NewCertPool()
		roots.AddCert(root)
		for _, c := range o.Intermediates {
			inter.AddCert(c)
		}
		if _, err := o.Cert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return nil, fmt.Errorf("the signing certificate %q does not chain to the root %q: %w", o.Cert.Subject, root.Subject, err)
		}
		a.chain = append([]*x509.Certificate{o.Cert}, o.Intermediates...)
	}
	return a, nil
}

// TrustDomain is the trust domain of the identities a issues.
func (a *Authority) TrustDomain() spiffeid.TrustDomain { return a.td }

// Root is the trust anchor.
func (a *Authority) Root() *x509.Certificate { return a.root }

// RootPEM is the trust bundle proxies verify with: the root certificate in PEM.
func (a *Authority) RootPEM() []byte { return EncodeCert(a.root) }

// NotAfter is when the signing chain's first certificate expires; nothing a issues lasts
// longer.
func (a *Authority) NotAfter() time.Time { return a.notAfter }

// Issued is a certificate a issued.
type Issued struct {
	Cert *x509.Certificate
	// ChainPEM is the certificate, the intermediates and the root, each in PEM, in that order
	// (as Istio's CSR service answers).
	ChainPEM []string
}

// Sign issues a workload certificate for id from the PEM certificate request csrPEM, valid
// from a minute ago for ttl, or until the signing chain expires if that is sooner. The
// request's signature must hold; its subject is ignored; any SANs it carries must be exactly
// id, else Sign fails with ErrIdentityMismatch. Other failures of the request wrap
// ErrInvalidCSR.
func (a *Authority) Sign(csrPEM []byte, id spiffeid.ID, ttl time.Duration) (*Issued, error) {
	if !id.MemberOf(a.td) {
		return nil, fmt.Errorf("sign certificate: %s is not in trust domain %s", id, a.td)
	}
	if _, _, err := ParseWorkloadID(a.td, id); err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	csr, err := ParseCSR(csrPEM)
	if err != nil {
		return nil, err
	}
	if err := checkCSRIdentity(csr, id); err != nil {
		return nil, err
	}
	if ttl < MinWorkloadTTL {
		return nil, fmt.Errorf("sign certificate: lifetime %s is shorter than %s", ttl, MinWorkloadTTL)
	}
	tmpl := &x509.Certificate{
		URIs:                  []*url.URL{id.URL()},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
	}
	return a.issue(tmpl, csr.PublicKey, ttl)
}

// ServerCert issues a certificate for the control plane's authenticated port: the DNS names
// and IP addresses given, and id, with a fresh ECDSA P-256 key.
func (a *Authority) ServerCert(dnsNames []string, ips []net.IP, id spiffeid.ID, ttl time.Duration) (*Issued, crypto.Signer, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate server key: %w", err)
	}
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: firstOr(dnsNames, "sluice-server")},
		DNSNames:              dnsNames,
		IPAddresses:           ips,
		URIs:                  []*url.URL{id.URL()},
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	iss, err := a.issue(tmpl, key.Public(), ttl)
	if err != nil {
		return nil, nil, err
	}
	return iss, key, nil
}

func firstOr(s []string, def string) string {
	if len(s) > 0 {
		return s[0]
	}
	return def
}

func (a *Authority) issue(tmpl *x509.Certificate, pub crypto.PublicKey, ttl time.Duration) (*Issued, error) {
	now := a.now()
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("sign certificate: serial number: %w", err)
	}
	tmpl.SerialNumber = serial
	tmpl.NotBefore = now.Add(-min(backdate, ttl/10))
	tmpl.NotAfter = now.Add(ttl)
	if tmpl.NotAfter.After(a.notAfter) {
		tmpl.NotAfter = a.notAfter
	}
	if !tmpl.NotAfter.After(now) {
		return nil, fmt.Errorf("sign certificate: the CA certificate expired at %s: renew it", a.notAfter.UTC().Format(time.RFC3339))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, a.cert, pub, a.key)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("sign certificate: parse the result: %w", err)
	}
	chain := []string{string(EncodeCert(cert))}
	for _, c := range a.chain {
		chain = append(chain, string(EncodeCert(c)))
	}
	chain = append(chain, string(EncodeCert(a.root)))
	return &Issued{Cert: cert, ChainPEM: chain}, nil
}

// ParseCSR decodes one PEM certificate request, checks its signature and that its key is one
// this CA signs for (ECDSA P-256 or P-384, RSA of 2048 bits or more, Ed25519). Its errors wrap
// ErrInvalidCSR and say what is wrong.
func ParseCSR(csrPEM []byte) (*x509.CertificateRequest, error) {
	if len(csrPEM) == 0 {
		return nil, fmt.Errorf("%w: csr is empty: send a PEM \"CERTIFICATE REQUEST\"", ErrInvalidCSR)
	}
	if len(csrPEM) > MaxCSRBytes {
		return nil, fmt.Errorf("%w: csr is %d bytes, more than the %d allowed", ErrInvalidCSR, len(csrPEM), MaxCSRBytes)
	}
	block, _ := pem.Decode(csrPEM)
	if block == nil {
		return nil, fmt.Errorf("%w: csr is not PEM: send a PEM \"CERTIFICATE REQUEST\" block", ErrInvalidCSR)
	}
	if block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST" {
		return nil, fmt.Errorf("%w: csr is a PEM %q block, want \"CERTIFICATE REQUEST\"", ErrInvalidCSR, block.Type)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: csr does not parse: %v", ErrInvalidCSR, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%w: csr's signature does not verify: %v", ErrInvalidCSR, err)
	}
	switch k := csr.PublicKey.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return nil, fmt.Errorf("%w: csr's ECDSA key uses curve %s: use P-256 or P-384", ErrInvalidCSR, k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%w: csr's RSA key has %d bits: use at least 2048", ErrInvalidCSR, k.N.BitLen())
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%w: csr's key type %T is not supported: use ECDSA P-256", ErrInvalidCSR, csr.PublicKey)
	}
	return csr, nil
}

// checkCSRIdentity applies Istio's rule: a request with SANs must name exactly the identity
// the caller proved, and nothing else.
func checkCSRIdentity(csr *x509.CertificateRequest, id spiffeid.ID) error {
	n := len(csr.URIs) + len(csr.DNSNames) + len(csr.IPAddresses) + len(csr.EmailAddresses)
	if n == 0 {
		return nil
	}
	if n != 1 || len(csr.URIs) != 1 || csr.URIs[0].String() != id.String() {
		var names []string
		for _, u := range csr.URIs {
			names = append(names, u.String())
		}
		names = append(names, csr.DNSNames...)
		for _, ip := range csr.IPAddresses {
			names = append(names, ip.String())
		}
		names = append(names, csr.EmailAddresses...)
		return fmt.Errorf("%w: the csr asks for %q but the caller is %s: leave the SANs out or name exactly %s", ErrIdentityMismatch, names, id, id)
	}
	return nil
}

// GenerateRoot makes a new self-signed root: ECDSA P-256, valid for RootTTL from a minute
// before now, CA:TRUE with a path length that allows one intermediate below it.
func GenerateRoot(td spiffeid.TrustDomain, now time.Time) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA root key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA root: serial number: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Sluice"}, CommonName: "Sluice mesh root CA (" + td.Name() + ")"},
		NotBefore:             now.Add(-backdate),
		NotAfter:              now.Add(RootTTL),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            1,
		URIs:                  []*url.URL{td.ID().URL()},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA root: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("generate CA root: %w", err)
	}
	return cert, key, nil
}

// EncodeCert is c in PEM.
func EncodeCert(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

func publicKeysEqual(a, b crypto.PublicKey) bool {
	type equaler interface{ Equal(crypto.PublicKey) bool }
	e, ok := a.(equaler)
	return ok && e.Equal(b)
}
