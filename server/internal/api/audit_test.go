package api

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/sluicemesh/sluice/server/internal/auth"
)

type auditPage struct {
	Entries []auditView `json:"entries"`
	Next    string      `json:"next"`
}

func TestAuditRecordsAuthEventsWithoutSecrets(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const wrongPassword = "wrong password 7f3a"
	const userPassword = "vera's secret password"
	const newPassword = "vera's next password"

	wantStatus(t, "failed login", e.browser().do("POST", "/api/v1/login", map[string]string{"username": "admin", "password": wrongPassword}, nil), http.StatusUnauthorized, "")
	wantStatus(t, "unknown user", e.browser().do("POST", "/api/v1/login", map[string]string{"username": "ghost", "password": wrongPassword}, nil), http.StatusUnauthorized, "")
	admin := e.admin()
	e.addUser(admin, "vera", userPassword, auth.RoleViewer)
	wantStatus(t, "new password", admin.do("PATCH", "/api/v1/users/vera", map[string]string{"password": newPassword, "role": "operator"}, nil), http.StatusOK, "")
	vera := e.signedIn("vera", newPassword)
	tok := e.createToken(vera, map[string]string{"name": "ci"})
	wantStatus(t, "use token", e.script(tok.Token).do("GET", "/api/v1/whoami", nil, nil), http.StatusOK, "")
	wantStatus(t, "revoke", vera.do("DELETE", "/api/v1/tokens/"+tok.ID, nil, nil), http.StatusNoContent, "")
	wantStatus(t, "logout", vera.do("POST", "/api/v1/logout", nil, nil), http.StatusNoContent, "")
	wantStatus(t, "delete", admin.do("DELETE", "/api/v1/users/vera", nil, nil), http.StatusNoContent, "")

	var page auditPage
	wantStatus(t, "audit", admin.do("GET", "/api/v1/audit", nil, &page), http.StatusOK, "")
	var got []string
	for _, en := range page.Entries {
		got = append(got, en.Action+" "+en.Actor+" "+en.Target+" "+en.Outcome)
		if en.ClientAddr != "127.0.0.1" {
			t.Errorf("entry %d: client address %q, want 127.0.0.1", en.ID, en.ClientAddr)
		}
	}
	want := []string{
		"user.delete admin users/vera success",
		"logout vera users/vera success",
		"token.revoke vera tokens/" + tok.ID + " success",
		"token.create vera tokens/" + tok.ID + " success",
		"login vera users/vera success",
		"user.update admin users/vera success",
		"user.create admin users/vera success",
		"login admin users/admin success",
		"login ghost users/ghost failure",
		"login admin users/admin failure",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log, newest first:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if len(page.Entries) == len(want) {
		if d := page.Entries[9].Detail + "/" + page.Entries[8].Detail; d != "wrong password/unknown user" {
			t.Errorf("failed logins' details %q, want the reasons", d)
		}
		upd := page.Entries[5]
		if string(upd.Before) != `{"role":"viewer","username":"vera"}` || string(upd.After) != `{"role":"operator","username":"vera"}` ||
			upd.Detail != "role viewer to operator; password changed" {
			t.Errorf("user.update entry %+v", upd)
		}
	}

	// Paging.
	var p1, p2 auditPage
	admin.do("GET", "/api/v1/audit?limit=4", nil, &p1)
	if len(p1.Entries) != 4 || p1.Next == "" {
		t.Fatalf("first page %+v, want 4 entries and a cursor", p1)
	}
	admin.do("GET", "/api/v1/audit?limit=100&before="+p1.Next, nil, &p2)
	if len(p2.Entries) != len(page.Entries)-4 || p2.Next != "" || p2.Entries[0].ID >= p1.Entries[3].ID {
		t.Errorf("second page %d entries next %q, want the remaining %d and no cursor", len(p2.Entries), p2.Next, len(page.Entries)-4)
	}
	var failures auditPage
	admin.do("GET", "/api/v1/audit?action=login&actor=admin", nil, &failures)
	if len(failures.Entries) != 2 {
		t.Errorf("admin's logins: %d entries, want 2", len(failures.Entries))
	}
	for _, q := range []string{"limit=0", "limit=1001", "since=yesterday", "before=abc"} {
		wantStatus(t, q, admin.do("GET", "/api/v1/audit?"+q, nil, nil), http.StatusBadRequest, "")
	}

	// No secret reached the table, in any column.
	conn, err := pgx.Connect(context.Background(), e.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), `SELECT audit_log::text FROM audit_log`)
	if err != nil {
		t.Fatal(err)
	}
	var all []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatal(err)
		}
		all = append(all, s)
	}
	if rows.Err() != nil || len(all) != len(want) {
		t.Fatalf("%d rows (%v), want %d", len(all), rows.Err(), len(want))
	}
	dump := strings.Join(all, "\n")
	for _, secret := range []string{adminPassword, wrongPassword, userPassword, newPassword, tok.Token, tok.Token[4:], admin.csrf, "$argon2id"} {
		if strings.Contains(dump, secret) {
			t.Errorf("the audit table contains the secret %q:\n%s", secret, dump)
		}
	}
}
