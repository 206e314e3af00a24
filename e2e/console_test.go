package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/internal/pgtest"
)

// The console's users in TestConsole, one per purpose: sluice-server allows each user only a
// few sign-ins a minute, and each step of a user signing in again counts.
var consoleUsers = []struct{ name, role string }{
	{"alice", "admin"},   // the main browser session, shared by most steps
	{"bob", "admin"},     // changes a resource behind alice's back
	{"carol", "viewer"},  // keyboard only, and sees no control she may not use
	{"dave", "operator"}, // signs out and in again
	{"erin", "viewer"},   // sees the traffic controls disabled, and is refused a write
}

const consolePassword = "console-e2e-password"

// TestConsole drives the web console in Chromium against a real sluice-server: the steps are
// e2e/console/console.mjs, which finds everything by role and label, and this test checks
// what they did through the REST API. Screenshots of each page go to e2e/screenshots/.
//
// The server binary embeds the console as web/dist held it when TestMain built it, so build
// the console first: `make test` and `make test-e2e` do (`make console`).
func TestConsole(t *testing.T) {
	root, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	node := consolePrerequisites(t, root)

	cp := startServer(t, pgtest.New(t, pgtest.Template{}))
	base := "http://" + cp.httpAddr
	page := httpGet(t, base+"/proxies")
	if !strings.Contains(page, `<div id="root">`) {
		t.Fatalf("sluice-server serves the placeholder page, not the console: build the console before the test builds the server, with `make console` (make test does it), or `cd web && npm ci && npm run build`")
	}
	for _, u := range consoleUsers {
		cp.write(t, "POST", "/api/v1/users", "application/json",
			fmt.Sprintf(`{"username":%q,"password":%q,"role":%q}`, u.name, consolePassword, u.role), http.StatusCreated)
	}

	shots := filepath.Join(root, "e2e", "screenshots")
	profile := t.TempDir()
	step := func(name, user string, env ...string) bool {
		return t.Run(name, func(t *testing.T) {
			runConsoleStep(t, node, filepath.Join(root, "e2e", "console", "console.mjs"), name, append([]string{
				"SLUICE_URL=" + base, "SLUICE_USER=" + user, "SLUICE_PASSWORD=" + consolePassword,
				"SCREENSHOT_DIR=" + shots,
			}, env...)...)
		})
	}
	shared := "PROFILE_DIR=" + profile

	if !step("login", "alice", shared) {
		return
	}

	if !step("apply", "alice", shared) {
		return
	}
	vs := cp.resource(t, "virtualservices", "reviews")
	cp.resource(t, "destinationrules", "reviews")
	firstRevision, _ := cp.revisions(t)

	if !step("invalid", "alice", shared) {
		return
	}
	if code := cp.status(t, "/api/v1/namespaces/default/virtualservices/ratings"); code != http.StatusNotFound {
		t.Fatalf("the invalid VirtualService was stored: GET answered %d", code)
	}
	if rev, _ := cp.revisions(t); rev != firstRevision {
		t.Fatalf("the invalid apply made revision %d (it was %d)", rev, firstRevision)
	}

	if !step("history", "alice", shared) {
		return
	}
	restored := cp.resource(t, "virtualservices", "reviews")
	if !bytes.Equal(restored.Spec, vs.Spec) {
		t.Fatalf("rolling back did not restore the first spec:\nnow  %s\nwant %s", restored.Spec, vs.Spec)
	}
	if n := len(cp.history(t, "virtualservices", "reviews")); n != 3 {
		t.Fatalf("the VirtualService has %d revisions after edit and rollback, want 3", n)
	}

	if !step("conflict", "alice", shared, "OTHER_USER=bob", "OTHER_PASSWORD="+consolePassword) {
		return
	}
	dr := cp.resource(t, "destinationrules", "reviews")
	if !strings.Contains(string(dr.Spec), `"track":"stable"`) || !strings.Contains(string(dr.Spec), `"track":"old"`) {
		t.Fatalf("the DestinationRule does not hold both changes (bob's, then alice's retry): %s", dr.Spec)
	}
	if dr.Metadata.UpdatedBy != "alice" {
		t.Fatalf("the DestinationRule was last changed by %q, want alice", dr.Metadata.UpdatedBy)
	}

	// Not one of Bookinfo's services, which start later.
	startWorkload(t, cp, "hello", "v1")
	if !step("proxies", "alice", shared) {
		return
	}

	if !step("revisions", "alice", shared, fmt.Sprintf("FIRST_REVISION=%d", firstRevision)) {
		return
	}
	rev, log := cp.revisions(t)
	if log[0].RolledBackTo != firstRevision || log[0].Actor != "alice" {
		t.Fatalf("revision %d is %+v, want alice's rollback to revision %d", rev, log[0], firstRevision)
	}
	if got := cp.resource(t, "destinationrules", "reviews"); strings.Contains(string(got.Spec), "track") {
		t.Fatalf("the mesh rollback left the DestinationRule's later changes: %s", got.Spec)
	}

	if !step("banner", "alice", shared) {
		return
	}
	if !step("keyboard", "carol") {
		return
	}
	if !step("session", "dave") {
		return
	}
	consoleTraffic(t, cp, step, shared)
}

// consoleTraffic runs the console's traffic steps against Bookinfo behind sidecars and an
// ingress gateway: the live graph, the canary slider measured through the gateway, rollback,
// a viewer's view, a fault experiment, the audit log, and users and tokens.
func consoleTraffic(t *testing.T, cp *controlPlane, step func(name, user string, env ...string) bool, shared string) {
	m := startBookinfo(t, cp)
	for _, f := range []string{"bookinfo-gateway.yaml", "destination-rule-all.yaml", "virtual-service-reviews-jason-v2-v3.yaml"} {
		cp.apply(t, sample(t, "bookinfo/networking/"+f))
	}
	anon, jason := m.client(t, ""), m.client(t, "jason")

	// The graph shows the last seconds of traffic: requests go through the gateway for as
	// long as the step runs.
	stop := sendRequests(m.gateway, anon)
	ok := step("graph", "alice", shared)
	stop()
	if !ok {
		return
	}

	if !step("canary", "alice", shared) {
		return
	}
	within(t, "console slider v1=70 v3=30", m.colors(t, anon, splitRequests), "red", 30)
	if got := m.colors(t, jason, 30); got["black"] != 30 {
		t.Errorf("jason after the console's slider moved: %v, want his black-star rule (written in YAML before) kept", got)
	}
	if vs := cp.resource(t, "virtualservices", "reviews"); !strings.Contains(string(vs.Spec), "jason") {
		t.Errorf("the slider lost the header-match rule: %s", vs.Spec)
	}

	if !step("rollback", "alice", shared) {
		return
	}
	if got := m.colors(t, anon, 30); got["red"] != 30 {
		t.Errorf("after the console's rollback: %v, want every request on v3 (red) as before the slider moved", got)
	}

	if !step("viewer", "erin") {
		return
	}
	viewer := cp.as(t, "erin", consolePassword)
	viewer.write(t, http.MethodPut, "/api/v1/namespaces/default/services/reviews/traffic", "application/json", `{"weights":{"v1":50,"v3":50}}`, http.StatusForbidden)

	// The experiment's errors show in the graph, and go once it is stopped: requests flow
	// through the gateway while both steps run.
	stop = sendRequests(m.gateway, anon)
	ok = step("experiment", "alice", shared)
	stop()
	if !ok {
		return
	}
	if st := cp.experimentState(t, "ratings-abort"); st != "running" {
		t.Fatalf("the console's experiment is %q, want running", st)
	}
	eventually(t, 30*time.Second, "ratings aborted under the experiment", func() error {
		if r := m.reviews(t, anon); r.Error == "" {
			return fmt.Errorf("a request still got ratings: %+v", r)
		}
		return nil
	})
	stop = sendRequests(m.gateway, anon)
	ok = step("stop", "alice", shared)
	stop()
	if !ok {
		return
	}
	if st := cp.experimentState(t, "ratings-abort"); st != "stopped" {
		t.Fatalf("the console's experiment is %q after Stop, want stopped", st)
	}

	if !step("audit", "alice", shared) {
		return
	}
	if !step("access", "alice", shared) {
		return
	}
	var users struct {
		Users []struct{ Username string } `json:"users"`
	}
	if code, err := getJSONWith(cp.api, "http://"+cp.httpAddr+"/api/v1/users", &users); err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/v1/users: %d %v", code, err)
	}
	for _, u := range users.Users {
		if u.Username == "frank" {
			t.Errorf("the user deleted in the console is still there")
		}
	}
}

// sendRequests asks Bookinfo for a product's reviews through the gateway, a few times a
// second, until the returned function is called; it returns once the sender has stopped.
func sendRequests(gateway string, c *http.Client) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+gateway+":8080/api/v1/products/0/reviews", nil)
			if err != nil {
				return
			}
			if resp, err := c.Do(req); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// as signs in to the API as another user, apart from the test's admin session.
func (cp *controlPlane) as(t *testing.T, user, password string) *controlPlane {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	other := &controlPlane{httpAddr: cp.httpAddr, xdsAddr: cp.xdsAddr, api: &http.Client{Timeout: 20 * time.Second, Jar: jar, Transport: client.Transport}}
	body, _ := json.Marshal(map[string]string{"username": user, "password": password})
	resp, err := other.api.Post("http://"+cp.httpAddr+"/api/v1/login", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out struct {
		CSRFToken string `json:"csrfToken"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("sign in as %s: %d %v", user, resp.StatusCode, err)
	}
	other.csrf = out.CSRFToken
	return other
}

// experimentState reads the state of the current run of a FaultExperiment in default.
func (cp *controlPlane) experimentState(t *testing.T, name string) string {
	t.Helper()
	var out struct {
		Experiment *struct {
			State string `json:"state"`
		} `json:"experiment"`
	}
	code, err := getJSONWith(cp.api, "http://"+cp.httpAddr+"/api/v1/namespaces/default/experiments/"+name, &out)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET the experiment %s: %d %v", name, code, err)
	}
	if out.Experiment == nil {
		return ""
	}
	return out.Experiment.State
}

// consolePrerequisites finds node, and checks that Chromium and the console's npm packages
// are installed; .ci/run installs them. It fails (never skips) with the way to install them.
func consolePrerequisites(t *testing.T, root string) string {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatalf("node is not installed: the console's browser test needs Node.js 20.19 or newer (bash .ci/run installs what the tests need)")
	}
	chromium := os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Fatalf("Chromium is not installed at %s: apt-get install -y chromium (bash .ci/run does), or set CHROMIUM to its path", chromium)
	}
	if _, err := os.Stat(filepath.Join(root, "web", "node_modules", "playwright-core", "package.json")); err != nil {
		t.Fatalf("the console's npm packages are not installed: cd web && npm ci (bash .ci/run does)")
	}
	return node
}

// runConsoleStep runs one step of console.mjs; its output goes to the test log.
func runConsoleStep(t *testing.T, node, script, step string, env ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, script, step)
	cmd.Env = append(os.Environ(), env...)
	out := &logTail{t: t, prefix: "browser"}
	cmd.Stdout, cmd.Stderr = out, out
	// Chromium's processes are the script's children: end them all with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	if err := cmd.Run(); err != nil {
		t.Fatalf("console step %s: %v (the browser's output is above; a screenshot is in e2e/screenshots/failed-%s.png)", step, err, step)
	}
}

// storedResource is what the test reads of a resource.
type storedResource struct {
	Metadata struct {
		ResourceVersion string `json:"resourceVersion"`
		UpdatedBy       string `json:"updatedBy"`
	} `json:"metadata"`
	Spec json.RawMessage `json:"spec"`
}

// revisionEntry is what the test reads of a revision.
type revisionEntry struct {
	Revision     int64  `json:"revision"`
	Actor        string `json:"actor"`
	RolledBackTo int64  `json:"rolledBackTo"`
}

// resource reads a resource in namespace default, failing the test if it is not there.
func (cp *controlPlane) resource(t *testing.T, plural, name string) storedResource {
	t.Helper()
	var r storedResource
	code, err := getJSONWith(cp.api, fmt.Sprintf("http://%s/api/v1/namespaces/default/%s/%s", cp.httpAddr, plural, name), &r)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET %s/%s: %d %v", plural, name, code, err)
	}
	return r
}

// history reads a resource's revisions, newest first.
func (cp *controlPlane) history(t *testing.T, plural, name string) []revisionEntry {
	t.Helper()
	var out struct {
		Revisions []revisionEntry `json:"revisions"`
	}
	code, err := getJSONWith(cp.api, fmt.Sprintf("http://%s/api/v1/namespaces/default/%s/%s/history", cp.httpAddr, plural, name), &out)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET the history of %s/%s: %d %v", plural, name, code, err)
	}
	return out.Revisions
}

// revisions reads the mesh's current revision and its log, newest first.
func (cp *controlPlane) revisions(t *testing.T) (int64, []revisionEntry) {
	t.Helper()
	var out struct {
		Current   int64           `json:"current"`
		Revisions []revisionEntry `json:"revisions"`
	}
	code, err := getJSONWith(cp.api, "http://"+cp.httpAddr+"/api/v1/revisions", &out)
	if err != nil || code != http.StatusOK {
		t.Fatalf("GET /api/v1/revisions: %d %v", code, err)
	}
	return out.Current, out.Revisions
}

// status answers the status code of a signed-in GET.
func (cp *controlPlane) status(t *testing.T, path string) int {
	t.Helper()
	resp, err := cp.api.Get("http://" + cp.httpAddr + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// httpGet fetches a page without signing in.
func httpGet(t *testing.T, url string) string {
	t.Helper()
	resp, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return string(b)
}
