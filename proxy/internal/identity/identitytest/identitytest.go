// Package identitytest is a small certificate authority for the proxy's tests: a real ECDSA
// root made with crypto/x509 that signs workload certificates (X.509-SVIDs) and server
// certificates, and serves Istio's certificate service over gRPC as the control plane does,
// with hooks to make it fail or misbehave.
package identitytest

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	securityv1alpha1 "istio.io/api/security/v1alpha1"
)

// CA is a test root certificate authority.
type CA struct {
	Root *x509.Certificate
	key  *ecdsa.PrivateKey
}

// NewCA makes a root valid from an hour ago for a day.
func NewCA(t testing.TB, name string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"identitytest"}},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	root, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Root: root, key: key}
}

// RootPEM returns the root in PEM.
func (ca *CA) RootPEM() []byte { return encode(ca.Root) }

// Pool returns a pool holding only the root.
func (ca *CA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Root)
	return p
}

// SignWorkload issues a workload certificate for id and pub, valid from notBefore to
// notAfter, as the mesh CA would: one URI SAN, server and client authentication.
func (ca *CA) SignWorkload(id spiffeid.ID, pub crypto.PublicKey, notBefore, notAfter time.Time) (*x509.Certificate, error) {
	return ca.sign(&x509.Certificate{
		URIs:                  []*url.URL{id.URL()},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		NotBefore:             notBefore,
		NotAfter:              notAfter,
	}, pub)
}

// ServerTLS returns a server certificate for the IP addresses ips, with its key, valid for
// an hour.
func (ca *CA) ServerTLS(t testing.TB, ips ...net.IP) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	c, err := ca.sign(&x509.Certificate{
		Subject:               pkix.Name{CommonName: "identitytest server"},
		IPAddresses:           ips,
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		NotBefore:             time.Now().Add(-time.Minute),
		NotAfter:              time.Now().Add(time.Hour),
	}, key.Public())
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{c.Raw}, PrivateKey: key, Leaf: c}
}

func (ca *CA) sign(tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Root, pub, ca.key)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

func encode(c *x509.Certificate) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})
}

// Request is one certificate request the Service received.
type Request struct {
	// ID is the SPIFFE ID the request's CSR names (zero when it names none).
	ID spiffeid.ID
	// Key is the CSR's public key.
	Key crypto.PublicKey
	// Validity is the lifetime asked for.
	Validity time.Duration
}

// Answer decides what the Service answers a request: the certificate's identity, key and
// validity window, or an error (a gRPC status error reaches the caller as is).
type Answer func(r Request) (id spiffeid.ID, key crypto.PublicKey, notBefore, notAfter time.Time, err error)

// Service is Istio's certificate service signing with a CA. Its zero Answer issues for the
// CSR's own identity and key, valid from now for the lifetime asked (an hour when zero).
type Service struct {
	securityv1alpha1.UnimplementedIstioCertificateServiceServer
	CA *CA

	mu     sync.Mutex
	answer Answer
	calls  atomic.Int64
}

// SetAnswer changes what the service answers from the next request on; nil restores the
// default.
func (s *Service) SetAnswer(a Answer) {
	s.mu.Lock()
	s.answer = a
	s.mu.Unlock()
}

// Calls counts the requests received.
func (s *Service) Calls() int64 { return s.calls.Load() }

// CreateCertificate signs the request as the Answer says; the chain is leaf then root.
func (s *Service) CreateCertificate(ctx context.Context, req *securityv1alpha1.IstioCertificateRequest) (*securityv1alpha1.IstioCertificateResponse, error) {
	s.calls.Add(1)
	block, _ := pem.Decode([]byte(req.GetCsr()))
	if block == nil {
		return nil, status.Error(codes.InvalidArgument, "csr is not PEM")
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	r := Request{Key: csr.PublicKey, Validity: time.Duration(req.GetValidityDuration()) * time.Second}
	if len(csr.URIs) == 1 {
		if r.ID, err = spiffeid.FromURI(csr.URIs[0]); err != nil {
			return nil, status.Error(codes.InvalidArgument, err.Error())
		}
	}
	s.mu.Lock()
	answer := s.answer
	s.mu.Unlock()
	if answer == nil {
		answer = func(r Request) (spiffeid.ID, crypto.PublicKey, time.Time, time.Time, error) {
			v := r.Validity
			if v == 0 {
				v = time.Hour
			}
			now := time.Now()
			return r.ID, r.Key, now, now.Add(v), nil
		}
	}
	id, key, nb, na, err := answer(r)
	if err != nil {
		if _, ok := status.FromError(err); ok {
			return nil, err
		}
		return nil, status.Error(codes.Internal, err.Error())
	}
	if id.IsZero() {
		return nil, status.Error(codes.InvalidArgument, "the csr names no identity")
	}
	leaf, err := s.CA.SignWorkload(id, key, nb, na)
	if err != nil {
		return nil, status.Error(codes.Internal, err.Error())
	}
	return &securityv1alpha1.IstioCertificateResponse{CertChain: []string{string(encode(leaf)), string(s.CA.RootPEM())}}, nil
}

// ErrRefused is an Answer's error for a refused caller.
var ErrRefused = status.Error(codes.Unauthenticated, "workload token revoked")

// Serve serves svc on a plaintext gRPC server on 127.0.0.1 and returns its address; the
// server stops when the test ends.
func Serve(t testing.TB, svc *Service, opts ...grpc.ServerOption) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(opts...)
	securityv1alpha1.RegisterIstioCertificateServiceServer(srv, svc)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Stop()
		if err := <-done; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
			t.Errorf("certificate service: %v", err)
		}
	})
	return ln.Addr().String()
}
