package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicemesh/sluice/server/internal/auth"
)

// InsertSession stores a session (its Role is the user's, and not stored).
func (s *Store) InsertSession(ctx context.Context, sess auth.Session) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO sessions (id, secret_hash, username, csrf_token, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6)`,
		sess.ID, sess.SecretHash, sess.Username, sess.CSRFToken, sess.CreatedAt, sess.ExpiresAt)
	if err != nil {
		return fmt.Errorf("insert session for %s: %w", sess.Username, err)
	}
	return nil
}

// SessionByHash finds a session by the hash of its secret, expired or not, with its user's
// current role; auth.ErrNotFound if there is none.
func (s *Store) SessionByHash(ctx context.Context, hash []byte) (auth.Session, error) {
	var (
		sess auth.Session
		role string
	)
	err := s.pool.QueryRow(ctx, `
		SELECT s.id, s.secret_hash, s.username, u.role, s.csrf_token, s.created_at, s.expires_at
		FROM sessions s JOIN users u USING (username)
		WHERE s.secret_hash = $1`, hash).
		Scan(&sess.ID, &sess.SecretHash, &sess.Username, &role, &sess.CSRFToken, &sess.CreatedAt, &sess.ExpiresAt)
	if errors.Is(err, pgx.ErrNoRows) {
		return auth.Session{}, fmt.Errorf("session: %w", auth.ErrNotFound)
	}
	if err != nil {
		return auth.Session{}, fmt.Errorf("look up session: %w", err)
	}
	sess.Role = auth.Role(role)
	return sess, nil
}

// DeleteSession deletes a session by id; a missing one is not an error.
func (s *Store) DeleteSession(ctx context.Context, id string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE id = $1`, id); err != nil {
		return fmt.Errorf("delete session %s: %w", id, err)
	}
	return nil
}

// DeleteUserSessions deletes the user's sessions except the one named exceptID (none, when it
// is empty).
func (s *Store) DeleteUserSessions(ctx context.Context, username, exceptID string) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE username = $1 AND id <> $2`, username, exceptID); err != nil {
		return fmt.Errorf("delete sessions of %s: %w", username, err)
	}
	return nil
}

// DeleteExpiredSessions deletes the sessions that expired at or before now.
func (s *Store) DeleteExpiredSessions(ctx context.Context, now time.Time) error {
	if _, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, now); err != nil {
		return fmt.Errorf("delete expired sessions: %w", err)
	}
	return nil
}
