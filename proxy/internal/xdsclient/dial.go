package xdsclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"strings"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// Credentials is how the proxy reaches the control plane. Every connection to it (the ADS
// stream, the telemetry streams, the certificate service) is dialled with the same
// Credentials. The zero value dials plaintext without a token: only a control plane started
// with --insecure-xds answers that.
type Credentials struct {
	// Token is the workload token (slcw_…) sent as "authorization: Bearer <Token>" with
	// every call; empty dials plaintext.
	Token string
	// Roots verify the control plane's TLS certificate; used only with Token.
	Roots *x509.CertPool
}

// Secure reports whether c dials TLS with a token.
func (c Credentials) Secure() bool { return c.Token != "" }

// DialOptions returns the gRPC dial options that apply c: TLS verified against Roots and the
// token on every call, or plaintext.
func (c Credentials) DialOptions() []grpc.DialOption {
	if !c.Secure() {
		return []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	}
	return []grpc.DialOption{
		grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: c.Roots, MinVersion: tls.VersionTLS12})),
		grpc.WithPerRPCCredentials(tokenCredentials{header: "Bearer " + c.Token}),
	}
}

// Dial returns a connection to the control plane at target with c's credentials, and extra
// options after them. gRPC connects lazily and reconnects by itself.
func Dial(target string, c Credentials, extra ...grpc.DialOption) (*grpc.ClientConn, error) {
	return grpc.NewClient(target, append(c.DialOptions(), extra...)...)
}

// tokenCredentials sends the workload token with every call, and only over TLS.
type tokenCredentials struct{ header string }

var _ credentials.PerRPCCredentials = tokenCredentials{}

func (t tokenCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": t.header}, nil
}

func (tokenCredentials) RequireTransportSecurity() bool { return true }

// String keeps the token out of any log line that prints the credentials.
func (tokenCredentials) String() string { return "workload token (redacted)" }

// GoString keeps the token out of %#v likewise.
func (t tokenCredentials) GoString() string { return t.String() }

// Refusal says what to fix when err is the control plane refusing the proxy: a token that
// is missing, unknown, expired or revoked (Unauthenticated), an identity that is not the
// token's (PermissionDenied), or a TLS handshake that failed, such as a control-plane
// certificate that does not verify against the trust bundle. It returns "" for any other
// error, which a retry may cure.
func Refusal(err error) string {
	if err == nil {
		return ""
	}
	s, ok := status.FromError(err)
	if !ok {
		return ""
	}
	switch s.Code() {
	case codes.Unauthenticated:
		return "the control plane refused the workload token: it is unknown, expired or revoked, or not a workload token; " +
			"create one with sluicectl token create workload --namespace NS --service-account SA, write it to --token-file and restart the proxy"
	case codes.PermissionDenied:
		return "the control plane refused this proxy's identity: --namespace and --service-account must be the workload token's; " +
			"give the proxy a token created for its own namespace and service account"
	case codes.Unavailable:
		if strings.Contains(s.Message(), "authentication handshake failed") {
			return "the TLS handshake with the control plane failed: --ca-root-file must hold the mesh's root (GET /api/v1/ca/root), " +
				"and --control-plane must name the authenticated port (:15012) by a name or address in the server's --xds-tls-hosts"
		}
	}
	return ""
}

// Refusals tells the control plane's refusals from other failures, for every client of the
// control plane at once, and logs each refusal once, at error level, with what to fix: a
// refused token refuses the ADS stream, both telemetry streams and the certificate requests
// alike, and one line says so. Its methods are safe for concurrent use.
type Refusals struct {
	log *slog.Logger

	mu   sync.Mutex
	last string // the fix of the last refusal logged; "" once a call succeeded
}

// NewRefusals returns a Refusals logging to log.
func NewRefusals(log *slog.Logger) *Refusals {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Refusals{log: log}
}

// Refused reports whether err is a refusal (see Refusal), and logs it at error level unless
// the same refusal was logged last; then at debug level.
func (r *Refusals) Refused(err error) bool {
	fix := Refusal(err)
	if fix == "" {
		return false
	}
	r.mu.Lock()
	repeat := fix == r.last
	r.last = fix
	r.mu.Unlock()
	level := slog.LevelError
	if repeat {
		level = slog.LevelDebug
	}
	r.log.Log(context.Background(), level, "the control plane refused this proxy; it retries at its longest backoff until this is fixed",
		"fix", fix, "error", err)
	return true
}

// Clear records that the control plane accepted a call, so the next refusal is logged
// again.
func (r *Refusals) Clear() {
	r.mu.Lock()
	r.last = ""
	r.mu.Unlock()
}

// Last returns what to fix about the last refusal, or "" when a call succeeded since.
func (r *Refusals) Last() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last
}
