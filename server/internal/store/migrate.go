package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/golang-migrate/migrate/v4"
	pgxmigrate "github.com/golang-migrate/migrate/v4/database/pgx/v5"
	"github.com/golang-migrate/migrate/v4/source/iofs"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sluicemesh/sluice/migrations"
)

// Migrate applies every pending migration to the database at dbURL.
func Migrate(ctx context.Context, dbURL string) error {
	return withMigrator(ctx, dbURL, func(m *migrate.Migrate) error {
		if err := m.Up(); err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return fmt.Errorf("migrate up: %w", err)
		}
		return nil
	})
}

// MigrateDown reverts the newest steps migrations (all of them when steps <= 0).
func MigrateDown(ctx context.Context, dbURL string, steps int) error {
	return withMigrator(ctx, dbURL, func(m *migrate.Migrate) error {
		var err error
		if steps <= 0 {
			err = m.Down()
		} else {
			err = m.Steps(-steps)
		}
		if err != nil && !errors.Is(err, migrate.ErrNoChange) {
			return fmt.Errorf("migrate down: %w", err)
		}
		return nil
	})
}

// MigrationVersion reports the schema version and whether a failed migration left it dirty.
// Version 0 means no migration has been applied.
func MigrationVersion(ctx context.Context, dbURL string) (version uint, dirty bool, err error) {
	err = withMigrator(ctx, dbURL, func(m *migrate.Migrate) error {
		v, d, err := m.Version()
		if errors.Is(err, migrate.ErrNilVersion) {
			return nil
		}
		version, dirty = v, d
		return err
	})
	return version, dirty, err
}

func withMigrator(ctx context.Context, dbURL string, fn func(*migrate.Migrate) error) error {
	db, err := sql.Open("pgx/v5", dbURL)
	if err != nil {
		return fmt.Errorf("open database for migrations: %w", err)
	}
	defer db.Close()
	if err := db.PingContext(ctx); err != nil {
		return unreachable(dbURL, err)
	}
	src, err := iofs.New(migrations.FS, ".")
	if err != nil {
		return fmt.Errorf("read embedded migrations: %w", err)
	}
	drv, err := pgxmigrate.WithInstance(db, &pgxmigrate.Config{})
	if err != nil {
		return fmt.Errorf("prepare migrations: %w", err)
	}
	m, err := migrate.NewWithInstance("iofs", src, "pgx5", drv)
	if err != nil {
		return fmt.Errorf("prepare migrations: %w", err)
	}
	defer m.Close()
	return fn(m)
}

var _ = stdlib.GetDefaultDriver // registers the "pgx/v5" database/sql driver
