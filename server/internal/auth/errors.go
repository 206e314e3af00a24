package auth

import (
	"errors"
	"fmt"
	"time"
)

// Kind classifies an Error for the edge that shows it (HTTP maps each Kind to one status).
type Kind int

// The kinds of Error.
const (
	// KindInvalid is a malformed request: a bad name, a short password, an unknown role.
	KindInvalid Kind = iota + 1
	// KindUnauthenticated means the credentials are missing, wrong, expired or revoked.
	KindUnauthenticated
	// KindForbidden means the caller is known but may not do this.
	KindForbidden
	// KindNotFound means the user or token does not exist (or is not the caller's to see).
	KindNotFound
	// KindConflict means the change clashes with the current state, such as removing the last
	// admin or creating a user that exists.
	KindConflict
	// KindRateLimited means too many sign-in attempts; RetryAfter says when to try again.
	KindRateLimited
)

// Error is a failure the caller can act on. Message is shown to the caller as is: it says what
// went wrong and what to do, and never holds a secret.
type Error struct {
	Kind    Kind
	Message string
	// RetryAfter is how long to wait, for KindRateLimited.
	RetryAfter time.Duration
	// Field names the request field at fault, such as "password", for KindInvalid; empty
	// when no one field is.
	Field string
	// Reason is detail for the audit log and the server's log, never for the caller: for a
	// failed sign-in it says whether the user was unknown or the password wrong.
	Reason string
}

func (e *Error) Error() string { return e.Message }

// ErrorKind returns the Kind of the *Error in err's chain, or 0 if there is none (an internal
// failure).
func ErrorKind(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return 0
}

func invalidf(format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Message: fmt.Sprintf(format, args...)}
}

// fieldError is invalidf about one request field.
func fieldError(field, format string, args ...any) *Error {
	return &Error{Kind: KindInvalid, Field: field, Message: fmt.Sprintf(format, args...)}
}

// Errors a Store returns, which Service turns into an *Error worded for the caller.
var (
	// ErrNotFound: no such user, session or token.
	ErrNotFound = errors.New("not found")
	// ErrExists: a user with that name exists already.
	ErrExists = errors.New("already exists")
	// ErrLastAdmin: the change would leave no admin.
	ErrLastAdmin = errors.New("would leave no admin")
)
