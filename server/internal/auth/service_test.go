package auth_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/internal/pgtest"
	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var migrated = pgtest.Template{Name: "migrated", Setup: store.Migrate}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 9, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func testLog(t *testing.T) *slog.Logger { return slog.New(slog.NewTextHandler(testWriter{t}, nil)) }

func openStore(t *testing.T) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), pgtest.New(t, migrated), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

func newService(t *testing.T, st auth.Store, clk *clock) *auth.Service {
	t.Helper()
	opts := auth.Options{Params: fast, Log: testLog(t)}
	if clk != nil {
		opts.Now = clk.Now
	}
	svc, err := auth.NewService(st, opts)
	if err != nil {
		t.Fatal(err)
	}
	return svc
}

// signIn logs in and returns the session's principal.
func signIn(t *testing.T, svc *auth.Service, user, password string) (auth.Principal, auth.SignIn) {
	t.Helper()
	ctx := context.Background()
	in, err := svc.Login(ctx, user, password, "127.0.0.1")
	if err != nil {
		t.Fatalf("login %s: %v", user, err)
	}
	p, _, err := svc.AuthenticateSession(ctx, in.Cookie)
	if err != nil {
		t.Fatalf("session of %s: %v", user, err)
	}
	return p, in
}

func wantKind(t *testing.T, err error, kind auth.Kind, msgPart string) {
	t.Helper()
	if got := auth.ErrorKind(err); got != kind {
		t.Fatalf("error %v: kind %d, want %d", err, got, kind)
	}
	if !strings.Contains(err.Error(), msgPart) {
		t.Errorf("error %q does not say %q", err, msgPart)
	}
}

const adminPassword = "first admin password"

func TestBootstrapWithPassword(t *testing.T) {
	st := openStore(t)
	svc := newService(t, st, nil)
	ctx := context.Background()
	var out bytes.Buffer
	if err := svc.Bootstrap(ctx, adminPassword, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), adminPassword) {
		t.Errorf("stdout repeats the given password: %q", out.String())
	}
	if !strings.Contains(out.String(), "SLUICE_ADMIN_PASSWORD") {
		t.Errorf("stdout %q does not say where the password came from", out.String())
	}
	p, _ := signIn(t, svc, "admin", adminPassword)
	if p.Role != auth.RoleAdmin {
		t.Errorf("first user's role %s, want admin", p.Role)
	}

	out.Reset()
	if err := svc.Bootstrap(ctx, "another password entirely", &out); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("second bootstrap printed %q, want nothing", out.String())
	}
	if _, err := svc.Login(ctx, "admin", "another password entirely", "127.0.0.1"); auth.ErrorKind(err) != auth.KindUnauthenticated {
		t.Errorf("second bootstrap changed the password: login err %v", err)
	}
	us, _ := st.ListUsers(ctx)
	if len(us) != 1 {
		t.Errorf("%d users after two bootstraps, want 1", len(us))
	}
}

var generatedLine = regexp.MustCompile(`(?m)^    (\S+)$`)

func TestBootstrapGeneratesPasswordOnce(t *testing.T) {
	st := openStore(t)
	svc := newService(t, st, nil)
	ctx := context.Background()
	var out bytes.Buffer
	if err := svc.Bootstrap(ctx, "", &out); err != nil {
		t.Fatal(err)
	}
	m := generatedLine.FindAllStringSubmatch(out.String(), -1)
	if len(m) != 1 {
		t.Fatalf("want the password on one indented line of stdout, got %q", out.String())
	}
	password := m[0][1]
	if len(password) < 20 {
		t.Errorf("generated password %q has %d characters, want at least 20", password, len(password))
	}
	if !strings.Contains(out.String(), "PATCH /api/v1/users/admin") {
		t.Errorf("stdout %q does not say how to change the password", out.String())
	}
	signIn(t, svc, "admin", password)

	out.Reset()
	if err := svc.Bootstrap(ctx, "", &out); err != nil {
		t.Fatal(err)
	}
	if out.Len() != 0 {
		t.Errorf("second bootstrap printed %q, want nothing", out.String())
	}
}

func TestBootstrapRefusesShortPassword(t *testing.T) {
	st := openStore(t)
	svc := newService(t, st, nil)
	err := svc.Bootstrap(context.Background(), "short", io.Discard)
	if err == nil || !strings.Contains(err.Error(), "SLUICE_ADMIN_PASSWORD") || !strings.Contains(err.Error(), "at least 12") {
		t.Fatalf("err = %v, want one naming SLUICE_ADMIN_PASSWORD and the minimum length", err)
	}
	if has, _ := st.HasUsers(context.Background()); has {
		t.Error("a user was created anyway")
	}
}

func TestBootstrapRacingReplicasCreateOneAdmin(t *testing.T) {
	st := openStore(t)
	var outs [4]bytes.Buffer
	var wg sync.WaitGroup
	errs := make([]error, len(outs))
	for i := range outs {
		svc := newService(t, st, nil)
		wg.Go(func() { errs[i] = svc.Bootstrap(context.Background(), "", &outs[i]) })
	}
	wg.Wait()
	printed := 0
	for i := range outs {
		if errs[i] != nil {
			t.Errorf("replica %d: %v", i, errs[i])
		}
		if outs[i].Len() > 0 {
			printed++
		}
	}
	if printed != 1 {
		t.Errorf("%d replicas printed a password, want exactly 1", printed)
	}
}

func TestLoginFailuresLookAlike(t *testing.T) {
	st := openStore(t)
	svc := newService(t, st, nil)
	ctx := context.Background()
	if err := svc.Bootstrap(ctx, adminPassword, io.Discard); err != nil {
		t.Fatal(err)
	}
	_, wrong := svc.Login(ctx, "admin", "not the password", "127.0.0.1")
	_, unknown := svc.Login(ctx, "nobody", "not the password", "127.0.0.1")
	_, badName := svc.Login(ctx, "No Body\x00", "not the password", "127.0.0.1")
	var we, ue, be *auth.Error
	if !errors.As(wrong, &we) || !errors.As(unknown, &ue) || !errors.As(badName, &be) {
		t.Fatalf("errors %v / %v / %v, want *auth.Error", wrong, unknown, badName)
	}
	for _, e := range []*auth.Error{ue, be} {
		if e.Kind != we.Kind || e.Message != we.Message {
			t.Errorf("unknown user answers %d %q, wrong password %d %q: want the same", e.Kind, e.Message, we.Kind, we.Message)
		}
	}
	if we.Reason == ue.Reason {
		t.Errorf("the audit reason does not tell them apart: %q", we.Reason)
	}
}

func TestLoginRateLimited(t *testing.T) {
	st := openStore(t)
	svc := newService(t, st, newClock())
	ctx := context.Background()
	if err := svc.Bootstrap(ctx, adminPassword, io.Discard); err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := svc.Login(ctx, "admin", "guess", "127.0.0.1"); auth.ErrorKind(err) != auth.KindUnauthenticated {
			t.Fatalf("attempt %d: %v, want wrong password", i+1, err)
		}
	}
	_, err := svc.Login(ctx, "admin", adminPassword, "127.0.0.2")
	var e *auth.Error
	if !errors.As(err, &e) || e.Kind != auth.KindRateLimited || e.RetryAfter <= 0 {
		t.Fatalf("6th attempt: %v, want rate limited with a wait", err)
	}
}

func TestSessionExpiresAfterTTL(t *testing.T) {
	st := openStore(t)
	clk := newClock()
	svc := newService(t, st, clk)
	ctx := context.Background()
	if err := svc.Bootstrap(ctx, adminPassword, io.Discard); err != nil {
		t.Fatal(err)
	}
	_, in := signIn(t, svc, "admin", adminPassword)
	if got := in.Session.ExpiresAt.Sub(in.Session.CreatedAt); got != auth.DefaultSessionTTL {
		t.Errorf("session lasts %v, want %v", got, auth.DefaultSessionTTL)
	}
	clk.Add(auth.DefaultSessionTTL - time.Second)
	if _, _, err := svc.AuthenticateSession(ctx, in.Cookie); err != nil {
		t.Fatalf("a second before expiry: %v", err)
	}
	clk.Add(time.Second)
	_, _, err := svc.AuthenticateSession(ctx, in.Cookie)
	wantKind(t, err, auth.KindUnauthenticated, "session expired: sign in again")
	_, _, err = svc.AuthenticateSession(ctx, in.Cookie)
	wantKind(t, err, auth.KindUnauthenticated, "not signed in")
	_, _, err = svc.AuthenticateSession(ctx, "garbage")
	wantKind(t, err, auth.KindUnauthenticated, "sign in again")
}

func TestLogoutEndsSession(t *testing.T) {
	st := openStore(t)
	svc := newService(t, st, nil)
	ctx := context.Background()
	if err := svc.Bootstrap(ctx, adminPassword, io.Discard); err != nil {
		t.Fatal(err)
	}
	p, in := signIn(t, svc, "admin", adminPassword)
	if err := svc.Logout(ctx, p); err != nil {
		t.Fatal(err)
	}
	_, _, err := svc.AuthenticateSession(ctx, in.Cookie)
	wantKind(t, err, auth.KindUnauthenticated, "not signed in")
}

func TestTokenLifecycle(t *testing.T) {
	st := openStore(t)
	clk := newClock()
	svc := newService(t, st, clk)
	ctx := context.Background()
	if err := svc.Bootstrap(ctx, adminPassword, io.Discard); err != nil {
		t.Fatal(err)
	}
	admin, _ := signIn(t, svc, "admin", adminPassword)

	nt, err := svc.CreateToken(ctx, admin, auth.TokenRequest{Name: "ci", Role: auth.RoleOperator, TTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(nt.Secret, "slc_") || len(nt.Secret) != 4+43 {
		t.Errorf("token %q is not slc_ and 43 base64url characters", nt.Secret)
	}
	p, err := svc.AuthenticateToken(ctx, nt.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if p != (auth.Principal{Username: "admin", Role: auth.RoleOperator, TokenID: nt.ID, Method: auth.MethodToken}) {
		t.Errorf("token principal %+v", p)
	}

	// Last use is written at most once a minute.
	lastUsed := func() time.Time {
		ts, err := svc.ListTokens(ctx, admin)
		if err != nil || len(ts) != 1 {
			t.Fatalf("list tokens: %v %v", ts, err)
		}
		return ts[0].LastUsedAt
	}
	first := lastUsed()
	if !first.Equal(clk.Now()) {
		t.Errorf("last used %v, want %v", first, clk.Now())
	}
	clk.Add(30 * time.Second)
	if _, err := svc.AuthenticateToken(ctx, nt.Secret); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(first) {
		t.Errorf("last used rewritten after 30s: %v", got)
	}
	clk.Add(31 * time.Second)
	if _, err := svc.AuthenticateToken(ctx, nt.Secret); err != nil {
		t.Fatal(err)
	}
	if got := lastUsed(); !got.Equal(clk.Now()) {
		t.Errorf("last used %v after a minute, want %v", got, clk.Now())
	}

	// A token cannot make tokens.
	_, err = svc.CreateToken(ctx, p, auth.TokenRequest{Name: "child"})
	wantKind(t, err, auth.KindForbidden, "sign in with your password")

	// Expiry.
	clk.Add(time.Hour)
	_, err = svc.AuthenticateToken(ctx, nt.Secret)
	wantKind(t, err, auth.KindUnauthenticated, "expired")

	// Revocation.
	nt2, err := svc.CreateToken(ctx, admin, auth.TokenRequest{Name: "ci 2"})
	if err != nil {
		t.Fatal(err)
	}
	if got := nt2.ExpiresAt.Sub(nt2.CreatedAt); got != auth.DefaultTokenTTL || nt2.Role != auth.RoleAdmin {
		t.Errorf("default token: ttl %v role %s, want %v and the creator's role", got, nt2.Role, auth.DefaultTokenTTL)
	}
	if _, changed, err := svc.RevokeToken(ctx, admin, nt2.ID); err != nil || !changed {
		t.Fatalf("revoke: changed=%v err=%v", changed, err)
	}
	_, err = svc.AuthenticateToken(ctx, nt2.Secret)
	wantKind(t, err, auth.KindUnauthenticated, "revoked")
	if _, changed, err := svc.RevokeToken(ctx, admin, nt2.ID); err != nil || changed {
		t.Errorf("second revoke: changed=%v err=%v, want a no-op", changed, err)
	}

	for _, bad := range []string{"", "slc_", "slc_short", "xyz_" + nt2.Secret[4:], nt2.Secret + "x"} {
		_, err := svc.AuthenticateToken(ctx, bad)
		wantKind(t, err, auth.KindUnauthenticated, "API token")
	}
}

func TestTokenRules(t *testing.T) {
	st := openStore(t)
	svc := newService(t, st, nil)
	ctx := context.Background()
	if err := svc.Bootstrap(ctx, adminPassword, io.Discard); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateUser(ctx, "olga", "operator password", auth.RoleOperator); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.CreateUser(ctx, "otto", "operator password", auth.RoleOperator); err != nil {
		t.Fatal(err)
	}
	admin, _ := signIn(t, svc, "admin", adminPassword)
	olga, _ := signIn(t, svc, "olga", "operator password")
	otto, _ := signIn(t, svc, "otto", "operator password")

	tests := []struct {
		name string
		req  auth.TokenRequest
		kind auth.Kind
		msg  string
	}{
		{"above own role", auth.TokenRequest{Name: "x", Role: auth.RoleAdmin}, auth.KindForbidden, "role admin exceeds your role operator"},
		{"unknown role", auth.TokenRequest{Name: "x", Role: "root"}, auth.KindInvalid, "unknown"},
		{"no name", auth.TokenRequest{Name: "  "}, auth.KindInvalid, "name is required"},
		{"too long", auth.TokenRequest{Name: "x", TTL: 2 * auth.MaxTokenTTL}, auth.KindInvalid, "too long"},
		{"too short", auth.TokenRequest{Name: "x", TTL: time.Second}, auth.KindInvalid, "too short"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.CreateToken(ctx, olga, tt.req)
			wantKind(t, err, tt.kind, tt.msg)
		})
	}

	nt, err := svc.CreateToken(ctx, olga, auth.TokenRequest{Name: "deploys", Role: auth.RoleViewer})
	if err != nil {
		t.Fatal(err)
	}
	// Another operator can neither see nor revoke it; an admin can do both.
	if ts, _ := svc.ListTokens(ctx, otto); len(ts) != 0 {
		t.Errorf("otto sees %d tokens, want none", len(ts))
	}
	_, _, err = svc.RevokeToken(ctx, otto, nt.ID)
	wantKind(t, err, auth.KindNotFound, "no API token")
	if ts, _ := svc.ListTokens(ctx, admin); len(ts) != 1 || ts[0].Username != "olga" {
		t.Errorf("admin sees %+v, want olga's token", ts)
	}

	// Demoting a user demotes their tokens.
	nt2, err := svc.CreateToken(ctx, olga, auth.TokenRequest{Name: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	viewer := auth.RoleViewer
	if _, _, err := svc.UpdateUser(ctx, admin, "olga", auth.UserUpdate{Role: &viewer}); err != nil {
		t.Fatal(err)
	}
	p, err := svc.AuthenticateToken(ctx, nt2.Secret)
	if err != nil || p.Role != auth.RoleViewer {
		t.Errorf("operator token of a demoted user: role %s err %v, want viewer", p.Role, err)
	}
	// Deleting the user ends their tokens.
	if _, err := svc.DeleteUser(ctx, "olga"); err != nil {
		t.Fatal(err)
	}
	_, err = svc.AuthenticateToken(ctx, nt2.Secret)
	wantKind(t, err, auth.KindUnauthenticated, "unknown")
}

func TestUserManagement(t *testing.T) {
	st := openStore(t)
	svc := newService(t, st, nil)
	ctx := context.Background()
	if err := svc.Bootstrap(ctx, adminPassword, io.Discard); err != nil {
		t.Fatal(err)
	}
	admin, _ := signIn(t, svc, "admin", adminPassword)

	u, err := svc.CreateUser(ctx, "vera", "viewer password", "")
	if err != nil || u.Role != auth.RoleViewer {
		t.Fatalf("create with no role: %+v %v, want a viewer", u, err)
	}
	for _, tt := range []struct {
		name, user, password string
		role                 auth.Role
		kind                 auth.Kind
		msg                  string
	}{
		{"taken", "vera", "viewer password", "", auth.KindConflict, "already exists"},
		{"upper case", "Vera2", "viewer password", "", auth.KindInvalid, "lower-case"},
		{"empty", "", "viewer password", "", auth.KindInvalid, "not valid"},
		{"short password", "val", "short", "", auth.KindInvalid, "at least 12"},
		{"bad role", "val", "viewer password", "root", auth.KindInvalid, "unknown"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.CreateUser(ctx, tt.user, tt.password, tt.role)
			wantKind(t, err, tt.kind, tt.msg)
		})
	}

	// A new password ends the user's sessions.
	_, vin := signIn(t, svc, "vera", "viewer password")
	pw := "a new viewer password"
	if _, _, err := svc.UpdateUser(ctx, admin, "vera", auth.UserUpdate{Password: &pw}); err != nil {
		t.Fatal(err)
	}
	_, _, err = svc.AuthenticateSession(ctx, vin.Cookie)
	wantKind(t, err, auth.KindUnauthenticated, "not signed in")
	signIn(t, svc, "vera", pw)

	// Changing one's own password keeps the session it is done from.
	pw2 := "a new admin password"
	_, ain := signIn(t, svc, "admin", adminPassword)
	if _, _, err := svc.UpdateUser(ctx, admin, "admin", auth.UserUpdate{Password: &pw2}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := svc.AuthenticateSession(ctx, ain.Cookie); auth.ErrorKind(err) != auth.KindUnauthenticated {
		t.Errorf("admin's other session survived the password change: %v", err)
	}
	if p, _, err := svc.AuthenticateSession(ctx, admin.SessionID); err == nil {
		t.Errorf("a session id authenticated as a cookie: %+v", p)
	}

	_, _, err = svc.UpdateUser(ctx, admin, "vera", auth.UserUpdate{})
	wantKind(t, err, auth.KindInvalid, "nothing to change")
	viewer := auth.RoleViewer
	_, _, err = svc.UpdateUser(ctx, admin, "admin", auth.UserUpdate{Role: &viewer})
	wantKind(t, err, auth.KindConflict, "last admin")
	_, err = svc.DeleteUser(ctx, "admin")
	wantKind(t, err, auth.KindConflict, "last admin")
	_, err = svc.DeleteUser(ctx, "nobody")
	wantKind(t, err, auth.KindNotFound, "does not exist")
}

func TestLoginUpgradesOldHashes(t *testing.T) {
	st := openStore(t)
	ctx := context.Background()
	old := newService(t, st, nil)
	if err := old.Bootstrap(ctx, adminPassword, io.Discard); err != nil {
		t.Fatal(err)
	}
	stronger := fast
	stronger.Time = 2
	svc, err := auth.NewService(st, auth.Options{Params: stronger, Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	signIn(t, svc, "admin", adminPassword)
	u, err := st.GetUser(ctx, "admin")
	if err != nil {
		t.Fatal(err)
	}
	if auth.NeedsRehash(u.PasswordHash, stronger) {
		t.Errorf("hash %q was not upgraded at sign-in", u.PasswordHash)
	}
	signIn(t, svc, "admin", adminPassword)
}
