package api

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/server/internal/auth"
)

type createdToken struct {
	ID        string    `json:"id"`
	Token     string    `json:"token"`
	Name      string    `json:"name"`
	Role      auth.Role `json:"role"`
	ExpiresAt time.Time `json:"expiresAt"`
}

func (e *env) createToken(c *client, req map[string]string) createdToken {
	e.t.Helper()
	var tok createdToken
	res := c.do("POST", "/api/v1/tokens", req, &tok)
	if res.status != http.StatusCreated {
		e.t.Fatalf("create token %v: %d %s", req, res.status, res.detail)
	}
	if res.header.Get("Cache-Control") != "no-store" {
		e.t.Errorf("token answer may be cached: Cache-Control %q", res.header.Get("Cache-Control"))
	}
	return tok
}

func TestTokensAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.admin()
	e.addUser(admin, "olga", "operator password", auth.RoleOperator)
	olga := e.signedIn("olga", "operator password")

	tok := e.createToken(olga, map[string]string{"name": "deploys", "expiresIn": "2h"})
	if !strings.HasPrefix(tok.Token, "slc_") || tok.Role != auth.RoleOperator || tok.Name != "deploys" {
		t.Errorf("created %+v, want an slc_ token with olga's role", tok)
	}

	// It works as a bearer token, as olga.
	s := e.script(tok.Token)
	var who whoamiView
	wantStatus(t, "whoami by token", s.do("GET", "/api/v1/whoami", nil, &who), http.StatusOK, "")
	if who != (whoamiView{Username: "olga", Role: auth.RoleOperator, AuthMethod: auth.MethodToken}) {
		t.Errorf("whoami by token %+v, want olga, operator, token, no CSRF token", who)
	}

	// It is listed, without the secret, to olga and to the admin, not to others.
	var list struct{ Tokens []tokenView }
	res := olga.do("GET", "/api/v1/tokens", nil, &list)
	wantStatus(t, "list", res, http.StatusOK, "")
	if strings.Contains(string(res.body), tok.Token) || strings.Contains(string(res.body), tok.Token[4:]) {
		t.Fatalf("the list shows the token's secret: %s", res.body)
	}
	if len(list.Tokens) != 1 || list.Tokens[0].ID != tok.ID || list.Tokens[0].Name != "deploys" || list.Tokens[0].Username != "olga" ||
		list.Tokens[0].Revoked || list.Tokens[0].LastUsedAt == nil || !list.Tokens[0].ExpiresAt.Equal(tok.ExpiresAt) {
		t.Errorf("olga's tokens %+v", list.Tokens)
	}
	for _, field := range []string{`"id"`, `"name"`, `"role"`, `"createdAt"`, `"expiresAt"`, `"lastUsedAt"`, `"revoked"`} {
		if !strings.Contains(string(res.body), field) {
			t.Errorf("token list lacks %s: %s", field, res.body)
		}
	}
	list.Tokens = nil
	admin.do("GET", "/api/v1/tokens", nil, &list)
	if len(list.Tokens) != 1 || list.Tokens[0].ID != tok.ID {
		t.Errorf("admin sees %+v, want olga's token", list.Tokens)
	}
	e.addUser(admin, "otto", "operator password", auth.RoleOperator)
	otto := e.signedIn("otto", "operator password")
	list.Tokens = nil
	otto.do("GET", "/api/v1/tokens", nil, &list)
	if len(list.Tokens) != 0 {
		t.Errorf("otto sees %+v, want none", list.Tokens)
	}
	wantStatus(t, "otto revokes olga's token", otto.do("DELETE", "/api/v1/tokens/"+tok.ID, nil, nil), http.StatusNotFound, "")

	// Rules on creation.
	wantStatus(t, "above own role", olga.do("POST", "/api/v1/tokens", map[string]string{"name": "x", "role": "admin"}, nil), http.StatusForbidden, "exceeds your role operator")
	wantStatus(t, "bad expiresIn", olga.do("POST", "/api/v1/tokens", map[string]string{"name": "x", "expiresIn": "30 days"}, nil), http.StatusBadRequest, "720h")
	wantStatus(t, "no name", olga.do("POST", "/api/v1/tokens", map[string]string{}, nil), http.StatusBadRequest, "name is required")
	wantStatus(t, "token makes token", s.do("POST", "/api/v1/tokens", map[string]string{"name": "x"}, nil), http.StatusForbidden, "sign in with your password")

	// Revoked: the very next request is refused.
	wantStatus(t, "revoke", olga.do("DELETE", "/api/v1/tokens/"+tok.ID, nil, nil), http.StatusNoContent, "")
	res = s.do("GET", "/api/v1/whoami", nil, nil)
	wantStatus(t, "revoked token", res, http.StatusUnauthorized, "revoked")
	if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("WWW-Authenticate %q", res.header.Get("WWW-Authenticate"))
	}
	wantStatus(t, "revoke again", olga.do("DELETE", "/api/v1/tokens/"+tok.ID, nil, nil), http.StatusNoContent, "")
	list.Tokens = nil
	olga.do("GET", "/api/v1/tokens", nil, &list)
	if len(list.Tokens) != 1 || !list.Tokens[0].Revoked || list.Tokens[0].RevokedAt == nil {
		t.Errorf("revoked token listed as %+v", list.Tokens)
	}

	// Expired.
	short := e.createToken(olga, map[string]string{"name": "short", "expiresIn": "1m"})
	wantStatus(t, "fresh token", e.script(short.Token).do("GET", "/api/v1/whoami", nil, nil), http.StatusOK, "")
	e.clock.Add(time.Minute)
	wantStatus(t, "expired token", e.script(short.Token).do("GET", "/api/v1/whoami", nil, nil), http.StatusUnauthorized, "expired")
}
