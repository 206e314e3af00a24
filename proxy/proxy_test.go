package proxy

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"go.uber.org/goleak"
	"golang.org/x/sync/errgroup"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/proxy/internal/xdsclient"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// upstream starts an httptest server for handler and returns its "ip:port".
func upstream(t testing.TB, h http.Handler) string {
	t.Helper()
	s := httptest.NewServer(h)
	t.Cleanup(s.Close)
	return s.Listener.Addr().String()
}

func TestHTTP1RoutesByHostInOriginAndAbsoluteForm(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	addr := nextAddr()
	a, b, app := upstream(t, textServer("a")), upstream(t, textServer("b")), upstream(t, textServer("app"))
	w := world{addr: addr,
		services: []service{
			{domains: []string{"svc-a", "svc-a:80"}, backends: []backend{{cluster: "outbound|80||svc-a.default.svc.cluster.local", weight: 1, endpoints: []string{a}}}},
			{domains: []string{"svc-b", "svc-b:8080"}, backends: []backend{{cluster: "outbound|8080||svc-b.default.svc.cluster.local", weight: 1, endpoints: []string{b}}}},
			{domains: []string{"empty"}, backends: []backend{{cluster: "outbound|80||empty.default.svc.cluster.local", weight: 1}}},
			{domains: []string{"down"}, backends: []backend{{cluster: "outbound|80||down.default.svc.cluster.local", weight: 1, endpoints: []string{"127.0.0.1:1"}}}},
		},
		inbound: map[uint32]string{9080: app},
		mutate: func(rc *routev3.RouteConfiguration) {
			// A route to a cluster that does not exist.
			rc.VirtualHosts = append(rc.VirtualHosts, vhostToMissingCluster())
		},
	}
	cp.set(nodeID(addr, "test"), w.snapshot("1"))
	p := startProxy(t, cp, addr, "--inbound", "9080=19080")

	t.Run("origin form by Host", func(t *testing.T) {
		for host, want := range map[string]string{"svc-a": "a", "svc-a:80": "a", "SVC-B:8080": "b"} {
			res, body, err := p.get(host, "/x?y=1")
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode != 200 || body != want {
				t.Errorf("Host %s: %d %q, want 200 %q", host, res.StatusCode, body, want)
			}
			if got := res.Header.Get("X-Seen-Path"); got != "/x?y=1" {
				t.Errorf("upstream saw path %q", got)
			}
			if got := res.Header.Get("X-Seen-Host"); got != host {
				t.Errorf("upstream saw Host %q, want %q", got, host)
			}
			if res.Header.Get("X-Seen-Request-Id") == "" || res.Header.Get("X-Seen-Proto") != "http" {
				t.Errorf("x-request-id %q, x-forwarded-proto %q: want a generated id and http",
					res.Header.Get("X-Seen-Request-Id"), res.Header.Get("X-Seen-Proto"))
			}
		}
	})

	t.Run("absolute form through HTTP_PROXY", func(t *testing.T) {
		proxyURL, _ := url.Parse("http://" + net.JoinHostPort(addr, "15001"))
		tr := &http.Transport{Proxy: http.ProxyURL(proxyURL)}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		req, _ := http.NewRequest("GET", "http://svc-b:8080/some/path?q=1", nil)
		req.Header.Set("X-Request-Id", "keep-me")
		res, body, err := do(c, req)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 200 || body != "b" {
			t.Fatalf("got %d %q, want 200 b", res.StatusCode, body)
		}
		if got := res.Header.Get("X-Seen-Path"); got != "/some/path?q=1" {
			t.Errorf("upstream saw %q, want the origin-form path", got)
		}
		if got := res.Header.Get("X-Seen-Request-Id"); got != "keep-me" {
			t.Errorf("x-request-id %q, want the client's", got)
		}
		if got := res.Header.Get("X-Seen-Connection"); got != "" {
			t.Errorf("hop-by-hop headers reached the upstream: %q", got)
		}
	})

	t.Run("inbound listener forwards to the app", func(t *testing.T) {
		res, body, err := do(p.client, mustRequest("GET", "http://"+net.JoinHostPort(addr, "9080")+"/", "reviews:9080"))
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 200 || body != "app" {
			t.Fatalf("got %d %q, want 200 app", res.StatusCode, body)
		}
	})

	t.Run("local replies", func(t *testing.T) {
		tests := []struct {
			host, wantBody, wantReason string
			wantStatus                 int
		}{
			{"nobody", "", "no route for nobody GET /x", 404},
			{"empty", "no healthy upstream", "cluster outbound|80||empty.default.svc.cluster.local has no healthy endpoints", 503},
			{"missing", "", "cluster outbound|80||missing.default.svc.cluster.local not found", 503},
			{"down", "upstream connect error or disconnect/reset before headers. reset reason: connection failure", "connection refused", 503},
		}
		for _, tt := range tests {
			res, body, err := p.get(tt.host, "/x")
			if err != nil {
				t.Fatal(err)
			}
			reason := res.Header.Get("X-Sluice-Reason")
			if res.StatusCode != tt.wantStatus || body != tt.wantBody || !strings.Contains(reason, tt.wantReason) {
				t.Errorf("%s: %d %q reason %q, want %d %q reason containing %q",
					tt.host, res.StatusCode, body, reason, tt.wantStatus, tt.wantBody, tt.wantReason)
			}
		}
	})

	t.Run("admin", func(t *testing.T) {
		res, body, err := do(p.client, mustRequest("GET", "http://"+net.JoinHostPort(addr, "15000")+"/config_dump", ""))
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("config_dump: %v %v", res, err)
		}
		var dump struct {
			Configs []map[string]json.RawMessage `json:"configs"`
		}
		if err := json.Unmarshal([]byte(body), &dump); err != nil {
			t.Fatal(err)
		}
		var typesSeen []string
		for _, c := range dump.Configs {
			var typ string
			_ = json.Unmarshal(c["@type"], &typ)
			typesSeen = append(typesSeen, strings.TrimPrefix(typ, "type.googleapis.com/envoy.admin.v3."))
		}
		if got := strings.Join(typesSeen, ","); got != "BootstrapConfigDump,ClustersConfigDump,ListenersConfigDump,RoutesConfigDump,EndpointsConfigDump" {
			t.Errorf("config_dump types %s", got)
		}
		for _, want := range []string{`"name": "virtualOutbound"`, `"active_state"`, `"version_info": "1"`,
			`"@type": "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"`,
			`"cluster_name": "outbound|80||svc-a.default.svc.cluster.local"`, `"last_updated"`, `"LABELS"`} {
			if !strings.Contains(body, want) {
				t.Errorf("config_dump lacks %s", want)
			}
		}
		_, stats, err := do(p.client, mustRequest("GET", "http://"+net.JoinHostPort(addr, "15000")+"/stats", ""))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{"xds.connected: 1", `xds.lds.version: "1"`, "http.no_route: 1", "server.ready: 1"} {
			if !strings.Contains(stats, want) {
				t.Errorf("stats lack %q:\n%s", want, stats)
			}
		}
	})
}

func mustRequest(method, rawURL, host string) *http.Request {
	req, err := http.NewRequest(method, rawURL, nil)
	if err != nil {
		panic(err)
	}
	if host != "" {
		req.Host = host
	}
	return req
}

func TestNodeCarriesMetadataInEveryRequest(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	addr := nextAddr()
	w := world{addr: addr}
	cp.set(nodeID(addr, "test"), w.snapshot("1"))
	startProxy(t, cp, addr, "--inbound", "9080=19080")
	reqs := cp.seen(func(*discoveryv3.DiscoveryRequest) bool { return true })
	if len(reqs) < 2 {
		t.Fatalf("%d requests", len(reqs))
	}
	for _, r := range reqs {
		n := r.GetNode()
		md := n.GetMetadata().GetFields()
		if n.GetId() != nodeID(addr, "test") || n.GetCluster() != "test" ||
			md[meta.KeyNamespace].GetStringValue() != "default" ||
			md[meta.KeyService].GetStringValue() != "test" ||
			md[meta.KeyLabels].GetStructValue().GetFields()["version"].GetStringValue() != "v1" ||
			md[meta.KeyAddress].GetStringValue() != addr ||
			md[meta.KeyInboundPorts].GetStringValue() != "9080=19080" ||
			md[meta.KeyServiceAccount].GetStringValue() != "sa" ||
			md[meta.KeyWorkloadName].GetStringValue() != "test" ||
			md[meta.KeyMode].GetStringValue() != "sidecar" {
			t.Fatalf("%s request with node %v", r.GetTypeUrl(), n)
		}
		if _, ok := md[meta.KeyDraining]; ok {
			t.Fatalf("DRAINING before a drain: %v", n)
		}
	}
	// CDS and LDS come first and are wildcard.
	if reqs[0].GetTypeUrl() != xdsclient.ClusterType || reqs[1].GetTypeUrl() != xdsclient.ListenerType ||
		len(reqs[0].GetResourceNames()) != 0 || len(reqs[1].GetResourceNames()) != 0 {
		t.Errorf("first requests %s %v, %s %v", reqs[0].GetTypeUrl(), reqs[0].GetResourceNames(), reqs[1].GetTypeUrl(), reqs[1].GetResourceNames())
	}
	if len(cp.seen(func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == xdsclient.RouteType && strings.Join(r.GetResourceNames(), ",") == "outbound"
	})) == 0 {
		t.Error("no RDS subscription to the outbound route configuration")
	}
}

func TestSnapshotSwapUnderLoadFailsNoRequest(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	addr := nextAddr()
	v1, v2, v3 := upstream(t, textServer("v1")), upstream(t, textServer("v2")), upstream(t, textServer("v3"))
	fqdn := "reviews.default.svc.cluster.local"
	split := func(weights ...uint32) world {
		bs := []backend{
			{cluster: "outbound|9080|v1|" + fqdn, weight: weights[0], endpoints: []string{v1}},
			{cluster: "outbound|9080|v2|" + fqdn, weight: weights[1], endpoints: []string{v2}},
		}
		if len(weights) > 2 {
			// A new subset appears together with the route that sends it traffic: the
			// route must wait until its endpoints have arrived.
			bs = append(bs, backend{cluster: "outbound|9080|v3|" + fqdn, weight: weights[2], endpoints: []string{v3}})
		}
		return world{addr: addr, services: []service{{domains: []string{"reviews", "reviews:9080"}, backends: bs}}}
	}
	node := nodeID(addr, "test")
	cp.set(node, split(100, 0).snapshot("1"))
	p := startProxy(t, cp, addr)

	var (
		total, failed atomic.Int64
		seenMu        sync.Mutex
		seen          = map[string]int{}
		firstFailure  atomic.Value
	)
	ctx, cancel := context.WithCancel(context.Background())
	var g errgroup.Group
	for range 8 {
		g.Go(func() error {
			for ctx.Err() == nil {
				res, body, err := p.get("reviews:9080", "/")
				total.Add(1)
				if err != nil || res.StatusCode != 200 {
					failed.Add(1)
					if err == nil {
						err = errors.New(res.Status + " " + res.Header.Get("X-Sluice-Reason"))
					}
					firstFailure.CompareAndSwap(nil, err.Error())
					continue
				}
				seenMu.Lock()
				seen[body]++
				seenMu.Unlock()
			}
			return nil
		})
	}
	for i, weights := range [][]uint32{{50, 50}, {0, 100}, {20, 40, 40}, {0, 0, 100}, {100, 0}, {30, 30, 40}, {1, 1}} {
		version := string(rune('2' + i))
		cp.set(node, split(weights...).snapshot(version))
		eventually(t, 10*time.Second, "the proxy ACKs version "+version, func() bool {
			return cp.acked(xdsclient.RouteType, version) && cp.acked(xdsclient.EndpointType, version)
		})
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	_ = g.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d of %d requests failed during snapshot swaps; first: %v", failed.Load(), total.Load(), firstFailure.Load())
	}
	if seen["v1"] == 0 || seen["v2"] == 0 || seen["v3"] == 0 {
		t.Errorf("traffic did not follow the splits: %v", seen)
	}
	t.Logf("%d requests, by upstream %v", total.Load(), seen)
}

func TestNACKKeepsServingTheOldConfig(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	addr := nextAddr()
	a, b := upstream(t, textServer("a")), upstream(t, textServer("b"))
	node := nodeID(addr, "test")
	good := world{addr: addr, services: []service{{domains: []string{"svc"}, backends: []backend{{cluster: "a", weight: 1, endpoints: []string{a}}}}}}
	cp.set(node, good.snapshot("1"))
	p := startProxy(t, cp, addr)

	// Version 2 moves svc to cluster b, but one of its routes has an invalid regex. Cluster a
	// stays (another host uses it), so the old routes still find it.
	bad := world{addr: addr, services: []service{
		{domains: []string{"svc"}, backends: []backend{{cluster: "b", weight: 1, endpoints: []string{b}}}},
		{domains: []string{"other"}, backends: []backend{{cluster: "a", weight: 1, endpoints: []string{a}}}},
	}, mutate: badRegex}
	cp.set(node, bad.snapshot("2"))
	var nack *discoveryv3.DiscoveryRequest
	eventually(t, 10*time.Second, "the proxy NACKs version 2", func() bool {
		n := cp.seen(func(r *discoveryv3.DiscoveryRequest) bool {
			return r.GetTypeUrl() == xdsclient.RouteType && r.GetErrorDetail() != nil
		})
		if len(n) > 0 {
			nack = n[0]
		}
		return nack != nil
	})
	if nack.GetVersionInfo() != "1" {
		t.Errorf("NACK carries version %q, want the last good one, 1", nack.GetVersionInfo())
	}
	if msg := nack.GetErrorDetail().GetMessage(); !strings.Contains(msg, `route configuration "outbound": virtual_hosts[0] ("svc").routes[0].match.safe_regex.regex: invalid RE2 regex "/users/(\\d+"`) {
		t.Errorf("NACK message %q does not name the field and the problem", msg)
	}
	// The clusters of version 2 are fine and applied; the routes are the old ones, so traffic
	// still goes to a.
	eventually(t, 5*time.Second, "CDS version 2 is ACKed", func() bool { return cp.acked(xdsclient.ClusterType, "2") })
	for range 20 {
		res, body, err := p.get("svc", "/")
		if err != nil || res.StatusCode != 200 || body != "a" {
			t.Fatalf("after the NACK: %v %v %q, want 200 a", err, res, body)
		}
	}
	res, stats, err := do(p.client, mustRequest("GET", "http://"+net.JoinHostPort(addr, "15000")+"/stats", ""))
	if err != nil || !strings.Contains(stats, `xds.rds.last_error: "route configuration \"outbound\"`) || !strings.Contains(stats, `xds.rds.version: "1"`) {
		t.Errorf("stats do not show the rejection: %v %v\n%s", res, err, stats)
	}

	// A fixed version 3 is accepted and serves.
	fixed := bad
	fixed.mutate = nil
	cp.set(node, fixed.snapshot("3"))
	eventually(t, 10*time.Second, "the proxy serves version 3", func() bool {
		_, body, err := p.get("svc", "/")
		return err == nil && body == "b"
	})
}

func TestControlPlaneStopAndRestart(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	addr := nextAddr()
	a, b := upstream(t, textServer("a")), upstream(t, textServer("b"))
	node := nodeID(addr, "test")
	to := func(cluster, ep string) world {
		return world{addr: addr, services: []service{{domains: []string{"svc"}, backends: []backend{{cluster: cluster, weight: 1, endpoints: []string{ep}}}}}}
	}
	cp.set(node, to("a", a).snapshot("1"))
	p := startProxy(t, cp, addr)

	cp.stop()
	status := func() string {
		_, s, _ := do(p.client, mustRequest("GET", "http://"+net.JoinHostPort(addr, "15000")+"/stats", ""))
		return s
	}
	eventually(t, 5*time.Second, "the proxy sees the stream gone", func() bool {
		return strings.Contains(status(), "xds.connected: 0")
	})
	for range 20 {
		res, body, err := p.get("svc", "/")
		if err != nil || res.StatusCode != 200 || body != "a" {
			t.Fatalf("with the control plane down: %v %v %q, want 200 a", err, res, body)
		}
	}

	// A new control plane on the same address, with other config (as after a restart that
	// lost nothing but moved on).
	cp2 := startControlPlane(t, cp.addr, nil)
	cp2.set(node, to("b", b).snapshot("2"))
	eventually(t, 20*time.Second, "the proxy reconnects and serves the new snapshot", func() bool {
		_, body, err := p.get("svc", "/")
		return err == nil && body == "b"
	})
	if !strings.Contains(status(), "xds.connected: 1") {
		t.Error("stats do not show the stream back")
	}
	// It resubscribed with the versions it held.
	if len(cp2.seen(func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetTypeUrl() == xdsclient.ListenerType && r.GetResponseNonce() == "" && r.GetVersionInfo() == "1"
	})) == 0 {
		t.Error("the proxy did not resubscribe to LDS with version 1")
	}
}

func TestDrainTellsTheControlPlaneThenWaitsForRequests(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	addr := nextAddr()
	started, release := make(chan struct{}), make(chan struct{})
	slow := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		close(started)
		<-release
		io.WriteString(w, "slow done")
	}))
	node := nodeID(addr, "test")
	cp.set(node, world{addr: addr, services: []service{{domains: []string{"slow"},
		backends: []backend{{cluster: "slow", weight: 1, endpoints: []string{slow}}}}}}.snapshot("1"))
	p := startProxy(t, cp, addr)

	type result struct {
		status int
		body   string
		err    error
	}
	done := make(chan result, 1)
	go func() {
		res, body, err := p.get("slow", "/")
		if err != nil {
			done <- result{err: err}
			return
		}
		done <- result{status: res.StatusCode, body: body}
	}()
	<-started

	stopped := make(chan error, 1)
	go func() { stopped <- p.stop() }()
	draining := func(r *discoveryv3.DiscoveryRequest) bool {
		return r.GetNode().GetMetadata().GetFields()[meta.KeyDraining].GetStringValue() == "true"
	}
	eventually(t, 5*time.Second, "the control plane hears DRAINING", func() bool { return len(cp.seen(draining)) > 0 })
	if r := cp.seen(draining)[0]; r.GetTypeUrl() != xdsclient.ListenerType || r.GetVersionInfo() != "1" {
		t.Errorf("the drain request is %s version %q, want an LDS ACK of version 1", r.GetTypeUrl(), r.GetVersionInfo())
	}
	// New connections are refused once the listeners stop accepting.
	eventually(t, 5*time.Second, "the outbound listener stops accepting", func() bool {
		c, err := net.DialTimeout("tcp", net.JoinHostPort(addr, "15001"), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	select {
	case err := <-stopped:
		t.Fatalf("Run returned (%v) while a request was in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	if r := <-done; r.err != nil || r.status != 200 || r.body != "slow done" {
		t.Errorf("the request in flight got %+v, want 200 slow done", r)
	}
	if err := <-stopped; err != nil {
		t.Errorf("Run returned %v, want nil", err)
	}
}

func TestNotReadyUntilConfigured(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	addr := nextAddr()
	p := launchProxy(t, cp, addr)
	readyStatus := func() (int, string) {
		res, err := http.Get("http://" + net.JoinHostPort(addr, "15000") + "/ready")
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		line, _ := bufio.NewReader(res.Body).ReadString('\n')
		return res.StatusCode, strings.TrimSpace(line)
	}
	eventually(t, 5*time.Second, "the admin server answers", func() bool { s, _ := readyStatus(); return s != 0 })
	if s, body := readyStatus(); s != 503 || body != "INITIALIZING" {
		t.Errorf("before any config: %d %q, want 503 INITIALIZING", s, body)
	}
	cp.set(nodeID(addr, "test"), world{addr: addr}.snapshot("1"))
	p.waitReady(t)
	if s, body := readyStatus(); s != 200 || body != "LIVE" {
		t.Errorf("after config: %d %q, want 200 LIVE", s, body)
	}

	// POST /drain shuts the proxy down as SIGTERM does.
	res, err := http.Post("http://"+net.JoinHostPort(addr, "15000")+"/drain", "", nil)
	if err != nil || res.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /drain: %v %v", res, err)
	}
	res.Body.Close()
	select {
	case err := <-p.errc:
		if err != nil {
			t.Errorf("Run after POST /drain: %v", err)
		}
		p.errc <- nil // for the cleanup's stop
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after POST /drain")
	}
}

func TestPortInUseAtStart(t *testing.T) {
	addr := nextAddr()
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "9080"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var stderr strings.Builder
	err = Run(context.Background(), []string{"--control-plane", "127.0.0.1:1", "--address", addr, "--service", "r",
		"--inbound", "9080=19080"}, func(string) string { return "" }, io.Discard, &stderr)
	if err == nil {
		t.Fatal("Run started with its inbound port taken")
	}
	msg := err.Error()
	for _, want := range []string{"cannot listen on " + addr + ":9080: address already in use", "inbound port 9080",
		"the application must listen on its app port 19080"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q lacks %q", msg, want)
		}
	}
	if strings.Contains(msg, "\n") {
		t.Errorf("error is more than one line: %q", msg)
	}
	// The sockets bound before the failure were released.
	for _, port := range []string{"15000", "15001"} {
		l, err := net.Listen("tcp", net.JoinHostPort(addr, port))
		if err != nil {
			t.Errorf("port %s still held: %v", port, err)
			continue
		}
		l.Close()
	}
}
