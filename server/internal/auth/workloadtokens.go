package auth

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
)

// WorkloadTokenPrefix starts every workload token. It differs from TokenPrefix, so a workload
// token is never accepted as an API token and an API token never as a workload token.
const WorkloadTokenPrefix = "slcw_"

// workloadIDPrefix starts a workload token's ID, so that commands and people can tell it from
// an API token's.
const workloadIDPrefix = "wt-"

// IsWorkloadTokenID reports whether id names a workload token rather than an API token.
func IsWorkloadTokenID(id string) bool { return strings.HasPrefix(id, workloadIDPrefix) }

// WorkloadIdentity is who a proxy is in the mesh: a namespace and a service account. Its
// SPIFFE ID is spiffe://<trust domain>/ns/<Namespace>/sa/<ServiceAccount>.
type WorkloadIdentity struct {
	Namespace      string
	ServiceAccount string
}

// String is "ns/<namespace>/sa/<service account>", the path of the identity's SPIFFE ID.
func (w WorkloadIdentity) String() string {
	return "ns/" + w.Namespace + "/sa/" + w.ServiceAccount
}

// WorkloadToken is a workload token, as stored: everything but its secret.
type WorkloadToken struct {
	// ID names the token in lists, the audit log and DELETE /api/v1/workload-tokens/{id}.
	ID   string
	Name string
	// Identity is the only identity the token authenticates.
	Identity WorkloadIdentity
	// CreatedBy is the user who created it.
	CreatedBy string
	// SecretHash is the SHA-256 of the token.
	SecretHash []byte `json:"-"`
	CreatedAt  time.Time
	ExpiresAt  time.Time
	// LastUsedAt is when the token last authenticated, to within LastUsedGranularity; zero if
	// never.
	LastUsedAt time.Time
	// RevokedAt is when the token was revoked; zero if it was not.
	RevokedAt time.Time
}

// Revoked reports whether the token was revoked.
func (t WorkloadToken) Revoked() bool { return !t.RevokedAt.IsZero() }

// WorkloadTokenStore keeps workload tokens. The PostgreSQL adapter implements it.
type WorkloadTokenStore interface {
	// InsertWorkloadToken stores t.
	InsertWorkloadToken(ctx context.Context, t WorkloadToken) error
	// WorkloadTokenByHash finds the token whose secret hashes to hash, whatever its state. It
	// fails with ErrNotFound.
	WorkloadTokenByHash(ctx context.Context, hash []byte) (WorkloadToken, error)
	// GetWorkloadToken finds a token by id. It fails with ErrNotFound.
	GetWorkloadToken(ctx context.Context, id string) (WorkloadToken, error)
	// ListWorkloadTokens returns every workload token, newest first.
	ListWorkloadTokens(ctx context.Context) ([]WorkloadToken, error)
	// RevokeWorkloadToken marks the token revoked at at, unless it is revoked already.
	RevokeWorkloadToken(ctx context.Context, id string, at time.Time) error
	// TouchWorkloadToken sets the token's last use to at, unless it was already used at or
	// after since.
	TouchWorkloadToken(ctx context.Context, id string, at, since time.Time) error
}

// WorkloadTokenRequest asks for a new workload token.
type WorkloadTokenRequest struct {
	// Name says what the token is for; empty means "<namespace>/<service account>".
	Name     string
	Identity WorkloadIdentity
	// TTL is its lifetime; zero means DefaultTokenTTL. It is bounded like an API token's.
	TTL time.Duration
}

// NewWorkloadToken is a workload token just created.
type NewWorkloadToken struct {
	WorkloadToken
	// Secret is the token itself, "slcw_" and 43 characters, shown this once.
	Secret string
}

// Bounds of an identity's parts: a namespace is a DNS label and a service account a DNS
// subdomain, as in Kubernetes.
const (
	maxNamespaceLength      = 63
	maxServiceAccountLength = 253
)

var (
	dnsLabel     = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
	dnsSubdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)
)

// ValidateIdentity checks that w's parts are a Kubernetes namespace name (a DNS label) and
// service account name (a DNS subdomain), so they make a valid SPIFFE ID path.
func ValidateIdentity(w WorkloadIdentity) error {
	switch {
	case w.Namespace == "":
		return fieldError("namespace", "namespace is required: name the workload's namespace, such as \"default\"")
	case len(w.Namespace) > maxNamespaceLength || !dnsLabel.MatchString(w.Namespace):
		return fieldError("namespace", "namespace %q is not a DNS label: use at most %d lowercase letters, digits and '-', starting and ending with a letter or digit", truncateForMessage(w.Namespace), maxNamespaceLength)
	case w.ServiceAccount == "":
		return fieldError("serviceAccount", "serviceAccount is required: name the workload's service account, such as \"bookinfo-reviews\"")
	case len(w.ServiceAccount) > maxServiceAccountLength || !dnsSubdomain.MatchString(w.ServiceAccount):
		return fieldError("serviceAccount", "serviceAccount %q is not a DNS subdomain: use at most %d lowercase letters, digits, '-' and '.'", truncateForMessage(w.ServiceAccount), maxServiceAccountLength)
	}
	return nil
}

func truncateForMessage(s string) string {
	if len(s) > 80 {
		return s[:80] + "…"
	}
	return s
}

// workloadStore returns the store's workload-token half.
func (s *Service) workloadStore() WorkloadTokenStore { return s.store }

// CreateWorkloadToken creates a workload token bound to req.Identity. Only admins may: the
// token lets a proxy receive configuration and certificates as that identity.
func (s *Service) CreateWorkloadToken(ctx context.Context, by Principal, req WorkloadTokenRequest) (NewWorkloadToken, error) {
	if !by.Role.AtLeast(RoleAdmin) {
		return NewWorkloadToken{}, &Error{Kind: KindForbidden, Message: "creating a workload token needs the admin role"}
	}
	if err := ValidateIdentity(req.Identity); err != nil {
		return NewWorkloadToken{}, err
	}
	name := strings.TrimSpace(req.Name)
	if name == "" {
		name = req.Identity.Namespace + "/" + req.Identity.ServiceAccount
	}
	switch {
	case len([]rune(name)) > MaxTokenNameLength:
		return NewWorkloadToken{}, fieldError("name", "name is longer than %d characters: shorten it", MaxTokenNameLength)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return NewWorkloadToken{}, fieldError("name", "name contains control characters: use printable text")
	}
	ttl := req.TTL
	switch {
	case ttl == 0:
		ttl = DefaultTokenTTL
	case ttl < MinTokenTTL:
		return NewWorkloadToken{}, fieldError("expiresIn", "expiresIn %s is too short: give at least %s", ttl, MinTokenTTL)
	case ttl > MaxTokenTTL:
		return NewWorkloadToken{}, fieldError("expiresIn", "expiresIn %s is too long: give at most %s (a year); create a new token when it runs out", ttl, MaxTokenTTL)
	}
	secret := WorkloadTokenPrefix + newSecret()
	now := s.stamp()
	t := WorkloadToken{
		ID: workloadIDPrefix + newID(), Name: name, Identity: req.Identity, CreatedBy: by.Username,
		SecretHash: hashSecret(secret), CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
	if err := s.workloadStore().InsertWorkloadToken(ctx, t); err != nil {
		return NewWorkloadToken{}, fmt.Errorf("create workload token for %s: %w", t.Identity, err)
	}
	return NewWorkloadToken{WorkloadToken: t, Secret: secret}, nil
}

// ListWorkloadTokens returns every workload token, newest first, revoked and expired
// included. Only admins may list them.
func (s *Service) ListWorkloadTokens(ctx context.Context, by Principal) ([]WorkloadToken, error) {
	if !by.Role.AtLeast(RoleAdmin) {
		return nil, &Error{Kind: KindForbidden, Message: "listing workload tokens needs the admin role"}
	}
	ts, err := s.workloadStore().ListWorkloadTokens(ctx)
	if err != nil {
		return nil, fmt.Errorf("list workload tokens: %w", err)
	}
	return ts, nil
}

// RevokeWorkloadToken revokes a workload token; proxies using it are refused from their next
// connection or call (see the authenticated port's cache bound). It returns the token as it
// was before, and whether this call revoked it.
func (s *Service) RevokeWorkloadToken(ctx context.Context, by Principal, id string) (WorkloadToken, bool, error) {
	if !by.Role.AtLeast(RoleAdmin) {
		return WorkloadToken{}, false, &Error{Kind: KindForbidden, Message: "revoking a workload token needs the admin role"}
	}
	t, err := s.workloadStore().GetWorkloadToken(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return WorkloadToken{}, false, &Error{Kind: KindNotFound, Message: fmt.Sprintf("no workload token %q: list them with GET /api/v1/workload-tokens", truncateForMessage(id))}
	}
	if err != nil {
		return WorkloadToken{}, false, fmt.Errorf("revoke workload token %s: %w", id, err)
	}
	if t.Revoked() {
		return t, false, nil
	}
	if err := s.workloadStore().RevokeWorkloadToken(ctx, id, s.stamp()); err != nil {
		return WorkloadToken{}, false, fmt.Errorf("revoke workload token %s: %w", id, err)
	}
	return t, true, nil
}

// AuthenticatedWorkload is a proxy that proved its identity with a workload token.
type AuthenticatedWorkload struct {
	Identity WorkloadIdentity
	// TokenID names the token used (never its secret).
	TokenID string
	// ExpiresAt is when the token stops working.
	ExpiresAt time.Time
}

// AuthenticateWorkload returns the identity a workload token is bound to. A malformed,
// unknown, revoked or expired token fails with KindUnauthenticated; an API token is malformed
// here. The token's last use is recorded at most once per LastUsedGranularity.
func (s *Service) AuthenticateWorkload(ctx context.Context, token string) (AuthenticatedWorkload, error) {
	rest, ok := strings.CutPrefix(token, WorkloadTokenPrefix)
	if !ok || !wellFormedSecret(rest) {
		msg := "workload token is malformed: send the metadata \"authorization: Bearer slcw_…\" with a whole token from sluicectl token create workload"
		if wellFormedToken(token) {
			msg = "an API token (slc_…) is not a workload token: create one for this proxy's identity with sluicectl token create workload --namespace NS --service-account SA"
		}
		return AuthenticatedWorkload{}, unauthenticated(msg)
	}
	t, err := s.workloadStore().WorkloadTokenByHash(ctx, hashSecret(token))
	if errors.Is(err, ErrNotFound) {
		return AuthenticatedWorkload{}, unauthenticated("workload token is unknown: check that it was copied whole, or create a new one with sluicectl token create workload")
	}
	if err != nil {
		return AuthenticatedWorkload{}, fmt.Errorf("look up workload token: %w", err)
	}
	now := s.stamp()
	switch {
	case t.Revoked():
		return AuthenticatedWorkload{}, unauthenticated(fmt.Sprintf("workload token %s (%q) was revoked: create a new one with sluicectl token create workload", t.ID, t.Name))
	case !now.Before(t.ExpiresAt):
		return AuthenticatedWorkload{}, unauthenticated(fmt.Sprintf("workload token %s (%q) expired at %s: create a new one with sluicectl token create workload", t.ID, t.Name, t.ExpiresAt.UTC().Format(time.RFC3339)))
	}
	if t.LastUsedAt.IsZero() || now.Sub(t.LastUsedAt) >= LastUsedGranularity {
		if err := s.workloadStore().TouchWorkloadToken(ctx, t.ID, now, now.Add(-LastUsedGranularity)); err != nil {
			s.log.Warn("record workload token use", "token_id", t.ID, "error", err)
		}
	}
	return AuthenticatedWorkload{Identity: t.Identity, TokenID: t.ID, ExpiresAt: t.ExpiresAt}, nil
}

type workloadKey struct{}

// WithWorkload returns a copy of ctx that carries the authenticated workload w.
func WithWorkload(ctx context.Context, w AuthenticatedWorkload) context.Context {
	return context.WithValue(ctx, workloadKey{}, w)
}

// WorkloadFromContext returns the workload that WithWorkload put in ctx, and false if there is
// none (the call came over the plaintext port, which authenticates nobody).
func WorkloadFromContext(ctx context.Context) (AuthenticatedWorkload, bool) {
	w, ok := ctx.Value(workloadKey{}).(AuthenticatedWorkload)
	return w, ok
}
