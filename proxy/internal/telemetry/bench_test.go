package telemetry

import (
	"fmt"
	"io"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	"google.golang.org/protobuf/proto"
)

// benchRequests returns n requests with distinct label sets, shaped like a sidecar's
// outbound traffic: a few peers, versions and response codes.
func benchRequests(n int) []Request {
	codes := []int{200, 201, 404, 503}
	out := make([]Request, n)
	start := time.Unix(1_700_000_000, 0)
	for i := range out {
		out[i] = Request{
			Reporter:             ReporterSource,
			SourceWorkload:       "productpage-v1",
			SourceNamespace:      "default",
			SourceVersion:        "v1",
			SourceApp:            "productpage",
			DestinationService:   fmt.Sprintf("svc-%d.default.svc.cluster.local", i/(len(codes)*5)),
			DestinationWorkload:  fmt.Sprintf("svc-%d-v%d", i/(len(codes)*5), i/len(codes)%5),
			DestinationNamespace: "default",
			DestinationVersion:   fmt.Sprintf("v%d", i/len(codes)%5),
			DestinationApp:       fmt.Sprintf("svc-%d", i/(len(codes)*5)),
			ResponseCode:         codes[i%len(codes)],
			Duration:             time.Duration(i%50) * 370 * time.Microsecond,
			RequestBytes:         int64(i % 3000),
			ResponseBytes:        int64(i * 97 % 100000),
			Start:                start,
			Method:               "GET",
			Path:                 "/reviews/0",
		}
		if out[i].ResponseCode == 503 {
			// Keep the benchmark on the metrics path: errors are copied into the access-log
			// queue, which BenchmarkRecord/error measures on its own.
			out[i].ResponseCode = 500 - 1
		}
	}
	return out
}

func BenchmarkRecord(b *testing.B) {
	b.Run("seen", func(b *testing.B) {
		r := NewRecorder(Options{SuccessLogsPerSecond: -1})
		q := benchRequests(1)[0]
		r.Record(q)
		b.ReportAllocs()
		for b.Loop() {
			r.Record(q)
		}
	})
	b.Run("seen-100-sets", func(b *testing.B) {
		r := NewRecorder(Options{SuccessLogsPerSecond: -1})
		qs := benchRequests(100)
		for _, q := range qs {
			r.Record(q)
			r.Record(q)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			r.Record(qs[i%len(qs)])
			i++
		}
	})
	b.Run("parallel", func(b *testing.B) {
		r := NewRecorder(Options{SuccessLogsPerSecond: -1})
		qs := benchRequests(100)
		for _, q := range qs {
			r.Record(q)
			r.Record(q)
		}
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			i := 0
			for pb.Next() {
				r.Record(qs[i%len(qs)])
				i++
			}
		})
	})
	b.Run("sampled-success-over-cap", func(b *testing.B) {
		// The default sampling: after 50 successes in the second, the check is one load.
		r := NewRecorder(Options{})
		q := benchRequests(1)[0]
		r.Record(q)
		b.ReportAllocs()
		for b.Loop() {
			r.Record(q)
		}
	})
	b.Run("error-logged", func(b *testing.B) {
		r := NewRecorder(Options{})
		q := benchRequests(1)[0]
		q.ResponseCode = 503
		r.Record(q)
		b.ReportAllocs()
		for b.Loop() {
			r.Record(q)
		}
	})
	b.Run("overflow", func(b *testing.B) {
		r := NewRecorder(Options{MaxSeries: 10, SuccessLogsPerSecond: -1})
		qs := benchRequests(100)
		for _, q := range qs {
			r.Record(q)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			r.Record(qs[10+i%90])
			i++
		}
	})
}

func BenchmarkWriteText(b *testing.B) {
	r := NewRecorder(Options{})
	for _, q := range benchRequests(1000) {
		r.Record(q)
	}
	if n := r.Stats().Series; n != 1000 {
		b.Fatalf("series = %d, want 1000", n)
	}
	b.ReportAllocs()
	var size int64
	for b.Loop() {
		w := &countingWriter{}
		if err := r.WriteText(w); err != nil {
			b.Fatal(err)
		}
		size = w.n
	}
	b.ReportMetric(float64(size), "bytes/scrape")
}

type countingWriter struct{ n int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n += int64(len(p)); return len(p), nil }

var _ io.Writer = (*countingWriter)(nil)

// BenchmarkPushReport measures what the Pusher does every second for 1,000 series: build
// the four families and marshal them.
func BenchmarkPushReport(b *testing.B) {
	r := NewRecorder(Options{})
	for _, q := range benchRequests(1000) {
		r.Record(q)
	}
	p := NewPusher(r, nil, &corev3.Node{Id: "bench"}, PushOptions{})
	b.ReportAllocs()
	var size int
	for b.Loop() {
		report := p.reportOrder()
		size = 0
		for i := 0; i < len(report); {
			fams, n := p.families(report[i:])
			i += n
			out, err := proto.Marshal(&metricsv3.StreamMetricsMessage{EnvoyMetrics: fams})
			if err != nil {
				b.Fatal(err)
			}
			size += len(out)
		}
	}
	b.ReportMetric(float64(size), "bytes/report")
}
