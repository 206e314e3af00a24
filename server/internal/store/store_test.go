package store_test

import (
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"

	"github.com/sluicemesh/sluice/internal/pgtest"
	"github.com/sluicemesh/sluice/server/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// Migrated is the template every store test starts from.
var Migrated = pgtest.Template{Name: "migrated", Setup: store.Migrate}

func open(t *testing.T) (*store.Store, string) {
	t.Helper()
	url := pgtest.New(t, Migrated)
	st, err := store.Open(context.Background(), url, slog.New(slog.NewTextHandler(testWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st, url
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

func TestMigrateDownAndUp(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t, pgtest.Template{})
	if v, dirty, err := store.MigrationVersion(ctx, url); err != nil || v != 0 || dirty {
		t.Fatalf("fresh database: version %d dirty %v err %v, want 0", v, dirty, err)
	}
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatal(err)
	}
	v, _, err := store.MigrationVersion(ctx, url)
	if err != nil || v == 0 {
		t.Fatalf("after up: version %d err %v", v, err)
	}
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatalf("second up must be a no-op: %v", err)
	}
	if err := store.MigrateDown(ctx, url, 0); err != nil {
		t.Fatal(err)
	}
	if v, _, _ := store.MigrationVersion(ctx, url); v != 0 {
		t.Fatalf("after down: version %d, want 0", v)
	}
	if err := store.Migrate(ctx, url); err != nil {
		t.Fatalf("up after down: %v", err)
	}
}

func TestNextVersionIncreases(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	a, err := st.NextVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	b, err := st.NextVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if b <= a {
		t.Fatalf("versions %d then %d, want increasing", a, b)
	}
}

func TestOpenErrors(t *testing.T) {
	ctx := context.Background()
	tests := []struct{ name, url, want string }{
		{"malformed", "postgres://%zz", "DATABASE_URL is not a valid PostgreSQL URL"},
		{"unreachable", "postgres://u:secret@127.0.0.1:1/db?connect_timeout=2", "is unreachable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := store.Open(ctx, tc.url, slog.New(slog.DiscardHandler))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Fatalf("error leaks the password: %v", err)
			}
		})
	}
}
