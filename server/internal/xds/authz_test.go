package xds

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/registry"
)

// authzTask returns the first n documents of Istio's authorization task (authz-http), which
// the task applies one at a time.
func authzTask(t *testing.T, n int) []*config.Resource {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "task-authz-http.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := config.ParseYAML(b)
	if err != nil {
		t.Fatal(err)
	}
	return rs[:n]
}

func parseValid(t *testing.T, yaml string) []*config.Resource {
	t.Helper()
	rs, err := config.ParseYAML([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	if errs := config.Validate(rs, nil); len(errs) > 0 {
		t.Fatalf("does not validate: %v", errs)
	}
	return rs
}

// inboundOnly keeps a proxy's inbound listeners, where authorization and rate limits live.
func inboundOnly(r *Resources) *Resources {
	var ls []types.Resource
	for _, l := range r.Listeners {
		if l.(interface{ GetName() string }).GetName() != meta.OutboundListenerName {
			ls = append(ls, l)
		}
	}
	return &Resources{Listeners: ls}
}

// allFields is an AuthorizationPolicy that uses every field sluice translates, next to a
// mesh-wide AUDIT policy in the root namespace.
const allFields = `apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: guard, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules:
  - from:
    - source:
        notPrincipals: ["cluster.local/ns/default/sa/bookinfo-productpage", "*-admin"]
        namespaces: ["prod*"]
        notNamespaces: ["*-test"]
        ipBlocks: ["10.0.0.0/8"]
        notIpBlocks: ["10.1.2.3"]
        remoteIpBlocks: ["192.168.0.0/16"]
    to:
    - operation:
        hosts: ["reviews", "*.example.com"]
        notPorts: ["9090"]
        methods: ["POST", "PUT"]
        paths: ["/admin/*", "*.php", "/api/{*}/ratings/{**}"]
        notPaths: ["/admin/health"]
    when:
    - {key: "request.headers[x-canary]", values: ["yes"]}
    - {key: source.ip, notValues: ["127.0.0.1"]}
    - {key: source.namespace, values: [default]}
    - {key: source.principal, values: ["*"]}
    - {key: destination.port, values: ["9080"]}
    - {key: destination.ip, values: ["127.0.0.0/8"]}
    - {key: remote.ip, values: ["127.0.0.1"]}
    - {key: connection.sni, values: ["*.local"]}
  - to:
    - operation: {notMethods: [GET]}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: audit-writes, namespace: istio-system}
spec:
  action: AUDIT
  rules:
  - to:
    - operation: {methods: [POST]}
`

// TestAuthorizationGolden checks the RBAC filters of Istio's authorization task, step by
// step, and of a policy using every field, against golden files.
func TestAuthorizationGolden(t *testing.T) {
	ws := bookinfo()
	productpage, details, reviews := ws[0], ws[1], ws[2]
	tests := []struct {
		name  string
		rs    func(t *testing.T) []*config.Resource
		proxy registry.Workload
	}{
		{"authz-deny-all", func(t *testing.T) []*config.Resource { return authzTask(t, 1) }, productpage},
		{"authz-productpage-viewer", func(t *testing.T) []*config.Resource { return authzTask(t, 2) }, productpage},
		{"authz-details-viewer", func(t *testing.T) []*config.Resource { return authzTask(t, 5) }, details},
		{"authz-all-fields", func(t *testing.T) []*config.Resource { return parseValid(t, allFields) }, reviews},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rs := tc.rs(t)
			if errs := config.Validate(rs, nil); len(errs) > 0 {
				t.Fatalf("does not validate: %v", errs)
			}
			mesh := BuildMesh(ws)
			mesh.Config = IndexConfig(rs)
			sh := newShared(mesh)
			res := BuildProxy(tc.proxy, sh)
			if len(sh.problems) > 0 {
				t.Errorf("problems: %+v", sh.problems)
			}
			golden(t, tc.name, render(t, inboundOnly(res)))
		})
	}
}

// TestAuthorizationScope checks which workloads a policy reaches, as Istio scopes it: the
// root namespace is mesh-wide, another namespace is its own, a selector narrows either.
func TestAuthorizationScope(t *testing.T) {
	other := workload("prod", "reviews", "v1", "127.0.0.20", meta.PortMapping{Port: 9080, AppPort: 19080})
	ws := append(bookinfo(), other)
	policy := func(ns, selector string) string {
		return "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: p, namespace: " + ns + "}\nspec:\n" + selector + "  action: DENY\n  rules: [{to: [{operation: {methods: [DELETE]}}]}]\n"
	}
	tests := []struct {
		name string
		yaml string
		// want lists the workloads (namespace/name) that get an RBAC filter.
		want []string
	}{
		{"namespace-wide", policy("default", ""), []string{"default/productpage-v1", "default/details-v1", "default/reviews-v1", "default/reviews-v2", "default/reviews-v3", "default/ratings-v1"}},
		{"selector", policy("default", "  selector: {matchLabels: {app: reviews, version: v2}}\n"), []string{"default/reviews-v2"}},
		{"root namespace", policy(RootNamespace, ""), []string{"default/productpage-v1", "default/details-v1", "default/reviews-v1", "default/reviews-v2", "default/reviews-v3", "default/ratings-v1", "prod/reviews-v1"}},
		{"root namespace with selector", policy(RootNamespace, "  selector: {matchLabels: {app: reviews, version: v1}}\n"), []string{"default/reviews-v1", "prod/reviews-v1"}},
		{"other namespace", policy("prod", ""), []string{"prod/reviews-v1"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			mesh := BuildMesh(ws)
			mesh.Config = IndexConfig(parseValid(t, tc.yaml))
			sh := newShared(mesh)
			var got []string
			for _, w := range ws {
				if w.Mode == meta.ModeGateway {
					continue
				}
				if b := string(render(t, inboundOnly(BuildProxy(w, sh)))); strings.Contains(b, rbacFilterName) {
					got = append(got, w.Namespace+"/"+w.Name)
				}
			}
			if strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Errorf("RBAC filters on %v, want %v", got, tc.want)
			}
		})
	}
}

const rateLimits = `apiVersion: sluice.dev/v1alpha1
kind: RateLimit
metadata: {name: all, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  requestsPerUnit: 100
  unit: minute
  burst: 20
---
apiVersion: sluice.dev/v1alpha1
kind: RateLimit
metadata: {name: api-per-user, namespace: default}
spec:
  selector: {matchLabels: {app: productpage}}
  route: {uriPrefix: /api/, headers: {x-tenant: acme}}
  requestsPerUnit: 5
  unit: second
  perHeader: x-user
---
apiVersion: sluice.dev/v1alpha1
kind: RateLimit
metadata: {name: reviews-only, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  requestsPerUnit: 1
  unit: second
`

// TestRateLimitGolden checks the local rate limit filters of two RateLimits that select
// productpage, and that one selecting reviews stays off productpage.
func TestRateLimitGolden(t *testing.T) {
	ws := bookinfo()
	mesh := BuildMesh(ws)
	mesh.Config = IndexConfig(parseValid(t, rateLimits+"---\n"+authzTaskDoc(t, 1)))
	sh := newShared(mesh)
	golden(t, "ratelimit-productpage", render(t, inboundOnly(BuildProxy(ws[0], sh))))
}

// authzTaskDoc returns document i (0-based) of the authorization task as YAML.
func authzTaskDoc(t *testing.T, i int) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "task-authz-http.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(b), "\n---\n")[i]
}
