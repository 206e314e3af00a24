package registry_test

import (
	"context"
	"log/slog"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/internal/pgtest"
	"github.com/sluicemesh/sluice/server/internal/registry"
	"github.com/sluicemesh/sluice/server/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var migrated = pgtest.Template{Name: "migrated", Setup: store.Migrate}

func openStore(t *testing.T, url string) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), url, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func wl(id, svc, addr string) registry.Workload {
	return registry.Workload{
		NodeID: id, Namespace: "default", Service: svc, Name: id, Mode: meta.ModeSidecar,
		Labels: map[string]string{"version": "v1"}, Address: netip.MustParseAddr(addr),
		Ports: []meta.PortMapping{{Port: 9080, AppPort: 19080}}, ServiceAccount: svc,
	}
}

func ids(es []registry.Workload) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.NodeID)
	}
	return out
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestLifecycle(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, pgtest.New(t, migrated))
	reg := registry.New(st, slog.New(slog.DiscardHandler), 200*time.Millisecond)

	if err := reg.Connect(ctx, wl("a", "reviews", "127.0.0.2")); err != nil {
		t.Fatal(err)
	}
	if err := reg.Connect(ctx, wl("b", "reviews", "127.0.0.3")); err != nil {
		t.Fatal(err)
	}
	<-reg.Changed()
	if got := ids(reg.Endpoints()); len(got) != 2 {
		t.Fatalf("endpoints %v, want a and b", got)
	}

	// A drained workload leaves the endpoints at once and the store with it.
	if err := reg.Drain(ctx, "b"); err != nil {
		t.Fatal(err)
	}
	if got := ids(reg.Endpoints()); len(got) != 1 || got[0] != "a" {
		t.Fatalf("after drain: %v, want [a]", got)
	}
	stored, err := st.ListWorkloads(ctx)
	if err != nil || len(stored) != 1 {
		t.Fatalf("stored after drain: %v %v", ids(stored), err)
	}

	// A disconnected one keeps its endpoint during the grace period, then is reaped.
	if err := reg.Disconnect(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	if got := ids(reg.Endpoints()); len(got) != 1 {
		t.Fatalf("within grace: %v, want [a]", got)
	}
	waitFor(t, "a reaped", func() bool {
		n, err := reg.Reap(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	})
	if got := reg.Endpoints(); len(got) != 0 {
		t.Fatalf("after grace: %v, want none", ids(got))
	}
	if stored, _ := st.ListWorkloads(ctx); len(stored) != 0 {
		t.Fatalf("stored after reap: %v", ids(stored))
	}
}

func TestReconnectWithinGraceKeepsWorkload(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, pgtest.New(t, migrated))
	reg := registry.New(st, slog.New(slog.DiscardHandler), 100*time.Millisecond)
	w := wl("a", "reviews", "127.0.0.2")
	if err := reg.Connect(ctx, w); err != nil {
		t.Fatal(err)
	}
	// Two streams of one node (an old one closing after a new one opened): the node stays.
	if err := reg.Connect(ctx, w); err != nil {
		t.Fatal(err)
	}
	if err := reg.Disconnect(ctx, "a"); err != nil {
		t.Fatal(err)
	}
	time.Sleep(150 * time.Millisecond)
	if n, _ := reg.Reap(ctx); n != 0 {
		t.Fatalf("reaped a node that still has a stream")
	}
	if e := reg.List(); len(e) != 1 || !e[0].Connected {
		t.Fatalf("list: %+v, want a connected", e)
	}
}

func TestLoadAfterRestart(t *testing.T) {
	ctx := context.Background()
	url := pgtest.New(t, migrated)
	st := openStore(t, url)
	first := registry.New(st, slog.New(slog.DiscardHandler), time.Hour)
	if err := first.Connect(ctx, wl("a", "reviews", "127.0.0.2")); err != nil {
		t.Fatal(err)
	}

	// A new server on the same database: the workload is back, disconnected until its proxy
	// reconnects, and still an endpoint.
	second := registry.New(openStore(t, url), slog.New(slog.DiscardHandler), time.Hour)
	if err := second.Load(ctx); err != nil {
		t.Fatal(err)
	}
	es := second.List()
	if len(es) != 1 || es[0].Connected || es[0].DisconnectedAt.IsZero() {
		t.Fatalf("after load: %+v, want a, disconnected", es)
	}
	if es[0].Labels["version"] != "v1" || es[0].Ports[0].AppPort != 19080 || es[0].Address.String() != "127.0.0.2" {
		t.Fatalf("stored workload lost data: %+v", es[0])
	}
	if got := ids(second.Endpoints()); len(got) != 1 {
		t.Fatalf("endpoints after load: %v", got)
	}
}

func TestHealthFollowsTheProxysReports(t *testing.T) {
	ctx := context.Background()
	st := openStore(t, pgtest.New(t, migrated))
	reg := registry.New(st, slog.New(slog.DiscardHandler), time.Minute)
	drain := func() {
		select {
		case <-reg.Changed():
		default:
		}
	}
	health := func(id string) registry.Health {
		for _, w := range reg.Endpoints() {
			if w.NodeID == id {
				return w.Health
			}
		}
		t.Fatalf("%s is not among the endpoints", id)
		return registry.Health{}
	}
	// A proxy may register already not ready; its endpoint is still listed, marked.
	w := wl("a", "reviews", "127.0.0.2")
	w.Health = registry.Health{NotReady: true, Reason: "TCP connect to 127.0.0.2:19080: connection refused"}
	if err := reg.Connect(ctx, w); err != nil {
		t.Fatal(err)
	}
	if h := health("a"); !h.NotReady || h.Since.IsZero() {
		t.Fatalf("registered not ready: %+v", h)
	}
	drain()
	reg.SetHealth("a", false, "")
	select {
	case <-reg.Changed():
	default:
		t.Fatal("becoming ready did not signal a change")
	}
	if h := health("a"); h.NotReady || h.Reason != "" {
		t.Fatalf("after ready: %+v", h)
	}
	// The same report again changes nothing and signals nothing.
	reg.SetHealth("a", false, "")
	select {
	case <-reg.Changed():
		t.Fatal("an unchanged report signalled a change")
	default:
	}
	// A node the registry does not know is ignored.
	reg.SetHealth("nobody", true, "x")
	if n := len(reg.List()); n != 1 {
		t.Fatalf("%d workloads after a report for an unknown node", n)
	}
	// Health is not persisted: a restarted server learns it from the proxy again.
	if stored, err := st.ListWorkloads(ctx); err != nil || len(stored) != 1 || stored[0].Health != (registry.Health{}) {
		t.Fatalf("stored: %+v %v", stored, err)
	}
}
