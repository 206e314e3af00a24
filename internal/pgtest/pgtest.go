// Package pgtest gives each test a database of its own on a throwaway PostgreSQL cluster.
//
// A test package opts in with a TestMain that hands over to Main:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }
//
// and each test asks for a database, cloned from a template that is prepared once:
//
//	url := pgtest.New(t, pgtest.Template{Name: "migrated", Setup: store.Migrate})
//
// The cluster (see pgembed) starts on the first New of the test binary, in a temporary
// directory, without crash safety (fsync off), and Main stops and removes it when the tests
// are done. A cluster left behind by a test binary that was killed (Ctrl-C, -timeout) is
// removed by the next test binary that starts one. There is no way to point pgtest at an
// external server, and no skipping: without the PostgreSQL server binaries, New fails the
// test with the hint to install them.
package pgtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sluicemesh/sluice/internal/pgembed"
)

// Template describes the database a test starts from. The zero Template is an empty database.
type Template struct {
	// Name identifies the template: Setup runs once per test binary for each Name, and
	// Templates sharing a Name must share their Setup. Required when Setup is set.
	Name string

	// Setup prepares the template database at url, typically by running the migrations. Tests
	// get copies of what it leaves behind. If nil, the database is empty. If it fails, every
	// test using the template fails with its error.
	Setup func(ctx context.Context, url string) error
}

// Names of the cluster directories in os.TempDir(), and of the file in each that holds the
// pid of the test binary that owns it.
const (
	dirPattern = "sluice-pgtest-*"
	ownerFile  = "owner-pid"
)

var (
	// inMain is set while Main runs the tests: without Main, nothing would stop the cluster.
	inMain atomic.Bool

	mu       sync.Mutex
	tried    bool // start was attempted; started and startErr hold the outcome
	started  *cluster
	startErr error
)

// cluster is the test binary's PostgreSQL cluster.
type cluster struct {
	dir   string // the temporary data directory
	pg    *pgembed.Cluster
	admin *pgxpool.Pool // on database "postgres": creates and drops the others
	seq   atomic.Int64  // makes database names unique

	// version is the server's version number (150004 for 15.4): the fastest ways to copy and
	// drop a database are newer than the oldest versions pgtest runs on.
	version int

	mu        sync.Mutex
	templates map[string]*template
}

// template is one Template's database, built once.
type template struct {
	once sync.Once
	db   string
	err  error
}

// Main runs the tests and then, if any test started the cluster, stops it and removes its
// directory. It returns the exit code for os.Exit; a failure to clean up turns success into 1.
func Main(m *testing.M) int {
	inMain.Store(true)
	code := m.Run()
	inMain.Store(false)
	if err := shutdown(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// New creates a database for the test, cloned from tmpl, and returns its connection URL. The
// database is dropped when the test ends, with whatever sessions are still connected to it.
// New is safe to call from parallel tests.
func New(t testing.TB, tmpl Template) string {
	t.Helper()
	if !inMain.Load() {
		t.Fatal("pgtest: New needs pgtest.Main to stop the cluster after the tests: add func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }")
	}
	if tmpl.Setup != nil && tmpl.Name == "" {
		t.Fatal("pgtest: Template.Setup is set but Template.Name is empty: name the template")
	}
	c, err := get()
	if err != nil {
		t.Fatal(err)
	}
	create := "CREATE DATABASE "
	name := c.databaseName(t.Name())
	create += pgx.Identifier{name}.Sanitize()
	if tmpl.Name != "" {
		src, err := c.template(tmpl)
		if err != nil {
			t.Fatal(err)
		}
		create += " TEMPLATE " + pgx.Identifier{src}.Sanitize()
	}
	if c.version >= 150000 {
		// Copying the files is about twice as fast as WAL-logging a small database page by
		// page (the default since 15), and crash safety is off anyway.
		create += " STRATEGY FILE_COPY"
	}
	if _, err := c.admin.Exec(t.Context(), create); err != nil {
		t.Fatalf("pgtest: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// The test's context is already cancelled when clean-ups run.
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := c.drop(ctx, name); err != nil {
			t.Errorf("pgtest: drop database %s: %v", name, err)
		}
	})
	return c.pg.URL(name)
}

// drop drops a database along with the sessions a test left connected to it.
func (c *cluster) drop(ctx context.Context, name string) error {
	ident := pgx.Identifier{name}.Sanitize()
	if c.version >= 130000 {
		_, err := c.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident+" WITH (FORCE)")
		return err
	}
	// Before 13: shut out newcomers, end the sessions, and drop (which waits for them to exit).
	if _, err := c.admin.Exec(ctx, "ALTER DATABASE "+ident+" WITH ALLOW_CONNECTIONS false"); err != nil {
		return err
	}
	if _, err := c.admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name); err != nil {
		return err
	}
	_, err := c.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident)
	return err
}

// get returns the test binary's cluster, starting it on first use.
func get() (*cluster, error) {
	mu.Lock()
	defer mu.Unlock()
	if !tried {
		tried = true
		started, startErr = start()
	}
	return started, startErr
}

func start() (*cluster, error) {
	// Look first, so that missing binaries give their install hint rather than a start error.
	binDir, err := pgembed.FindBinaries()
	if err != nil {
		return nil, err
	}
	reapAbandoned()

	dir, err := os.MkdirTemp("", dirPattern)
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	c, err := startIn(dir, binDir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return c, nil
}

func startIn(dir, binDir string) (*cluster, error) {
	// Running as root, PostgreSQL runs as another user, which must be able to enter dir to
	// keep the cluster inside it.
	if err := os.Chmod(dir, 0o711); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	pg, err := pgembed.Start(ctx, pgembed.Options{DataDir: dir, BinDir: binDir})
	if err != nil {
		return nil, fmt.Errorf("pgtest: %w", err)
	}
	admin, err := pgxpool.New(ctx, pg.URL("postgres"))
	if err != nil {
		_ = pg.Stop(ctx)
		return nil, fmt.Errorf("pgtest: connect to the test cluster: %w", err)
	}
	c := &cluster{dir: dir, pg: pg, admin: admin, templates: map[string]*template{}}
	if err := admin.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&c.version); err != nil {
		admin.Close()
		_ = pg.Stop(ctx)
		return nil, fmt.Errorf("pgtest: query the test cluster's version: %w", err)
	}
	return c, nil
}

// shutdown stops and removes the cluster, if one was started.
func shutdown() error {
	mu.Lock()
	defer mu.Unlock()
	c := started
	started, tried, startErr = nil, false, nil
	if c == nil {
		return nil
	}
	c.admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	err := c.pg.Stop(ctx)
	if err != nil {
		// Leave the directory to the next test binary's reaper rather than pull it from under
		// a running server.
		return fmt.Errorf("stop the test cluster in %s: %w", c.dir, err)
	}
	if rel, rerr := filepath.Rel(c.dir, c.pg.Dir()); rerr != nil || strings.HasPrefix(rel, "..") {
		// pgembed relocated the cluster (the temporary directory was out of its user's
		// reach); its parent there is named after this run's directory alone.
		err = os.RemoveAll(filepath.Dir(c.pg.Dir()))
	}
	return errors.Join(err, os.RemoveAll(c.dir))
}

// reapAbandoned stops and removes the clusters of test binaries that died without running
// Main's clean-up. It is best effort: whatever it cannot remove, a later run retries.
func reapAbandoned() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), dirPattern))
	for _, dir := range dirs {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue // not ours, or its owner is still writing the file
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || alive(pid) {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = pgembed.Kill(ctx, pgembed.Options{DataDir: dir})
		cancel()
		if err == nil {
			_ = os.RemoveAll(dir)
		}
	}
}

// alive reports whether a process with this pid exists. A pid reused since its test binary
// died counts as alive, which only delays the reaping.
func alive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// template returns the database of tmpl, building it on first use.
func (c *cluster) template(tmpl Template) (string, error) {
	c.mu.Lock()
	tp, ok := c.templates[tmpl.Name]
	if !ok {
		tp = &template{db: templateName(tmpl.Name)}
		c.templates[tmpl.Name] = tp
	}
	c.mu.Unlock()

	tp.once.Do(func() {
		// Stays the error if Setup panics, so later tests do not clone a half-built template.
		tp.err = fmt.Errorf("pgtest: set up template %q: Setup panicked", tmpl.Name)
		tp.err = c.build(tp.db, tmpl)
	})
	return tp.db, tp.err
}

func (c *cluster) build(db string, tmpl Template) error {
	// Shared by every test using the template, so it is not bound to any one test's context.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ident := pgx.Identifier{db}.Sanitize()
	if _, err := c.admin.Exec(ctx, "CREATE DATABASE "+ident); err != nil {
		return fmt.Errorf("pgtest: create template %q: %w", tmpl.Name, err)
	}
	if tmpl.Setup != nil {
		if err := tmpl.Setup(ctx, c.pg.URL(db)); err != nil {
			return fmt.Errorf("pgtest: set up template %q: %w", tmpl.Name, err)
		}
	}
	// Cloning fails while anyone is connected to the template: shut out newcomers, then end
	// the sessions Setup left open (CREATE DATABASE waits for them to exit).
	if _, err := c.admin.Exec(ctx, "ALTER DATABASE "+ident+" WITH ALLOW_CONNECTIONS false IS_TEMPLATE true"); err != nil {
		return fmt.Errorf("pgtest: seal template %q: %w", tmpl.Name, err)
	}
	if _, err := c.admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", db); err != nil {
		return fmt.Errorf("pgtest: disconnect template %q: %w", tmpl.Name, err)
	}
	return nil
}

// databaseName returns a new database name that shows which test it belongs to.
func (c *cluster) databaseName(test string) string {
	return fmt.Sprintf("test_%s_%d", identifierPart(test, 40), c.seq.Add(1))
}

// templateName returns the database name of the template called name. The hash keeps names
// apart that identifierPart would make equal.
func templateName(name string) string {
	sum := sha256.Sum256([]byte(name))
	return fmt.Sprintf("template_%s_%s", identifierPart(name, 30), hex.EncodeToString(sum[:4]))
}

// identifierPart turns s into at most n characters of a plain lower-case identifier, within
// PostgreSQL's 63-byte limit once prefixed and suffixed.
func identifierPart(s string, n int) string {
	b := make([]byte, 0, n)
	for i := 0; i < len(s) && len(b) < n; i++ {
		switch ch := s[i]; {
		case ch >= 'a' && ch <= 'z', ch >= '0' && ch <= '9':
			b = append(b, ch)
		case ch >= 'A' && ch <= 'Z':
			b = append(b, ch+'a'-'A')
		default:
			b = append(b, '_')
		}
	}
	return string(b)
}
