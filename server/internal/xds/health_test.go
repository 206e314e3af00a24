package xds

import (
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/registry"
)

// A workload whose application fails its probe stays in every load assignment, marked
// UNHEALTHY, so that proxies show it and balance only to the others.
func TestNotReadyEndpointsAreUnhealthy(t *testing.T) {
	p9080 := meta.PortMapping{Port: 9080, AppPort: 19080}
	sick := workload("default", "reviews", "v2", "127.0.0.6", p9080)
	sick.Health = registry.Health{NotReady: true, Reason: "GET /healthz: 503 Service Unavailable"}
	ws := []registry.Workload{
		workload("default", "productpage", "v1", "127.0.0.4", p9080),
		workload("default", "reviews", "v1", "127.0.0.5", p9080),
		sick,
	}
	res := BuildProxy(ws[0], newShared(BuildMesh(ws)))
	health := map[string]corev3.HealthStatus{}
	for _, r := range res.Endpoints {
		la := r.(*endpointv3.ClusterLoadAssignment)
		if la.GetClusterName() != meta.OutboundCluster(9080, "", "reviews.default.svc.cluster.local") {
			continue
		}
		for _, loc := range la.GetEndpoints() {
			for _, e := range loc.GetLbEndpoints() {
				health[e.GetEndpoint().GetAddress().GetSocketAddress().GetAddress()] = e.GetHealthStatus()
			}
		}
	}
	want := map[string]corev3.HealthStatus{"127.0.0.5": corev3.HealthStatus_HEALTHY, "127.0.0.6": corev3.HealthStatus_UNHEALTHY}
	if len(health) != len(want) || health["127.0.0.5"] != want["127.0.0.5"] || health["127.0.0.6"] != want["127.0.0.6"] {
		t.Errorf("reviews endpoints %v, want %v", health, want)
	}
}

func TestWorkloadFromNodeReadsAppHealth(t *testing.T) {
	node := func(health string) *corev3.Node {
		md, _ := structpb.NewStruct(map[string]any{
			meta.KeyNamespace: "default", meta.KeyService: "reviews", meta.KeyAddress: "127.0.0.5",
		})
		if health != "" {
			md.Fields[meta.KeyAppHealth] = structpb.NewStringValue(health)
		}
		return &corev3.Node{Id: "sidecar~127.0.0.5~reviews-v1.default", Metadata: md}
	}
	for health, want := range map[string]registry.Health{
		"":                               {},
		meta.AppReady:                    {},
		meta.AppNotReady + "GET /h: 503": {NotReady: true, Reason: "GET /h: 503"},
	} {
		w, err := WorkloadFromNode(node(health))
		if err != nil {
			t.Fatal(err)
		}
		if w.Health != want {
			t.Errorf("%s=%q: health %+v, want %+v", meta.KeyAppHealth, health, w.Health, want)
		}
	}
}
