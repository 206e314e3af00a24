package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// child is a process the driver started; stop ends it.
type child struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set when done is closed
	log  string
}

// children starts processes, pinned or not, logging each to a file of its own in dir, and
// stops whatever is still running at the end.
type children struct {
	dir   string
	pin   bool // pin started processes to CPU 0 with taskset
	mu    sync.Mutex
	procs []*child
}

// start runs path with args and env. A pinned process runs under `taskset -c 0`, which execs
// it, so the pid is the program's own.
func (cs *children) start(name string, pinned bool, path string, args []string, env ...string) (*child, error) {
	// A restarted process's log follows its earlier run's.
	logPath := filepath.Join(cs.dir, sanitize(name)+".log")
	f, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer f.Close()
	var cmd *exec.Cmd
	if pinned && cs.pin {
		cmd = exec.Command("taskset", append([]string{"-c", "0", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, done: make(chan struct{}), log: logPath}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	cs.mu.Lock()
	cs.procs = append(cs.procs, c)
	cs.mu.Unlock()
	return c, nil
}

// pid is the process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// failure describes an exited process with the end of its log.
func (c *child) failure() error {
	b, _ := os.ReadFile(c.log)
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return fmt.Errorf("%s exited (%v); the end of %s:\n%s", c.name, c.err, c.log, b)
}

// stop sends SIGTERM and waits up to wait, then kills the process group.
func (c *child) stop(wait time.Duration) {
	if c.exited() {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(wait):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
	}
}

// pids returns the process ids of every child still running, with their own children
// (nginx's workers).
func (cs *children) pids() []int {
	cs.mu.Lock()
	procs := slices.Clone(cs.procs)
	cs.mu.Unlock()
	var out []int
	for _, c := range procs {
		if !c.exited() {
			out = append(out, withChildren(c.pid())...)
		}
	}
	return out
}

// stopAll stops every process still running, newest first.
func (cs *children) stopAll() {
	cs.mu.Lock()
	procs := cs.procs
	cs.procs = nil
	cs.mu.Unlock()
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].stop(15 * time.Second)
	}
}

// waitFor retries check every 50 ms until it succeeds, c exits, or timeout passes.
func waitFor(ctx context.Context, c *child, timeout time.Duration, what string, check func() error) error {
	deadline := time.Now().Add(timeout)
	var err error
	for {
		if c != nil && c.exited() {
			return fmt.Errorf("waiting for %s: %w", what, c.failure())
		}
		if err = check(); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("waiting for %s: still failing after %v: %w", what, timeout, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s: %w", what, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

var plainClient = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}

// httpOK fails unless GET url answers 200.
func httpOK(url string) error {
	resp, err := plainClient.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1000))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return nil
}

// freePort returns a free TCP port on host.
func freePort(host string) (string, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
	if err != nil {
		return "", fmt.Errorf("find a free port on %s: %w", host, err)
	}
	defer l.Close()
	return strconv.Itoa(l.Addr().(*net.TCPAddr).Port), nil
}

// sanitize makes name usable as a file name.
func sanitize(name string) string {
	b := []byte(name)
	for i, c := range b {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			b[i] = '_'
		}
	}
	return string(b)
}

// errSkipped marks a reference server that is not installed and could not be.
var errSkipped = errors.New("skipped")
