package api

import (
	"net/http"
	"strings"
	"testing"

	"github.com/sluicemesh/sluice/server/internal/auth"
)

func TestRolesGateRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.admin()
	e.addUser(admin, "vera", "viewer password", auth.RoleViewer)
	e.addUser(admin, "olga", "operator password", auth.RoleOperator)
	vera := e.signedIn("vera", "viewer password")
	olga := e.signedIn("olga", "operator password")

	res := vera.do("POST", routeOperatorWrite, nil, nil)
	wantStatus(t, "viewer write", res, http.StatusForbidden, "this needs the operator role, and vera has the viewer role")
	if !strings.Contains(string(res.body), `"requiredRole":"operator"`) {
		t.Errorf("403 problem lacks requiredRole: %s", res.body)
	}
	wantStatus(t, "viewer reads proxies", vera.do("GET", "/api/v1/proxies", nil, nil), http.StatusOK, "")
	wantStatus(t, "viewer reads audit", vera.do("GET", "/api/v1/audit", nil, nil), http.StatusForbidden, "operator")
	wantStatus(t, "operator write", olga.do("POST", routeOperatorWrite, nil, nil), http.StatusOK, "")
	wantStatus(t, "operator reads audit", olga.do("GET", "/api/v1/audit", nil, nil), http.StatusOK, "")

	for _, c := range []*client{vera, olga} {
		for _, r := range []struct {
			method, path string
			body         any
		}{
			{"GET", "/api/v1/users", nil},
			{"GET", "/api/v1/users/admin", nil},
			{"POST", "/api/v1/users", map[string]string{"username": "mallory", "password": "mallory password", "role": "admin"}},
			{"PATCH", "/api/v1/users/olga", map[string]string{"role": "admin"}},
			{"DELETE", "/api/v1/users/admin", nil},
		} {
			wantStatus(t, r.method+" "+r.path, c.do(r.method, r.path, r.body, nil), http.StatusForbidden, "needs the admin role")
		}
	}
	wantStatus(t, "admin lists users", admin.do("GET", "/api/v1/users", nil, nil), http.StatusOK, "")
}

func TestUsersAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	admin := e.admin()

	var u userView
	res := admin.do("POST", "/api/v1/users", map[string]string{"username": "vera", "password": "viewer password"}, &u)
	wantStatus(t, "create", res, http.StatusCreated, "")
	if u.Username != "vera" || u.Role != auth.RoleViewer || res.header.Get("Location") != "/api/v1/users/vera" {
		t.Errorf("created %+v at %q, want vera, viewer by default", u, res.header.Get("Location"))
	}
	wantStatus(t, "create again", admin.do("POST", "/api/v1/users", map[string]string{"username": "vera", "password": "viewer password"}, nil), http.StatusConflict, "already exists")
	res = admin.do("POST", "/api/v1/users", map[string]string{"username": "val", "password": "short"}, nil)
	wantStatus(t, "short password", res, http.StatusBadRequest, "at least 12")
	if !strings.Contains(string(res.body), `"path":"password"`) {
		t.Errorf("short password problem does not locate the field: %s", res.body)
	}
	wantStatus(t, "bad name", admin.do("POST", "/api/v1/users", map[string]string{"username": "Val Kilmer", "password": "long enough password"}, nil), http.StatusBadRequest, "lower-case")
	wantStatus(t, "bad role", admin.do("POST", "/api/v1/users", map[string]string{"username": "val", "password": "long enough password", "role": "root"}, nil), http.StatusBadRequest, "viewer, operator or admin")

	var list struct{ Users []userView }
	res = admin.do("GET", "/api/v1/users", nil, &list)
	if len(list.Users) != 2 || list.Users[0].Username != "admin" || list.Users[1].Username != "vera" {
		t.Errorf("users %+v", list.Users)
	}
	if strings.Contains(string(res.body), "argon2") || strings.Contains(strings.ToLower(string(res.body)), "password") {
		t.Errorf("the user list shows password material: %s", res.body)
	}

	vera := e.signedIn("vera", "viewer password")
	wantStatus(t, "promote", admin.do("PATCH", "/api/v1/users/vera", map[string]string{"role": "operator"}, &u), http.StatusOK, "")
	if u.Role != auth.RoleOperator {
		t.Errorf("after promotion %+v", u)
	}
	// The role takes effect on the next request of an existing session.
	var who whoamiView
	vera.do("GET", "/api/v1/whoami", nil, &who)
	if who.Role != auth.RoleOperator {
		t.Errorf("vera's session has role %s after promotion, want operator", who.Role)
	}
	wantStatus(t, "new password", admin.do("PATCH", "/api/v1/users/vera", map[string]string{"password": "another viewer password"}, nil), http.StatusOK, "")
	wantStatus(t, "session after password change", vera.do("GET", "/api/v1/whoami", nil, nil), http.StatusUnauthorized, "sign in again")
	e.signedIn("vera", "another viewer password")
	wantStatus(t, "empty patch", admin.do("PATCH", "/api/v1/users/vera", map[string]string{}, nil), http.StatusBadRequest, "nothing to change")
	wantStatus(t, "patch unknown", admin.do("PATCH", "/api/v1/users/nobody", map[string]string{"role": "viewer"}, nil), http.StatusNotFound, "does not exist")

	// The last admin stays.
	wantStatus(t, "delete last admin", admin.do("DELETE", "/api/v1/users/admin", nil, nil), http.StatusConflict, "last admin: make another user admin first")
	wantStatus(t, "demote last admin", admin.do("PATCH", "/api/v1/users/admin", map[string]string{"role": "viewer"}, nil), http.StatusConflict, "last admin")
	wantStatus(t, "promote vera", admin.do("PATCH", "/api/v1/users/vera", map[string]string{"role": "admin"}, nil), http.StatusOK, "")
	wantStatus(t, "delete admin with another left", admin.do("DELETE", "/api/v1/users/admin", nil, nil), http.StatusNoContent, "")
	wantStatus(t, "deleted admin's session", admin.do("GET", "/api/v1/whoami", nil, nil), http.StatusUnauthorized, "")
	wantStatus(t, "delete unknown", e.signedIn("vera", "another viewer password").do("DELETE", "/api/v1/users/admin", nil, nil), http.StatusNotFound, "")
}
