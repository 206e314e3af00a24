package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"
)

// Store keeps users, sessions and tokens. The PostgreSQL adapter implements it; the errors
// named in each comment are the ones Service relies on.
type Store interface {
	// HasUsers reports whether any user exists.
	HasUsers(ctx context.Context) (bool, error)
	// InsertFirstUser inserts u only if there are no users at all, and reports whether it did.
	// Concurrent calls insert at most one user.
	InsertFirstUser(ctx context.Context, u User) (bool, error)
	// InsertUser fails with ErrExists when the username is taken.
	InsertUser(ctx context.Context, u User) error
	// GetUser fails with ErrNotFound.
	GetUser(ctx context.Context, username string) (User, error)
	// ListUsers returns every user ordered by name.
	ListUsers(ctx context.Context) ([]User, error)
	// UpdateUser applies c and returns the user before and after. It fails with ErrNotFound,
	// or with ErrLastAdmin when it would demote the only admin, atomically with respect to
	// concurrent updates and deletes.
	UpdateUser(ctx context.Context, username string, c UserChange) (before, after User, err error)
	// DeleteUser deletes the user with their sessions and tokens and returns what it deleted.
	// It fails with ErrNotFound, or with ErrLastAdmin as UpdateUser does.
	DeleteUser(ctx context.Context, username string) (User, error)

	// InsertSession stores s (its Role is ignored).
	InsertSession(ctx context.Context, s Session) error
	// SessionByHash finds the session whose secret hashes to hash, expired or not, with Role
	// set to its user's current role. It fails with ErrNotFound.
	SessionByHash(ctx context.Context, hash []byte) (Session, error)
	// DeleteSession deletes the session with this id; a missing one is not an error.
	DeleteSession(ctx context.Context, id string) error
	// DeleteUserSessions deletes the user's sessions except the one named exceptID.
	DeleteUserSessions(ctx context.Context, username, exceptID string) error
	// DeleteExpiredSessions deletes the sessions that expired at or before now.
	DeleteExpiredSessions(ctx context.Context, now time.Time) error

	// InsertToken stores t (its UserRole is ignored).
	InsertToken(ctx context.Context, t Token) error
	// TokenByHash finds the token whose secret hashes to hash, revoked or expired or not, with
	// UserRole set. It fails with ErrNotFound.
	TokenByHash(ctx context.Context, hash []byte) (Token, error)
	// GetToken finds a token by id, with UserRole set. It fails with ErrNotFound.
	GetToken(ctx context.Context, id string) (Token, error)
	// ListTokens returns the user's tokens, or every token when username is empty, newest
	// first.
	ListTokens(ctx context.Context, username string) ([]Token, error)
	// RevokeToken marks the token revoked at at, unless it is revoked already.
	RevokeToken(ctx context.Context, id string, at time.Time) error
	// TouchToken sets the token's last use to at, unless it was already used at or after
	// since; so replicas racing to record a use write at most once.
	TouchToken(ctx context.Context, id string, at, since time.Time) error

	WorkloadTokenStore
}

// DefaultSessionTTL is how long a session lasts from sign-in. The lifetime is absolute: using
// a session does not extend it, so a stolen cookie is good for at most this long, and
// authenticating a request never writes to the database.
const DefaultSessionTTL = 12 * time.Hour

// Options tune a Service. The zero value of each field takes the default named beside it.
type Options struct {
	// Params are the argon2id costs of new password hashes (DefaultParams). Tests use tiny
	// ones to run fast.
	Params Params
	// MaxConcurrentHashes bounds how many password hashes run at once (4), which bounds
	// their memory to MaxConcurrentHashes × Params.Memory; further sign-ins wait their turn.
	MaxConcurrentHashes int
	// SessionTTL is the absolute lifetime of a session (DefaultSessionTTL).
	SessionTTL time.Duration
	// LoginLimits bound sign-in attempts (see LoginLimits for the defaults).
	LoginLimits LoginLimits
	// Now tells the time (time.Now).
	Now func() time.Time
	// Log receives what the service notices on the side (discarded).
	Log *slog.Logger
}

// Service signs users in, authenticates requests, and manages users and API tokens. It is safe
// for concurrent use.
type Service struct {
	store      Store
	params     Params
	hashSlots  chan struct{}
	sessionTTL time.Duration
	limiter    *loginLimiter
	now        func() time.Time
	log        *slog.Logger

	// dummy is a hash verified when a sign-in names an unknown user, so that the answer
	// takes as long as a wrong password does and does not reveal which users exist.
	dummy string
}

// stamp is the current time as the store keeps it, to the microsecond, so that what a call
// returns equals what a later read finds.
func (s *Service) stamp() time.Time { return s.now().UTC().Truncate(time.Microsecond) }

// NewService returns a Service keeping its records in st.
func NewService(st Store, opts Options) (*Service, error) {
	s := &Service{
		store:      st,
		params:     opts.Params,
		sessionTTL: opts.SessionTTL,
		limiter:    newLoginLimiter(opts.LoginLimits),
		now:        opts.Now,
		log:        opts.Log,
	}
	if s.params == (Params{}) {
		s.params = DefaultParams
	}
	dummy, err := HashPassword(rand.Text(), s.params)
	if err != nil {
		return nil, err
	}
	s.dummy = dummy
	n := opts.MaxConcurrentHashes
	if n <= 0 {
		n = 4
	}
	s.hashSlots = make(chan struct{}, n)
	if s.sessionTTL <= 0 {
		s.sessionTTL = DefaultSessionTTL
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s, nil
}

// BootstrapUser is the name of the first admin, created by Bootstrap.
const BootstrapUser = "admin"

// Bootstrap creates the first admin, BootstrapUser, when there are no users at all, and does
// nothing otherwise. The password is password (SLUICE_ADMIN_PASSWORD) or, when that is empty,
// a generated one that Bootstrap writes to stdout, and nowhere else, with how to change it.
// Replicas starting together create one admin between them; only the one that created it
// prints.
func (s *Service) Bootstrap(ctx context.Context, password string, stdout io.Writer) error {
	has, err := s.store.HasUsers(ctx)
	if err != nil {
		return fmt.Errorf("create the first admin: %w", err)
	}
	if has {
		if password != "" {
			s.log.Info("SLUICE_ADMIN_PASSWORD is ignored because users exist already; an admin changes passwords with PATCH /api/v1/users/{name}")
		}
		return nil
	}
	generated := password == ""
	if generated {
		password = rand.Text() // 26 characters, 128 bits
	} else if err := checkNewPassword(password); err != nil {
		return fmt.Errorf("SLUICE_ADMIN_PASSWORD cannot be the first admin's password: %w", err)
	}
	hash, err := s.hash(ctx, password)
	if err != nil {
		return fmt.Errorf("create the first admin: %w", err)
	}
	now := s.stamp()
	created, err := s.store.InsertFirstUser(ctx, User{
		Username: BootstrapUser, Role: RoleAdmin, PasswordHash: hash, CreatedAt: now, UpdatedAt: now,
	})
	if err != nil {
		return fmt.Errorf("create the first admin: %w", err)
	}
	if !created {
		return nil
	}
	source := "SLUICE_ADMIN_PASSWORD"
	if generated {
		source = "generated"
	}
	s.log.Info("created the first admin user", "username", BootstrapUser, "password_source", source)
	if !generated {
		_, err = fmt.Fprintf(stdout, "Created the first admin user %q with the password from SLUICE_ADMIN_PASSWORD.\n", BootstrapUser)
		return err
	}
	_, err = fmt.Fprintf(stdout, `
Created the first admin user %q with this generated password, shown only this once:

    %s

Sign in to the console with it, then change it:
    PATCH /api/v1/users/%[1]s  {"password": "<new password>"}
To choose the first password yourself instead, set SLUICE_ADMIN_PASSWORD before the first start.

`, BootstrapUser, password)
	return err
}

// Session is a browser's signed-in session.
type Session struct {
	// ID names the session in logs and the audit log; it is not the cookie.
	ID       string
	Username string
	// Role is the user's current role, set by lookups.
	Role Role
	// SecretHash is the SHA-256 of the cookie value.
	SecretHash []byte `json:"-"`
	// CSRFToken must accompany every unsafe request the session makes, in X-CSRF-Token.
	CSRFToken string `json:"-"`
	CreatedAt time.Time
	ExpiresAt time.Time
}

// SignIn is a successful Login.
type SignIn struct {
	User    User
	Session Session
	// Cookie is the session's secret for the browser's cookie. Only its hash is stored, so
	// this is the one time it exists in the clear on the server.
	Cookie string
}

// Login checks username and password and opens a session. clientAddr is the client's IP
// address, for the per-address rate limit. A wrong password and an unknown user fail alike,
// with KindUnauthenticated, the same message and about the same time; Error.Reason tells them
// apart for the audit log. Too many attempts fail with KindRateLimited.
func (s *Service) Login(ctx context.Context, username, password, clientAddr string) (SignIn, error) {
	if username == "" || password == "" {
		return SignIn{}, invalidf("username and password are both required")
	}
	if len(username) > MaxUsernameLength || len(password) > MaxPasswordLength {
		// Checked before rate limiting, so the limiter never keys on huge strings.
		return SignIn{}, invalidf("username or password is too long: usernames have at most %d characters, passwords %d bytes", MaxUsernameLength, MaxPasswordLength)
	}
	now := s.stamp()
	if wait, ok := s.limiter.admit(username, addrKey(clientAddr), now); !ok {
		secs := int((wait + time.Second - 1) / time.Second)
		return SignIn{}, &Error{Kind: KindRateLimited, RetryAfter: wait, Reason: "rate limited",
			Message: fmt.Sprintf("too many sign-in attempts: wait %d seconds, then try again", secs)}
	}
	var user User
	err := ErrNotFound // a name no user can have is not looked up
	if checkUsername(username) == nil {
		user, err = s.store.GetUser(ctx, username)
	}
	if errors.Is(err, ErrNotFound) {
		_, _ = s.verify(ctx, password, s.dummy)
		return SignIn{}, badCredentials("unknown user")
	}
	if err != nil {
		return SignIn{}, fmt.Errorf("sign in: %w", err)
	}
	ok, err := s.verify(ctx, password, user.PasswordHash)
	if err != nil {
		return SignIn{}, fmt.Errorf("sign in %s: %w", username, err)
	}
	if !ok {
		return SignIn{}, badCredentials("wrong password")
	}
	if NeedsRehash(user.PasswordHash, s.params) {
		// The password is known only now: upgrade the hash to the current parameters.
		if h, err := s.hash(ctx, password); err == nil {
			if _, _, err := s.store.UpdateUser(ctx, username, UserChange{PasswordHash: h}); err != nil {
				s.log.Warn("upgrade password hash", "username", username, "error", err)
			}
		}
	}

	cookie := newSecret()
	sess := Session{
		ID: newID(), Username: user.Username, Role: user.Role,
		SecretHash: hashSecret(cookie), CSRFToken: newSecret(),
		CreatedAt: now, ExpiresAt: now.Add(s.sessionTTL),
	}
	if err := s.store.InsertSession(ctx, sess); err != nil {
		return SignIn{}, fmt.Errorf("sign in %s: %w", username, err)
	}
	// Signing in is rare enough to sweep expired sessions on the way, so no background loop
	// is needed for it.
	if err := s.store.DeleteExpiredSessions(ctx, now); err != nil {
		s.log.Warn("delete expired sessions", "error", err)
	}
	return SignIn{User: user, Session: sess, Cookie: cookie}, nil
}

func badCredentials(reason string) *Error {
	return &Error{Kind: KindUnauthenticated, Reason: reason,
		Message: "wrong username or password: check both and sign in again"}
}

// Logout ends the session p signed in with.
func (s *Service) Logout(ctx context.Context, p Principal) error {
	if p.Method != MethodSession {
		return invalidf("signing out ends a browser session, and this request used an API token: revoke the token with DELETE /api/v1/tokens/%s instead", p.TokenID)
	}
	if err := s.store.DeleteSession(ctx, p.SessionID); err != nil {
		return fmt.Errorf("sign out %s: %w", p.Username, err)
	}
	return nil
}

// AuthenticateSession returns who holds the session cookie, and the session itself (for its
// CSRF token and expiry). A malformed, unknown or expired cookie fails with
// KindUnauthenticated.
func (s *Service) AuthenticateSession(ctx context.Context, cookie string) (Principal, Session, error) {
	if !wellFormedSecret(cookie) {
		return Principal{}, Session{}, unauthenticated("session cookie is not valid: sign in again")
	}
	sess, err := s.store.SessionByHash(ctx, hashSecret(cookie))
	if errors.Is(err, ErrNotFound) {
		return Principal{}, Session{}, unauthenticated("not signed in: the session has ended (signed out, or its user was deleted or changed password); sign in again")
	}
	if err != nil {
		return Principal{}, Session{}, fmt.Errorf("look up session: %w", err)
	}
	if !s.now().Before(sess.ExpiresAt) {
		if err := s.store.DeleteSession(ctx, sess.ID); err != nil {
			s.log.Warn("delete expired session", "session_id", sess.ID, "error", err)
		}
		return Principal{}, Session{}, unauthenticated("session expired: sign in again")
	}
	p := Principal{Username: sess.Username, Role: sess.Role, SessionID: sess.ID, Method: MethodSession}
	return p, sess, nil
}

// AuthenticateToken returns who holds the API token. A malformed, unknown, revoked or expired
// token fails with KindUnauthenticated. The token's last use is recorded at most once per
// LastUsedGranularity.
func (s *Service) AuthenticateToken(ctx context.Context, token string) (Principal, error) {
	if !wellFormedToken(token) {
		return Principal{}, unauthenticated("API token is malformed: send \"Authorization: Bearer slc_…\" with a whole token from POST /api/v1/tokens")
	}
	t, err := s.store.TokenByHash(ctx, hashSecret(token))
	if errors.Is(err, ErrNotFound) {
		return Principal{}, unauthenticated("API token is unknown: check that it was copied whole, or create a new one with POST /api/v1/tokens")
	}
	if err != nil {
		return Principal{}, fmt.Errorf("look up API token: %w", err)
	}
	now := s.stamp()
	switch {
	case t.Revoked():
		return Principal{}, unauthenticated(fmt.Sprintf("API token %s (%q) was revoked: create a new one with POST /api/v1/tokens", t.ID, t.Name))
	case !now.Before(t.ExpiresAt):
		return Principal{}, unauthenticated(fmt.Sprintf("API token %s (%q) expired at %s: create a new one with POST /api/v1/tokens", t.ID, t.Name, t.ExpiresAt.UTC().Format(time.RFC3339)))
	}
	if t.LastUsedAt.IsZero() || now.Sub(t.LastUsedAt) >= LastUsedGranularity {
		if err := s.store.TouchToken(ctx, t.ID, now, now.Add(-LastUsedGranularity)); err != nil {
			// Losing a last-used time is better than refusing a valid request.
			s.log.Warn("record API token use", "token_id", t.ID, "error", err)
		}
	}
	return Principal{Username: t.Username, Role: lesser(t.Role, t.UserRole), TokenID: t.ID, Method: MethodToken}, nil
}

func unauthenticated(msg string) *Error { return &Error{Kind: KindUnauthenticated, Message: msg} }

// hash hashes a new password with the current parameters, waiting for a free slot.
func (s *Service) hash(ctx context.Context, password string) (string, error) {
	if err := s.acquire(ctx); err != nil {
		return "", err
	}
	defer s.release()
	return HashPassword(password, s.params)
}

// verify checks a password, waiting for a free slot.
func (s *Service) verify(ctx context.Context, password, encoded string) (bool, error) {
	if err := s.acquire(ctx); err != nil {
		return false, err
	}
	defer s.release()
	return VerifyPassword(password, encoded)
}

func (s *Service) acquire(ctx context.Context) error {
	select {
	case s.hashSlots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

func (s *Service) release() { <-s.hashSlots }

// addrKey is the rate-limit key of a client address: the address itself, or for IPv6 its
// /64, which a single host can easily hop around in.
func addrKey(addr string) string {
	ip, err := netip.ParseAddr(addr)
	if err != nil {
		return addr
	}
	ip = ip.Unmap()
	if ip.Is6() {
		if p, err := ip.Prefix(64); err == nil {
			return p.String()
		}
	}
	return ip.String()
}
