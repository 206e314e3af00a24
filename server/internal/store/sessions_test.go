package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/server/internal/auth"
)

func TestSessions(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	addUser(t, st, "vera", auth.RoleViewer)
	now := time.Now().UTC().Truncate(time.Microsecond)
	mk := func(id string, expires time.Time) auth.Session {
		s := auth.Session{ID: id, SecretHash: []byte("hash-" + id), Username: "vera", CSRFToken: "csrf-" + id, CreatedAt: now, ExpiresAt: expires}
		if err := st.InsertSession(ctx, s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	live := mk("live", now.Add(time.Hour))
	mk("other", now.Add(time.Hour))
	mk("expired", now.Add(-time.Second))

	got, err := st.SessionByHash(ctx, live.SecretHash)
	if err != nil {
		t.Fatal(err)
	}
	live.Role = auth.RoleViewer
	if got.ID != live.ID || got.Username != "vera" || got.Role != auth.RoleViewer || got.CSRFToken != live.CSRFToken ||
		!got.ExpiresAt.Equal(live.ExpiresAt) || !got.CreatedAt.Equal(live.CreatedAt) {
		t.Errorf("session %+v, want %+v", got, live)
	}
	// The role is the user's, as it is now.
	if _, _, err := st.UpdateUser(ctx, "vera", auth.UserChange{Role: auth.RoleOperator}); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.SessionByHash(ctx, live.SecretHash); got.Role != auth.RoleOperator {
		t.Errorf("session role %s after promotion, want operator", got.Role)
	}

	if err := st.DeleteExpiredSessions(ctx, now); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SessionByHash(ctx, []byte("hash-expired")); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("expired session: %v, want deleted", err)
	}
	if err := st.DeleteUserSessions(ctx, "vera", "live"); err != nil {
		t.Fatal(err)
	}
	if _, err := st.SessionByHash(ctx, []byte("hash-other")); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("other session: %v, want deleted", err)
	}
	if _, err := st.SessionByHash(ctx, live.SecretHash); err != nil {
		t.Errorf("the kept session: %v", err)
	}
	if err := st.DeleteSession(ctx, "live"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteSession(ctx, "live"); err != nil {
		t.Errorf("deleting a deleted session: %v", err)
	}
	if _, err := st.SessionByHash(ctx, live.SecretHash); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("deleted session: %v", err)
	}
}
