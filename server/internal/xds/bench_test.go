package xds

import (
	"fmt"
	"net/netip"
	"testing"

	"google.golang.org/protobuf/proto"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/registry"
)

// BenchmarkTranslate measures a full push's translation for a mesh of N services with two
// versions each, a DestinationRule with two subsets and a VirtualService splitting traffic
// per service: building the shared clusters and endpoints plus one sidecar's configuration.
// It reports the size of that sidecar's configuration.
func BenchmarkTranslate(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("services=%d", n), func(b *testing.B) {
			var ws []registry.Workload
			var rs []*config.Resource
			for i := range n {
				svc := fmt.Sprintf("svc-%d", i)
				for v := 1; v <= 2; v++ {
					addr := netip.AddrFrom4([4]byte{127, byte(1 + i/250), byte(i % 250), byte(v)})
					w := workload("default", svc, fmt.Sprintf("v%d", v), addr.String(), meta.PortMapping{Port: 9080, AppPort: 19080})
					ws = append(ws, w)
				}
				rs = append(rs,
					&config.Resource{Kind: "DestinationRule", Namespace: "default", Name: svc, Spec: &networking.DestinationRule{
						Host: svc, Subsets: []*networking.Subset{{Name: "v1", Labels: map[string]string{"version": "v1"}}, {Name: "v2", Labels: map[string]string{"version": "v2"}}},
					}},
					&config.Resource{Kind: "VirtualService", Namespace: "default", Name: svc, Spec: &networking.VirtualService{
						Hosts: []string{svc},
						Http: []*networking.HTTPRoute{{Route: []*networking.HTTPRouteDestination{
							{Destination: &networking.Destination{Host: svc, Subset: "v1"}, Weight: 90},
							{Destination: &networking.Destination{Host: svc, Subset: "v2"}, Weight: 10},
						}}},
					}})
			}
			cfg := IndexConfig(rs)
			var size int
			b.ResetTimer()
			for range b.N {
				mesh := BuildMesh(ws)
				mesh.Config = cfg
				res := BuildProxy(ws[0], newShared(mesh))
				if size == 0 {
					for _, group := range [][]any{toAny(res.Listeners), toAny(res.Routes), toAny(res.Clusters), toAny(res.Endpoints)} {
						for _, r := range group {
							size += proto.Size(r.(proto.Message))
						}
					}
				}
			}
			b.ReportMetric(float64(size)/1024, "config-KiB")
		})
	}
}

func toAny[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}
