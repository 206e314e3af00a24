package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The files under testdata/istio are Istio's own sample configuration (Apache-2.0), copied
// unchanged from the shared reference material: Sluice must accept them as they are.

func readSample(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "istio", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func parseSamples(t *testing.T, names ...string) []*Resource {
	t.Helper()
	var out []*Resource
	for _, name := range names {
		res, err := ParseYAML(readSample(t, name))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		out = append(out, res...)
	}
	return out
}

// apply replaces catalog entries by key, as the store does.
func apply(catalog Catalog, res []*Resource) Catalog {
	for _, r := range res {
		catalog = slices.DeleteFunc(catalog, func(c *Resource) bool { return c.Key() == r.Key() })
		catalog = append(catalog, r)
	}
	return catalog
}

func TestIstioSamples(t *testing.T) {
	// What a sample is applied on top of, as in Istio's tasks: Bookinfo's routes need the
	// subsets of destination-rule-all.yaml. The httpbin samples bring their own.
	bookinfo := []string{"bookinfo/networking/destination-rule-all.yaml", "bookinfo/networking/bookinfo-gateway.yaml"}
	tests := []struct {
		file  string
		setup []string
		// refused lists, per document, the kind ParseYAML must refuse by name; when set, the
		// file is not expected to parse.
		refused []string
	}{
		{file: "bookinfo/networking/bookinfo-gateway.yaml"},
		{file: "bookinfo/networking/certmanager-gateway.yaml"},
		{file: "bookinfo/networking/destination-rule-all-mtls.yaml"},
		{file: "bookinfo/networking/destination-rule-all.yaml"},
		{file: "bookinfo/networking/destination-rule-reviews.yaml", setup: bookinfo},
		{file: "bookinfo/networking/egress-rule-google-apis.yaml"},
		{file: "bookinfo/networking/fault-injection-details-v1.yaml", setup: bookinfo},
		{file: "bookinfo/networking/virtual-service-all-v1.yaml", setup: bookinfo},
		{file: "bookinfo/networking/virtual-service-details-v2.yaml", setup: bookinfo},
		{file: "bookinfo/networking/virtual-service-ratings-db.yaml", setup: bookinfo},
		{file: "bookinfo/networking/virtual-service-ratings-mysql-vm.yaml", setup: bookinfo},
		{file: "bookinfo/networking/virtual-service-ratings-mysql.yaml", setup: bookinfo},
		{file: "bookinfo/networking/virtual-service-ratings-test-abort.yaml", setup: bookinfo},
		{file: "bookinfo/networking/virtual-service-ratings-test-delay.yaml", setup: bookinfo},
		{file: "bookinfo/networking/virtual-service-reviews-50-v3.yaml", setup: bookinfo},
		{file: "bookinfo/networking/virtual-service-reviews-80-20.yaml", setup: bookinfo},
		{file: "bookinfo/networking/virtual-service-reviews-90-10.yaml", setup: bookinfo},
		{file: "bookinfo/networking/virtual-service-reviews-jason-v2-v3.yaml", setup: bookinfo},
		{file: "bookinfo/networking/virtual-service-reviews-test-v2.yaml", setup: bookinfo},
		{file: "bookinfo/networking/virtual-service-reviews-v2-v3.yaml", setup: bookinfo},
		{file: "bookinfo/networking/virtual-service-reviews-v3.yaml", setup: bookinfo},
		{file: "bookinfo/platform/productpage_envoy_ratelimit.yaml", refused: []string{"EnvoyFilter", "EnvoyFilter"}},
		{file: "tasks/fortio-deploy.yaml", refused: []string{"Service", "Deployment"}},
		{file: "tasks/httpbin-gateway.yaml"},
		{file: "tasks/httpbin.yaml", refused: []string{"ServiceAccount", "Service", "Deployment"}},
		{file: "tasks/task-authz-http.yaml"},
		{file: "tasks/task-circuit-breaking-dr.yaml"},
		{file: "tasks/task-ingress-httpbin.yaml"},
		{file: "tasks/task-mirroring.yaml"},
		{file: "tasks/task-request-timeouts.yaml", setup: bookinfo},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.file] = true
		t.Run(tt.file, func(t *testing.T) {
			res, err := ParseYAML(readSample(t, tt.file))
			if tt.refused != nil {
				var want Errors
				for i, kind := range tt.refused {
					want = append(want, FieldError{
						Path:    index("documents", i) + ".kind",
						Message: "kind " + kind + " is not supported by Sluice (supported: VirtualService, DestinationRule, Gateway, ServiceEntry, PeerAuthentication, AuthorizationPolicy, FaultExperiment, RateLimit)",
					})
				}
				if !slices.Equal(asErrors(t, err), want) {
					t.Fatalf("ParseYAML error:\n%v\nwant:\n%v", err, want)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseYAML: %v", err)
			}
			if len(res) == 0 {
				t.Fatal("ParseYAML returned no resources")
			}
			catalog := Catalog(parseSamples(t, tt.setup...))
			if errs := Validate(res, catalog); len(errs) > 0 {
				t.Fatalf("Validate:\n%v", errs)
			}
		})
	}
	// A sample added to testdata must be given a row above.
	for _, dir := range []string{"bookinfo/networking", "bookinfo/platform", "tasks"} {
		files, _ := filepath.Glob(filepath.Join("testdata", "istio", dir, "*.yaml"))
		for _, f := range files {
			if name := dir + "/" + filepath.Base(f); !covered[name] {
				t.Errorf("%s has no test case", name)
			}
		}
	}
}

// TestBookinfoSequence applies the configurations of Istio's Bookinfo tasks one after another,
// each validated against what the earlier ones stored, as the apply endpoint will.
func TestBookinfoSequence(t *testing.T) {
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
		// fault-injection-details-v1.yaml left details with subset v1 only.
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
		"tasks/task-authz-http.yaml",
		"bookinfo/networking/egress-rule-google-apis.yaml",
		"bookinfo/networking/certmanager-gateway.yaml",
	}
	var catalog Catalog
	for _, step := range steps {
		res := parseSamples(t, step)
		if errs := Validate(res, catalog); len(errs) > 0 {
			t.Fatalf("applying %s:\n%v", step, errs)
		}
		catalog = apply(catalog, res)
	}
	if got := len(catalog); got != 23 {
		t.Errorf("catalog holds %d resources, want 23", got)
	}
	// The last reviews route (task-request-timeouts.yaml) sends everything to v2: dropping
	// subset v2 from the reviews rule would break it.
	shrunk, err := ParseYAML([]byte(strings.Replace(string(readSample(t, "bookinfo/networking/destination-rule-reviews.yaml")),
		"  - name: v2\n    labels:\n      version: v2\n", "", 1)))
	if err != nil {
		t.Fatal(err)
	}
	errs := Validate(shrunk, catalog)
	want := Errors{{Path: "spec.subsets", Message: "subset v2 is still used by VirtualService default/reviews (spec.http[0].route[0].destination): route that traffic elsewhere first, then remove the subset"}}
	if !slices.Equal(errs, want) {
		t.Errorf("Validate:\n%v\nwant:\n%v", errs, want)
	}
}

func asErrors(t *testing.T, err error) Errors {
	t.Helper()
	if err == nil {
		return nil
	}
	errs, ok := err.(Errors)
	if !ok {
		t.Fatalf("error is a %T, want Errors: %v", err, err)
	}
	return errs
}
