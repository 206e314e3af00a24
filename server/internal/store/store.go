// Package store is the PostgreSQL adapter of the control plane: a pgx pool, the schema
// migrations, and one file per aggregate (workloads here; resources and revisions beside it).
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Store is the control plane's PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
	log  *slog.Logger
}

// Open connects to the database at url and checks that it answers. It does not migrate.
func Open(ctx context.Context, dbURL string, log *slog.Logger) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL is not a valid PostgreSQL URL (postgres://user:password@host:5432/db): %w", err)
	}
	cfg.MaxConns = 16
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pctx); err != nil {
		pool.Close()
		return nil, unreachable(dbURL, err)
	}
	return &Store{pool: pool, log: log}, nil
}

// ValidateURL checks that dbURL parses as a PostgreSQL connection string, without connecting.
// Its error never quotes the URL, which may hold a password.
func ValidateURL(dbURL string) error {
	if _, err := pgxpool.ParseConfig(dbURL); err != nil {
		return errors.New("DATABASE_URL is not a valid PostgreSQL URL: want postgres://user:password@host:5432/dbname")
	}
	return nil
}

// Close closes every connection.
func (s *Store) Close() { s.pool.Close() }

// Ping reports whether the database answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// NextVersion takes the next mesh-wide config version. Versions never repeat, across restarts
// and replicas, because they come from a PostgreSQL sequence.
func (s *Store) NextVersion(ctx context.Context) (int64, error) {
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT nextval('mesh_version_seq')`).Scan(&v); err != nil {
		return 0, fmt.Errorf("next mesh version: %w", err)
	}
	return v, nil
}

// Redact returns the URL with its password replaced, for messages and logs.
func Redact(dbURL string) string {
	u, err := url.Parse(dbURL)
	if err != nil || u.User == nil {
		if err != nil {
			return "(unparsable URL)"
		}
		return dbURL
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// unreachable words a failed connection as one line that says what to check.
func unreachable(dbURL string, err error) error {
	cause := err.Error()
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr):
		cause = pgErr.Message
	case errors.Is(err, syscall.ECONNREFUSED):
		cause = "connection refused"
	case errors.Is(err, context.DeadlineExceeded):
		cause = "timed out"
	default:
		// pgx lists one line per address tried; the last says the most.
		lines := strings.Split(strings.TrimSpace(cause), "\n")
		cause = strings.TrimSpace(lines[len(lines)-1])
	}
	return fmt.Errorf("database %s is unreachable (%s): check that PostgreSQL runs there and that DATABASE_URL names it correctly", Redact(dbURL), cause)
}

// querier is what both the pool and a transaction offer, so that one function can run inside
// another's transaction or on its own.
type querier interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

var (
	_ querier = (*pgxpool.Pool)(nil)
	_ querier = (pgx.Tx)(nil)
)
