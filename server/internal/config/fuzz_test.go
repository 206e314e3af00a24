package config

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseYAML checks that no input makes ParseYAML or Validate panic, that a failure is
// always an Errors with messages, and that every parsed spec survives storage: its SpecJSON
// decodes back to the same bytes.
func FuzzParseYAML(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "istio", "*", "*.yaml"))
	more, _ := filepath.Glob(filepath.Join("testdata", "istio", "*", "*", "*.yaml"))
	for _, name := range append(files, more...) {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		reviewsV1,
		`{"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule", "metadata": {"name": "a"}, "spec": {"host": "a"}}`,
		"kind: List\nitems:\n- " + indentItem(reviewsV1),
		fe("host: ratings\ndelay: {fixedDelay: 2s, percentage: 50}\nduration: 10m\nguard: {maxErrorRate: 0.05}\n"),
		rl("requestsPerUnit: 10\nunit: second\nperHeader: x-user\n"),
		pa("selector: {matchLabels: {app: a}}\nportLevelMtls: {8080: {mode: STRICT}}\n"),
		dr("host: a\ntrafficPolicy: {loadBalancer: {consistentHash: {ringHash: {minimumRingSize: 1024}}}}\n"),
		"--- {a: b}\n---\n&a [*a]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		res, err := ParseYAML(data)
		if err != nil {
			errs, ok := err.(Errors)
			if !ok || len(errs) == 0 || res != nil {
				t.Fatalf("ParseYAML returned %d resources and %T %v", len(res), err, err)
			}
			for _, e := range errs {
				if e.Message == "" {
					t.Fatalf("error without message at %q", e.Path)
				}
			}
			return
		}
		Validate(res, nil)
		Validate(res, Catalog(res))
		for _, r := range res {
			spec, err := DecodeSpec(r.Kind, r.SpecJSON)
			if err != nil {
				t.Fatalf("SpecJSON of %s does not decode: %v\n%s", r.Key(), err, r.SpecJSON)
			}
			again, err := EncodeSpec(spec)
			if err != nil || !bytes.Equal(again, r.SpecJSON) {
				t.Fatalf("SpecJSON of %s changes on a round trip (%v):\n%s\n%s", r.Key(), err, r.SpecJSON, again)
			}
		}
	})
}
