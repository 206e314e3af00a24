package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
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

	startWorkload(t, cp, "reviews", "v1")
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
	step("session", "dave")
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
