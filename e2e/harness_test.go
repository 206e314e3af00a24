// Package e2e tests Sluice as users run it: it builds the real binaries once, starts a
// throwaway PostgreSQL, sluice-server, example applications and their sidecars as separate
// processes on their own loopback addresses, and talks to them only through their public
// interfaces (HTTP, gRPC, the command line).
package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/internal/pgtest"
)

// binDir holds the binaries built once by TestMain.
var binDir string

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "sluice-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	root, err := moduleRoot()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	cmd := exec.Command("go", "build", "-o", dir+"/",
		"./cmd/sluice-server", "./cmd/sluice-proxy", "./cmd/sluicectl", "./cmd/sluice-demo",
		"./examples/echo", "./examples/bookinfo", "./examples/httpbin")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: build binaries:", err)
		return 1
	}
	binDir = dir
	return pgtest.Main(m)
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out))), nil
}

// addrSeq hands out loopback addresses, one per workload, so that every workload can use
// the well-known ports. The third octet comes from the process id so that two test runs on
// one machine do not collide.
var addrSeq atomic.Uint32

func nextAddr() string {
	n := addrSeq.Add(1)
	return fmt.Sprintf("127.%d.%d.%d", 100+os.Getpid()%100, n/250, 2+n%250)
}

// freePort returns a free TCP port on 127.0.0.1.
func freePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// proc is a process started by a test; it is stopped when the test ends.
type proc struct {
	t    testing.TB
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set when done is closed
	out  *logTail
}

// start runs binary with args and env; its output goes to the test log.
func start(t testing.TB, name, binary string, args []string, env ...string) *proc {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, binary), args...)
	cmd.Env = append(os.Environ(), env...)
	p := &proc{t: t, name: name, cmd: cmd, done: make(chan struct{}), out: &logTail{t: t, prefix: name}}
	cmd.Stdout, cmd.Stderr = p.out, p.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() { p.stop(syscall.SIGTERM, 15*time.Second) })
	return p
}

// stop sends sig and waits up to wait for the process to exit, then kills it.
func (p *proc) stop(sig syscall.Signal, wait time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(sig)
	select {
	case <-p.done:
	case <-time.After(wait):
		p.t.Logf("%s did not exit %v after %v; killing it", p.name, wait, sig)
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// kill ends the process at once, as a crash would.
func (p *proc) kill() {
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

// exited reports whether the process has ended.
func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// logTail copies a process's output to the test log, line by line, and keeps the last lines.
type logTail struct {
	t      testing.TB
	prefix string
	mu     sync.Mutex
	buf    []byte
	lines  []string
}

func (l *logTail) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, b...)
	for {
		i := strings.IndexByte(string(l.buf), '\n')
		if i < 0 {
			break
		}
		line := string(l.buf[:i])
		l.buf = l.buf[i+1:]
		l.lines = append(l.lines, line)
		if len(l.lines) > 200 {
			l.lines = l.lines[1:]
		}
		l.t.Logf("[%s] %s", l.prefix, line)
	}
	return len(b), nil
}

// text returns the output kept so far.
func (l *logTail) text() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n") + string(l.buf)
}

// eventually retries check until it succeeds or timeout passes. The timeout only bounds a
// failing test; nothing asserts how long success took.
func eventually(t testing.TB, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("%s: still failing after %v: %v", what, timeout, err)
}

// adminPassword is the first admin's password in every test server.
const adminPassword = "e2e-admin-password"

// controlPlane is a running sluice-server.
type controlPlane struct {
	*proc
	httpAddr, xdsAddr string
	// api is signed in as admin (a session cookie); csrf goes with its writes.
	api  *http.Client
	csrf string
}

// startServer starts sluice-server on free ports with the given extra flags and environment.
func startServer(t testing.TB, dbURL string, flags ...string) *controlPlane {
	t.Helper()
	cp := &controlPlane{httpAddr: freePort(t), xdsAddr: freePort(t)}
	return restartServer(t, cp, dbURL, flags...)
}

// restartServer starts sluice-server again on cp's ports.
func restartServer(t testing.TB, cp *controlPlane, dbURL string, flags ...string) *controlPlane {
	t.Helper()
	args := append([]string{"--http-addr", cp.httpAddr, "--xds-addr", cp.xdsAddr, "--insecure-xds", "--xds-tls-addr", "127.0.0.1:0", "--log-level", "debug"}, flags...)
	env := []string{"SLUICE_ADMIN_PASSWORD=" + adminPassword}
	if dbURL != "" {
		// With DATABASE_URL the data directory holds only the CA key file and the trust
		// bundle: one shared directory outside the source tree keeps a restarted server's key.
		env = append(env, "DATABASE_URL="+dbURL, "SLUICE_DATA_DIR="+filepath.Join(os.TempDir(), "sluice-e2e-data"))
	}
	cp.proc = start(t, "server", "sluice-server", args, env...)
	eventually(t, 60*time.Second, "sluice-server ready", func() error {
		if cp.exited() {
			t.Fatalf("sluice-server exited: %v\n%s", cp.err, cp.out.text())
		}
		return httpOK("http://" + cp.httpAddr + "/readyz")
	})
	cp.login(t)
	return cp
}

// login signs the test's API client in as admin.
func (cp *controlPlane) login(t testing.TB) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	cp.api = &http.Client{Timeout: 20 * time.Second, Jar: jar, Transport: client.Transport}
	resp, err := cp.api.Post("http://"+cp.httpAddr+"/api/v1/login", "application/json",
		strings.NewReader(`{"username":"admin","password":"`+adminPassword+`"}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		CSRFToken string `json:"csrfToken"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %d %v", resp.StatusCode, err)
	}
	cp.csrf = out.CSRFToken
}

// workload is an echo application with its sidecar.
type workload struct {
	addr    string
	app     *proc
	sidecar *proc
}

// startWorkload starts an echo instance on its own loopback address with a sidecar that
// serves it on port 8080 (HTTP) and 9090 (gRPC).
func startWorkload(t testing.TB, cp *controlPlane, service, version string) *workload {
	t.Helper()
	w := &workload{addr: nextAddr()}
	instance := fmt.Sprintf("%s-%s-%s", service, version, w.addr)
	w.app = start(t, instance, "echo",
		[]string{"--service", service, "--instance", instance,
			"--http-addr", w.addr + ":18080", "--grpc-addr", w.addr + ":19090"},
		"HTTP_PROXY=http://"+w.addr+":15001", "NO_PROXY=")
	w.sidecar = startSidecar(t, cp, w.addr, service, version, "--inbound", "8080=18080", "--inbound", "9090=19090")
	waitReady(t, cp, w.addr)
	return w
}

// waitReady waits until the sidecars at addrs report their applications ready. An endpoint
// serves before its sidecar's first probe passes, and a "not ready" from a probe that ran
// too early takes it out of the endpoints later, in the middle of a test's checks.
func waitReady(t testing.TB, cp *controlPlane, addrs ...string) {
	t.Helper()
	eventually(t, 30*time.Second, fmt.Sprintf("the sidecars at %v report their applications ready", addrs), func() error {
		ready := map[string]bool{}
		for _, p := range cp.proxies(t).Proxies {
			ready[p.Address] = ready[p.Address] || p.Health.Ready
		}
		for _, a := range addrs {
			if !ready[a] {
				return fmt.Errorf("%s not ready", a)
			}
		}
		return nil
	})
}

// proxyLogLevel is the sidecars' log level: debug for tests, whose logs explain a failure;
// benchmarks lower it so that logging does not weigh on what they measure.
var proxyLogLevel = "debug"

// startSidecar starts sluice-proxy for a workload and waits until it is ready.
func startSidecar(t testing.TB, cp *controlPlane, addr, service, version string, extra ...string) *proc {
	t.Helper()
	args := append([]string{"--control-plane", cp.xdsAddr, "--namespace", "default",
		"--service", service, "--labels", "app=" + service + ",version=" + version,
		"--address", addr, "--service-account", service, "--log-level", proxyLogLevel}, extra...)
	p := start(t, "proxy "+service+"-"+version+"@"+addr, "sluice-proxy", args)
	eventually(t, 30*time.Second, "sidecar "+addr+" ready", func() error {
		if p.exited() {
			t.Fatalf("sidecar exited: %v\n%s", p.err, p.out.text())
		}
		return httpOK("http://" + addr + ":15000/ready")
	})
	return p
}

var client = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 16}}

func httpOK(url string) error {
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %d %s", url, resp.StatusCode, body)
	}
	return nil
}

// getJSON fetches url and decodes its JSON body into v, returning the status code.
func getJSON(ctx context.Context, url string, v any) (int, error) {
	return getJSONWith(client, url, v)
}

// getJSONWith is getJSON with a given client (such as a signed-in one).
func getJSONWith(c *http.Client, url string, v any) (int, error) {
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return resp.StatusCode, err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return resp.StatusCode, fmt.Errorf("GET %s: %d: not JSON: %q", url, resp.StatusCode, body)
	}
	return resp.StatusCode, nil
}

// callResult is what echo's /call answers.
type callResult struct {
	Status int    `json:"status"`
	Body   string `json:"body"`
	Reason string `json:"reason"`
	Error  string `json:"error"`
}

// hello is what echo answers on /.
type hello struct {
	Service  string `json:"service"`
	Instance string `json:"instance"`
	Host     string `json:"host"`
}

// callThrough asks workload from's application to call url through its sidecar, and returns
// the answering instance, or an error naming what went wrong.
func callThrough(from *workload, url string) (string, error) {
	var res callResult
	code, err := getJSON(context.Background(), "http://"+from.addr+":18080/call?url="+url, &res)
	if err != nil {
		return "", err
	}
	if code != http.StatusOK || res.Status != http.StatusOK {
		return "", fmt.Errorf("call %s: app %d, upstream %d %q (reason %q) %s", url, code, res.Status, res.Body, res.Reason, res.Error)
	}
	var h hello
	if err := json.Unmarshal([]byte(res.Body), &h); err != nil {
		return "", fmt.Errorf("call %s: body %q: %w", url, res.Body, err)
	}
	return h.Instance, nil
}

// write sends a signed-in write and fails the test unless it answers want; it returns the
// answer's body.
func (cp *controlPlane) write(t testing.TB, method, path, contentType, body string, want int) []byte {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+cp.httpAddr+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	req.Header.Set("X-CSRF-Token", cp.csrf)
	resp, err := cp.api.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, b, want)
	}
	return b
}

// revisionOf reads the revision a write's answer committed.
func revisionOf(t testing.TB, answer []byte) int64 {
	t.Helper()
	var out struct {
		Revision int64 `json:"revision"`
	}
	if err := json.Unmarshal(answer, &out); err != nil {
		t.Fatalf("answer %s: %v", answer, err)
	}
	return out.Revision
}
