package server

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sluicemesh/sluice/server/internal/ca"
)

// SecurityConfig is the certificate authority's and the authenticated xDS port's part of
// Config.
type SecurityConfig struct {
	// XDSTLSAddr is the authenticated xDS, CA and telemetry port (TLS, workload tokens).
	XDSTLSAddr string
	// InsecureXDS opens the plaintext, unauthenticated XDSAddr as well; for local development.
	InsecureXDS bool
	// TrustDomain is the SPIFFE trust domain of the mesh's identities.
	TrustDomain spiffeid.TrustDomain
	// CAKeyFile holds the key that seals the generated root's private key; empty means
	// <DataDir>/ca.key, created on first start.
	CAKeyFile string
	// CACertFile and CASigningKeyFile are an operator-supplied signing CA (root or
	// intermediate); CARootFile is its root when it is an intermediate. Empty means a
	// generated root kept in the database.
	CACertFile       string
	CASigningKeyFile string
	CARootFile       string
	// WorkloadCertTTL is the lifetime of workload certificates, and the most a proxy may ask.
	WorkloadCertTTL time.Duration
	// XDSTLSHosts and XDSTLSIPs are the names in the authenticated port's certificate.
	XDSTLSHosts []string
	XDSTLSIPs   []net.IP
}

// parseTLSHosts splits --xds-tls-hosts into DNS names and IP addresses.
func parseTLSHosts(v string) (hosts []string, ips []net.IP, err error) {
	for _, h := range strings.Split(v, ",") {
		h = strings.TrimSpace(h)
		if h == "" {
			continue
		}
		if ip := net.ParseIP(h); ip != nil {
			ips = append(ips, ip)
			continue
		}
		if strings.ContainsAny(h, " /:@") {
			return nil, nil, fmt.Errorf("--xds-tls-hosts: %q is neither a DNS name nor an IP address", h)
		}
		hosts = append(hosts, strings.ToLower(h))
	}
	if len(hosts)+len(ips) == 0 {
		return nil, nil, errors.New("--xds-tls-hosts is empty: give the names and addresses proxies dial, such as localhost,127.0.0.1")
	}
	return hosts, ips, nil
}

// defaultTLSHosts is localhost, the machine's host name, 127.0.0.1 and ::1.
func defaultTLSHosts() string {
	hosts := []string{"localhost"}
	if h, err := os.Hostname(); err == nil && h != "" && h != "localhost" {
		hosts = append(hosts, strings.ToLower(h))
	}
	return strings.Join(append(hosts, "127.0.0.1", "::1"), ",")
}

// setUpCA returns the mesh's certificate authority: the operator's signing CA from files, or
// the root kept in the database, generated at the first start.
func setUpCA(ctx context.Context, cfg *Config, st ca.RootStore, log *slog.Logger) (*ca.Authority, error) {
	sec := &cfg.Security
	if sec.CACertFile != "" {
		if sec.CAKeyFile != "" {
			log.Warn("--ca-key-file is not used: it seals a generated root, and --ca-cert-file supplies the signing CA", "ca_key_file", sec.CAKeyFile)
		}
		return loadSuppliedCA(sec)
	}
	keyPath := sec.CAKeyFile
	if keyPath == "" {
		keyPath = filepath.Join(cfg.DataDir, "ca.key")
		created, err := ensureKeyFile(keyPath)
		if err != nil {
			return nil, err
		}
		if created {
			log.Warn("GENERATED THE CA KEY FILE: it seals the mesh root's private key in the database; BACK IT UP, since without it this database's CA cannot be used again (or pass your own with --ca-key-file)",
				"ca_key_file", keyPath)
		}
	}
	raw, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("read the CA key file %s (--ca-key-file): %w; %s", keyPath, err, ca.KeyFileHint)
	}
	key, err := ca.ParseKey(raw)
	if err != nil {
		return nil, fmt.Errorf("CA key file %s (--ca-key-file): %w", keyPath, err)
	}
	a, created, err := ca.LoadOrCreateRoot(ctx, st, key, sec.TrustDomain, nil)
	if errors.Is(err, ca.ErrWrongKey) {
		return nil, fmt.Errorf("the CA key file %s does not open the root stored in the database: give the key file that was used when the root was made (--ca-key-file); a new root is not made in its place, since every certificate in the mesh chains to the stored one", keyPath)
	}
	if err != nil {
		return nil, err
	}
	if created {
		log.Info("generated the mesh's root CA", "subject", a.Root().Subject.String(), "not_after", a.Root().NotAfter.UTC().Format(time.RFC3339), "ca_key_file", keyPath)
	}
	return a, nil
}

// ensureKeyFile creates a key file of 32 random bytes at path, mode 0600, unless one exists,
// and reports whether it created it. Replicas racing to create it end up with one file.
func ensureKeyFile(path string) (bool, error) {
	if _, err := os.Stat(path); err == nil {
		return false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("CA key file %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return false, fmt.Errorf("create the CA key file %s: %w", path, err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".ca.key-*")
	if err != nil {
		return false, fmt.Errorf("create the CA key file %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	key := make([]byte, ca.KeySize)
	_, _ = rand.Read(key) // crypto/rand.Read never fails
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return false, fmt.Errorf("create the CA key file %s: %w", path, err)
	}
	if _, err := tmp.Write(key); err != nil {
		tmp.Close()
		return false, fmt.Errorf("create the CA key file %s: %w", path, err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return false, fmt.Errorf("create the CA key file %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return false, fmt.Errorf("create the CA key file %s: %w", path, err)
	}
	// A hard link fails when path exists, so a file another process made first is kept, and
	// nobody ever reads a half-written key.
	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return false, nil
		}
		return false, fmt.Errorf("create the CA key file %s: %w", path, err)
	}
	return true, nil
}

// loadSuppliedCA reads --ca-cert-file, --ca-signing-key-file and --ca-root-file.
func loadSuppliedCA(sec *SecurityConfig) (*ca.Authority, error) {
	read := func(flag, path string) ([]byte, error) {
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %w", flag, path, err)
		}
		return b, nil
	}
	certPEM, err := read("--ca-cert-file", sec.CACertFile)
	if err != nil {
		return nil, err
	}
	certs, err := ca.ParseCertsPEM("--ca-cert-file "+sec.CACertFile, certPEM)
	if err != nil {
		return nil, err
	}
	keyPEM, err := read("--ca-signing-key-file", sec.CASigningKeyFile)
	if err != nil {
		return nil, err
	}
	key, err := ca.ParseKeyPEM("--ca-signing-key-file "+sec.CASigningKeyFile, keyPEM)
	if err != nil {
		return nil, err
	}
	o := ca.Options{TrustDomain: sec.TrustDomain, Cert: certs[0], Key: key, Intermediates: certs[1:]}
	if sec.CARootFile != "" {
		rootPEM, err := read("--ca-root-file", sec.CARootFile)
		if err != nil {
			return nil, err
		}
		roots, err := ca.ParseCertsPEM("--ca-root-file "+sec.CARootFile, rootPEM)
		if err != nil {
			return nil, err
		}
		if len(roots) != 1 {
			return nil, fmt.Errorf("--ca-root-file %s holds %d certificates: give exactly the root", sec.CARootFile, len(roots))
		}
		o.Root = roots[0]
	} else if n := len(certs); n > 1 && string(certs[n-1].RawIssuer) == string(certs[n-1].RawSubject) {
		// A bundle ending in its self-signed root: that root is the trust anchor.
		o.Intermediates, o.Root = certs[1:n-1], certs[n-1]
	}
	a, err := ca.New(o)
	if err != nil {
		return nil, fmt.Errorf("--ca-cert-file %s: %w", sec.CACertFile, err)
	}
	return a, nil
}

// writeRootFile writes the trust bundle to <data-dir>/root-cert.pem for local proxies.
func writeRootFile(dataDir string, a *ca.Authority) (string, error) {
	path := filepath.Join(dataDir, "root-cert.pem")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return "", fmt.Errorf("write the trust bundle %s: %w", path, err)
	}
	tmp := fmt.Sprintf("%s.%d.tmp", path, os.Getpid())
	if err := os.WriteFile(tmp, a.RootPEM(), 0o644); err != nil {
		return "", fmt.Errorf("write the trust bundle %s: %w", path, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", fmt.Errorf("write the trust bundle %s: %w", path, err)
	}
	return path, nil
}

// serverTLSConfig is the authenticated port's TLS: TLS 1.2 or later, the certificate from
// certs, no client certificate (proxies authenticate with workload tokens).
func serverTLSConfig(certs *ca.ServerCertSource) *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate, NextProtos: []string{"h2"}}
}

// parseSecurityFlags validates the security flags into cfg.Security.
func parseSecurityFlags(cfg *Config, trustDomain, workloadTTL, tlsHosts string) error {
	sec := &cfg.Security
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return &usageError{fmt.Sprintf("--trust-domain %q is not a SPIFFE trust domain (lowercase letters, digits, '.', '-', '_'; for example cluster.local): %v", trustDomain, err)}
	}
	sec.TrustDomain = td
	d, err := time.ParseDuration(workloadTTL)
	if err != nil || d < ca.MinWorkloadTTL || d > 90*24*time.Hour {
		return &usageError{fmt.Sprintf("--workload-cert-ttl %q is not a duration from %s to 2160h (for example 24h)", workloadTTL, ca.MinWorkloadTTL)}
	}
	sec.WorkloadCertTTL = d
	if sec.XDSTLSHosts, sec.XDSTLSIPs, err = parseTLSHosts(tlsHosts); err != nil {
		return &usageError{err.Error()}
	}
	switch {
	case (sec.CACertFile == "") != (sec.CASigningKeyFile == ""):
		return &usageError{"--ca-cert-file and --ca-signing-key-file go together: give both (a CA certificate and its private key), or neither to use a generated root"}
	case sec.CARootFile != "" && sec.CACertFile == "":
		return &usageError{"--ca-root-file is the root of --ca-cert-file: give --ca-cert-file and --ca-signing-key-file as well"}
	case sec.CACertFile == "" && sec.CAKeyFile == "" && cfg.DataDir == "":
		return &usageError{"--data-dir is empty and --ca-key-file is not given: give one of them, so the CA key has a home"}
	}
	return nil
}
