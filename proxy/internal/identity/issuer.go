package identity

import (
	"context"
	"fmt"
	"time"

	"google.golang.org/grpc"
	securityv1alpha1 "istio.io/api/security/v1alpha1"
)

// GRPCIssuer is an Issuer that calls Istio's certificate service
// (istio.v1.auth.IstioCertificateService/CreateCertificate), as the control plane serves it
// on its authenticated port. The connection carries the proxy's credentials.
type GRPCIssuer struct {
	client securityv1alpha1.IstioCertificateServiceClient
}

var _ Issuer = (*GRPCIssuer)(nil)

// NewGRPCIssuer returns an Issuer over conn.
func NewGRPCIssuer(conn grpc.ClientConnInterface) *GRPCIssuer {
	return &GRPCIssuer{client: securityv1alpha1.NewIstioCertificateServiceClient(conn)}
}

// Issue sends the request with validity in whole seconds (zero: the server's default).
func (g *GRPCIssuer) Issue(ctx context.Context, csrPEM []byte, validity time.Duration) ([]string, error) {
	res, err := g.client.CreateCertificate(ctx, &securityv1alpha1.IstioCertificateRequest{
		Csr:              string(csrPEM),
		ValidityDuration: int64(validity / time.Second),
	})
	if err != nil {
		return nil, fmt.Errorf("CreateCertificate: %w", err)
	}
	return res.GetCertChain(), nil
}
