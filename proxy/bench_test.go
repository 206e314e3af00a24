package proxy

import (
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// BenchmarkRequest compares one request through the proxy's outbound listener with the same
// request sent straight to the upstream: keep-alive connections, a 1 KiB answer. The
// difference is the cost of the hop.
func BenchmarkRequest(b *testing.B) {
	body := strings.Repeat("x", 1024)
	up := upstream(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, body)
	}))
	cp := startControlPlane(b, "127.0.0.1:0", nil)
	addr := nextAddr()
	cp.set(nodeID(addr, "test"), world{addr: addr, services: []service{{domains: []string{"bench"},
		backends: []backend{{cluster: "bench", weight: 1, endpoints: []string{up}}}}}}.snapshot("1"))
	p := startProxy(b, cp, addr, "--log-level", "warn")

	run := func(b *testing.B, target, host string, parallel bool) {
		tr := &http.Transport{MaxIdleConnsPerHost: 256}
		defer tr.CloseIdleConnections()
		c := &http.Client{Transport: tr}
		req, _ := http.NewRequest("GET", "http://"+target+"/bench", nil)
		req.Host = host
		get := func() {
			res, err := c.Do(req)
			if err != nil {
				b.Fatal(err)
			}
			n, _ := io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if res.StatusCode != 200 || n != 1024 {
				b.Fatalf("%d, %d bytes", res.StatusCode, n)
			}
		}
		b.ReportAllocs()
		if parallel {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					get()
				}
			})
			return
		}
		for b.Loop() {
			get()
		}
	}
	outbound := net.JoinHostPort(p.addr, "15001")
	b.Run("direct", func(b *testing.B) { run(b, up, "bench", false) })
	b.Run("proxied", func(b *testing.B) { run(b, outbound, "bench", false) })
	b.Run("direct-parallel", func(b *testing.B) { run(b, up, "bench", true) })
	b.Run("proxied-parallel", func(b *testing.B) { run(b, outbound, "bench", true) })
}
