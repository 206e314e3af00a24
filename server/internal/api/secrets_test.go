package api

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"log/slog"
	"math/big"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"testing/fstest"
	"time"

	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/ca"
	"github.com/sluicemesh/sluice/server/internal/changes"
)

// testCert returns a self-signed certificate for host, valid from notBefore to notAfter, and
// its key, in PEM.
func testCert(t *testing.T, host string, notBefore, notAfter time.Time) (string, string) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: host}, DNSNames: []string{host},
		NotBefore: notBefore, NotAfter: notAfter}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(k)
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd}))
}

// secretsEnv is an env whose server keeps secrets under a fresh CA key; changed counts the
// writes it was told of.
func secretsEnv(t *testing.T) (*env, *atomic.Int32) {
	e := newEnv(t)
	log := slog.New(slog.NewTextHandler(logWriter{t}, nil))
	svc, err := auth.NewService(e.st, auth.Options{Params: fastParams, Now: e.clock.Now, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	key := make([]byte, ca.KeySize)
	_, _ = rand.Read(key)
	var changed atomic.Int32
	e.srv.Config.Handler = NewServer(Deps{
		Log: log, DB: e.st, XDSServing: func() bool { return true }, Proxies: noProxies{},
		Console: fstest.MapFS{"index.html": {Data: []byte("<!doctype html>")}},
		Auth:    svc, Audit: e.st, Config: e.st, Changes: changes.New(e.st),
		Secrets: Secrets{Store: e.st, Key: key, Changed: func() { changed.Add(1) }},
	})
	return e, &changed
}

func TestSecretsAPI(t *testing.T) {
	t.Parallel()
	e, changed := secretsEnv(t)
	admin := e.admin()
	e.addUser(admin, "olga", "operator password", auth.RoleOperator)
	e.addUser(admin, "vic", "viewer password", auth.RoleViewer)
	olga := e.signedIn("olga", "operator password")
	vic := e.signedIn("vic", "viewer password")
	now := time.Now()
	cert, key := testCert(t, "httpbin.example.com", now.Add(-time.Hour), now.Add(time.Hour))
	body := map[string]string{"name": "httpbin-credential", "cert": cert, "key": key}
	const path = "/api/v1/namespaces/istio-system/secrets"

	wantStatus(t, "create as operator", olga.do("POST", path, body, nil), http.StatusForbidden, "")
	var created secretView
	res := admin.do("POST", path, body, &created)
	wantStatus(t, "create", res, http.StatusCreated, "")
	if strings.Contains(string(res.body), "PRIVATE KEY") || strings.Contains(string(res.body), key[40:80]) {
		t.Fatalf("the create answer shows the key: %s", res.body)
	}
	if created.Subject != "CN=httpbin.example.com" || len(created.SANs) != 1 || created.SANs[0] != "httpbin.example.com" ||
		len(created.Fingerprint) != 64 || created.HasCACert || created.CreatedBy != "admin" {
		t.Errorf("created %+v", created)
	}
	if changed.Load() != 1 {
		t.Errorf("the xDS server was told of %d changes, want 1", changed.Load())
	}
	wantStatus(t, "create again", admin.do("POST", path, body, nil), http.StatusConflict, "exists")

	for name, c := range map[string]*client{"operator": olga, "admin": admin} {
		res := c.do("GET", path+"/httpbin-credential", nil, nil)
		wantStatus(t, "get as "+name, res, http.StatusOK, "")
		if strings.Contains(string(res.body), "PRIVATE KEY") || strings.Contains(string(res.body), key[40:80]) {
			t.Fatalf("get shows the key: %s", res.body)
		}
		var list struct{ Secrets []secretView }
		res = c.do("GET", path, nil, &list)
		wantStatus(t, "list as "+name, res, http.StatusOK, "")
		if len(list.Secrets) != 1 || strings.Contains(string(res.body), "PRIVATE KEY") {
			t.Fatalf("list: %s", res.body)
		}
	}
	wantStatus(t, "get as viewer", vic.do("GET", path+"/httpbin-credential", nil, nil), http.StatusForbidden, "")
	wantStatus(t, "get a missing one", admin.do("GET", path+"/nope", nil, nil), http.StatusNotFound, "secret istio-system/nope not found")

	// The audit log names the secret and never holds the key.
	var audit struct {
		Entries []map[string]any `json:"entries"`
	}
	res = admin.do("GET", "/api/v1/audit?action=secret.create", nil, &audit)
	if strings.Contains(string(res.body), "PRIVATE KEY") || !strings.Contains(string(res.body), "secrets/istio-system/httpbin-credential") {
		t.Errorf("audit: %s", res.body)
	}

	// Rotation in place.
	cert2, key2 := testCert(t, "httpbin.example.com", now.Add(-time.Hour), now.Add(2*time.Hour))
	var replaced secretView
	wantStatus(t, "replace", admin.do("PUT", path+"/httpbin-credential", map[string]string{"cert": cert2, "key": key2}, &replaced), http.StatusOK, "")
	if replaced.Fingerprint == created.Fingerprint {
		t.Error("replace kept the old certificate")
	}
	wantStatus(t, "replace a missing one", admin.do("PUT", path+"/nope", map[string]string{"cert": cert2, "key": key2}, nil), http.StatusNotFound, "")
	wantStatus(t, "delete", admin.do("DELETE", path+"/httpbin-credential", nil, nil), http.StatusNoContent, "")
	wantStatus(t, "delete again", admin.do("DELETE", path+"/httpbin-credential", nil, nil), http.StatusNotFound, "")
	if changed.Load() != 3 {
		t.Errorf("the xDS server was told of %d changes, want 3", changed.Load())
	}
}

func TestSecretsAPIValidation(t *testing.T) {
	t.Parallel()
	e, _ := secretsEnv(t)
	admin := e.admin()
	now := time.Now()
	cert, key := testCert(t, "a.example.com", now.Add(-time.Hour), now.Add(time.Hour))
	_, otherKey := testCert(t, "b.example.com", now.Add(-time.Hour), now.Add(time.Hour))
	expired, expiredKey := testCert(t, "old.example.com", now.Add(-2*time.Hour), now.Add(-time.Hour))
	wantStatus(t, "bad namespace", admin.do("POST", "/api/v1/namespaces/Bad_NS/secrets", map[string]string{"name": "a", "cert": cert, "key": key}, nil), http.StatusBadRequest, "not a DNS label")
	for _, tc := range []struct {
		name  string
		body  map[string]string
		field string
		part  string
	}{
		{"bad name", map[string]string{"name": "Not_A_Name", "cert": cert, "key": key}, "name", "not a valid name"},
		{"no cert", map[string]string{"name": "a", "key": key}, "cert", "required"},
		{"cert not PEM", map[string]string{"name": "a", "cert": "hello", "key": key}, "cert", "no PEM certificate"},
		{"key of another cert", map[string]string{"name": "a", "cert": cert, "key": otherKey}, "key", "does not match"},
		{"key not PEM", map[string]string{"name": "a", "cert": cert, "key": "secret"}, "key", "not a PEM private key"},
		{"expired", map[string]string{"name": "a", "cert": expired, "key": expiredKey}, "cert", "expired"},
		{"bad CA", map[string]string{"name": "a", "cert": cert, "key": key, "caCert": "nope"}, "caCert", "no PEM certificate"},
		{"too large", map[string]string{"name": "a", "cert": strings.Repeat("x", maxSecretPEM+1), "key": key}, "cert", "over the limit"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var p struct {
				Errors []FieldError `json:"errors"`
			}
			res := admin.do("POST", "/api/v1/namespaces/default/secrets", tc.body, nil)
			wantStatus(t, tc.name, res, http.StatusBadRequest, "")
			if k := tc.body["key"]; len(k) > 80 && strings.Contains(string(res.body), k[40:80]) {
				t.Errorf("the error repeats the key: %s", res.body)
			}
			_ = json.Unmarshal(res.body, &p)
			found := false
			for _, fe := range p.Errors {
				if fe.Path == tc.field && strings.Contains(fe.Message, tc.part) {
					found = true
				}
			}
			if !found {
				t.Errorf("errors %s, want %s: …%s…", res.body, tc.field, tc.part)
			}
		})
	}
}
