package api

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/config"
)

// openAPIDoc is the part of an OpenAPI document these tests read.
type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Security   []map[string][]string                 `json:"security"`
	Components struct {
		SecuritySchemes map[string]struct {
			Type   string `json:"type"`
			In     string `json:"in"`
			Name   string `json:"name"`
			Scheme string `json:"scheme"`
		} `json:"securitySchemes"`
		Parameters map[string]openAPIParam `json:"parameters"`
	} `json:"components"`
}

type openAPIParam struct {
	Ref      string `json:"$ref"`
	Name     string `json:"name"`
	In       string `json:"in"`
	Required bool   `json:"required"`
	Schema   struct {
		Enum []string `json:"enum"`
	} `json:"schema"`
}

type openAPIOperation struct {
	OperationID string                     `json:"operationId"`
	Description string                     `json:"description"`
	Role        string                     `json:"x-sluice-role"`
	Security    *[]map[string][]string     `json:"security"`
	Parameters  []openAPIParam             `json:"parameters"`
	Responses   map[string]json.RawMessage `json:"responses"`
}

// httpMethods are the keys of a path item that are operations.
var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

// pathParam matches a path template's parameter, in chi's syntax and OpenAPI's alike.
var pathParam = regexp.MustCompile(`\{[^}]*\}`)

// normalizeRoute makes chi's patterns and the document's paths comparable: parameter names
// are dropped (the document may call {id} what the router calls {tokenID}) and so is a
// trailing slash (a chi sub-router's "/" route answers without one too).
func normalizeRoute(method, path string) string {
	path = pathParam.ReplaceAllString(path, "{}")
	if len(path) > 1 {
		path = strings.TrimSuffix(path, "/")
	}
	return strings.ToUpper(method) + " " + path
}

// documented reports whether the router's route belongs in the document: the API and the
// health checks, but not the console's files.
func documented(path string) bool {
	return strings.HasPrefix(path, "/api/v1/") || path == "/healthz" || path == "/readyz"
}

// fetchOpenAPI reads the document as an anonymous client would.
func fetchOpenAPI(t *testing.T, e *env) ([]byte, openAPIDoc) {
	t.Helper()
	res := e.browser().do("GET", "/api/v1/openapi.json", nil, nil)
	if res.status != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json without credentials: %d %s", res.status, res.body)
	}
	if ct := res.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
	if !json.Valid(res.body) {
		t.Fatalf("the document is not valid JSON")
	}
	var doc openAPIDoc
	if err := json.Unmarshal(res.body, &doc); err != nil {
		t.Fatalf("decode the document: %v", err)
	}
	return res.body, doc
}

// operations lists the document's operations as "METHOD /path" (parameters normalised),
// failing on a path item key that is neither an operation nor one of the path item's fields.
func operations(t *testing.T, doc openAPIDoc) map[string]openAPIOperation {
	t.Helper()
	ops := map[string]openAPIOperation{}
	for path, item := range doc.Paths {
		for key, raw := range item {
			if !slices.Contains(httpMethods, key) {
				if key != "parameters" && key != "summary" && key != "description" {
					t.Errorf("%s: %q is not an operation or a path item field", path, key)
				}
				continue
			}
			var op openAPIOperation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", key, path, err)
			}
			ops[normalizeRoute(key, path)] = op
		}
	}
	return ops
}

func routerRoutes(t *testing.T, h http.Handler) map[string]string {
	t.Helper()
	routes, ok := h.(chi.Routes)
	if !ok {
		t.Fatalf("NewServer returned a %T, not a chi router", h)
	}
	out := map[string]string{}
	err := chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if documented(route) {
			out[normalizeRoute(method, route)] = method + " " + route
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("chi.Walk found no routes")
	}
	return out
}

func TestOpenAPIDocumentIsServed(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, doc := fetchOpenAPI(t, e)
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") {
		t.Errorf("openapi %q, want 3.1.x", doc.OpenAPI)
	}
	// The embedded YAML and the served JSON are one document.
	want, err := openAPIJSON()
	if err != nil {
		t.Fatal(err)
	}
	got, _ := fetchOpenAPI(t, e)
	if string(got) != string(want) {
		t.Error("the served document is not the embedded one")
	}
}

// TestOpenAPIMatchesRoutes holds the document to the router: a route missing from the
// document, or a documented route that does not exist, fails.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, doc := fetchOpenAPI(t, e)
	ops := operations(t, doc)
	routes := routerRoutes(t, e.api)

	var missing, extra []string
	for k, route := range routes {
		if _, ok := ops[k]; !ok {
			missing = append(missing, route)
		}
	}
	for k := range ops {
		if _, ok := routes[k]; !ok {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	for _, r := range missing {
		t.Errorf("route %s is not in openapi.yaml: document it", r)
	}
	for _, r := range extra {
		t.Errorf("openapi.yaml documents %s, which is not a route: remove it or add the route", r)
	}
}

func TestOpenAPIOperations(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	raw, doc := fetchOpenAPI(t, e)
	ops := operations(t, doc)
	if len(ops) == 0 {
		t.Fatal("the document has no operations")
	}

	for name, s := range map[string]struct{ typ, in, name, scheme string }{
		"session": {"apiKey", "cookie", sessionCookieName, ""},
		"csrf":    {"apiKey", "header", csrfHeaderName, ""},
		"bearer":  {"http", "", "", "bearer"},
	} {
		got, ok := doc.Components.SecuritySchemes[name]
		if !ok || got.Type != s.typ || got.In != s.in || got.Name != s.name || got.Scheme != s.scheme {
			t.Errorf("security scheme %s is %+v, want %+v", name, got, s)
		}
	}

	ids := map[string]string{}
	for key, op := range ops {
		method, path, _ := strings.Cut(key, " ")
		switch {
		case op.OperationID == "":
			t.Errorf("%s has no operationId", key)
		case ids[op.OperationID] != "":
			t.Errorf("%s and %s share operationId %s", key, ids[op.OperationID], op.OperationID)
		}
		ids[op.OperationID] = key
		if len(op.Responses) == 0 {
			t.Errorf("%s has no responses", key)
		}
		if !slices.Contains([]string{"public", "viewer", "operator", "admin"}, op.Role) {
			t.Errorf("%s: x-sluice-role %q, want public, viewer, operator or admin", key, op.Role)
		} else if !strings.Contains(op.Description, "Role — "+op.Role) {
			t.Errorf("%s: the description does not say %q", key, "Role — "+op.Role)
		}
		security := doc.Security
		if op.Security != nil {
			security = *op.Security
		}
		if (op.Role == "public") != (len(security) == 0) {
			t.Errorf("%s: role %s but security %v", key, op.Role, security)
		}
		// A browser's write needs the CSRF header as well as the cookie.
		if !safeMethod(method) {
			for _, req := range security {
				if _, cookie := req["session"]; cookie && op.Role != "public" {
					if _, ok := req["csrf"]; !ok {
						t.Errorf("%s: a session write without the csrf requirement: %v", key, req)
					}
				}
			}
		}
		// Every path parameter is declared, on the operation or its path item.
		declared := map[string]bool{}
		var params []openAPIParam
		for p, item := range doc.Paths {
			if normalizeRoute(method, p) == key {
				path = p
				var pi struct {
					Parameters []openAPIParam `json:"parameters"`
				}
				_ = json.Unmarshal(mustJSON(t, item), &pi)
				params = append(pi.Parameters, op.Parameters...)
				for _, m := range pathParam.FindAllString(p, -1) {
					declared[strings.Trim(m, "{}")] = false
				}
			}
		}
		for _, p := range params {
			if p.Ref != "" {
				p = doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
			}
			if p.In == "path" {
				if _, ok := declared[p.Name]; !ok {
					t.Errorf("%s declares path parameter %s, which is not in the path", key, p.Name)
				}
				if !p.Required {
					t.Errorf("%s: path parameter %s must be required", key, p.Name)
				}
				declared[p.Name] = true
			}
		}
		for name, ok := range declared {
			if !ok {
				t.Errorf("%s %s: path parameter %s is not declared", method, path, name)
			}
		}
	}

	// Every $ref points at something.
	var tree any
	if err := json.Unmarshal(raw, &tree); err != nil {
		t.Fatal(err)
	}
	for _, ref := range refs(tree) {
		if !resolves(tree, ref) {
			t.Errorf("$ref %s points at nothing", ref)
		}
	}

	// The kinds in paths are exactly the ones the server accepts.
	var plurals []string
	for _, k := range config.SupportedKinds() {
		plurals = append(plurals, config.KindPlural(k))
	}
	if got := doc.Components.Parameters["kind"].Schema.Enum; !slices.Equal(got, plurals) {
		t.Errorf("the kind parameter's enum is %v, want %v", got, plurals)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func refs(v any) []string {
	var out []string
	switch v := v.(type) {
	case map[string]any:
		if r, ok := v["$ref"].(string); ok {
			out = append(out, r)
		}
		for _, c := range v {
			out = append(out, refs(c)...)
		}
	case []any:
		for _, c := range v {
			out = append(out, refs(c)...)
		}
	}
	return out
}

func resolves(tree any, ref string) bool {
	p, ok := strings.CutPrefix(ref, "#/")
	if !ok {
		return false
	}
	for _, part := range strings.Split(p, "/") {
		m, ok := tree.(map[string]any)
		if !ok {
			return false
		}
		if tree, ok = m[strings.ReplaceAll(strings.ReplaceAll(part, "~1", "/"), "~0", "~")]; !ok {
			return false
		}
	}
	return true
}

// TestOpenAPIRoles holds each operation's x-sluice-role to what the server does: without
// credentials a non-public operation answers 401; with the role below the one documented, 403;
// with the documented role, neither. Path parameters are filled with names that do not exist,
// so nothing is changed.
func TestOpenAPIRoles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	_, doc := fetchOpenAPI(t, e)
	admin := e.admin()
	e.addUser(admin, "olive", "operator password", auth.RoleOperator)
	e.addUser(admin, "vera", "viewer password!", auth.RoleViewer)
	passwords := map[string][2]string{
		"viewer": {"vera", "viewer password!"}, "operator": {"olive", "operator password"}, "admin": {"admin", adminPassword},
	}
	below := map[string]string{"operator": "viewer", "admin": "operator"}
	fill := strings.NewReplacer("{namespace}", "nowhere", "{kind}", "virtualservices", "{name}", "nothing",
		"{revision}", "999", "{id}", "0000000000000000")

	// One session per role: signing in again and again would trip the sign-in rate limit.
	sessions := map[string]*client{}
	for role, up := range passwords {
		sessions[role] = e.signedIn(up[0], up[1])
	}
	var paths []string
	for p := range doc.Paths {
		paths = append(paths, p)
	}
	// Signing out ends the viewer's session, so it goes last.
	sort.Slice(paths, func(i, j int) bool {
		if (paths[i] == "/api/v1/logout") != (paths[j] == "/api/v1/logout") {
			return paths[j] == "/api/v1/logout"
		}
		return paths[i] < paths[j]
	})
	for _, p := range paths {
		for _, method := range httpMethods {
			raw, ok := doc.Paths[p][method]
			if !ok {
				continue
			}
			var op openAPIOperation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatal(err)
			}
			m, url := strings.ToUpper(method), fill.Replace(p)
			if url == "/api/v1/diff" {
				url += "?from=999&to=999"
			}
			what := fmt.Sprintf("%s %s (%s)", m, p, op.Role)
			as := func(role string) result {
				if role == "" {
					return e.browser().do(m, url, nil, nil)
				}
				return sessions[role].do(m, url, nil, nil)
			}
			if op.Role == "public" {
				if res := as(""); res.status == http.StatusUnauthorized || res.status == http.StatusForbidden {
					t.Errorf("%s without credentials: %d, want it public", what, res.status)
				}
				continue
			}
			if res := as(""); res.status != http.StatusUnauthorized {
				t.Errorf("%s without credentials: %d, want 401", what, res.status)
			}
			if b, ok := below[op.Role]; ok {
				if res := as(b); res.status != http.StatusForbidden {
					t.Errorf("%s as %s: %d, want 403", what, b, res.status)
				}
			}
			if res := as(op.Role); res.status == http.StatusUnauthorized || res.status == http.StatusForbidden {
				t.Errorf("%s as %s: %d %s, want it allowed", what, op.Role, res.status, res.body)
			}
		}
	}
}
