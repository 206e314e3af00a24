package pgtest_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluicemesh/sluice/internal/pgtest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// widgetsSetups counts the runs of widgets' Setup.
var widgetsSetups atomic.Int32

var widgets = pgtest.Template{
	Name: "widgets",
	Setup: func(ctx context.Context, url string) error {
		widgetsSetups.Add(1)
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			return err
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, "CREATE TABLE widgets (name text PRIMARY KEY); INSERT INTO widgets VALUES ('seed')")
		return err
	},
}

func connect(t *testing.T, url string) *pgx.Conn {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func widgetNames(t *testing.T, conn *pgx.Conn) []string {
	t.Helper()
	rows, err := conn.Query(t.Context(), "SELECT name FROM widgets ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// adminURL turns a test database's URL into one for the cluster's "postgres" database.
func adminURL(t *testing.T, dbURL string) string {
	t.Helper()
	u, err := url.Parse(dbURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/postgres"
	return u.String()
}

func TestNewIsolatedClones(t *testing.T) {
	var (
		mu        sync.Mutex
		databases []string
		anyURL    string
	)
	t.Run("group", func(t *testing.T) {
		for _, name := range []string{"alpha", "beta"} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				dbURL := pgtest.New(t, widgets)
				conn := connect(t, dbURL)
				if _, err := conn.Exec(t.Context(), "INSERT INTO widgets VALUES ($1)", name); err != nil {
					t.Fatal(err)
				}
				// The template's row is there; the other test's is not.
				if got, want := widgetNames(t, conn), []string{name, "seed"}; !slices.Equal(got, want) {
					t.Errorf("widgets = %v, want %v", got, want)
				}
				var db string
				if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&db); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				databases, anyURL = append(databases, db), dbURL
				mu.Unlock()
			})
		}
	})
	if t.Failed() {
		return
	}
	if len(databases) != 2 || databases[0] == databases[1] {
		t.Fatalf("databases = %v, want two different ones", databases)
	}
	if n := widgetsSetups.Load(); n != 1 {
		t.Errorf("template Setup ran %d times, want 1", n)
	}

	// Each database is gone once its test is over; the connection the test left open did not
	// stop the drop.
	var left []string
	rows, err := connect(t, adminURL(t, anyURL)).Query(t.Context(), "SELECT datname FROM pg_database WHERE datname = ANY($1)", databases)
	if err != nil {
		t.Fatal(err)
	}
	if left, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	if len(left) > 0 {
		t.Errorf("databases %v still exist after their tests", left)
	}
}

func TestNewParallel(t *testing.T) {
	for i := range 8 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			tmpl := widgets
			if i%2 == 1 {
				tmpl = pgtest.Template{} // an empty database, alongside clones of widgets
			}
			conn := connect(t, pgtest.New(t, tmpl))
			if _, err := conn.Exec(t.Context(), "CREATE TABLE mine (n int)"); err != nil {
				t.Fatal(err)
			}
			if _, err := conn.Exec(t.Context(), "INSERT INTO mine SELECT generate_series(1, $1::int)", i+1); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM mine").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != i+1 {
				t.Errorf("count = %d, want %d", n, i+1)
			}
			var hasWidgets bool
			if err := conn.QueryRow(t.Context(), "SELECT to_regclass('widgets') IS NOT NULL").Scan(&hasWidgets); err != nil {
				t.Fatal(err)
			}
			if want := tmpl.Name != ""; hasWidgets != want {
				t.Errorf("widgets table exists = %v, want %v", hasWidgets, want)
			}
		})
	}
}

// fatalRecorder is a testing.TB whose Fatal records the message and ends the goroutine, as
// the real one does, without failing the test.
type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Fatal(args ...any) {
	r.msg = fmt.Sprint(args...)
	runtime.Goexit()
}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

// newFatal runs pgtest.New and returns the message it failed the test with, if any.
func newFatal(t *testing.T, tmpl pgtest.Template) string {
	r := &fatalRecorder{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		pgtest.New(r, tmpl)
	}()
	<-done
	return r.msg
}

func TestNewFails(t *testing.T) {
	var brokenSetups atomic.Int32
	broken := pgtest.Template{
		Name: "broken",
		Setup: func(context.Context, string) error {
			brokenSetups.Add(1)
			return errors.New("migration 3 failed")
		},
	}
	tests := []struct {
		name string
		tmpl pgtest.Template
		want string
	}{
		{name: "setup fails", tmpl: broken, want: `pgtest: set up template "broken": migration 3 failed`},
		{name: "setup failed before", tmpl: broken, want: `pgtest: set up template "broken": migration 3 failed`},
		{name: "setup without a name", tmpl: pgtest.Template{Setup: widgets.Setup}, want: "Template.Name is empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := newFatal(t, tt.tmpl); !strings.Contains(got, tt.want) {
				t.Errorf("New failed the test with %q, want %q in it", got, tt.want)
			}
		})
	}
	if n := brokenSetups.Load(); n != 1 {
		t.Errorf("failing Setup ran %d times, want 1", n)
	}
}
