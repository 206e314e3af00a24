package e2e

import (
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/internal/pgtest"
)

// BenchmarkRequest measures one HTTP/1.1 request to the echo application directly and through
// two sidecars (the caller's outbound listener and the callee's inbound one), with real
// processes on loopback. It reports the mean (ns/op) and the p50/p99 latency of sequential
// keep-alive requests; `make bench` writes the figures to BENCHMARKS.md.
func BenchmarkRequest(b *testing.B) {
	proxyLogLevel = "info"
	cp := startServer(b, pgtest.New(b, pgtest.Template{}))
	dst := startWorkload(b, cp, "b", "v1")
	src := startWorkload(b, cp, "a", "v1")
	waitServes(b, src, "http://b:8080/", instanceName(dst, "b", "v1"))

	arms := []struct {
		name string
		url  string
		host string
	}{
		{"direct", "http://" + dst.addr + ":18080/", ""},
		{"two-sidecars", "http://" + src.addr + ":15001/", "b:8080"},
	}
	for _, arm := range arms {
		b.Run(arm.name, func(b *testing.B) {
			c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, Proxy: nil}}
			req, err := http.NewRequest(http.MethodGet, arm.url, nil)
			if err != nil {
				b.Fatal(err)
			}
			if arm.host != "" {
				req.Host = arm.host
			}
			do := func() time.Duration {
				start := time.Now()
				resp, err := c.Do(req)
				if err != nil {
					b.Fatal(err)
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					b.Fatalf("%s: status %d", arm.name, resp.StatusCode)
				}
				return time.Since(start)
			}
			for range 200 { // warm the connection pools on every hop
				do()
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				lat = append(lat, do())
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}
