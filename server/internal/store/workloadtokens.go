package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicemesh/sluice/server/internal/auth"
)

const workloadTokenColumns = `id, secret_hash, name, namespace, service_account, created_by,
	created_at, expires_at, last_used_at, revoked_at`

func scanWorkloadToken(row pgx.Row) (auth.WorkloadToken, error) {
	var (
		t                  auth.WorkloadToken
		lastUsed, revokedT *time.Time
	)
	err := row.Scan(&t.ID, &t.SecretHash, &t.Name, &t.Identity.Namespace, &t.Identity.ServiceAccount,
		&t.CreatedBy, &t.CreatedAt, &t.ExpiresAt, &lastUsed, &revokedT)
	if lastUsed != nil {
		t.LastUsedAt = *lastUsed
	}
	if revokedT != nil {
		t.RevokedAt = *revokedT
	}
	return t, err
}

// InsertWorkloadToken stores a workload token.
func (s *Store) InsertWorkloadToken(ctx context.Context, t auth.WorkloadToken) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO workload_tokens (id, secret_hash, name, namespace, service_account, created_by, created_at, expires_at)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`,
		t.ID, t.SecretHash, t.Name, t.Identity.Namespace, t.Identity.ServiceAccount, t.CreatedBy, t.CreatedAt, t.ExpiresAt)
	if err != nil {
		return fmt.Errorf("insert workload token for %s: %w", t.Identity, err)
	}
	return nil
}

// WorkloadTokenByHash finds a workload token by the hash of its secret, whatever its state;
// auth.ErrNotFound if there is none.
func (s *Store) WorkloadTokenByHash(ctx context.Context, hash []byte) (auth.WorkloadToken, error) {
	return s.oneWorkloadToken(ctx, `secret_hash = $1`, hash)
}

// GetWorkloadToken finds a workload token by id; auth.ErrNotFound if there is none.
func (s *Store) GetWorkloadToken(ctx context.Context, id string) (auth.WorkloadToken, error) {
	return s.oneWorkloadToken(ctx, `id = $1`, id)
}

func (s *Store) oneWorkloadToken(ctx context.Context, where string, arg any) (auth.WorkloadToken, error) {
	t, err := scanWorkloadToken(s.pool.QueryRow(ctx, `SELECT `+workloadTokenColumns+` FROM workload_tokens WHERE `+where, arg))
	if errors.Is(err, pgx.ErrNoRows) {
		return auth.WorkloadToken{}, fmt.Errorf("workload token: %w", auth.ErrNotFound)
	}
	if err != nil {
		return auth.WorkloadToken{}, fmt.Errorf("look up workload token: %w", err)
	}
	return t, nil
}

// ListWorkloadTokens returns every workload token, newest first.
func (s *Store) ListWorkloadTokens(ctx context.Context) ([]auth.WorkloadToken, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+workloadTokenColumns+` FROM workload_tokens ORDER BY created_at DESC, id`)
	if err != nil {
		return nil, fmt.Errorf("list workload tokens: %w", err)
	}
	defer rows.Close()
	var out []auth.WorkloadToken
	for rows.Next() {
		t, err := scanWorkloadToken(rows)
		if err != nil {
			return nil, fmt.Errorf("list workload tokens: %w", err)
		}
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list workload tokens: %w", err)
	}
	return out, nil
}

// RevokeWorkloadToken marks a workload token revoked at at, unless it is revoked already.
func (s *Store) RevokeWorkloadToken(ctx context.Context, id string, at time.Time) error {
	if _, err := s.pool.Exec(ctx, `UPDATE workload_tokens SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL`, id, at); err != nil {
		return fmt.Errorf("revoke workload token %s: %w", id, err)
	}
	return nil
}

// TouchWorkloadToken records a use of the token at at, unless one at or after since is
// recorded.
func (s *Store) TouchWorkloadToken(ctx context.Context, id string, at, since time.Time) error {
	_, err := s.pool.Exec(ctx, `
		UPDATE workload_tokens SET last_used_at = $2
		WHERE id = $1 AND (last_used_at IS NULL OR last_used_at < $3)`, id, at, since)
	if err != nil {
		return fmt.Errorf("record use of workload token %s: %w", id, err)
	}
	return nil
}
