package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/server/internal/auth"
)

func TestWorkloadTokens(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	mk := func(id string, created time.Time, ns, sa string) auth.WorkloadToken {
		tk := auth.WorkloadToken{ID: id, SecretHash: []byte("hash-" + id), Name: "name " + id,
			Identity: auth.WorkloadIdentity{Namespace: ns, ServiceAccount: sa}, CreatedBy: "admin",
			CreatedAt: created, ExpiresAt: created.Add(time.Hour)}
		if err := st.InsertWorkloadToken(ctx, tk); err != nil {
			t.Fatal(err)
		}
		return tk
	}
	w1 := mk("wt-1", now, "default", "reviews")
	mk("wt-2", now.Add(time.Second), "prod", "web")

	got, err := st.WorkloadTokenByHash(ctx, w1.SecretHash)
	if err != nil {
		t.Fatal(err)
	}
	if got.ID != "wt-1" || got.Identity != w1.Identity || got.CreatedBy != "admin" || got.Revoked() || !got.ExpiresAt.Equal(w1.ExpiresAt) {
		t.Errorf("token %+v", got)
	}
	if _, err := st.WorkloadTokenByHash(ctx, []byte("nope")); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("unknown hash: %v", err)
	}
	if _, err := st.GetWorkloadToken(ctx, "wt-none"); !errors.Is(err, auth.ErrNotFound) {
		t.Errorf("unknown id: %v", err)
	}
	list, err := st.ListWorkloadTokens(ctx)
	if err != nil || len(list) != 2 || list[0].ID != "wt-2" {
		t.Fatalf("list %+v %v, want wt-2 then wt-1", list, err)
	}
	if err := st.TouchWorkloadToken(ctx, "wt-1", now.Add(time.Minute), now); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeWorkloadToken(ctx, "wt-1", now.Add(2*time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := st.RevokeWorkloadToken(ctx, "wt-1", now.Add(3*time.Minute)); err != nil {
		t.Fatal(err)
	}
	got, _ = st.GetWorkloadToken(ctx, "wt-1")
	if !got.RevokedAt.Equal(now.Add(2*time.Minute)) || !got.LastUsedAt.Equal(now.Add(time.Minute)) {
		t.Errorf("after touch and revoke: %+v", got)
	}
}
