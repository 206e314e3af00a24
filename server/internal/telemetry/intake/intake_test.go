package intake_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluicemesh/sluice/internal/pgtest"
	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/store"
	"github.com/sluicemesh/sluice/server/internal/telemetry"
	"github.com/sluicemesh/sluice/server/internal/telemetry/intake"
	"github.com/sluicemesh/sluice/server/internal/telemetry/telemetrytest"
)

func TestMain(m *testing.M) {
	if addr := os.Getenv(benchSidecarsEnv); addr != "" {
		os.Exit(runBenchSidecars(addr, os.Stdin, os.Stdout))
	}
	code := pgtest.Main(m)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "leaked goroutines:", err)
			code = 1
		}
	}
	os.Exit(code)
}

var migrated = pgtest.Template{Name: "migrated", Setup: store.Migrate}

type logWriter struct{ t testing.TB }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func testLog(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func openStore(t testing.TB) *store.Store {
	t.Helper()
	st, err := store.Open(context.Background(), pgtest.New(t, migrated), testLog(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// server is one sluice-server's telemetry: the aggregator and tap behind a real gRPC server
// on a loopback port, and a client connection to it.
type server struct {
	agg  *telemetry.Aggregator
	tap  *telemetry.Tap
	rec  *telemetrytest.Recorder
	conn *grpc.ClientConn
	stop func()
}

func startServer(t testing.TB, st telemetry.Store, log *slog.Logger) *server {
	t.Helper()
	agg, err := telemetry.New(telemetry.Options{Store: st, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	s := &server{agg: agg, tap: telemetry.NewTap(telemetry.TapOptions{SubscriberBuffer: 64}), rec: &telemetrytest.Recorder{Next: agg}}
	in, err := intake.New(intake.Options{Log: log, Metrics: s.rec, Logs: s.tap})
	if err != nil {
		t.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	in.Register(g)
	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	s.conn, err = grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	s.stop = func() {
		if stopped {
			return
		}
		stopped = true
		s.conn.Close()
		g.Stop()
		if err := <-served; err != nil {
			t.Errorf("gRPC server: %v", err)
		}
	}
	t.Cleanup(s.stop)
	return s
}

func ctxFor(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

var reviewsV1 = telemetry.Series{
	Reporter: telemetry.ReporterDestination, SourceWorkload: "productpage-v1", SourceNamespace: "default", SourceVersion: "v1",
	DestinationService: "reviews.default.svc.cluster.local", DestinationWorkload: "reviews-v1", DestinationVersion: "v1",
	ResponseCode: "200", ResponseFlags: "-", Protocol: "http",
}

// liveRequests is the requests of the productpage → reviews edge in the last minute.
func liveRequests(t *testing.T, a *telemetry.Aggregator) int64 {
	t.Helper()
	g, err := a.Graph(context.Background(), time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range g.Edges {
		if e.Source == "workload:default/productpage-v1" {
			return e.Requests
		}
	}
	return 0
}

// storedRequests is the requests stored in the 10 s rollups of the last hour.
func storedRequests(t *testing.T, st *store.Store) int64 {
	t.Helper()
	now := time.Now()
	rows, err := st.ReadRollups(context.Background(), telemetry.Res10s, telemetry.HistoryQuery{From: now.Add(-time.Hour), To: now.Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, r := range rows {
		n += r.Stats.Requests
	}
	return n
}

// TestCountersResetAndSidecarRestarts streams one sidecar's cumulative counters through a
// counter reset and two restarts, and checks that every request counts once and no delta is
// negative.
func TestCountersResetAndSidecarRestarts(t *testing.T) {
	st := openStore(t)
	ctx := ctxFor(t)
	srv := startServer(t, st, testLog(t))
	sc := telemetrytest.NewSidecar("sidecar~127.0.0.7~reviews-v1.default~default.svc.cluster.local")
	reports := 0
	report := func(s *telemetrytest.Stream) {
		t.Helper()
		if err := s.Report(); err != nil {
			t.Fatal(err)
		}
		reports++
		if err := srv.rec.Wait(ctx, reports); err != nil {
			t.Fatal(err)
		}
	}

	// The sidecar has been up for a while when this server first hears of it: what it
	// counted before is a baseline, not traffic.
	sc.Serve(reviewsV1, 1000, 20)
	s, err := sc.Connect(ctx, srv.conn)
	if err != nil {
		t.Fatal(err)
	}
	report(s)
	if n := liveRequests(t, srv.agg); n != 0 {
		t.Fatalf("after the baseline: %d requests, want 0", n)
	}
	sc.Serve(reviewsV1, 100, 20)
	report(s)
	want := int64(100)

	// Its counters are reset (say, through its admin port): 1100 becomes 30. The delta is
	// 30, not -1070, nor 1130.
	sc.Restart(time.Time{})
	sc.Serve(reviewsV1, 30, 20)
	report(s)
	want += 30
	if n := liveRequests(t, srv.agg); n != want {
		t.Fatalf("after a counter reset: %d requests, want %d", n, want)
	}

	// The sidecar restarts: its stream ends, and the new process reconnects with the same
	// node id and counts from zero. Its first report (20, below the last 30) is traffic.
	// This version of the sidecar also dates its series (created timestamps).
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	sc.Restart(started)
	sc.Serve(reviewsV1, 20, 20)
	s, err = sc.Connect(ctx, srv.conn)
	if err != nil {
		t.Fatal(err)
	}
	report(s)
	want += 20
	if n := liveRequests(t, srv.agg); n != want {
		t.Fatalf("after a restart: %d requests, want %d", n, want)
	}

	// A restart that counted more before its first report than the old process had in
	// all (70 after 20): only the new created timestamp tells.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	sc.Restart(started.Add(time.Minute))
	sc.Serve(reviewsV1, 70, 20)
	s, err = sc.Connect(ctx, srv.conn)
	if err != nil {
		t.Fatal(err)
	}
	report(s)
	want += 70
	sc.Serve(reviewsV1, 5, 20)
	report(s)
	want += 5
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if n := liveRequests(t, srv.agg); n != want {
		t.Errorf("live: %d requests, want %d", n, want)
	}
	if err := srv.agg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := storedRequests(t, st); n != want {
		t.Errorf("stored: %d requests, want %d", n, want)
	}
	if neg := srv.rec.Negative(); len(neg) > 0 {
		t.Errorf("negative deltas: %+v", neg)
	}
}

// TestServerRestartKeepsHistory stops a server after it wrote its traffic, starts a new one on
// the same database, and lets the sidecar reconnect: its first report to the new server is a
// baseline, so nothing is counted twice, and the history is all there.
func TestServerRestartKeepsHistory(t *testing.T) {
	st := openStore(t)
	ctx := ctxFor(t)
	sc := telemetrytest.NewSidecar("sidecar~127.0.0.7~reviews-v1.default~default.svc.cluster.local")
	fail := reviewsV1
	fail.ResponseCode = "503"

	first := startServer(t, st, testLog(t))
	runCtx, stopRun := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- first.agg.Run(runCtx) }()
	s, err := sc.Connect(ctx, first.conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Report(); err != nil { // baseline: nothing yet
		t.Fatal(err)
	}
	sc.Serve(reviewsV1, 500, 20)
	sc.Serve(fail, 70, 20)
	if err := s.Report(); err != nil {
		t.Fatal(err)
	}
	sc.Serve(fail, 30, 20)
	if err := s.Report(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The server stops: Run writes what it holds, open buckets included.
	stopRun()
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	first.stop()
	if n := storedRequests(t, st); n != 600 {
		t.Fatalf("stored by the first server: %d, want 600", n)
	}

	// The new server has no previous values: the sidecar's unchanged 600 is a baseline.
	second := startServer(t, st, testLog(t))
	s, err = sc.Connect(ctx, second.conn)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Report(); err != nil {
		t.Fatal(err)
	}
	sc.Serve(reviewsV1, 40, 20)
	if err := s.Report(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if n := liveRequests(t, second.agg); n != 40 {
		t.Errorf("live on the new server: %d, want 40", n)
	}
	if err := second.agg.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if n := storedRequests(t, st); n != 640 {
		t.Errorf("stored after the restart: %d, want 600 + 40", n)
	}
	m, err := second.agg.Metrics(ctx, telemetry.MetricsQuery{From: time.Now().Add(-10 * time.Minute), To: time.Now().Add(time.Minute), Service: "reviews"})
	if err != nil {
		t.Fatal(err)
	}
	var requests, errs int64
	for _, p := range m.Series[0].Points {
		requests += p.Requests
		errs += p.Errors
	}
	if requests != 640 || errs != 100 {
		t.Errorf("metrics: %d requests, %d errors; want 640 and 100", requests, errs)
	}
}

func TestStreamsWithoutANodeAreRefused(t *testing.T) {
	st := openStore(t)
	ctx := ctxFor(t)
	srv := startServer(t, st, testLog(t))

	ms, err := metricsv3.NewMetricsServiceClient(srv.conn).StreamMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = ms.Send(&metricsv3.StreamMetricsMessage{})
	if _, err := ms.CloseAndRecv(); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "identifier.node.id") {
		t.Errorf("metrics without a node: %v, want InvalidArgument naming identifier.node.id", err)
	}
	ls, err := accesslogv3.NewAccessLogServiceClient(srv.conn).StreamAccessLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = ls.Send(&accesslogv3.StreamAccessLogsMessage{})
	if _, err := ls.CloseAndRecv(); status.Code(err) != codes.InvalidArgument {
		t.Errorf("access logs without a node: %v, want InvalidArgument", err)
	}
}

// httpEntry is an access-log entry of a request to path.
func httpEntry(i int, tags map[string]string, cluster string) *accesslogdatav3.HTTPAccessLogEntry {
	return &accesslogdatav3.HTTPAccessLogEntry{
		CommonProperties: &accesslogdatav3.AccessLogCommon{
			StartTime:       timestamppb.New(time.Unix(1_800_000_000, int64(i))),
			Duration:        durationpb.New(1500 * time.Microsecond),
			UpstreamCluster: cluster,
			CustomTags:      tags,
			ResponseFlags:   &accesslogdatav3.ResponseFlags{UpstreamConnectionFailure: i%2 == 1, UpstreamRetryLimitExceeded: i%2 == 1},
			UpstreamRemoteAddress: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: "127.0.0.7", PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: 19080}}}},
		},
		ProtocolVersion: accesslogdatav3.HTTPAccessLogEntry_HTTP11,
		Request: &accesslogdatav3.HTTPRequestProperties{
			RequestMethod: corev3.RequestMethod_GET, Authority: "reviews:9080", Path: fmt.Sprintf("/reviews/%d", i),
			RequestId: fmt.Sprint("id-", i), RequestHeadersBytes: 100, RequestBodyBytes: 20,
		},
		Response: &accesslogdatav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(200), ResponseHeadersBytes: 50, ResponseBodyBytes: 450},
	}
}

func accessLogNode(id string) *corev3.Node {
	labels, _ := structpb.NewStruct(map[string]any{"version": "v2"})
	return &corev3.Node{Id: id, Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
		"NAMESPACE": structpb.NewStringValue("default"), "SERVICE": structpb.NewStringValue("reviews"),
		"LABELS": structpb.NewStructValue(labels),
	}}}
}

// TestAccessLogsFeedTheTap streams access logs from a sidecar: they land in the service's
// ring; a subscriber that reads keeps receiving while one that does not is dropped, and the
// stream is never held up by it.
func TestAccessLogsFeedTheTap(t *testing.T) {
	st := openStore(t)
	ctx := ctxFor(t)
	srv := startServer(t, st, testLog(t))
	fast := srv.tap.Subscribe(telemetry.TapFilter{Service: "reviews"})
	defer fast.Close()
	slow := srv.tap.Subscribe(telemetry.TapFilter{})

	stream, err := accesslogv3.NewAccessLogServiceClient(srv.conn).StreamAccessLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	tags := map[string]string{
		"reporter": "destination", "source_workload": "productpage-v1", "source_workload_namespace": "default",
		"destination_service": "reviews.default.svc.cluster.local", "destination_workload": "reviews-v2", "destination_version": "v2",
	}
	const batches, perBatch = 40, 50 // 2,000 entries, far beyond the slow subscriber's 64
	for b := range batches {
		msg := &accesslogv3.StreamAccessLogsMessage{LogEntries: &accesslogv3.StreamAccessLogsMessage_HttpLogs{
			HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{}}}
		if b == 0 {
			msg.Identifier = &accesslogv3.StreamAccessLogsMessage_Identifier{Node: accessLogNode("sidecar~127.0.0.7~reviews-v2.default~default.svc.cluster.local"), LogName: "sluice"}
		}
		for i := range perBatch {
			n := b*perBatch + i
			if n%2 == 0 {
				msg.GetHttpLogs().LogEntry = append(msg.GetHttpLogs().LogEntry, httpEntry(n, tags, "inbound|9080||"))
			} else {
				// Without tags: the inbound cluster and the node's metadata tell.
				msg.GetHttpLogs().LogEntry = append(msg.GetHttpLogs().LogEntry, httpEntry(n, nil, "inbound|9080||"))
			}
		}
		if err := stream.Send(msg); err != nil {
			t.Fatal(err)
		}
		// The fast subscriber reads each batch before the next is sent.
		for i := range perBatch {
			select {
			case e, ok := <-fast.C:
				if !ok {
					t.Fatalf("fast subscriber dropped at entry %d: %v", b*perBatch+i, fast.Err())
				}
				if want := fmt.Sprintf("/reviews/%d", b*perBatch+i); e.Path != want {
					t.Fatalf("fast subscriber got %s, want %s", e.Path, want)
				}
			case <-ctx.Done():
				t.Fatalf("fast subscriber: entry %d never came", b*perBatch+i)
			}
		}
	}
	if _, err := stream.CloseAndRecv(); err != nil {
		t.Fatal(err)
	}

	n := 0
	for range slow.C {
		n++
	}
	if n != 64 || !errors.Is(slow.Err(), telemetry.ErrSlowSubscriber) {
		t.Errorf("slow subscriber got %d entries, err %v; want its buffer's 64 and ErrSlowSubscriber", n, slow.Err())
	}

	recent := srv.tap.Recent(telemetry.TapFilter{Service: "reviews.default.svc.cluster.local"}, 0)
	if len(recent) != 1000 {
		t.Fatalf("the ring holds %d entries, want the last 1000", len(recent))
	}
	tagged, untagged := recent[len(recent)-2], recent[len(recent)-1]
	want := telemetry.AccessEntry{
		Time: time.Unix(1_800_000_000, 1998).UTC(), NodeID: "sidecar~127.0.0.7~reviews-v2.default~default.svc.cluster.local",
		Reporter: "destination", SourceWorkload: "productpage-v1", SourceNamespace: "default",
		DestinationService: "reviews.default.svc.cluster.local", DestinationWorkload: "reviews-v2", DestinationVersion: "v2",
		Method: "GET", Authority: "reviews:9080", Path: "/reviews/1998", Protocol: "http", ResponseCode: 200, ResponseFlags: "-",
		DurationMs: 1.5, RequestBytes: 120, ResponseBytes: 500, RequestID: "id-1998", UpstreamCluster: "inbound|9080||", UpstreamHost: "127.0.0.7:19080",
	}
	if tagged != want {
		t.Errorf("tagged entry\n%+v\nwant\n%+v", tagged, want)
	}
	want.Time, want.Path, want.RequestID = time.Unix(1_800_000_000, 1999).UTC(), "/reviews/1999", "id-1999"
	want.SourceWorkload, want.SourceNamespace, want.DestinationWorkload = telemetry.Unknown, telemetry.Unknown, telemetry.Unknown
	want.ResponseFlags = "UF,URX"
	if untagged != want {
		t.Errorf("untagged entry\n%+v\nwant\n%+v", untagged, want)
	}
}

// identityStream gives a stream the context of a call authenticated as a workload.
type identityStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s identityStream) Context() context.Context { return s.ctx }

// On the authenticated port, a workload token for one identity cannot report for a node that
// claims another, on either stream.
func TestAuthenticatedStreamsMustBeTheirIdentity(t *testing.T) {
	agg, err := telemetry.New(telemetry.Options{Store: openStore(t), Log: testLog(t)})
	if err != nil {
		t.Fatal(err)
	}
	in, err := intake.New(intake.Options{Log: testLog(t), Metrics: agg, Logs: telemetry.NewTap(telemetry.TapOptions{})})
	if err != nil {
		t.Fatal(err)
	}
	token := auth.AuthenticatedWorkload{Identity: auth.WorkloadIdentity{Namespace: "default", ServiceAccount: "bookinfo-ratings"}, TokenID: "wt-test"}
	g := grpc.NewServer(grpc.StreamInterceptor(func(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		return h(srv, identityStream{ss, auth.WithWorkload(ss.Context(), token)})
	}))
	in.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = g.Serve(lis) }()
	t.Cleanup(g.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx := ctxFor(t)

	node := accessLogNode("sidecar~127.0.0.7~reviews-v2.default") // service account unset: not bookinfo-ratings
	ms, err := metricsv3.NewMetricsServiceClient(conn).StreamMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = ms.Send(&metricsv3.StreamMetricsMessage{Identifier: &metricsv3.StreamMetricsMessage_Identifier{Node: node}})
	if _, err := ms.CloseAndRecv(); status.Code(err) != codes.PermissionDenied || !strings.Contains(err.Error(), `workload token is for namespace "default" and service account "bookinfo-ratings"`) {
		t.Errorf("metrics for another identity: %v, want PermissionDenied naming both", err)
	}
	ls, err := accesslogv3.NewAccessLogServiceClient(conn).StreamAccessLogs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = ls.Send(&accesslogv3.StreamAccessLogsMessage{Identifier: &accesslogv3.StreamAccessLogsMessage_Identifier{Node: node, LogName: "sluice"}})
	if _, err := ls.CloseAndRecv(); status.Code(err) != codes.PermissionDenied {
		t.Errorf("access logs for another identity: %v, want PermissionDenied", err)
	}

	// The node of the token's own identity is taken.
	node.Metadata.Fields["SERVICE_ACCOUNT"] = structpb.NewStringValue("bookinfo-ratings")
	ms, err = metricsv3.NewMetricsServiceClient(conn).StreamMetrics(ctx)
	if err != nil {
		t.Fatal(err)
	}
	_ = ms.Send(&metricsv3.StreamMetricsMessage{Identifier: &metricsv3.StreamMetricsMessage_Identifier{Node: node}})
	if _, err := ms.CloseAndRecv(); err != nil {
		t.Errorf("metrics for its own identity: %v", err)
	}
}
