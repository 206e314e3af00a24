package xdsclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/proxy/internal/identity/identitytest"
)

const goodToken = "slcw_good-token-for-reviews"

// authADS is an ADS server on TLS that admits only goodToken, and only for service account
// reviews, as the control plane's authenticated port does; an admitted stream gets an empty
// CDS response.
type authADS struct {
	discoveryv3.UnimplementedAggregatedDiscoveryServiceServer
	mu      sync.Mutex
	headers []string // the authorization metadata of every stream
}

func (s *authADS) StreamAggregatedResources(stream discoveryv3.AggregatedDiscoveryService_StreamAggregatedResourcesServer) error {
	md, _ := metadata.FromIncomingContext(stream.Context())
	s.mu.Lock()
	s.headers = append(s.headers, md.Get("authorization")...)
	s.mu.Unlock()
	if got := md.Get("authorization"); len(got) != 1 || got[0] != "Bearer "+goodToken {
		return status.Error(codes.Unauthenticated, "workload token revoked")
	}
	req, err := stream.Recv()
	if err != nil {
		return err
	}
	if sa := req.GetNode().GetMetadata().GetFields()[meta.KeyServiceAccount].GetStringValue(); sa != "reviews" {
		return status.Errorf(codes.PermissionDenied, "node claims service account %q, but its workload token is for \"reviews\"", sa)
	}
	if err := stream.Send(&discoveryv3.DiscoveryResponse{TypeUrl: ClusterType, VersionInfo: "1", Nonce: "n1"}); err != nil {
		return err
	}
	<-stream.Context().Done()
	return nil
}

// syncBuffer is a log sink safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func serveTLSADS(t *testing.T, ca *identitytest.CA) (string, *authADS) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cert := ca.ServerTLS(t, net.IPv4(127, 0, 0, 1))
	srv := grpc.NewServer(grpc.Creds(credentials.NewServerTLSFromCert(&cert)))
	ads := &authADS{}
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(srv, ads)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})
	return ln.Addr().String(), ads
}

func TestCredentialsAndRefusals(t *testing.T) {
	ca := identitytest.NewCA(t, "mesh root")
	addr, ads := serveTLSADS(t, ca)
	other := identitytest.NewCA(t, "another root")

	tests := []struct {
		name      string
		creds     Credentials
		sa        string
		wantFix   string // empty: the stream must be accepted
		wantError string
	}{
		{name: "valid token", creds: Credentials{Token: goodToken, Roots: ca.Pool()}, sa: "reviews"},
		{name: "revoked token", creds: Credentials{Token: "slcw_revoked", Roots: ca.Pool()}, sa: "reviews",
			wantFix: "the control plane refused the workload token", wantError: "workload token revoked"},
		{name: "identity not the token's", creds: Credentials{Token: goodToken, Roots: ca.Pool()}, sa: "ratings",
			wantFix: "--namespace and --service-account must be the workload token's", wantError: "PermissionDenied"},
		{name: "control plane certificate from another root", creds: Credentials{Token: goodToken, Roots: other.Pool()}, sa: "reviews",
			wantFix: "--ca-root-file must hold the mesh's root", wantError: "certificate signed by unknown authority"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &syncBuffer{}
			log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			rec := &recorder{}
			node := &corev3.Node{Id: "sidecar~127.0.0.6~reviews.default~default.svc.cluster.local",
				Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{meta.KeyServiceAccount: structpb.NewStringValue(tt.sa)}}}
			c := New(Config{Target: addr, Node: node, Handler: rec, Log: log, Credentials: tt.creds,
				BackoffBase: time.Millisecond, BackoffMax: time.Hour})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- c.Run(ctx) }()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("Run: %v", err)
				}
				t.Logf("client log:\n%s", logs)
				if strings.Contains(logs.String(), tt.creds.Token) {
					t.Error("the token appears in the log")
				}
			}()

			if tt.wantFix == "" {
				waitFor(t, "the stream accepted", func() error {
					if st := c.Status(); !st.Connected || st.Types[0].Version != "1" {
						return fmt.Errorf("status %+v", st)
					}
					return nil
				})
				ads.mu.Lock()
				last := ads.headers[len(ads.headers)-1]
				ads.mu.Unlock()
				if last != "Bearer "+goodToken {
					t.Errorf("the server got authorization %q", last)
				}
				if c.Status().Refusal != "" {
					t.Errorf("Refusal %q on an accepted stream", c.Status().Refusal)
				}
				return
			}
			// After the refusal the client waits BackoffMax (an hour here), not the
			// millisecond its backoff would otherwise start from.
			waitFor(t, "the reconnect scheduled", func() error {
				if !strings.Contains(logs.String(), "xds stream closed, reconnecting") {
					return errors.New("no reconnect logged yet")
				}
				return nil
			})
			out := logs.String()
			if !strings.Contains(out, "wait=1h0m0s") {
				t.Error("the reconnect after a refusal does not wait BackoffMax")
			}
			if n := strings.Count(out, "level=ERROR"); n != 1 {
				t.Errorf("%d error lines, want one", n)
			}
			if !strings.Contains(out, tt.wantFix) || !strings.Contains(out, tt.wantError) {
				t.Errorf("the log does not say %q and %q", tt.wantFix, tt.wantError)
			}
			if st := c.Status(); st.Connected || !strings.Contains(st.Refusal, tt.wantFix) {
				t.Errorf("Status: connected %v, refusal %q", st.Connected, st.Refusal)
			}
		})
	}
}

func TestRefusalsLogEachRefusalOnce(t *testing.T) {
	logs := &syncBuffer{}
	r := NewRefusals(slog.New(slog.NewTextHandler(logs, nil)))
	unauth := fmt.Errorf("opening the stream: %w", status.Error(codes.Unauthenticated, "token expired"))
	if r.Refused(status.Error(codes.Unavailable, "connection refused")) || r.Refused(errors.New("EOF")) || r.Refused(nil) {
		t.Error("an outage was taken for a refusal")
	}
	for range 3 { // the ADS stream and both telemetry streams
		if !r.Refused(unauth) {
			t.Fatal("a wrapped Unauthenticated was not taken for a refusal")
		}
	}
	if n := strings.Count(logs.String(), "level=ERROR"); n != 1 {
		t.Errorf("%d error lines for one refusal met three times, want one:\n%s", n, logs)
	}
	r.Clear()
	if r.Last() != "" {
		t.Error("Last after Clear")
	}
	r.Refused(unauth)
	if n := strings.Count(logs.String(), "level=ERROR"); n != 2 {
		t.Errorf("a refusal after an accepted call was not logged again:\n%s", logs)
	}
}

func TestTokenCredentialsNeverPrintTheToken(t *testing.T) {
	c := tokenCredentials{header: "Bearer " + goodToken}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c)} {
		if strings.Contains(s, goodToken) {
			t.Errorf("printed %q", s)
		}
	}
	if !c.RequireTransportSecurity() {
		t.Error("the token would be sent over plaintext")
	}
}

// waitFor retries check until it holds; the deadline only bounds a failing test.
func waitFor(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = check(); err == nil {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("%s: %v", what, err)
}
