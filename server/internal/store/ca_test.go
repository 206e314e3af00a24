package store_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sluicemesh/sluice/server/internal/ca"
)

func TestCARootGeneratedOnceAndReloaded(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	td := spiffeid.RequireTrustDomainFromString("cluster.local")
	key := make([]byte, ca.KeySize)
	_, _ = rand.Read(key)

	if _, err := st.GetRoot(ctx); !errors.Is(err, ca.ErrNoRoot) {
		t.Fatalf("empty database: %v, want ErrNoRoot", err)
	}
	first, created, err := ca.LoadOrCreateRoot(ctx, st, key, td, nil)
	if err != nil || !created {
		t.Fatalf("first start: created=%v err=%v", created, err)
	}
	// A restart with the same key loads the same root, and signs with its key.
	again, created, err := ca.LoadOrCreateRoot(ctx, st, key, td, nil)
	if err != nil || created {
		t.Fatalf("restart: created=%v err=%v", created, err)
	}
	if !again.Root().Equal(first.Root()) {
		t.Fatal("a restart made a new root")
	}
	id, _ := ca.WorkloadID(td, "default", "a")
	if _, err := again.Sign(csrPEM(t), id, time.Hour); err != nil {
		t.Fatalf("the reloaded root cannot sign: %v", err)
	}
	raw, err := st.GetRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Key.Version != 1 || len(raw.Key.Nonce) != 12 || len(raw.Key.Ciphertext) == 0 {
		t.Errorf("stored key: version %d, nonce %d bytes, ciphertext %d bytes", raw.Key.Version, len(raw.Key.Nonce), len(raw.Key.Ciphertext))
	}

	// A wrong key is an error, and never a new root.
	wrong := make([]byte, ca.KeySize)
	_, _ = rand.Read(wrong)
	if _, _, err := ca.LoadOrCreateRoot(ctx, st, wrong, td, nil); !errors.Is(err, ca.ErrWrongKey) {
		t.Fatalf("wrong key: %v, want ErrWrongKey", err)
	}
	after, err := st.GetRoot(ctx)
	if err != nil || string(after.CertDER) != string(first.Root().Raw) {
		t.Errorf("the stored root changed after a wrong key: %v", err)
	}
	// A second insert keeps the first root.
	if inserted, err := st.InsertRoot(ctx, ca.StoredRoot{CertDER: []byte("x"), Key: raw.Key}); err != nil || inserted {
		t.Errorf("second InsertRoot: inserted=%v err=%v, want false", inserted, err)
	}
}

func csrPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
}
