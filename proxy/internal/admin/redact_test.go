package admin

import (
	"encoding/base64"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"

	"github.com/sluicemesh/sluice/proxy/internal/cluster"
	"github.com/sluicemesh/sluice/proxy/internal/xdsclient"
)

func TestConfigDumpRedactsPrivateKeys(t *testing.T) {
	const key = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0IGtleSBtYXRlcmlhbA==\n-----END PRIVATE KEY-----\n"
	secret := &tlsv3.Secret{Name: "kubernetes://httpbin-credential", Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte("CERTIFICATE CHAIN")}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: []byte(key)}},
	}}}
	status := func() xdsclient.Status {
		return xdsclient.Status{Types: []xdsclient.TypeStatus{{Type: xdsclient.SecretType, Version: "3", Subscribed: []string{secret.Name},
			Resources: []*xdsclient.Resource{{Name: secret.Name, Message: secret, Version: "3", Updated: time.Now()}}}}}
	}
	h := handleConfigDump(status, func() ([]string, []string) { return nil, nil }, &corev3.Node{Id: "gw"}, func() cluster.Set { return cluster.Set{} })
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/config_dump", nil))
	b, _ := io.ReadAll(rec.Body)
	dump := string(b)
	for _, want := range []string{"envoy.admin.v3.SecretsConfigDump", "dynamic_active_secrets", "kubernetes://httpbin-credential", `"inline_string": "[redacted]"`} {
		if !strings.Contains(dump, want) {
			t.Errorf("config_dump lacks %s:\n%s", want, dump)
		}
	}
	// protojson renders inline bytes in base64.
	if strings.Contains(dump, base64.StdEncoding.EncodeToString([]byte(key))[:40]) || strings.Contains(dump, "PRIVATE KEY") {
		t.Fatalf("config_dump shows the key:\n%s", dump)
	}
	// The held resource is left as it was: the proxy still serves with it.
	if string(secret.GetTlsCertificate().GetPrivateKey().GetInlineBytes()) != key {
		t.Error("redaction changed the held secret")
	}
}
