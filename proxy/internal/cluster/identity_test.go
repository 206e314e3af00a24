package cluster

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

func namedEndpoint(ip string, istio map[string]string) *endpointv3.LbEndpoint {
	lbe := &endpointv3.LbEndpoint{HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: ip, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 9080}}}}}}}
	if istio != nil {
		fields := map[string]*structpb.Value{}
		for k, v := range istio {
			fields[k] = structpb.NewStringValue(v)
		}
		lbe.Metadata = &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{IdentityMetadataKey: {Fields: fields}}}
	}
	return lbe
}

// The workload EDS names behind each endpoint reaches the endpoints a request picks.
func TestEndpointIdentityFromMetadata(t *testing.T) {
	cla := &endpointv3.ClusterLoadAssignment{ClusterName: "outbound|9080|v2|reviews.default.svc.cluster.local",
		Endpoints: []*endpointv3.LocalityLbEndpoints{{LbEndpoints: []*endpointv3.LbEndpoint{
			namedEndpoint("127.0.0.6", map[string]string{"workload": "reviews-v2", "namespace": "default", "version": "v2", "app": "reviews"}),
			namedEndpoint("127.0.0.7", nil),
			namedEndpoint("127.0.0.8", map[string]string{"workload": strings.Repeat("x", maxIdentityValue+1), "version": "v2"}),
		}}}}
	a, err := CompileAssignment(cla, false)
	if err != nil {
		t.Fatal(err)
	}
	var pools Pools
	c := New(&Config{Name: cla.ClusterName, Discovery: EDS, Policy: RoundRobin}, a, nil, &pools)
	got := map[string]Identity{}
	for _, e := range c.Endpoints {
		if e.Identity != nil {
			got[e.Address] = *e.Identity
		}
	}
	want := map[string]Identity{
		"127.0.0.6:9080": {Workload: "reviews-v2", Namespace: "default", Version: "v2", App: "reviews"},
		"127.0.0.8:9080": {Version: "v2"}, // the over-long workload is dropped, not cut
	}
	if len(got) != len(want) || got["127.0.0.6:9080"] != want["127.0.0.6:9080"] || got["127.0.0.8:9080"] != want["127.0.0.8:9080"] {
		t.Errorf("identities %+v, want %+v", got, want)
	}
}
