package config

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
)

const reviewsV1 = `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
`

func TestParseYAMLDocuments(t *testing.T) {
	ratings := strings.ReplaceAll(reviewsV1, "reviews", "ratings")
	tests := []struct {
		name    string
		input   string
		origins []string // Origin of each resource
		keys    []string
	}{
		{"one document", reviewsV1, []string{""}, []string{"VirtualService/default/reviews"}},
		{"empty documents, comments and markers are skipped",
			"# leading comment\n---\n---\n" + reviewsV1 + "--- # next\n\n# nothing here\n---\n" + ratings + "...\n",
			[]string{"documents[0]", "documents[1]"},
			[]string{"VirtualService/default/reviews", "VirtualService/default/ratings"}},
		{"Windows line endings", strings.ReplaceAll(reviewsV1+"---\n"+ratings, "\n", "\r\n"),
			[]string{"documents[0]", "documents[1]"},
			[]string{"VirtualService/default/reviews", "VirtualService/default/ratings"}},
		{"namespace given", strings.Replace(reviewsV1, "  name: reviews\n", "  name: reviews\n  namespace: prod\n", 1),
			[]string{""}, []string{"VirtualService/prod/reviews"}},
		{"JSON", `{"apiVersion": "networking.istio.io/v1beta1", "kind": "VirtualService", "metadata": {"name": "reviews"},
	"spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]}}`,
			[]string{""}, []string{"VirtualService/default/reviews"}},
		{"JSON stream", `{"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "a"}, "spec": {"host": "a"}}
{"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "b"}, "spec": {"host": "b"}}`,
			[]string{"documents[0]", "documents[1]"},
			[]string{"DestinationRule/default/a", "DestinationRule/default/b"}},
		{"YAML flow mapping", `{apiVersion: networking.istio.io/v1, kind: DestinationRule, metadata: {name: a}, spec: {host: a}}`,
			[]string{""}, []string{"DestinationRule/default/a"}},
		{"List", "apiVersion: v1\nkind: List\nitems:\n- " + indentItem(reviewsV1) + "- " + indentItem(ratings),
			[]string{"items[0]", "items[1]"},
			[]string{"VirtualService/default/reviews", "VirtualService/default/ratings"}},
		{"List among documents", reviewsV1 + "---\napiVersion: v1\nkind: List\nitems:\n- " + indentItem(ratings),
			[]string{"documents[0]", "documents[1].items[0]"},
			[]string{"VirtualService/default/reviews", "VirtualService/default/ratings"}},
		{"status and server-set metadata are ignored", strings.Replace(reviewsV1, "  name: reviews\n",
			"  name: reviews\n  resourceVersion: \"42\"\n  uid: 0f6c\n  creationTimestamp: \"2026-01-01T00:00:00Z\"\n  generation: 3\n", 1) +
			"status:\n  validationMessages: []\n",
			[]string{""}, []string{"VirtualService/default/reviews"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := ParseYAML([]byte(tt.input))
			if err != nil {
				t.Fatalf("ParseYAML: %v", err)
			}
			var origins, keys []string
			for _, r := range res {
				origins = append(origins, r.Origin)
				keys = append(keys, r.Key())
			}
			if !slices.Equal(origins, tt.origins) || !slices.Equal(keys, tt.keys) {
				t.Errorf("got origins %q keys %q, want %q %q", origins, keys, tt.origins, tt.keys)
			}
		})
	}
}

// indentItem turns a document into a List item following "- ".
func indentItem(doc string) string {
	return strings.ReplaceAll(strings.TrimSuffix(doc, "\n"), "\n", "\n  ") + "\n"
}

func TestParseYAMLErrors(t *testing.T) {
	bad := strings.Replace(reviewsV1, "subset: v1}", "subset: v1, wieght: 5}", 1)
	tests := []struct {
		name  string
		input string
		want  Errors
	}{
		{"document index among non-empty documents", "---\n" + reviewsV1 + "---\n# empty\n---\n" + bad,
			Errors{{"documents[1].spec.http[0].route[0].destination.wieght", `unknown field "wieght" (known fields: host, subset, port)`}}},
		{"errors in several documents", bad + "---\n" + bad + "---\nkind: EnvoyFilter\napiVersion: networking.istio.io/v1alpha3\n",
			Errors{
				{"documents[0].spec.http[0].route[0].destination.wieght", `unknown field "wieght" (known fields: host, subset, port)`},
				{"documents[1].spec.http[0].route[0].destination.wieght", `unknown field "wieght" (known fields: host, subset, port)`},
				{"documents[2].kind", "kind EnvoyFilter is not supported by Sluice (supported: VirtualService, DestinationRule, Gateway, ServiceEntry, PeerAuthentication, AuthorizationPolicy, FaultExperiment, RateLimit)"},
			}},
		{"List item", "apiVersion: v1\nkind: List\nitems:\n- " + indentItem(reviewsV1) + "- " + indentItem(bad),
			Errors{{"items[1].spec.http[0].route[0].destination.wieght", `unknown field "wieght" (known fields: host, subset, port)`}}},
		{"List in a List", "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: List, items: []}\n",
			Errors{{"items[0].kind", "a List cannot hold another List: put its items in the outer one"}}},
		{"YAML error line counts from the start of the input", reviewsV1 + "---\napiVersion: v1\nkind: [\n",
			Errors{{"documents[1]", "invalid YAML: line 12: did not find expected node content"}}},
		{"bad JSON after a good document", `{"apiVersion": "v1"} {"kind": `,
			Errors{{"documents[0].kind", "kind is required"}, {"documents[1]", "invalid JSON: unexpected EOF"}}},
		{"empty input", "# nothing\n---\n", Errors{{"", "the input holds no resources"}}},
		{"generateName", strings.Replace(reviewsV1, "  name: reviews\n", "  generateName: reviews-\n", 1),
			Errors{{"metadata.generateName", "generateName is not supported: set name"}, {"metadata.name", "name is required"}}},
		{"bad namespace", strings.Replace(reviewsV1, "  name: reviews\n", "  name: reviews\n  namespace: Prod\n", 1),
			Errors{{"metadata.namespace", `namespace "Prod" is not valid: use lower-case letters, digits and '-', starting and ending with a letter or digit (at most 63 characters)`}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := ParseYAML([]byte(tt.input))
			if res != nil {
				t.Errorf("ParseYAML returned %d resources with its error", len(res))
			}
			if got := asErrors(t, err); !slices.Equal(got, tt.want) {
				t.Errorf("got:\n%v\nwant:\n%v", got, tt.want)
			}
		})
	}
}

func TestParseYAMLLimits(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{"too large", reviewsV1 + "# " + strings.Repeat("x", MaxInputBytes) + "\n", "over the limit of 4194304 (4 MiB)"},
		{"too many documents", strings.Repeat("---\n{kind: x}\n", MaxDocuments+1), "the input holds more than 1000 documents"},
		{"too many JSON documents", strings.Repeat(`{"kind": "x"}`, MaxDocuments+1), "the input holds more than 1000 documents"},
		{"too many List items", "kind: List\nitems:\n" + strings.Repeat("- "+indentItem(reviewsV1), MaxDocuments+1), "the input holds 1001 resources, over the limit of 1000"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseYAML([]byte(tt.input))
			errs := asErrors(t, err)
			if len(errs) != 1 || errs[0].Path != "" || !strings.Contains(errs[0].Message, tt.want) {
				t.Errorf("got %v, want one error containing %q", err, tt.want)
			}
		})
	}
}

func TestParseYAMLSpec(t *testing.T) {
	res, err := ParseYAML(readSample(t, "tasks/task-circuit-breaking-dr.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	dr, ok := res[0].Spec.(*networking.DestinationRule)
	if !ok {
		t.Fatalf("Spec is a %T", res[0].Spec)
	}
	od := dr.TrafficPolicy.OutlierDetection
	if got := od.BaseEjectionTime.AsDuration(); got != 3*time.Minute {
		t.Errorf("baseEjectionTime = %v, want 3m (Istio accepts Go durations)", got)
	}
	if got := od.Consecutive_5XxErrors.GetValue(); got != 1 {
		t.Errorf("consecutive5xxErrors = %d, want 1", got)
	}

	res, err = ParseYAML(readSample(t, "tasks/task-authz-http.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := res[0].Spec.(*security.AuthorizationPolicy); !ok {
		t.Fatalf("Spec is a %T", res[0].Spec)
	}
}

func TestSpecJSON(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{"proto names become JSON names; durations are normalized", vs(`
hosts: [reviews]
http:
- route:
  - destination: {host: reviews, subset: v1}
    weight: "100"
  timeout: 1m30s
  retries: {attempts: 2, per_try_timeout: 250ms}
`), `{"hosts":["reviews"],"http":[{"route":[{"destination":{"host":"reviews","subset":"v1"},"weight":100}],"timeout":"90s","retries":{"attempts":2,"perTryTimeout":"0.250s"}}]}`},
		{"map keys are sorted", dr(`
host: reviews
subsets:
- name: v1
  labels: {version: v1, app: reviews, tier: backend}
`), `{"host":"reviews","subsets":[{"name":"v1","labels":{"app":"reviews","tier":"backend","version":"v1"}}]}`},
		{"FaultExperiment defaults", fe(`
host: ratings
delay: {fixedDelay: 2s}
abort: {httpStatus: 503}
duration: 90m
guard: {maxErrorRate: 0.1}
`), `{"host":"ratings","delay":{"fixedDelay":"2s","percentage":100},"abort":{"httpStatus":503,"percentage":100},"duration":"1h30m0s","guard":{"maxErrorRate":0.1,"window":"10s"}}`},
		{"RateLimit defaults", rl(`
requestsPerUnit: 20
unit: second
`), `{"requestsPerUnit":20,"unit":"second","burst":20}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := ParseYAML([]byte(tt.input))
			if err != nil {
				t.Fatal(err)
			}
			r := res[0]
			if string(r.SpecJSON) != tt.want {
				t.Errorf("SpecJSON:\n got %s\nwant %s", r.SpecJSON, tt.want)
			}
			// Stored JSON decodes back to the same spec and the same bytes.
			spec, err := DecodeSpec(r.Kind, r.SpecJSON)
			if err != nil {
				t.Fatalf("DecodeSpec: %v", err)
			}
			again, err := EncodeSpec(spec)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, r.SpecJSON) {
				t.Errorf("round trip:\n got %s\nwant %s", again, r.SpecJSON)
			}
		})
	}
}

func TestDecodeSpecErrors(t *testing.T) {
	_, err := DecodeSpec(KindVirtualService, []byte(`{"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}, "wieght": 1}]}]}`))
	want := Errors{{"spec.http[0].route[0].wieght", `unknown field "wieght" (did you mean "weight"?)`}}
	if got := asErrors(t, err); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	_, err = DecodeSpec("Sidecar", []byte(`{}`))
	if got := asErrors(t, err); len(got) != 1 || got[0].Path != "kind" {
		t.Errorf("got %v, want a kind error", got)
	}
}

func TestValidateBuiltInCode(t *testing.T) {
	// The traffic slider builds resources in code: they carry no Origin.
	spec := &networking.VirtualService{
		Hosts: []string{"reviews"},
		Http: []*networking.HTTPRoute{{Route: []*networking.HTTPRouteDestination{
			{Destination: &networking.Destination{Host: "reviews", Subset: "v1"}, Weight: 70},
			{Destination: &networking.Destination{Host: "reviews", Subset: "v3"}, Weight: -30},
		}}},
	}
	tests := []struct {
		name string
		r    *Resource
		want Errors
	}{
		{"slider output", &Resource{Kind: KindVirtualService, Namespace: "default", Name: "reviews", Spec: spec},
			Errors{{"spec.http[0].route[1].weight", "weight -30 is negative: weights are shares of the traffic, use 0 or more"}}},
		{"wrong spec type", &Resource{Kind: KindDestinationRule, Namespace: "default", Name: "reviews", Spec: spec},
			Errors{{"spec", "a DestinationRule spec must be a *v1alpha3.DestinationRule, not a *v1alpha3.VirtualService"}}},
		{"nil spec", &Resource{Kind: KindGateway, Namespace: "default", Name: "gw", Spec: (*networking.Gateway)(nil)},
			Errors{{"spec", "spec is required"}}},
		{"unsupported kind", &Resource{Kind: "Sidecar", Namespace: "default", Name: "x"},
			Errors{{"kind", "kind Sidecar is not supported by Sluice (supported: VirtualService, DestinationRule, Gateway, ServiceEntry, PeerAuthentication, AuthorizationPolicy, FaultExperiment, RateLimit)"}}},
	}
	catalog := bookinfoCatalog(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Validate([]*Resource{tt.r}, catalog); !slices.Equal(got, tt.want) {
				t.Errorf("got:\n%v\nwant:\n%v", got, tt.want)
			}
		})
	}
}

func TestResolveHost(t *testing.T) {
	tests := []struct{ host, namespace, want string }{
		{"reviews", "default", "reviews.default.svc.cluster.local"},
		{"reviews", "prod", "reviews.prod.svc.cluster.local"},
		{"reviews", "", "reviews.default.svc.cluster.local"},
		{"reviews.prod", "default", "reviews.prod"},
		{"reviews.prod.svc.cluster.local", "default", "reviews.prod.svc.cluster.local"},
		{"www.googleapis.com", "default", "www.googleapis.com"},
		{"*", "default", "*"},
		{"*.example.com", "default", "*.example.com"},
		{"10.0.0.1", "default", "10.0.0.1"},
		{"::1", "default", "::1"},
	}
	for _, tt := range tests {
		if got := ResolveHost(tt.host, tt.namespace); got != tt.want {
			t.Errorf("ResolveHost(%q, %q) = %q, want %q", tt.host, tt.namespace, got, tt.want)
		}
	}
}

func TestKinds(t *testing.T) {
	plurals := map[string]string{
		"VirtualService": "virtualservices", "DestinationRule": "destinationrules", "Gateway": "gateways",
		"ServiceEntry": "serviceentries", "PeerAuthentication": "peerauthentications",
		"AuthorizationPolicy": "authorizationpolicies", "FaultExperiment": "faultexperiments", "RateLimit": "ratelimits",
	}
	for _, kind := range SupportedKinds() {
		want, ok := plurals[kind]
		if !ok {
			t.Errorf("unexpected kind %s", kind)
			continue
		}
		if got := KindPlural(kind); got != want {
			t.Errorf("KindPlural(%s) = %q, want %q", kind, got, want)
		}
		if got := KindFromPlural(want); got != kind {
			t.Errorf("KindFromPlural(%s) = %q, want %q", want, got, kind)
		}
		if len(APIVersions(kind)) == 0 {
			t.Errorf("APIVersions(%s) is empty", kind)
		}
	}
	if len(SupportedKinds()) != len(plurals) {
		t.Errorf("SupportedKinds() = %v", SupportedKinds())
	}
	if KindPlural("EnvoyFilter") != "" || KindFromPlural("envoyfilters") != "" || APIVersions("EnvoyFilter") != nil {
		t.Error("EnvoyFilter must be unknown")
	}
	r := &Resource{Kind: KindVirtualService, Namespace: "default", Name: "reviews"}
	if got := r.Key(); got != "VirtualService/default/reviews" {
		t.Errorf("Key() = %q", got)
	}
}

func TestErrors(t *testing.T) {
	errs := Errors{{Path: "documents[1].spec.hosts", Message: "hosts is required"}, {Message: "the input holds no resources"}}
	want := "documents[1].spec.hosts: hosts is required\nthe input holds no resources"
	if got := errs.Error(); got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if Errors(nil).Err() != nil {
		t.Error("empty Errors.Err() must be nil")
	}
	b, err := json.Marshal(errs[0])
	if err != nil || string(b) != `{"path":"documents[1].spec.hosts","message":"hosts is required"}` {
		t.Errorf("JSON = %s, %v", b, err)
	}
}

func ExampleParseYAML() {
	_, err := ParseYAML([]byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
    - destination: {host: reviews, subset: v2}
      weigth: 50
`))
	fmt.Println(err)
	// Output: spec.http[0].route[1].weigth: unknown field "weigth" (did you mean "weight"?)
}

func ExampleValidate() {
	res, err := ParseYAML([]byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v4}
`))
	if err != nil {
		panic(err)
	}
	fmt.Println(Validate(res, nil))
	// Output: spec.http[0].route[0].destination.subset: subset v4 of reviews is not defined: apply a DestinationRule for host reviews with subset v4 first
}
