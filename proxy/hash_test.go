package proxy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluicemesh/sluice/proxy/internal/xdsclient"
)

func TestConsistentHashing(t *testing.T) {
	for _, policy := range []clusterv3.Cluster_LbPolicy{clusterv3.Cluster_RING_HASH, clusterv3.Cluster_MAGLEV} {
		t.Run(policy.String(), func(t *testing.T) { testConsistentHashing(t, policy) })
	}
}

func testConsistentHashing(t *testing.T, policy clusterv3.Cluster_LbPolicy) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	addr := nextAddr()
	var eps []string
	for i := range 4 {
		eps = append(eps, upstream(t, echoServer(fmt.Sprintf("e%d", i))))
	}
	// Istio's consistentHash: a header, or a cookie with a ttl; RING_HASH with
	// minimumRingSize 1024, or MAGLEV.
	build := func(n int) world {
		return world{addr: addr,
			services: []service{
				{domains: []string{"users"}, backends: []backend{{cluster: "users", weight: 1, endpoints: eps[:n]}}},
				{domains: []string{"sessions"}, backends: []backend{{cluster: "sessions", weight: 1, endpoints: eps[:n]}}},
			},
			mutateClusters: func(_ string, c *clusterv3.Cluster) {
				c.LbPolicy = policy
				if policy == clusterv3.Cluster_RING_HASH {
					c.LbConfig = &clusterv3.Cluster_RingHashLbConfig_{RingHashLbConfig: &clusterv3.Cluster_RingHashLbConfig{
						MinimumRingSize: wrapperspb.UInt64(1024)}}
				}
			},
			mutate: func(rc *routev3.RouteConfiguration) {
				rc.VirtualHosts[0].Routes[0].GetRoute().HashPolicy = []*routev3.RouteAction_HashPolicy{{
					PolicySpecifier: &routev3.RouteAction_HashPolicy_Header_{Header: &routev3.RouteAction_HashPolicy_Header{HeaderName: "x-user"}}}}
				rc.VirtualHosts[1].Routes[0].GetRoute().HashPolicy = []*routev3.RouteAction_HashPolicy{{
					PolicySpecifier: &routev3.RouteAction_HashPolicy_Cookie_{Cookie: &routev3.RouteAction_HashPolicy_Cookie{
						Name: "session", Ttl: durationpb.New(time.Hour), Path: "/"}}}}
			},
		}
	}
	node := nodeID(addr, "test")
	cp.set(node, build(3).snapshot("1"))
	p := startProxy(t, cp, addr)

	endpointOf := func(user string) string {
		req := p.outboundRequest("GET", "users", "/")
		req.Header.Set("X-User", user)
		res, e := getEcho(t, p, req)
		if res.StatusCode != 200 {
			t.Fatalf("%d", res.StatusCode)
		}
		return e.Name
	}
	const users = 300
	before := map[string]string{}
	spread := map[string]int{}
	for i := range users {
		u := fmt.Sprintf("user-%d", i)
		before[u] = endpointOf(u)
		spread[before[u]]++
	}
	t.Run("a user always reaches the same endpoint", func(t *testing.T) {
		for i := range 20 {
			u := fmt.Sprintf("user-%d", i)
			for range 5 {
				if got := endpointOf(u); got != before[u] {
					t.Fatalf("%s went to %s, then %s", u, before[u], got)
				}
			}
		}
		if len(spread) != 3 {
			t.Errorf("users reached %v, want all three endpoints", spread)
		}
	})

	t.Run("a generated cookie keeps a client on one endpoint", func(t *testing.T) {
		res, e := getEcho(t, p, p.outboundRequest("GET", "sessions", "/"))
		setCookie := res.Header.Get("Set-Cookie")
		if !strings.HasPrefix(setCookie, `session="`) || !strings.Contains(setCookie, "Max-Age=3600") {
			t.Fatalf("Set-Cookie %q", setCookie)
		}
		cookie := res.Cookies()[0]
		// New connections would make other cookies; the one sent back decides.
		for range 10 {
			p.client.CloseIdleConnections()
			req := p.outboundRequest("GET", "sessions", "/")
			req.AddCookie(cookie)
			res, again := getEcho(t, p, req)
			if again.Name != e.Name || res.Header.Get("Set-Cookie") != "" {
				t.Fatalf("with the cookie: %s (want %s), Set-Cookie %q", again.Name, e.Name, res.Header.Get("Set-Cookie"))
			}
		}
	})

	t.Run("an endpoint joining moves about a quarter of the users, to itself", func(t *testing.T) {
		cp.set(node, build(4).snapshot("2"))
		// The proxy ACKs an update once it has applied it.
		eventually(t, 10*time.Second, "the fourth endpoint is in use", func() bool {
			return cp.acked(xdsclient.EndpointType, "2")
		})
		moved, toNew := 0, 0
		for i := range users {
			u := fmt.Sprintf("user-%d", i)
			if now := endpointOf(u); now != before[u] {
				moved++
				if now == "e3" {
					toNew++
				}
			}
		}
		share := float64(moved) / users
		if share < 0.1 || share > 0.4 {
			t.Errorf("%.0f%% of users moved, want about 25%%", share*100)
		}
		if float64(toNew) < 0.9*float64(moved) {
			t.Errorf("%d of %d moved users went to the new endpoint", toNew, moved)
		}
		t.Logf("%s: %d of %d users moved, %d to the new endpoint", policy, moved, users, toNew)
	})
}
