package api

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/changes"
	"github.com/sluicemesh/sluice/server/internal/store"
)

type fixedBundle string

func (b fixedBundle) RootPEM() []byte { return []byte(b) }

func TestCARoot(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Without a CA the route says so.
	if res := e.browser().do("GET", "/api/v1/ca/root", nil, nil); res.status != http.StatusServiceUnavailable {
		t.Errorf("without a CA: %d %s, want 503", res.status, res.body)
	}
	log := slog.New(slog.NewTextHandler(logWriter{t}, nil))
	svc, err := auth.NewService(e.st, auth.Options{Params: fastParams, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	const pemText = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
	srv := httptest.NewServer(NewServer(Deps{
		Log: log, DB: e.st, XDSServing: func() bool { return true }, Proxies: noProxies{},
		Console: fstest.MapFS{}, Auth: svc, Audit: e.st, Config: e.st, Changes: changes.New(e.st),
		CA: fixedBundle(pemText),
	}))
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/api/v1/ca/root")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || string(body) != pemText || resp.Header.Get("Content-Type") != "application/x-pem-file" {
		t.Errorf("anonymous GET /api/v1/ca/root: %d %q %s", resp.StatusCode, body, resp.Header.Get("Content-Type"))
	}
}

func TestWorkloadTokensAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.admin()
	var created struct {
		ID, Token, Name, Namespace, ServiceAccount string
	}
	res := admin.do("POST", "/api/v1/workload-tokens", map[string]string{"namespace": "default", "serviceAccount": "reviews", "expiresIn": "48h"}, &created)
	if res.status != http.StatusCreated || !strings.HasPrefix(created.Token, auth.WorkloadTokenPrefix) || !strings.HasPrefix(created.ID, "wt-") ||
		created.Namespace != "default" || created.ServiceAccount != "reviews" || res.header.Get("Cache-Control") != "no-store" {
		t.Fatalf("create: %d %s", res.status, res.body)
	}
	res = admin.do("POST", "/api/v1/workload-tokens", map[string]string{"namespace": "Bad/NS", "serviceAccount": "reviews"}, nil)
	if res.status != http.StatusBadRequest || !strings.Contains(string(res.body), `"path":"namespace"`) {
		t.Errorf("bad namespace: %d %s, want 400 naming the field", res.status, res.body)
	}
	// The workload token is no API token.
	if res := e.script(created.Token).do("GET", "/api/v1/whoami", nil, nil); res.status != http.StatusUnauthorized {
		t.Errorf("workload token on the REST API: %d, want 401", res.status)
	}
	var list struct {
		Tokens []workloadTokenView `json:"tokens"`
	}
	if res := admin.do("GET", "/api/v1/workload-tokens", nil, &list); res.status != http.StatusOK || len(list.Tokens) != 1 ||
		list.Tokens[0].ServiceAccount != "reviews" || strings.Contains(string(res.body), created.Token) {
		t.Fatalf("list: %d %s", res.status, res.body)
	}
	if res := admin.do("DELETE", "/api/v1/workload-tokens/"+created.ID, nil, nil); res.status != http.StatusNoContent {
		t.Fatalf("revoke: %d %s", res.status, res.body)
	}
	if res := admin.do("DELETE", "/api/v1/workload-tokens/wt-nothing", nil, nil); res.status != http.StatusNotFound {
		t.Errorf("revoke unknown: %d, want 404", res.status)
	}
	for _, action := range []string{"workload-token.create", "workload-token.revoke"} {
		entries, err := e.st.ListAudit(context.Background(), store.AuditFilter{Action: action})
		if err != nil || len(entries) != 1 || strings.Contains(string(entries[0].After), created.Token) {
			t.Errorf("audit %s: %+v %v", action, entries, err)
		}
	}
}
