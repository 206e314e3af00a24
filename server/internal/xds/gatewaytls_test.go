package xds

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sluicemesh/sluice/server/internal/config"
)

// gatewayTLSYAML is Istio's secure ingress Gateway (SIMPLE), a MUTUAL server on the same port
// for another host, an HTTP server redirecting to https, and the modes that are not enforced.
const gatewayTLSYAML = `apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {name: mygateway, namespace: istio-system}
spec:
  selector: {istio: ingressgateway}
  servers:
  - port: {number: 443, name: https, protocol: HTTPS}
    tls: {mode: SIMPLE, credentialName: httpbin-credential, minProtocolVersion: TLSV1_3}
    hosts: [httpbin.example.com]
  - port: {number: 443, name: https-mtls, protocol: HTTPS}
    tls: {mode: MUTUAL, credentialName: mtls-credential}
    hosts: [mtls.example.com]
  - port: {number: 80, name: http, protocol: HTTP}
    tls: {httpsRedirect: true}
    hosts: [httpbin.example.com]
  - port: {number: 9443, name: https-extra, protocol: HTTPS}
    tls: {mode: SIMPLE, credentialName: httpbin-credential, subjectAltNames: [x], cipherSuites: [ECDHE-ECDSA-AES128-GCM-SHA256]}
    hosts: [extra.example.com]
  - port: {number: 8443, name: passthrough, protocol: HTTPS}
    tls: {mode: PASSTHROUGH}
    hosts: [pass.example.com]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin, namespace: default}
spec:
  hosts: [httpbin.example.com, mtls.example.com]
  gateways: [istio-system/mygateway]
  http:
  - route:
    - destination: {host: reviews, port: {number: 9080}}
`

func TestGatewayTLSGolden(t *testing.T) {
	rs, err := config.ParseYAML([]byte(gatewayTLSYAML))
	if err != nil {
		t.Fatal(err)
	}
	if errs := config.Validate(rs, nil); len(errs) > 0 {
		t.Fatalf("does not validate: %v", errs)
	}
	ws := bookinfo()
	gw := ws[6]
	mesh := BuildMesh(ws)
	mesh.Config = IndexConfig(rs)
	sh := newShared(mesh)
	res := BuildProxy(gw, sh)
	secrets := sh.gatewaySecretResources(gw, map[string]GatewaySecret{
		"istio-system/httpbin-credential": {CertPEM: []byte("CERT"), KeyPEM: []byte("KEY")},
		"istio-system/mtls-credential":    {CertPEM: []byte("CERT2"), KeyPEM: []byte("KEY2"), CACertPEM: []byte("CA")},
		"default/httpbin-credential":      {CertPEM: []byte("OTHER NAMESPACE"), KeyPEM: []byte("NOT SENT")},
	})
	golden(t, "gateway-tls", render(t, &Resources{Listeners: res.Listeners, Routes: res.Routes}))
	golden(t, "gateway-tls-secrets", renderSecrets(t, secrets))

	var passthrough bool
	for _, p := range sh.problems {
		switch {
		case strings.Contains(p.Message, "PASSTHROUGH is not enforced"):
			passthrough = true
		case strings.Contains(p.Message, "server on port 9443: tls.subjectAltNames, tls.cipherSuites: not enforced"):
		default:
			t.Errorf("unexpected problem: %+v", p)
		}
	}
	if !passthrough {
		t.Errorf("PASSTHROUGH not reported: %+v", sh.problems)
	}
	if len(secrets) != 3 {
		t.Fatalf("%d secrets, want the two certificates and the MUTUAL server's CA", len(secrets))
	}

	// A missing secret, and a MUTUAL secret without a CA, are reported; the rest is sent.
	sh = newShared(mesh)
	secrets = sh.gatewaySecretResources(gw, map[string]GatewaySecret{
		"istio-system/mtls-credential": {CertPEM: []byte("CERT2"), KeyPEM: []byte("KEY2")},
	})
	var msgs []string
	for _, p := range sh.problems {
		msgs = append(msgs, p.Message)
	}
	all := strings.Join(msgs, "\n")
	if !strings.Contains(all, "secret istio-system/httpbin-credential not found") || !strings.Contains(all, "secret istio-system/mtls-credential has no CA certificate") {
		t.Errorf("problems:\n%s", all)
	}
	if len(secrets) != 1 {
		t.Errorf("%d secrets, want mtls-credential's certificate alone", len(secrets))
	}

	// Sidecars get no secrets and no TLS gateway listeners.
	sh = newShared(mesh)
	if s := sh.gatewaySecretResources(ws[0], map[string]GatewaySecret{"default/httpbin-credential": {CertPEM: []byte("C"), KeyPEM: []byte("K")}}); len(s) != 0 {
		t.Errorf("a sidecar got %d secrets", len(s))
	}
}

// renderSecrets prints SDS secrets as stable, indented JSON.
func renderSecrets(t *testing.T, rs []types.Resource) []byte {
	t.Helper()
	out := []json.RawMessage{}
	for _, r := range rs {
		b, err := protojson.Marshal(r)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, b)
	}
	b, err := json.MarshalIndent(map[string][]json.RawMessage{"secrets": out}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return append(b, '\n')
}
