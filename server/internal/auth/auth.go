// Package auth is who may do what in the control plane: users and their roles, password
// hashing (argon2id), browser sessions with their CSRF tokens, API tokens for scripts, and the
// rate limits on signing in. It holds no I/O of its own: Service keeps its records through the
// Store interface, which the PostgreSQL adapter implements, and the HTTP adapter turns its
// errors into responses.
//
// Every secret that authenticates (session cookie, API token) is stored only as its SHA-256
// hash; the secrets are 256-bit random values, so a fast hash is enough and an index lookup by
// hash reveals nothing. Passwords are hashed with argon2id (see Params).
package auth

import (
	"context"
	"fmt"
)

// Role is what a user or token may do. Roles are ordered: each includes the ones below it.
type Role string

// The roles, from least to most rights.
const (
	// RoleViewer reads everything except the audit log, users and other users' tokens.
	RoleViewer Role = "viewer"
	// RoleOperator also changes traffic weights, runs experiments and rolls back, and reads the
	// audit log.
	RoleOperator Role = "operator"
	// RoleAdmin may do everything, including managing users and every user's tokens.
	RoleAdmin Role = "admin"
)

// Roles lists the valid roles from least to most rights.
var Roles = []Role{RoleViewer, RoleOperator, RoleAdmin}

// rank orders the roles; 0 is an unknown role, which grants nothing.
func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Valid reports whether r is one of Roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// AtLeast reports whether r includes the rights of min. An unknown role (including the zero
// Role) is never at least anything, and nothing is at least an unknown role.
func (r Role) AtLeast(min Role) bool {
	return r.Valid() && min.Valid() && r.rank() >= min.rank()
}

// ParseRole returns the role named s, or an invalid-request error that lists the valid ones.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if !r.Valid() {
		return "", fieldError("role", "role %q is unknown: use viewer, operator or admin", s)
	}
	return r, nil
}

// lesser returns the role with fewer rights.
func lesser(a, b Role) Role {
	if a.AtLeast(b) {
		return b
	}
	return a
}

// Method is how a request proved who sent it.
type Method string

// The authentication methods.
const (
	// MethodSession is the console's session cookie.
	MethodSession Method = "session"
	// MethodToken is an API token sent as "Authorization: Bearer slc_…".
	MethodToken Method = "token"
)

// Principal is who sent a request, as established by its credentials.
type Principal struct {
	Username string
	// Role is the effective role: the user's current role, or for a token the lesser of the
	// token's role and its user's current role, so demoting a user demotes their tokens.
	Role Role
	// TokenID names the API token used; empty unless Method is MethodToken.
	TokenID string
	// SessionID names the session used (not its secret cookie value); empty unless Method is
	// MethodSession.
	SessionID string
	Method    Method
}

// String names the principal for logs: user, role and method, never a secret.
func (p Principal) String() string {
	id := p.SessionID
	if p.Method == MethodToken {
		id = p.TokenID
	}
	return fmt.Sprintf("%s (%s, %s %s)", p.Username, p.Role, p.Method, id)
}

type principalKey struct{}

// WithPrincipal returns a copy of ctx that carries p.
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// FromContext returns the principal that WithPrincipal put in ctx, and false if there is none
// (the request was not authenticated).
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}
