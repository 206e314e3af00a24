package e2e

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/xds"

	"github.com/sluicemesh/sluice/internal/pgtest"
)

// grpc-go's own xDS client, with no sidecar, follows a weighted VirtualService across two
// gRPC backends: Sluice's xDS is the standard one, not a private dialect.
func TestProxylessGRPCFollowsWeights(t *testing.T) {
	cp := startServer(t, pgtest.New(t, pgtest.Template{}))
	v1 := startWorkload(t, cp, "b", "v1")
	v2 := startWorkload(t, cp, "b", "v2")
	cp.apply(t, `
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: b}
spec:
  host: b
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: b}
spec:
  hosts: [b]
  http:
  - route:
    - destination: {host: b, subset: v1, port: {number: 9090}}
      weight: 75
    - destination: {host: b, subset: v2, port: {number: 9090}}
      weight: 25
`)

	bootstrap, err := json.Marshal(map[string]any{
		"xds_servers": []any{map[string]any{
			"server_uri":      cp.xdsAddr,
			"channel_creds":   []any{map[string]any{"type": "insecure"}},
			"server_features": []string{"xds_v3"},
		}},
		"node": map[string]any{
			"id": "proxyless~127.0.0.1~grpc-client.default~default.svc.cluster.local",
			"metadata": map[string]any{
				"NAMESPACE": "default", "SERVICE": "grpc-client", "ADDRESS": "127.0.0.1", "MODE": "proxyless",
				"WORKLOAD_NAME": "grpc-client",
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	// What an application would put in GRPC_XDS_BOOTSTRAP_CONFIG; grpc-go reads that variable
	// once at start, so the test hands the same document to the resolver directly.
	resolver, err := xds.NewXDSResolverWithConfigForTesting(bootstrap)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("xds:///b:9090", grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithResolvers(resolver))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := testpb.NewTestServiceClient(conn)
	seen := map[string]int{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := 0; i < splitRequests; i++ {
		resp, err := client.UnaryCall(ctx, &testpb.SimpleRequest{FillServerId: true}, grpc.WaitForReady(true))
		if err != nil {
			var status map[string]any
			_, _ = getJSONWith(cp.api, "http://"+cp.httpAddr+"/api/v1/proxies", &status)
			t.Logf("proxy status (ACKs and NACKs): %v", status)
			t.Fatalf("call %d through grpc-go's xDS client: %v", i, err)
		}
		seen[resp.GetServerId()]++
	}
	within(t, "proxyless 75/25", seenShares(seen, instanceName(v1, "b", "v1")), "v1", 75)
	if seen[instanceName(v2, "b", "v2")] == 0 {
		t.Errorf("v2 never answered: %v", seen)
	}
}

// seenShares relabels counts by instance as "v1" and "other".
func seenShares(seen map[string]int, v1 string) map[string]int {
	out := map[string]int{}
	for inst, n := range seen {
		if inst == v1 {
			out["v1"] += n
		} else {
			out["other"] += n
		}
	}
	return out
}
