// Package cagrpc is the gRPC edge of the control plane's authenticated port: interceptors
// that admit only calls carrying a valid workload token ("authorization: Bearer slcw_…") and
// put the token's identity in the call's context, and Istio's certificate service
// (istio.v1.auth.IstioCertificateService), which issues a workload certificate to that
// identity and no other.
package cagrpc

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/ca"
)

// DefaultCacheTTL bounds how long a token check is reused. A revoked or expired token is
// therefore refused on every connection or call that starts more than DefaultCacheTTL after
// the revocation; calls already running (an ADS stream) are not cut.
const DefaultCacheTTL = 2 * time.Second

// maxCacheEntries bounds the cache; past it, it is emptied (the store is the truth).
const maxCacheEntries = 10000

// TokenAuthenticator checks a workload token; auth.Service implements it.
type TokenAuthenticator interface {
	AuthenticateWorkload(ctx context.Context, token string) (auth.AuthenticatedWorkload, error)
}

var _ TokenAuthenticator = (*auth.Service)(nil)

// Authenticator admits gRPC calls that carry a valid workload token.
type Authenticator struct {
	tokens TokenAuthenticator
	ttl    time.Duration
	now    func() time.Time
	log    *slog.Logger

	mu    sync.Mutex
	cache map[[sha256.Size]byte]cached
}

type cached struct {
	w     auth.AuthenticatedWorkload
	until time.Time
}

// AuthenticatorOptions tune an Authenticator; the zero value of each field takes the default
// named beside it.
type AuthenticatorOptions struct {
	// CacheTTL is how long a successful check is reused (DefaultCacheTTL); negative disables
	// the cache.
	CacheTTL time.Duration
	// Now tells the time (time.Now).
	Now func() time.Time
	// Log receives refusals (discarded).
	Log *slog.Logger
}

// NewAuthenticator returns an Authenticator checking tokens with tokens.
func NewAuthenticator(tokens TokenAuthenticator, o AuthenticatorOptions) *Authenticator {
	a := &Authenticator{tokens: tokens, ttl: o.CacheTTL, now: o.Now, log: o.Log, cache: map[[sha256.Size]byte]cached{}}
	if a.ttl == 0 {
		a.ttl = DefaultCacheTTL
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	return a
}

// authenticate returns ctx with the caller's identity, or a gRPC status error.
func (a *Authenticator) authenticate(ctx context.Context, method string) (context.Context, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	vals := md.Get("authorization")
	if len(vals) == 0 {
		return nil, status.Error(codes.Unauthenticated, "no workload token: send the metadata \"authorization: Bearer slcw_…\" (create one with sluicectl token create workload --namespace NS --service-account SA)")
	}
	if len(vals) > 1 {
		return nil, status.Error(codes.Unauthenticated, "more than one authorization metadata value: send exactly one \"Bearer slcw_…\"")
	}
	scheme, token, ok := strings.Cut(vals[0], " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return nil, status.Error(codes.Unauthenticated, "authorization metadata is not \"Bearer slcw_…\"")
	}
	token = strings.TrimSpace(token)
	key := sha256.Sum256([]byte(token))
	now := a.now()
	a.mu.Lock()
	c, hit := a.cache[key]
	a.mu.Unlock()
	if hit && now.Before(c.until) && now.Before(c.w.ExpiresAt) {
		return auth.WithWorkload(ctx, c.w), nil
	}
	w, err := a.tokens.AuthenticateWorkload(ctx, token)
	if err != nil {
		if auth.ErrorKind(err) == auth.KindUnauthenticated {
			a.log.Info("workload refused", "method", method, "reason", err.Error())
			return nil, status.Error(codes.Unauthenticated, err.Error())
		}
		a.log.Error("check workload token", "method", method, "error", err)
		return nil, status.Error(codes.Unavailable, "the control plane cannot check the workload token right now; retry")
	}
	if a.ttl > 0 {
		a.mu.Lock()
		if len(a.cache) >= maxCacheEntries {
			clear(a.cache)
		}
		a.cache[key] = cached{w: w, until: now.Add(a.ttl)}
		a.mu.Unlock()
	}
	return auth.WithWorkload(ctx, w), nil
}

// UnaryInterceptor refuses unary calls without a valid workload token.
func (a *Authenticator) UnaryInterceptor() grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx, err := a.authenticate(ctx, info.FullMethod)
		if err != nil {
			return nil, err
		}
		return handler(ctx, req)
	}
}

// StreamInterceptor refuses streams without a valid workload token.
func (a *Authenticator) StreamInterceptor() grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx, err := a.authenticate(ss.Context(), info.FullMethod)
		if err != nil {
			return err
		}
		return handler(srv, &identityStream{ServerStream: ss, ctx: ctx})
	}
}

// identityStream is a stream whose context carries the caller's identity.
type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *identityStream) Context() context.Context { return s.ctx }

// CertificateService is Istio's CSR service: it issues a workload certificate to the
// identity of the caller's workload token.
type CertificateService struct {
	securityv1alpha1.UnimplementedIstioCertificateServiceServer
	ca     *ca.Authority
	maxTTL time.Duration
	log    *slog.Logger

	mu     sync.Mutex
	issued map[string]IssuedCertificate // by SPIFFE ID
}

// maxIssuedRecords bounds the issued-certificate record; past it, expired entries are dropped
// first and then the one that expires soonest.
const maxIssuedRecords = 10000

// IssuedCertificate is the record of a workload certificate the service signed.
type IssuedCertificate struct {
	// Serial is the certificate's serial number in hexadecimal.
	Serial string
	// NotAfter is when the certificate expires.
	NotAfter time.Time
	// IssuedAt is when the service signed it.
	IssuedAt time.Time
}

// NewCertificateService returns the service; maxTTL bounds (and is the default of) the
// lifetime a caller may ask for.
func NewCertificateService(a *ca.Authority, maxTTL time.Duration, log *slog.Logger) *CertificateService {
	if maxTTL <= 0 {
		maxTTL = ca.DefaultWorkloadTTL
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &CertificateService{ca: a, maxTTL: maxTTL, log: log, issued: map[string]IssuedCertificate{}}
}

// LastIssued returns the latest certificate issued since the server started to the SPIFFE ID
// identity. A CSR carries only the token's identity, not the proxy's node, so proxies that
// share an identity share this record: it is the newest certificate any of them obtained.
func (s *CertificateService) LastIssued(identity string) (IssuedCertificate, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	c, ok := s.issued[identity]
	return c, ok
}

// recordIssued remembers c as the latest certificate of identity.
func (s *CertificateService) recordIssued(identity string, c IssuedCertificate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.issued[identity]; !ok && len(s.issued) >= maxIssuedRecords {
		soonest := ""
		for id, old := range s.issued {
			if old.NotAfter.Before(c.IssuedAt) {
				delete(s.issued, id)
				continue
			}
			if soonest == "" || old.NotAfter.Before(s.issued[soonest].NotAfter) {
				soonest = id
			}
		}
		if len(s.issued) >= maxIssuedRecords {
			delete(s.issued, soonest)
		}
	}
	s.issued[identity] = c
}

// Register attaches the service to g.
func (s *CertificateService) Register(g grpc.ServiceRegistrar) {
	securityv1alpha1.RegisterIstioCertificateServiceServer(g, s)
}

// CreateCertificate signs req.Csr for the caller's identity. validity_duration (seconds)
// shortens the lifetime below the server's maximum; zero or more than the maximum gives the
// maximum. The answer is the chain, leaf first and root last.
func (s *CertificateService) CreateCertificate(ctx context.Context, req *securityv1alpha1.IstioCertificateRequest) (*securityv1alpha1.IstioCertificateResponse, error) {
	w, ok := auth.WorkloadFromContext(ctx)
	if !ok {
		return nil, status.Error(codes.Unauthenticated, "certificates are issued only on the authenticated port, to a caller with a workload token")
	}
	ttl, err := s.lifetime(req.GetValidityDuration())
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	id, err := ca.WorkloadID(s.ca.TrustDomain(), w.Identity.Namespace, w.Identity.ServiceAccount)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	iss, err := s.ca.Sign([]byte(req.GetCsr()), id, ttl)
	switch {
	case errors.Is(err, ca.ErrIdentityMismatch):
		s.log.Warn("certificate refused", "spiffe_id", id.String(), "token_id", w.TokenID, "reason", err.Error())
		return nil, status.Error(codes.PermissionDenied, err.Error())
	case errors.Is(err, ca.ErrInvalidCSR):
		return nil, status.Error(codes.InvalidArgument, err.Error())
	case err != nil:
		s.log.Error("sign workload certificate", "spiffe_id", id.String(), "error", err)
		return nil, status.Error(codes.Internal, "the certificate could not be signed; see the server's log")
	}
	s.recordIssued(id.String(), IssuedCertificate{Serial: iss.Cert.SerialNumber.Text(16), NotAfter: iss.Cert.NotAfter, IssuedAt: time.Now()})
	s.log.Info("issued workload certificate", "spiffe_id", id.String(), "token_id", w.TokenID,
		"serial", iss.Cert.SerialNumber.Text(16), "not_after", iss.Cert.NotAfter.UTC().Format(time.RFC3339))
	return &securityv1alpha1.IstioCertificateResponse{CertChain: iss.ChainPEM}, nil
}

// lifetime turns validity_duration into the certificate's lifetime.
func (s *CertificateService) lifetime(seconds int64) (time.Duration, error) {
	switch {
	case seconds < 0:
		return 0, fmt.Errorf("validity_duration %d is negative: give seconds, or 0 for the server's maximum (%s)", seconds, s.maxTTL)
	case seconds == 0 || seconds >= int64(s.maxTTL/time.Second):
		return s.maxTTL, nil
	case time.Duration(seconds)*time.Second < ca.MinWorkloadTTL:
		return 0, fmt.Errorf("validity_duration %d is shorter than %s: ask for at least %d seconds", seconds, ca.MinWorkloadTTL, int64(ca.MinWorkloadTTL/time.Second))
	}
	return time.Duration(seconds) * time.Second, nil
}
