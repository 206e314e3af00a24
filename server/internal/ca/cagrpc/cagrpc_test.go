package cagrpc_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	securityv1alpha1 "istio.io/api/security/v1alpha1"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/internal/pgtest"
	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/ca"
	"github.com/sluicemesh/sluice/server/internal/ca/cagrpc"
	"github.com/sluicemesh/sluice/server/internal/registry"
	"github.com/sluicemesh/sluice/server/internal/store"
	"github.com/sluicemesh/sluice/server/internal/xds"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var migrated = pgtest.Template{Name: "migrated", Setup: store.Migrate}

var td = spiffeid.RequireTrustDomainFromString("cluster.local")

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// env is the authenticated port as sluice-server runs it: TLS with a certificate from the
// mesh CA, the token interceptors, the certificate service and the ADS server, on a real
// socket, with the tokens in a real database.
type env struct {
	t     *testing.T
	svc   *auth.Service
	ca    *ca.Authority
	clock *clock
	conn  *grpc.ClientConn
	admin auth.Principal
	certs *cagrpc.CertificateService
}

var adminPrincipal = auth.Principal{Username: auth.BootstrapUser, Role: auth.RoleAdmin, Method: auth.MethodSession}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	log := slog.New(slog.NewTextHandler(logWriter{t}, nil))
	st, err := store.Open(ctx, pgtest.New(t, migrated), log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	clk := &clock{t: time.Now()}
	svc, err := auth.NewService(st, auth.Options{Params: auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 16}, Now: clk.Now, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.Bootstrap(ctx, "a long admin password", io.Discard); err != nil {
		t.Fatal(err)
	}
	rootCert, rootKey, err := ca.GenerateRoot(td, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	authority, err := ca.New(ca.Options{TrustDomain: td, Cert: rootCert, Key: rootKey})
	if err != nil {
		t.Fatal(err)
	}
	certs, err := ca.NewServerCertSource(authority, []string{"localhost"}, []net.IP{net.ParseIP("127.0.0.1")}, 0, log)
	if err != nil {
		t.Fatal(err)
	}
	authn := cagrpc.NewAuthenticator(svc, cagrpc.AuthenticatorOptions{Now: clk.Now, Log: log})
	g := grpc.NewServer(
		grpc.Creds(credentials.NewTLS(&tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: certs.GetCertificate})),
		grpc.ChainUnaryInterceptor(authn.UnaryInterceptor()),
		grpc.ChainStreamInterceptor(authn.StreamInterceptor()),
	)
	certSvc := cagrpc.NewCertificateService(authority, 24*time.Hour, log)
	certSvc.Register(g)
	reg := registry.New(st, log, time.Minute)
	xdsSrv := xds.New(ctx, log, reg, st, st, xds.Features{})
	if _, err := xdsSrv.LoadConfig(ctx); err != nil {
		t.Fatal(err)
	}
	xdsSrv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = g.Serve(lis) }()
	go func() { defer wg.Done(); _ = xdsSrv.Run(ctx) }()
	t.Cleanup(func() { cancel(); g.Stop(); wg.Wait() })

	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(authority.RootPEM())
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{RootCAs: roots, ServerName: "localhost"})))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &env{t: t, svc: svc, ca: authority, clock: clk, conn: conn, admin: adminPrincipal, certs: certSvc}
}

func (e *env) workloadToken(ns, sa string, ttl time.Duration) auth.NewWorkloadToken {
	e.t.Helper()
	nt, err := e.svc.CreateWorkloadToken(context.Background(), e.admin, auth.WorkloadTokenRequest{
		Identity: auth.WorkloadIdentity{Namespace: ns, ServiceAccount: sa}, TTL: ttl})
	if err != nil {
		e.t.Fatal(err)
	}
	return nt
}

func bearer(token string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+token)
}

func newCSR(t testing.TB, uris ...string) string {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{}
	for _, u := range uris {
		pu, _ := url.Parse(u)
		tmpl.URIs = append(tmpl.URIs, pu)
	}
	der, err := x509.CreateCertificateRequest(rand.Reader, tmpl, key)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
}

func (e *env) createCert(ctx context.Context, csr string, seconds int64) (*securityv1alpha1.IstioCertificateResponse, error) {
	return securityv1alpha1.NewIstioCertificateServiceClient(e.conn).CreateCertificate(ctx,
		&securityv1alpha1.IstioCertificateRequest{Csr: csr, ValidityDuration: seconds})
}

func wantCode(t *testing.T, what string, err error, code codes.Code, mention string) {
	t.Helper()
	if status.Code(err) != code {
		t.Fatalf("%s: %v, want %s", what, err, code)
	}
	if mention != "" && !strings.Contains(status.Convert(err).Message(), mention) {
		t.Errorf("%s: %q, want it to mention %q", what, status.Convert(err).Message(), mention)
	}
}

func TestCreateCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.workloadToken("default", "reviews", 0)

	res, err := e.createCert(bearer(a.Secret), newCSR(t), 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.GetCertChain()) != 2 || res.GetCertChain()[1] != string(e.ca.RootPEM()) {
		t.Fatalf("chain of %d, want the leaf and the root last", len(res.GetCertChain()))
	}
	block, _ := pem.Decode([]byte(res.GetCertChain()[0]))
	leaf, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if len(leaf.URIs) != 1 || leaf.URIs[0].String() != "spiffe://cluster.local/ns/default/sa/reviews" {
		t.Errorf("URI SANs %v", leaf.URIs)
	}
	if d := time.Until(leaf.NotAfter); d < 23*time.Hour || d > 25*time.Hour {
		t.Errorf("no validity_duration: lasts %s, want the server's 24h", d)
	}
	roots := x509.NewCertPool()
	roots.AddCert(e.ca.Root())
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("leaf does not verify: %v", err)
	}

	// A shorter lifetime is granted, a longer one capped.
	for seconds, want := range map[int64]time.Duration{600: 10 * time.Minute, 7 * 24 * 3600: 24 * time.Hour} {
		res, err := e.createCert(bearer(a.Secret), newCSR(t, "spiffe://cluster.local/ns/default/sa/reviews"), seconds)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode([]byte(res.GetCertChain()[0]))
		leaf, _ := x509.ParseCertificate(block.Bytes)
		if d := time.Until(leaf.NotAfter); d < want-time.Minute || d > want+time.Minute {
			t.Errorf("validity_duration %d: lasts %s, want %s", seconds, d, want)
		}
	}

	// A token for A cannot get a certificate for B.
	_, err = e.createCert(bearer(a.Secret), newCSR(t, "spiffe://cluster.local/ns/default/sa/ratings"), 0)
	wantCode(t, "CSR for another identity", err, codes.PermissionDenied, "spiffe://cluster.local/ns/default/sa/ratings")
	_, err = e.createCert(bearer(a.Secret), "junk", 0)
	wantCode(t, "junk CSR", err, codes.InvalidArgument, "not PEM")
	_, err = e.createCert(bearer(a.Secret), newCSR(t), -5)
	wantCode(t, "negative validity", err, codes.InvalidArgument, "negative")
}

func TestLastIssued(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	const id = "spiffe://cluster.local/ns/default/sa/reviews"
	if _, ok := e.certs.LastIssued(id); ok {
		t.Fatal("a record before any certificate was issued")
	}
	a := e.workloadToken("default", "reviews", 0)
	leafOf := func(seconds int64) *x509.Certificate {
		t.Helper()
		res, err := e.createCert(bearer(a.Secret), newCSR(t), seconds)
		if err != nil {
			t.Fatal(err)
		}
		block, _ := pem.Decode([]byte(res.GetCertChain()[0]))
		leaf, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		return leaf
	}
	for _, seconds := range []int64{0, 600} {
		leaf := leafOf(seconds)
		got, ok := e.certs.LastIssued(id)
		if !ok || got.Serial != leaf.SerialNumber.Text(16) || !got.NotAfter.Equal(leaf.NotAfter) {
			t.Fatalf("validity %d: record %+v (found %v), want serial %s expiring %s", seconds, got, ok, leaf.SerialNumber.Text(16), leaf.NotAfter)
		}
	}
	// A refused request leaves the record of the identity it asked for untouched.
	_, err := e.createCert(bearer(a.Secret), newCSR(t, "spiffe://cluster.local/ns/default/sa/ratings"), 0)
	wantCode(t, "CSR for another identity", err, codes.PermissionDenied, "")
	if _, ok := e.certs.LastIssued("spiffe://cluster.local/ns/default/sa/ratings"); ok {
		t.Error("a refused CSR was recorded")
	}
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	a := e.workloadToken("default", "reviews", time.Hour)
	api, err := e.svc.CreateToken(ctx, e.admin, auth.TokenRequest{Name: "script"})
	if err != nil {
		t.Fatal(err)
	}

	_, err = e.createCert(ctx, newCSR(t), 0)
	wantCode(t, "no token", err, codes.Unauthenticated, "no workload token")
	_, err = e.createCert(bearer(api.Secret), newCSR(t), 0)
	wantCode(t, "API token", err, codes.Unauthenticated, "not a workload token")
	_, err = e.createCert(bearer("slcw_"+strings.Repeat("A", 43)), newCSR(t), 0)
	wantCode(t, "unknown token", err, codes.Unauthenticated, "unknown")
	_, err = e.createCert(metadata.AppendToOutgoingContext(ctx, "authorization", "Basic xyz"), newCSR(t), 0)
	wantCode(t, "not bearer", err, codes.Unauthenticated, "Bearer")

	// The workload token is no API token either.
	if _, err := e.svc.AuthenticateToken(ctx, a.Secret); auth.ErrorKind(err) != auth.KindUnauthenticated {
		t.Errorf("workload token as an API token: %v, want refused", err)
	}

	if _, err := e.createCert(bearer(a.Secret), newCSR(t), 0); err != nil {
		t.Fatalf("valid token: %v", err)
	}
	// Revoked: refused once the cached check has run out.
	if _, changed, err := e.svc.RevokeWorkloadToken(ctx, e.admin, a.ID); err != nil || !changed {
		t.Fatalf("revoke: %v %v", changed, err)
	}
	e.clock.Add(cagrpc.DefaultCacheTTL + time.Millisecond)
	_, err = e.createCert(bearer(a.Secret), newCSR(t), 0)
	wantCode(t, "revoked token", err, codes.Unauthenticated, "revoked")

	// Expired.
	b := e.workloadToken("default", "ratings", time.Minute)
	if _, err := e.createCert(bearer(b.Secret), newCSR(t), 0); err != nil {
		t.Fatalf("fresh token: %v", err)
	}
	e.clock.Add(time.Minute)
	_, err = e.createCert(bearer(b.Secret), newCSR(t), 0)
	wantCode(t, "expired token", err, codes.Unauthenticated, "expired")
}

func TestADSIdentity(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	a := e.workloadToken("default", "reviews", 0)
	stream := func(ctx context.Context, ns, sa string) (*discoveryv3.DiscoveryResponse, error) {
		s, err := discoveryv3.NewAggregatedDiscoveryServiceClient(e.conn).StreamAggregatedResources(ctx)
		if err != nil {
			return nil, err
		}
		md, _ := structpb.NewStruct(map[string]any{
			meta.KeyNamespace: ns, meta.KeyService: "reviews", meta.KeyAddress: "127.0.0.6",
			meta.KeyServiceAccount: sa, meta.KeyLabels: map[string]any{"version": "v1"},
		})
		// A stream the server refused at once fails Send with io.EOF; Recv has the status.
		_ = s.Send(&discoveryv3.DiscoveryRequest{Node: &corev3.Node{Id: "reviews-" + ns + "-" + sa, Metadata: md}, TypeUrl: resourcev3.ClusterType})
		return s.Recv()
	}
	ctx, cancel := context.WithTimeout(bearer(a.Secret), 30*time.Second)
	defer cancel()

	_, err := stream(ctx, "default", "ratings")
	wantCode(t, "another service account", err, codes.PermissionDenied, `service account "ratings"`)
	if !strings.Contains(status.Convert(err).Message(), `service account "reviews"`) {
		t.Errorf("the refusal does not name the token's identity: %v", err)
	}
	_, err = stream(ctx, "prod", "reviews")
	wantCode(t, "another namespace", err, codes.PermissionDenied, `namespace "prod"`)

	noToken, cancel2 := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel2()
	_, err = stream(noToken, "default", "reviews")
	wantCode(t, "no token", err, codes.Unauthenticated, "")

	res, err := stream(ctx, "default", "reviews")
	if err != nil {
		t.Fatalf("own identity: %v", err)
	}
	if res.GetTypeUrl() != resourcev3.ClusterType {
		t.Errorf("own identity: answered %s", res.GetTypeUrl())
	}
}
