package pgembed

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"
)

// reachableDir returns a new directory that the PostgreSQL user can traverse when the tests
// run as root, so that clusters stay where the test puts them.
func reachableDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "pgembed-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(d) })
	if err := os.Chmod(d, 0o711); err != nil {
		t.Fatal(err)
	}
	return d
}

func testOptions(t *testing.T) Options {
	return Options{
		DataDir:      filepath.Join(reachableDir(t), "data"),
		Logger:       slog.New(slog.NewTextHandler(t.Output(), nil)),
		relocateBase: reachableDir(t), // never /var/lib/sluice from a test
	}
}

// startCluster starts a cluster and stops it when the test ends.
func startCluster(t *testing.T, o Options) *Cluster {
	t.Helper()
	c, err := Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Stop(context.Background()); err != nil {
			t.Error(err)
		}
	})
	return c
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

func TestStartStopReuse(t *testing.T) {
	o := testOptions(t)

	c := startCluster(t, o)
	conn := connect(t, c.URL(DefaultDatabase))
	if _, err := conn.Exec(t.Context(), "CREATE TABLE notes (body text); INSERT INTO notes VALUES ('kept')"); err != nil {
		t.Fatal(err)
	}
	for setting, want := range map[string]string{
		"listen_addresses":        "127.0.0.1",
		"unix_socket_directories": "",
		"fsync":                   "off",
		"password_encryption":     "scram-sha-256",
	} {
		var got string
		if err := conn.QueryRow(t.Context(), "SELECT current_setting($1)", setting).Scan(&got); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s = %q, want %q", setting, got, want)
		}
	}
	_ = conn.Close(t.Context())

	u, err := url.Parse(c.URL(DefaultDatabase))
	if err != nil {
		t.Fatal(err)
	}
	if u.Hostname() != "127.0.0.1" {
		t.Errorf("URL host = %q, want 127.0.0.1", u.Hostname())
	}
	pwPath := filepath.Join(c.Dir(), passwordFile)
	fi, err := os.Stat(pwPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s mode = %v, want 0600", pwPath, fi.Mode().Perm())
	}
	pw, _ := u.User.Password()
	if b, _ := os.ReadFile(pwPath); pw == "" || strings.TrimSpace(string(b)) != pw {
		t.Errorf("URL password does not match %s", pwPath)
	}
	wrong := *u
	wrong.User = url.UserPassword(u.User.Username(), "wrong")
	if conn, err := pgx.Connect(t.Context(), wrong.String()); err == nil {
		_ = conn.Close(t.Context())
		t.Error("connected with a wrong password; want password authentication to fail")
	}

	// The server must sit outside the test's process group, or a Ctrl-C would kill it.
	pf, err := readPidFile(filepath.Join(c.pgdata, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	if pgid, err := syscall.Getpgid(pf.pid); err != nil || pgid == syscall.Getpgrp() {
		t.Errorf("postmaster process group = %d (err %v), want one apart from ours (%d)", pgid, err, syscall.Getpgrp())
	}

	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
	if err := c.Stop(t.Context()); err != nil {
		t.Errorf("second Stop: %v, want nil", err)
	}

	c2 := startCluster(t, o)
	if c2.Dir() != c.Dir() {
		t.Errorf("second start Dir = %s, want %s", c2.Dir(), c.Dir())
	}
	var body string
	if err := connect(t, c2.URL(DefaultDatabase)).QueryRow(t.Context(), "SELECT body FROM notes").Scan(&body); err != nil {
		t.Fatal(err)
	}
	if body != "kept" {
		t.Errorf("body = %q, want %q", body, "kept")
	}
}

func TestStartStalePidFile(t *testing.T) {
	tests := []struct {
		name string
		// leave leaves a cluster behind with a postmaster.pid and nothing running on it.
		leave func(t *testing.T, c *Cluster)
	}{
		{
			name: "server killed",
			leave: func(t *testing.T, c *Cluster) {
				pf, err := readPidFile(filepath.Join(c.pgdata, "postmaster.pid"))
				if err != nil {
					t.Fatal(err)
				}
				pgid, err := syscall.Getpgid(pf.pid)
				if err != nil || pgid == syscall.Getpgrp() {
					t.Fatalf("postmaster process group = %d (err %v); refusing to kill our own", pgid, err)
				}
				if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil {
					t.Fatal(err)
				}
				waitGone(t, c.pgdata)
			},
		},
		{
			name: "pid of an exited process",
			leave: func(t *testing.T, c *Cluster) {
				stop(t, c)
				cmd := exec.Command("true")
				if err := cmd.Run(); err != nil {
					t.Fatal(err)
				}
				writePidFile(t, c, cmd.Process.Pid)
			},
		},
		{
			name: "pid reused by another process",
			leave: func(t *testing.T, c *Cluster) {
				stop(t, c)
				writePidFile(t, c, os.Getpid())
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := testOptions(t)
			c, err := Start(t.Context(), o)
			if err != nil {
				t.Fatal(err)
			}
			tt.leave(t, c)

			c2 := startCluster(t, o)
			var one int
			if err := connect(t, c2.URL(DefaultDatabase)).QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func stop(t *testing.T, c *Cluster) {
	t.Helper()
	if err := c.Stop(t.Context()); err != nil {
		t.Fatal(err)
	}
}

func writePidFile(t *testing.T, c *Cluster, pid int) {
	t.Helper()
	body := fmt.Sprintf("%d\n%s\n1700000000\n5432\n\n\n", pid, c.pgdata)
	path := filepath.Join(c.pgdata, "postmaster.pid")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.as.chown(path); err != nil {
		t.Fatal(err)
	}
}

func waitGone(t *testing.T, pgdata string) {
	t.Helper()
	for {
		pids, ok := processesIn(pgdata)
		if !ok {
			t.Fatal("/proc is not available")
		}
		if len(pids) == 0 {
			return
		}
		select {
		case <-t.Context().Done():
			t.Fatalf("processes %v still run on %s", pids, pgdata)
		default:
		}
	}
}

func TestStartInUse(t *testing.T) {
	o := testOptions(t)
	c := startCluster(t, o)
	pf, err := readPidFile(filepath.Join(c.pgdata, "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}

	_, err = Start(t.Context(), o)
	want := fmt.Sprintf("data directory %s is in use by another running PostgreSQL (pid %d); stop it or use another --data-dir", o.DataDir, pf.pid)
	if err == nil || err.Error() != want {
		t.Fatalf("second Start error = %v, want %q", err, want)
	}
	// The failed start must leave the running cluster alone.
	var one int
	if err := connect(t, c.URL(DefaultDatabase)).QueryRow(t.Context(), "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("first cluster after the failed second start: %v", err)
	}
}

func TestStartFailureReportsLogAndCleansUp(t *testing.T) {
	o := testOptions(t)
	c := startCluster(t, o)
	stop(t, c)
	// postgresql.auto.conf is read after sluice.conf, so this breaks every start.
	if err := os.WriteFile(filepath.Join(c.pgdata, "postgresql.auto.conf"), []byte("shared_buffers = 'lots'\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	_, err := Start(t.Context(), o)
	if err == nil {
		t.Fatal("Start succeeded with a broken configuration")
	}
	t.Logf("Start error: %v", err)
	for _, want := range []string{"did not start", "shared_buffers"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
	if pids, _ := processesIn(c.pgdata); len(pids) > 0 {
		t.Errorf("processes %v still run on the cluster after a failed start", pids)
	}
}

func TestStartRelocatesWhenUnreachable(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("relocation only happens when running as root")
	}
	private := t.TempDir() // mode 0700, owned by root: the postgres user cannot enter it
	o := testOptions(t)
	o.DataDir = filepath.Join(private, "data")

	c := startCluster(t, o)
	if !strings.HasPrefix(c.Dir(), o.relocateBase+string(filepath.Separator)) {
		t.Fatalf("cluster Dir = %s, want it under %s", c.Dir(), o.relocateBase)
	}
	b, err := os.ReadFile(filepath.Join(o.DataDir, locationFile))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got != c.Dir() {
		t.Errorf("%s = %q, want %q", locationFile, got, c.Dir())
	}
	stop(t, c)

	c2 := startCluster(t, o)
	if c2.Dir() != c.Dir() {
		t.Errorf("second start Dir = %s, want %s", c2.Dir(), c.Dir())
	}
}

func TestKill(t *testing.T) {
	o := testOptions(t)
	c, err := Start(t.Context(), o)
	if err != nil {
		t.Fatal(err)
	}
	if err := Kill(t.Context(), o); err != nil {
		t.Fatal(err)
	}
	if pids, _ := processesIn(c.pgdata); len(pids) > 0 {
		t.Errorf("processes %v still run after Kill", pids)
	}
	if err := Kill(t.Context(), o); err != nil {
		t.Errorf("Kill with nothing running: %v, want nil", err)
	}
}

func TestSearchable(t *testing.T) {
	base := reachableDir(t)
	fi, err := os.Stat(base)
	if err != nil {
		t.Fatal(err)
	}
	owner := fi.Sys().(*syscall.Stat_t)
	const stranger = 4242

	tests := []struct {
		name        string
		modes       []fs.FileMode // of base/a, base/a/b, ...
		uid, gid    uint32
		want        bool
		wantBlocked int // index into modes of the blocking directory
	}{
		{name: "others may search", modes: []fs.FileMode{0o711, 0o701}, uid: stranger, gid: stranger, want: true},
		{name: "others may not", modes: []fs.FileMode{0o711, 0o750}, uid: stranger, gid: stranger, wantBlocked: 1},
		{name: "blocked higher up", modes: []fs.FileMode{0o700, 0o755}, uid: stranger, gid: stranger, wantBlocked: 0},
		{name: "group may search", modes: []fs.FileMode{0o710}, uid: stranger, gid: owner.Gid, want: true},
		{name: "owner may search", modes: []fs.FileMode{0o700}, uid: owner.Uid, gid: stranger, want: true},
		{name: "owner bits rule the owner", modes: []fs.FileMode{0o011}, uid: owner.Uid, gid: stranger, wantBlocked: 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dirs := []string{filepath.Join(base, fmt.Sprint(i))}
			for range tt.modes[1:] {
				dirs = append(dirs, filepath.Join(dirs[len(dirs)-1], "d"))
			}
			if err := os.MkdirAll(dirs[len(dirs)-1], 0o700); err != nil {
				t.Fatal(err)
			}
			for j := len(dirs) - 1; j >= 0; j-- {
				if err := os.Chmod(dirs[j], tt.modes[j]); err != nil {
					t.Fatal(err)
				}
			}
			t.Cleanup(func() { _ = os.Chmod(dirs[0], 0o700) }) // so the clean-up can remove it

			got, blocked := searchable(dirs[len(dirs)-1], tt.uid, tt.gid)
			if got != tt.want {
				t.Errorf("searchable = %v, want %v", got, tt.want)
			}
			if !tt.want && blocked != dirs[tt.wantBlocked] {
				t.Errorf("blocked at %s, want %s", blocked, dirs[tt.wantBlocked])
			}
		})
	}
}

func TestFindBinaries(t *testing.T) {
	// Each case lays out files under a fresh directory; "path" and "root" name subdirectories.
	type file struct {
		name string
		mode fs.FileMode
		link string // symlink target, relative to the case directory
	}
	all := func(dir string) []file {
		return []file{{name: dir + "/initdb", mode: 0o755}, {name: dir + "/pg_ctl", mode: 0o755}, {name: dir + "/postgres", mode: 0o755}}
	}
	concat := func(fss ...[]file) []file {
		var out []file
		for _, f := range fss {
			out = append(out, f...)
		}
		return out
	}
	tests := []struct {
		name    string
		files   []file
		path    []string
		want    string // relative to the case directory; "" means not found
		wantErr error
	}{
		{name: "nothing anywhere", wantErr: ErrBinariesNotFound},
		{name: "on PATH", files: all("bin"), path: []string{"empty", "bin"}, want: "bin"},
		{
			name:  "PATH symlink into the real directory",
			files: concat(all("real"), []file{{name: "bin/initdb", link: "real/initdb"}}),
			path:  []string{"bin"}, want: "real",
		},
		{
			name:    "postgres missing",
			files:   []file{{name: "bin/initdb", mode: 0o755}, {name: "bin/pg_ctl", mode: 0o755}},
			path:    []string{"bin"},
			wantErr: ErrBinariesNotFound,
		},
		{
			name:  "newest complete version under the search root",
			files: concat(all("root/9.6/bin"), all("root/15/bin"), []file{{name: "root/16/bin/initdb", mode: 0o755}, {name: "root/notes/x", mode: 0o644}}),
			want:  "root/15/bin",
		},
		{name: "PATH before the search root", files: concat(all("bin"), all("root/17/bin")), path: []string{"bin"}, want: "bin"},
		{
			name:    "not executable",
			files:   []file{{name: "root/15/bin/initdb", mode: 0o644}, {name: "root/15/bin/pg_ctl", mode: 0o644}, {name: "root/15/bin/postgres", mode: 0o644}},
			wantErr: ErrBinariesNotFound,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{"empty", "root"} {
				if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			for _, f := range tt.files {
				p := filepath.Join(dir, f.name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				var err error
				if f.link != "" {
					err = os.Symlink(filepath.Join(dir, f.link), p)
				} else {
					err = os.WriteFile(p, []byte("#!/bin/sh\n"), f.mode)
				}
				if err != nil {
					t.Fatal(err)
				}
			}
			var path []string
			for _, p := range tt.path {
				path = append(path, filepath.Join(dir, p))
			}

			got, err := findBinaries(strings.Join(path, string(filepath.ListSeparator)), filepath.Join(dir, "root"))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("error = %v, want %v", err, tt.wantErr)
			}
			want := ""
			if tt.want != "" {
				want = filepath.Join(dir, tt.want)
			}
			if got != want {
				t.Errorf("dir = %q, want %q", got, want)
			}
		})
	}
}

func TestErrBinariesNotFoundText(t *testing.T) {
	t.Setenv("PATH", "")
	_, err := findBinaries(os.Getenv("PATH"), t.TempDir())
	const want = "PostgreSQL server binaries (initdb, pg_ctl) not found: install them with `apt-get install postgresql` or put them on PATH, or set DATABASE_URL"
	if err == nil || err.Error() != want {
		t.Errorf("error = %v, want %q", err, want)
	}
}
