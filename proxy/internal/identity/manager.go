package identity

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	mrand "math/rand/v2"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

// ErrCertificateExpired is returned by Manager.Certificate once the certificate it holds has
// expired without being renewed: a handshake with it would fail at the peer anyway.
var ErrCertificateExpired = errors.New("the workload certificate expired and could not be renewed")

// ErrWrongIdentity means the control plane issued a certificate for another identity than
// the workload's own; the certificate is discarded.
var ErrWrongIdentity = errors.New("issued certificate names another identity")

// maxChain bounds the certificates accepted in one issued chain.
const maxChain = 10

// issueTimeout bounds one certificate request.
const issueTimeout = 30 * time.Second

// Issuer obtains a signed certificate chain for a certificate request.
type Issuer interface {
	// Issue sends csrPEM (a PEM CERTIFICATE REQUEST) asking for a certificate valid for
	// validity (zero: the issuer's default) and returns the chain in PEM, leaf first and
	// root last.
	Issue(ctx context.Context, csrPEM []byte, validity time.Duration) ([]string, error)
}

// Config configures a Manager.
type Config struct {
	// ID is the workload's SPIFFE ID; an issued certificate must name exactly it.
	ID spiffeid.ID
	// Issuer signs the certificate requests: the control plane's certificate service.
	Issuer Issuer
	// Bundle is the mesh's trust anchors as configured (--ca-root-file). Roots returns them
	// together with the root that ends the issued chain.
	Bundle []*x509.Certificate
	// Validity is the lifetime asked for; zero asks for the issuer's default.
	Validity time.Duration
	// Refused reports that an error is the control plane refusing the proxy's credentials,
	// which only an operator can fix; the Manager then waits RetryMax before asking again
	// and leaves the logging to Refused. Nil treats every failure alike.
	Refused func(error) bool
	// RetryBase and RetryMax bound the wait after a failed request: a random duration up to
	// RetryBase doubled per failure in a row, never above RetryMax. Zero means 1s and 15s.
	RetryBase, RetryMax time.Duration
	// Log receives issuances, failures and warnings of a coming expiry. Nil discards them.
	Log *slog.Logger
}

// Manager is a Source whose certificate it obtains from an Issuer and renews at about half
// its life, with jitter so that proxies started together do not renew together. A failed
// renewal is retried with backoff while the old certificate stays in use; the new one
// replaces it in one atomic step, so a handshake sees the old key and chain or the new ones,
// never a mix. Create it with NewManager and run it with Run.
type Manager struct {
	cfg    Config
	bundle *x509.CertPool
	log    *slog.Logger
	now    func() time.Time

	state     atomic.Pointer[state]
	rotations atomic.Uint64
	issued    chan struct{} // closed once the first certificate is held
	issuedSet sync.Once

	mu          sync.Mutex
	lastError   string
	lastErrorAt time.Time
	nextAttempt time.Time
}

// state is one issued certificate with everything derived from it; it never changes once
// stored.
type state struct {
	cert      *tls.Certificate
	leaf      *x509.Certificate
	roots     *x509.CertPool
	rootCount int
}

var _ Source = (*Manager)(nil)

// NewManager returns a Manager for cfg; it holds no certificate until Run obtains one.
func NewManager(cfg Config) *Manager {
	// Defaults: 15 s is also the longest wait of the xDS client and the telemetry streams,
	// so after an outage of the control plane all three come back within the same interval.
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = 15 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pool := x509.NewCertPool()
	for _, c := range cfg.Bundle {
		pool.AddCert(c)
	}
	return &Manager{cfg: cfg, bundle: pool, log: log, now: time.Now, issued: make(chan struct{})}
}

// ID returns the workload's SPIFFE ID.
func (m *Manager) ID() spiffeid.ID { return m.cfg.ID }

// Certificate returns the current certificate chain (leaf first, without the root) and its
// private key. It returns ErrNoCertificate until the first one is issued, and
// ErrCertificateExpired when the one held has expired.
func (m *Manager) Certificate() (*tls.Certificate, error) {
	st := m.state.Load()
	if st == nil {
		return nil, ErrNoCertificate
	}
	if !m.now().Before(st.leaf.NotAfter) {
		return nil, fmt.Errorf("%w (it expired at %s)", ErrCertificateExpired, st.leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	return st.cert, nil
}

// Roots returns the trust bundle: Config.Bundle and the root of the issued chain.
func (m *Manager) Roots() *x509.CertPool {
	if st := m.state.Load(); st != nil {
		return st.roots
	}
	return m.bundle
}

// Issued returns a channel closed once the first certificate is held.
func (m *Manager) Issued() <-chan struct{} { return m.issued }

// Status describes the certificate a Manager holds.
type Status struct {
	// SPIFFEID is the workload's identity.
	SPIFFEID string
	// Issued reports that a certificate is held; the fields below up to Roots describe it.
	Issued bool
	// Serial is the certificate's serial number in hexadecimal.
	Serial    string
	NotBefore time.Time
	NotAfter  time.Time
	// Issuer is the subject of the certificate's issuer.
	Issuer string
	// Roots counts the trust anchors in the bundle.
	Roots int
	// Rotations counts the certificates that replaced an earlier one.
	Rotations uint64
	// LastError is why the last request failed, if none succeeded since; LastErrorAt is when.
	LastError   string
	LastErrorAt time.Time
	// NextAttempt is when the next request goes out: the renewal, or the retry of a failed
	// request. Zero before the first one.
	NextAttempt time.Time
}

// Status returns what the Manager holds.
func (m *Manager) Status() Status {
	s := Status{SPIFFEID: m.cfg.ID.String(), Rotations: m.rotations.Load(), Roots: len(m.cfg.Bundle)}
	if st := m.state.Load(); st != nil {
		s.Issued = true
		s.Serial = st.leaf.SerialNumber.Text(16)
		s.NotBefore, s.NotAfter = st.leaf.NotBefore, st.leaf.NotAfter
		s.Issuer = st.leaf.Issuer.String()
		s.Roots = st.rootCount
	}
	m.mu.Lock()
	s.LastError, s.LastErrorAt, s.NextAttempt = m.lastError, m.lastErrorAt, m.nextAttempt
	m.mu.Unlock()
	return s
}

// Run obtains a certificate, then renews it at about half its life, until ctx ends; it
// returns nil then. Call it once.
func (m *Manager) Run(ctx context.Context) error {
	failures := 0
	for {
		err := m.rotate(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var wait time.Duration
		if err == nil {
			failures = 0
			wait = m.renewalDelay(m.state.Load().leaf)
		} else {
			failures++
			wait = m.retryDelay(failures, err)
			m.recordFailure(err, wait)
		}
		m.mu.Lock()
		m.nextAttempt = m.now().Add(wait)
		m.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// rotate obtains a certificate for a new key and, once it checks out, makes it current.
func (m *Manager) rotate(ctx context.Context) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("generate the workload key: %w", err)
	}
	// The request names exactly the workload's identity, which the CA accepts (it would
	// also accept none) and which makes a request for the wrong identity fail at the CA.
	der, err := x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{URIs: []*url.URL{m.cfg.ID.URL()}}, key)
	if err != nil {
		return fmt.Errorf("create the certificate request: %w", err)
	}
	csrPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der})
	ictx, cancel := context.WithTimeout(ctx, issueTimeout)
	defer cancel()
	chain, err := m.cfg.Issuer.Issue(ictx, csrPEM, m.cfg.Validity)
	if err != nil {
		return fmt.Errorf("request a workload certificate: %w", err)
	}
	st, err := m.check(chain, key)
	if err != nil {
		return fmt.Errorf("check the issued certificate: %w", err)
	}
	old := m.state.Swap(st)
	if old != nil {
		m.rotations.Add(1)
	}
	m.issuedSet.Do(func() { close(m.issued) })
	m.mu.Lock()
	m.lastError, m.lastErrorAt = "", time.Time{}
	m.mu.Unlock()
	m.log.Info("workload certificate issued", "spiffe_id", m.cfg.ID.String(),
		"serial", st.leaf.SerialNumber.Text(16), "not_after", st.leaf.NotAfter.UTC().Format(time.RFC3339),
		"rotation", old != nil)
	return nil
}

// check verifies an issued chain: PEM certificates, leaf first, whose leaf is an X.509-SVID
// for the workload's own ID and key and chains to the bundle or to the chain's own root.
func (m *Manager) check(chainPEM []string, key *ecdsa.PrivateKey) (*state, error) {
	var certs []*x509.Certificate
	var raw []byte
	for i, s := range chainPEM {
		rest := []byte(s)
		for {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if block.Type != "CERTIFICATE" {
				return nil, fmt.Errorf("cert_chain[%d] holds a PEM %q block, want CERTIFICATE", i, block.Type)
			}
			if len(certs) == maxChain {
				return nil, fmt.Errorf("cert_chain holds more than %d certificates", maxChain)
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("cert_chain[%d]: %w", i, err)
			}
			certs = append(certs, c)
			raw = append(raw, block.Bytes...)
		}
	}
	if len(certs) == 0 {
		return nil, errors.New("cert_chain holds no PEM certificate")
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encode the workload key: %w", err)
	}
	// x509svid checks the leaf's form (one SPIFFE URI SAN, not a CA, a signing key usage)
	// and that it carries the key the request was made with.
	svid, err := x509svid.ParseRaw(raw, keyDER)
	if err != nil {
		return nil, fmt.Errorf("the leaf is not a valid X.509-SVID for the workload key: %w", err)
	}
	if svid.ID != m.cfg.ID {
		if svid.ID.TrustDomain() != m.cfg.ID.TrustDomain() {
			return nil, fmt.Errorf("%w: it is for %s, in trust domain %q, but this proxy is %s: set --trust-domain to the control plane's --trust-domain",
				ErrWrongIdentity, svid.ID, svid.ID.TrustDomain().Name(), m.cfg.ID)
		}
		return nil, fmt.Errorf("%w: it is for %s, but this proxy is %s", ErrWrongIdentity, svid.ID, m.cfg.ID)
	}
	leaf := certs[0]
	roots := m.bundle.Clone()
	rootCount := len(m.cfg.Bundle)
	presented := certs
	if n := len(certs); n > 1 {
		root := certs[n-1]
		if !inBundle(m.cfg.Bundle, root) {
			roots.AddCert(root)
			rootCount++
		}
		// Peers hold the root already; a handshake sends the leaf and intermediates.
		presented = certs[:n-1]
	}
	inter := x509.NewCertPool()
	for _, c := range presented[1:] {
		inter.AddCert(c)
	}
	now := m.now()
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("the leaf does not verify against the trust bundle: %w", err)
	}
	tc := &tls.Certificate{PrivateKey: key, Leaf: leaf}
	for _, c := range presented {
		tc.Certificate = append(tc.Certificate, c.Raw)
	}
	return &state{cert: tc, leaf: leaf, roots: roots, rootCount: rootCount}, nil
}

func inBundle(bundle []*x509.Certificate, c *x509.Certificate) bool {
	for _, b := range bundle {
		if b.Equal(c) {
			return true
		}
	}
	return false
}

// renewalDelay is the wait until leaf is renewed: half its life, less up to a tenth of its
// life of jitter, counted from its NotBefore.
func (m *Manager) renewalDelay(leaf *x509.Certificate) time.Duration {
	life := leaf.NotAfter.Sub(leaf.NotBefore)
	at := leaf.NotBefore.Add(life/2 - mrand.N(life/10+1))
	return max(at.Sub(m.now()), 0)
}

// retryDelay is the wait after the n-th failure in a row: full jitter over an exponential
// cap, RetryMax after a refusal of the proxy's credentials, and never past half the time the
// current certificate has left, so a renewal gets several chances before it expires.
func (m *Manager) retryDelay(n int, err error) time.Duration {
	if m.cfg.Refused != nil && m.cfg.Refused(err) {
		return m.cfg.RetryMax
	}
	ceiling := m.cfg.RetryMax
	if n < 32 {
		ceiling = min(m.cfg.RetryMax, m.cfg.RetryBase<<(n-1))
	}
	wait := mrand.N(ceiling + 1)
	if st := m.state.Load(); st != nil {
		if left := st.leaf.NotAfter.Sub(m.now()); left > 0 {
			wait = min(wait, max(left/2, m.cfg.RetryBase))
		}
	}
	return wait
}

// recordFailure keeps and logs a failed request, louder the nearer the held certificate is
// to its expiry.
func (m *Manager) recordFailure(err error, wait time.Duration) {
	now := m.now()
	m.mu.Lock()
	m.lastError, m.lastErrorAt = err.Error(), now
	m.mu.Unlock()
	st := m.state.Load()
	switch {
	case st == nil:
		if m.cfg.Refused != nil && m.cfg.Refused(err) {
			return // Refused has said what to fix
		}
		m.log.Warn("could not obtain a workload certificate; retrying", "spiffe_id", m.cfg.ID.String(),
			"error", err, "retry_in", wait)
	case !now.Before(st.leaf.NotAfter):
		m.log.Error("the workload certificate has EXPIRED and could not be renewed: mutual TLS fails until it is", "spiffe_id", m.cfg.ID.String(),
			"expired_at", st.leaf.NotAfter.UTC().Format(time.RFC3339), "error", err, "retry_in", wait)
	case st.leaf.NotAfter.Sub(now) < st.leaf.NotAfter.Sub(st.leaf.NotBefore)/4:
		m.log.Error("the workload certificate expires soon and could not be renewed", "spiffe_id", m.cfg.ID.String(),
			"expires_in", st.leaf.NotAfter.Sub(now).Round(time.Second), "error", err, "retry_in", wait)
	default:
		m.log.Warn("could not renew the workload certificate; the current one stays in use", "spiffe_id", m.cfg.ID.String(),
			"expires_in", st.leaf.NotAfter.Sub(now).Round(time.Second), "error", err, "retry_in", wait)
	}
}
