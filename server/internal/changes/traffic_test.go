package changes_test

import (
	"context"
	"errors"
	"maps"
	"strconv"
	"testing"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluicemesh/sluice/server/internal/changes"
	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/store"
)

func storedVS(t *testing.T, st *store.Store, name string) *networking.VirtualService {
	t.Helper()
	o, err := st.Get(context.Background(), store.Key{Kind: "VirtualService", Namespace: "default", Name: name})
	if err != nil {
		t.Fatal(err)
	}
	r, err := changes.FromObject(o)
	if err != nil {
		t.Fatal(err)
	}
	return r.Spec.(*networking.VirtualService)
}

// Without a VirtualService the slider creates one, and the subsets it needs.
func TestSetTrafficCreates(t *testing.T) {
	svc, st := newService(t)
	ctx := context.Background()
	out, err := svc.SetTraffic(ctx, alice, "default", "reviews", map[string]int32{"v1": 90, "v2": 10}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if out.Revision == 0 || len(out.Results) != 2 {
		t.Fatalf("outcome %+v, want one revision creating a VirtualService and a DestinationRule", out)
	}
	split, err := svc.Traffic(ctx, "default", "reviews")
	if err != nil {
		t.Fatal(err)
	}
	if !maps.Equal(split.Weights, map[string]int32{"v1": 90, "v2": 10}) || split.VirtualService != "reviews" {
		t.Fatalf("split %+v", split)
	}
	dr, err := st.Get(ctx, store.Key{Kind: "DestinationRule", Namespace: "default", Name: "reviews"})
	if err != nil {
		t.Fatalf("the DestinationRule was not created: %v", err)
	}
	r, _ := changes.FromObject(dr)
	if subsets := r.Spec.(*networking.DestinationRule).GetSubsets(); len(subsets) != 2 || subsets[1].GetLabels()["version"] != "v2" {
		t.Fatalf("subsets %v", subsets)
	}
}

// The slider edits the weights of the catch-all rule and keeps every other rule.
func TestSetTrafficKeepsOtherRules(t *testing.T) {
	svc, st := newService(t)
	ctx := context.Background()
	apply(t, svc, join(dr("default", "reviews", "reviews", "v1", "v2", "v3"), `apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match:
    - headers: {end-user: {exact: jason}}
    route:
    - destination: {host: reviews, subset: v2}
    timeout: 3s
  - route:
    - destination: {host: reviews, subset: v3}
`))
	before, err := svc.Traffic(ctx, "default", "reviews")
	if err != nil || !maps.Equal(before.Weights, map[string]int32{"v3": 100}) || before.OtherRules != 1 {
		t.Fatalf("before: %+v %v", before, err)
	}
	rv, err := strconv.ParseInt(before.ResourceVersion, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.SetTraffic(ctx, alice, "default", "reviews", map[string]int32{"v1": 70, "v3": 30}, rv); err != nil {
		t.Fatal(err)
	}
	spec := storedVS(t, st, "reviews")
	if len(spec.GetHttp()) != 2 || spec.GetHttp()[0].GetMatch()[0].GetHeaders()["end-user"].GetExact() != "jason" ||
		spec.GetHttp()[0].GetTimeout().AsDuration().String() != "3s" {
		t.Fatalf("the header rule was not kept: %v", spec.GetHttp())
	}
	after, _ := svc.Traffic(ctx, "default", "reviews")
	if !maps.Equal(after.Weights, map[string]int32{"v1": 70, "v3": 30}) {
		t.Fatalf("after: %+v", after)
	}

	// A second change from the same stale read is a conflict that names who changed it.
	_, err = svc.SetTraffic(ctx, changes.Actor{Name: "bob"}, "default", "reviews", map[string]int32{"v1": 100}, rv)
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.UpdatedBy != "alice" {
		t.Fatalf("stale change: %v, want a conflict naming alice", err)
	}
}

func TestSetTrafficRefusesBadWeights(t *testing.T) {
	svc, _ := newService(t)
	for name, weights := range map[string]map[string]int32{
		"none":     {},
		"all zero": {"v1": 0},
		"negative": {"v1": -5, "v2": 105},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := svc.SetTraffic(context.Background(), alice, "default", "reviews", weights, 0)
			var errs config.Errors
			if !errors.As(err, &errs) {
				t.Fatalf("got %v, want field errors", err)
			}
		})
	}
}
