package cagrpc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/ca"
)

// FuzzCSR feeds CreateCertificate arbitrary requests: it must never panic, and must answer
// either a chain for the caller's own identity or a clean InvalidArgument or PermissionDenied.
func FuzzCSR(f *testing.F) {
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	root, key, err := ca.GenerateRoot(td, time.Now())
	if err != nil {
		f.Fatal(err)
	}
	authority, err := ca.New(ca.Options{TrustDomain: td, Cert: root, Key: key})
	if err != nil {
		f.Fatal(err)
	}
	svc := NewCertificateService(authority, time.Hour, nil)
	ctx := auth.WithWorkload(context.Background(), auth.AuthenticatedWorkload{
		Identity: auth.WorkloadIdentity{Namespace: "default", ServiceAccount: "reviews"}, TokenID: "wt-fuzz"})

	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
	good := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	f.Add(string(good), int64(0))
	f.Add(string(good), int64(-1))
	f.Add(string(good), int64(1<<62))
	f.Add(string(good[:len(good)/2]), int64(60))
	f.Add("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", int64(3600))
	f.Add(string(authority.RootPEM()), int64(0))
	f.Add("", int64(0))
	f.Add("\x00\xff", int64(59))

	f.Fuzz(func(t *testing.T, csr string, seconds int64) {
		res, err := svc.CreateCertificate(ctx, &securityv1alpha1.IstioCertificateRequest{Csr: csr, ValidityDuration: seconds})
		if err != nil {
			st, ok := status.FromError(err)
			if !ok || (st.Code() != codes.InvalidArgument && st.Code() != codes.PermissionDenied) || st.Message() == "" {
				t.Fatalf("error %v is not a clean InvalidArgument or PermissionDenied", err)
			}
			return
		}
		if len(res.GetCertChain()) != 2 {
			t.Fatalf("chain of %d", len(res.GetCertChain()))
		}
		block, _ := pem.Decode([]byte(res.GetCertChain()[0]))
		leaf, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/reviews" {
			t.Fatalf("issued for %v", leaf.URIs)
		}
	})
}
