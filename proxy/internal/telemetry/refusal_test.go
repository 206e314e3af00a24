package telemetry

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// lockedBuffer is a log sink safe for the Pusher's goroutines and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A control plane that refuses the proxy's token: both streams wait BackoffMax before they
// are opened again, rather than the short backoff an outage gets.
func TestPushWaitsLongestAfterARefusal(t *testing.T) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refuse := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		return status.Error(codes.Unauthenticated, "workload token revoked")
	}
	srv := grpc.NewServer(grpc.StreamInterceptor(refuse))
	cp := &controlPlane{}
	metricsv3.RegisterMetricsServiceServer(srv, cp)
	alsv3.RegisterAccessLogServiceServer(srv, cp)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(func() {
		srv.Stop()
		<-done
	})

	logs := &lockedBuffer{}
	var mu sync.Mutex
	var refusals []error
	startPusher(t, NewRecorder(Options{}), lis.Addr().String(), func(p *Pusher) {
		p.ceiling = time.Hour
		p.log = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
		p.refused = func(err error) bool {
			mu.Lock()
			defer mu.Unlock()
			refusals = append(refusals, err)
			return status.Code(err) == codes.Unauthenticated
		}
	})
	waitFor(t, "both streams to schedule their reopening", func() bool {
		return strings.Count(logs.String(), "telemetry stream closed, reopening") == 2
	})
	out := logs.String()
	t.Logf("pusher log:\n%s", out)
	for _, stream := range []string{"stream=metrics", "stream=access_log"} {
		ok := false
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "reopening") && strings.Contains(line, stream) && strings.Contains(line, "wait=1h0m0s") {
				ok = true
			}
		}
		if !ok {
			t.Errorf("%s does not wait BackoffMax after the refusal", stream)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(refusals) != 2 {
		t.Fatalf("Refused called %d times, want once per stream", len(refusals))
	}
	for _, err := range refusals {
		if s, ok := status.FromError(err); !ok || s.Code() != codes.Unauthenticated || errors.Is(err, context.Canceled) {
			t.Errorf("Refused got %v, want the server's Unauthenticated", err)
		}
	}
}
