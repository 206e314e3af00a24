package store

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgerrcode"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/sluicemesh/sluice/server/internal/auth"
)

var _ auth.Store = (*Store)(nil)

const userColumns = `username, role, password_hash, created_at, updated_at`

func scanUser(row pgx.Row) (auth.User, error) {
	var u auth.User
	var role string
	err := row.Scan(&u.Username, &role, &u.PasswordHash, &u.CreatedAt, &u.UpdatedAt)
	u.Role = auth.Role(role)
	return u, err
}

// HasUsers reports whether any user exists.
func (s *Store) HasUsers(ctx context.Context) (bool, error) {
	var has bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM users)`).Scan(&has); err != nil {
		return false, fmt.Errorf("look for users: %w", err)
	}
	return has, nil
}

// InsertFirstUser inserts u only if there are no users, and reports whether it did. Two
// servers bootstrapping at once both see no users, but only one insert of the same name
// succeeds; the other conflicts and does nothing.
func (s *Store) InsertFirstUser(ctx context.Context, u auth.User) (bool, error) {
	tag, err := s.pool.Exec(ctx, `
		INSERT INTO users (username, role, password_hash, created_at, updated_at)
		SELECT $1, $2, $3, $4, $4
		WHERE NOT EXISTS (SELECT 1 FROM users)
		ON CONFLICT (username) DO NOTHING`,
		u.Username, string(u.Role), u.PasswordHash, u.CreatedAt)
	if err != nil {
		return false, fmt.Errorf("insert first user %s: %w", u.Username, err)
	}
	return tag.RowsAffected() == 1, nil
}

// InsertUser inserts u; a taken username fails with auth.ErrExists.
func (s *Store) InsertUser(ctx context.Context, u auth.User) error {
	_, err := s.pool.Exec(ctx, `
		INSERT INTO users (username, role, password_hash, created_at, updated_at)
		VALUES ($1, $2, $3, $4, $4)`,
		u.Username, string(u.Role), u.PasswordHash, u.CreatedAt)
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == pgerrcode.UniqueViolation {
		return fmt.Errorf("insert user %s: %w", u.Username, auth.ErrExists)
	}
	if err != nil {
		return fmt.Errorf("insert user %s: %w", u.Username, err)
	}
	return nil
}

// GetUser returns one user, or auth.ErrNotFound.
func (s *Store) GetUser(ctx context.Context, username string) (auth.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE username = $1`, username))
	if errors.Is(err, pgx.ErrNoRows) {
		return auth.User{}, fmt.Errorf("user %s: %w", username, auth.ErrNotFound)
	}
	if err != nil {
		return auth.User{}, fmt.Errorf("get user %s: %w", username, err)
	}
	return u, nil
}

// ListUsers returns every user ordered by name.
func (s *Store) ListUsers(ctx context.Context) ([]auth.User, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+userColumns+` FROM users ORDER BY username`)
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	var out []auth.User
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// UpdateUser applies c (zero fields stay) and returns the user before and after. Demoting the
// only admin fails with auth.ErrLastAdmin; see lockAdmins for why that holds under concurrency.
func (s *Store) UpdateUser(ctx context.Context, username string, c auth.UserChange) (before, after auth.User, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		admins, err := lockAdmins(ctx, tx)
		if err != nil {
			return err
		}
		before, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE username = $1 FOR UPDATE`, username))
		if errors.Is(err, pgx.ErrNoRows) {
			return auth.ErrNotFound
		}
		if err != nil {
			return err
		}
		if before.Role == auth.RoleAdmin && c.Role != "" && c.Role != auth.RoleAdmin && admins <= 1 {
			return auth.ErrLastAdmin
		}
		after, err = scanUser(tx.QueryRow(ctx, `
			UPDATE users SET
				role = COALESCE(NULLIF($2, ''), role),
				password_hash = COALESCE(NULLIF($3, ''), password_hash),
				updated_at = now()
			WHERE username = $1
			RETURNING `+userColumns, username, string(c.Role), c.PasswordHash))
		return err
	})
	if err != nil {
		return auth.User{}, auth.User{}, fmt.Errorf("update user %s: %w", username, err)
	}
	return before, after, nil
}

// DeleteUser deletes a user, and with them (ON DELETE CASCADE) their sessions and tokens, and
// returns what it deleted. Deleting the only admin fails with auth.ErrLastAdmin.
func (s *Store) DeleteUser(ctx context.Context, username string) (auth.User, error) {
	var u auth.User
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		admins, err := lockAdmins(ctx, tx)
		if err != nil {
			return err
		}
		u, err = scanUser(tx.QueryRow(ctx, `SELECT `+userColumns+` FROM users WHERE username = $1 FOR UPDATE`, username))
		if errors.Is(err, pgx.ErrNoRows) {
			return auth.ErrNotFound
		}
		if err != nil {
			return err
		}
		if u.Role == auth.RoleAdmin && admins <= 1 {
			return auth.ErrLastAdmin
		}
		_, err = tx.Exec(ctx, `DELETE FROM users WHERE username = $1`, username)
		return err
	})
	if err != nil {
		return auth.User{}, fmt.Errorf("delete user %s: %w", username, err)
	}
	return u, nil
}

// lockAdmins locks every admin's row for the rest of the transaction and counts them. Two
// transactions each removing a different one of the last two admins therefore run one after
// the other, and the second counts one admin and refuses. Promotions need no lock: they can
// only add admins.
func lockAdmins(ctx context.Context, tx pgx.Tx) (int, error) {
	rows, err := tx.Query(ctx, `SELECT username FROM users WHERE role = 'admin' ORDER BY username FOR UPDATE`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		n++
	}
	return n, rows.Err()
}
