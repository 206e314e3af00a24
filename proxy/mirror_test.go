package proxy

import (
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// mirrorSink is a mirror cluster's upstream: it records what it gets, and holds every answer
// until released, so a test can show that the real request does not wait for it.
type mirrorSink struct {
	mu      sync.Mutex
	got     []mirrored
	arrived chan struct{}
	release chan struct{}
}

type mirrored struct {
	host, method, path, body string
}

func newMirrorSink(t *testing.T) (*mirrorSink, string) {
	m := &mirrorSink{arrived: make(chan struct{}, 100), release: make(chan struct{})}
	addr := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		m.mu.Lock()
		m.got = append(m.got, mirrored{r.Host, r.Method, r.URL.RequestURI(), string(b)})
		m.mu.Unlock()
		m.arrived <- struct{}{}
		<-m.release
		w.WriteHeader(http.StatusInternalServerError) // ignored by the proxy
	}))
	t.Cleanup(m.open)
	return m, addr
}

func (m *mirrorSink) open() {
	select {
	case <-m.release:
	default:
		close(m.release)
	}
}

func (m *mirrorSink) received() []mirrored {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]mirrored(nil), m.got...)
}

func (m *mirrorSink) wait(t *testing.T) {
	t.Helper()
	select {
	case <-m.arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("no mirrored request arrived")
	}
}

func TestMirroring(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	addr := nextAddr()
	v1 := upstream(t, echoServer("v1"))
	sink, v2 := newMirrorSink(t)
	w := world{addr: addr,
		services: []service{
			{domains: []string{"httpbin:8000"}, backends: []backend{{cluster: "httpbin-v1", weight: 1, endpoints: []string{v1}}}},
			{domains: []string{"v2-only"}, backends: []backend{{cluster: "httpbin-v2", weight: 1, endpoints: []string{v2}}}},
			{domains: []string{"down-mirror"}, backends: []backend{{cluster: "down-v1", weight: 1, endpoints: []string{v1}}}},
			{domains: []string{"unused"}, backends: []backend{{cluster: "refusing", weight: 1, endpoints: []string{"127.0.0.1:1"}}}},
		},
		mutate: func(rc *routev3.RouteConfiguration) {
			// Istio's mirror: 100% of httpbin's requests copied to v2.
			rc.VirtualHosts[0].Routes[0].GetRoute().RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "httpbin-v2"}}
			// A mirror whose cluster refuses connections.
			rc.VirtualHosts[2].Routes[0].GetRoute().RequestMirrorPolicies = []*routev3.RouteAction_RequestMirrorPolicy{{Cluster: "refusing"}}
		},
	}
	cp.set(nodeID(addr, "test"), w.snapshot("1"))
	p := startProxy(t, cp, addr)

	t.Run("the copy gets the shadow host and never delays the answer", func(t *testing.T) {
		res, e := getEcho(t, p, p.outboundRequest("GET", "httpbin:8000", "/headers?x=1"))
		if res.StatusCode != 200 || e.Name != "v1" {
			t.Fatalf("%d from %q, want 200 from v1", res.StatusCode, e.Name)
		}
		// The answer came back while the mirror upstream is still holding its copy.
		sink.wait(t)
		got := sink.received()
		if len(got) != 1 || got[0].host != "httpbin-shadow:8000" || got[0].path != "/headers?x=1" || got[0].method != "GET" {
			t.Fatalf("mirror received %+v", got)
		}
	})

	t.Run("a small body is copied", func(t *testing.T) {
		req := p.outboundRequest("POST", "httpbin:8000", "/post")
		req.Body = io.NopCloser(strings.NewReader("hello mirror"))
		req.ContentLength = int64(len("hello mirror"))
		res, e := getEcho(t, p, req)
		if res.StatusCode != 200 || e.Name != "v1" {
			t.Fatalf("%d from %q", res.StatusCode, e.Name)
		}
		sink.wait(t)
		got := sink.received()
		if last := got[len(got)-1]; last.body != "hello mirror" || last.method != "POST" {
			t.Errorf("mirror received %+v", last)
		}
	})

	t.Run("a body of unknown length is copied once it has ended within the limit", func(t *testing.T) {
		req := p.outboundRequest("POST", "httpbin:8000", "/post")
		pr, pw := io.Pipe()
		req.Body, req.ContentLength = pr, -1
		go func() {
			_, _ = io.WriteString(pw, "chunk one, ")
			_, _ = io.WriteString(pw, "chunk two")
			pw.Close()
		}()
		res, e := getEcho(t, p, req)
		if res.StatusCode != 200 || e.Name != "v1" {
			t.Fatalf("%d from %q", res.StatusCode, e.Name)
		}
		sink.wait(t)
		got := sink.received()
		if last := got[len(got)-1]; last.body != "chunk one, chunk two" {
			t.Errorf("mirror received %+v", last)
		}
	})

	t.Run("a body over the limit is not copied", func(t *testing.T) {
		before := statValue(t, p, "http.mirror.skipped")
		big := strings.Repeat("x", 64<<10+1)
		req := p.outboundRequest("POST", "httpbin:8000", "/post")
		req.Body, req.ContentLength = io.NopCloser(strings.NewReader(big)), int64(len(big))
		res, _, err := do(p.client, req)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%v %v", res, err)
		}
		if got := statValue(t, p, "http.mirror.skipped"); got != before+1 {
			t.Errorf("http.mirror.skipped %d, want %d", got, before+1)
		}
		if n := len(sink.received()); n != 3 {
			t.Errorf("mirror received %d requests, want still 3", n)
		}
	})

	t.Run("a failing mirror does not fail the request", func(t *testing.T) {
		for range 5 {
			res, e := getEcho(t, p, p.outboundRequest("GET", "down-mirror", "/"))
			if res.StatusCode != 200 || e.Name != "v1" {
				t.Fatalf("%d from %q", res.StatusCode, e.Name)
			}
		}
		eventually(t, 5*time.Second, "the failed copies are counted", func() bool {
			return statValue(t, p, "http.mirror.failed") >= 5
		})
	})
	sink.open()
}

// statValue reads one counter from the proxy's /stats.
func statValue(t *testing.T, p *runningProxy, name string) uint64 {
	t.Helper()
	_, body, err := do(p.client, mustRequest("GET", "http://"+net.JoinHostPort(p.addr, "15000")+"/stats", ""))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+": "); ok {
			var n uint64
			for _, c := range v {
				if c < '0' || c > '9' {
					t.Fatalf("%s is %q, not a number", name, v)
				}
				n = n*10 + uint64(c-'0')
			}
			return n
		}
	}
	t.Fatalf("no %s in /stats:\n%s", name, body)
	return 0
}
