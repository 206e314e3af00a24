package xds

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/registry"
)

// experimentStart is when the experiments of these tests start; they last a minute.
var experimentStart = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// faultExperiment parses a FaultExperiment in namespace default starting at experimentStart,
// with the spec lines given (indented for the spec).
func faultExperiment(t *testing.T, name string, spec string) []*config.Resource {
	t.Helper()
	doc := fmt.Sprintf("apiVersion: sluice.dev/v1alpha1\nkind: FaultExperiment\nmetadata: {name: %s, namespace: default}\nspec:\n  start: %s\n  duration: 1m\n%s",
		name, experimentStart.Format(time.RFC3339), spec)
	rs, err := config.ParseYAML([]byte(doc))
	if err != nil {
		t.Fatalf("experiment %s: %v", name, err)
	}
	return rs
}

// experimentRoutes builds a sidecar's outbound route table at now, with the given halted runs.
func experimentRoutes(t *testing.T, rs []*config.Resource, proxy registry.Workload, now time.Time, halted ...RunKey) (*routev3.RouteConfiguration, []Problem) {
	t.Helper()
	if errs := config.Validate(rs, nil); len(errs) > 0 {
		t.Fatalf("configuration does not validate: %v", errs)
	}
	mesh := BuildMesh(bookinfo())
	mesh.Config = IndexConfig(rs)
	mesh.Features = Features{Fault: true, Retries: true}
	mesh.Now = now
	mesh.Halted = map[RunKey]bool{}
	for _, h := range halted {
		mesh.Halted[h] = true
	}
	sh := newShared(mesh)
	res := BuildProxy(proxy, sh)
	return res.Routes[0].(*routev3.RouteConfiguration), sh.problems
}

// virtualHostsOf renders the virtual hosts of a route table whose name starts with prefix.
func virtualHostsOf(t *testing.T, rc *routev3.RouteConfiguration, prefix string) []byte {
	t.Helper()
	var out []json.RawMessage
	for _, vh := range rc.VirtualHosts {
		if !strings.HasPrefix(vh.Name, prefix) {
			continue
		}
		b, err := protojson.Marshal(vh)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

// TestExperimentOverlayGolden checks the routes an active experiment produces against golden
// files (go test ./server/internal/xds -update rewrites them).
func TestExperimentOverlayGolden(t *testing.T) {
	ws := bookinfo()
	during := experimentStart.Add(30 * time.Second)
	tests := []struct {
		name  string
		files []string
		exp   string
		// host is the virtual host shown.
		host string
	}{
		{
			// No VirtualService: the default route gets the fault.
			name: "experiment-default-route", host: "ratings.",
			exp: "  host: ratings\n  abort: {httpStatus: 503}\n",
		},
		{
			// The VirtualService's own fault (abort 500 for jason) is replaced on both of its
			// routes while the experiment runs.
			name: "experiment-precedence", host: "ratings.",
			files: []string{"bookinfo/networking/destination-rule-all.yaml", "bookinfo/networking/virtual-service-ratings-test-abort.yaml"},
			exp:   "  host: ratings\n  delay: {fixedDelay: 2s, percentage: 50}\n  abort: {httpStatus: 503, percentage: 10}\n",
		},
		{
			// match.headers: each route to reviews gets a copy before it that also requires the
			// headers and carries the fault; the original routes are unchanged.
			name: "experiment-match-headers", host: "reviews.",
			files: []string{"bookinfo/networking/destination-rule-all.yaml", "bookinfo/networking/virtual-service-reviews-test-v2.yaml"},
			exp:   "  host: reviews\n  match:\n    headers:\n      x-chaos: {exact: \"on\"}\n      x-user: {prefix: test-}\n  abort: {grpcStatus: UNAVAILABLE}\n",
		},
		{
			// With match.headers, the copies carry the experiment's fault and the originals
			// keep the VirtualService's (abort 500 for jason).
			name: "experiment-headers-keep-vs-fault", host: "ratings.",
			files: []string{"bookinfo/networking/destination-rule-all.yaml", "bookinfo/networking/virtual-service-ratings-test-abort.yaml"},
			exp:   "  host: ratings\n  match: {headers: {x-chaos: {regex: \"on|yes\"}}}\n  delay: {fixedDelay: 1s}\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rs []*config.Resource
			for _, f := range tc.files {
				rs = append(rs, istioFile(t, f)...)
			}
			rs = append(rs, faultExperiment(t, "chaos", tc.exp)...)
			rc, problems := experimentRoutes(t, rs, ws[0], during)
			if len(problems) > 0 {
				t.Errorf("problems: %+v", problems)
			}
			golden(t, tc.name, virtualHostsOf(t, rc, tc.host))
		})
	}
}

// The overlay exists only while the run is active: not before its start, not from its end on,
// and not once it was halted. The VirtualService it overlays is never changed.
func TestExperimentActiveWindow(t *testing.T) {
	ws := bookinfo()
	base := append(istioFile(t, "bookinfo/networking/destination-rule-all.yaml"),
		istioFile(t, "bookinfo/networking/virtual-service-ratings-test-abort.yaml")...)
	vsBefore := proto.Clone(base[len(base)-1].Spec.(proto.Message))
	rs := append(base, faultExperiment(t, "chaos", "  host: ratings\n  abort: {httpStatus: 503}\n")...)
	without, _ := experimentRoutes(t, base, ws[0], experimentStart.Add(30*time.Second))
	run := NewRunKey("default", "chaos", experimentStart)
	tests := []struct {
		name    string
		now     time.Time
		halted  []RunKey
		overlay bool
	}{
		{"before start", experimentStart.Add(-time.Nanosecond), nil, false},
		{"at start", experimentStart, nil, true},
		{"during", experimentStart.Add(59 * time.Second), nil, true},
		{"at end", experimentStart.Add(time.Minute), nil, false},
		{"after end", experimentStart.Add(time.Hour), nil, false},
		{"halted", experimentStart.Add(30 * time.Second), []RunKey{run}, false},
		{"another run halted", experimentStart.Add(30 * time.Second), []RunKey{NewRunKey("default", "chaos", experimentStart.Add(-time.Hour))}, true},
		{"no clock", time.Time{}, nil, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rc, _ := experimentRoutes(t, rs, ws[0], tc.now, tc.halted...)
			if got := !proto.Equal(rc, without); got != tc.overlay {
				t.Errorf("overlaid = %v, want %v", got, tc.overlay)
			}
		})
	}
	if !proto.Equal(vsBefore, base[len(base)-1].Spec.(proto.Message)) {
		t.Error("the VirtualService was modified by the overlay")
	}
}

// match.sourceLabels picks the sidecars that get the overlay.
func TestExperimentSourceLabels(t *testing.T) {
	ws := bookinfo()
	productpage, reviews := ws[0], ws[2]
	exp := faultExperiment(t, "chaos", "  host: ratings\n  match: {sourceLabels: {app: reviews, version: v1}}\n  abort: {httpStatus: 503}\n")
	during := experimentStart.Add(time.Second)
	for _, tc := range []struct {
		name    string
		proxy   registry.Workload
		overlay bool
	}{
		{"reviews-v1 is selected", reviews, true},
		{"reviews-v2 is not", ws[3], false},
		{"productpage is not", productpage, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			without, _ := experimentRoutes(t, nil, tc.proxy, during)
			with, _ := experimentRoutes(t, exp, tc.proxy, during)
			if got := !proto.Equal(with, without); got != tc.overlay {
				t.Errorf("overlaid = %v, want %v", got, tc.overlay)
			}
		})
	}
}

// Without fault support in the proxies, an active experiment is reported, not sent.
func TestExperimentWithoutFaultSupport(t *testing.T) {
	mesh := BuildMesh(bookinfo())
	mesh.Config = IndexConfig(faultExperiment(t, "chaos", "  host: ratings\n  abort: {httpStatus: 503}\n"))
	mesh.Now = experimentStart
	sh := newShared(mesh)
	rc := BuildProxy(bookinfo()[0], sh).Routes[0].(*routev3.RouteConfiguration)
	for _, vh := range rc.VirtualHosts {
		for _, r := range vh.Routes {
			if len(r.TypedPerFilterConfig) > 0 {
				t.Fatalf("route %s of %s carries filter config %v", r.Name, vh.Name, r.TypedPerFilterConfig)
			}
		}
	}
	if len(sh.problems) == 0 || sh.problems[0].Resource != "FaultExperiment/default/chaos" {
		t.Fatalf("problems %+v, want the experiment reported", sh.problems)
	}
}
