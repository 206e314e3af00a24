package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/store"
)

// Resources as users write them. Names and namespaces vary per test; the hosts are Bookinfo's.

func drYAML(ns, name, host string, subsets ...string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  host: %s\n  subsets:\n", name, ns, host)
	for _, s := range subsets {
		fmt.Fprintf(&sb, "  - name: %s\n    labels: {version: %s}\n", s, s)
	}
	return sb.String()
}

// vsYAML routes host to its subsets with the weights given as "v1=80".
func vsYAML(ns, name, host string, weights ...string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  hosts: [%s]\n  http:\n  - route:\n", name, ns, host)
	for _, w := range weights {
		subset, weight, _ := strings.Cut(w, "=")
		fmt.Fprintf(&sb, "    - destination: {host: %s, subset: %s}\n      weight: %s\n", host, subset, weight)
	}
	return sb.String()
}

func gwYAML(ns, name string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: %s, namespace: %s}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 8080, name: http, protocol: HTTP}
    hosts: ["*"]
`, name, ns)
}

func docs(ds ...string) string { return strings.Join(ds, "---\n") }

// reviewsBase is a DestinationRule for reviews with three subsets and a VirtualService that
// sends all of reviews' traffic to v1.
var reviewsBase = docs(drYAML("default", "reviews", "reviews", "v1", "v2", "v3"), vsYAML("default", "reviews", "reviews", "v1=100"))

// request sends a body (none when empty) of the given content type with the client's
// credentials, and any extra headers given as name, value pairs.
func (c *client) request(method, path, contentType, body string, header ...string) result {
	c.e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.e.srv.URL+path, rd)
	if err != nil {
		c.e.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	if c.csrf != "" && !c.noCSRF {
		req.Header.Set("X-CSRF-Token", c.csrf)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return c.send(req, nil)
}

// apply posts YAML to /api/v1/apply (query is appended to the path as is).
func (c *client) apply(yamlDocs, query string) result {
	c.e.t.Helper()
	return c.request("POST", "/api/v1/apply"+query, "application/yaml", yamlDocs)
}

// mustApply applies and fails the test unless it answers 200.
func (c *client) mustApply(yamlDocs string) writeOutcome {
	c.e.t.Helper()
	res := c.apply(yamlDocs, "")
	if res.status != http.StatusOK {
		c.e.t.Fatalf("apply: %d %s", res.status, res.body)
	}
	return decodeAs[writeOutcome](c.e.t, res)
}

// writeOutcome is the answer of a write.
type writeOutcome struct {
	Results  []resultView `json:"results"`
	DryRun   bool         `json:"dryRun"`
	Revision int64        `json:"revision"`
}

// problemDoc is a problem+json answer with Sluice's members.
type problemDoc struct {
	Type                   string       `json:"type"`
	Title                  string       `json:"title"`
	Status                 int          `json:"status"`
	Detail                 string       `json:"detail"`
	Errors                 []FieldError `json:"errors"`
	CurrentResourceVersion string       `json:"currentResourceVersion"`
	UpdatedBy              string       `json:"updatedBy"`
	UpdatedAt              *time.Time   `json:"updatedAt"`
	RequiredRole           string       `json:"requiredRole"`
}

func problemOf(t *testing.T, res result) problemDoc {
	t.Helper()
	if ct := res.header.Get("Content-Type"); ct != "application/problem+json" {
		t.Fatalf("%d answer has Content-Type %q, want application/problem+json: %s", res.status, ct, res.body)
	}
	return decodeAs[problemDoc](t, res)
}

func decodeAs[T any](t *testing.T, res result) T {
	t.Helper()
	var v T
	if err := json.Unmarshal(res.body, &v); err != nil {
		t.Fatalf("decode %s: %v", res.body, err)
	}
	return v
}

func resourcePath(kind, ns, name string) string {
	return "/api/v1/namespaces/" + ns + "/" + config.KindPlural(kind) + "/" + name
}

// get reads a resource; it returns nil and the status when it is not 200.
func (c *client) get(kind, ns, name string) (*store.Object, result) {
	c.e.t.Helper()
	res := c.do("GET", resourcePath(kind, ns, name), nil, nil)
	if res.status != http.StatusOK {
		return nil, res
	}
	o := decodeAs[store.Object](c.e.t, res)
	return &o, res
}

// revision reads the mesh's current revision through the API.
func (c *client) revision() int64 {
	c.e.t.Helper()
	res := c.do("GET", "/api/v1/revisions?limit=1", nil, nil)
	if res.status != http.StatusOK {
		c.e.t.Fatalf("revisions: %d %s", res.status, res.body)
	}
	return decodeAs[struct {
		Current int64 `json:"current"`
	}](c.e.t, res).Current
}

// sameJSON reports whether two JSON documents hold the same value, whatever their formatting
// and key order.
func sameJSON(t *testing.T, a, b []byte) bool {
	t.Helper()
	var va, vb any
	if err := json.Unmarshal(a, &va); err != nil {
		t.Fatalf("%s: %v", a, err)
	}
	if err := json.Unmarshal(b, &vb); err != nil {
		t.Fatalf("%s: %v", b, err)
	}
	return reflect.DeepEqual(va, vb)
}

func actions(rs []resultView) []string {
	var out []string
	for _, r := range rs {
		out = append(out, r.Kind+"/"+r.Namespace+"/"+r.Name+":"+r.Action)
	}
	return out
}

const samplesDir = "../config/testdata/istio"

// networkingOnly reports whether every document of a sample is a networking.istio.io kind.
func networkingOnly(t *testing.T, path string) bool {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "apiVersion:"); ok {
			n++
			if !strings.HasPrefix(strings.TrimSpace(v), "networking.istio.io/") {
				return false
			}
		}
	}
	return n > 0
}

// TestApplyIstioSamples applies Istio's own samples through the API, unchanged, in the order
// Istio's tasks use them, and checks that what is stored is what was sent.
func TestApplyIstioSamples(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.admin()
	steps := []string{
		"bookinfo/networking/destination-rule-all.yaml",
		"bookinfo/networking/bookinfo-gateway.yaml",
		"bookinfo/networking/destination-rule-reviews.yaml",
		"bookinfo/networking/virtual-service-all-v1.yaml",
		"bookinfo/networking/virtual-service-reviews-test-v2.yaml",
		"bookinfo/networking/virtual-service-ratings-test-delay.yaml",
		"bookinfo/networking/virtual-service-ratings-test-abort.yaml",
		"bookinfo/networking/virtual-service-reviews-jason-v2-v3.yaml",
		"bookinfo/networking/virtual-service-reviews-50-v3.yaml",
		"bookinfo/networking/virtual-service-reviews-80-20.yaml",
		"bookinfo/networking/virtual-service-reviews-90-10.yaml",
		"bookinfo/networking/virtual-service-reviews-v2-v3.yaml",
		"bookinfo/networking/virtual-service-reviews-v3.yaml",
		"bookinfo/networking/fault-injection-details-v1.yaml",
		// fault-injection-details-v1.yaml leaves details with subset v1 only; details-v2
		// needs the full set back.
		"bookinfo/networking/destination-rule-all.yaml",
		"bookinfo/networking/virtual-service-details-v2.yaml",
		"bookinfo/networking/virtual-service-ratings-db.yaml",
		"bookinfo/networking/virtual-service-ratings-mysql.yaml",
		"bookinfo/networking/virtual-service-ratings-mysql-vm.yaml",
		"bookinfo/networking/destination-rule-all-mtls.yaml",
		"tasks/task-request-timeouts.yaml",
		"tasks/task-circuit-breaking-dr.yaml",
		"tasks/task-mirroring.yaml",
		"tasks/task-ingress-httpbin.yaml",
		"tasks/httpbin-gateway.yaml",
		"bookinfo/networking/egress-rule-google-apis.yaml",
		"bookinfo/networking/certmanager-gateway.yaml",
	}
	const envoyFilter = "bookinfo/platform/productpage_envoy_ratelimit.yaml"

	// Every all-networking sample is a step, so a sample added later is applied too.
	files, err := filepath.Glob(filepath.Join(samplesDir, "*", "*", "*.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	more, _ := filepath.Glob(filepath.Join(samplesDir, "*", "*.yaml"))
	files = append(files, more...)
	for _, f := range files {
		rel, _ := filepath.Rel(samplesDir, f)
		rel = filepath.ToSlash(rel)
		if networkingOnly(t, f) && rel != envoyFilter && !slices.Contains(steps, rel) {
			t.Errorf("%s holds only networking.istio.io kinds but is not applied here: add it to the steps", rel)
		}
	}

	stored := map[string]*config.Resource{}
	for _, step := range steps {
		b, err := os.ReadFile(filepath.Join(samplesDir, step))
		if err != nil {
			t.Fatal(err)
		}
		before := admin.revision()
		res := admin.apply(string(b), "")
		if res.status != http.StatusOK {
			t.Fatalf("apply %s: %d %s", step, res.status, res.body)
		}
		out := decodeAs[writeOutcome](t, res)
		sent, err := config.ParseYAML(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(out.Results) != len(sent) {
			t.Fatalf("apply %s: %d results for %d documents: %s", step, len(out.Results), len(sent), res.body)
		}
		changed := false
		for i, r := range out.Results {
			if r.Kind != sent[i].Kind || r.Namespace != sent[i].Namespace || r.Name != sent[i].Name {
				t.Errorf("apply %s: result %d is %s/%s/%s, want %s", step, i, r.Kind, r.Namespace, r.Name, sent[i].Key())
			}
			switch r.Action {
			case "created", "updated":
				changed = true
			case "unchanged":
			default:
				t.Errorf("apply %s: %s has action %q", step, sent[i].Key(), r.Action)
			}
			stored[sent[i].Key()] = sent[i]
		}
		if after := admin.revision(); changed && (after != before+1 || out.Revision != after) {
			t.Errorf("apply %s: revision %d → %d, answer says %d; want one new revision", step, before, after, out.Revision)
		}
	}

	// What is stored is what the samples say, the last one applied winning.
	for key, r := range stored {
		got, res := admin.get(r.Kind, r.Namespace, r.Name)
		if got == nil {
			t.Errorf("GET %s: %d %s", key, res.status, res.body)
			continue
		}
		if !sameJSON(t, got.Spec, r.SpecJSON) {
			t.Errorf("%s is stored as %s, want %s", key, got.Spec, r.SpecJSON)
		}
		if got.APIVersion != r.APIVersion {
			t.Errorf("%s has apiVersion %s, want %s", key, got.APIVersion, r.APIVersion)
		}
	}
	total := 0
	for _, kind := range config.SupportedKinds() {
		res := admin.do("GET", "/api/v1/"+config.KindPlural(kind), nil, nil)
		total += len(decodeAs[struct {
			Items []json.RawMessage `json:"items"`
		}](t, res).Items)
	}
	if total != len(stored) {
		t.Errorf("the mesh holds %d resources, want %d", total, len(stored))
	}

	// Envoy's own filters are not Sluice's to apply.
	before := admin.revision()
	b, err := os.ReadFile(filepath.Join(samplesDir, envoyFilter))
	if err != nil {
		t.Fatal(err)
	}
	res := admin.apply(string(b), "")
	wantStatus(t, "apply "+envoyFilter, res, http.StatusBadRequest, "")
	p := problemOf(t, res)
	if len(p.Errors) == 0 {
		t.Fatalf("apply %s: no errors: %s", envoyFilter, res.body)
	}
	for i, fe := range p.Errors {
		if want := fmt.Sprintf("documents[%d].kind", i); fe.Path != want || !strings.Contains(fe.Message, "EnvoyFilter") {
			t.Errorf("apply %s: error %d is %+v, want path %s naming EnvoyFilter", envoyFilter, i, fe, want)
		}
	}
	if after := admin.revision(); after != before {
		t.Errorf("a refused apply moved the revision from %d to %d", before, after)
	}
}

// TestApplyInvalid sends invalid configuration through the API: each is refused with 400 and
// field paths that start with the document's index, and nothing is stored.
func TestApplyInvalid(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.admin()
	admin.mustApply(reviewsBase)

	type key struct{ kind, ns, name string }
	tests := []struct {
		name  string
		input string
		// want are the errors expected, in order: a path and a part of the message.
		want [][2]string
		// absent are resources the input would have created.
		absent []key
	}{
		{
			name:   "misspelled field in a single document",
			input:  strings.Replace(vsYAML("default", "ratings", "ratings", "v1=100"), "      weight: 100", "      weigth: 100", 1),
			want:   [][2]string{{"documents[0].spec.http[0].route[0].weigth", `unknown field "weigth" (did you mean "weight"?)`}},
			absent: []key{{"VirtualService", "default", "ratings"}},
		},
		{
			name: "third of three documents",
			input: docs(drYAML("default", "ratings", "ratings", "v1"), gwYAML("default", "gw"),
				vsYAML("default", "ratings", "ratings", "v1=-10")),
			want:   [][2]string{{"documents[2].spec.http[0].route[0].weight", "weight -10 is negative"}},
			absent: []key{{"DestinationRule", "default", "ratings"}, {"Gateway", "default", "gw"}, {"VirtualService", "default", "ratings"}},
		},
		{
			name:   "subset that no DestinationRule defines",
			input:  vsYAML("default", "details", "details", "v1=100"),
			want:   [][2]string{{"documents[0].spec.http[0].route[0].destination.subset", "subset v1 of details is not defined"}},
			absent: []key{{"VirtualService", "default", "details"}},
		},
		{
			name: "subset missing from the stored DestinationRule",
			input: docs(gwYAML("default", "gw2"),
				strings.Replace(vsYAML("default", "reviews-v9", "reviews", "v9=100"), "hosts: [reviews]", "hosts: [reviews-v9]", 1)),
			want:   [][2]string{{"documents[1].spec.http[0].route[0].destination.subset", "subset v9 of reviews is not defined: DestinationRule default/reviews has subsets v1, v2, v3"}},
			absent: []key{{"Gateway", "default", "gw2"}, {"VirtualService", "default", "reviews-v9"}},
		},
		{
			name:  "unsupported kind",
			input: "apiVersion: networking.istio.io/v1alpha3\nkind: Sidecar\nmetadata: {name: default}\nspec: {}\n",
			want:  [][2]string{{"documents[0].kind", "kind Sidecar is not supported by Sluice"}},
		},
		{
			name:   "wrong apiVersion",
			input:  strings.Replace(vsYAML("default", "ratings", "ratings"), "networking.istio.io/v1", "networking.istio.io/v2", 1),
			want:   [][2]string{{"documents[0].apiVersion", "apiVersion networking.istio.io/v2 is not accepted for kind VirtualService"}},
			absent: []key{{"VirtualService", "default", "ratings"}},
		},
		{
			name:   "missing name in the second document",
			input:  docs(drYAML("default", "ratings", "ratings", "v1"), strings.Replace(vsYAML("default", "ratings", "ratings", "v1=1"), "  name: ratings\n", "", 1)),
			want:   [][2]string{{"documents[1].metadata.name", "name is required"}},
			absent: []key{{"DestinationRule", "default", "ratings"}},
		},
		{
			name:  "invalid namespace",
			input: drYAML("Prod_1", "ratings", "ratings", "v1"),
			want:  [][2]string{{"documents[0].metadata.namespace", `namespace "Prod_1" is not valid`}},
		},
		{
			name:   "duplicate subset",
			input:  drYAML("default", "ratings", "ratings", "v1", "v1"),
			want:   [][2]string{{"documents[0].spec.subsets[1].name", "subset v1 is defined twice"}},
			absent: []key{{"DestinationRule", "default", "ratings"}},
		},
		{
			name: "missing gateway",
			input: `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: frontdoor}
spec:
  hosts: ["*"]
  gateways: [nowhere]
  http:
  - route:
    - destination: {host: productpage}
`,
			want:   [][2]string{{"documents[0].spec.gateways[0]", "gateway default/nowhere does not exist"}},
			absent: []key{{"VirtualService", "default", "frontdoor"}},
		},
		{
			name:   "second VirtualService for a host",
			input:  vsYAML("default", "reviews-canary", "reviews", "v2=100"),
			want:   [][2]string{{"documents[0].spec.hosts[0]", "host reviews is already routed by VirtualService default/reviews"}},
			absent: []key{{"VirtualService", "default", "reviews-canary"}},
		},
		{
			name:  "dropping a subset that is routed to",
			input: drYAML("default", "reviews", "reviews", "v2", "v3"),
			want:  [][2]string{{"documents[0].spec.subsets", "subset v1 is still used by VirtualService default/reviews"}},
		},
		{
			name:   "the same resource twice",
			input:  docs(drYAML("default", "ratings", "ratings", "v1"), drYAML("default", "ratings", "ratings", "v2")),
			want:   [][2]string{{"documents[1].metadata.name", "DestinationRule default/ratings is defined twice (also at documents[0])"}},
			absent: []key{{"DestinationRule", "default", "ratings"}},
		},
		{
			name: "an item of a List",
			input: `apiVersion: v1
kind: List
items:
- ` + strings.ReplaceAll(strings.TrimSuffix(drYAML("default", "ratings", "ratings", "v1"), "\n"), "\n", "\n  ") + `
- ` + strings.ReplaceAll(strings.TrimSuffix(vsYAML("default", "ratings", "ratings", "v1=x"), "\n"), "\n", "\n  ") + "\n",
			want:   [][2]string{{"documents[0].items[1].spec.http[0].route[0].weight", `expected an integer, got string "x"`}},
			absent: []key{{"DestinationRule", "default", "ratings"}, {"VirtualService", "default", "ratings"}},
		},
		{
			name:   "JSON",
			input:  `{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"name":"ratings"},"spec":{"host":"ratings","trafficPolicy":{"loadBalancer":{"simple":"ROUND_ROBBIN"}}}}`,
			want:   [][2]string{{"documents[0].spec.trafficPolicy.loadBalancer.simple", `unknown value "ROUND_ROBBIN"`}},
			absent: []key{{"DestinationRule", "default", "ratings"}},
		},
		{
			name:   "YAML syntax error in the second document",
			input:  docs(drYAML("default", "ratings", "ratings", "v1"), "kind: [\n"),
			want:   [][2]string{{"documents[1]", "invalid YAML"}},
			absent: []key{{"DestinationRule", "default", "ratings"}},
		},
		{
			// A problem with the input as a whole has no path.
			name:  "no documents",
			input: "# nothing here\n---\n",
			want:  [][2]string{{"", "the input holds no resources"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Subtests share the env and its revision counter: not parallel.
			before := admin.revision()
			res := admin.apply(tt.input, "")
			if res.status != http.StatusBadRequest {
				t.Fatalf("status %d, want 400: %s", res.status, res.body)
			}
			p := problemOf(t, res)
			if p.Status != http.StatusBadRequest || !strings.Contains(p.Detail, "nothing was stored") {
				t.Errorf("problem %+v", p)
			}
			var got [][2]string
			for _, fe := range p.Errors {
				got = append(got, [2]string{fe.Path, fe.Message})
			}
			ok := len(got) == len(tt.want)
			for i := 0; ok && i < len(got); i++ {
				ok = got[i][0] == tt.want[i][0] && strings.Contains(got[i][1], tt.want[i][1])
			}
			if !ok {
				t.Errorf("errors:\n%q\nwant:\n%q", got, tt.want)
			}
			for _, k := range tt.absent {
				if _, res := admin.get(k.kind, k.ns, k.name); res.status != http.StatusNotFound {
					t.Errorf("GET %s %s/%s after a refused apply: %d, want 404", k.kind, k.ns, k.name, res.status)
				}
			}
			if after := admin.revision(); after != before {
				t.Errorf("a refused apply moved the revision from %d to %d", before, after)
			}
		})
	}
	// The base is as it was.
	if dr, _ := admin.get("DestinationRule", "default", "reviews"); dr == nil || dr.Metadata.ResourceVersion != "1" {
		t.Errorf("DestinationRule default/reviews changed: %+v", dr)
	}
}

// TestApplyAllOrNothing: when one of three documents is invalid, neither of the valid ones is
// written, not even the update of an existing resource.
func TestApplyAllOrNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.admin()
	admin.mustApply(reviewsBase)
	drBefore, _ := admin.get("DestinationRule", "default", "reviews")
	auditBefore := decodeAs[struct {
		Entries []auditView `json:"entries"`
	}](t, admin.do("GET", "/api/v1/audit?action=resource.update", nil, nil)).Entries

	input := docs(
		drYAML("default", "ratings", "ratings", "v1", "v2"),             // a create
		drYAML("default", "reviews", "reviews", "v1", "v2", "v3", "v4"), // an update
		vsYAML("default", "ratings", "ratings", "v1=50", "v3=50"),       // v3 of ratings: no such subset
	)
	res := admin.apply(input, "")
	wantStatus(t, "apply", res, http.StatusBadRequest, "nothing was stored")
	if p := problemOf(t, res); len(p.Errors) != 1 || p.Errors[0].Path != "documents[2].spec.http[0].route[1].destination.subset" {
		t.Errorf("errors %+v", p.Errors)
	}
	if _, res := admin.get("DestinationRule", "default", "ratings"); res.status != http.StatusNotFound {
		t.Errorf("the created DestinationRule is there: %d", res.status)
	}
	drAfter, _ := admin.get("DestinationRule", "default", "reviews")
	if drAfter.Metadata.ResourceVersion != drBefore.Metadata.ResourceVersion || !sameJSON(t, drAfter.Spec, drBefore.Spec) {
		t.Errorf("the updated DestinationRule changed: %s → %s", drBefore.Spec, drAfter.Spec)
	}
	if rev := admin.revision(); rev != 1 {
		t.Errorf("revision %d, want 1", rev)
	}
	auditAfter := decodeAs[struct {
		Entries []auditView `json:"entries"`
	}](t, admin.do("GET", "/api/v1/audit?action=resource.update", nil, nil)).Entries
	if len(auditAfter) != len(auditBefore) {
		t.Errorf("a refused apply was audited as an update: %+v", auditAfter)
	}

	// With the third document fixed, all three go in one revision.
	out := admin.mustApply(docs(
		drYAML("default", "ratings", "ratings", "v1", "v2"),
		drYAML("default", "reviews", "reviews", "v1", "v2", "v3", "v4"),
		vsYAML("default", "ratings", "ratings", "v1=50", "v2=50"),
	))
	want := []string{"DestinationRule/default/ratings:created", "DestinationRule/default/reviews:updated", "VirtualService/default/ratings:created"}
	if got := actions(out.Results); !slices.Equal(got, want) || out.Revision != 2 {
		t.Errorf("apply: revision %d, %v; want 2, %v", out.Revision, got, want)
	}
	for _, r := range out.Results {
		if r.ResourceVersion != "2" {
			t.Errorf("%s/%s has resourceVersion %q, want 2", r.Kind, r.Name, r.ResourceVersion)
		}
	}
}

// TestPutAndConcurrency covers one-resource writes: create, conflicts through If-Match and the
// body's resourceVersion, ETags, and YAML both ways.
func TestPutAndConcurrency(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.admin()
	e.addUser(admin, "alice", "alice's password", auth.RoleAdmin)
	alice := e.signedIn("alice", "alice's password")
	admin.mustApply(drYAML("default", "reviews", "reviews", "v1", "v2", "v3"))

	path := resourcePath("VirtualService", "default", "reviews")
	create := admin.request("POST", "/api/v1/namespaces/default/virtualservices", "application/yaml", vsYAML("default", "reviews", "reviews", "v1=100"))
	wantStatus(t, "create", create, http.StatusCreated, "")
	if etag := create.header.Get("ETag"); etag != `"2"` {
		t.Errorf("create: ETag %q, want \"2\"", etag)
	}
	again := admin.request("POST", "/api/v1/namespaces/default/virtualservices", "application/yaml", vsYAML("default", "reviews", "reviews", "v2=100"))
	wantStatus(t, "create again", again, http.StatusConflict, "already exists")
	if p := problemOf(t, again); p.CurrentResourceVersion != "2" || p.UpdatedBy != "admin" || p.UpdatedAt == nil {
		t.Errorf("create again: %+v", p)
	}

	got, res := admin.get("VirtualService", "default", "reviews")
	if got == nil {
		t.Fatalf("GET: %d %s", res.status, res.body)
	}
	etag := res.header.Get("ETag")
	if etag != `"2"` || got.Metadata.ResourceVersion != "2" {
		t.Fatalf("GET: ETag %q, resourceVersion %q; want \"2\"", etag, got.Metadata.ResourceVersion)
	}

	// Alice changes it first, with the ETag she read.
	put := alice.request("PUT", path, "application/yaml", vsYAML("default", "reviews", "reviews", "v1=50", "v2=50"), "If-Match", etag)
	wantStatus(t, "PUT with the fresh ETag", put, http.StatusOK, "")
	newTag := put.header.Get("ETag")
	if newTag != `"3"` {
		t.Errorf("PUT: ETag %q, want \"3\"", newTag)
	}
	if out := decodeAs[writeOutcome](t, put); len(out.Results) != 1 || out.Results[0].Action != "updated" || out.Revision != 3 {
		t.Errorf("PUT: %s", put.body)
	}

	// The admin's change is based on what he read before: refused, naming Alice.
	stale := admin.request("PUT", path, "application/yaml", vsYAML("default", "reviews", "reviews", "v3=100"), "If-Match", etag)
	wantStatus(t, "PUT with a stale ETag", stale, http.StatusConflict, "was changed by alice")
	p := problemOf(t, stale)
	if p.CurrentResourceVersion != "3" || p.UpdatedBy != "alice" || p.UpdatedAt == nil {
		t.Errorf("conflict: %+v", p)
	}
	// So is a body that carries the stale resourceVersion, as one edited from a GET's answer.
	body := map[string]any{
		"apiVersion": got.APIVersion, "kind": got.Kind,
		"metadata": map[string]string{"name": "reviews", "namespace": "default", "resourceVersion": got.Metadata.ResourceVersion},
		"spec":     json.RawMessage(`{"hosts":["reviews"],"http":[{"route":[{"destination":{"host":"reviews","subset":"v3"}}]}]}`),
	}
	staleBody := admin.do("PUT", path, body, nil)
	wantStatus(t, "PUT with a stale metadata.resourceVersion", staleBody, http.StatusConflict, "")
	if p := problemOf(t, staleBody); p.CurrentResourceVersion != "3" || p.UpdatedBy != "alice" {
		t.Errorf("conflict: %+v", p)
	}
	if now, _ := admin.get("VirtualService", "default", "reviews"); now.Metadata.ResourceVersion != "3" || now.Metadata.UpdatedBy != "alice" {
		t.Errorf("after the refused writes: %+v", now.Metadata)
	}

	// With the fresh ETag the change goes in.
	fresh := admin.request("PUT", path, "application/yaml", vsYAML("default", "reviews", "reviews", "v3=100"), "If-Match", newTag)
	wantStatus(t, "PUT with the fresh ETag", fresh, http.StatusOK, "")
	if tag := fresh.header.Get("ETag"); tag != `"4"` {
		t.Errorf("PUT: ETag %q, want \"4\"", tag)
	}
	// A malformed If-Match is the caller's mistake.
	wantStatus(t, "If-Match not a version", admin.request("PUT", path, "application/yaml", vsYAML("default", "reviews", "reviews", "v3=100"), "If-Match", `"abc"`),
		http.StatusBadRequest, "If-Match")
	// The URL and the body must agree.
	mismatch := admin.request("PUT", resourcePath("VirtualService", "default", "ratings"), "application/yaml", vsYAML("default", "reviews", "reviews", "v3=100"))
	wantStatus(t, "PUT under another name", mismatch, http.StatusBadRequest, "")
	if p := problemOf(t, mismatch); len(p.Errors) != 1 || p.Errors[0].Path != "metadata.name" {
		t.Errorf("PUT under another name: %+v", p.Errors)
	}
	// A body without a namespace takes the URL's.
	prod := admin.request("PUT", resourcePath("DestinationRule", "prod", "ratings"), "application/yaml",
		strings.Replace(drYAML("x", "ratings", "ratings", "v1"), "  namespace: x\n", "", 1))
	wantStatus(t, "PUT without a namespace", prod, http.StatusCreated, "")
	if o, res := admin.get("DestinationRule", "prod", "ratings"); o == nil {
		t.Errorf("GET prod/ratings: %d", res.status)
	}

	// YAML out: ?format=yaml and Accept both work, and the YAML reads back as the resource.
	for _, req := range []struct{ what, query, accept string }{
		{"format=yaml", "?format=yaml", ""},
		{"Accept", "", "application/yaml"},
	} {
		res := admin.request("GET", path+req.query, "", "", "Accept", req.accept)
		wantStatus(t, req.what, res, http.StatusOK, "")
		if ct := res.header.Get("Content-Type"); ct != "application/yaml" {
			t.Errorf("%s: Content-Type %q", req.what, ct)
		}
		if res.header.Get("ETag") != `"4"` {
			t.Errorf("%s: ETag %q", req.what, res.header.Get("ETag"))
		}
		var o store.Object
		if err := yaml.Unmarshal(res.body, &o); err != nil {
			t.Fatalf("%s: %v\n%s", req.what, err, res.body)
		}
		if o.Kind != "VirtualService" || o.Metadata.Name != "reviews" || !bytes.Contains(res.body, []byte("subset: v3")) {
			t.Errorf("%s: %s", req.what, res.body)
		}
	}
	// The YAML answer can be edited and sent back as it is: its resourceVersion is the
	// precondition, so an edit of an old read is refused.
	yamlNow := admin.request("GET", path+"?format=yaml", "", "").body
	edited := strings.Replace(string(yamlNow), "subset: v3", "subset: v2", 1)
	wantStatus(t, "PUT the edited YAML", admin.request("PUT", path, "application/yaml", edited), http.StatusOK, "")
	wantStatus(t, "PUT the edited YAML again", admin.request("PUT", path, "application/yaml", edited), http.StatusConflict, "")
	wantStatus(t, "apply the YAML answer", admin.apply(string(admin.request("GET", path+"?format=yaml", "", "").body), ""), http.StatusOK, "")
	// JSON by default.
	if res := admin.do("GET", path, nil, nil); res.header.Get("Content-Type") != "application/json" {
		t.Errorf("GET: Content-Type %q", res.header.Get("Content-Type"))
	}

	// Delete with a stale ETag is refused too; with the fresh one it goes.
	wantStatus(t, "DELETE stale", admin.request("DELETE", path, "", "", "If-Match", `"4"`), http.StatusConflict, "")
	wantStatus(t, "DELETE", admin.request("DELETE", path, "", "", "If-Match", `"6"`), http.StatusOK, "")
	wantStatus(t, "GET deleted", admin.do("GET", path, nil, nil), http.StatusNotFound, "")
	wantStatus(t, "DELETE again", admin.do("DELETE", path, nil, nil), http.StatusNotFound, "")
	wantStatus(t, "unknown kind", admin.do("GET", "/api/v1/namespaces/default/sidecars/x", nil, nil), http.StatusNotFound, "virtualservices")
}

// TestDryRun: a dry run answers what would happen, with diffs, and writes nothing.
func TestDryRun(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.admin()
	admin.mustApply(reviewsBase)

	input := docs(
		drYAML("default", "reviews", "reviews", "v1", "v2", "v3"), // unchanged
		vsYAML("default", "reviews", "reviews", "v1=50", "v3=50"), // updated
		drYAML("default", "ratings", "ratings", "v1"),             // created
	)
	res := admin.apply(input, "?dryRun=true")
	wantStatus(t, "dry run", res, http.StatusOK, "")
	out := decodeAs[writeOutcome](t, res)
	want := []string{"DestinationRule/default/reviews:unchanged", "VirtualService/default/reviews:updated", "DestinationRule/default/ratings:created"}
	if got := actions(out.Results); !slices.Equal(got, want) || !out.DryRun || out.Revision != 0 {
		t.Fatalf("dry run: %s", res.body)
	}
	if d := out.Results[0].Diff; d != "" {
		t.Errorf("unchanged resource has a diff:\n%s", d)
	}
	upd := out.Results[1].Diff
	for _, line := range []string{"--- VirtualService default/reviews", "+++ VirtualService default/reviews", "-      weight: 100", "+      weight: 50", "+        subset: v3"} {
		if !strings.Contains(upd, line) {
			t.Errorf("update diff lacks %q:\n%s", line, upd)
		}
	}
	if !strings.Contains(out.Results[2].Diff, "+  host: ratings") {
		t.Errorf("create diff:\n%s", out.Results[2].Diff)
	}
	for _, r := range out.Results {
		if r.ResourceVersion != "" {
			t.Errorf("dry run result %s has resourceVersion %q", r.Name, r.ResourceVersion)
		}
	}
	if rev := admin.revision(); rev != 1 {
		t.Errorf("revision %d after a dry run, want 1", rev)
	}
	wantStatus(t, "GET created by a dry run", admin.do("GET", resourcePath("DestinationRule", "default", "ratings"), nil, nil), http.StatusNotFound, "")
	if vs, _ := admin.get("VirtualService", "default", "reviews"); vs.Metadata.ResourceVersion != "1" {
		t.Errorf("dry run updated the VirtualService: %+v", vs.Metadata)
	}
	// A dry run checks everything a real one does.
	wantStatus(t, "invalid dry run", admin.apply(vsYAML("default", "reviews", "reviews", "v9=1"), "?dryRun=true"), http.StatusBadRequest, "")

	// The one-resource PUT dry-runs too.
	put := admin.request("PUT", resourcePath("VirtualService", "default", "reviews")+"?dryRun=true", "application/yaml", vsYAML("default", "reviews", "reviews", "v2=100"))
	wantStatus(t, "PUT dry run", put, http.StatusOK, "")
	if o := decodeAs[writeOutcome](t, put); !o.DryRun || o.Results[0].Action != "updated" || !strings.Contains(o.Results[0].Diff, "+        subset: v2") {
		t.Errorf("PUT dry run: %s", put.body)
	}
	if rev := admin.revision(); rev != 1 {
		t.Errorf("revision %d after a dry run, want 1", rev)
	}
}

type revisionView struct {
	Revision     int64          `json:"revision"`
	Actor        string         `json:"actor"`
	Message      string         `json:"message"`
	RolledBackTo int64          `json:"rolledBackTo"`
	Changes      []store.Change `json:"changes"`
}

type diffView struct {
	From      int64 `json:"from"`
	To        int64 `json:"to"`
	Resources []struct {
		Kind      string        `json:"kind"`
		Namespace string        `json:"namespace"`
		Name      string        `json:"name"`
		From      *store.Object `json:"from"`
		To        *store.Object `json:"to"`
		Diff      string        `json:"diff"`
	} `json:"resources"`
}

func (d diffView) keys() []string {
	var out []string
	for _, r := range d.Resources {
		out = append(out, r.Kind+"/"+r.Namespace+"/"+r.Name)
	}
	return out
}

// TestHistoryRevisionsAndDiff reads the revision log three ways: per resource, mesh-wide and as
// a diff between two revisions.
func TestHistoryRevisionsAndDiff(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.admin()
	admin.mustApply(reviewsBase)                                               // 1
	admin.mustApply(vsYAML("default", "reviews", "reviews", "v1=50", "v2=50")) // 2
	admin.mustApply(drYAML("default", "ratings", "ratings", "v1"))             // 3
	wantStatus(t, "apply with a message", admin.request("POST", "/api/v1/apply?message=all+to+v3", "application/yaml",
		vsYAML("default", "reviews", "reviews", "v3=100")), http.StatusOK, "") // 4

	res := admin.do("GET", resourcePath("VirtualService", "default", "reviews")+"/history", nil, nil)
	wantStatus(t, "history", res, http.StatusOK, "")
	hist := decodeAs[struct {
		Revisions []revisionView `json:"revisions"`
	}](t, res).Revisions
	var nums []int64
	for _, r := range hist {
		nums = append(nums, r.Revision)
		if len(r.Changes) != 1 || r.Changes[0].Name != "reviews" || r.Changes[0].Kind != "VirtualService" {
			t.Errorf("history revision %d holds %+v, want only the VirtualService", r.Revision, r.Changes)
		}
	}
	if !slices.Equal(nums, []int64{4, 2, 1}) {
		t.Fatalf("history revisions %v, want [4 2 1]", nums)
	}
	if hist[0].Message != "all to v3" || hist[0].Actor != "admin" || hist[0].Changes[0].Action != "update" || hist[2].Changes[0].Action != "create" {
		t.Errorf("history: %+v", hist)
	}
	if hist[2].Changes[0].Before != nil || hist[2].Changes[0].After == nil {
		t.Errorf("the create has before %v, after %v", hist[2].Changes[0].Before, hist[2].Changes[0].After)
	}
	// Paging.
	res = admin.do("GET", resourcePath("VirtualService", "default", "reviews")+"/history?before=4&limit=1", nil, nil)
	if h := decodeAs[struct {
		Revisions []revisionView `json:"revisions"`
	}](t, res).Revisions; len(h) != 1 || h[0].Revision != 2 {
		t.Errorf("history?before=4&limit=1: %s", res.body)
	}
	wantStatus(t, "bad limit", admin.do("GET", "/api/v1/revisions?limit=0", nil, nil), http.StatusBadRequest, "limit")

	res = admin.do("GET", "/api/v1/revisions", nil, nil)
	wantStatus(t, "revisions", res, http.StatusOK, "")
	log := decodeAs[struct {
		Revisions []revisionView `json:"revisions"`
		Current   int64          `json:"current"`
	}](t, res)
	nums = nil
	for _, r := range log.Revisions {
		nums = append(nums, r.Revision)
	}
	if log.Current != 4 || !slices.Equal(nums, []int64{4, 3, 2, 1}) || len(log.Revisions[3].Changes) != 2 {
		t.Errorf("revisions: current %d, %v; want 4, [4 3 2 1] with two changes in 1", log.Current, nums)
	}
	res = admin.do("GET", "/api/v1/revisions/3", nil, nil)
	if r := decodeAs[revisionView](t, res); r.Revision != 3 || len(r.Changes) != 1 || r.Changes[0].Name != "ratings" {
		t.Errorf("revision 3: %s", res.body)
	}
	wantStatus(t, "revision 99", admin.do("GET", "/api/v1/revisions/99", nil, nil), http.StatusNotFound, "")
	wantStatus(t, "revision x", admin.do("GET", "/api/v1/revisions/x", nil, nil), http.StatusBadRequest, "")

	// From 1 to 4: the VirtualService changed and the ratings rule appeared; the reviews rule
	// did not change.
	res = admin.do("GET", "/api/v1/diff?from=1&to=4", nil, nil)
	wantStatus(t, "diff", res, http.StatusOK, "")
	d := decodeAs[diffView](t, res)
	if got, want := d.keys(), []string{"DestinationRule/default/ratings", "VirtualService/default/reviews"}; !slices.Equal(got, want) {
		t.Fatalf("diff 1..4 lists %v, want %v", got, want)
	}
	if r := d.Resources[0]; r.From != nil || r.To == nil || !strings.Contains(r.Diff, "+  host: ratings") {
		t.Errorf("the new rule: from %v, to %v, diff:\n%s", r.From, r.To, r.Diff)
	}
	if r := d.Resources[1]; r.From == nil || r.To == nil || !strings.Contains(r.Diff, "-        subset: v1") || !strings.Contains(r.Diff, "+        subset: v3") {
		t.Errorf("the VirtualService's diff:\n%s", r.Diff)
	}
	// Backwards is the same resources, the other way round.
	res = admin.do("GET", "/api/v1/diff?from=4&to=1", nil, nil)
	if d := decodeAs[diffView](t, res); len(d.Resources) != 2 || d.Resources[0].To != nil || !strings.Contains(d.Resources[0].Diff, "-  host: ratings") {
		t.Errorf("diff 4..1: %s", res.body)
	}
	// One resource.
	res = admin.do("GET", "/api/v1/diff?from=2&to=4&kind=virtualservices&namespace=default&name=reviews", nil, nil)
	if d := decodeAs[diffView](t, res); !slices.Equal(d.keys(), []string{"VirtualService/default/reviews"}) {
		t.Errorf("diff of one resource: %s", res.body)
	}
	if d := decodeAs[diffView](t, admin.do("GET", "/api/v1/diff?from=3&to=3", nil, nil)); len(d.Resources) != 0 {
		t.Errorf("a revision differs from itself: %+v", d)
	}
	wantStatus(t, "diff to the future", admin.do("GET", "/api/v1/diff?from=1&to=5", nil, nil), http.StatusNotFound, "newest revision is 4")
	wantStatus(t, "diff without to", admin.do("GET", "/api/v1/diff?from=1", nil, nil), http.StatusBadRequest, "")
}

// TestRollback rolls one resource back, then the whole mesh: each is a new revision that
// restores exactly what was, and history is never rewritten.
func TestRollback(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.admin()
	e.addUser(admin, "olive", "operator password", auth.RoleOperator)
	operator := e.signedIn("olive", "operator password")

	admin.mustApply(docs(reviewsBase, drYAML("default", "details", "details", "v1"), gwYAML("default", "gw"))) // 1
	v1, _ := admin.get("VirtualService", "default", "reviews")
	admin.mustApply(vsYAML("default", "reviews", "reviews", "v1=50", "v2=50")) // 2
	admin.mustApply(vsYAML("default", "reviews", "reviews", "v3=100"))         // 3
	vsPath := resourcePath("VirtualService", "default", "reviews")

	res := operator.do("POST", vsPath+"/rollback", map[string]int64{"revision": 1}, nil)
	wantStatus(t, "roll back the VirtualService", res, http.StatusOK, "")
	if out := decodeAs[writeOutcome](t, res); out.Revision != 4 || !slices.Equal(actions(out.Results), []string{"VirtualService/default/reviews:updated"}) {
		t.Errorf("rollback: %s", res.body)
	}
	now, _ := admin.get("VirtualService", "default", "reviews")
	if !sameJSON(t, now.Spec, v1.Spec) || now.APIVersion != v1.APIVersion || !reflect.DeepEqual(now.Metadata.Labels, v1.Metadata.Labels) {
		t.Errorf("after the rollback the spec is %s, want revision 1's %s", now.Spec, v1.Spec)
	}
	if now.Metadata.ResourceVersion != "4" || now.Metadata.UpdatedBy != "olive" {
		t.Errorf("after the rollback: %+v", now.Metadata)
	}
	hist := decodeAs[struct {
		Revisions []revisionView `json:"revisions"`
	}](t, admin.do("GET", vsPath+"/history", nil, nil)).Revisions
	if len(hist) != 4 || hist[0].Revision != 4 || hist[0].RolledBackTo != 1 || hist[0].Actor != "olive" || !strings.Contains(hist[0].Message, "revision 1") {
		t.Errorf("history after the rollback: %+v", hist)
	}
	// Revision 3 still says what it did.
	r3 := decodeAs[revisionView](t, admin.do("GET", "/api/v1/revisions/3", nil, nil))
	if len(r3.Changes) != 1 || !strings.Contains(string(r3.Changes[0].After.Spec), `"v3"`) {
		t.Errorf("revision 3 was rewritten: %+v", r3)
	}
	// Rolling back to where it already is changes nothing and writes no revision.
	res = operator.do("POST", vsPath+"/rollback", map[string]int64{"revision": 4}, nil)
	if out := decodeAs[writeOutcome](t, res); res.status != http.StatusOK || out.Revision != 0 || out.Results[0].Action != "unchanged" {
		t.Errorf("rollback to the current state: %d %s", res.status, res.body)
	}

	wantStatus(t, "roll back to a revision that does not exist", operator.do("POST", vsPath+"/rollback", map[string]int64{"revision": 99}, nil), http.StatusNotFound, "revision 99")
	wantStatus(t, "roll back the mesh to a revision that does not exist", operator.do("POST", "/api/v1/revisions/99/rollback", nil, nil), http.StatusNotFound, "revision 99")
	wantStatus(t, "roll back a resource that never was", operator.do("POST", resourcePath("VirtualService", "default", "nothing")+"/rollback", map[string]int64{"revision": 1}, nil), http.StatusNotFound, "")
	wantStatus(t, "roll back without a revision", operator.do("POST", vsPath+"/rollback", map[string]string{"rev": "1"}, nil), http.StatusBadRequest, "")
	wantStatus(t, "roll back to revision -1", operator.do("POST", "/api/v1/revisions/-1/rollback", nil, nil), http.StatusBadRequest, "")

	// The whole mesh: from revision 4, create, update, delete; then go back to 4.
	mark := admin.revision()
	var before []*store.Object
	for _, kind := range []string{"DestinationRule", "VirtualService", "Gateway"} {
		before = append(before, decodeAs[struct {
			Items []*store.Object `json:"items"`
		}](t, admin.do("GET", "/api/v1/"+config.KindPlural(kind), nil, nil)).Items...)
	}
	admin.mustApply(docs(drYAML("default", "ratings", "ratings", "v1", "v2"), vsYAML("default", "ratings", "ratings", "v2=100"))) // created
	admin.mustApply(vsYAML("default", "reviews", "reviews", "v2=100"))                                                            // updated
	wantStatus(t, "delete the gateway", admin.do("DELETE", resourcePath("Gateway", "default", "gw"), nil, nil), http.StatusOK, "")
	wantStatus(t, "delete the details rule", admin.do("DELETE", resourcePath("DestinationRule", "default", "details"), nil, nil), http.StatusOK, "")
	// Created and deleted again after the mark: nothing to restore.
	admin.mustApply(gwYAML("default", "temporary"))
	wantStatus(t, "delete the temporary gateway", admin.do("DELETE", resourcePath("Gateway", "default", "temporary"), nil, nil), http.StatusOK, "")
	last := admin.revision()

	res = operator.do("POST", "/api/v1/revisions/"+strconv.FormatInt(mark, 10)+"/rollback", nil, nil)
	wantStatus(t, "roll back the mesh", res, http.StatusOK, "")
	out := decodeAs[writeOutcome](t, res)
	got := actions(out.Results)
	sort.Strings(got)
	want := []string{
		"DestinationRule/default/details:created", "DestinationRule/default/ratings:deleted",
		"Gateway/default/gw:created", "VirtualService/default/ratings:deleted", "VirtualService/default/reviews:updated",
	}
	if !slices.Equal(got, want) || out.Revision != last+1 {
		t.Errorf("mesh rollback: revision %d, %v; want %d, %v", out.Revision, got, last+1, want)
	}
	var after []*store.Object
	for _, kind := range []string{"DestinationRule", "VirtualService", "Gateway"} {
		after = append(after, decodeAs[struct {
			Items []*store.Object `json:"items"`
		}](t, admin.do("GET", "/api/v1/"+config.KindPlural(kind), nil, nil)).Items...)
	}
	if len(after) != len(before) {
		t.Fatalf("after the mesh rollback %d resources, want %d", len(after), len(before))
	}
	for i := range before {
		if before[i].Key() != after[i].Key() || !sameJSON(t, before[i].Spec, after[i].Spec) {
			t.Errorf("%s is %s, want %s", after[i].Key(), after[i].Spec, before[i].Spec)
		}
	}
	if d := decodeAs[diffView](t, admin.do("GET", fmt.Sprintf("/api/v1/diff?from=%d&to=%d", mark, out.Revision), nil, nil)); len(d.Resources) != 0 {
		t.Errorf("the mesh differs from revision %d: %v", mark, d.keys())
	}
	if revs := decodeAs[struct {
		Current int64 `json:"current"`
	}](t, admin.do("GET", "/api/v1/revisions", nil, nil)); revs.Current != last+1 {
		t.Errorf("current revision %d, want %d", revs.Current, last+1)
	}
}

// TestDeleteReferencedDestinationRule: a DestinationRule whose subsets a route still uses
// cannot be deleted; once nothing uses it, it can.
func TestDeleteReferencedDestinationRule(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.admin()
	admin.mustApply(reviewsBase)
	drPath := resourcePath("DestinationRule", "default", "reviews")

	res := admin.do("DELETE", drPath, nil, nil)
	wantStatus(t, "delete a used DestinationRule", res, http.StatusBadRequest, "nothing was stored")
	p := problemOf(t, res)
	if len(p.Errors) != 1 || !strings.Contains(p.Errors[0].Message, "subset v1 of reviews is not defined") ||
		!strings.Contains(p.Errors[0].Path, "spec.http[0].route[0].destination.subset") {
		t.Errorf("errors %+v", p.Errors)
	}
	if _, res := admin.get("DestinationRule", "default", "reviews"); res.status != http.StatusOK {
		t.Errorf("the DestinationRule is gone: %d", res.status)
	}
	wantStatus(t, "delete the VirtualService", admin.do("DELETE", resourcePath("VirtualService", "default", "reviews"), nil, nil), http.StatusOK, "")
	wantStatus(t, "delete the unused DestinationRule", admin.do("DELETE", drPath, nil, nil), http.StatusOK, "")
}

// TestResourceRoles: viewers read, operators also roll back, admins also write; everyone must
// sign in; every write is in the audit log.
func TestResourceRoles(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.admin()
	e.addUser(admin, "vera", "viewer password!", auth.RoleViewer)
	e.addUser(admin, "olive", "operator password", auth.RoleOperator)
	viewer := e.signedIn("vera", "viewer password!")
	operator := e.signedIn("olive", "operator password")
	anon := e.browser()
	vsPath := resourcePath("VirtualService", "default", "reviews")

	wantStatus(t, "anonymous apply", anon.apply(reviewsBase, ""), http.StatusUnauthorized, "not signed in")
	admin.mustApply(reviewsBase) // 1
	out := admin.request("PUT", vsPath, "application/yaml", vsYAML("default", "reviews", "reviews", "v2=100"))
	wantStatus(t, "admin PUT", out, http.StatusOK, "") // 2

	for _, path := range []string{vsPath, "/api/v1/virtualservices", "/api/v1/namespaces/default/virtualservices", vsPath + "/history", "/api/v1/revisions", "/api/v1/revisions/1", "/api/v1/diff?from=1&to=2"} {
		wantStatus(t, "anonymous GET "+path, anon.do("GET", path, nil, nil), http.StatusUnauthorized, "")
		wantStatus(t, "viewer GET "+path, viewer.do("GET", path, nil, nil), http.StatusOK, "")
		wantStatus(t, "operator GET "+path, operator.do("GET", path, nil, nil), http.StatusOK, "")
	}

	for who, c := range map[string]*client{"viewer": viewer, "operator": operator} {
		wantStatus(t, who+" apply", c.apply(vsYAML("default", "reviews", "reviews", "v3=100"), ""), http.StatusForbidden, "needs the admin role")
		wantStatus(t, who+" PUT", c.request("PUT", vsPath, "application/yaml", vsYAML("default", "reviews", "reviews", "v3=100")), http.StatusForbidden, "needs the admin role")
		wantStatus(t, who+" create", c.request("POST", "/api/v1/namespaces/default/destinationrules", "application/yaml", drYAML("default", "ratings", "ratings", "v1")), http.StatusForbidden, "needs the admin role")
		wantStatus(t, who+" DELETE", c.do("DELETE", vsPath, nil, nil), http.StatusForbidden, "needs the admin role")
	}
	wantStatus(t, "viewer rollback", viewer.do("POST", vsPath+"/rollback", map[string]int64{"revision": 1}, nil), http.StatusForbidden, "needs the operator role")
	wantStatus(t, "viewer mesh rollback", viewer.do("POST", "/api/v1/revisions/1/rollback", nil, nil), http.StatusForbidden, "needs the operator role")
	wantStatus(t, "viewer audit", viewer.do("GET", "/api/v1/audit", nil, nil), http.StatusForbidden, "")
	wantStatus(t, "anonymous rollback", anon.do("POST", "/api/v1/revisions/1/rollback", nil, nil), http.StatusUnauthorized, "")
	if vs, _ := admin.get("VirtualService", "default", "reviews"); vs.Metadata.ResourceVersion != "2" {
		t.Fatalf("refused writes changed the VirtualService: %+v", vs.Metadata)
	}

	wantStatus(t, "operator rollback", operator.do("POST", vsPath+"/rollback", map[string]int64{"revision": 1}, nil), http.StatusOK, "")                                                              // 3
	wantStatus(t, "operator mesh rollback", operator.do("POST", "/api/v1/revisions/2/rollback", nil, nil), http.StatusOK, "")                                                                         // 4
	wantStatus(t, "admin DELETE", admin.do("DELETE", vsPath, nil, nil), http.StatusOK, "")                                                                                                            // 5
	wantStatus(t, "admin create", admin.request("POST", "/api/v1/namespaces/default/virtualservices", "application/yaml", vsYAML("default", "reviews", "reviews", "v1=100")), http.StatusCreated, "") // 6
	wantStatus(t, "admin rollback", admin.do("POST", "/api/v1/revisions/5/rollback", nil, nil), http.StatusOK, "")                                                                                    // 7

	res := operator.do("GET", "/api/v1/audit?target=VirtualService/default/reviews", nil, nil)
	wantStatus(t, "audit", res, http.StatusOK, "")
	var got []string
	for _, en := range decodeAs[struct {
		Entries []auditView `json:"entries"`
	}](t, res).Entries {
		got = append(got, en.Actor+" "+en.Action+" "+en.Target+" "+en.Detail)
		if en.Outcome != "success" || en.ClientAddr == "" {
			t.Errorf("audit entry %+v", en)
		}
	}
	want := []string{
		"admin resource.delete VirtualService/default/reviews revision 7: roll back the mesh to revision 5",
		"admin resource.create VirtualService/default/reviews revision 6",
		"admin resource.delete VirtualService/default/reviews revision 5",
		"olive resource.update VirtualService/default/reviews revision 4: roll back the mesh to revision 2",
		"olive resource.update VirtualService/default/reviews revision 3: roll back VirtualService default/reviews to revision 1",
		"admin resource.update VirtualService/default/reviews revision 2",
		"admin resource.create VirtualService/default/reviews revision 1",
	}
	if !slices.Equal(got, want) {
		t.Errorf("audit:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// The DestinationRule of the first apply is audited too, with its own target.
	res = admin.do("GET", "/api/v1/audit?target=DestinationRule/default/reviews&action=resource.create", nil, nil)
	if es := decodeAs[struct {
		Entries []auditView `json:"entries"`
	}](t, res).Entries; len(es) != 1 || es[0].Actor != "admin" || len(es[0].After) == 0 || len(es[0].Before) != 0 {
		t.Errorf("DestinationRule audit: %s", res.body)
	}
}

// TestListResources: by namespace, across namespaces, and by label.
func TestListResources(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.admin()
	withLabels := func(doc, labels string) string {
		return strings.Replace(doc, "metadata:\n", "metadata:\n  labels: {"+labels+"}\n", 1)
	}
	admin.mustApply(docs(
		withLabels(drYAML("default", "reviews", "reviews", "v1"), "app: reviews, team: a"),
		withLabels(drYAML("default", "ratings", "ratings", "v1"), "app: ratings, team: b"),
		withLabels(drYAML("prod", "reviews", "reviews", "v1"), "app: reviews, team: b"),
		drYAML("prod", "details", "details", "v1"),
		gwYAML("prod", "gw"),
	))
	list := func(path string) []string {
		t.Helper()
		res := admin.do("GET", path, nil, nil)
		if res.status != http.StatusOK {
			t.Fatalf("GET %s: %d %s", path, res.status, res.body)
		}
		v := decodeAs[struct {
			Items    []*store.Object `json:"items"`
			Revision int64           `json:"revision"`
		}](t, res)
		if v.Revision != 1 {
			t.Errorf("GET %s: revision %d, want 1", path, v.Revision)
		}
		out := []string{}
		for _, o := range v.Items {
			out = append(out, o.Metadata.Namespace+"/"+o.Metadata.Name)
		}
		return out
	}
	for _, tt := range []struct {
		path string
		want []string
	}{
		{"/api/v1/destinationrules", []string{"default/ratings", "default/reviews", "prod/details", "prod/reviews"}},
		{"/api/v1/namespaces/prod/destinationrules", []string{"prod/details", "prod/reviews"}},
		{"/api/v1/namespaces/staging/destinationrules", []string{}},
		{"/api/v1/destinationrules?labelSelector=app=reviews", []string{"default/reviews", "prod/reviews"}},
		{"/api/v1/destinationrules?labelSelector=team=b", []string{"default/ratings", "prod/reviews"}},
		{"/api/v1/destinationrules?labelSelector=app=reviews,team=b", []string{"prod/reviews"}},
		{"/api/v1/namespaces/default/destinationrules?labelSelector=team=b", []string{"default/ratings"}},
		{"/api/v1/destinationrules?labelSelector=team=c", []string{}},
		{"/api/v1/gateways", []string{"prod/gw"}},
		{"/api/v1/virtualservices", []string{}},
	} {
		if got := list(tt.path); !slices.Equal(got, tt.want) {
			t.Errorf("GET %s: %v, want %v", tt.path, got, tt.want)
		}
	}
	wantStatus(t, "bad selector", admin.do("GET", "/api/v1/destinationrules?labelSelector=team", nil, nil), http.StatusBadRequest, "key=value")
	wantStatus(t, "unknown kind", admin.do("GET", "/api/v1/sidecars", nil, nil), http.StatusNotFound, "destinationrules")
}
