package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluicemesh/sluice/internal/pgtest"
)

// istioDurationBounds are Istio's duration buckets in milliseconds, which sidecars report.
var istioDurationBounds = []float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// simCall is requests of one kind from productpage to a reviews version, as the reviews
// sidecar (reporter "destination") counts them.
type simCall struct {
	version, code string
	n             int
	ms            float64
}

// simSidecar plays the telemetry side of a reviews sidecar against the server's real gRPC
// services (Envoy's MetricsService and AccessLogService, as package intake documents them):
// cumulative Istio metrics, and access-log entries for the tap.
type simSidecar struct {
	t      *testing.T
	nodeID string
	conn   *grpc.ClientConn
	calls  []simCall
	// counts are the cumulative requests per call kind.
	counts []int
	ms     metricsv3.MetricsService_StreamMetricsClient
	logs   accesslogv3.AccessLogService_StreamAccessLogsClient
}

func newSimSidecar(t *testing.T, xdsAddr, nodeID string, calls []simCall) *simSidecar {
	t.Helper()
	conn, err := grpc.NewClient(xdsAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &simSidecar{t: t, nodeID: nodeID, conn: conn, calls: calls, counts: make([]int, len(calls))}
}

func (s *simSidecar) node() *corev3.Node {
	md, _ := structpb.NewStruct(map[string]any{"NAMESPACE": "default", "SERVICE": "reviews", "MODE": "sidecar"})
	return &corev3.Node{Id: s.nodeID, Metadata: md}
}

// report sends the current cumulative metrics; the first report is the baseline the server
// counts from.
func (s *simSidecar) report(ctx context.Context) {
	s.t.Helper()
	first := s.ms == nil
	if first {
		st, err := metricsv3.NewMetricsServiceClient(s.conn).StreamMetrics(ctx)
		if err != nil {
			s.t.Fatalf("open the metrics stream: %v", err)
		}
		s.ms = st
	}
	reqs := &dto.MetricFamily{Name: proto.String("istio_requests_total"), Type: dto.MetricType_COUNTER.Enum()}
	dur := &dto.MetricFamily{Name: proto.String("istio_request_duration_milliseconds"), Type: dto.MetricType_HISTOGRAM.Enum()}
	for i, c := range s.calls {
		labels := []*dto.LabelPair{}
		for _, kv := range [][2]string{
			{"reporter", "destination"}, {"source_workload", "productpage-v1"}, {"source_workload_namespace", "default"},
			{"source_version", "v1"}, {"destination_service", "reviews.default.svc.cluster.local"},
			{"destination_workload", "reviews-" + c.version}, {"destination_version", c.version},
			{"response_code", c.code}, {"grpc_response_status", ""}, {"response_flags", "-"}, {"request_protocol", "http"},
		} {
			labels = append(labels, &dto.LabelPair{Name: proto.String(kv[0]), Value: proto.String(kv[1])})
		}
		n := float64(s.counts[i])
		reqs.Metric = append(reqs.Metric, &dto.Metric{Label: labels, Counter: &dto.Counter{Value: proto.Float64(n)}})
		h := &dto.Histogram{SampleCount: proto.Uint64(uint64(n)), SampleSum: proto.Float64(n * c.ms)}
		for _, b := range istioDurationBounds {
			cum := 0.0
			if c.ms <= b {
				cum = n
			}
			h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(b), CumulativeCount: proto.Uint64(uint64(cum))})
		}
		dur.Metric = append(dur.Metric, &dto.Metric{Label: labels, Histogram: h})
	}
	msg := &metricsv3.StreamMetricsMessage{EnvoyMetrics: []*dto.MetricFamily{reqs, dur}}
	if first {
		msg.Identifier = &metricsv3.StreamMetricsMessage_Identifier{Node: s.node()}
	}
	if err := s.ms.Send(msg); err != nil {
		s.t.Fatalf("report metrics: %v", err)
	}
}

// serve counts every call kind's requests once more.
func (s *simSidecar) serve() {
	for i, c := range s.calls {
		s.counts[i] += c.n
	}
}

// logRequests sends an access-log entry per path, each a GET to reviews v2 answered 503.
func (s *simSidecar) logRequests(ctx context.Context, paths ...string) error {
	msg := &accesslogv3.StreamAccessLogsMessage{}
	if s.logs == nil {
		st, err := accesslogv3.NewAccessLogServiceClient(s.conn).StreamAccessLogs(ctx)
		if err != nil {
			return err
		}
		s.logs = st
		msg.Identifier = &accesslogv3.StreamAccessLogsMessage_Identifier{Node: s.node(), LogName: "sluice"}
	}
	var entries []*accesslogdatav3.HTTPAccessLogEntry
	for _, p := range paths {
		entries = append(entries, &accesslogdatav3.HTTPAccessLogEntry{
			CommonProperties: &accesslogdatav3.AccessLogCommon{
				StartTime: timestamppb.Now(), Duration: durationpb.New(300 * time.Millisecond),
				UpstreamCluster: "inbound|9080||",
				CustomTags: map[string]string{
					"reporter": "destination", "source_workload": "productpage-v1", "source_workload_namespace": "default",
					"destination_service": "reviews.default.svc.cluster.local", "destination_workload": "reviews-v2",
					"destination_version": "v2", "request_protocol": "http",
				},
			},
			Request:  &accesslogdatav3.HTTPRequestProperties{RequestMethod: corev3.RequestMethod_GET, Path: p, Authority: "reviews:9080"},
			Response: &accesslogdatav3.HTTPResponseProperties{ResponseCode: wrapperspb.UInt32(503)},
		})
	}
	msg.LogEntries = &accesslogv3.StreamAccessLogsMessage_HttpLogs{HttpLogs: &accesslogv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: entries}}
	return s.logs.Send(msg)
}

// TestLiveCommands pushes traffic from a simulated reviews sidecar to a real sluice-server
// and reads it back with the real sluicectl top, stat and tap.
func TestLiveCommands(t *testing.T) {
	cp := startServer(t, pgtest.New(t, pgtest.Template{}))
	server := "http://" + cp.httpAddr
	cfgPath := filepath.Join(t.TempDir(), "sluice", "config.json")
	ctl := sluicectl{t: t, env: []string{"SLUICE_SERVER=" + server, "SLUICE_CONFIG=" + cfgPath, "SLUICE_TOKEN="}}
	ctl.ok(adminPassword+"\n", "login", "--username", "admin", "--password-stdin")

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sc := newSimSidecar(t, cp.xdsAddr, "reviews-sim", []simCall{
		{"v1", "200", 40, 20},
		{"v2", "503", 10, 300},
	})
	sc.report(ctx) // the baseline
	sc.serve()
	sc.report(ctx)
	eventually(t, 30*time.Second, "the graph shows the reported traffic", func() error {
		var g struct {
			Edges []struct {
				ID       string `json:"id"`
				Requests int64  `json:"requests"`
			} `json:"edges"`
		}
		if _, err := getJSONWith(cp.api, server+"/api/v1/graph?window=5m", &g); err != nil {
			return err
		}
		for _, e := range g.Edges {
			if e.ID == "workload:default/productpage-v1->service:reviews.default.svc.cluster.local" && e.Requests == 50 {
				return nil
			}
		}
		return fmt.Errorf("edges %+v", g.Edges)
	})

	t.Run("top --once", func(t *testing.T) {
		out := ctl.ok("", "top", "--once", "--window", "5m")
		t.Logf("sluicectl top --once:\n%s", out)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 4 || !strings.HasPrefix(lines[0], "SOURCE") {
			t.Fatalf("top printed\n%s\nwant a header and three edges", out)
		}
		for _, want := range [][]string{
			{"default/productpage-v1", "reviews.default", "80.00%"},
			{"reviews.default", "default/reviews-v1", "100.00%"},
			{"reviews.default", "default/reviews-v2", "0.00%"},
		} {
			found := false
			for _, l := range lines[1:] {
				f := strings.Fields(l)
				found = found || (len(f) == 7 && f[0] == want[0] && f[1] == want[1] && f[3] == want[2])
			}
			if !found {
				t.Errorf("top printed\n%s\nwant a row %v", out, want)
			}
		}
		if out := ctl.ok("", "top", "--once", "--window", "5m", "-n", "elsewhere"); strings.Count(out, "\n") != 1 || !strings.HasPrefix(out, "SOURCE") {
			t.Errorf("top -n elsewhere printed\n%s\nwant only the header", out)
		}
	})

	t.Run("stat", func(t *testing.T) {
		out := ctl.ok("", "stat", "reviews", "--window", "5m")
		t.Logf("sluicectl stat reviews:\n%s", out)
		for _, want := range []string{"reviews.default   (all)", "reviews.default   v1", "reviews.default   v2"} {
			if !strings.Contains(out, want) {
				t.Errorf("stat printed\n%s\nwant a row %q", out, want)
			}
		}
		var st struct {
			Versions []struct {
				Service     string   `json:"service"`
				Version     string   `json:"version"`
				Requests    int64    `json:"requests"`
				Errors      int64    `json:"errors"`
				SuccessRate *float64 `json:"successRate"`
				P50         *float64 `json:"p50"`
			} `json:"versions"`
		}
		if err := json.Unmarshal([]byte(ctl.ok("", "stat", "reviews.default", "--window", "5m", "-o", "json")), &st); err != nil {
			t.Fatal(err)
		}
		want := map[string][2]int64{"": {50, 10}, "v1": {40, 0}, "v2": {10, 10}}
		if len(st.Versions) != len(want) {
			t.Fatalf("stat -o json: %+v", st)
		}
		for _, v := range st.Versions {
			w, ok := want[v.Version]
			if !ok || v.Service != "reviews.default.svc.cluster.local" || v.Requests != w[0] || v.Errors != w[1] || v.SuccessRate == nil || v.P50 == nil {
				t.Errorf("stat -o json version %+v, want requests and errors %v", v, w)
			}
		}
		// v1's requests all took 20 ms: the median is in the (10, 25] bucket.
		for _, v := range st.Versions {
			if v.Version == "v1" && (*v.P50 <= 10 || *v.P50 > 25) {
				t.Errorf("v1 p50 %v ms, want in (10, 25]", *v.P50)
			}
		}
	})

	t.Run("tap --max 3", func(t *testing.T) {
		cmd := exec.Command(filepath.Join(binDir, "sluicectl"), "tap", "reviews", "--max", "3", "--status", "5xx", "--path", "/reviews/")
		cmd.Env = append(os.Environ(), ctl.env...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		exited := make(chan error, 1)
		go func() { exited <- cmd.Wait() }()
		// The sidecar logs requests until tap has printed its three and exited: it starts
		// listening at some point after it starts.
		var wg sync.WaitGroup
		wg.Add(1)
		stop := make(chan struct{})
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				if err := sc.logRequests(ctx, fmt.Sprintf("/reviews/%d", i), "/health"); err != nil {
					t.Errorf("send access logs: %v", err)
					return
				}
				select {
				case <-stop:
					return
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
		var err error
		select {
		case err = <-exited:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			err = <-exited
			t.Errorf("tap --max 3 still running after a minute")
		}
		close(stop)
		wg.Wait()
		if err != nil {
			t.Fatalf("tap: %v\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
		}
		t.Logf("sluicectl tap:\n%s", stdout.String())
		lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
		if len(lines) != 3 {
			t.Fatalf("tap --max 3 printed %d lines:\n%s", len(lines), stdout.String())
		}
		for _, l := range lines {
			f := strings.Fields(l)
			// TIME METHOD PATH STATUS LATENCY SOURCE → SERVICE VERSION FLAGS
			if len(f) != 10 || f[1] != "GET" || !strings.HasPrefix(f[2], "/reviews/") || f[3] != "503" || f[4] != "300ms" ||
				f[5] != "default/productpage-v1" || f[6] != "→" || f[7] != "reviews.default" || f[8] != "v2" {
				t.Errorf("tap line %q", l)
			}
			if _, err := time.Parse(time.RFC3339, f[0]); err != nil {
				t.Errorf("tap line %q: time: %v", l, err)
			}
		}
	})

	t.Run("config topic follows a real sidecar", func(t *testing.T) {
		d := websocket.Dialer{Jar: cp.api.Jar, HandshakeTimeout: 10 * time.Second}
		ws, _, err := d.Dial("ws://"+cp.httpAddr+"/api/v1/live", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ws.Close()
		type message struct {
			Type     string `json:"type"`
			ID       string `json:"id"`
			Message  string `json:"message"`
			Revision *struct {
				Revision int64 `json:"revision"`
			} `json:"revision"`
			Proxy *struct {
				Service        string            `json:"service"`
				Connected      bool              `json:"connected"`
				Acked          map[string]string `json:"acked"`
				SyncedRevision int64             `json:"syncedRevision"`
				InSync         bool              `json:"inSync"`
			} `json:"proxy"`
		}
		read := func(what string, ok func(message) bool) message {
			t.Helper()
			for range 1000 {
				_ = ws.SetReadDeadline(time.Now().Add(60 * time.Second))
				var m message
				if err := ws.ReadJSON(&m); err != nil {
					t.Fatalf("waiting for %s: %v", what, err)
				}
				if ok(m) {
					return m
				}
			}
			t.Fatalf("no message %s", what)
			return message{}
		}
		// Messages are handled in order: once the answer to the second comes, the first
		// subscribed.
		for _, m := range []map[string]any{{"type": "subscribe", "id": "c1", "topic": "config"}, {"type": "unsubscribe", "id": "nothing"}} {
			if err := ws.WriteJSON(m); err != nil {
				t.Fatal(err)
			}
		}
		read("answering the unsubscribe", func(m message) bool { return m.Type == "error" && m.ID == "nothing" })

		startWorkload(t, cp, "live", "v1")
		read("of the sidecar applying its configuration", func(m message) bool {
			return m.Type == "proxy" && m.ID == "c1" && m.Proxy.Service == "live" && m.Proxy.Connected && m.Proxy.InSync && m.Proxy.Acked["CDS"] != ""
		})
		rev := revisionOf(t, cp.write(t, http.MethodPost, "/api/v1/apply", "application/yaml",
			"apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: live, namespace: default}\nspec:\n  host: live\n  subsets: [{name: v1, labels: {version: v1}}]\n", http.StatusOK))
		// Revisions and proxy states come from separate notification channels, so the
		// sidecar's sync can be told before the revision.
		var sawRevision, sawSynced bool
		read("of the revision and of the sidecar synced to it", func(m message) bool {
			sawRevision = sawRevision || (m.Type == "revision" && m.Revision.Revision == rev)
			sawSynced = sawSynced || (m.Type == "proxy" && m.Proxy.Service == "live" && m.Proxy.SyncedRevision >= rev && m.Proxy.InSync)
			return sawRevision && sawSynced
		})
	})

	t.Run("errors", func(t *testing.T) {
		wantOneLine(t, ctl.run("", "stat", "nosuch"), 1, `unknown service "nosuch"`)
		wantOneLine(t, ctl.run("", "tap", "nosuch", "--max", "1"), 1, `unknown service "nosuch"`)
		wantOneLine(t, ctl.with("SLUICE_TOKEN=slc_not-a-real-token").run("", "top", "--once"), 1, "not signed in or token expired")
		wantOneLine(t, ctl.with("SLUICE_SERVER=http://"+freePort(t)).run("", "top", "--once"), 1, "cannot reach sluice-server")
		wantOneLine(t, ctl.run("", "tap", "reviews", "--status", "6xx"), 2, `--status "6xx" must be one of`)
	})
}
