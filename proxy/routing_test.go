package proxy

import (
	"encoding/json"
	"net/http"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// echoServer answers with what it received: its name, the path and the request headers, as
// JSON, and a response header the proxy is asked to remove.
func echoServer(name string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Upstream", name)
		w.Header().Set("X-Internal", "secret")
		_ = json.NewEncoder(w).Encode(echoed{Name: name, Host: r.Host, Path: r.URL.RequestURI(), Header: r.Header})
	})
}

type echoed struct {
	Name   string
	Host   string
	Path   string
	Header http.Header
}

func getEcho(t *testing.T, p *runningProxy, req *http.Request) (*http.Response, echoed) {
	t.Helper()
	res, body, err := do(p.client, req)
	if err != nil {
		t.Fatal(err)
	}
	var e echoed
	if res.StatusCode == 200 {
		if err := json.Unmarshal([]byte(body), &e); err != nil {
			t.Fatalf("%s: %v", body, err)
		}
	}
	return res, e
}

func headerOpt(key, value string, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: key, Value: value}, AppendAction: action}
}

// outboundRequest is a request to the proxy's outbound listener for host.
func (p *runningProxy) outboundRequest(method, host, path string) *http.Request {
	return mustRequest(method, "http://"+p.addr+":15001"+path, host)
}

func TestHeaderManipulationAndRegexRewrite(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	addr := nextAddr()
	v1, v2 := upstream(t, echoServer("v1")), upstream(t, echoServer("v2"))
	set := corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	add := corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
	absent := corev3.HeaderValueOption_ADD_IF_ABSENT
	w := world{addr: addr,
		services: []service{
			{domains: []string{"hdr"}, backends: []backend{
				{cluster: "hdr-v1", weight: 1, endpoints: []string{v1}},
				{cluster: "hdr-v2", weight: 0, endpoints: []string{v2}},
			}},
			{domains: []string{"rw"}, backends: []backend{{cluster: "rw", weight: 1, endpoints: []string{v1}}}},
			{domains: []string{"empty"}, backends: []backend{{cluster: "empty", weight: 1}}},
		},
		mutate: func(rc *routev3.RouteConfiguration) {
			// Istio's VirtualService headers: request set/add/remove at the virtual host, the
			// route and the destination (weighted cluster), response ones likewise.
			vh := rc.VirtualHosts[0]
			vh.RequestHeadersToAdd = []*corev3.HeaderValueOption{headerOpt("x-level", "vhost", set), headerOpt("x-trail", "vhost", add)}
			vh.ResponseHeadersToAdd = []*corev3.HeaderValueOption{headerOpt("x-resp-vhost", "1", set)}
			rt := vh.Routes[0]
			rt.RequestHeadersToAdd = []*corev3.HeaderValueOption{headerOpt("x-level", "route", set), headerOpt("x-trail", "route", add),
				headerOpt("x-client", "proxy", absent)}
			rt.RequestHeadersToRemove = []string{"x-secret"}
			rt.ResponseHeadersToAdd = []*corev3.HeaderValueOption{headerOpt("x-resp-route", "1", set)}
			rt.ResponseHeadersToRemove = []string{"x-internal"}
			wc := rt.GetRoute().GetWeightedClusters().Clusters[0]
			wc.RequestHeadersToAdd = []*corev3.HeaderValueOption{headerOpt("x-trail", "cluster", add)}
			wc.ResponseHeadersToAdd = []*corev3.HeaderValueOption{headerOpt("x-resp-cluster", "v1", set)}

			rw := rc.VirtualHosts[1].Routes[0].GetRoute()
			rw.RegexRewrite = &matcherv3.RegexMatchAndSubstitute{
				Pattern: &matcherv3.RegexMatcher{Regex: `^/service/([^/]+)(/.*)$`}, Substitution: `\2/instance/\1`}
			rc.VirtualHosts[2].Routes[0].ResponseHeadersToAdd = []*corev3.HeaderValueOption{headerOpt("x-resp-route", "empty", set)}
		},
	}
	cp.set(nodeID(addr, "test"), w.snapshot("1"))
	p := startProxy(t, cp, addr)

	t.Run("headers at virtual host, route and weighted cluster", func(t *testing.T) {
		req := p.outboundRequest("GET", "hdr", "/x")
		req.Header.Set("X-Secret", "s")
		req.Header.Set("X-Client", "client")
		res, e := getEcho(t, p, req)
		if res.StatusCode != 200 || e.Name != "v1" {
			t.Fatalf("%d from %q", res.StatusCode, e.Name)
		}
		if got := e.Header.Get("X-Level"); got != "vhost" {
			t.Errorf("x-level %q: the virtual host's overwrite comes last and wins", got)
		}
		if got := e.Header.Values("X-Trail"); len(got) != 3 || got[0] != "cluster" || got[1] != "route" || got[2] != "vhost" {
			t.Errorf("x-trail %v, want [cluster route vhost]", got)
		}
		if e.Header.Get("X-Secret") != "" || e.Header.Get("X-Client") != "client" {
			t.Errorf("x-secret %q (want removed), x-client %q (want the client's)", e.Header.Get("X-Secret"), e.Header.Get("X-Client"))
		}
		for k, want := range map[string]string{"X-Resp-Vhost": "1", "X-Resp-Route": "1", "X-Resp-Cluster": "v1", "X-Internal": "", "X-Upstream": "v1"} {
			if got := res.Header.Get(k); got != want {
				t.Errorf("response %s = %q, want %q", k, got, want)
			}
		}
	})

	t.Run("local replies of the router carry the response headers", func(t *testing.T) {
		res, body, err := p.get("empty", "/")
		if err != nil || res.StatusCode != 503 || body != "no healthy upstream" || res.Header.Get("X-Resp-Route") != "empty" {
			t.Fatalf("503 from a cluster without endpoints: %v %v %q, x-resp-route %q", res, err, body, res.Header.Get("X-Resp-Route"))
		}
		res, _, err = p.get("nobody", "/")
		if err != nil || res.StatusCode != 404 || res.Header.Get("X-Resp-Vhost") != "" {
			t.Fatalf("404 for an unknown host (no route, so no route headers): %v %v", res, err)
		}
	})

	t.Run("regex rewrite", func(t *testing.T) {
		for path, want := range map[string]string{
			"/service/foo/v1/api?q=1": "/v1/api/instance/foo?q=1",
			"/other/path":             "/other/path",
		} {
			res, e := getEcho(t, p, p.outboundRequest("GET", "rw", path))
			if res.StatusCode != 200 || e.Path != want {
				t.Errorf("%s: %d, upstream saw %q, want %q", path, res.StatusCode, e.Path, want)
			}
		}
	})
}
