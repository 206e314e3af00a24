package xds

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/registry"
)

// streamIdentity returns the workload identity the stream's caller authenticated with, and
// false on the plaintext port, which authenticates nobody.
func streamIdentity(ctx context.Context) (auth.WorkloadIdentity, bool) {
	w, ok := auth.WorkloadFromContext(ctx)
	return w.Identity, ok
}

// checkIdentity refuses a proxy whose node metadata claim another identity than the
// workload token it authenticated with; authenticated is false on the plaintext port, where
// nothing is checked.
func checkIdentity(id auth.WorkloadIdentity, authenticated bool, w registry.Workload) error {
	if !authenticated {
		return nil
	}
	if w.Namespace != id.Namespace || w.ServiceAccount != id.ServiceAccount {
		return status.Error(codes.PermissionDenied, fmt.Sprintf(
			"node %s claims namespace %q and service account %q, but its workload token is for namespace %q and service account %q: use a token for the proxy's own identity",
			w.NodeID, w.Namespace, w.ServiceAccount, id.Namespace, id.ServiceAccount))
	}
	return nil
}

// asIdentity reads a value of Server.idents.
func asIdentity(v any) auth.WorkloadIdentity {
	id, _ := v.(auth.WorkloadIdentity)
	return id
}
