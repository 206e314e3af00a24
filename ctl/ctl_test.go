package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixedNow is "now" in every test, so that ages are stable.
var fixedNow = time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)

// recorded is one request the fake server received.
type recorded struct {
	method, target, auth, csrf, contentType, body string
	cookie                                        bool
}

// line is the request as "METHOD /path?query".
func (r recorded) line() string { return r.method + " " + r.target }

// fakeAPI is a recording stand-in for sluice-server: routes answer what each test scripts.
type fakeAPI struct {
	*httptest.Server
	mu   sync.Mutex
	reqs []recorded
}

func newFakeAPI(t *testing.T, routes map[string]http.HandlerFunc) *fakeAPI {
	t.Helper()
	f := &fakeAPI{}
	mux := http.NewServeMux()
	for pattern, h := range routes {
		mux.HandleFunc(pattern, h)
	}
	f.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		_, err := r.Cookie("sluice_session")
		f.mu.Lock()
		f.reqs = append(f.reqs, recorded{
			method: r.Method, target: r.URL.RequestURI(), auth: r.Header.Get("Authorization"),
			csrf: r.Header.Get("X-CSRF-Token"), contentType: r.Header.Get("Content-Type"),
			body: string(body), cookie: err == nil,
		})
		f.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) requests() []recorded {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.reqs)
}

// answer returns a handler that answers status with a JSON body.
func answer(status int, body string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ct := "application/json"
		if status >= 400 {
			ct = "application/problem+json"
		}
		w.Header().Set("Content-Type", ct)
		w.WriteHeader(status)
		io.WriteString(w, body)
	}
}

// result is what one run of sluicectl did.
type result struct {
	stdout, stderr string
	err            error
}

// runCLI runs sluicectl with env (SLUICE_CONFIG defaults to a fresh temporary file) and
// stdin; tweak, when not nil, adjusts the run before it starts.
func runCLI(t *testing.T, env map[string]string, stdin string, tweak func(*cli), args ...string) result {
	t.Helper()
	if env == nil {
		env = map[string]string{}
	}
	if env["SLUICE_CONFIG"] == "" {
		env["SLUICE_CONFIG"] = filepath.Join(t.TempDir(), "config.json")
	}
	var out, errb bytes.Buffer
	c := newCLI(mapEnv(env), strings.NewReader(stdin), &out, &errb)
	c.now = func() time.Time { return fixedNow }
	c.hostname = func() (string, error) { return "testhost", nil }
	c.terminal = func() bool { return false }
	c.readSecret = func(context.Context, string) (string, error) {
		return "", errors.New("no terminal in tests")
	}
	if tweak != nil {
		tweak(c)
	}
	err := c.run(context.Background(), args)
	return result{out.String(), errb.String(), err}
}

// writeConfig writes a config file holding a token for server, and returns its path.
func writeConfig(t *testing.T, cfg Config) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sluice", "config.json")
	if err := saveConfig(path, cfg); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name  string
		stdin string
		args  []string
		want  string
	}{
		{"no command", "", nil, "a command is required"},
		{"unknown command", "", []string{"gte"}, `unknown command "gte": use one of login, logout`},
		{"unknown flag", "", []string{"get", "vs", "--bogus"}, "flag provided but not defined: -bogus"},
		{"unknown global flag before the command", "", []string{"--bogus", "get"}, "flag provided but not defined: -bogus"},
		{"get without a kind", "", []string{"get"}, "get: missing arguments: usage: sluicectl get KIND [NAME]"},
		{"get with too many arguments", "", []string{"get", "vs", "a", "b"}, "get: too many arguments"},
		{"unknown kind", "", []string{"get", "services"}, `"services" is not a resource kind: use one of virtualservices (vs)`},
		{"-n with -A", "", []string{"get", "vs", "-n", "prod", "-A"}, "-n and -A cannot go together"},
		{"a name with -A", "", []string{"get", "vs", "reviews", "-A"}, "a NAME needs its namespace"},
		{"a name with -l", "", []string{"get", "vs", "reviews", "-l", "app=x"}, "-l selects among many resources"},
		{"unknown output format", "", []string{"get", "vs", "-o", "wide"}, `-o "wide" is not an output format here: use table, yaml, json`},
		{"apply without -f", "", []string{"apply"}, "apply needs -f FILE, -f DIR or -f -"},
		{"apply with a bare file", "", []string{"apply", "x.yaml"}, `apply reads files given with -f, not "x.yaml"`},
		{"apply reading stdin twice", "kind: A", []string{"apply", "-f", "-", "-f", "-"}, "-f - is given twice"},
		{"delete without a name", "", []string{"delete", "vs"}, "delete: missing arguments"},
		{"history with a kind only", "", []string{"history", "vs"}, "a KIND needs a NAME"},
		{"history limit out of range", "", []string{"history", "--limit", "5000"}, "--limit 5000: use a number from 1 to 1000"},
		{"diff without --from", "", []string{"diff", "--to", "3"}, "diff needs --from REV"},
		{"rollback without --to", "", []string{"rollback", "vs", "reviews"}, "rollback needs --to REV"},
		{"rollback without a target", "", []string{"rollback", "--to", "3"}, "rollback needs KIND NAME, or --mesh"},
		{"rollback --mesh with a target", "", []string{"rollback", "--mesh", "vs", "reviews", "--to", "3"}, "--mesh rolls back every resource"},
		{"whoami with arguments", "", []string{"whoami", "me"}, `whoami takes no arguments, and got "me"`},
		{"server without a scheme", "", []string{"get", "vs", "--server", "127.0.0.1:8080"}, `server "127.0.0.1:8080" is not an http:// or https:// URL`},
		{"login without a terminal", "", []string{"login"}, "standard input is not a terminal, so sluicectl cannot prompt"},
		{"login --password-stdin without a username", "pw\n", []string{"login", "--password-stdin"}, "--password-stdin needs --username"},
		{"login with an empty password", "\n", []string{"login", "-u", "admin", "--password-stdin"}, "the password is empty"},
		{"bad timeout", "", []string{"get", "vs", "--timeout", "0s"}, "want a positive duration"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// An unreachable server: no usage error may get as far as a request.
			env := map[string]string{"SLUICE_SERVER": "http://127.0.0.1:1"}
			res := runCLI(t, env, tc.stdin, nil, tc.args...)
			var ue *UsageError
			if !errors.As(res.err, &ue) {
				t.Fatalf("err %v (%T), want a *UsageError", res.err, res.err)
			}
			if !strings.Contains(ue.Msg, tc.want) {
				t.Errorf("usage error %q, want it to contain %q", ue.Msg, tc.want)
			}
		})
	}
}

func TestHelp(t *testing.T) {
	res := runCLI(t, nil, "", nil, "help")
	if res.err != nil {
		t.Fatal(res.err)
	}
	for _, want := range []string{"login", "apply -f FILE|DIR|- [-f ...]", "get KIND [NAME]", "rollback (KIND NAME | --mesh) --to REV", "proxy-status", "--server URL", "SLUICE_CONFIG", "mode 0600", "virtualservices (vs)"} {
		if !strings.Contains(res.stdout, want) {
			t.Errorf("help lacks %q:\n%s", want, res.stdout)
		}
	}
	for _, args := range [][]string{{"help", "get"}, {"get", "-h"}, {"get", "--help"}} {
		res := runCLI(t, nil, "", nil, args...)
		if res.err != nil || !strings.Contains(res.stdout, "-A, --all-namespaces") || !strings.Contains(res.stdout, "--timeout DURATION") {
			t.Errorf("%q: err %v, output\n%s", args, res.err, res.stdout)
		}
	}
}

// endpointCase is one command against a scripted server.
type endpointCase struct {
	name string
	args []string
	// routes answer 200 with the given JSON.
	routes map[string]string
	// wantRequests are the requests, in order, as "METHOD /path?query".
	wantRequests []string
	// wantBody is the last request's body, when set.
	wantBody   string
	wantStdout string
}

func TestCommands(t *testing.T) {
	created := fixedNow.Add(-5 * time.Minute).Format(time.RFC3339)
	vs := func(ns, name, rv string) string {
		return `{"apiVersion":"networking.istio.io/v1","kind":"VirtualService","metadata":{"name":"` + name + `","namespace":"` + ns +
			`","resourceVersion":"` + rv + `","creationTimestamp":"` + created + `","updatedAt":"` + created + `","updatedBy":"admin"},"spec":{"hosts":["` + name + `"]}}`
	}
	tests := []endpointCase{
		{
			name:         "get lists a namespace as a table",
			args:         []string{"get", "vs"},
			routes:       map[string]string{"GET /api/v1/namespaces/default/virtualservices": `{"items":[` + vs("default", "reviews", "12") + `,` + vs("default", "ratings", "3") + `],"revision":12}`},
			wantRequests: []string{"GET /api/v1/namespaces/default/virtualservices"},
			wantStdout: "" +
				"NAME      REVISION   UPDATED BY   AGE\n" +
				"reviews   12         admin        5m\n" +
				"ratings   3          admin        5m\n",
		},
		{
			name:         "get -A lists every namespace, with a label selector",
			args:         []string{"get", "virtualservices", "-A", "-l", "app=reviews"},
			routes:       map[string]string{"GET /api/v1/virtualservices": `{"items":[` + vs("prod", "reviews", "7") + `],"revision":7}`},
			wantRequests: []string{"GET /api/v1/virtualservices?labelSelector=app%3Dreviews"},
			wantStdout: "" +
				"NAMESPACE   NAME      REVISION   UPDATED BY   AGE\n" +
				"prod        reviews   7          admin        5m\n",
		},
		{
			name:         "get one resource as JSON prints the server's answer",
			args:         []string{"get", "dr", "reviews", "-n", "prod", "-o", "json"},
			routes:       map[string]string{"GET /api/v1/namespaces/prod/destinationrules/reviews": `{"kind":"DestinationRule","metadata":{"name":"reviews"}}`},
			wantRequests: []string{"GET /api/v1/namespaces/prod/destinationrules/reviews"},
			wantStdout:   "{\n  \"kind\": \"DestinationRule\",\n  \"metadata\": {\n    \"name\": \"reviews\"\n  }\n}\n",
		},
		{
			name:         "get -o yaml prints documents ready to apply",
			args:         []string{"get", "vs", "-o", "yaml"},
			routes:       map[string]string{"GET /api/v1/namespaces/default/virtualservices": `{"items":[` + vs("default", "a", "1") + `,` + vs("default", "b", "2") + `]}`},
			wantRequests: []string{"GET /api/v1/namespaces/default/virtualservices"},
			wantStdout: "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  creationTimestamp: \"" + created + "\"\n  name: a\n  namespace: default\n  resourceVersion: \"1\"\nspec:\n  hosts:\n  - a\n" +
				"---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  creationTimestamp: \"" + created + "\"\n  name: b\n  namespace: default\n  resourceVersion: \"2\"\nspec:\n  hosts:\n  - b\n",
		},
		{
			name:         "delete",
			args:         []string{"delete", "gw", "web", "-n", "edge"},
			routes:       map[string]string{"DELETE /api/v1/namespaces/edge/gateways/web": `{"results":[{"kind":"Gateway","namespace":"edge","name":"web","action":"deleted"}],"revision":9}`},
			wantRequests: []string{"DELETE /api/v1/namespaces/edge/gateways/web"},
			wantStdout:   "gateway/web (namespace edge) deleted\n",
		},
		{
			name: "mesh history",
			args: []string{"history", "--limit", "2"},
			routes: map[string]string{"GET /api/v1/revisions": `{"current":3,"revisions":[` +
				`{"revision":3,"at":"` + created + `","actor":"alice","message":"shift\nreviews","changes":[{"kind":"VirtualService","namespace":"default","name":"reviews","action":"update"}]},` +
				`{"revision":2,"at":"` + created + `","actor":"admin","changes":[{"kind":"DestinationRule","namespace":"default","name":"a","action":"create"},{"kind":"DestinationRule","namespace":"default","name":"b","action":"create"},{"kind":"DestinationRule","namespace":"default","name":"c","action":"create"},{"kind":"DestinationRule","namespace":"default","name":"d","action":"create"},{"kind":"DestinationRule","namespace":"default","name":"e","action":"create"}]}]}`},
			wantRequests: []string{"GET /api/v1/revisions?limit=2"},
			wantStdout: "" +
				"REVISION   AGE   ACTOR   MESSAGE         CHANGES\n" +
				"3          5m    alice   shift reviews   update virtualservice/reviews\n" +
				"2          5m    admin   -               create destinationrule/a, create destinationrule/b, create destinationrule/c, and 2 more\n",
		},
		{
			name:         "resource history",
			args:         []string{"history", "vs", "reviews"},
			routes:       map[string]string{"GET /api/v1/namespaces/default/virtualservices/reviews/history": `{"revisions":[{"revision":3,"at":"` + created + `","actor":"alice","changes":[{"kind":"VirtualService","namespace":"default","name":"reviews","action":"update"}]}]}`},
			wantRequests: []string{"GET /api/v1/namespaces/default/virtualservices/reviews/history"},
			wantStdout:   "REVISION   AGE   ACTOR   MESSAGE   CHANGES\n3          5m    alice   -         update virtualservice/reviews\n",
		},
		{
			name:         "diff between two revisions",
			args:         []string{"diff", "--from", "2", "--to", "3"},
			routes:       map[string]string{"GET /api/v1/diff": `{"from":2,"to":3,"resources":[{"diff":"--- a\n+++ a\n@@ -1 +1 @@\n-x\n+y\n"},{"diff":"--- b\n+++ b\n"}]}`},
			wantRequests: []string{"GET /api/v1/diff?from=2&to=3"},
			wantStdout:   "--- a\n+++ a\n@@ -1 +1 @@\n-x\n+y\n--- b\n+++ b\n",
		},
		{
			name: "diff of one resource up to the newest revision",
			args: []string{"diff", "--from", "0", "vs", "reviews", "-n", "prod"},
			routes: map[string]string{
				"GET /api/v1/revisions": `{"current":8,"revisions":[]}`,
				"GET /api/v1/diff":      `{"resources":[{"diff":"--- r\n"}]}`,
			},
			wantRequests: []string{"GET /api/v1/revisions?limit=1", "GET /api/v1/diff?from=0&kind=virtualservices&name=reviews&namespace=prod&to=8"},
			wantStdout:   "--- r\n",
		},
		{
			name:         "rollback one resource",
			args:         []string{"rollback", "vs", "reviews", "--to", "2"},
			routes:       map[string]string{"POST /api/v1/namespaces/default/virtualservices/reviews/rollback": `{"results":[{"kind":"VirtualService","namespace":"default","name":"reviews","action":"updated"}],"revision":5}`},
			wantRequests: []string{"POST /api/v1/namespaces/default/virtualservices/reviews/rollback"},
			wantBody:     `{"revision":2}`,
			wantStdout:   "virtualservice/reviews updated\nRevision 5 restores revision 2.\n",
		},
		{
			name:         "rollback the mesh",
			args:         []string{"rollback", "--mesh", "--to", "0"},
			routes:       map[string]string{"POST /api/v1/revisions/0/rollback": `{"results":[{"kind":"VirtualService","namespace":"default","name":"reviews","action":"deleted"}],"revision":6}`},
			wantRequests: []string{"POST /api/v1/revisions/0/rollback"},
			wantStdout:   "virtualservice/reviews deleted\nRevision 6 restores revision 0.\n",
		},
		{
			name:         "rollback that changes nothing",
			args:         []string{"rollback", "vs", "reviews", "--to", "4"},
			routes:       map[string]string{"POST /api/v1/namespaces/default/virtualservices/reviews/rollback": `{"results":[{"kind":"VirtualService","namespace":"default","name":"reviews","action":"unchanged"}]}`},
			wantRequests: []string{"POST /api/v1/namespaces/default/virtualservices/reviews/rollback"},
			wantStdout:   "Nothing to roll back: already as at revision 4.\n",
		},
		{
			name: "proxy-status",
			args: []string{"proxy-status"},
			routes: map[string]string{"GET /api/v1/proxies": `{"proxies":[` +
				`{"nodeId":"reviews-v1~127.0.0.5","namespace":"default","service":"reviews","address":"127.0.0.5","connected":true,"acked":{"LDS":"7","RDS":"7","CDS":"7","EDS":"7"},"sent":{"LDS":"7","RDS":"8","CDS":"7","EDS":"7"},"nacks":{}},` +
				`{"nodeId":"ratings-v1~127.0.0.6","namespace":"default","service":"ratings","address":"127.0.0.6","connected":false,"acked":{"LDS":"6"},"sent":{},"nacks":{"RDS":"route x:\nbad"}}]}`},
			wantRequests: []string{"GET /api/v1/proxies"},
			wantStdout: "" +
				"NAME                   SERVICE           ADDRESS     CONNECTED   LDS   RDS          CDS   EDS   NACK\n" +
				"reviews-v1~127.0.0.5   default/reviews   127.0.0.5   yes         7     7 (sent 8)   7     7     -\n" +
				"ratings-v1~127.0.0.6   default/ratings   127.0.0.6   no          6     -            -     -     RDS: route x: bad\n",
		},
		{
			name:         "whoami",
			args:         []string{"whoami"},
			routes:       map[string]string{"GET /api/v1/whoami": `{"username":"alice","role":"operator","authMethod":"token"}`},
			wantRequests: []string{"GET /api/v1/whoami"},
			wantStdout:   "alice (role operator) at SERVER, with an API token\n",
		},
		{
			name:         "-o yaml of any answer",
			args:         []string{"whoami", "-o", "yaml"},
			routes:       map[string]string{"GET /api/v1/whoami": `{"username":"alice","role":"operator","authMethod":"token"}`},
			wantRequests: []string{"GET /api/v1/whoami"},
			wantStdout:   "authMethod: token\nrole: operator\nusername: alice\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			routes := map[string]http.HandlerFunc{}
			for p, body := range tc.routes {
				routes[p] = answer(http.StatusOK, body)
			}
			api := newFakeAPI(t, routes)
			cfg := writeConfig(t, Config{Server: api.URL, Username: "alice", Token: "slc_cfg", TokenID: "t1"})
			res := runCLI(t, map[string]string{"SLUICE_CONFIG": cfg, "SLUICE_SERVER": api.URL}, "", nil, tc.args...)
			if res.err != nil {
				t.Fatalf("err %v; stderr %s", res.err, res.stderr)
			}
			want := strings.ReplaceAll(tc.wantStdout, "SERVER", api.URL)
			if res.stdout != want {
				t.Errorf("stdout\n%s\nwant\n%s", res.stdout, want)
			}
			reqs := api.requests()
			var lines []string
			for _, r := range reqs {
				lines = append(lines, r.line())
				if r.auth != "Bearer slc_cfg" {
					t.Errorf("%s: Authorization %q, want the config file's token", r.line(), r.auth)
				}
			}
			if !slices.Equal(lines, tc.wantRequests) {
				t.Errorf("requests %q, want %q", lines, tc.wantRequests)
			}
			if tc.wantBody != "" && (len(reqs) == 0 || reqs[len(reqs)-1].body != tc.wantBody) {
				t.Errorf("body %q, want %q", reqs[len(reqs)-1].body, tc.wantBody)
			}
		})
	}
}

func TestErrorAnswers(t *testing.T) {
	tests := []struct {
		name        string
		env         map[string]string // besides SLUICE_SERVER
		withConfig  bool
		status      int
		contentType string
		body        string
		want        string
	}{
		{
			name: "field errors each on a line", withConfig: true, status: 400, contentType: "application/problem+json",
			body: `{"type":"about:blank","title":"Bad Request","status":400,"detail":"the configuration is invalid (2 problems); nothing was stored","errors":[{"path":"spec.http[0].route","message":"weights add up to 90"},{"path":"metadata.name","message":"bad\nname"}]}`,
			want: "the configuration is invalid (2 problems); nothing was stored\n  spec.http[0].route: weights add up to 90\n  metadata.name: bad name",
		},
		{
			name: "401 with the config file's token", withConfig: true, status: 401, contentType: "application/problem+json",
			body: `{"status":401,"detail":"API token t1 expired"}`,
			want: "not signed in or token expired: run sluicectl login (server: API token t1 expired)",
		},
		{
			name: "401 with SLUICE_TOKEN", env: map[string]string{"SLUICE_TOKEN": "slc_env"}, status: 401, contentType: "application/problem+json",
			body: `{"status":401,"detail":"API token revoked"}`,
			want: "not signed in or token expired: set SLUICE_TOKEN to a valid token, or unset it and run sluicectl login (server: API token revoked)",
		},
		{
			name: "401 without a token", status: 401, contentType: "application/problem+json",
			body: `{"status":401,"detail":"not signed in"}`,
			want: "not signed in to SERVER: run sluicectl login, or set SLUICE_TOKEN",
		},
		{
			name: "403 carries the server's message", withConfig: true, status: 403, contentType: "application/problem+json",
			body: `{"status":403,"detail":"this needs the admin role, and alice has the operator role: ask an admin for access"}`,
			want: "this needs the admin role, and alice has the operator role: ask an admin for access",
		},
		{
			name: "not a problem document", withConfig: true, status: 502, contentType: "text/html",
			body: "<html>\n<b>Bad gateway</b></html>",
			want: "SERVER answered 502 Bad Gateway: <html> <b>Bad gateway</b></html>",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			api := newFakeAPI(t, map[string]http.HandlerFunc{
				"/": func(w http.ResponseWriter, r *http.Request) {
					w.Header().Set("Content-Type", tc.contentType)
					w.WriteHeader(tc.status)
					io.WriteString(w, tc.body)
				},
			})
			env := map[string]string{"SLUICE_SERVER": api.URL}
			for k, v := range tc.env {
				env[k] = v
			}
			if tc.withConfig {
				env["SLUICE_CONFIG"] = writeConfig(t, Config{Server: api.URL, Token: "slc_cfg", TokenID: "t1"})
			}
			res := runCLI(t, env, "", nil, "get", "vs")
			var ae *apiError
			if !errors.As(res.err, &ae) || ae.Status != tc.status {
				t.Fatalf("err %v (%T), want an API error with status %d", res.err, res.err, tc.status)
			}
			if want := strings.ReplaceAll(tc.want, "SERVER", api.URL); res.err.Error() != want {
				t.Errorf("error\n%s\nwant\n%s", res.err, want)
			}
		})
	}
}

func TestUnreachableServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	res := runCLI(t, map[string]string{"SLUICE_SERVER": "http://" + addr}, "", nil, "get", "vs")
	want := "cannot reach sluice-server at http://" + addr + ": connection refused; is it running? set --server or SLUICE_SERVER"
	if res.err == nil || res.err.Error() != want {
		t.Errorf("err %v, want %q", res.err, want)
	}
	var ue *UsageError
	if errors.As(res.err, &ue) {
		t.Error("an unreachable server is not a usage error")
	}
}

func TestSlowServer(t *testing.T) {
	release := make(chan struct{})
	api := newFakeAPI(t, map[string]http.HandlerFunc{"/": func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}})
	defer close(release)
	res := runCLI(t, map[string]string{"SLUICE_SERVER": api.URL}, "", nil, "get", "vs", "--timeout", "50ms")
	want := "sluice-server at " + api.URL + " did not answer within 50ms: check that it is healthy, or raise --timeout"
	if res.err == nil || res.err.Error() != want {
		t.Errorf("err %v, want %q", res.err, want)
	}
}

func TestResponseIsBounded(t *testing.T) {
	api := newFakeAPI(t, map[string]http.HandlerFunc{"/": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.Copy(w, io.LimitReader(zeros{}, maxResponseBytes+1))
	}})
	res := runCLI(t, map[string]string{"SLUICE_SERVER": api.URL}, "", nil, "get", "vs")
	if res.err == nil || !strings.Contains(res.err.Error(), "is over 32 MiB") {
		t.Errorf("err %v, want the answer refused as too large", res.err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// A token goes only to the server that issued it.
func TestConfigTokenOnlyGoesToItsServer(t *testing.T) {
	api := newFakeAPI(t, map[string]http.HandlerFunc{"/": answer(http.StatusUnauthorized, `{"detail":"not signed in"}`)})
	cfg := writeConfig(t, Config{Server: "http://127.0.0.1:9", Token: "slc_elsewhere", TokenID: "t"})
	res := runCLI(t, map[string]string{"SLUICE_CONFIG": cfg}, "", nil, "--server", api.URL, "get", "vs")
	for _, r := range api.requests() {
		if r.auth != "" {
			t.Errorf("sent Authorization %q to a server the token is not for", r.auth)
		}
	}
	if res.err == nil || !strings.Contains(res.err.Error(), "the token in "+cfg+" is for http://127.0.0.1:9") {
		t.Errorf("err %v, want it to say whose token the config holds", res.err)
	}
	// --token and SLUICE_TOKEN are sent wherever they are pointed.
	runCLI(t, map[string]string{"SLUICE_CONFIG": cfg, "SLUICE_TOKEN": "slc_env"}, "", nil, "--server", api.URL, "get", "vs")
	runCLI(t, map[string]string{"SLUICE_CONFIG": cfg, "SLUICE_TOKEN": "slc_env"}, "", nil, "--server", api.URL, "--token", "slc_flag", "get", "vs")
	reqs := api.requests()
	if got := []string{reqs[1].auth, reqs[2].auth}; !slices.Equal(got, []string{"Bearer slc_env", "Bearer slc_flag"}) {
		t.Errorf("Authorization %q, want SLUICE_TOKEN's then --token's", got)
	}
}

// signInAPI is a fake of the sign-in endpoints. It checks what a browser session needs: the
// cookie on every call after login, and the CSRF token on writes.
func signInAPI(t *testing.T) *fakeAPI {
	var mu sync.Mutex
	n := 0
	checkSession := func(w http.ResponseWriter, r *http.Request) bool {
		c, err := r.Cookie("sluice_session")
		if err != nil || c.Value != "sess" || r.Header.Get("X-CSRF-Token") != "csrf" {
			answer(http.StatusForbidden, `{"detail":"missing session or X-CSRF-Token"}`)(w, r)
			return false
		}
		return true
	}
	return newFakeAPI(t, map[string]http.HandlerFunc{
		"POST /api/v1/login": func(w http.ResponseWriter, r *http.Request) {
			var in struct{ Username, Password string }
			if err := json.NewDecoder(r.Body).Decode(&in); err != nil || r.Header.Get("Content-Type") != "application/json" {
				answer(http.StatusBadRequest, `{"detail":"want JSON"}`)(w, r)
				return
			}
			if in.Username != "admin" || in.Password != "correct horse battery" {
				answer(http.StatusUnauthorized, `{"detail":"wrong username or password: check both and sign in again"}`)(w, r)
				return
			}
			http.SetCookie(w, &http.Cookie{Name: "sluice_session", Value: "sess", Path: "/"})
			answer(http.StatusOK, `{"username":"admin","role":"admin","csrfToken":"csrf"}`)(w, r)
		},
		"POST /api/v1/tokens": func(w http.ResponseWriter, r *http.Request) {
			if !checkSession(w, r) {
				return
			}
			mu.Lock()
			n++
			id := string(rune('0' + n))
			mu.Unlock()
			answer(http.StatusCreated, `{"id":"tok`+id+`","token":"slc_secret`+id+`","name":"sluicectl@testhost","role":"admin","expiresAt":"2026-06-01T00:00:00Z"}`)(w, r)
		},
		"DELETE /api/v1/tokens/{id}": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") == "" && !checkSession(w, r) {
				return
			}
			w.WriteHeader(http.StatusNoContent)
		},
		"POST /api/v1/logout": func(w http.ResponseWriter, r *http.Request) {
			if !checkSession(w, r) {
				return
			}
			w.WriteHeader(http.StatusNoContent)
		},
	})
}

func TestLoginAndLogout(t *testing.T) {
	api := signInAPI(t)
	cfgPath := filepath.Join(t.TempDir(), "sluice", "config.json")
	env := map[string]string{"SLUICE_SERVER": api.URL, "SLUICE_CONFIG": cfgPath}

	res := runCLI(t, env, "correct horse battery\n", nil, "login", "--username", "admin", "--password-stdin")
	if res.err != nil {
		t.Fatalf("login: %v", res.err)
	}
	if !strings.Contains(res.stdout, "Signed in to "+api.URL+" as admin (role admin)") {
		t.Errorf("login printed %q", res.stdout)
	}
	fi, err := os.Stat(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("config file mode %04o, want 0600", fi.Mode().Perm())
	}
	raw, _ := os.ReadFile(cfgPath)
	if strings.Contains(string(raw), "correct horse") {
		t.Errorf("the config file holds the password:\n%s", raw)
	}
	var cfg Config
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Token != "slc_secret1" || cfg.TokenID != "tok1" || cfg.Username != "admin" || cfg.Server != api.URL {
		t.Errorf("config %+v", cfg)
	}

	// Logging in again revokes the token it replaces.
	if res := runCLI(t, env, "correct horse battery\n", nil, "login", "--password-stdin"); res.err != nil {
		t.Fatalf("second login (username from the config file): %v", res.err)
	}
	if res := runCLI(t, env, "", nil, "logout"); res.err != nil || !strings.Contains(res.stdout, `revoked API token "sluicectl@testhost" (tok2)`) {
		t.Fatalf("logout: %v %q", res.err, res.stdout)
	}
	raw, _ = os.ReadFile(cfgPath)
	cfg = Config{}
	if err := json.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Token != "" || cfg.TokenID != "" || cfg.Username != "admin" {
		t.Errorf("after logout the config is %+v, want no token and the username kept", cfg)
	}
	if res := runCLI(t, env, "", nil, "logout"); res.err != nil || !strings.Contains(res.stdout, "Not signed in") {
		t.Errorf("second logout: %v %q", res.err, res.stdout)
	}

	var got []string
	for _, r := range api.requests() {
		who := "none"
		switch {
		case r.auth != "":
			who = r.auth
		case r.cookie && r.csrf != "":
			who = "session"
		}
		got = append(got, r.line()+" "+who)
	}
	want := []string{
		"POST /api/v1/login none",
		"POST /api/v1/tokens session",
		"POST /api/v1/logout session",
		"POST /api/v1/login none",
		"POST /api/v1/tokens session",
		"DELETE /api/v1/tokens/tok1 session",
		"POST /api/v1/logout session",
		"DELETE /api/v1/tokens/tok2 Bearer slc_secret2",
	}
	if !slices.Equal(got, want) {
		t.Errorf("requests\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if body := api.requests()[1].body; body != `{"name":"sluicectl@testhost"}` {
		t.Errorf("token request %s", body)
	}
}

func TestLoginPromptsOnATerminal(t *testing.T) {
	api := signInAPI(t)
	var prompts []string
	res := runCLI(t, map[string]string{"SLUICE_SERVER": api.URL}, "admin\n", func(c *cli) {
		c.terminal = func() bool { return true }
		c.readSecret = func(_ context.Context, prompt string) (string, error) {
			prompts = append(prompts, prompt)
			return "correct horse battery", nil
		}
	}, "login")
	if res.err != nil {
		t.Fatal(res.err)
	}
	if res.stderr != "Username: " || !slices.Equal(prompts, []string{"Password: "}) {
		t.Errorf("prompts: stderr %q, secret prompts %q", res.stderr, prompts)
	}
}

func TestLoginWrongPassword(t *testing.T) {
	api := signInAPI(t)
	cfgPath := filepath.Join(t.TempDir(), "config.json")
	res := runCLI(t, map[string]string{"SLUICE_SERVER": api.URL, "SLUICE_CONFIG": cfgPath}, "guess\n", nil, "login", "-u", "admin", "--password-stdin")
	if res.err == nil || res.err.Error() != "sign-in failed: wrong username or password: check both and sign in again" {
		t.Errorf("err %v", res.err)
	}
	if _, err := os.Stat(cfgPath); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a failed login wrote the config file: %v", err)
	}
}

func TestApply(t *testing.T) {
	dir := t.TempDir()
	files := map[string]string{
		"10-dr.yaml": "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews}\nspec: {host: reviews}\n",
		"20-vs.yml":  "# routes\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec: {hosts: [reviews]}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: ratings}\nspec: {hosts: [ratings]}",
		"README.md":  "not a manifest",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("one request, all documents, in order", func(t *testing.T) {
		api := newFakeAPI(t, map[string]http.HandlerFunc{"POST /api/v1/apply": answer(200,
			`{"results":[{"kind":"DestinationRule","namespace":"default","name":"reviews","action":"created","resourceVersion":"4"},{"kind":"VirtualService","namespace":"default","name":"reviews","action":"updated","resourceVersion":"4"},{"kind":"VirtualService","namespace":"default","name":"ratings","action":"unchanged","resourceVersion":"2"}],"dryRun":false,"revision":4}`)})
		res := runCLI(t, map[string]string{"SLUICE_SERVER": api.URL}, "apiVersion: sluice.dev/v1alpha1\nkind: RateLimit\n", nil, "apply", "-f", dir, "-f", "-", "-m", "bookinfo v1")
		if res.err != nil {
			t.Fatal(res.err)
		}
		want := "destinationrule/reviews created\nvirtualservice/reviews updated\nvirtualservice/ratings unchanged\n"
		if res.stdout != want {
			t.Errorf("stdout\n%s\nwant\n%s", res.stdout, want)
		}
		reqs := api.requests()
		if len(reqs) != 1 {
			t.Fatalf("%d requests, want 1", len(reqs))
		}
		r := reqs[0]
		if r.line() != "POST /api/v1/apply?message=bookinfo+v1" || r.contentType != "application/yaml" {
			t.Errorf("request %s, Content-Type %q", r.line(), r.contentType)
		}
		docs, _ := splitDocuments("body", []byte(r.body))
		var kinds []string
		for _, d := range docs {
			for _, line := range strings.Split(string(d.text), "\n") {
				if k, ok := strings.CutPrefix(line, "kind: "); ok {
					kinds = append(kinds, k)
				}
			}
		}
		if !slices.Equal(kinds, []string{"DestinationRule", "VirtualService", "VirtualService", "RateLimit"}) {
			t.Errorf("documents sent: %q\n%s", kinds, r.body)
		}
	})
	t.Run("dry run prints each action and its diff", func(t *testing.T) {
		api := newFakeAPI(t, map[string]http.HandlerFunc{"POST /api/v1/apply": answer(200,
			`{"results":[{"kind":"VirtualService","namespace":"default","name":"reviews","action":"updated","diff":"--- VirtualService default/reviews (before)\n+++ VirtualService default/reviews (after)\n@@ -1 +1 @@\n-a\n+b\n"},{"kind":"DestinationRule","namespace":"default","name":"reviews","action":"unchanged"}],"dryRun":true}`)})
		res := runCLI(t, map[string]string{"SLUICE_SERVER": api.URL}, "", nil, "apply", "--dry-run", "-f", filepath.Join(dir, "10-dr.yaml"))
		if res.err != nil {
			t.Fatal(res.err)
		}
		want := "virtualservice/reviews updated (dry run)\n--- VirtualService default/reviews (before)\n+++ VirtualService default/reviews (after)\n@@ -1 +1 @@\n-a\n+b\ndestinationrule/reviews unchanged (dry run)\n"
		if res.stdout != want {
			t.Errorf("stdout\n%s\nwant\n%s", res.stdout, want)
		}
		if got := api.requests()[0].line(); got != "POST /api/v1/apply?dryRun=true" {
			t.Errorf("request %s", got)
		}
	})
	t.Run("field errors name the file and document", func(t *testing.T) {
		api := newFakeAPI(t, map[string]http.HandlerFunc{"POST /api/v1/apply": answer(400,
			`{"status":400,"detail":"the configuration is invalid (1 problems); nothing was stored","errors":[{"path":"documents[2].spec.hosts","message":"hosts is required"}]}`)})
		res := runCLI(t, map[string]string{"SLUICE_SERVER": api.URL}, "", nil, "apply", "-f", dir)
		want := "the configuration is invalid (1 problems); nothing was stored\n  documents[2].spec.hosts: hosts is required (" + filepath.Join(dir, "20-vs.yml") + ", document 2)"
		if res.err == nil || res.err.Error() != want {
			t.Errorf("err\n%v\nwant\n%s", res.err, want)
		}
	})
	t.Run("a missing file fails before any request", func(t *testing.T) {
		api := newFakeAPI(t, nil)
		res := runCLI(t, map[string]string{"SLUICE_SERVER": api.URL}, "", nil, "apply", "-f", filepath.Join(dir, "nope.yaml"))
		if res.err == nil || !strings.Contains(res.err.Error(), "nope.yaml: no such file or directory") || len(api.requests()) != 0 {
			t.Errorf("err %v, %d requests", res.err, len(api.requests()))
		}
	})
}
