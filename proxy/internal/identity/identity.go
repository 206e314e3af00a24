// Package identity holds a sidecar's workload identity: its SPIFFE ID, its current
// certificate (issued by the mesh CA and rotated before it expires) and the mesh's trust
// bundle. The listeners and clusters that speak mutual TLS read them through Source on every
// handshake, so a rotation takes effect on the next connection without dropping any.
package identity

import (
	"crypto/tls"
	"crypto/x509"
	"errors"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
)

// Source provides the workload's identity. Implementations are safe for concurrent use.
type Source interface {
	// ID is the workload's SPIFFE ID, such as spiffe://cluster.local/ns/default/sa/reviews.
	ID() spiffeid.ID
	// Certificate returns the current certificate chain (leaf first) and its private key;
	// it returns ErrNoCertificate until the first one is issued.
	Certificate() (*tls.Certificate, error)
	// Roots returns the mesh's trust bundle.
	Roots() *x509.CertPool
}

// ErrNoCertificate is returned by Source.Certificate before a certificate has been issued.
var ErrNoCertificate = errors.New("no workload certificate has been issued yet")

// Static is a Source whose certificate never changes (tests, and files given by hand).
type Static struct {
	Identity spiffeid.ID
	Cert     *tls.Certificate
	Pool     *x509.CertPool
}

var _ Source = (*Static)(nil)

// ID returns s.Identity.
func (s *Static) ID() spiffeid.ID { return s.Identity }

// Certificate returns s.Cert, or ErrNoCertificate when it is nil.
func (s *Static) Certificate() (*tls.Certificate, error) {
	if s.Cert == nil {
		return nil, ErrNoCertificate
	}
	return s.Cert, nil
}

// Roots returns s.Pool.
func (s *Static) Roots() *x509.CertPool { return s.Pool }
