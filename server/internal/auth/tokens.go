package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
)

// Token is an API token, as stored: everything but its secret.
type Token struct {
	// ID names the token in lists, the audit log and DELETE /api/v1/tokens/{id}.
	ID   string
	Name string
	// Username owns the token: requests made with it act as this user.
	Username string
	// Role is the most the token may do; it never exceeds its user's current role either.
	Role Role
	// UserRole is the owner's current role, set by lookups.
	UserRole Role
	// SecretHash is the SHA-256 of the token.
	SecretHash []byte `json:"-"`
	CreatedAt  time.Time
	ExpiresAt  time.Time
	// LastUsedAt is when the token last authenticated a request, to within
	// LastUsedGranularity; zero if never.
	LastUsedAt time.Time
	// RevokedAt is when the token was revoked; zero if it was not.
	RevokedAt time.Time
}

// Revoked reports whether the token was revoked.
func (t Token) Revoked() bool { return !t.RevokedAt.IsZero() }

// Limits of API tokens.
const (
	// DefaultTokenTTL is a token's lifetime when its creator names none: 30 days.
	DefaultTokenTTL = 30 * 24 * time.Hour
	// MaxTokenTTL is the longest lifetime: a year. Tokens that never expire are not offered,
	// so a forgotten token stops working on its own.
	MaxTokenTTL = 365 * 24 * time.Hour
	// MinTokenTTL is the shortest lifetime.
	MinTokenTTL = time.Minute
	// LastUsedGranularity is how often a token's last use is written at most, so that a busy
	// script does not cause a database write per request.
	LastUsedGranularity = time.Minute
	// MaxTokenNameLength bounds a token's name.
	MaxTokenNameLength = 100
)

// TokenRequest asks for a new API token.
type TokenRequest struct {
	// Name says what the token is for.
	Name string
	// Role is what it may do; empty means the creator's role, and it may not exceed that.
	Role Role
	// TTL is its lifetime; zero means DefaultTokenTTL.
	TTL time.Duration
}

// NewToken is a token just created.
type NewToken struct {
	Token
	// Secret is the token itself, "slc_" and 43 characters. Only its hash is stored, so it is
	// shown to its creator this once and never again.
	Secret string
}

// CreateToken creates an API token for by. Tokens can only be created from a signed-in
// session, not with another token, so a leaked token cannot mint itself successors that
// outlive its revocation.
func (s *Service) CreateToken(ctx context.Context, by Principal, req TokenRequest) (NewToken, error) {
	if by.Method != MethodSession {
		return NewToken{}, &Error{Kind: KindForbidden, Message: "API tokens cannot create API tokens: sign in with your password (POST /api/v1/login) to create one"}
	}
	name := strings.TrimSpace(req.Name)
	switch {
	case name == "":
		return NewToken{}, fieldError("name", "name is required: say what the token is for, such as \"ci deploys\"")
	case len([]rune(name)) > MaxTokenNameLength:
		return NewToken{}, fieldError("name", "name is longer than %d characters: shorten it", MaxTokenNameLength)
	case strings.IndexFunc(name, unicode.IsControl) >= 0:
		return NewToken{}, fieldError("name", "name contains control characters: use printable text")
	}
	role := req.Role
	if role == "" {
		role = by.Role
	} else if _, err := ParseRole(string(role)); err != nil {
		return NewToken{}, err
	}
	if !by.Role.AtLeast(role) {
		return NewToken{}, &Error{Kind: KindForbidden, Message: fmt.Sprintf("a token cannot have more rights than its creator: role %s exceeds your role %s; ask for %s or less", role, by.Role, by.Role)}
	}
	ttl := req.TTL
	switch {
	case ttl == 0:
		ttl = DefaultTokenTTL
	case ttl < MinTokenTTL:
		return NewToken{}, fieldError("expiresIn", "expiresIn %s is too short: give at least %s", ttl, MinTokenTTL)
	case ttl > MaxTokenTTL:
		return NewToken{}, fieldError("expiresIn", "expiresIn %s is too long: give at most %s (a year); create a new token when it runs out", ttl, MaxTokenTTL)
	}
	secret := TokenPrefix + newSecret()
	now := s.stamp()
	t := Token{
		ID: newID(), Name: name, Username: by.Username, Role: role, UserRole: by.Role,
		SecretHash: hashSecret(secret), CreatedAt: now, ExpiresAt: now.Add(ttl),
	}
	if err := s.store.InsertToken(ctx, t); err != nil {
		return NewToken{}, fmt.Errorf("create API token for %s: %w", by.Username, err)
	}
	return NewToken{Token: t, Secret: secret}, nil
}

// ListTokens returns by's tokens, or every user's when by is an admin, newest first; revoked
// and expired ones included.
func (s *Service) ListTokens(ctx context.Context, by Principal) ([]Token, error) {
	owner := by.Username
	if by.Role.AtLeast(RoleAdmin) {
		owner = ""
	}
	ts, err := s.store.ListTokens(ctx, owner)
	if err != nil {
		return nil, fmt.Errorf("list API tokens: %w", err)
	}
	return ts, nil
}

// RevokeToken revokes one of by's tokens (an admin's: anyone's), effective from the next
// request. It returns the token as it was before, and whether it was revoked by this call
// rather than already. Someone else's token is reported as not found, to non-admins.
func (s *Service) RevokeToken(ctx context.Context, by Principal, id string) (Token, bool, error) {
	notFound := &Error{Kind: KindNotFound, Message: fmt.Sprintf("no API token %q: list yours with GET /api/v1/tokens", id)}
	t, err := s.store.GetToken(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return Token{}, false, notFound
	}
	if err != nil {
		return Token{}, false, fmt.Errorf("revoke API token %s: %w", id, err)
	}
	if t.Username != by.Username && !by.Role.AtLeast(RoleAdmin) {
		return Token{}, false, notFound
	}
	if t.Revoked() {
		return t, false, nil
	}
	if err := s.store.RevokeToken(ctx, id, s.stamp()); err != nil {
		return Token{}, false, fmt.Errorf("revoke API token %s: %w", id, err)
	}
	return t, true, nil
}
