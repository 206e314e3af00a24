package store_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicemesh/sluice/server/internal/ca"
	"github.com/sluicemesh/sluice/server/internal/store"
)

// selfSigned returns a certificate for host and its private key, both PEM.
func selfSigned(t *testing.T, host string) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

func TestSecretsSealedAtRest(t *testing.T) {
	t.Parallel()
	st, url := open(t)
	ctx := context.Background()
	key := make([]byte, ca.KeySize)
	_, _ = rand.Read(key)
	certPEM, keyPEM := selfSigned(t, "httpbin.example.com")
	sealed, err := store.SealSecret(key, certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	sec := store.Secret{Namespace: "default", Name: "httpbin-credential", CertPEM: certPEM, Key: sealed, CreatedBy: "admin"}
	if err := st.PutSecret(ctx, sec, false); err != nil {
		t.Fatal(err)
	}
	if err := st.PutSecret(ctx, sec, false); !errors.Is(err, store.ErrSecretExists) {
		t.Fatalf("second create: %v, want ErrSecretExists", err)
	}
	if err := st.PutSecret(ctx, store.Secret{Namespace: "default", Name: "other", CertPEM: certPEM, Key: sealed}, true); !errors.Is(err, store.ErrSecretNotFound) {
		t.Fatalf("replace of a missing secret: %v, want ErrSecretNotFound", err)
	}

	// What the database holds is ciphertext: the key's DER appears nowhere in the row.
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var ciphertext []byte
	var row string
	if err := conn.QueryRow(ctx, `SELECT key_ciphertext, secrets::text FROM secrets WHERE name = 'httpbin-credential'`).Scan(&ciphertext, &row); err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(keyPEM)
	if bytes.Contains(ciphertext, block.Bytes) || bytes.Contains([]byte(row), keyPEM[30:60]) {
		t.Fatal("the private key is stored in the clear")
	}

	got, err := st.GetSecret(ctx, "default", "httpbin-credential")
	if err != nil {
		t.Fatal(err)
	}
	opened, err := got.OpenKey(key)
	if err != nil {
		t.Fatal(err)
	}
	ob, _ := pem.Decode(opened)
	if !bytes.Equal(ob.Bytes, block.Bytes) {
		t.Error("the opened key differs from the one stored")
	}
	wrong := make([]byte, ca.KeySize)
	_, _ = rand.Read(wrong)
	if _, err := got.OpenKey(wrong); !errors.Is(err, ca.ErrWrongKey) {
		t.Fatalf("wrong key: %v, want ErrWrongKey", err)
	}
	// A sealed key moved beside another certificate does not open.
	otherCert, otherKey := selfSigned(t, "other.example.com")
	moved := got
	moved.CertPEM = otherCert
	if _, err := moved.OpenKey(key); !errors.Is(err, ca.ErrWrongKey) {
		t.Fatalf("key beside another certificate: %v, want ErrWrongKey", err)
	}

	// Rotation replaces the credential in place.
	sealed2, err := store.SealSecret(key, otherCert, otherKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PutSecret(ctx, store.Secret{Namespace: "default", Name: "httpbin-credential", CertPEM: otherCert, Key: sealed2}, true); err != nil {
		t.Fatal(err)
	}
	list, err := st.ListSecrets(ctx, "default")
	if err != nil || len(list) != 1 || !bytes.Equal(list[0].CertPEM, otherCert) {
		t.Fatalf("list after rotation: %d secrets, err %v", len(list), err)
	}
	if all, err := st.ListSecrets(ctx, "other-ns"); err != nil || len(all) != 0 {
		t.Fatalf("list of another namespace: %d, %v", len(all), err)
	}
	if _, err := st.DeleteSecret(ctx, "default", "httpbin-credential"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.GetSecret(ctx, "default", "httpbin-credential"); !errors.Is(err, store.ErrSecretNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func TestSealSecretRefusesMismatchedKey(t *testing.T) {
	t.Parallel()
	key := make([]byte, ca.KeySize)
	certPEM, _ := selfSigned(t, "a.example.com")
	_, otherKey := selfSigned(t, "b.example.com")
	if _, err := store.SealSecret(key, certPEM, otherKey); err == nil {
		t.Fatal("a key of another certificate was sealed")
	}
}
