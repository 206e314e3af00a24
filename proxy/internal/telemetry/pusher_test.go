package telemetry

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
)

// controlPlane is a fake telemetry intake: a real gRPC server implementing Envoy's
// MetricsService and AccessLogService that records every message it receives, stream by
// stream.
type controlPlane struct {
	metricsv3.UnimplementedMetricsServiceServer
	alsv3.UnimplementedAccessLogServiceServer

	// hangUp makes the next metrics stream end after its first message, as a server
	// shedding load would.
	hangUp atomic.Bool

	mu            sync.Mutex
	metricStreams [][]*metricsv3.StreamMetricsMessage
	logStreams    [][]*alsv3.StreamAccessLogsMessage
}

func (c *controlPlane) StreamMetrics(stream grpc.ClientStreamingServer[metricsv3.StreamMetricsMessage, metricsv3.StreamMetricsResponse]) error {
	c.mu.Lock()
	i := len(c.metricStreams)
	c.metricStreams = append(c.metricStreams, nil)
	c.mu.Unlock()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&metricsv3.StreamMetricsResponse{})
		}
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.metricStreams[i] = append(c.metricStreams[i], msg)
		c.mu.Unlock()
		if c.hangUp.CompareAndSwap(true, false) {
			return stream.SendAndClose(&metricsv3.StreamMetricsResponse{})
		}
	}
}

func (c *controlPlane) StreamAccessLogs(stream grpc.ClientStreamingServer[alsv3.StreamAccessLogsMessage, alsv3.StreamAccessLogsResponse]) error {
	c.mu.Lock()
	i := len(c.logStreams)
	c.logStreams = append(c.logStreams, nil)
	c.mu.Unlock()
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&alsv3.StreamAccessLogsResponse{})
		}
		if err != nil {
			return err
		}
		c.mu.Lock()
		c.logStreams[i] = append(c.logStreams[i], msg)
		c.mu.Unlock()
	}
}

// streamMessages returns the messages received on metrics stream i, nil if there is none.
func (c *controlPlane) streamMessages(i int) []*metricsv3.StreamMetricsMessage {
	c.mu.Lock()
	defer c.mu.Unlock()
	if i >= len(c.metricStreams) {
		return nil
	}
	return c.metricStreams[i]
}

func (c *controlPlane) numMetricStreams() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.metricStreams)
}

// requests folds the messages of metrics stream i into the latest istio_requests_total of
// each series, keyed by "destination_version/response_code". Like the real intake, it adds
// up the series of one message that share a key.
func (c *controlPlane) requests(i int) map[string]float64 {
	out := map[string]float64{}
	for _, msg := range c.streamMessages(i) {
		sums := map[string]float64{}
		for _, f := range msg.GetEnvoyMetrics() {
			if f.GetName() != RequestsTotal {
				continue
			}
			for _, m := range f.GetMetric() {
				sums[seriesName(m)] += m.GetCounter().GetValue()
			}
		}
		maps.Copy(out, sums)
	}
	return out
}

// entries returns every access-log entry received, in order.
func (c *controlPlane) entries() []*accesslogv3.HTTPAccessLogEntry {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*accesslogv3.HTTPAccessLogEntry
	for _, s := range c.logStreams {
		for _, msg := range s {
			out = append(out, msg.GetHttpLogs().GetLogEntry()...)
		}
	}
	return out
}

func seriesName(m *dto.Metric) string {
	var v, code string
	for _, l := range m.GetLabel() {
		switch l.GetName() {
		case "destination_version":
			v = l.GetValue()
		case "response_code":
			code = l.GetValue()
		}
	}
	return v + "/" + code
}

// serve starts a control plane on addr and stops it when the test ends, or earlier through
// the returned function.
func serve(t *testing.T, addr string) (*controlPlane, func()) {
	t.Helper()
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	cp := &controlPlane{}
	srv := grpc.NewServer()
	metricsv3.RegisterMetricsServiceServer(srv, cp)
	alsv3.RegisterAccessLogServiceServer(srv, cp)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(lis)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			srv.Stop()
			<-done
		})
	}
	t.Cleanup(stop)
	return cp, stop
}

// freeAddr returns a loopback address nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	return addr
}

var testNode = &corev3.Node{Id: "sidecar~127.0.0.6~productpage-v1-127.0.0.6.bookinfo~bookinfo.svc.cluster.local", Cluster: "productpage"}

// startPusher dials addr as the proxy would (reconnecting quickly, for the test's sake) and
// runs a Pusher of rec until the test ends. configure, when given, adjusts the Pusher first.
func startPusher(t *testing.T, rec *Recorder, addr string, configure ...func(*Pusher)) *Pusher {
	t.Helper()
	conn, err := grpc.NewClient("passthrough:///"+addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 10 * time.Millisecond, Multiplier: 1.6, MaxDelay: 50 * time.Millisecond},
			MinConnectTimeout: time.Second,
		}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p := NewPusher(rec, conn, testNode, PushOptions{
		Interval:    20 * time.Millisecond,
		BackoffBase: 10 * time.Millisecond,
		BackoffMax:  50 * time.Millisecond,
		Log:         slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	for _, f := range configure {
		f(p)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return p
}

// waitFor polls cond until it holds. It gives up after a long while, only so that a broken
// build fails rather than hangs; it asserts nothing about speed.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func equalCounts(got map[string]float64, want map[string]float64) bool {
	if len(got) != len(want) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

// recordN records n copies of a request to reviews at version v with status code.
func recordN(rec *Recorder, n int, v string, code int) {
	q := outbound()
	q.DestinationVersion, q.ResponseCode = v, code
	for range n {
		rec.Record(q)
	}
}

func TestPushMetrics(t *testing.T) {
	addr := freeAddr(t)
	cp, _ := serve(t, addr)
	rec := NewRecorder(Options{SuccessLogsPerSecond: -1})
	recordN(rec, 5, "v1", 200)
	recordN(rec, 2, "v2", 503)
	recordN(rec, 1, "v3", 200)
	startPusher(t, rec, addr)

	want := map[string]float64{"v1/200": 5, "v2/503": 2, "v3/200": 1}
	waitFor(t, "the first counts", func() bool { return equalCounts(cp.requests(0), want) })

	msgs := cp.streamMessages(0)
	if id := msgs[0].GetIdentifier().GetNode().GetId(); id != testNode.GetId() {
		t.Errorf("first message's node id = %q, want %q", id, testNode.GetId())
	}
	fams := msgs[0].GetEnvoyMetrics()
	var names []string
	for _, f := range fams {
		names = append(names, f.GetName()+":"+f.GetType().String())
	}
	if got := strings.Join(names, " "); got != "istio_requests_total:COUNTER istio_request_duration_milliseconds:HISTOGRAM istio_request_bytes:HISTOGRAM istio_response_bytes:HISTOGRAM" {
		t.Errorf("families: %s", got)
	}
	// Every metric carries the Istio labels, in order; check one histogram in full.
	for _, m := range fams[1].GetMetric() {
		var labels []string
		for _, l := range m.GetLabel() {
			labels = append(labels, l.GetName())
		}
		if strings.Join(labels, ",") != strings.Join(labelNames[:], ",") {
			t.Fatalf("labels %v", labels)
		}
		if seriesName(m) != "v1/200" {
			continue
		}
		h := m.GetHistogram()
		if h.GetSampleCount() != 5 || h.GetSampleSum() != 35 || len(h.GetBucket()) != len(DurationBuckets) {
			t.Errorf("v1 duration: count %d sum %v, %d buckets", h.GetSampleCount(), h.GetSampleSum(), len(h.GetBucket()))
		}
		for i, b := range h.GetBucket() {
			want := uint64(0)
			if b.GetUpperBound() >= 10 {
				want = 5 // 7 ms each
			}
			if b.GetUpperBound() != DurationBuckets[i] || b.GetCumulativeCount() != want {
				t.Errorf("bucket le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), want)
			}
		}
	}

	// Every message carries every series, cumulative, with its created timestamp.
	n := len(cp.streamMessages(0))
	recordN(rec, 3, "v1", 200)
	want["v1/200"] = 8
	waitFor(t, "the new count", func() bool { return equalCounts(cp.requests(0), want) })
	later := cp.streamMessages(0)[n:]
	for _, msg := range later {
		if msg.GetIdentifier() != nil {
			t.Error("identifier sent again on the same stream")
		}
		if got := len(msg.GetEnvoyMetrics()[0].GetMetric()); got != 3 {
			t.Errorf("a message carries %d series, want all 3", got)
		}
		for _, f := range msg.GetEnvoyMetrics() {
			for _, m := range f.GetMetric() {
				ts := m.GetCounter().GetCreatedTimestamp()
				if f.GetType() == dto.MetricType_HISTOGRAM {
					ts = m.GetHistogram().GetCreatedTimestamp()
				}
				if ts == nil || ts.AsTime().After(time.Now()) {
					t.Fatalf("%s %s: created timestamp %v", f.GetName(), seriesName(m), ts)
				}
			}
		}
	}
	if cp.numMetricStreams() != 1 {
		t.Errorf("%d metrics streams, want one long-lived stream", cp.numMetricStreams())
	}
}

func TestPushAccessLogs(t *testing.T) {
	addr := freeAddr(t)
	cp, _ := serve(t, addr)
	rec := NewRecorder(Options{SuccessLogsPerSecond: 2})
	for i := range 5 {
		q := outbound()
		q.RequestID = "ok-" + strconv.Itoa(i)
		rec.Record(q)
	}
	q := outbound()
	q.RequestID, q.ResponseCode, q.Flags, q.Detail = "uh", 503, FlagNoHealthyUpstream, "cluster has no healthy endpoints"
	q.UpstreamHost, q.Duration = "", 150*time.Microsecond
	rec.Record(q)
	q = outbound()
	q.RequestID, q.Protocol, q.GRPCStatus, q.ProtoMajor, q.Method = "grpc", ProtocolGRPC, 14, 2, "POST"
	rec.Record(q)
	q = outbound()
	q.RequestID, q.ResponseCode = "5xx", 500
	rec.Record(q)

	startPusher(t, rec, addr)
	waitFor(t, "the access log", func() bool { return len(cp.entries()) == 5 })

	byID := map[string]*accesslogv3.HTTPAccessLogEntry{}
	var ids []string
	for _, e := range cp.entries() {
		ids = append(ids, e.GetRequest().GetRequestId())
		byID[e.GetRequest().GetRequestId()] = e
	}
	if got := strings.Join(ids, " "); got != "ok-0 ok-1 uh grpc 5xx" {
		t.Errorf("logged %s, want two successes and every error", got)
	}
	cp.mu.Lock()
	first := cp.logStreams[0][0].GetIdentifier()
	cp.mu.Unlock()
	if first.GetNode().GetId() != testNode.GetId() || first.GetLogName() != DefaultLogName {
		t.Errorf("identifier = %v", first)
	}

	uh := byID["uh"]
	c := uh.GetCommonProperties()
	switch {
	case uh.GetResponse().GetResponseCode().GetValue() != 503,
		!c.GetResponseFlags().GetNoHealthyUpstream(),
		c.GetSampleRate() != 1,
		c.GetUpstreamRemoteAddress() != nil,
		c.GetDuration().AsDuration() != 150*time.Microsecond,
		!c.GetStartTime().AsTime().Equal(t0),
		c.GetCustomTags()["response_flags"] != "UH",
		c.GetCustomTags()["destination_workload"] != "reviews-v2",
		uh.GetResponse().GetResponseCodeDetails() != "cluster has no healthy endpoints",
		uh.GetRequest().GetRequestMethod() != corev3.RequestMethod_GET,
		uh.GetRequest().GetPath() != "/reviews/0",
		uh.GetProtocolVersion() != accesslogv3.HTTPAccessLogEntry_HTTP11:
		t.Errorf("the UH entry: %v", uh)
	}
	ok := byID["ok-0"]
	if sa := ok.GetCommonProperties().GetUpstreamRemoteAddress().GetSocketAddress(); sa.GetAddress() != "127.0.0.7" || sa.GetPortValue() != 9080 {
		t.Errorf("upstream address %v", sa)
	}
	if ok.GetCommonProperties().GetUpstreamCluster() != "outbound|9080|v2|reviews.bookinfo.svc.cluster.local" {
		t.Errorf("upstream cluster %q", ok.GetCommonProperties().GetUpstreamCluster())
	}
	g := byID["grpc"]
	if g.GetResponse().GetResponseTrailers()["grpc-status"] != "14" || g.GetProtocolVersion() != accesslogv3.HTTPAccessLogEntry_HTTP2 ||
		g.GetRequest().GetRequestMethod() != corev3.RequestMethod_POST || g.GetCommonProperties().GetCustomTags()["grpc_response_status"] != "14" {
		t.Errorf("the gRPC entry: %v", g)
	}
}

// TestPushReconnects restarts the control plane: the Pusher opens new streams, which begin
// with the identifier and the full cumulative state, and access-log entries recorded while
// the server was down arrive.
func TestPushReconnects(t *testing.T) {
	addr := freeAddr(t)
	cp1, stop1 := serve(t, addr)
	rec := NewRecorder(Options{SuccessLogsPerSecond: -1})
	p := startPusher(t, rec, addr)

	recordN(rec, 2, "v1", 200)
	recordN(rec, 1, "v3", 200) // no change after the restart: only a full resend carries it
	recordN(rec, 1, "v2", 503)
	waitFor(t, "counts before the restart", func() bool {
		return equalCounts(cp1.requests(0), map[string]float64{"v1/200": 2, "v3/200": 1, "v2/503": 1}) && len(cp1.entries()) == 1
	})

	stop1()
	waitFor(t, "the pusher to see the server gone", func() bool {
		st := p.Stats()
		return !st.MetricsConnected && !st.LogsConnected
	})
	recordN(rec, 3, "v1", 200)
	recordN(rec, 1, "v2", 503) // an error: queued for the access log until a stream is up
	recordN(rec, 1, "v4", 200)

	cp2, _ := serve(t, addr)
	want := map[string]float64{"v1/200": 5, "v3/200": 1, "v2/503": 2, "v4/200": 1}
	waitFor(t, "counts after the restart", func() bool { return equalCounts(cp2.requests(0), want) })
	first := cp2.streamMessages(0)[0]
	if first.GetIdentifier().GetNode().GetId() != testNode.GetId() {
		t.Error("the new stream's first message has no identifier")
	}
	full := map[string]bool{}
	for _, m := range first.GetEnvoyMetrics()[0].GetMetric() {
		full[seriesName(m)] = true
	}
	if len(full) != len(want) {
		t.Errorf("first message on the new stream carries %v, want every series", full)
	}
	waitFor(t, "the error logged while the server was down", func() bool { return len(cp2.entries()) == 1 })
	if st := p.Stats(); st.LogEntriesLost != 0 || st.MetricsStreams != 2 || st.LogStreams != 2 {
		t.Errorf("pusher stats %+v, want two streams of each and nothing lost", st)
	}
}

func TestPushReopensAStreamTheServerEnds(t *testing.T) {
	addr := freeAddr(t)
	cp, _ := serve(t, addr)
	cp.hangUp.Store(true)
	rec := NewRecorder(Options{SuccessLogsPerSecond: -1})
	recordN(rec, 4, "v1", 200)
	startPusher(t, rec, addr)
	// Nothing changes after the first message, so only the server's hang-up can make the
	// Pusher open a second stream.
	waitFor(t, "a second stream", func() bool { return equalCounts(cp.requests(1), map[string]float64{"v1/200": 4}) })
	if cp.streamMessages(1)[0].GetIdentifier() == nil {
		t.Error("the second stream's first message has no identifier")
	}
}

// TestRecordNeverBlocksWhileServerDown records with no server at all: Record returns at once
// each time, the access-log queue keeps the newest entries and counts the rest, and when a
// server appears it receives the queue and the counts.
func TestRecordNeverBlocksWhileServerDown(t *testing.T) {
	addr := freeAddr(t)
	rec := NewRecorder(Options{LogQueue: 16, SuccessLogsPerSecond: -1})
	p := startPusher(t, rec, addr)
	q := outbound()
	q.ResponseCode = 503
	for i := range 1000 {
		q.RequestID = strconv.Itoa(i)
		rec.Record(q)
	}
	if st := rec.Stats(); st.LogsQueued != 16 || st.LogsDropped != 984 {
		t.Errorf("recorder stats %+v, want 16 queued and 984 dropped", st)
	}
	if st := p.Stats(); st.MetricsStreams != 0 || st.LogStreams != 0 {
		t.Fatalf("pusher stats %+v: a stream opened with no server", st)
	}

	cp, _ := serve(t, addr)
	waitFor(t, "the counts", func() bool { return equalCounts(cp.requests(0), map[string]float64{"v2/503": 1000}) })
	waitFor(t, "the queued entries", func() bool { return len(cp.entries()) == 16 })
	var ids []string
	for _, e := range cp.entries() {
		ids = append(ids, e.GetRequest().GetRequestId())
	}
	var want []string
	for i := 984; i < 1000; i++ {
		want = append(want, strconv.Itoa(i))
	}
	if strings.Join(ids, " ") != strings.Join(want, " ") {
		t.Errorf("received %v, want the newest 16 in order", ids)
	}
}

func TestBackoffIsBoundedFullJitter(t *testing.T) {
	p := NewPusher(NewRecorder(Options{}), nil, testNode, PushOptions{BackoffBase: 100 * time.Millisecond, BackoffMax: time.Second})
	for n := 1; n < 100; n++ {
		ceiling := min(time.Second, 100*time.Millisecond<<min(n-1, 31))
		if n >= 32 {
			ceiling = time.Second
		}
		for range 20 {
			if d := p.backoff(n); d < 0 || d > ceiling {
				t.Fatalf("backoff(%d) = %v, want within [0, %v]", n, d, ceiling)
			}
		}
	}
}

// TestPushSplitsLargeState checks that a state larger than one message is split, with the
// identifier only in the first, never between series the control plane adds together; and
// that access-log batches are split likewise.
func TestPushSplitsLargeState(t *testing.T) {
	addr := freeAddr(t)
	cp, _ := serve(t, addr)
	const errs = maxEntriesPerMessage + 10
	rec := NewRecorder(Options{SuccessLogsPerSecond: -1, LogQueue: errs})
	want := map[string]float64{}
	// Ten versions, each reached through two apps: series that differ only in
	// destination_app, which the control plane sums.
	for i := range 10 {
		v := "v" + strconv.Itoa(i)
		for _, app := range []string{"reviews", "reviews-legacy"} {
			q := outbound()
			q.DestinationVersion, q.DestinationApp = v, app
			rec.Record(q)
		}
		want[v+"/200"] = 2
	}
	q := outbound()
	q.ResponseCode = 503
	for range errs {
		rec.Record(q)
	}
	want["v2/503"] = errs
	startPusher(t, rec, addr, func(p *Pusher) { p.maxSeries = 3 })

	waitFor(t, "every series", func() bool { return equalCounts(cp.requests(0), want) })
	msgs := cp.streamMessages(0)
	if len(msgs) < 5 {
		t.Fatalf("%d messages, want the 21 series split in 4 or more per report", len(msgs))
	}
	for i, msg := range msgs {
		if (msg.GetIdentifier() != nil) != (i == 0) {
			t.Errorf("message %d: identifier %v", i, msg.GetIdentifier())
		}
		apps := map[string]int{}
		for _, m := range msg.GetEnvoyMetrics()[0].GetMetric() {
			apps[seriesName(m)]++
		}
		if len(msg.GetEnvoyMetrics()[0].GetMetric()) > 4 {
			t.Errorf("message %d carries %d series, want at most 3, or 4 to keep a pair", i, len(msg.GetEnvoyMetrics()[0].GetMetric()))
		}
		for name, n := range apps {
			if name != "v2/503" && n != 2 {
				t.Errorf("message %d carries %d of the two %s series", i, n, name)
			}
		}
	}

	waitFor(t, "every error logged", func() bool { return len(cp.entries()) == errs })
	cp.mu.Lock()
	defer cp.mu.Unlock()
	if n := len(cp.logStreams[0]); n != 2 || cp.logStreams[0][1].GetIdentifier() != nil {
		t.Errorf("%d access-log messages, want 2, the identifier in the first only", n)
	}
}
