package intake_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/proto"

	"github.com/sluicemesh/sluice/server/internal/telemetry"
	"github.com/sluicemesh/sluice/server/internal/telemetry/intake"
	"github.com/sluicemesh/sluice/server/internal/telemetry/telemetrytest"
)

// The benchmark's mesh: sidecars, each reporting edges series once per simulated second.
const (
	benchSidecars = 1000
	benchEdges    = 20
)

// benchSidecar is a simulated sidecar whose report is built once and updated in place, so
// that the client side of the benchmark costs little beyond gRPC itself.
type benchSidecar struct {
	node     string
	families []*dto.MetricFamily
	counters []*float64 // istio_requests_total values
	hists    []*dto.Histogram
	total    float64
}

func newBenchSidecar(i int) *benchSidecar {
	sc := &benchSidecar{node: fmt.Sprintf("sidecar~10.0.%d.%d~app-%d.default~default.svc.cluster.local", i/250, i%250, i)}
	reqs := &dto.MetricFamily{Name: proto.String(telemetry.MetricRequests), Type: dto.MetricType_COUNTER.Enum()}
	dur := &dto.MetricFamily{Name: proto.String(telemetry.MetricDuration), Type: dto.MetricType_HISTOGRAM.Enum()}
	reqBytes := &dto.MetricFamily{Name: proto.String(telemetry.MetricRequestBytes), Type: dto.MetricType_HISTOGRAM.Enum()}
	respBytes := &dto.MetricFamily{Name: proto.String(telemetry.MetricResponseBytes), Type: dto.MetricType_HISTOGRAM.Enum()}
	for e := range benchEdges {
		s := telemetry.Series{
			Reporter: telemetry.ReporterSource, SourceWorkload: fmt.Sprintf("app-%d-v1", i), SourceNamespace: "default", SourceVersion: "v1",
			DestinationService:  fmt.Sprintf("app-%d.default.svc.cluster.local", (i+e+1)%benchSidecars),
			DestinationWorkload: fmt.Sprintf("app-%d-v1", (i+e+1)%benchSidecars), DestinationVersion: "v1",
			ResponseCode: "200", ResponseFlags: "-", Protocol: "http",
		}
		labels := telemetrytest.Labels(s)
		v := proto.Float64(0)
		sc.counters = append(sc.counters, v)
		reqs.Metric = append(reqs.Metric, &dto.Metric{Label: labels, Counter: &dto.Counter{Value: v}})
		for _, f := range []*dto.MetricFamily{dur, reqBytes, respBytes} {
			h := &dto.Histogram{SampleCount: proto.Uint64(0), SampleSum: proto.Float64(0)}
			if f == dur {
				for _, b := range telemetry.DurationBounds {
					h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(b), CumulativeCount: proto.Uint64(0)})
				}
			}
			f.Metric = append(f.Metric, &dto.Metric{Label: labels, Histogram: h})
			sc.hists = append(sc.hists, h)
		}
	}
	sc.families = []*dto.MetricFamily{reqs, dur, reqBytes, respBytes}
	return sc
}

// serve counts n more requests on every edge, each taking 20 ms and 500 bytes each way.
func (sc *benchSidecar) serve(n float64) {
	sc.total += n
	for _, c := range sc.counters {
		*c = sc.total
	}
	for _, h := range sc.hists {
		*h.SampleCount = uint64(sc.total)
		*h.SampleSum = sc.total * 20
		for i, b := range h.Bucket {
			if telemetry.DurationBounds[i] >= 20 {
				*b.CumulativeCount = uint64(sc.total)
			}
		}
	}
}

func (sc *benchSidecar) message(first bool) *metricsv3.StreamMetricsMessage {
	msg := &metricsv3.StreamMetricsMessage{EnvoyMetrics: sc.families}
	if first {
		msg.Identifier = &metricsv3.StreamMetricsMessage_Identifier{Node: telemetrytest.NewSidecar(sc.node).Node()}
	}
	return msg
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchClock is the aggregator's simulated time: one second per interval.
type benchClock struct {
	mu sync.Mutex
	t  time.Time
}

func newBenchClock() *benchClock { return &benchClock{t: time.Unix(1_800_000_000, 0)} }

func (c *benchClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *benchClock) tick() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Second)
}

func (c *benchClock) second() int64 { return c.Now().Unix() }

// benchSidecarsEnv names the address a test binary started as the simulated sidecars
// connects to (see runBenchSidecars).
const benchSidecarsEnv = "SLUICE_BENCH_SIDECARS_ADDR"

// runBenchSidecars is the test binary run as the benchmark's 1,000 sidecars, in a process of
// their own so that the server's CPU time is measured alone. Each "tick" line on in makes
// every sidecar count 5 more requests on each edge and report; "sent" on out says they have.
// "quit", or the end of in, closes the streams.
func runBenchSidecars(addr string, in io.Reader, out io.Writer) int {
	ctx := context.Background()
	var conns []*grpc.ClientConn
	for range 10 { // a hundred streams a connection
		c, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer c.Close()
		conns = append(conns, c)
	}
	sidecars := make([]*benchSidecar, benchSidecars)
	streams := make([]metricsv3.MetricsService_StreamMetricsClient, benchSidecars)
	for i := range sidecars {
		sidecars[i] = newBenchSidecar(i)
		var err error
		if streams[i], err = metricsv3.NewMetricsServiceClient(conns[i%len(conns)]).StreamMetrics(ctx); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	first := true
	lines := bufio.NewScanner(in)
	for lines.Scan() && lines.Text() == "tick" {
		const workers = 16
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for i := w; i < benchSidecars; i += workers {
					sidecars[i].serve(5)
					if err := streams[i].Send(sidecars[i].message(first)); err != nil {
						fmt.Fprintln(os.Stderr, err)
						os.Exit(1)
					}
				}
			})
		}
		wg.Wait()
		first = false
		fmt.Fprintln(out, "sent")
	}
	for _, s := range streams {
		_, _ = s.CloseAndRecv()
	}
	return 0
}

// BenchmarkIntake is one interval (one simulated second) of 1,000 sidecars × 20 edges, each
// sidecar on its own StreamMetrics stream over loopback gRPC from another process: every
// sidecar reports, the server turns the reports into deltas and sums them, and every tenth
// interval the closed 10 s bucket (and every sixtieth the 1 min one) is written to
// PostgreSQL with COPY. server-cpu-ms is this process's CPU time per interval, the server's
// alone (PostgreSQL's own is not counted); sidecars-cpu-ms is the simulated sidecars'; rows/s
// is rows written per simulated second.
func BenchmarkIntake(b *testing.B) {
	st := openStore(b)
	ctx := context.Background()
	clk := newBenchClock()
	agg, err := telemetry.New(telemetry.Options{Store: st, Log: slog.New(slog.DiscardHandler), Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	rec := &telemetrytest.Recorder{Next: agg}
	in, err := intake.New(intake.Options{Metrics: rec, Logs: telemetry.NewTap(telemetry.TapOptions{})})
	if err != nil {
		b.Fatal(err)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	g := grpc.NewServer(grpc.MaxConcurrentStreams(1 << 20))
	in.Register(g)
	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	defer func() { g.Stop(); <-served }()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchSidecarsEnv+"="+lis.Addr().String())
	cmd.Stderr = os.Stderr
	toSidecars, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	fromSidecars, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	replies := bufio.NewScanner(fromSidecars)
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			toSidecars.Close()
			if err := cmd.Wait(); err != nil {
				b.Errorf("simulated sidecars: %v", err)
			}
		}
	}
	defer stop()

	reports := 0
	interval := func() {
		if _, err := io.WriteString(toSidecars, "tick\n"); err != nil {
			b.Fatal(err)
		}
		if !replies.Scan() || replies.Text() != "sent" {
			b.Fatalf("simulated sidecars did not report: %v", replies.Err())
		}
		reports += benchSidecars
		if err := rec.Wait(ctx, reports); err != nil {
			b.Fatal(err)
		}
		clk.tick()
		if clk.second()%10 == 0 {
			if err := agg.FlushClosed(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	interval() // baselines
	rows0, cpu0, sec0 := agg.RowsWritten(), cpuTime(), clk.second()
	b.ResetTimer()
	for range b.N {
		interval()
	}
	b.StopTimer()
	rows, seconds, cpu := agg.RowsWritten()-rows0, clk.second()-sec0, cpuTime()-cpu0
	stop()
	b.ReportMetric(float64(cpu.Milliseconds())/float64(b.N), "server-cpu-ms/interval")
	b.ReportMetric(float64((cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime()).Milliseconds())/float64(b.N+1), "sidecars-cpu-ms/interval")
	b.ReportMetric(float64(rows)/float64(seconds), "rows/s")
	if n := len(rec.Negative()); n > 0 {
		b.Errorf("%d negative deltas", n)
	}
}

// BenchmarkIntakeProcessing is the server's own work for one interval of 1,000 sidecars × 20
// edges, without gRPC: converting the reports, turning them into deltas, and summing them.
// Before timing, it runs the live span (5 minutes) of intervals and reports the heap the
// server holds then, in all and per sidecar.
func BenchmarkIntakeProcessing(b *testing.B) {
	st := openStore(b)
	clk := newBenchClock()
	sidecars := make([]*benchSidecar, benchSidecars)
	for i := range sidecars {
		sidecars[i] = newBenchSidecar(i)
	}
	heap0 := heapInUse()
	agg, err := telemetry.New(telemetry.Options{Store: st, Log: slog.New(slog.DiscardHandler), Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	tr := telemetry.NewTracker(telemetry.TrackerOptions{Now: clk.Now})
	// One converter, as the intake's pool hands one to each report being processed.
	conv := intake.NewConverter()
	var samples []telemetry.Sample
	interval := func() {
		for _, sc := range sidecars {
			sc.serve(5)
			samples, _ = tr.Observe(sc.node, conv.Convert(sc.families), samples[:0])
			agg.Record(telemetry.Origin{NodeID: sc.node}, samples)
		}
		clk.tick()
	}
	ctx := context.Background()
	for range 5*60 + 10 {
		interval()
		if clk.second()%10 == 0 {
			if err := agg.FlushClosed(ctx); err != nil {
				b.Fatal(err)
			}
		}
	}
	held := heapInUse() - heap0
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		interval()
	}
	b.StopTimer()
	b.ReportMetric(float64(held)/(1<<20), "heap-MB")
	b.ReportMetric(float64(held)/1024/benchSidecars, "heap-KB/sidecar")
	runtime.KeepAlive(tr)
	runtime.KeepAlive(conv)
}

// heapInUse returns the bytes of live heap objects, after a collection.
func heapInUse() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// BenchmarkFlush writes one closed 10 s bucket of 1,000 sidecars × 20 edges (20,000 rows) to
// PostgreSQL: COPY into a staging table, then the merging INSERT.
func BenchmarkFlush(b *testing.B) {
	st := openStore(b)
	ctx := context.Background()
	rows := make([]telemetry.Row, 0, benchSidecars*benchEdges)
	for i := range benchSidecars {
		for e := range benchEdges {
			r := telemetry.Row{Series: telemetry.Series{
				Reporter: telemetry.ReporterSource, SourceWorkload: fmt.Sprintf("app-%d-v1", i), SourceNamespace: "default", SourceVersion: "v1",
				DestinationService:  fmt.Sprintf("app-%d.default.svc.cluster.local", (i+e+1)%benchSidecars),
				DestinationWorkload: fmt.Sprintf("app-%d-v1", (i+e+1)%benchSidecars), DestinationVersion: "v1",
				ResponseCode: "200", ResponseFlags: "-", Protocol: "http",
			}, Stats: telemetry.Stats{Requests: 50, DurationCount: 50, DurationSumMs: 1000, RequestBytes: 25000, ResponseBytes: 25000}}
			r.Stats.Duration[4] = 50
			rows = append(rows, r)
		}
	}
	t0 := time.Unix(1_800_000_000, 0)
	b.ResetTimer()
	for i := range b.N {
		for j := range rows {
			rows[j].Bucket = t0.Add(time.Duration(i) * 10 * time.Second)
		}
		if err := st.WriteRollups(ctx, telemetry.Res10s, rows); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(len(rows)*b.N)/b.Elapsed().Seconds(), "rows/s")
}
