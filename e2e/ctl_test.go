package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/sluicemesh/sluice/internal/pgtest"
)

// bookinfoNetworking holds Istio's Bookinfo networking samples.
const bookinfoNetworking = "../server/internal/config/testdata/istio/bookinfo/networking"

// ctlRun is what one run of sluicectl did.
type ctlRun struct {
	code           int
	stdout, stderr string
}

// sluicectl runs the built sluicectl with env on top of the test's environment and stdin as
// its standard input.
type sluicectl struct {
	t   *testing.T
	env []string
}

func (s sluicectl) run(stdin string, args ...string) ctlRun {
	s.t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "sluicectl"), args...)
	cmd.Env = append(os.Environ(), s.env...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	code := 0
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		s.t.Fatalf("run sluicectl: %v", err)
	}
	return ctlRun{code, stdout.String(), stderr.String()}
}

// ok runs sluicectl and fails the test unless it succeeds.
func (s sluicectl) ok(stdin string, args ...string) string {
	s.t.Helper()
	r := s.run(stdin, args...)
	if r.code != 0 {
		s.t.Fatalf("sluicectl %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

// with returns a sluicectl with more environment.
func (s sluicectl) with(env ...string) sluicectl {
	return sluicectl{t: s.t, env: append(append([]string(nil), s.env...), env...)}
}

// currentRevision is the mesh's newest revision, through sluicectl.
func (s sluicectl) currentRevision() int64 {
	s.t.Helper()
	var h struct {
		Current int64 `json:"current"`
	}
	if err := json.Unmarshal([]byte(s.ok("", "history", "-o", "json")), &h); err != nil {
		s.t.Fatal(err)
	}
	return h.Current
}

// spec returns one resource's spec, decoded, through "get -o json".
func (s sluicectl) spec(kind, name string) any {
	s.t.Helper()
	var o struct {
		Spec json.RawMessage `json:"spec"`
	}
	if err := json.Unmarshal([]byte(s.ok("", "get", kind, name, "-o", "json")), &o); err != nil {
		s.t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(o.Spec, &v); err != nil {
		s.t.Fatal(err)
	}
	return v
}

// wantOneLine checks that stderr is one "sluicectl: " line containing want.
func wantOneLine(t *testing.T, r ctlRun, wantCode int, want string) {
	t.Helper()
	if r.code != wantCode {
		t.Errorf("exit %d, want %d; stderr:\n%s", r.code, wantCode, r.stderr)
	}
	lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "sluicectl: ") || !strings.Contains(lines[0], want) {
		t.Errorf("stderr %q: want one sluicectl: line containing %q", r.stderr, want)
	}
}

// sluicectl drives a real sluice-server through its whole life cycle: sign in, apply, read,
// dry-run, refuse, history, diff, rollback, delete, proxy status, sign out.
func TestCtlAgainstServer(t *testing.T) {
	cp := startServer(t, pgtest.New(t, pgtest.Template{}))
	server := "http://" + cp.httpAddr
	cfgPath := filepath.Join(t.TempDir(), "sluice", "config.json")
	ctl := sluicectl{t: t, env: []string{"SLUICE_SERVER=" + server, "SLUICE_CONFIG=" + cfgPath, "SLUICE_TOKEN="}}

	t.Run("wrong password", func(t *testing.T) {
		r := ctl.run("not-the-password\n", "login", "--username", "admin", "--password-stdin")
		wantOneLine(t, r, 1, "sign-in failed: wrong username or password")
		if _, err := os.Stat(cfgPath); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a failed login wrote the config file: %v", err)
		}
	})

	t.Run("login", func(t *testing.T) {
		out := ctl.ok(adminPassword+"\n", "login", "--username", "admin", "--password-stdin")
		if !strings.Contains(out, "Signed in to "+server+" as admin (role admin)") {
			t.Errorf("login printed %q", out)
		}
		fi, err := os.Stat(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		if perm := fi.Mode().Perm(); perm != 0o600 {
			t.Errorf("config file mode %04o, want 0600", perm)
		}
		raw, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(raw), adminPassword) {
			t.Errorf("the config file holds the password:\n%s", raw)
		}
		var cfg struct{ Server, Username, Token, TokenID string }
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		if cfg.Server != server || cfg.Username != "admin" || !strings.HasPrefix(cfg.Token, "slc_") || cfg.TokenID == "" {
			t.Errorf("config %s", raw)
		}
		if out := ctl.ok("", "whoami"); !strings.Contains(out, "admin (role admin) at "+server+", with an API token") {
			t.Errorf("whoami printed %q", out)
		}
	})

	t.Run("every kind name is one the server serves", func(t *testing.T) {
		for _, k := range []string{"vs", "dr", "gw", "se", "pa", "ap", "fe", "rl"} {
			if r := ctl.run("", "get", k, "-A"); r.code != 0 {
				t.Errorf("get %s -A: exit %d: %s", k, r.code, r.stderr)
			}
		}
	})

	var atV1 any // reviews' spec once every service routes to v1
	t.Run("apply Bookinfo", func(t *testing.T) {
		out := ctl.ok("", "apply", "-f", filepath.Join(bookinfoNetworking, "destination-rule-all.yaml"), "-m", "bookinfo subsets")
		want := "destinationrule/productpage created\ndestinationrule/reviews created\ndestinationrule/ratings created\ndestinationrule/details created\n"
		if out != want {
			t.Errorf("apply printed\n%s\nwant\n%s", out, want)
		}
		out = ctl.ok("", "apply", "-f", filepath.Join(bookinfoNetworking, "virtual-service-all-v1.yaml"))
		if !strings.Contains(out, "virtualservice/reviews created\n") {
			t.Errorf("apply printed\n%s", out)
		}
		if rev := ctl.currentRevision(); rev != 2 {
			t.Fatalf("revision %d after two applies, want 2", rev)
		}
		atV1 = ctl.spec("vs", "reviews")
	})

	t.Run("dry run shows the diff and writes nothing", func(t *testing.T) {
		before := ctl.ok("", "history", "-o", "json")
		out := ctl.ok("", "apply", "--dry-run", "-f", filepath.Join(bookinfoNetworking, "virtual-service-reviews-test-v2.yaml"))
		for _, want := range []string{"virtualservice/reviews updated (dry run)\n", "--- VirtualService default/reviews (before)\n", "+          exact: jason\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("dry run printed\n%s\nwant it to contain %q", out, want)
			}
		}
		if after := ctl.ok("", "history", "-o", "json"); after != before {
			t.Errorf("a dry run changed the history:\n%s\nthen\n%s", before, after)
		}
		if !reflect.DeepEqual(ctl.spec("vs", "reviews"), atV1) {
			t.Error("a dry run changed the resource")
		}
	})

	t.Run("apply an update", func(t *testing.T) {
		out := ctl.ok("", "apply", "-f", filepath.Join(bookinfoNetworking, "virtual-service-reviews-test-v2.yaml"), "-m", "jason to v2")
		if out != "virtualservice/reviews updated\n" {
			t.Errorf("apply printed %q", out)
		}
	})

	t.Run("get -o yaml round-trips", func(t *testing.T) {
		out := ctl.ok("", "get", "vs", "-o", "yaml")
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if err := json.Unmarshal([]byte(ctl.ok("", "get", "vs", "-o", "json")), &list); err != nil {
			t.Fatal(err)
		}
		docs := strings.Split(out, "\n---\n")
		if len(docs) != 4 || len(list.Items) != 4 {
			t.Fatalf("%d YAML documents and %d JSON items, want 4 each:\n%s", len(docs), len(list.Items), out)
		}
		for i, doc := range docs {
			var fromYAML, fromJSON struct {
				Kind     string         `json:"kind"`
				Metadata map[string]any `json:"metadata"`
				Spec     any            `json:"spec"`
			}
			if err := yaml.Unmarshal([]byte(doc), &fromYAML); err != nil {
				t.Fatalf("document %d: %v", i, err)
			}
			if err := json.Unmarshal(list.Items[i], &fromJSON); err != nil {
				t.Fatal(err)
			}
			if fromYAML.Kind != "VirtualService" || !reflect.DeepEqual(fromYAML.Spec, fromJSON.Spec) ||
				fromYAML.Metadata["name"] != fromJSON.Metadata["name"] || fromYAML.Metadata["resourceVersion"] != fromJSON.Metadata["resourceVersion"] {
				t.Errorf("document %d differs from the JSON:\n%s\n%s", i, doc, list.Items[i])
			}
		}
		// And it applies back as it is, changing nothing.
		rev := ctl.currentRevision()
		back := ctl.ok(out, "apply", "-f", "-")
		if strings.Count(back, " unchanged\n") != 4 {
			t.Errorf("applying get -o yaml back printed\n%s\nwant 4 unchanged", back)
		}
		if got := ctl.currentRevision(); got != rev {
			t.Errorf("applying get -o yaml back made revision %d", got)
		}
	})

	t.Run("an invalid document writes nothing", func(t *testing.T) {
		rev := ctl.currentRevision()
		bad := filepath.Join(t.TempDir(), "bad.yaml")
		if err := os.WriteFile(bad, []byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: fine
spec:
  hosts: [fine]
  http:
  - route:
    - destination: {host: fine}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: broken
spec:
  hosts: [broken]
  http:
  - route:
    - destination: {host: broken}
      weigth: 100
`), 0o644); err != nil {
			t.Fatal(err)
		}
		r := ctl.run("", "apply", "-f", bad)
		if r.code != 1 {
			t.Errorf("exit %d, want 1", r.code)
		}
		lines := strings.Split(strings.TrimRight(r.stderr, "\n"), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], "sluicectl: the configuration is invalid") ||
			!strings.HasPrefix(lines[1], "  documents[1].spec.http[0].route[0].weigth: ") || !strings.Contains(lines[1], "("+bad+", document 2)") {
			t.Errorf("stderr:\n%s\nwant the problem, then the field path with its file", r.stderr)
		}
		if got := ctl.currentRevision(); got != rev {
			t.Errorf("a refused apply made revision %d", got)
		}
		if r := ctl.run("", "get", "vs", "fine"); r.code != 1 || !strings.Contains(r.stderr, "not found") {
			t.Errorf("the valid document of a refused apply was stored: exit %d %s", r.code, r.stderr)
		}
	})

	t.Run("history", func(t *testing.T) {
		out := ctl.ok("", "history")
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "REVISION") {
			t.Fatalf("history printed\n%s\nwant a header and 3 revisions", out)
		}
		for i, want := range []string{"3 ", "2 ", "1 "} {
			if !strings.HasPrefix(lines[i+1], want) {
				t.Errorf("row %d is %q, want revision %s first", i+1, lines[i+1], want)
			}
		}
		if !strings.Contains(lines[1], "jason to v2") || !strings.Contains(lines[1], "update virtualservice/reviews") || !strings.Contains(lines[3], "bookinfo subsets") {
			t.Errorf("history printed\n%s", out)
		}
		out = ctl.ok("", "history", "vs", "reviews")
		if lines := strings.Split(strings.TrimRight(out, "\n"), "\n"); len(lines) != 3 {
			t.Errorf("history of reviews printed\n%s\nwant revisions 3 and 2", out)
		}
	})

	t.Run("diff", func(t *testing.T) {
		out := ctl.ok("", "diff", "--from", "2", "--to", "3")
		for _, want := range []string{"--- VirtualService default/reviews (before)\n", "+++ VirtualService default/reviews (after)\n", "+  - match:\n", "+        subset: v2\n"} {
			if !strings.Contains(out, want) {
				t.Errorf("diff printed\n%s\nwant it to contain %q", out, want)
			}
		}
		if strings.Contains(out, "ratings") {
			t.Errorf("diff shows a resource that did not change:\n%s", out)
		}
		if one := ctl.ok("", "diff", "--from", "2", "vs", "reviews"); one != out {
			t.Errorf("diff of reviews up to the newest revision\n%s\ndiffers from\n%s", one, out)
		}
	})

	t.Run("rollback restores the previous spec exactly", func(t *testing.T) {
		if reflect.DeepEqual(ctl.spec("vs", "reviews"), atV1) {
			t.Fatal("reviews is already as at revision 2")
		}
		out := ctl.ok("", "rollback", "vs", "reviews", "--to", "2")
		if out != "virtualservice/reviews updated\nRevision 4 restores revision 2.\n" {
			t.Errorf("rollback printed %q", out)
		}
		if got := ctl.spec("vs", "reviews"); !reflect.DeepEqual(got, atV1) {
			t.Errorf("after rollback reviews is %v, want %v", got, atV1)
		}
	})

	t.Run("delete", func(t *testing.T) {
		if out := ctl.ok("", "delete", "vs", "ratings"); out != "virtualservice/ratings deleted\n" {
			t.Errorf("delete printed %q", out)
		}
		r := ctl.run("", "get", "vs", "ratings")
		wantOneLine(t, r, 1, "VirtualService default/ratings not found")
		// A delete that would break a route is refused, with the route's path.
		r = ctl.run("", "delete", "dr", "reviews")
		if r.code != 1 || !strings.Contains(r.stderr, "subset v1 of reviews is not defined") {
			t.Errorf("deleting a DestinationRule in use: exit %d\n%s", r.code, r.stderr)
		}
	})

	t.Run("proxy-status", func(t *testing.T) {
		w := startWorkload(t, cp, "echo", "v1")
		eventually(t, 20*time.Second, "proxy-status lists the sidecar", func() error {
			out := ctl.ok("", "proxy-status")
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, " "+w.addr+" ") && strings.Contains(line, " yes ") && strings.Contains(line, "default/echo") {
					return nil
				}
			}
			return errors.New("no connected row for " + w.addr + " in\n" + out)
		})
		var ps struct {
			Proxies []struct {
				Address string            `json:"address"`
				Acked   map[string]string `json:"acked"`
			} `json:"proxies"`
		}
		if err := json.Unmarshal([]byte(ctl.ok("", "proxy-status", "-o", "json")), &ps); err != nil || len(ps.Proxies) != 1 || ps.Proxies[0].Address != w.addr {
			t.Errorf("proxy-status -o json: %+v %v", ps, err)
		}

		// proxy-config reads the sidecar's own dump through the server; a prefix of the
		// nodeId is enough.
		out := ctl.ok("", "proxy-config", "echo-v1")
		for _, want := range []string{"LISTENERS:", "virtualOutbound", "CLUSTERS:", "echo.default.svc.cluster.local", "ENDPOINTS:"} {
			if !strings.Contains(out, want) {
				t.Errorf("proxy-config lacks %q:\n%s", want, out)
			}
		}
		out = ctl.ok("", "proxy-config", "echo-v1", "endpoints")
		if !regexp.MustCompile(`(?m)echo\.default\.svc\.cluster\.local\s+` + regexp.QuoteMeta(w.addr) + `:\d+\s+HEALTHY$`).MatchString(out) {
			t.Errorf("proxy-config endpoints does not show %s healthy:\n%s", w.addr, out)
		}
		var clusters struct {
			Type   string            `json:"@type"`
			Active []json.RawMessage `json:"dynamic_active_clusters"`
		}
		if err := json.Unmarshal([]byte(ctl.ok("", "proxy-config", "echo-v1", "clusters", "-o", "json")), &clusters); err != nil || !strings.HasSuffix(clusters.Type, "ClustersConfigDump") || len(clusters.Active) == 0 {
			t.Errorf("proxy-config clusters -o json: %+v %v", clusters, err)
		}
		wantOneLine(t, ctl.run("", "proxy-config", "nosuchproxy"), 1, `no proxy is called "nosuchproxy": sluicectl proxy-status lists them`)
		wantOneLine(t, ctl.run("", "proxy-config", "echo-v1", "secrets"), 2, `proxy-config: unknown section "secrets": want all, listeners, routes, clusters or endpoints`)
	})

	t.Run("logout revokes the token", func(t *testing.T) {
		raw, err := os.ReadFile(cfgPath)
		if err != nil {
			t.Fatal(err)
		}
		var cfg struct{ Token string }
		if err := json.Unmarshal(raw, &cfg); err != nil {
			t.Fatal(err)
		}
		if out := ctl.ok("", "logout"); !strings.Contains(out, "revoked API token") {
			t.Errorf("logout printed %q", out)
		}
		if raw, _ := os.ReadFile(cfgPath); strings.Contains(string(raw), cfg.Token) {
			t.Errorf("the token is still in the config file:\n%s", raw)
		}
		wantOneLine(t, ctl.run("", "get", "vs"), 1, "run sluicectl login")
		// The token itself no longer works, wherever it is sent from.
		r := ctl.with("SLUICE_TOKEN="+cfg.Token).run("", "get", "vs")
		wantOneLine(t, r, 1, "not signed in or token expired")
		if !strings.Contains(r.stderr, "revoked") {
			t.Errorf("stderr %q: want the server's reason, revoked", r.stderr)
		}
	})
}

func TestCtlUnreachableServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there any more
	ctl := sluicectl{t: t, env: []string{"SLUICE_SERVER=http://" + addr, "SLUICE_CONFIG=" + filepath.Join(t.TempDir(), "config.json"), "SLUICE_TOKEN="}}
	r := ctl.run("", "get", "vs")
	wantOneLine(t, r, 1, "cannot reach sluice-server at http://"+addr+": connection refused; is it running? set --server or SLUICE_SERVER")
	r = ctl.run("", "get", "nonsense")
	wantOneLine(t, r, 2, `"nonsense" is not a resource kind`)
}

// sluicectl canary moves the slider of a service whose versions are registered sidecars.
func TestCtlCanary(t *testing.T) {
	cp := startServer(t, pgtest.New(t, pgtest.Template{}))
	for _, v := range []string{"v1", "v2"} {
		startSidecar(t, cp, nextAddr(), "b", v, "--inbound", "8080=18080")
	}
	ctl := sluicectl{t: t, env: []string{"SLUICE_SERVER=http://" + cp.httpAddr, "SLUICE_CONFIG=" + filepath.Join(t.TempDir(), "config.json"), "SLUICE_TOKEN="}}
	ctl.ok(adminPassword+"\n", "login", "--username", "admin", "--password-stdin")

	if out := ctl.ok("", "canary", "get", "b"); !strings.Contains(out, "No VirtualService routes it") {
		t.Errorf("canary get before any split:\n%s", out)
	}
	if out := ctl.ok("", "canary", "set", "b", "v1=80", "v2=20"); !strings.Contains(out, "traffic of b is now v1=80 v2=20") {
		t.Errorf("canary set printed:\n%s", out)
	}
	out := ctl.ok("", "canary", "get", "b")
	for _, want := range []string{"v1         1          80%", "v2         1          20%"} {
		if !strings.Contains(out, want) {
			t.Errorf("canary get lacks %q:\n%s", want, out)
		}
	}
	if r := ctl.run("", "canary", "set", "b", "v1=-3"); r.code != 1 || !strings.Contains(r.stderr, "weights.v1") {
		t.Errorf("a negative weight: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := ctl.run("", "canary", "set", "b", "v1"); r.code != 2 {
		t.Errorf("a malformed weight: exit %d, want 2", r.code)
	}
}
