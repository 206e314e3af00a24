package filter

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/encoding/protojson"
)

// Every RBAC and local rate limit filter in the control plane's golden translations (Istio's
// authorization task, a policy using every field, RateLimits) compiles in the proxy: what
// the server sends, the proxy enforces rather than NACKs.
func TestCompileTranslatedFilters(t *testing.T) {
	dir := filepath.Join("..", "..", "..", "server", "internal", "xds", "testdata")
	authz, _ := filepath.Glob(filepath.Join(dir, "authz-*.golden.json"))
	limits, _ := filepath.Glob(filepath.Join(dir, "ratelimit-*.golden.json"))
	files := append(authz, limits...)
	if len(authz) == 0 || len(limits) == 0 {
		t.Fatalf("no authorization or rate limit golden files in %s", dir)
	}
	seen := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var doc struct {
			Listeners []json.RawMessage `json:"listeners"`
		}
		if err := json.Unmarshal(b, &doc); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, raw := range doc.Listeners {
			var l listenerv3.Listener
			if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, &l); err != nil {
				continue // listeners of types this package does not link
			}
			for _, fc := range l.GetFilterChains() {
				for _, nf := range fc.GetFilters() {
					var hcm hcmv3.HttpConnectionManager
					if nf.GetTypedConfig().UnmarshalTo(&hcm) != nil {
						continue
					}
					for _, hf := range hcm.GetHttpFilters() {
						switch hf.GetName() {
						case RBACName:
							var c rbachttpv3.RBAC
							if err := hf.GetTypedConfig().UnmarshalTo(&c); err != nil {
								t.Fatal(err)
							}
							if _, err := CompileRBAC(&c); err != nil {
								t.Errorf("%s, listener %s: %v", filepath.Base(f), l.GetName(), err)
							}
							seen[RBACName]++
						case RateLimitName:
							var c localrlv3.LocalRateLimit
							if err := hf.GetTypedConfig().UnmarshalTo(&c); err != nil {
								t.Fatal(err)
							}
							if _, err := CompileRateLimit(&c); err != nil {
								t.Errorf("%s, listener %s: %v", filepath.Base(f), l.GetName(), err)
							}
							seen[RateLimitName]++
						}
					}
				}
			}
		}
	}
	if seen[RBACName] < 4 || seen[RateLimitName] < 2 {
		t.Errorf("found %v filters in the golden files, want the authorization and rate limit translations", seen)
	}
}
