package identity_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/sluicemesh/sluice/proxy/internal/identity"
	"github.com/sluicemesh/sluice/proxy/internal/identity/identitytest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

var reviews = spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/reviews")

// syncBuffer is a log sink safe for the Manager's goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// rig is a Manager obtaining its certificates over gRPC from a test CA's service.
type rig struct {
	ca  *identitytest.CA
	svc *identitytest.Service
	m   *identity.Manager
	log *syncBuffer
}

func newRig(t *testing.T, cfg identity.Config) *rig {
	t.Helper()
	ca := identitytest.NewCA(t, "test root")
	svc := &identitytest.Service{CA: ca}
	addr := identitytest.Serve(t, svc)
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	log := &syncBuffer{}
	if cfg.ID.IsZero() {
		cfg.ID = reviews
	}
	cfg.Issuer = identity.NewGRPCIssuer(conn)
	cfg.Bundle = []*x509.Certificate{ca.Root}
	cfg.Log = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	return &rig{ca: ca, svc: svc, m: identity.NewManager(cfg), log: log}
}

// run runs the Manager until the test ends.
func (r *rig) run(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.m.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		t.Logf("manager log:\n%s", r.log)
	})
}

// eventually retries check until it holds; the deadline only bounds a failing test.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}

// leafOf returns the certificate the Manager serves now, checked against its own trust
// bundle and key.
func leafOf(t *testing.T, m *identity.Manager) *x509.Certificate {
	t.Helper()
	c, err := m.Certificate()
	if err != nil {
		t.Fatalf("Certificate: %v", err)
	}
	if len(c.Certificate) != 1 {
		t.Errorf("the served chain holds %d certificates, want the leaf alone (the root is not sent)", len(c.Certificate))
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if !leaf.Equal(c.Leaf) {
		t.Error("tls.Certificate.Leaf is not the first certificate of the chain")
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != reviews.String() {
		t.Errorf("leaf URI SANs %v, want %s", leaf.URIs, reviews)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: m.Roots(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf does not verify against Roots(): %v", err)
	}
	pub, ok := c.PrivateKey.(crypto.Signer)
	if !ok || !pub.Public().(*ecdsa.PublicKey).Equal(leaf.PublicKey) {
		t.Error("the private key does not match the leaf")
	}
	return leaf
}

func TestManagerIssuesThenRotatesAtHalfLife(t *testing.T) {
	r := newRig(t, identity.Config{})
	// Short certificates, so that half-life comes quickly.
	r.svc.SetAnswer(func(q identitytest.Request) (spiffeid.ID, crypto.PublicKey, time.Time, time.Time, error) {
		now := time.Now()
		return q.ID, q.Key, now, now.Add(2 * time.Second), nil
	})
	if _, err := r.m.Certificate(); !errors.Is(err, identity.ErrNoCertificate) {
		t.Fatalf("Certificate before Run: %v, want ErrNoCertificate", err)
	}
	if st := r.m.Status(); st.Issued || st.Roots != 1 || st.SPIFFEID != reviews.String() {
		t.Errorf("Status before Run: %+v", st)
	}
	r.run(t)
	<-r.m.Issued()
	first := leafOf(t, r.m)
	// The renewal is due between 40 % and 50 % of the certificate's life.
	eventually(t, "the renewal scheduled", func() error {
		if r.m.Status().NextAttempt.IsZero() {
			return errors.New("no renewal scheduled yet")
		}
		return nil
	})
	if next, life := r.m.Status().NextAttempt, first.NotAfter.Sub(first.NotBefore); next.Before(first.NotBefore.Add(life*4/10)) || next.After(first.NotBefore.Add(life/2+50*time.Millisecond)) {
		if st := r.m.Status(); st.Rotations == 0 { // a later renewal's schedule would differ
			t.Errorf("renewal due at %v, want between 40%% and 50%% of the life from %v to %v", next, first.NotBefore, first.NotAfter)
		}
	}
	eventually(t, "a rotation", func() error {
		if r.m.Status().Rotations == 0 {
			return errors.New("no rotation yet")
		}
		return nil
	})
	second := leafOf(t, r.m)
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Error("the rotated certificate has the first one's serial")
	}
	if first.PublicKey.(*ecdsa.PublicKey).Equal(second.PublicKey) {
		t.Error("the rotated certificate reuses the first key; each renewal must make a new key")
	}
	st := r.m.Status()
	if !st.Issued || st.Serial == "" || st.Issuer != r.ca.Root.Subject.String() || st.Roots != 1 || st.LastError != "" {
		t.Errorf("Status after rotation: %+v", st)
	}
}

func TestFailedRenewalKeepsTheCertificateAndRetries(t *testing.T) {
	r := newRig(t, identity.Config{RetryBase: time.Millisecond, RetryMax: 10 * time.Millisecond})
	// The first certificate is past half its life at once, with ample time left, so the
	// renewal starts immediately and the old certificate stays valid throughout.
	r.svc.SetAnswer(func(q identitytest.Request) (spiffeid.ID, crypto.PublicKey, time.Time, time.Time, error) {
		now := time.Now()
		r.svc.SetAnswer(func(identitytest.Request) (spiffeid.ID, crypto.PublicKey, time.Time, time.Time, error) {
			return spiffeid.ID{}, nil, time.Time{}, time.Time{}, status.Error(codes.Unavailable, "the CA is down")
		})
		return q.ID, q.Key, now.Add(-35 * time.Minute), now.Add(25 * time.Minute), nil
	})
	r.run(t)
	<-r.m.Issued()
	first := leafOf(t, r.m)
	eventually(t, "three failed renewals", func() error {
		if n := r.svc.Calls(); n < 4 {
			return errors.New("fewer than three renewals tried")
		}
		return nil
	})
	if got := leafOf(t, r.m); !got.Equal(first) {
		t.Fatal("a failed renewal replaced the certificate")
	}
	st := r.m.Status()
	if st.Rotations != 0 || !strings.Contains(st.LastError, "the CA is down") {
		t.Errorf("Status while renewals fail: %+v", st)
	}
	if !strings.Contains(r.log.String(), "could not renew the workload certificate; the current one stays in use") {
		t.Error("the failed renewal was not logged")
	}

	r.svc.SetAnswer(nil) // the CA is back
	eventually(t, "the renewal after the CA came back", func() error {
		if r.m.Status().Rotations == 0 {
			return errors.New("no rotation yet")
		}
		return nil
	})
	if got := leafOf(t, r.m); got.Equal(first) {
		t.Error("the rotation did not replace the certificate")
	}
	if st := r.m.Status(); st.LastError != "" {
		t.Errorf("LastError after a successful renewal: %q", st.LastError)
	}
}

func TestIssuedCertificateMustBeTheWorkloads(t *testing.T) {
	otherKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		answer  identitytest.Answer
		wantErr string
	}{
		{name: "another service account",
			answer: func(q identitytest.Request) (spiffeid.ID, crypto.PublicKey, time.Time, time.Time, error) {
				return spiffeid.RequireFromString("spiffe://cluster.local/ns/default/sa/ratings"), q.Key, time.Now(), time.Now().Add(time.Hour), nil
			},
			wantErr: "issued certificate names another identity: it is for spiffe://cluster.local/ns/default/sa/ratings, but this proxy is spiffe://cluster.local/ns/default/sa/reviews"},
		{name: "another trust domain",
			answer: func(q identitytest.Request) (spiffeid.ID, crypto.PublicKey, time.Time, time.Time, error) {
				return spiffeid.RequireFromString("spiffe://example.org/ns/default/sa/reviews"), q.Key, time.Now(), time.Now().Add(time.Hour), nil
			},
			wantErr: "set --trust-domain to the control plane's --trust-domain"},
		{name: "another key",
			answer: func(q identitytest.Request) (spiffeid.ID, crypto.PublicKey, time.Time, time.Time, error) {
				return q.ID, otherKey.Public(), time.Now(), time.Now().Add(time.Hour), nil
			},
			wantErr: "the leaf is not a valid X.509-SVID for the workload key"},
		{name: "already expired",
			answer: func(q identitytest.Request) (spiffeid.ID, crypto.PublicKey, time.Time, time.Time, error) {
				return q.ID, q.Key, time.Now().Add(-2 * time.Hour), time.Now().Add(-time.Hour), nil
			},
			wantErr: "the leaf does not verify against the trust bundle: x509: certificate has expired"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, identity.Config{RetryBase: time.Millisecond, RetryMax: 10 * time.Millisecond})
			r.svc.SetAnswer(tt.answer)
			r.run(t)
			eventually(t, "the refusal", func() error {
				if r.svc.Calls() < 2 {
					return errors.New("fewer than two requests")
				}
				return nil
			})
			if _, err := r.m.Certificate(); !errors.Is(err, identity.ErrNoCertificate) {
				t.Errorf("Certificate: %v, want ErrNoCertificate", err)
			}
			select {
			case <-r.m.Issued():
				t.Error("Issued is closed")
			default:
			}
			if st := r.m.Status(); st.Issued || !strings.Contains(st.LastError, tt.wantErr) {
				t.Errorf("Status: %+v, want LastError containing %q", st, tt.wantErr)
			}
		})
	}
}

func TestRefusalWaitsTheLongestBackoffAndLeavesTheLogToRefused(t *testing.T) {
	var mu sync.Mutex
	var refused []error
	r := newRig(t, identity.Config{RetryBase: time.Millisecond, RetryMax: time.Hour, Refused: func(err error) bool {
		mu.Lock()
		defer mu.Unlock()
		refused = append(refused, err)
		return status.Code(err) == codes.Unauthenticated
	}})
	r.svc.SetAnswer(func(identitytest.Request) (spiffeid.ID, crypto.PublicKey, time.Time, time.Time, error) {
		return spiffeid.ID{}, nil, time.Time{}, time.Time{}, identitytest.ErrRefused
	})
	r.run(t)
	eventually(t, "the refusal", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(refused) == 0 {
			return errors.New("Refused not called")
		}
		return nil
	})
	eventually(t, "the failure recorded", func() error {
		if r.m.Status().LastError == "" {
			return errors.New("no LastError yet")
		}
		return nil
	})
	st := r.m.Status()
	if wait := st.NextAttempt.Sub(st.LastErrorAt); wait < 59*time.Minute {
		t.Errorf("the retry after a refusal is due %v after it, want RetryMax (1h)", wait)
	}
	if n := r.svc.Calls(); n != 1 {
		t.Errorf("%d requests after a refusal, want 1 until RetryMax passes", n)
	}
	if strings.Contains(r.log.String(), "level=WARN") || strings.Contains(r.log.String(), "level=ERROR") {
		t.Errorf("the Manager logged the refusal itself:\n%s", r.log)
	}
}

func TestStaticSatisfiesSource(t *testing.T) {
	var s identity.Source = &identity.Static{Identity: reviews}
	if _, err := s.Certificate(); !errors.Is(err, identity.ErrNoCertificate) {
		t.Errorf("Static without a certificate: %v", err)
	}
}
