package xds

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/registry"
)

var update = flag.Bool("update", false, "rewrite the golden files")

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

func workload(ns, svc, version, addr string, ports ...meta.PortMapping) registry.Workload {
	return registry.Workload{
		NodeID: "sidecar~" + addr + "~" + svc + "-" + version + "." + ns, Namespace: ns, Service: svc,
		Name: svc + "-" + version, Mode: meta.ModeSidecar, Address: netip.MustParseAddr(addr),
		Labels: map[string]string{"app": svc, "version": version}, Ports: ports,
	}
}

func TestBuildProxyGolden(t *testing.T) {
	p9080 := meta.PortMapping{Port: 9080, AppPort: 19080}
	ws := []registry.Workload{
		workload("default", "reviews", "v1", "127.0.0.5", p9080),
		workload("default", "reviews", "v2", "127.0.0.6", p9080),
		workload("default", "productpage", "v1", "127.0.0.4", p9080),
		workload("other", "ratings", "v1", "127.0.0.7", p9080, meta.PortMapping{Port: 9090, AppPort: 19090}),
		{NodeID: "router~127.0.0.10~gw", Namespace: "istio-system", Service: "istio-ingressgateway",
			Name: "gw", Mode: meta.ModeGateway, Address: netip.MustParseAddr("127.0.0.10")},
	}
	mesh := BuildMesh(ws)
	tests := []struct {
		name string
		w    registry.Workload
	}{
		{"productpage-sidecar", ws[2]},
		{"ratings-sidecar-other-namespace", ws[3]},
		{"gateway", ws[4]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := BuildProxy(tc.w, newShared(mesh))
			snap := &cachev3.Snapshot{}
			for typ, items := range map[string][]types.Resource{
				resourcev3.ListenerType: res.Listeners, resourcev3.RouteType: res.Routes,
				resourcev3.ClusterType: res.Clusters, resourcev3.EndpointType: res.Endpoints,
			} {
				snap.Resources[cachev3.GetResponseType(typ)] = cachev3.NewResources("1", items)
			}
			if err := snap.Consistent(); err != nil {
				t.Fatalf("snapshot not consistent: %v", err)
			}
			got := render(t, res)
			path := filepath.Join("testdata", tc.name+".golden.json")
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
		})
	}
}

// render prints resources as stable, indented JSON.
func render(t *testing.T, r *Resources) []byte {
	t.Helper()
	out := map[string][]json.RawMessage{}
	for name, items := range map[string][]types.Resource{
		"listeners": r.Listeners, "routes": r.Routes, "clusters": r.Clusters, "endpoints": r.Endpoints,
	} {
		out[name] = []json.RawMessage{}
		for _, it := range items {
			b, err := protojson.Marshal(it)
			if err != nil {
				t.Fatal(err)
			}
			out[name] = append(out[name], b)
		}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}

func TestWorkloadFromNodeErrors(t *testing.T) {
	// The happy path is covered end to end; here, each malformed registration names its key.
	tests := []struct {
		name string
		meta map[string]any
		want string
	}{
		{"no namespace", map[string]any{"SERVICE": "a", "ADDRESS": "127.0.0.2"}, "NAMESPACE and SERVICE are required"},
		{"bad address", map[string]any{"NAMESPACE": "d", "SERVICE": "a", "ADDRESS": "x"}, `ADDRESS "x" is not an IP address`},
		{"bad ports", map[string]any{"NAMESPACE": "d", "SERVICE": "a", "ADDRESS": "127.0.0.2", "INBOUND_PORTS": "80"}, "INBOUND_PORTS"},
		{"bad mode", map[string]any{"NAMESPACE": "d", "SERVICE": "a", "ADDRESS": "127.0.0.2", "MODE": "x"}, `MODE "x"`},
		{"label not a string", map[string]any{"NAMESPACE": "d", "SERVICE": "a", "ADDRESS": "127.0.0.2", "LABELS": map[string]any{"v": 1.0}}, "LABELS.v must be a string"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := WorkloadFromNode(node(t, tc.meta))
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tc.want)) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func node(t *testing.T, m map[string]any) *corev3.Node {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return &corev3.Node{Id: "sidecar~x", Metadata: s}
}
