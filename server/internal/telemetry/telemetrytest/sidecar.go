// Package telemetrytest simulates the telemetry side of a sidecar for tests and benchmarks:
// it counts requests as Istio's metrics do (cumulative counters and histograms) and streams
// them over MetricsService exactly as the wire contract in package intake describes.
package telemetrytest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/telemetry"
)

// Sizes of every simulated request and response, in bytes.
const (
	RequestSize  = 200
	ResponseSize = 1000
)

// Sidecar is a simulated proxy's request metrics. It is not safe for concurrent use.
type Sidecar struct {
	// NodeID is the proxy's xDS node id.
	NodeID string
	// Gateway marks the proxy as a gateway in its node metadata.
	Gateway bool
	// Created is the start of the proxy process, sent as every series' created timestamp;
	// zero sends none.
	Created time.Time

	order  []telemetry.Series
	series map[telemetry.Series]*counts
}

// counts are one series' cumulative values.
type counts struct {
	requests float64
	// buckets are cumulative counts by telemetry.DurationBounds.
	buckets [len(telemetry.DurationBounds)]float64
	sumMs   float64
}

// NewSidecar returns a sidecar that has counted nothing.
func NewSidecar(nodeID string) *Sidecar {
	return &Sidecar{NodeID: nodeID, series: map[telemetry.Series]*counts{}}
}

// Serve counts n requests of series s, each taking ms milliseconds.
func (sc *Sidecar) Serve(s telemetry.Series, n int, ms float64) {
	c := sc.series[s]
	if c == nil {
		c = &counts{}
		sc.series[s] = c
		sc.order = append(sc.order, s)
	}
	c.requests += float64(n)
	c.sumMs += float64(n) * ms
	for i, b := range telemetry.DurationBounds {
		if ms <= b {
			c.buckets[i] += float64(n)
		}
	}
}

// Restart forgets every count, as a new process of the proxy starts with none, and dates the
// series created.
func (sc *Sidecar) Restart(created time.Time) {
	sc.order = nil
	sc.series = map[telemetry.Series]*counts{}
	sc.Created = created
}

// Families returns the sidecar's current values as MetricFamily messages: the four Istio
// metrics, each series with Istio's labels plus one that the server ignores.
func (sc *Sidecar) Families() []*dto.MetricFamily {
	var created *timestamppb.Timestamp
	if !sc.Created.IsZero() {
		created = timestamppb.New(sc.Created)
	}
	fam := func(name string, typ dto.MetricType) *dto.MetricFamily {
		return &dto.MetricFamily{Name: proto.String(name), Type: typ.Enum()}
	}
	reqs := fam(telemetry.MetricRequests, dto.MetricType_COUNTER)
	dur := fam(telemetry.MetricDuration, dto.MetricType_HISTOGRAM)
	reqBytes := fam(telemetry.MetricRequestBytes, dto.MetricType_HISTOGRAM)
	respBytes := fam(telemetry.MetricResponseBytes, dto.MetricType_HISTOGRAM)
	for _, s := range sc.order {
		c := sc.series[s]
		labels := Labels(s)
		reqs.Metric = append(reqs.Metric, &dto.Metric{Label: labels, Counter: &dto.Counter{Value: proto.Float64(c.requests), CreatedTimestamp: created}})
		h := &dto.Histogram{SampleCount: proto.Uint64(uint64(c.requests)), SampleSum: proto.Float64(c.sumMs), CreatedTimestamp: created}
		for i, b := range telemetry.DurationBounds {
			h.Bucket = append(h.Bucket, &dto.Bucket{UpperBound: proto.Float64(b), CumulativeCount: proto.Uint64(uint64(c.buckets[i]))})
		}
		dur.Metric = append(dur.Metric, &dto.Metric{Label: labels, Histogram: h})
		for _, b := range []struct {
			f    *dto.MetricFamily
			size float64
		}{{reqBytes, RequestSize}, {respBytes, ResponseSize}} {
			b.f.Metric = append(b.f.Metric, &dto.Metric{Label: labels, Histogram: &dto.Histogram{
				SampleCount: proto.Uint64(uint64(c.requests)), SampleSum: proto.Float64(c.requests * b.size), CreatedTimestamp: created,
				Bucket: []*dto.Bucket{{UpperBound: proto.Float64(1e9), CumulativeCount: proto.Uint64(uint64(c.requests))}},
			}})
		}
	}
	return []*dto.MetricFamily{reqs, dur, reqBytes, respBytes}
}

// Labels returns s as Istio's labels, plus source_app, which the server sums away.
func Labels(s telemetry.Series) []*dto.LabelPair {
	pairs := [][2]string{
		{telemetry.LabelReporter, s.Reporter},
		{telemetry.LabelSourceWorkload, s.SourceWorkload},
		{telemetry.LabelSourceWorkloadNamespace, s.SourceNamespace},
		{telemetry.LabelSourceVersion, s.SourceVersion},
		{"source_app", s.SourceWorkload},
		{telemetry.LabelDestinationService, s.DestinationService},
		{telemetry.LabelDestinationWorkload, s.DestinationWorkload},
		{telemetry.LabelDestinationVersion, s.DestinationVersion},
		{telemetry.LabelResponseCode, s.ResponseCode},
		{telemetry.LabelGRPCResponseStatus, s.GRPCStatus},
		{telemetry.LabelResponseFlags, s.ResponseFlags},
		{telemetry.LabelRequestProtocol, s.Protocol},
	}
	out := make([]*dto.LabelPair, len(pairs))
	for i, p := range pairs {
		out[i] = &dto.LabelPair{Name: proto.String(p[0]), Value: proto.String(p[1])}
	}
	return out
}

// Node returns the sidecar's xDS node, as its identifier carries it.
func (sc *Sidecar) Node() *corev3.Node {
	mode := meta.ModeSidecar
	if sc.Gateway {
		mode = meta.ModeGateway
	}
	md, _ := structpb.NewStruct(map[string]any{meta.KeyMode: mode})
	return &corev3.Node{Id: sc.NodeID, Metadata: md}
}

// Stream is a sidecar's open StreamMetrics stream.
type Stream struct {
	sc     *Sidecar
	stream metricsv3.MetricsService_StreamMetricsClient
	sent   bool
}

// Connect opens a StreamMetrics stream on conn.
func (sc *Sidecar) Connect(ctx context.Context, conn grpc.ClientConnInterface) (*Stream, error) {
	s, err := metricsv3.NewMetricsServiceClient(conn).StreamMetrics(ctx)
	if err != nil {
		return nil, fmt.Errorf("open metrics stream of %s: %w", sc.NodeID, err)
	}
	return &Stream{sc: sc, stream: s}, nil
}

// Report sends the sidecar's current values; the stream's first message carries the node.
func (s *Stream) Report() error {
	msg := &metricsv3.StreamMetricsMessage{EnvoyMetrics: s.sc.Families()}
	if !s.sent {
		msg.Identifier = &metricsv3.StreamMetricsMessage_Identifier{Node: s.sc.Node()}
		s.sent = true
	}
	return s.SendMessage(msg)
}

// SendMessage sends msg as it is.
func (s *Stream) SendMessage(msg *metricsv3.StreamMetricsMessage) error {
	if err := s.stream.Send(msg); err != nil {
		return fmt.Errorf("report of %s: %w", s.sc.NodeID, err)
	}
	return nil
}

// Close ends the stream and waits for the server to have processed everything sent.
func (s *Stream) Close() error {
	if _, err := s.stream.CloseAndRecv(); err != nil {
		return fmt.Errorf("close metrics stream of %s: %w", s.sc.NodeID, err)
	}
	return nil
}

// Recorder is a metrics sink between the intake and the real one: it counts the reports
// passed on, so a test can wait until the server has processed what it sent, and it notes
// any negative value.
type Recorder struct {
	// Next receives every report. Required.
	Next interface {
		Record(telemetry.Origin, []telemetry.Sample)
	}

	mu       sync.Mutex
	reports  int
	changed  chan struct{}
	negative []telemetry.Sample
}

// Record passes the report on and counts it.
func (r *Recorder) Record(o telemetry.Origin, samples []telemetry.Sample) {
	r.Next.Record(o, samples)
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range samples {
		st := s.Stats
		neg := st.Requests < 0 || st.Errors < 0 || st.RequestBytes < 0 || st.ResponseBytes < 0 || st.DurationCount < 0 || st.DurationSumMs < 0
		for _, b := range st.Duration {
			neg = neg || b < 0
		}
		if neg {
			r.negative = append(r.negative, s)
		}
	}
	r.reports++
	if r.changed != nil {
		close(r.changed)
		r.changed = nil
	}
}

// Reports returns the number of reports passed on.
func (r *Recorder) Reports() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reports
}

// Negative returns the samples seen with a negative value; there should be none.
func (r *Recorder) Negative() []telemetry.Sample {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.negative
}

// Wait returns once n reports have been passed on in all, or fails when ctx ends first.
func (r *Recorder) Wait(ctx context.Context, n int) error {
	for {
		r.mu.Lock()
		if r.reports >= n {
			r.mu.Unlock()
			return nil
		}
		if r.changed == nil {
			r.changed = make(chan struct{})
		}
		ch := r.changed
		r.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return errors.Join(fmt.Errorf("waited for %d reports, got %d", n, r.Reports()), ctx.Err())
		}
	}
}
