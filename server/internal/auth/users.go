package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"time"
)

// User is an account that signs in with a password.
type User struct {
	Username string
	Role     Role
	// PasswordHash is the argon2id PHC string. It never leaves the server: it is not
	// marshalled to JSON, nor logged.
	PasswordHash string `json:"-"`
	CreatedAt    time.Time
	UpdatedAt    time.Time
}

// LogValue keeps the password hash out of logs.
func (u User) LogValue() slog.Value {
	return slog.GroupValue(slog.String("username", u.Username), slog.String("role", string(u.Role)))
}

// UserChange is a change to a stored user; zero fields stay as they are.
type UserChange struct {
	Role         Role
	PasswordHash string
}

// UserUpdate is a change an admin asks for; nil fields stay as they are.
type UserUpdate struct {
	Role     *Role
	Password *string
}

// MaxUsernameLength bounds usernames.
const MaxUsernameLength = 64

// usernamePattern: lower case, so that "Alice" and "alice" cannot be two people, and safe to
// show in paths, logs and the audit log without quoting.
var usernamePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._@-]*$`)

func checkUsername(name string) error {
	if len(name) > MaxUsernameLength || !usernamePattern.MatchString(name) {
		return fieldError("username", "username %q is not valid: use 1 to %d lower-case letters, digits, '.', '_', '@' or '-', starting with a letter or digit", name, MaxUsernameLength)
	}
	return nil
}

// ListUsers returns every user, ordered by name.
func (s *Service) ListUsers(ctx context.Context) ([]User, error) {
	us, err := s.store.ListUsers(ctx)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return us, nil
}

// GetUser returns one user.
func (s *Service) GetUser(ctx context.Context, username string) (User, error) {
	u, err := s.store.GetUser(ctx, username)
	if err != nil {
		return User{}, s.userError(err, username, "")
	}
	return u, nil
}

// CreateUser creates a user; an empty role means RoleViewer, the least.
func (s *Service) CreateUser(ctx context.Context, username, password string, role Role) (User, error) {
	if err := checkUsername(username); err != nil {
		return User{}, err
	}
	if role == "" {
		role = RoleViewer
	}
	if _, err := ParseRole(string(role)); err != nil {
		return User{}, err
	}
	if err := checkNewPassword(password); err != nil {
		return User{}, err
	}
	hash, err := s.hash(ctx, password)
	if err != nil {
		return User{}, fmt.Errorf("create user %s: %w", username, err)
	}
	now := s.stamp()
	u := User{Username: username, Role: role, PasswordHash: hash, CreatedAt: now, UpdatedAt: now}
	if err := s.store.InsertUser(ctx, u); err != nil {
		return User{}, s.userError(err, username, "")
	}
	return u, nil
}

// UpdateUser changes a user's role, password or both, on behalf of by. A new password ends the
// user's other sessions (all of them, unless by is that user changing their own); their API
// tokens stay valid and are revoked separately. Demoting the last admin fails with
// KindConflict.
func (s *Service) UpdateUser(ctx context.Context, by Principal, username string, upd UserUpdate) (before, after User, err error) {
	if upd.Role == nil && upd.Password == nil {
		return User{}, User{}, invalidf("nothing to change: send role, password or both")
	}
	var c UserChange
	if upd.Role != nil {
		if c.Role, err = ParseRole(string(*upd.Role)); err != nil {
			return User{}, User{}, err
		}
	}
	if upd.Password != nil {
		if err := checkNewPassword(*upd.Password); err != nil {
			return User{}, User{}, err
		}
		if c.PasswordHash, err = s.hash(ctx, *upd.Password); err != nil {
			return User{}, User{}, fmt.Errorf("update user %s: %w", username, err)
		}
	}
	before, after, err = s.store.UpdateUser(ctx, username, c)
	if err != nil {
		return User{}, User{}, s.userError(err, username, "change its role")
	}
	if upd.Password != nil {
		keep := ""
		if by.Username == username && by.Method == MethodSession {
			keep = by.SessionID
		}
		if err := s.store.DeleteUserSessions(ctx, username, keep); err != nil {
			return before, after, fmt.Errorf("end the sessions of %s after a password change: %w", username, err)
		}
	}
	return before, after, nil
}

// DeleteUser deletes a user with their sessions and API tokens. Deleting the last admin fails
// with KindConflict.
func (s *Service) DeleteUser(ctx context.Context, username string) (User, error) {
	u, err := s.store.DeleteUser(ctx, username)
	if err != nil {
		return User{}, s.userError(err, username, "delete it")
	}
	return u, nil
}

// userError words a store error about one user for the caller.
func (s *Service) userError(err error, username, lastAdminAction string) error {
	switch {
	case errors.Is(err, ErrNotFound):
		return &Error{Kind: KindNotFound, Message: fmt.Sprintf("user %q does not exist: list users with GET /api/v1/users", username)}
	case errors.Is(err, ErrExists):
		return &Error{Kind: KindConflict, Message: fmt.Sprintf("user %q already exists: choose another name, or change that user with PATCH /api/v1/users/%s", username, username)}
	case errors.Is(err, ErrLastAdmin):
		return &Error{Kind: KindConflict, Message: fmt.Sprintf("%q is the last admin: make another user admin first, then %s", username, lastAdminAction)}
	}
	return fmt.Errorf("user %s: %w", username, err)
}
