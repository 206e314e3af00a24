package xds

import (
	"slices"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluicemesh/sluice/server/internal/config"
)

// A marshaled resource reaches the proxy as exactly the resource: go-control-plane encodes
// it into an Any of the requested type, and decoding that gives the original back.
func TestMarshaledEncodesAsTheResource(t *testing.T) {
	sh := newShared(BuildMesh(bookinfo()))
	res := BuildProxy(bookinfo()[0], sh)
	all := append(append(append([]types.Resource{}, res.Listeners...), res.Clusters...), res.Endpoints...)
	all = append(all, res.Routes...)
	wrapped, hash, err := marshalAll(all)
	if err != nil {
		t.Fatal(err)
	}
	if want := hashResources(all); hash != want || hashResources(wrapped) != want {
		t.Errorf("hash of the marshaled resources %x (rehashed %x), of the resources %x", hash, hashResources(wrapped), want)
	}
	for i, w := range wrapped {
		orig := all[i]
		if got, want := cachev3.GetResourceName(w), cachev3.GetResourceName(orig); got != want || got == "" {
			t.Errorf("resource %d named %q, want %q", i, got, want)
		}
		b, err := cachev3.MarshalResource(w)
		if err != nil {
			t.Fatal(err)
		}
		back := orig.ProtoReflect().New().Interface()
		if err := (&anypb.Any{TypeUrl: "type.googleapis.com/" + string(orig.ProtoReflect().Descriptor().FullName()), Value: b}).UnmarshalTo(back); err != nil {
			t.Fatalf("%s: decode the sent bytes: %v", cachev3.GetResourceName(orig), err)
		}
		if !proto.Equal(back, orig) {
			t.Errorf("%s: sent %v, want %v", cachev3.GetResourceName(orig), back, orig)
		}
	}
	// Wrapping again is free and changes nothing.
	again, hash2, err := marshalAll(wrapped)
	if err != nil || hash2 != hash || again[0] != wrapped[0] {
		t.Errorf("marshalAll of marshaled resources: hash %x (want %x), same object %v, %v", hash2, hash, again[0] == wrapped[0], err)
	}
}

// The consistency check sees what go-control-plane's would: a listener naming a route table
// the proxy does not get, or a cluster naming a missing endpoint set, is refused.
func TestConsistentRefusesDanglingReferences(t *testing.T) {
	sh := newShared(BuildMesh(bookinfo()))
	res := BuildProxy(bookinfo()[0], sh)
	routes, endpoints := resourceNames(res.Routes), resourceNames(res.Endpoints)
	extra := res.Clusters[len(sh.clusters):]
	own := func(clusters []types.Resource) *ownSet {
		o, err := newOwnSet(res.Listeners, clusters, nil, 1)
		if err != nil {
			t.Fatal(err)
		}
		return o
	}
	if err := own(extra).consistent(routes, endpoints); err != nil {
		t.Fatalf("a built proxy is inconsistent: %v", err)
	}
	if err := sameNames(resourcev3.EndpointType, references(sh.clusters), endpoints); err != nil {
		t.Fatalf("the shared clusters are inconsistent: %v", err)
	}
	if err := own(extra).consistent(map[string]bool{}, endpoints); err == nil {
		t.Error("listeners naming a missing route table passed")
	}
	eds := &clusterv3.Cluster{Name: "outbound|9|missing", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS}}
	if err := own([]types.Resource{eds}).consistent(routes, endpoints); err == nil {
		t.Error("a cluster naming a missing endpoint set passed")
	}
	if err := sameNames(resourcev3.EndpointType, references(sh.clusters), map[string]bool{}); err == nil {
		t.Error("shared clusters without their endpoints passed")
	}
}

// Sidecars of one namespace share one route table unless a route matches on sourceLabels.
func TestRouteTablesSharedUnlessSourceLabels(t *testing.T) {
	ws := bookinfo()
	a, b := ws[0], ws[1]
	if a.Namespace != b.Namespace || labelKey(a.Labels) == labelKey(b.Labels) {
		t.Fatalf("the test wants two workloads of one namespace with different labels: %+v, %+v", a, b)
	}
	mesh := BuildMesh(ws)
	sh := newShared(mesh)
	if ra, rb := sh.routesFor(a), sh.routesFor(b); &ra[0] != &rb[0] {
		t.Error("without sourceLabels, two sidecars of one namespace got different route tables")
	}
	rs := istioFile(t, "bookinfo/networking/destination-rule-all.yaml")
	vs, err := config.ParseYAML([]byte(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: by-source, namespace: default}
spec:
  hosts: [ratings]
  http:
  - match: [{sourceLabels: {app: reviews, version: v2}}]
    route: [{destination: {host: ratings}}]
  - route: [{destination: {host: ratings}}]
`))
	if err != nil {
		t.Fatal(err)
	}
	mesh = BuildMesh(ws)
	mesh.Config = IndexConfig(append(rs, vs...))
	sh = newShared(mesh)
	if ra, rb := sh.routesFor(a), sh.routesFor(b); &ra[0] == &rb[0] {
		t.Error("with a sourceLabels match, two sidecars with different labels share a route table")
	}
}

// A sidecar's own listeners are reused across pushes only while the resources they are built
// from are unchanged: a PeerAuthentication, AuthorizationPolicy or RateLimit edit changes the
// inputs' hash, a routing edit does not.
func TestListenerInputs(t *testing.T) {
	parse := func(doc string) []*config.Resource {
		t.Helper()
		rs, err := config.ParseYAML([]byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		if errs := config.Validate(rs, nil); len(errs) > 0 {
			t.Fatalf("%v", errs)
		}
		return rs
	}
	routing := istioFile(t, "bookinfo/networking/destination-rule-all.yaml")
	strict := parse("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: STRICT}}\n")
	permissive := parse("apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: PERMISSIVE}}\n")
	deny := parse("apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: deny, namespace: default}\nspec: {action: DENY, rules: [{to: [{operation: {methods: [DELETE]}}]}]}\n")

	base := IndexConfig(strict).listenerInputs
	if base == 0 {
		t.Fatal("stored resources hash to 0 (never reused)")
	}
	if got := IndexConfig(append(slices.Clone(strict), routing...)).listenerInputs; got != base {
		t.Error("a DestinationRule changed the listener inputs")
	}
	if got := IndexConfig(permissive).listenerInputs; got == base {
		t.Error("STRICT → PERMISSIVE left the listener inputs unchanged")
	}
	if got := IndexConfig(append(slices.Clone(strict), deny...)).listenerInputs; got == base {
		t.Error("a new AuthorizationPolicy left the listener inputs unchanged")
	}
	unknown := []*config.Resource{{Kind: "PeerAuthentication", Namespace: "default", Name: "x", Spec: strict[0].Spec}}
	if got := IndexConfig(unknown).listenerInputs; got != 0 {
		t.Errorf("a resource without its canonical JSON hashed to %x, want 0 (never reused)", got)
	}
}
