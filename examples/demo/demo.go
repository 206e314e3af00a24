// Package demo is `make demo`: it starts sluice-server on its private PostgreSQL and the
// example workloads, each with its own sidecar on its own loopback address, supervises them,
// and stops every one of them on Ctrl-C. The binaries come from one directory (bin/).
package demo

import (
	"context"
	"crypto/rand"
	"embed"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// workload is one example application and its sidecar.
type workload struct {
	service, version string
	addr             string
	serviceAccount   string
	// binary and app are the application's command line; {addr} is replaced.
	binary string
	app    []string
	// inbound lists the sidecar's PORT=APPPORT mappings.
	inbound []string
}

func bookinfo(service, version, addr string) workload {
	return workload{service: service, version: version, addr: addr, serviceAccount: "bookinfo-" + service,
		binary: "bookinfo", app: []string{service, "--addr", "{addr}:19080", "--version", version, "--name", service + "-" + version},
		inbound: []string{"9080=19080"}}
}

func echo(service, version, addr string) workload {
	return workload{service: service, version: version, addr: addr, serviceAccount: service, binary: "echo",
		app: []string{"--service", service, "--instance", service + "-" + version,
			"--http-addr", "{addr}:18080", "--grpc-addr", "{addr}:19090"},
		inbound: []string{"8080=18080", "9090=19090"}}
}

// topology is what the demo runs: Istio's Bookinfo, httpbin, and the echo pair. Callees start
// before their callers.
var topology = []workload{
	bookinfo("ratings", "v1", "127.0.0.9"),
	bookinfo("details", "v1", "127.0.0.5"),
	bookinfo("reviews", "v1", "127.0.0.6"),
	bookinfo("reviews", "v2", "127.0.0.7"),
	bookinfo("reviews", "v3", "127.0.0.8"),
	bookinfo("productpage", "v1", "127.0.0.4"),
	{service: "httpbin", version: "v1", addr: "127.0.0.11", serviceAccount: "httpbin", binary: "httpbin",
		app: []string{"--addr", "{addr}:18000", "--version", "v1"}, inbound: []string{"8000=18000"}},
	{service: "httpbin", version: "v2", addr: "127.0.0.12", serviceAccount: "httpbin", binary: "httpbin",
		app: []string{"--addr", "{addr}:18000", "--version", "v2"}, inbound: []string{"8000=18000"}},
	echo("b", "v1", "127.0.0.22"),
	echo("b", "v2", "127.0.0.23"),
	echo("a", "v1", "127.0.0.21"),
}

// The ingress gateway, and the product page through it: where the demo's traffic goes.
const (
	gatewayAddr = "127.0.0.10"
	productpage = "http://" + gatewayAddr + ":8080/productpage"
	// The gateway's identity: spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway.
	gatewayNamespace      = "istio-system"
	gatewayServiceAccount = "istio-ingressgateway"
)

// initialConfig is what the first run applies: Istio's bookinfo-gateway, the
// DestinationRules of every Bookinfo service, and a mesh-wide STRICT PeerAuthentication.
//
//go:embed config/*.yaml
var initialConfig embed.FS

// initialConfigFiles are initialConfig's files, in the order they are applied.
var initialConfigFiles = []string{"config/destination-rule-all.yaml", "config/bookinfo-gateway.yaml", "config/peer-authentication.yaml"}

// Run is sluice-demo's main.
func Run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sluice-demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	binDir := fs.String("bin", "bin", "directory holding sluice-server, sluice-proxy and the example binaries")
	dataDir := fs.String("data-dir", ".sluice", "the control plane's data directory (kept between runs)")
	httpAddr := fs.String("http-addr", "127.0.0.1:8080", "console and API address")
	xdsAddr := fs.String("xds-tls-addr", "127.0.0.1:15012", "the control plane's authenticated (TLS) xDS address, which every proxy joins with its workload token")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, b := range []string{"sluice-server", "sluice-proxy", "echo", "bookinfo", "httpbin"} {
		if _, err := os.Stat(filepath.Join(*binDir, b)); err != nil {
			return fmt.Errorf("%s is missing from %s: run `make demo` (it builds everything first)", b, *binDir)
		}
	}
	// Check every address before starting anything, so a clash fails cleanly.
	addrs := []string{*httpAddr, *xdsAddr}
	for _, w := range topology {
		addrs = append(addrs, w.addr+":15000", w.addr+":15001")
		for _, m := range w.inbound {
			port, app, _ := strings.Cut(m, "=")
			addrs = append(addrs, w.addr+":"+port, w.addr+":"+app)
		}
	}
	addrs = append(addrs, gatewayAddr+":8080", gatewayAddr+":15000")
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			return fmt.Errorf("%s is already in use (is another demo running?): stop whatever holds it, then run make demo again", a)
		}
		l.Close()
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	sup := &supervisor{binDir: *binDir, out: stderr, exited: make(chan *process, 64)}
	defer sup.stopAll()

	password, err := adminPassword(*dataDir)
	if err != nil {
		return err
	}
	server := sup.start("sluice-server", "sluice-server", []string{"--data-dir", *dataDir, "--http-addr", *httpAddr, "--xds-tls-addr", *xdsAddr},
		[]string{"SLUICE_ADMIN_PASSWORD=" + password})
	if err := waitHTTP(ctx, "http://"+*httpAddr+"/readyz", server, 2*time.Minute); err != nil {
		return fmt.Errorf("sluice-server did not become ready: %w", err)
	}
	api, err := signIn(ctx, *httpAddr, password)
	if err != nil {
		return err
	}
	mesh, err := prepareIdentities(ctx, api, *dataDir)
	if err != nil {
		return err
	}
	for _, w := range topology {
		name := w.service + "-" + w.version
		app := make([]string, len(w.app))
		for i, a := range w.app {
			app[i] = strings.ReplaceAll(a, "{addr}", w.addr)
		}
		sup.start(name, w.binary, app, []string{"HTTP_PROXY=http://" + w.addr + ":15001", "NO_PROXY="})
		args := []string{"--control-plane", *xdsAddr, "--namespace", "default", "--service", w.service,
			"--labels", "app=" + w.service + ",version=" + w.version, "--address", w.addr,
			"--service-account", w.serviceAccount}
		args = append(args, mesh.proxyArgs("default", w.serviceAccount)...)
		for _, m := range w.inbound {
			args = append(args, "--inbound", m)
		}
		proxy := sup.start(name+"-proxy", "sluice-proxy", args, nil)
		if err := waitHTTP(ctx, "http://"+w.addr+":15000/ready", proxy, time.Minute); err != nil {
			return fmt.Errorf("sidecar of %s did not become ready: %w", name, err)
		}
	}
	gw := sup.start("ingressgateway", "sluice-proxy", append([]string{"--control-plane", *xdsAddr, "--mode", "gateway",
		"--namespace", gatewayNamespace, "--service-account", gatewayServiceAccount,
		"--labels", "istio=ingressgateway,app=istio-ingressgateway", "--address", gatewayAddr}, mesh.proxyArgs(gatewayNamespace, gatewayServiceAccount)...), nil)
	if err := waitHTTP(ctx, "http://"+gatewayAddr+":15000/ready", gw, time.Minute); err != nil {
		return fmt.Errorf("the ingress gateway did not become ready: %w", err)
	}
	if err := applyInitialConfig(ctx, api, *dataDir); err != nil {
		return err
	}
	go generateTraffic(ctx)
	fmt.Fprintf(stdout, `
Sluice demo is running. The mesh runs mutual TLS (STRICT) with SPIFFE identities
(spiffe://cluster.local/ns/<namespace>/sa/<service account>) from its own CA.
  console and API   http://%s   sign in as admin, password %s
  Bookinfo          %s   (through the ingress gateway; a gentle load runs)
  a calls b         curl 'http://127.0.0.21:18080/call?url=http://b:8080/'
  a calls b (gRPC)  curl 'http://127.0.0.21:18080/grpc?target=b:9090'
  httpbin           curl -H 'Host: httpbin:8000' http://127.0.0.21:15001/headers   (through a's sidecar)
  a sidecar         http://127.0.0.4:15000/config_dump
  its certificate   http://127.0.0.4:15000/certs
State is kept in %s. Press Ctrl-C to stop everything.
`, *httpAddr, password, productpage, *dataDir)

	select {
	case <-ctx.Done():
		fmt.Fprintln(stdout, "stopping the demo...")
		return nil
	case p := <-sup.exited:
		return fmt.Errorf("%s exited unexpectedly (%v); stopping the demo", p.name, p.err)
	}
}

// applyInitialConfig applies the demo's starting configuration on the first run. Later runs
// keep whatever the configuration has become.
func applyInitialConfig(ctx context.Context, api *apiClient, dataDir string) error {
	marker := filepath.Join(dataDir, "demo-config-applied")
	if _, err := os.Stat(marker); err == nil {
		return nil
	}
	var docs []string
	for _, name := range initialConfigFiles {
		b, err := initialConfig.ReadFile(name)
		if err != nil {
			return fmt.Errorf("read the demo's %s: %w", name, err)
		}
		docs = append(docs, string(b))
	}
	if _, err := api.do(ctx, http.MethodPost, "/apply?message=demo+set-up", "application/yaml", strings.Join(docs, "\n---\n"), http.StatusOK); err != nil {
		return fmt.Errorf("apply the demo's configuration: %w", err)
	}
	return os.WriteFile(marker, []byte(strings.Join(initialConfigFiles, ", ")+" applied\n"), 0o644)
}

// adminPassword returns the demo's admin password: SLUICE_ADMIN_PASSWORD when set, or one
// generated on the first run and kept in the data directory (mode 0600) for the next ones.
func adminPassword(dataDir string) (string, error) {
	if p := os.Getenv("SLUICE_ADMIN_PASSWORD"); p != "" {
		return p, nil
	}
	file := filepath.Join(dataDir, "demo-admin-password")
	if b, err := os.ReadFile(file); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	if err := os.MkdirAll(dataDir, 0o755); err != nil {
		return "", fmt.Errorf("create %s: %w", dataDir, err)
	}
	buf := make([]byte, 12)
	if _, err := rand.Read(buf); err != nil {
		return "", err
	}
	p := "demo-" + hex.EncodeToString(buf)
	if err := os.WriteFile(file, []byte(p+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("keep the demo's admin password: %w", err)
	}
	return p, nil
}

// generateTraffic asks for the product page a few times a second, so that there is live
// traffic to watch; every third request is signed in as jason.
func generateTraffic(ctx context.Context) {
	jar, _ := cookiejar.New(nil)
	jason := &http.Client{Timeout: 10 * time.Second, Jar: jar}
	anon := &http.Client{Timeout: 10 * time.Second}
	login := func() {
		resp, err := jason.PostForm(strings.TrimSuffix(productpage, "/productpage")+"/login", url.Values{"username": {"jason"}})
		if err == nil {
			resp.Body.Close()
		}
	}
	login()
	tick := time.NewTicker(400 * time.Millisecond)
	defer tick.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		c := anon
		if n%3 == 0 {
			c = jason
		}
		if n%100 == 0 {
			login() // the session may have expired or productpage restarted
		}
		resp, err := c.Get(productpage)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	}
}

// supervisor owns the demo's processes.
type supervisor struct {
	binDir string
	out    io.Writer
	mu     sync.Mutex
	procs  []*process
	exited chan *process
}

type process struct {
	name string
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

func (s *supervisor) start(name, binary string, args, env []string) *process {
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(filepath.Join(s.binDir, binary), args...)
	cmd.Env = append(os.Environ(), env...)
	w := &prefixWriter{prefix: fmt.Sprintf("%-16s| ", name), out: s.out}
	cmd.Stdout, cmd.Stderr = w, w
	// Own process group: Ctrl-C reaches only the demo, which stops the rest in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	p := &process{name: name, cmd: cmd, done: make(chan struct{})}
	if err := cmd.Start(); err != nil {
		p.err = err
		close(p.done)
		s.exited <- p
		return p
	}
	s.procs = append(s.procs, p)
	go func() {
		p.err = cmd.Wait()
		close(p.done)
		s.exited <- p
	}()
	return p
}

// stopAll stops the workloads and their sidecars together (sidecars drain in parallel),
// then the control plane, which was started first.
func (s *supervisor) stopAll() {
	s.mu.Lock()
	procs := append([]*process(nil), s.procs...)
	s.mu.Unlock()
	if len(procs) == 0 {
		return
	}
	var wg sync.WaitGroup
	for _, p := range procs[1:] {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.stop()
		}()
	}
	wg.Wait()
	procs[0].stop()
}

// stop sends SIGTERM and waits; a process still running after 30 s is killed.
func (p *process) stop() {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

func waitHTTP(ctx context.Context, url string, p *process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		resp, err := c.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s answered %d", url, resp.StatusCode)
		}
		select {
		case <-p.done:
			return fmt.Errorf("%s exited: %v", p.name, p.err)
		case <-ctx.Done():
			return errors.New("interrupted")
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return err
		}
	}
}

// prefixWriter prefixes each line with the process's name.
type prefixWriter struct {
	prefix string
	out    io.Writer
	mu     sync.Mutex
	buf    []byte
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, b...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			return len(b), nil
		}
		fmt.Fprintf(w.out, "%s%s\n", w.prefix, w.buf[:i])
		w.buf = w.buf[i+1:]
	}
}
