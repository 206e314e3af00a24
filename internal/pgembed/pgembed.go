// Package pgembed runs a private PostgreSQL cluster from the PostgreSQL server binaries
// installed on the machine. sluice-server uses it when DATABASE_URL is unset, and the test
// helper pgtest uses it for throwaway databases.
//
// The cluster lives in DataDir/pg:
//
//	DataDir/pg/password      the superuser's generated password (mode 0600)
//	DataDir/pg/postgres.log  the server log of the current run (.1: the run before)
//	DataDir/pg/data/         the PostgreSQL data directory (PGDATA)
//
// It listens on 127.0.0.1 only, on a port chosen free at each start, with unix sockets
// disabled, and every connection authenticates with scram-sha-256.
//
// initdb and postgres refuse to run as root. When the process runs as root, PostgreSQL runs as
// the user "postgres" (or "nobody" if there is none), which owns DataDir/pg. If that user cannot
// reach DataDir (some directory on the way lacks search permission for it, as /root usually
// does), the cluster goes to /var/lib/sluice/<first 16 hex digits of sha256(absolute
// DataDir)>/pg instead, and DataDir/pg-location records that place so later starts use it too.
// A DataDir that Start creates itself is made reachable (mode 0710, group of that user), so
// relocation only happens for directories made by someone else.
//
// PostgreSQL runs in a process group of its own, so a Ctrl-C meant for sluice does not reach
// it and Stop can shut it down cleanly. A sluice that dies without calling Stop leaves it
// running; the next Start then reports the data directory as in use.
package pgembed

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// DefaultDatabase is the database Start creates if it is missing; sluice-server connects to
// c.URL(DefaultDatabase).
const DefaultDatabase = "sluice"

// superuser is the cluster's only role.
const superuser = "sluice"

// Names inside the cluster directory.
const (
	passwordFile = "password"
	logFile      = "postgres.log"
	pgdataDir    = "data"
	confFile     = "sluice.conf" // included from postgresql.conf, rewritten at every start
)

// Options configures Start.
type Options struct {
	// DataDir is sluice's data directory; the cluster lives in DataDir/pg (see the package
	// documentation for where it goes instead when running as root). Required. It is created
	// if missing.
	DataDir string

	// Logger receives start, stop and recovery events. If nil, nothing is logged.
	Logger *slog.Logger

	// Durable keeps PostgreSQL's crash safety. If false, as suits tests, fsync,
	// synchronous_commit and full_page_writes are off: much faster, but a machine crash may
	// corrupt the cluster.
	Durable bool

	// BinDir is the directory holding initdb, pg_ctl and postgres. If empty, FindBinaries
	// finds it.
	BinDir string

	// relocateBase replaces /var/lib/sluice, for tests.
	relocateBase string
}

// Cluster is a running PostgreSQL cluster started by Start. Its methods are safe for
// concurrent use.
type Cluster struct {
	dataDir  string // Options.DataDir, absolute: what users know the cluster by
	dir      string // the cluster directory
	pgdata   string
	binDir   string
	as       *runAs
	password string
	port     int
	log      *slog.Logger

	mu      sync.Mutex
	stopped bool
}

// Start starts the cluster of o.DataDir and returns once it accepts connections and database
// DefaultDatabase exists. It creates the cluster (initdb) the first time and reuses it after.
// A postmaster.pid left by a killed run is removed when nothing runs on the cluster any more;
// if a PostgreSQL does run on it, Start fails. If Start fails after PostgreSQL started, it stops
// it again. Stop the returned cluster with Stop.
func Start(ctx context.Context, o Options) (*Cluster, error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.DataDir == "" {
		return nil, errors.New("start PostgreSQL: Options.DataDir is empty: pass the directory that should hold the cluster")
	}
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, fmt.Errorf("start PostgreSQL: resolve data directory %s: %w", o.DataDir, err)
	}
	binDir := o.BinDir
	if binDir == "" {
		if binDir, err = FindBinaries(); err != nil {
			return nil, err
		}
	}
	as, err := lookupRunAs()
	if err != nil {
		return nil, err
	}
	if err := makeDataDir(dataDir, as); err != nil {
		return nil, err
	}
	base := o.relocateBase
	if base == "" {
		base = defaultRelocateBase
	}
	dir, relocated, blocked, err := clusterDir(dataDir, as, base)
	if err != nil {
		return nil, err
	}
	if blocked != "" {
		log.Warn("placed the PostgreSQL cluster outside the data directory, which its user cannot reach",
			"data_dir", dataDir, "cluster_dir", dir, "os_user", as.name, "blocked_at", blocked)
	}

	c := &Cluster{
		dataDir: dataDir,
		dir:     dir,
		pgdata:  filepath.Join(dir, pgdataDir),
		binDir:  binDir,
		as:      as,
		log:     log,
	}
	if err := c.prepareDir(); err != nil {
		return nil, err
	}
	if err := c.clearStalePid(ctx); err != nil {
		return nil, err
	}
	if err := c.loadPassword(); err != nil {
		return nil, err
	}
	if err := c.initdb(ctx, o.Durable); err != nil {
		return nil, err
	}
	if err := c.start(ctx, o.Durable); err != nil {
		return nil, err
	}
	if err := c.createDatabase(ctx); err != nil {
		c.stopAfterFailure(ctx, c.port)
		return nil, err
	}
	attrs := []any{"data_dir", dataDir, "cluster_dir", dir, "port", c.port, "durable", o.Durable}
	if relocated {
		attrs = append(attrs, "relocated", true)
	}
	if as != nil {
		attrs = append(attrs, "os_user", as.name)
	}
	log.Info("postgres started", attrs...)
	return c, nil
}

// URL returns a connection URL for database on the cluster, password included.
func (c *Cluster) URL(database string) string {
	u := url.URL{
		Scheme:   "postgres",
		User:     url.UserPassword(superuser, c.password),
		Host:     net.JoinHostPort("127.0.0.1", strconv.Itoa(c.port)),
		Path:     "/" + database,
		RawQuery: "sslmode=disable",
	}
	return u.String()
}

// Dir returns the directory holding the cluster: DataDir/pg, or where it was relocated to.
func (c *Cluster) Dir() string { return c.dir }

// Stop shuts the cluster down (pg_ctl stop -m fast: sessions are disconnected, the cluster is
// checkpointed) and waits for it to exit. If that fails, it falls back to an immediate
// shutdown, after which the next start runs crash recovery. Calling Stop again does nothing.
func (c *Cluster) Stop(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped {
		return nil
	}
	if err := c.pgctlStop(ctx, "fast"); err != nil {
		// The fast shutdown failed or ran out of time; do not leave a server behind.
		ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer cancel()
		if err2 := c.pgctlStop(ictx, "immediate"); err2 != nil {
			return fmt.Errorf("stop PostgreSQL in %s: %w (immediate shutdown: %v); see %s", c.dir, err, err2, filepath.Join(c.dir, logFile))
		}
		c.log.Warn("fast shutdown failed; stopped postgres with an immediate shutdown",
			"cluster_dir", c.dir, "error", err)
	} else {
		c.log.Info("postgres stopped", "cluster_dir", c.dir)
	}
	c.stopped = true
	return nil
}

// Kill ends whatever PostgreSQL still runs on the cluster of o.DataDir, immediately and
// without a checkpoint, and waits for its processes to exit. It is for throwaway clusters whose
// owner died without calling Stop; Kill on a cluster that does not run does nothing. It needs
// /proc (Linux) to find the processes.
func Kill(ctx context.Context, o Options) error {
	dataDir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return err
	}
	dir := filepath.Join(dataDir, "pg")
	if b, err := os.ReadFile(filepath.Join(dataDir, locationFile)); err == nil {
		dir = strings.TrimSpace(string(b))
	}
	pgdata := filepath.Join(dir, pgdataDir)
	pids, ok := processesIn(pgdata)
	if !ok {
		return errors.New("kill PostgreSQL: /proc is not available to find its processes")
	}
	if len(pids) == 0 {
		return nil
	}
	// SIGQUIT makes the postmaster end its children and release its shared memory; the
	// SIGKILL below is for whatever is left when it cannot.
	if pf, err := readPidFile(filepath.Join(pgdata, "postmaster.pid")); err == nil && slices.Contains(pids, pf.pid) {
		_ = syscall.Kill(pf.pid, syscall.SIGQUIT)
	}
	killAt := time.Now().Add(5 * time.Second)
	for {
		pids, _ = processesIn(pgdata)
		if len(pids) == 0 {
			return nil
		}
		if time.Now().After(killAt) {
			for _, pid := range pids {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kill PostgreSQL in %s: processes %v still run: %w", dir, pids, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// makeDataDir creates the data directory if it is missing. Running as root, it lets the group
// of the PostgreSQL user search it, so that the cluster can stay inside.
func makeDataDir(dataDir string, as *runAs) error {
	fi, err := os.Stat(dataDir)
	switch {
	case err == nil && fi.IsDir():
		return nil
	case err == nil:
		return fmt.Errorf("data directory %s is not a directory: pass a directory", dataDir)
	case !errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("data directory %s: %w", dataDir, err)
	}
	if err := os.MkdirAll(filepath.Dir(dataDir), 0o755); err != nil {
		return fmt.Errorf("create data directory %s: %w", dataDir, err)
	}
	if err := os.Mkdir(dataDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create data directory %s: %w", dataDir, err)
	}
	if as == nil {
		return nil
	}
	if err := os.Chown(dataDir, -1, int(as.gid)); err != nil {
		return fmt.Errorf("create data directory %s: %w", dataDir, err)
	}
	return os.Chmod(dataDir, 0o710)
}

// prepareDir creates the cluster directory and, running as root, makes sure the PostgreSQL
// user owns all of it (it may have been made by another user before).
func (c *Cluster) prepareDir() error {
	if err := os.Mkdir(c.dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("create cluster directory %s: %w", c.dir, err)
	}
	if c.as == nil {
		return nil
	}
	fi, err := os.Stat(c.dir)
	if err != nil {
		return fmt.Errorf("cluster directory %s: %w", c.dir, err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid == c.as.uid && st.Gid == c.as.gid {
		return nil
	}
	err = filepath.WalkDir(c.dir, func(path string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		return c.as.chown(path)
	})
	if err != nil {
		return fmt.Errorf("give cluster directory %s to user %s: %w", c.dir, c.as.name, err)
	}
	return nil
}

// clearStalePid deals with a postmaster.pid left behind: it is an error if processes still run
// on the cluster, and removed otherwise, so that a pid since reused by another process cannot
// block the start.
func (c *Cluster) clearStalePid(ctx context.Context) error {
	path := filepath.Join(c.pgdata, "postmaster.pid")
	pf, err := readPidFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	pids, ok := processesIn(c.pgdata)
	if !ok {
		return nil // without /proc, leave it to pg_ctl and postgres
	}
	// Backends of a postmaster that was killed exit as soon as they notice; give them a moment
	// rather than failing a restart right after a crash.
	for wait := time.Now().Add(5 * time.Second); len(pids) > 0 && !slices.Contains(pids, pf.pid) && time.Now().Before(wait); {
		select {
		case <-ctx.Done():
			return fmt.Errorf("start PostgreSQL in %s: %w", c.dir, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
		pids, _ = processesIn(c.pgdata)
	}
	if len(pids) > 0 {
		pid := pids[0]
		if slices.Contains(pids, pf.pid) {
			pid = pf.pid
		}
		return fmt.Errorf("data directory %s is in use by another running PostgreSQL (pid %d); stop it or use another --data-dir", c.dataDir, pid)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove stale %s: %w", path, err)
	}
	c.log.Warn("removed stale postmaster.pid", "cluster_dir", c.dir, "pid", pf.pid)
	return nil
}

// loadPassword reads the superuser's password, generating it for a cluster yet to be created.
func (c *Cluster) loadPassword() error {
	path := filepath.Join(c.dir, passwordFile)
	b, err := os.ReadFile(path)
	if err == nil {
		c.password = strings.TrimSpace(string(b))
		if c.password == "" {
			return fmt.Errorf("password file %s is empty: restore it, or remove %s to start a new, empty cluster", path, c.dir)
		}
		return nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("read password file: %w", err)
	}
	if initialized(c.pgdata) {
		return fmt.Errorf("cluster %s has no password file %s: restore it, or remove %s to start a new, empty cluster", c.pgdata, path, c.dir)
	}
	c.password = rand.Text()
	if err := writeFileAtomic(path, []byte(c.password+"\n"), 0o600); err != nil {
		return fmt.Errorf("write password file: %w", err)
	}
	return c.as.chown(path)
}

func initialized(pgdata string) bool {
	_, err := os.Stat(filepath.Join(pgdata, "PG_VERSION"))
	return err == nil
}

// initdb creates the cluster unless it exists. It builds it beside the data directory and
// renames it into place, so a killed initdb never leaves a half-made cluster that looks real.
func (c *Cluster) initdb(ctx context.Context, durable bool) error {
	if initialized(c.pgdata) {
		return nil
	}
	if err := os.Remove(c.pgdata); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%s exists but holds no PostgreSQL cluster: remove it to create one", c.pgdata)
	}
	tmp := c.pgdata + ".init"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("remove %s left by an interrupted initdb: %w", tmp, err)
	}
	args := []string{
		"-D", tmp,
		"-U", superuser,
		"--auth=scram-sha-256",
		"--pwfile=" + filepath.Join(c.dir, passwordFile),
		"-E", "UTF8",
		"--locale=C",
	}
	if !durable {
		args = append(args, "--no-sync")
	}
	start := time.Now()
	if out, err := c.command(ctx, "initdb", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("initdb %s failed: %w: %s", c.dir, err, tail(out, 10))
	}
	f, err := os.OpenFile(filepath.Join(tmp, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("configure new cluster: %w", err)
	}
	_, err = fmt.Fprintf(f, "\n# Added by sluice. %s sets the address and port at every start;\n# settings after this line override it.\ninclude '%s'\n", confFile, confFile)
	if err2 := f.Close(); err == nil {
		err = err2
	}
	if err != nil {
		return fmt.Errorf("configure new cluster: %w", err)
	}
	if err := os.Rename(tmp, c.pgdata); err != nil {
		return fmt.Errorf("move new cluster into place: %w", err)
	}
	c.log.Info("created postgres cluster", "cluster_dir", c.dir, "elapsed", time.Since(start))
	return nil
}

// start runs pg_ctl start on a free port. Another process may take the port between choosing
// and binding it, so a bind failure is retried on a new port.
func (c *Cluster) start(ctx context.Context, durable bool) error {
	logPath := filepath.Join(c.dir, logFile)
	// Keep the previous run's log for a post-mortem, and keep the log from growing forever.
	if err := os.Rename(logPath, logPath+".1"); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rotate %s: %w", logPath, err)
	}
	const attempts = 3
	for attempt := 1; ; attempt++ {
		port, err := freePort()
		if err != nil {
			return fmt.Errorf("start PostgreSQL: pick a port: %w", err)
		}
		if err := c.writeConf(port, durable); err != nil {
			return err
		}
		out, err := c.command(ctx, "pg_ctl", "start",
			"-D", c.pgdata, "-l", logPath, "-w", "-t", timeoutSeconds(ctx), "-s").CombinedOutput()
		if err == nil {
			c.port = port
			return nil
		}
		c.stopAfterFailure(ctx, port)
		logTail := tail(readFileTail(logPath), 15)
		if attempt < attempts && ctx.Err() == nil && strings.Contains(logTail, "could not bind") {
			c.log.Warn("postgres port was taken; retrying on another", "port", port)
			continue
		}
		// pg_ctl's first line says what failed ("could not start server"); the rest of its
		// output only points at the log, whose tail follows.
		msg, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
		msg = strings.TrimPrefix(msg, "pg_ctl: ")
		if msg == "" {
			msg = err.Error()
		}
		return fmt.Errorf("PostgreSQL in %s did not start (pg_ctl: %s); fix the cause shown in the last lines of %s:\n%s",
			c.dir, msg, logPath, logTail)
	}
}

// writeConf writes the settings that change from start to start, or that sluice relies on.
func (c *Cluster) writeConf(port int, durable bool) error {
	safety := "off"
	if durable {
		safety = "on"
	}
	conf := fmt.Sprintf(`# Written by sluice at every start: edits are lost.
listen_addresses = '127.0.0.1'
port = %d
# Sockets are off: the only way in is TCP on loopback, with a password.
unix_socket_directories = ''
fsync = %s
synchronous_commit = %s
full_page_writes = %s
`, port, safety, safety, safety)
	path := filepath.Join(c.pgdata, confFile)
	if err := writeFileAtomic(path, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return c.as.chown(path)
}

// stopAfterFailure stops the server that a failed start on port left running, if any. It
// checks the port in postmaster.pid so that it never stops a server another process started
// on the same cluster meanwhile.
func (c *Cluster) stopAfterFailure(ctx context.Context, port int) {
	pf, err := readPidFile(filepath.Join(c.pgdata, "postmaster.pid"))
	if err != nil || pf.port != port {
		return
	}
	// The caller's context may be what failed the start; the clean-up needs its own time.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := c.pgctlStop(sctx, "immediate"); err != nil {
		c.log.Error("could not stop postgres after a failed start", "cluster_dir", c.dir, "pid", pf.pid, "error", err)
	}
}

// pgctlStop runs pg_ctl stop in the given shutdown mode. A server that is not running counts as
// stopped.
func (c *Cluster) pgctlStop(ctx context.Context, mode string) error {
	out, err := c.command(ctx, "pg_ctl", "stop",
		"-D", c.pgdata, "-m", mode, "-w", "-t", timeoutSeconds(ctx), "-s").CombinedOutput()
	if err == nil {
		return nil
	}
	if _, serr := os.Stat(filepath.Join(c.pgdata, "postmaster.pid")); errors.Is(serr, fs.ErrNotExist) {
		return nil
	}
	return fmt.Errorf("pg_ctl stop -m %s: %w: %s", mode, err, strings.TrimSpace(string(out)))
}

// createDatabase creates DefaultDatabase if it is missing.
func (c *Cluster) createDatabase(ctx context.Context) error {
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		return fmt.Errorf("connect to PostgreSQL in %s: %w; see %s", c.dir, err, filepath.Join(c.dir, logFile))
	}
	defer conn.Close(context.WithoutCancel(ctx))
	var exists bool
	err = conn.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)", DefaultDatabase).Scan(&exists)
	if err == nil && !exists {
		_, err = conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{DefaultDatabase}.Sanitize())
	}
	if err != nil {
		return fmt.Errorf("create database %s in %s: %w", DefaultDatabase, c.dir, err)
	}
	return nil
}

// command prepares one of the PostgreSQL programs: as the PostgreSQL user when running as
// root, in the cluster directory (which that user can enter, unlike maybe the working
// directory), without PG* variables that could redirect it, and in its own process group so
// that a Ctrl-C meant for sluice does not kill the server before Stop shuts it down cleanly.
func (c *Cluster) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(c.binDir, name), args...)
	cmd.Dir = c.dir
	cmd.Env = childEnv()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Credential: c.as.credential()}
	return cmd
}

func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_ALL=") {
			continue
		}
		env = append(env, kv)
	}
	// English messages: start() looks for "could not bind" in the log.
	return append(env, "LC_ALL=C")
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// timeoutSeconds is pg_ctl's -t: the time left before ctx's deadline, else five minutes, which
// leaves room for crash recovery of a large cluster.
func timeoutSeconds(ctx context.Context) string {
	d := 5 * time.Minute
	if dl, ok := ctx.Deadline(); ok {
		d = time.Until(dl)
	}
	return strconv.Itoa(max(1, int((d+time.Second-1)/time.Second)))
}

// readFileTail returns up to the last 16 KiB of a file; a missing file reads as empty.
func readFileTail(path string) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	const most = 16 << 10
	if fi, err := f.Stat(); err == nil && fi.Size() > most {
		_, _ = f.Seek(-most, io.SeekEnd)
	}
	b, _ := io.ReadAll(f)
	return b
}

// tail returns the last n lines of out, indented, for an error message.
func tail(out []byte, n int) string {
	lines := strings.Split(strings.TrimSpace(string(bytes.ToValidUTF8(out, nil))), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	if len(lines) == 1 && lines[0] == "" {
		return "  (empty)"
	}
	return "  " + strings.Join(lines, "\n  ")
}
