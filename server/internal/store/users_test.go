package store_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/store"
)

func addUser(t *testing.T, st *store.Store, name string, role auth.Role) auth.User {
	t.Helper()
	u := auth.User{Username: name, Role: role, PasswordHash: "$argon2id$hash-of-" + name, CreatedAt: time.Now().UTC().Truncate(time.Microsecond)}
	if err := st.InsertUser(context.Background(), u); err != nil {
		t.Fatal(err)
	}
	return u
}

func TestUsers(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	if has, err := st.HasUsers(ctx); err != nil || has {
		t.Fatalf("fresh database: has users %v, err %v", has, err)
	}
	addUser(t, st, "vera", auth.RoleViewer)
	addUser(t, st, "alice", auth.RoleAdmin)
	if err := st.InsertUser(ctx, auth.User{Username: "vera", Role: auth.RoleAdmin, PasswordHash: "x"}); !errors.Is(err, auth.ErrExists) {
		t.Errorf("duplicate insert: %v, want auth.ErrExists", err)
	}
	if err := st.InsertUser(ctx, auth.User{Username: "eve", Role: "root", PasswordHash: "x"}); err == nil {
		t.Error("the table accepted role root")
	}
	us, err := st.ListUsers(ctx)
	if err != nil || len(us) != 2 || us[0].Username != "alice" || us[1].Username != "vera" {
		t.Fatalf("list: %+v %v, want alice and vera in order", us, err)
	}
	if _, err := st.GetUser(ctx, "nobody"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("get missing: %v, want auth.ErrNotFound", err)
	}

	before, after, err := st.UpdateUser(ctx, "vera", auth.UserChange{Role: auth.RoleOperator})
	if err != nil {
		t.Fatal(err)
	}
	if before.Role != auth.RoleViewer || after.Role != auth.RoleOperator || after.PasswordHash != before.PasswordHash {
		t.Errorf("role change: before %+v after %+v", before, after)
	}
	_, after, err = st.UpdateUser(ctx, "vera", auth.UserChange{PasswordHash: "new"})
	if err != nil || after.PasswordHash != "new" || after.Role != auth.RoleOperator {
		t.Errorf("password change: %+v %v", after, err)
	}
	if _, _, err := st.UpdateUser(ctx, "nobody", auth.UserChange{Role: auth.RoleAdmin}); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("update missing: %v, want auth.ErrNotFound", err)
	}

	// Deleting a user takes their sessions and tokens with them.
	now := time.Now()
	if err := st.InsertSession(ctx, auth.Session{ID: "s1", SecretHash: []byte("h1"), Username: "vera", CSRFToken: "c", CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if err := st.InsertToken(ctx, auth.Token{ID: "t1", SecretHash: []byte("th1"), Name: "n", Username: "vera", Role: auth.RoleViewer, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if _, err := st.DeleteUser(ctx, "vera"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SessionByHash(ctx, []byte("h1")); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("session of a deleted user: %v, want gone", err)
	}
	if _, err := st.GetToken(ctx, "t1"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("token of a deleted user: %v, want gone", err)
	}
	if _, err := st.DeleteUser(ctx, "vera"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("delete twice: %v, want auth.ErrNotFound", err)
	}
}

func TestInsertFirstUserOnlyOnce(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	u := auth.User{Username: "admin", Role: auth.RoleAdmin, PasswordHash: "x", CreatedAt: time.Now()}
	if ok, err := st.InsertFirstUser(ctx, u); err != nil || !ok {
		t.Fatalf("first: %v %v", ok, err)
	}
	if ok, err := st.InsertFirstUser(ctx, u); err != nil || ok {
		t.Errorf("same again: %v %v, want nothing done", ok, err)
	}
	u.Username = "root"
	if ok, err := st.InsertFirstUser(ctx, u); err != nil || ok {
		t.Errorf("another name once users exist: %v %v, want nothing done", ok, err)
	}
}

func TestLastAdminIsKept(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	addUser(t, st, "alice", auth.RoleAdmin)
	addUser(t, st, "olga", auth.RoleOperator)
	if _, err := st.DeleteUser(ctx, "alice"); !errors.Is(err, auth.ErrLastAdmin) {
		t.Errorf("delete the only admin: %v, want auth.ErrLastAdmin", err)
	}
	if _, _, err := st.UpdateUser(ctx, "alice", auth.UserChange{Role: auth.RoleOperator}); !errors.Is(err, auth.ErrLastAdmin) {
		t.Errorf("demote the only admin: %v, want auth.ErrLastAdmin", err)
	}
	if _, _, err := st.UpdateUser(ctx, "alice", auth.UserChange{Role: auth.RoleAdmin, PasswordHash: "y"}); err != nil {
		t.Errorf("keeping the only admin an admin: %v", err)
	}
	if _, err := st.DeleteUser(ctx, "olga"); err != nil {
		t.Errorf("delete a non-admin: %v", err)
	}
}

// Two admins removed at the same moment must leave one: each removal locks the admins before
// counting them.
func TestLastAdminUnderConcurrency(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	survivor := "a0"
	addUser(t, st, survivor, auth.RoleAdmin)
	for round := range 10 {
		other := fmt.Sprintf("a%d", round+1)
		addUser(t, st, other, auth.RoleAdmin)
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, name := range []string{survivor, other} {
			wg.Go(func() {
				if (round+i)%2 == 0 {
					_, errs[i] = st.DeleteUser(ctx, name)
				} else {
					_, _, errs[i] = st.UpdateUser(ctx, name, auth.UserChange{Role: auth.RoleViewer})
				}
			})
		}
		wg.Wait()
		refused := 0
		for _, err := range errs {
			switch {
			case errors.Is(err, auth.ErrLastAdmin):
				refused++
			case err != nil:
				t.Fatalf("round %d: %v", round, err)
			}
		}
		if refused != 1 {
			t.Fatalf("round %d: %d of 2 removals refused, want exactly 1 (errors %v)", round, refused, errs)
		}
		us, err := st.ListUsers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var admins []string
		for _, u := range us {
			if u.Role == auth.RoleAdmin {
				admins = append(admins, u.Username)
			}
		}
		if len(admins) != 1 {
			t.Fatalf("round %d: admins %v, want exactly one", round, admins)
		}
		survivor = admins[0]
	}
}
