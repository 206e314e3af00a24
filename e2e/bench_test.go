package e2e

import (
	"fmt"
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

// BenchmarkPropagation measures how long a canary change takes from its commit to the last
// sidecar's ACK: the revision's commit time against the newest syncedAt of the proxies that
// reached it, both read from the server. Sidecars of one service, without applications
// (config propagation does not need them).
func BenchmarkPropagation(b *testing.B) {
	proxyLogLevel = "info"
	const sidecars = 20
	cp := startServer(b, pgtest.New(b, pgtest.Template{}))
	for i := range sidecars {
		startSidecar(b, cp, nextAddr(), "b", []string{"v1", "v2"}[i%2], "--inbound", "8080=18080")
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := range b.N {
		body := `{"weights":{"v1":90,"v2":10}}`
		if i%2 == 1 {
			body = `{"weights":{"v1":10,"v2":90}}`
		}
		rev := cp.setTraffic(b, "b", body)
		lat = append(lat, cp.propagation(b, rev, sidecars))
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)-1].Microseconds())/1000, "max-ms")
}

// propagation waits until n proxies have applied revision rev and returns the time from the
// revision's commit to the last one's ACK.
func (cp *controlPlane) propagation(b testing.TB, rev int64, n int) time.Duration {
	b.Helper()
	var committed time.Time
	var last time.Time
	eventually(b, 30*time.Second, "propagation", func() error {
		var pl struct {
			Proxies []struct {
				SyncedRevision int64     `json:"syncedRevision"`
				SyncedAt       time.Time `json:"syncedAt"`
			} `json:"proxies"`
		}
		if _, err := getJSONWith(cp.api, "http://"+cp.httpAddr+"/api/v1/proxies", &pl); err != nil {
			return err
		}
		synced := 0
		last = time.Time{}
		for _, p := range pl.Proxies {
			if p.SyncedRevision >= rev {
				synced++
				if p.SyncedAt.After(last) {
					last = p.SyncedAt
				}
			}
		}
		if synced < n {
			return fmt.Errorf("%d of %d proxies at revision %d", synced, n, rev)
		}
		return nil
	})
	var r struct {
		At time.Time `json:"at"`
	}
	if _, err := getJSONWith(cp.api, fmt.Sprintf("http://%s/api/v1/revisions/%d", cp.httpAddr, rev), &r); err != nil {
		b.Fatal(err)
	}
	committed = r.At
	return last.Sub(committed)
}
