package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// rotationCertTTL is the workload certificates' lifetime. Certificates are backdated a
// minute, so each lives ttl+1m and is renewed at half of that, less up to a tenth of jitter,
// after its NotBefore: with 2m, 12 to 30 s after its issuance. (With the 1m the server
// accepts, the renewal time is the issuance itself, and the proxies renew without pause.)
const rotationCertTTL = "2m"

// maxRotations bounds the renewals a sidecar may make while the test waits for its first:
// more would mean it renews in a loop.
const maxRotations = 5

// TestRotationUnderTraffic renews both sidecars' certificates while a client sends requests
// without pause through the caller's sidecar to the callee's, under a mesh-wide STRICT
// PeerAuthentication so that every request between them is mutual TLS; not one request may
// fail, and the callee must have seen mutual TLS. The caller's sidecar closes each upstream
// connection after 20 requests, so new handshakes keep happening, before the renewals and
// after them.
func TestRotationUnderTraffic(t *testing.T) {
	m := startSecuredMesh(t, "--workload-cert-ttl", rotationCertTTL)
	callee := m.workload(t, "rotation-callee", m.restToken(t, "rotation-callee"))
	caller := m.workload(t, "rotation-caller", m.restToken(t, "rotation-caller"))
	m.cp.apply(t, `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: rotation-callee, namespace: default}
spec:
  host: rotation-callee
  trafficPolicy:
    connectionPool:
      http: {maxRequestsPerConnection: 20}
`)

	// The client speaks to the caller's sidecar as its HTTP proxy, as the applications do.
	outbound, _ := url.Parse("http://" + caller.addr + ":15001")
	c := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: http.ProxyURL(outbound), MaxIdleConnsPerHost: 4}}
	const target = "http://rotation-callee:8080/"
	call := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("read the answer: %w", err)
		}
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "rotation-callee-v1-") {
			return fmt.Errorf("%d %q", resp.StatusCode, body)
		}
		return nil
	}
	// The route and the STRICT policy reach both sidecars before the count starts.
	eventually(t, 30*time.Second, "a first call through the sidecars", func() error { return call(context.Background()) })
	if adminStat(t, callee.addr, "listener.downstream_cx_plaintext_refused") != 0 {
		t.Fatal("the callee refused plaintext before the test sent any")
	}

	before := map[string]certsView{caller.addr: readCerts(t, caller.addr), callee.addr: readCerts(t, callee.addr)}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		sent     int
		failures []string
		failed   int
	)
	ctx, stop := context.WithCancel(context.Background())
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			err := call(ctx)
			if ctx.Err() != nil {
				return // the request cut short by the end of the test is not counted
			}
			mu.Lock()
			sent++
			if err != nil {
				failed++
				if len(failures) < 10 {
					failures = append(failures, fmt.Sprintf("%s: %v", time.Now().Format(time.RFC3339Nano), err))
				}
			}
			mu.Unlock()
		}
	}()
	stopped := false
	stopTraffic := func() {
		if !stopped {
			stopped = true
			stop()
			wg.Wait()
		}
	}
	defer stopTraffic()

	// Both certificates are renewed at least once while the traffic runs.
	after := map[string]certsView{}
	eventually(t, 4*time.Minute, "both sidecars renewed their certificates", func() error {
		for addr, first := range before {
			now := readCerts(t, addr)
			if now.LastError != "" {
				t.Logf("sidecar %s: %s", addr, now.LastError)
			}
			if now.Serial == first.Serial || now.Rotations <= first.Rotations {
				return fmt.Errorf("sidecar %s still has serial %s (rotations %d)", addr, now.Serial, now.Rotations)
			}
			if now.SPIFFEID != first.SPIFFEID || !now.Issued || !now.NotAfter.After(first.NotAfter) {
				t.Fatalf("sidecar %s renewed into %+v, from %+v", addr, now, first)
			}
			if now.Rotations > first.Rotations+maxRotations {
				t.Fatalf("sidecar %s renewed %d times: in a loop", addr, now.Rotations-first.Rotations)
			}
			after[addr] = now
		}
		return nil
	})
	// A hundred more requests after both renewals, over new connections, before the count
	// ends.
	mu.Lock()
	atRenewal := sent
	mu.Unlock()
	tlsAtRenewal := adminStat(t, callee.addr, "listener.downstream_cx_tls")
	eventually(t, 30*time.Second, "requests after the renewals", func() error {
		mu.Lock()
		n := sent - atRenewal
		mu.Unlock()
		if n < 100 {
			return fmt.Errorf("%d requests since the renewals", n)
		}
		return nil
	})
	stopTraffic()

	mu.Lock()
	defer mu.Unlock()
	t.Logf("%d requests, %d failed; serials %s→%s (caller), %s→%s (callee)", sent, failed,
		before[caller.addr].Serial, after[caller.addr].Serial, before[callee.addr].Serial, after[callee.addr].Serial)
	if failed != 0 {
		t.Errorf("%d of %d requests failed during the rotation; the first:\n%s", failed, sent, strings.Join(failures, "\n"))
	}
	tlsAtEnd := adminStat(t, callee.addr, "listener.downstream_cx_tls")
	t.Logf("the callee accepted %d TLS connections, %d of them after both renewals", tlsAtEnd, tlsAtEnd-tlsAtRenewal)
	if tlsAtEnd <= tlsAtRenewal {
		t.Errorf("the callee accepted no TLS connection after the renewals (%d in all)", tlsAtEnd)
	}
	if refused := adminStat(t, callee.addr, "listener.downstream_cx_plaintext_refused"); refused != 0 {
		t.Errorf("the callee refused %d plaintext connections: the caller's sidecar did not always use mTLS", refused)
	}
	resp, err := client.Get("http://" + callee.addr + ":15090/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "istio_requests_total{") && strings.Contains(line, `reporter="destination"`) &&
			strings.Contains(line, `source_workload="rotation-caller-v1"`) && strings.Contains(line, `connection_security_policy="mutual_tls"`) {
			return
		}
	}
	t.Error("the callee has no inbound series from rotation-caller-v1 with connection_security_policy=\"mutual_tls\"")
}
