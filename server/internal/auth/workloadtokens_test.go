package auth_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/server/internal/auth"
)

func TestWorkloadTokenLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock()
	svc := newService(t, openStore(t), clk)
	admin := auth.Principal{Username: "admin", Role: auth.RoleAdmin, Method: auth.MethodToken, TokenID: "t1"}
	operator := auth.Principal{Username: "olga", Role: auth.RoleOperator, Method: auth.MethodSession}
	id := auth.WorkloadIdentity{Namespace: "default", ServiceAccount: "bookinfo-reviews"}

	_, err := svc.CreateWorkloadToken(ctx, operator, auth.WorkloadTokenRequest{Identity: id})
	wantKind(t, err, auth.KindForbidden, "admin")
	_, err = svc.ListWorkloadTokens(ctx, operator)
	wantKind(t, err, auth.KindForbidden, "admin")

	// An admin's API token may create one: sluicectl signs in with a token.
	nt, err := svc.CreateWorkloadToken(ctx, admin, auth.WorkloadTokenRequest{Identity: id, TTL: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(nt.Secret, auth.WorkloadTokenPrefix) || !auth.IsWorkloadTokenID(nt.ID) || nt.Name != "default/bookinfo-reviews" ||
		!nt.ExpiresAt.Equal(clk.Now().Add(2*time.Hour)) || nt.CreatedBy != "admin" {
		t.Errorf("new token %+v", nt.WorkloadToken)
	}
	got, err := svc.AuthenticateWorkload(ctx, nt.Secret)
	if err != nil || got.Identity != id || got.TokenID != nt.ID {
		t.Fatalf("authenticate: %+v %v", got, err)
	}
	// Neither kind of token passes for the other.
	_, err = svc.AuthenticateToken(ctx, nt.Secret)
	wantKind(t, err, auth.KindUnauthenticated, "malformed")

	list, err := svc.ListWorkloadTokens(ctx, admin)
	if err != nil || len(list) != 1 || list[0].ID != nt.ID || list[0].Identity != id || list[0].LastUsedAt.IsZero() {
		t.Fatalf("list %+v %v", list, err)
	}
	_, _, err = svc.RevokeWorkloadToken(ctx, operator, nt.ID)
	wantKind(t, err, auth.KindForbidden, "admin")
	_, _, err = svc.RevokeWorkloadToken(ctx, admin, "wt-0000")
	wantKind(t, err, auth.KindNotFound, "wt-0000")
	if _, changed, err := svc.RevokeWorkloadToken(ctx, admin, nt.ID); err != nil || !changed {
		t.Fatalf("revoke: %v %v", changed, err)
	}
	if _, changed, err := svc.RevokeWorkloadToken(ctx, admin, nt.ID); err != nil || changed {
		t.Fatalf("revoke again: %v %v, want no change", changed, err)
	}
	_, err = svc.AuthenticateWorkload(ctx, nt.Secret)
	wantKind(t, err, auth.KindUnauthenticated, "revoked")

	short, err := svc.CreateWorkloadToken(ctx, admin, auth.WorkloadTokenRequest{Identity: id, TTL: time.Minute, Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute)
	_, err = svc.AuthenticateWorkload(ctx, short.Secret)
	wantKind(t, err, auth.KindUnauthenticated, "expired")
}

func TestWorkloadTokenRequestValidation(t *testing.T) {
	t.Parallel()
	svc := newService(t, openStore(t), nil)
	admin := auth.Principal{Username: "admin", Role: auth.RoleAdmin, Method: auth.MethodSession}
	tests := []struct {
		name  string
		req   auth.WorkloadTokenRequest
		field string
	}{
		{"no namespace", auth.WorkloadTokenRequest{Identity: auth.WorkloadIdentity{ServiceAccount: "a"}}, "namespace"},
		{"upper-case namespace", auth.WorkloadTokenRequest{Identity: auth.WorkloadIdentity{Namespace: "Prod", ServiceAccount: "a"}}, "namespace"},
		{"namespace with a slash", auth.WorkloadTokenRequest{Identity: auth.WorkloadIdentity{Namespace: "a/b", ServiceAccount: "a"}}, "namespace"},
		{"long namespace", auth.WorkloadTokenRequest{Identity: auth.WorkloadIdentity{Namespace: strings.Repeat("a", 64), ServiceAccount: "a"}}, "namespace"},
		{"no service account", auth.WorkloadTokenRequest{Identity: auth.WorkloadIdentity{Namespace: "a"}}, "serviceAccount"},
		{"service account with a slash", auth.WorkloadTokenRequest{Identity: auth.WorkloadIdentity{Namespace: "a", ServiceAccount: "x/../y"}}, "serviceAccount"},
		{"too long", auth.WorkloadTokenRequest{Identity: auth.WorkloadIdentity{Namespace: "a", ServiceAccount: "b"}, TTL: 2 * auth.MaxTokenTTL}, "expiresIn"},
		{"too short", auth.WorkloadTokenRequest{Identity: auth.WorkloadIdentity{Namespace: "a", ServiceAccount: "b"}, TTL: time.Second}, "expiresIn"},
		{"control characters", auth.WorkloadTokenRequest{Identity: auth.WorkloadIdentity{Namespace: "a", ServiceAccount: "b"}, Name: "a\x00b"}, "name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := svc.CreateWorkloadToken(context.Background(), admin, tc.req)
			var ae *auth.Error
			if !asAuthError(err, &ae) || ae.Kind != auth.KindInvalid || ae.Field != tc.field {
				t.Errorf("err = %#v, want invalid field %s", err, tc.field)
			}
		})
	}
}

func asAuthError(err error, target **auth.Error) bool {
	e, ok := err.(*auth.Error)
	if ok {
		*target = e
	}
	return ok
}
