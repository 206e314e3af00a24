package xds

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/registry"
)

// istioFile reads one of Istio's sample files kept as test data by the config package.
func istioFile(t *testing.T, rel string) []*config.Resource {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "config", "testdata", "istio", rel))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := config.ParseYAML(b)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return rs
}

// bookinfo is the registry of the Bookinfo demo plus an ingress gateway.
func bookinfo() []registry.Workload {
	p := meta.PortMapping{Port: 9080, AppPort: 19080}
	gw := registry.Workload{NodeID: "router~127.0.0.10~gw", Namespace: "istio-system", Service: "istio-ingressgateway",
		Name: "gw", Mode: meta.ModeGateway, Labels: map[string]string{"istio": "ingressgateway"}}
	gw.Address = mustAddr("127.0.0.10")
	return []registry.Workload{
		workload("default", "productpage", "v1", "127.0.0.4", p),
		workload("default", "details", "v1", "127.0.0.5", p),
		workload("default", "reviews", "v1", "127.0.0.6", p),
		workload("default", "reviews", "v2", "127.0.0.7", p),
		workload("default", "reviews", "v3", "127.0.0.8", p),
		workload("default", "ratings", "v1", "127.0.0.9", p),
		gw,
	}
}

// TestTranslateIstioSamples checks the translation of Istio's Bookinfo samples against golden
// files: subsets become clusters, VirtualService rules become routes in order, and Gateways
// become the ingress gateway's listeners and routes.
func TestTranslateIstioSamples(t *testing.T) {
	ws := bookinfo()
	tests := []struct {
		name  string
		files []string
		proxy registry.Workload
		// only restricts the golden file to some types, to keep it readable.
		only     string
		features Features
	}{
		{"productpage-faults-retries", []string{"bookinfo/networking/destination-rule-all.yaml", "bookinfo/networking/virtual-service-ratings-test-abort.yaml", "bookinfo/networking/virtual-service-reviews-test-v2.yaml"}, ws[0], "routes", Features{Fault: true, Retries: true, HeaderRewrite: true, Mirror: true}},
		{"productpage-reviews-jason-v2-v3", []string{"bookinfo/networking/destination-rule-all.yaml", "bookinfo/networking/virtual-service-reviews-jason-v2-v3.yaml"}, ws[0], "routes", Features{}},
		{"productpage-reviews-80-20", []string{"bookinfo/networking/destination-rule-all.yaml", "bookinfo/networking/virtual-service-reviews-80-20.yaml"}, ws[0], "routes", Features{}},
		{"productpage-subset-clusters", []string{"bookinfo/networking/destination-rule-all.yaml"}, ws[0], "clusters", Features{}},
		{"productpage-subset-endpoints", []string{"bookinfo/networking/destination-rule-all.yaml"}, ws[0], "endpoints", Features{}},
		{"gateway-bookinfo", []string{"bookinfo/networking/bookinfo-gateway.yaml"}, ws[6], "listeners+routes", Features{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var rs []*config.Resource
			for _, f := range tc.files {
				rs = append(rs, istioFile(t, f)...)
			}
			if errs := config.Validate(rs, nil); len(errs) > 0 {
				t.Fatalf("samples do not validate: %v", errs)
			}
			mesh := BuildMesh(ws)
			mesh.Config = IndexConfig(rs)
			mesh.Features = tc.features
			sh := newShared(mesh)
			res := BuildProxy(tc.proxy, sh)
			if len(sh.problems) > 0 {
				t.Errorf("problems: %+v", sh.problems)
			}
			switch tc.only {
			case "routes":
				res = &Resources{Routes: res.Routes}
			case "clusters":
				res = &Resources{Clusters: res.Clusters}
			case "endpoints":
				res = &Resources{Endpoints: res.Endpoints}
			case "listeners+routes":
				res = &Resources{Listeners: res.Listeners, Routes: res.Routes}
			}
			golden(t, tc.name, render(t, res))
		})
	}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden.json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file; review the change and run go test ./server/internal/xds -update\n%s", path, got)
	}
}

// A feature the proxies do not enforce is left out and reported, never sent.
func TestUnsupportedFeaturesAreReported(t *testing.T) {
	rs := append(istioFile(t, "bookinfo/networking/destination-rule-all.yaml"),
		istioFile(t, "bookinfo/networking/virtual-service-ratings-test-abort.yaml")...)
	mesh := BuildMesh(bookinfo())
	mesh.Config = IndexConfig(rs)
	sh := newShared(mesh)
	BuildProxy(bookinfo()[0], sh)
	if len(sh.problems) == 0 || sh.problems[0].Resource != "VirtualService/default/ratings" {
		t.Fatalf("problems %+v, want the ratings fault reported", sh.problems)
	}
	mesh.Features.Fault = true
	sh = newShared(mesh)
	BuildProxy(bookinfo()[0], sh)
	if len(sh.problems) != 0 {
		t.Fatalf("with fault support: problems %+v", sh.problems)
	}
}
