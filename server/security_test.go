package server

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sluicemesh/sluice/server/internal/ca"
)

func TestSecurityFlags(t *testing.T) {
	getenv := func(string) string { return "" }
	cfg, err := parseFlags("sluice-server", nil, getenv, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	sec := cfg.Security
	if sec.XDSTLSAddr != ":15012" || sec.InsecureXDS || sec.TrustDomain.Name() != "cluster.local" || sec.WorkloadCertTTL != 24*time.Hour {
		t.Errorf("defaults: %+v", sec)
	}
	if len(sec.XDSTLSHosts) == 0 || sec.XDSTLSHosts[0] != "localhost" || len(sec.XDSTLSIPs) != 2 {
		t.Errorf("default TLS names: %v %v", sec.XDSTLSHosts, sec.XDSTLSIPs)
	}
	cfg, err = parseFlags("sluice-server", []string{"--insecure-xds", "--xds-tls-hosts", "cp.example, 10.0.0.1"}, getenv, io.Discard)
	if err != nil || !cfg.Security.InsecureXDS || len(cfg.Security.XDSTLSHosts) != 1 || len(cfg.Security.XDSTLSIPs) != 1 {
		t.Errorf("--insecure-xds and hosts: %+v %v", cfg.Security, err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--trust-domain", "Not A Domain"}, "--trust-domain"},
		{[]string{"--workload-cert-ttl", "1s"}, "--workload-cert-ttl"},
		{[]string{"--ca-cert-file", "x.pem"}, "--ca-signing-key-file"},
		{[]string{"--ca-root-file", "r.pem"}, "--ca-root-file is the root of --ca-cert-file"},
		{[]string{"--xds-tls-addr", "15012"}, "--xds-tls-addr"},
		{[]string{"--xds-tls-hosts", "a b"}, "--xds-tls-hosts"},
	} {
		_, err := parseFlags("sluice-server", tc.args, getenv, io.Discard)
		if ExitCode(err) != 2 || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error naming %s", tc.args, err, tc.want)
		}
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "sub", "ca.key")
	created, err := ensureKeyFile(path)
	if err != nil || !created {
		t.Fatalf("first: %v %v", created, err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != ca.KeySize {
		t.Fatalf("key file: %v %v", fi, err)
	}
	first, _ := os.ReadFile(path)
	if created, err := ensureKeyFile(path); err != nil || created {
		t.Errorf("second: %v %v, want the file kept", created, err)
	}
	if again, _ := os.ReadFile(path); string(again) != string(first) {
		t.Error("the key changed")
	}

	// A key file that is not a key stops the start with the way to make one.
	bad := filepath.Join(dir, "bad.key")
	if err := os.WriteFile(bad, []byte("password123"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := &Config{DataDir: dir, Security: SecurityConfig{CAKeyFile: bad, TrustDomain: spiffeid.RequireTrustDomainFromString("cluster.local")}}
	_, err = setUpCA(context.Background(), cfg, nil, slog.New(slog.DiscardHandler))
	if err == nil || !strings.Contains(err.Error(), bad) || !strings.Contains(err.Error(), "head -c 32 /dev/urandom > ca.key") {
		t.Errorf("bad key file: %v", err)
	}
}

// TestSuppliedIntermediate signs with an operator's intermediate read from PEM files, with
// its root given apart or at the end of the certificate file.
func TestSuppliedIntermediate(t *testing.T) {
	dir := t.TempDir()
	td := spiffeid.RequireTrustDomainFromString("corp.example")
	root, rootKey, err := ca.GenerateRoot(td, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	interKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "corp intermediate"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour),
		KeyUsage: x509.KeyUsageCertSign, BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true,
	}, root, interKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	inter, _ := x509.ParseCertificate(der)
	keyDER, _ := x509.MarshalECPrivateKey(interKey)
	write := func(name string, data ...[]byte) string {
		p := filepath.Join(dir, name)
		var all []byte
		for _, d := range data {
			all = append(all, d...)
		}
		if err := os.WriteFile(p, all, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile := write("inter.pem", ca.EncodeCert(inter))
	bundleFile := write("bundle.pem", ca.EncodeCert(inter), ca.EncodeCert(root))
	keyFile := write("inter.key", pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER}))
	rootFile := write("root.pem", ca.EncodeCert(root))
	otherKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	otherDER, _ := x509.MarshalPKCS8PrivateKey(otherKey)
	wrongKeyFile := write("other.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: otherDER}))

	for name, sec := range map[string]SecurityConfig{
		"root apart":     {CACertFile: certFile, CASigningKeyFile: keyFile, CARootFile: rootFile},
		"root in bundle": {CACertFile: bundleFile, CASigningKeyFile: keyFile},
	} {
		t.Run(name, func(t *testing.T) {
			sec.TrustDomain = td
			a, err := loadSuppliedCA(&sec)
			if err != nil {
				t.Fatal(err)
			}
			if !a.Root().Equal(root) {
				t.Error("the trust anchor is not the root")
			}
			id, _ := ca.WorkloadID(td, "default", "web")
			k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			csrDER, _ := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{}, k)
			iss, err := a.Sign(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: csrDER}), id, time.Hour)
			if err != nil {
				t.Fatal(err)
			}
			if len(iss.ChainPEM) != 3 {
				t.Errorf("chain of %d, want leaf, intermediate, root", len(iss.ChainPEM))
			}
		})
	}
	for name, tc := range map[string]struct {
		sec  SecurityConfig
		want string
	}{
		"intermediate without its root": {SecurityConfig{CACertFile: certFile, CASigningKeyFile: keyFile}, "--ca-root-file"},
		"key of another certificate":    {SecurityConfig{CACertFile: certFile, CASigningKeyFile: wrongKeyFile, CARootFile: rootFile}, "does not match"},
		"no key in the key file":        {SecurityConfig{CACertFile: certFile, CASigningKeyFile: rootFile, CARootFile: rootFile}, "no PEM private key"},
		"missing file":                  {SecurityConfig{CACertFile: filepath.Join(dir, "nope.pem"), CASigningKeyFile: keyFile}, "--ca-cert-file"},
	} {
		t.Run(name, func(t *testing.T) {
			tc.sec.TrustDomain = td
			_, err := loadSuppliedCA(&tc.sec)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}
