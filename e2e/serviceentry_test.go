package e2e

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/internal/pgtest"
)

// startExternal starts an echo application with no sidecar: a service outside the mesh.
func startExternal(t *testing.T, name, addr string) {
	t.Helper()
	p := start(t, name, "echo", []string{"--service", name, "--instance", name, "--http-addr", addr})
	eventually(t, 10*time.Second, name+" listening", func() error {
		if p.exited() {
			t.Fatalf("%s exited: %v\n%s", name, p.err, p.out.text())
		}
		return httpOK("http://" + addr + "/")
	})
}

// ServiceEntry hosts are destinations like any service: static endpoints balanced across,
// DNS names resolved when connecting, both locations, and VirtualService rules applied to
// them.
func TestServiceEntry(t *testing.T) {
	cp := startServer(t, pgtest.New(t, pgtest.Template{}))
	client := startWorkload(t, cp, "client", "v1")

	extA, extB := nextAddr(), nextAddr()
	startExternal(t, "payments-a", extA+":18080")
	startExternal(t, "payments-b", extB+":18080")
	// The DNS endpoint is "localhost", so the application listens on 127.0.0.1.
	dnsAddr := freePort(t)
	startExternal(t, "ledger", dnsAddr)
	_, dnsPort, _ := net.SplitHostPort(dnsAddr)

	cp.apply(t, fmt.Sprintf(`
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: payments, namespace: default}
spec:
  hosts: [payments.example.com]
  location: MESH_EXTERNAL
  ports: [{number: 80, name: http, protocol: HTTP, targetPort: 18080}]
  resolution: STATIC
  endpoints: [{address: %s}, {address: %s}]
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: ledger, namespace: default}
spec:
  hosts: [ledger.internal.example]
  location: MESH_INTERNAL
  ports: [{number: 8000, name: http, protocol: HTTP, targetPort: %s}]
  resolution: DNS
  endpoints: [{address: localhost}]
`, extA, extB, dnsPort))

	t.Run("static endpoints are balanced", func(t *testing.T) {
		seen := collect(t, client, "http://payments.example.com/", 40)
		if seen["payments-a"] == 0 || seen["payments-b"] == 0 || len(seen) != 2 {
			t.Errorf("40 calls to payments.example.com reached %v, want both payments-a and payments-b", seen)
		}
	})

	t.Run("DNS resolution", func(t *testing.T) {
		seen := collect(t, client, "http://ledger.internal.example:8000/", 5)
		if seen["ledger"] != 5 {
			t.Errorf("5 calls to ledger.internal.example:8000 reached %v", seen)
		}
	})

	t.Run("VirtualService on a ServiceEntry host", func(t *testing.T) {
		cp.apply(t, `
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: payments, namespace: default}
spec:
  hosts: [payments.example.com]
  http:
  - match: [{uri: {prefix: /refunds}}]
    directResponse: {status: 403, body: {string: refunds are closed}}
  - route: [{destination: {host: payments.example.com}}]
`)
		res := callRaw(t, client, "http://payments.example.com/refunds/7")
		if res.Status != 403 || res.Body != "refunds are closed" {
			t.Errorf("/refunds/7: %d %q, want 403 from the VirtualService", res.Status, res.Body)
		}
		if seen := collect(t, client, "http://payments.example.com/charges", 10); seen["payments-a"]+seen["payments-b"] != 10 {
			t.Errorf("/charges reached %v", seen)
		}
	})

	t.Run("a host nobody declared is not routed", func(t *testing.T) {
		res := callRaw(t, client, "http://unknown.example.com/")
		if res.Status != 404 || !strings.Contains(res.Reason, "unknown.example.com") {
			t.Errorf("unknown host: %d reason %q, want 404 naming the host", res.Status, res.Reason)
		}
	})

	t.Run("deleting the ServiceEntry removes the destination", func(t *testing.T) {
		cp.waitSynced(t, revisionOf(t, cp.write(t, "DELETE", "/api/v1/namespaces/default/serviceentries/ledger", "", "", 200)))
		res := callRaw(t, client, "http://ledger.internal.example:8000/")
		if res.Status != 404 {
			t.Errorf("after delete: %d %q, want 404", res.Status, res.Body)
		}
	})
}

// callRaw asks from's application to call url through its sidecar and returns what came
// back, whatever the status.
func callRaw(t *testing.T, from *workload, url string) callResult {
	t.Helper()
	var res callResult
	if _, err := getJSON(context.Background(), "http://"+from.addr+":18080/call?url="+url, &res); err != nil {
		t.Fatalf("call %s: %v", url, err)
	}
	return res
}
