package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/server/internal/auth"
)

func TestTokens(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	addUser(t, st, "olga", auth.RoleOperator)
	addUser(t, st, "alice", auth.RoleAdmin)
	now := time.Now().UTC().Truncate(time.Microsecond)
	mk := func(id, user string, created time.Time) auth.Token {
		tk := auth.Token{ID: id, SecretHash: []byte("hash-" + id), Name: "name " + id, Username: user,
			Role: auth.RoleViewer, CreatedAt: created, ExpiresAt: created.Add(time.Hour)}
		if err := st.InsertToken(ctx, tk); err != nil {
			t.Fatal(err)
		}
		return tk
	}
	t1 := mk("t1", "olga", now)
	mk("t2", "olga", now.Add(time.Second))
	mk("t3", "alice", now.Add(2*time.Second))

	got, err := st.TokenByHash(ctx, t1.SecretHash)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "t1" || got.Name != "name t1" || got.Role != auth.RoleViewer || got.UserRole != auth.RoleOperator ||
		!got.LastUsedAt.IsZero() || got.Revoked() || !got.ExpiresAt.Equal(t1.ExpiresAt) {
		t.Errorf("token %+v", got)
	}
	if _, err := st.TokenByHash(ctx, []byte("nope")); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("unknown hash: %v", err)
	}

	ids := func(user string) []string {
		ts, err := st.ListTokens(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, tk := range ts {
			out = append(out, tk.ID)
		}
		return out
	}
	if got := ids("olga"); len(got) != 2 || got[0] != "t2" || got[1] != "t1" {
		t.Errorf("olga's tokens %v, want [t2 t1]", got)
	}
	if got := ids(""); len(got) != 3 || got[0] != "t3" {
		t.Errorf("all tokens %v, want 3, newest first", got)
	}

	// A use is recorded unless one since the threshold is.
	use := now.Add(time.Minute)
	if err := st.TouchToken(ctx, "t1", use, use.Add(-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := st.TouchToken(ctx, "t1", use.Add(10*time.Second), use.Add(10*time.Second-time.Minute)); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GetToken(ctx, "t1"); !got.LastUsedAt.Equal(use) {
		t.Errorf("last used %v, want %v (the second touch was within a minute)", got.LastUsedAt, use)
	}

	if err := st.RevokeToken(ctx, "t1", now.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeToken(ctx, "t1", now.Add(2*time.Hour)); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.GetToken(ctx, "t1"); !got.RevokedAt.Equal(now.Add(time.Hour)) {
		t.Errorf("revoked at %v, want the first revocation's time", got.RevokedAt)
	}
}
