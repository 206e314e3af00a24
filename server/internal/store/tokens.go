package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicemesh/sluice/server/internal/auth"
)

const tokenColumns = `t.id, t.secret_hash, t.name, t.username, t.role, u.role, t.created_at,
	t.expires_at, t.last_used_at, t.revoked_at`

func scanToken(row pgx.Row) (auth.Token, error) {
	var (
		t                  auth.Token
		role, userRole     string
		lastUsed, revokedT *time.Time
	)
	err := row.Scan(&t.ID, &t.SecretHash, &t.Name, &t.Username, &role, &userRole, &t.CreatedAt,
		&t.ExpiresAt, &lastUsed, &revokedT)
	t.Role, t.UserRole = auth.Role(role), auth.Role(userRole)
	if lastUsed != nil {
		t.LastUsedAt = *lastUsed
	}
	if revokedT != nil {
		t.RevokedAt = *revokedT
	}
	return t, err
}

// InsertToken stores an API token (its UserRole is the user's, and not stored).
func (s *Store) InsertToken(ctx context.Context, t auth.Token) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO api_tokens (id, secret_hash, name, username, role, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`,
		t.ID, t.SecretHash, t.Name, t.Username, string(t.Role), t.CreatedAt, t.ExpiresAt)
	if err != nil {
		return fmt.Errorf("insert API token for %s: %w", t.Username, err)
	}
	return nil
}

// TokenByHash finds a token by the hash of its secret, whatever its state, with its user's
// current role; auth.ErrNotFound if there is none.
func (s *Store) TokenByHash(ctx context.Context, hash []byte) (auth.Token, error) {
	return s.oneToken(ctx, `t.secret_hash = $1`, hash)
}

// GetToken finds a token by id; auth.ErrNotFound if there is none.
func (s *Store) GetToken(ctx context.Context, id string) (auth.Token, error) {
	return s.oneToken(ctx, `t.id = $1`, id)
}

func (s *Store) oneToken(ctx context.Context, where string, arg any) (auth.Token, error) {
	t, err := scanToken(s.pool.QueryRow(ctx, `
		SELECT `+tokenColumns+` FROM api_tokens t JOIN users u USING (username)
		WHERE `+where, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return auth.Token{}, fmt.Errorf("API token: %w", auth.ErrNotFound)
	}
	if err != nil {
		return auth.Token{}, fmt.Errorf("look up API token: %w", err)
	}
	return t, nil
}

// ListTokens returns the user's tokens, or everyone's when username is empty, newest first.
func (s *Store) ListTokens(ctx context.Context, username string) ([]auth.Token, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT `+tokenColumns+` FROM api_tokens t JOIN users u USING (username)
		WHERE $1 = '' OR t.username = $1
		ORDER BY t.created_at DESC, t.id`, username)
	if err != nil {
		return nil, fmt.Errorf("list API tokens: %w", err)
	}
	defer rows.Close()
	var out []auth.Token
	for rows.Next() {
		t, err := scanToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list API tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list API tokens: %w", err)
	}
	return out, nil
}

// RevokeToken marks a token revoked at at, unless it is revoked already.
func (s *Store) RevokeToken(ctx context.Context, id string, at time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE api_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, at); err != nil {
		return fmt.Errorf("revoke API token %s: %w", id, err)
	}
	return nil
}

// TouchToken records a use of the token at at, unless one at or after since is recorded.
func (s *Store) TouchToken(ctx context.Context, id string, at, since time.Time) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE api_tokens SET last_used_at = $2
		WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)`, id, at, since)
	if err != nil {
		return fmt.Errorf("record use of API token %s: %w", id, err)
	}
	return nil
}
