package proxy

import (
	"context"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sluicemesh/sluice/proxy/internal/cluster"
	"github.com/sluicemesh/sluice/proxy/internal/listener"
	"github.com/sluicemesh/sluice/proxy/internal/xdsclient"
)

// fakeClock is a clock the test moves.
type fakeClock struct{ t time.Time }

func (c *fakeClock) now() time.Time { return c.t }

// feeder hands a dataplane the resources of world snapshots, type by type, as the xDS client
// would, in whatever order a test chooses.
type feeder struct {
	t  *testing.T
	dp *dataplane
}

func (f feeder) send(typeURL string, w world, version string) {
	f.t.Helper()
	rs := map[string]*xdsclient.Resource{}
	for name, r := range w.snapshot(version).GetResources(typeURL) {
		rs[name] = &xdsclient.Resource{Name: name, Message: r.(proto.Message), Version: version}
	}
	if err := f.dp.Update(typeURL, version, rs); err != nil {
		f.t.Fatalf("%s %s: %v", xdsclient.Short(typeURL), version, err)
	}
}

func (f feeder) all(w world, version string) {
	for _, typ := range []string{resource.ClusterType, resource.EndpointType, resource.ListenerType, resource.RouteType} {
		f.send(typ, w, version)
	}
}

// serving returns the clusters the outbound route table serves with, sorted.
func serving(d *dataplane) []string {
	t := d.activeRDS["outbound"]
	if t == nil {
		return nil
	}
	out := slices.Clone(t.Clusters())
	slices.Sort(out)
	return out
}

func TestWarming(t *testing.T) {
	addr := nextAddr()
	clock := &fakeClock{t: time.Unix(1000, 0)}
	lm := listener.NewManager(&listener.Stats{}, slog.New(slog.DiscardHandler), time.Second)
	defer lm.Drain(context.Background())
	var pools cluster.Pools
	d := newDataplane(slog.New(slog.DiscardHandler), &pools, lm)
	d.now = clock.now
	f := feeder{t, d}
	svc := func(bs ...backend) world {
		return world{addr: addr, services: []service{{domains: []string{"reviews"}, backends: bs}}}
	}
	v1 := backend{cluster: "v1", weight: 1, endpoints: []string{"127.0.0.1:1"}}
	v2 := backend{cluster: "v2", weight: 1, endpoints: []string{"127.0.0.1:2"}}

	base := svc(v1)
	f.all(base, "1")
	if !d.Ready() {
		t.Fatalf("not ready after a full config; warming %v", warmingOf(d))
	}

	// The server adds cluster v2 and a route splitting traffic to it; the route arrives
	// before v2's endpoints.
	next := svc(v1, v2)
	f.send(resource.ClusterType, next, "2")
	if _, wl := d.Warming(); !slices.Equal(wl, []string{"v2"}) {
		t.Fatalf("warming clusters %v, want [v2]", wl)
	}
	f.send(resource.RouteType, next, "2")
	if got := serving(d); !slices.Equal(got, []string{"v1"}) {
		t.Fatalf("the route to a warming cluster was applied: serving %v", got)
	}
	f.send(resource.EndpointType, next, "2")
	if got := serving(d); !slices.Equal(got, []string{"v1", "v2"}) {
		t.Fatalf("after v2's endpoints arrived serving %v, want [v1 v2]", got)
	}

	// A cluster whose endpoints never come is used without them after the timeout, and so
	// is the route that waits for it.
	v3 := backend{cluster: "v3", weight: 1}
	third := svc(v1, v2, v3)
	f.send(resource.ClusterType, third, "3")
	f.send(resource.RouteType, third, "3")
	if got := serving(d); len(got) != 2 {
		t.Fatalf("serving %v before the timeout", got)
	}
	clock.t = clock.t.Add(cluster.DefaultWarmingTimeout)
	d.mu.Lock()
	if err := d.recompute(clock.now()); err != nil {
		t.Fatal(err)
	}
	d.mu.Unlock()
	if got := serving(d); len(got) != 3 {
		t.Fatalf("serving %v after the timeout, want v1 v2 v3", got)
	}
	if c := d.clusters["v3"]; c == nil || len(c.Endpoints) != 0 {
		t.Fatalf("v3 after the timeout: %+v", c)
	}

	// The server removes v2: its new clusters arrive before its new routes, and v2 stays
	// until the routes no longer use it.
	last := svc(v1, v3)
	f.send(resource.ClusterType, last, "4")
	if d.clusters["v2"] == nil {
		t.Fatal("v2 removed while the served routes still use it")
	}
	f.send(resource.RouteType, last, "4")
	if d.clusters["v2"] != nil {
		t.Fatal("v2 kept after the routes stopped using it")
	}
}

func warmingOf(d *dataplane) []string {
	l, c := d.Warming()
	return append(l, c...)
}
