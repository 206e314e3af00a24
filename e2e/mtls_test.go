package e2e

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestMutualTLSStrictMigration is Istio's STRICT migration task on real binaries: sidecars
// that joined with workload tokens hold certificates from the mesh CA. Under the default
// (PERMISSIVE) both a caller with a sidecar and a client without one reach httpbin's inbound
// port; once a namespace-wide PeerAuthentication says STRICT, the client without a sidecar
// is refused at the connection (its plaintext request gets no answer) while the caller with
// a sidecar still gets 200, over mutual TLS since nothing else is accepted; a workload-level
// DISABLE then lets plaintext in again, and auto mTLS follows it.
func TestMutualTLSStrictMigration(t *testing.T) {
	m := startSecuredMesh(t)
	calleeToken, _ := m.token(t, "httpbin")
	callerToken, _ := m.token(t, "sleep")
	callee := m.workload(t, "httpbin", calleeToken)
	caller := m.workload(t, "sleep", callerToken)

	const viaMesh = "http://httpbin.default.svc.cluster.local:8080/"
	direct := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	plaintext := func() error {
		resp, err := direct.Get("http://" + callee.addr + ":8080/")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("direct call answered %d %s", resp.StatusCode, body)
		}
		return nil
	}
	meshCall := func(t *testing.T) {
		t.Helper()
		eventually(t, 20*time.Second, "a call through the sidecars", func() error {
			instance, err := callThrough(caller, viaMesh)
			if err == nil && !strings.HasPrefix(instance, "httpbin-") {
				err = fmt.Errorf("answered by %q", instance)
			}
			return err
		})
	}

	t.Run("permissive accepts both", func(t *testing.T) {
		meshCall(t)
		if err := plaintext(); err != nil {
			t.Fatalf("a client without a sidecar was refused under PERMISSIVE: %v", err)
		}
	})

	t.Run("strict refuses a client without a sidecar", func(t *testing.T) {
		m.cp.apply(t, `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: STRICT}
`)
		refusedBefore := adminStat(t, callee.addr, "listener.downstream_cx_plaintext_refused")
		err := plaintext()
		if err == nil {
			t.Fatal("a plaintext request reached httpbin under STRICT")
		}
		if msg := err.Error(); !strings.Contains(msg, "reset") && !strings.Contains(msg, "EOF") && !strings.Contains(msg, "broken pipe") {
			t.Errorf("refused with %v, want the connection reset or closed", err)
		}
		if got := adminStat(t, callee.addr, "listener.downstream_cx_plaintext_refused"); got <= refusedBefore {
			t.Errorf("listener.downstream_cx_plaintext_refused stayed at %d", got)
		}
		meshCall(t)
		// The caller's sidecar reaches the callee's over TLS (since the first call: auto mTLS
		// needs no policy).
		if adminStat(t, callee.addr, "listener.downstream_cx_tls") == 0 {
			t.Error("the callee's sidecar counted no TLS connection")
		}
		// Its metrics say so too, with Istio's label.
		eventually(t, 10*time.Second, "callee metrics with connection_security_policy=\"mutual_tls\"", func() error {
			resp, err := client.Get("http://" + callee.addr + ":15090/stats/prometheus")
			if err != nil {
				return err
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			for _, line := range strings.Split(string(b), "\n") {
				if strings.HasPrefix(line, "istio_requests_total{") && strings.Contains(line, `reporter="destination"`) &&
					strings.Contains(line, `source_workload="sleep-v1"`) && strings.Contains(line, `connection_security_policy="mutual_tls"`) {
					return nil
				}
			}
			return fmt.Errorf("no inbound series from sleep-v1 over mutual TLS")
		})
		// The control plane keeps that label's count: every request of the edge came over
		// mutual TLS (auto mTLS had it on before STRICT too).
		eventually(t, 30*time.Second, "the graph edge sleep → httpbin with mtlsShare 1", func() error {
			var g struct {
				Edges []struct {
					Source    string   `json:"source"`
					Target    string   `json:"target"`
					Requests  int64    `json:"requests"`
					MTLSShare *float64 `json:"mtlsShare"`
				} `json:"edges"`
			}
			if _, err := getJSONWith(m.cp.api, "http://"+m.cp.httpAddr+"/api/v1/graph?window=1m", &g); err != nil {
				return err
			}
			for _, e := range g.Edges {
				if e.Source == "workload:default/sleep-v1" && e.Target == "service:httpbin.default.svc.cluster.local" {
					if e.MTLSShare == nil || *e.MTLSShare != 1 {
						return fmt.Errorf("edge %+v: mtlsShare %v, want 1", e, e.MTLSShare)
					}
					return nil
				}
			}
			return fmt.Errorf("no edge sleep → httpbin in %+v", g.Edges)
		})
		// The proxy list shows httpbin's identity, the STRICT port and the certificate its
		// sidecar holds.
		var proxies struct {
			Proxies []struct {
				Address     string            `json:"address"`
				Identity    string            `json:"identity"`
				MTLS        map[string]string `json:"mtls"`
				Certificate *struct {
					Serial   string    `json:"serial"`
					NotAfter time.Time `json:"notAfter"`
				} `json:"certificate"`
			} `json:"proxies"`
		}
		if code, err := getJSONWith(m.cp.api, "http://"+m.cp.httpAddr+"/api/v1/proxies", &proxies); err != nil || code != http.StatusOK {
			t.Fatalf("GET /api/v1/proxies: %d %v", code, err)
		}
		held := readCerts(t, callee.addr)
		found := false
		for _, p := range proxies.Proxies {
			if p.Address != callee.addr {
				continue
			}
			found = true
			if p.Identity != "spiffe://cluster.local/ns/default/sa/httpbin" || p.MTLS["8080"] != "STRICT" {
				t.Errorf("httpbin's proxy: identity %q, mtls %v; want spiffe://cluster.local/ns/default/sa/httpbin and 8080 STRICT", p.Identity, p.MTLS)
			}
			if p.Certificate == nil || p.Certificate.Serial != held.Serial || !p.Certificate.NotAfter.Equal(held.NotAfter) {
				t.Errorf("httpbin's proxy: certificate %+v, want the one its sidecar holds (%s, %s)", p.Certificate, held.Serial, held.NotAfter)
			}
		}
		if !found {
			t.Errorf("no proxy at %s in %+v", callee.addr, proxies.Proxies)
		}
	})

	t.Run("a workload-level DISABLE wins over the namespace", func(t *testing.T) {
		m.cp.apply(t, `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: httpbin, namespace: default}
spec:
  selector: {matchLabels: {app: httpbin}}
  mtls: {mode: DISABLE}
`)
		if err := plaintext(); err != nil {
			t.Fatalf("a plaintext request was refused under DISABLE: %v", err)
		}
		// As in Istio, auto mTLS sees the DISABLE and the caller's sidecar sends plaintext.
		meshCall(t)
	})
}
