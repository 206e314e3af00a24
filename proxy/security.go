package proxy

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sluicemesh/sluice/proxy/internal/identity"
	"github.com/sluicemesh/sluice/proxy/internal/xdsclient"
)

// securityOptions is how the proxy authenticates to the control plane and who it is.
type securityOptions struct {
	// tokenFile holds the workload token; empty means a plaintext control plane (local
	// development against sluice-server --insecure-xds), no token and no certificate.
	tokenFile string
	// token is the workload token read from tokenFile at start. It is never logged.
	token string
	// caRootFile holds the trust bundle roots came from.
	caRootFile string
	// roots verify the control plane's TLS certificate, and are the mesh's trust anchors.
	roots []*x509.Certificate
	// id is the workload's SPIFFE ID; without a token it may be zero (no service account).
	id spiffeid.ID
}

// Bounds on what is read from the files, so a wrong path (a log, a device) fails fast.
const (
	maxTokenFile  = 4 << 10
	maxBundleFile = 1 << 20
)

// workloadTokenPrefix starts every workload token.
const workloadTokenPrefix = "slcw_"

// tokenHint says how to make a workload token.
const tokenHint = "create one with sluicectl token create workload --namespace NS --service-account SA and write it to the file"

// parseSecurityOptions reads --token-file, --ca-root-file and --trust-domain. With a token
// file both files are read now, so a bad one stops the proxy at start; without one, a trust
// bundle is refused, since nothing would use it.
func parseSecurityOptions(o *options, tokenFile, caRootFile, trustDomain string) (securityOptions, error) {
	s := securityOptions{tokenFile: tokenFile, caRootFile: caRootFile}
	td, err := spiffeid.TrustDomainFromString(trustDomain)
	if err != nil {
		return s, fmt.Errorf("--trust-domain %q is not a SPIFFE trust domain (lowercase letters, digits, '.', '-' and '_', such as cluster.local; use the control plane's --trust-domain)", trustDomain)
	}
	if tokenFile == "" {
		if caRootFile != "" {
			return s, errors.New("--ca-root-file is given without --token-file: the proxy dials the control plane over TLS only with a workload token; give --token-file as well, or drop --ca-root-file for a plaintext local control plane")
		}
		// Without a token nothing checks the identity; it is named where it can be, and
		// left zero where the flags make none, as plaintext development always allowed.
		if o.serviceAccount != "" {
			s.id, _ = spiffeid.FromSegments(td, "ns", o.namespace, "sa", o.serviceAccount)
		}
		return s, nil
	}
	if s.token, err = readToken(tokenFile); err != nil {
		return s, err
	}
	if caRootFile == "" {
		return s, errors.New("--ca-root-file is required with --token-file: give the mesh's root in PEM (GET http://<server>/api/v1/ca/root, or the server's <data-dir>/root-cert.pem)")
	}
	if s.roots, err = readBundle(caRootFile); err != nil {
		return s, err
	}
	if o.serviceAccount == "" {
		return s, errors.New("--service-account is required with --token-file: the workload token is bound to a namespace and service account, and the proxy must claim the same ones")
	}
	if s.id, err = spiffeid.FromSegments(td, "ns", o.namespace, "sa", o.serviceAccount); err != nil {
		return s, fmt.Errorf("--namespace %q and --service-account %q do not make a SPIFFE ID (%v): use lowercase letters, digits, '.', '-' and '_'", o.namespace, o.serviceAccount, err)
	}
	return s, nil
}

// readToken reads a workload token file: one slcw_ token, surrounding white space ignored.
// Its errors never quote the file's content.
func readToken(path string) (string, error) {
	b, err := readBounded(path, maxTokenFile)
	if err != nil {
		return "", fmt.Errorf("--token-file: %w (%s)", err, tokenHint)
	}
	tok := strings.TrimSpace(string(b))
	switch {
	case tok == "":
		return "", fmt.Errorf("--token-file %s is empty (%s)", path, tokenHint)
	case !strings.HasPrefix(tok, workloadTokenPrefix):
		return "", fmt.Errorf("--token-file %s does not hold a workload token (they start with %q; an API token is not one; %s)", path, workloadTokenPrefix, tokenHint)
	case strings.ContainsFunc(tok, func(r rune) bool { return r <= ' ' || r > '~' }):
		return "", fmt.Errorf("--token-file %s holds more than one token, or characters no token has (%s)", path, tokenHint)
	}
	return tok, nil
}

// readBundle reads a PEM file of one or more CA certificates.
func readBundle(path string) ([]*x509.Certificate, error) {
	b, err := readBounded(path, maxBundleFile)
	if err != nil {
		return nil, fmt.Errorf("--ca-root-file: %w", err)
	}
	var certs []*x509.Certificate
	for i := 0; ; i++ {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("--ca-root-file %s: PEM block %d is a %q, want CERTIFICATE (give only the mesh's root certificate)", path, i, block.Type)
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("--ca-root-file %s: certificate %d does not parse: %w", path, i, err)
		}
		if !c.IsCA {
			return nil, fmt.Errorf("--ca-root-file %s: certificate %d (%s) is not a CA certificate: give the mesh's root (GET /api/v1/ca/root)", path, i, c.Subject)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("--ca-root-file %s holds no PEM certificate: give the mesh's root (GET http://<server>/api/v1/ca/root)", path)
	}
	return certs, nil
}

// readBounded reads a regular file of at most limit bytes.
func readBounded(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err // "open PATH: no such file or directory"
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}

// credentials returns the control plane's dial credentials.
func (s *securityOptions) credentials() xdsclient.Credentials {
	if s.token == "" {
		return xdsclient.Credentials{}
	}
	pool := x509.NewCertPool()
	for _, c := range s.roots {
		pool.AddCert(c)
	}
	return xdsclient.Credentials{Token: s.token, Roots: pool}
}

// newIdentity returns the manager of the workload's certificate, or nil without a token (the
// proxy then has an identity.Static without a certificate).
func (s *securityOptions) newIdentity(issuer identity.Issuer, refusals *xdsclient.Refusals, log *slog.Logger) *identity.Manager {
	if s.token == "" {
		return nil
	}
	return identity.NewManager(identity.Config{ID: s.id, Issuer: issuer, Bundle: s.roots, Refused: refusals.Refused, Log: log})
}
