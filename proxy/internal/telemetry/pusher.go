package telemetry

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	alsv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// DefaultLogName is the log_name of the access-log stream's identifier when
// PushOptions.LogName is empty.
const DefaultLogName = "sluice-proxy"

// PushOptions configures a Pusher. The zero value is ready to use.
type PushOptions struct {
	// Interval is how often the metrics are sent and the access-log queue is flushed (it is
	// also flushed as soon as it is half full). Zero means one second.
	Interval time.Duration
	// LogName is the log_name sent in the access-log stream's identifier. Empty means
	// DefaultLogName.
	LogName string
	// BackoffBase and BackoffMax bound the wait before a stream is opened again: a random
	// duration up to BackoffBase doubled per failed attempt, never above BackoffMax. Zero
	// means 100ms and 15s.
	BackoffBase, BackoffMax time.Duration
	// Log receives stream openings and failures at debug level. Nil discards them.
	Log *slog.Logger
	// Refused reports that a stream's error is the control plane refusing the proxy's
	// credentials (and logs it); the stream is then opened again only after BackoffMax. Nil
	// treats every failure alike.
	Refused func(error) bool
}

// Pusher streams a Recorder's metrics and access log to the control plane over Envoy's
// MetricsService and AccessLogService, on a connection it shares with xDS. Create it with
// NewPusher and run it with Run.
//
// Each service gets one long-lived client stream, whose first message carries the node as
// its identifier. Every interval the metrics stream carries every series, cumulative, as
// io.prometheus.client.MetricFamily values: istio_requests_total as a counter and the three
// histograms without their +Inf bucket (sample_count gives it), each with the series'
// created timestamp, so the control plane tells a proxy restart from growth. That is the
// intake's wire contract (server/internal/telemetry/intake): a report is every series, not
// only the changed ones. A state too large for one gRPC message is split into several,
// never between series the control plane adds together. The access-log stream carries the
// queued entries as HTTPAccessLogEntry batches.
//
// When a stream fails (the server is down, restarts or ends the stream), the Pusher opens it
// again after a backoff, and the new stream starts with the full state. Record never waits
// for any of this: while no stream is up, access-log entries wait in the Recorder's bounded
// queue, the oldest dropped when it is full; a batch whose send fails is lost and counted.
type Pusher struct {
	rec      *Recorder
	node     *corev3.Node
	metrics  metricsv3.MetricsServiceClient
	logs     alsv3.AccessLogServiceClient
	interval time.Duration
	logName  string
	base     time.Duration
	ceiling  time.Duration
	log      *slog.Logger
	refused  func(error) bool
	// maxSeries is maxSeriesPerMessage; tests lower it.
	maxSeries int
	// order is the metrics goroutine's cache of reportOrder.
	order []*series
	// flush asks the metrics stream for a report now; it closes the channel sent once the
	// report is handed to gRPC.
	flush chan chan struct{}

	metricsStreams, logStreams      atomic.Uint64
	metricsMessages, logMessages    atomic.Uint64
	logEntriesSent, logEntriesLost  atomic.Uint64
	metricsConnected, logsConnected atomic.Bool
}

// NewPusher returns a Pusher of rec's telemetry over conn (the proxy's connection to the
// control plane, a *grpc.ClientConn), identified by node. Nothing is sent until Run.
func NewPusher(rec *Recorder, conn grpc.ClientConnInterface, node *corev3.Node, o PushOptions) *Pusher {
	// Defaults: one second is what the console's live graph is built on; the backoff is the
	// xDS client's, so both streams come back together after a control-plane restart.
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	if o.LogName == "" {
		o.LogName = DefaultLogName
	}
	if o.BackoffBase <= 0 {
		o.BackoffBase = 100 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 15 * time.Second
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Pusher{
		rec: rec,
		// A copy, so that marshalling it never races with whoever owns the original.
		node:      proto.Clone(node).(*corev3.Node),
		metrics:   metricsv3.NewMetricsServiceClient(conn),
		logs:      alsv3.NewAccessLogServiceClient(conn),
		interval:  o.Interval,
		logName:   o.LogName,
		base:      o.BackoffBase,
		ceiling:   o.BackoffMax,
		log:       o.Log,
		refused:   o.Refused,
		maxSeries: maxSeriesPerMessage,
		flush:     make(chan chan struct{}),
	}
}

// Flush sends the metrics now rather than at the next interval, and reports whether they
// were handed to the stream before ctx ended. It does nothing (and reports false) while no
// metrics stream is open. A proxy calls it once its listeners drained, so the control plane
// sees its last requests before it goes.
func (p *Pusher) Flush(ctx context.Context) bool {
	if !p.metricsConnected.Load() {
		return false
	}
	ack := make(chan struct{})
	select {
	case p.flush <- ack:
	case <-ctx.Done():
		return false
	}
	select {
	case <-ack:
		return true
	case <-ctx.Done():
		return false
	}
}

// Run keeps both streams open until ctx ends, then returns nil. Call it once.
func (p *Pusher) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	wg.Go(func() { p.keep(ctx, "metrics", p.metricsStream) })
	wg.Go(func() { p.keep(ctx, "access_log", p.logStream) })
	wg.Wait()
	return nil
}

// keep runs one stream after another until ctx ends, backing off between failed ones.
func (p *Pusher) keep(ctx context.Context, name string, stream func(context.Context) (bool, error)) {
	attempts := 0
	for {
		healthy, err := stream(ctx)
		if ctx.Err() != nil {
			return
		}
		if healthy {
			attempts = 0
		}
		attempts++
		wait := p.backoff(attempts)
		// A refusal may come after the first message was sent (gRPC buffers it before the
		// server answers the stream), so it is checked on healthy streams too.
		if p.refused != nil && p.refused(err) {
			wait = p.ceiling
		}
		p.log.Debug("telemetry stream closed, reopening", "stream", name, "error", err,
			"attempt", attempts, "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// backoff returns the wait before attempt n (1-based): full jitter over an exponential cap.
func (p *Pusher) backoff(n int) time.Duration {
	ceiling := p.ceiling
	if n < 32 {
		ceiling = min(p.ceiling, p.base<<(n-1))
	}
	return rand.N(ceiling + 1)
}

// watch ends a client stream's context as soon as the server ends the stream or the
// connection breaks, so a stream with nothing to send notices too. The returned channel is
// closed when the watcher is done, which is once the stream's context ends.
func watch(stream grpc.ClientStream, resp any, cancel context.CancelCauseFunc) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		err := stream.RecvMsg(resp)
		if err == nil {
			err = errors.New("the server ended the stream")
		}
		cancel(err)
	}()
	return done
}

// sendError explains a failed Send: gRPC reports a broken stream as io.EOF there and
// gives the reason to the receiver, which the watcher puts in the context's cause.
func sendError(ctx context.Context, err error) error {
	if !errors.Is(err, io.EOF) {
		return err
	}
	<-ctx.Done() // the stream is over, so the watcher's receive returns at once
	return context.Cause(ctx)
}

// metricsStream runs one MetricsService stream until it fails; healthy reports that a
// message was sent on it.
func (p *Pusher) metricsStream(ctx context.Context) (healthy bool, err error) {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stream, err := p.metrics.StreamMetrics(sctx)
	if err != nil {
		return false, fmt.Errorf("opening the metrics stream: %w", err)
	}
	done := watch(stream, new(metricsv3.StreamMetricsResponse), cancel)
	defer func() {
		cancel(nil)
		<-done
	}()
	p.metricsStreams.Add(1)
	p.metricsConnected.Store(true)
	defer p.metricsConnected.Store(false)
	p.log.Debug("telemetry stream open", "stream", "metrics")

	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	first := true
	var ack chan struct{} // a Flush waiting for this round's report
	for {
		report := p.reportOrder()
		// Every series goes out every interval (the intake's contract), split into messages
		// of about maxSeriesPerMessage series; the first message goes out even when empty,
		// for its identifier.
		for i := 0; i < len(report) || first; {
			fams, n := p.families(report[i:])
			i += n
			msg := &metricsv3.StreamMetricsMessage{EnvoyMetrics: fams}
			if first {
				msg.Identifier = &metricsv3.StreamMetricsMessage_Identifier{Node: p.node}
				first = false
			}
			if err := stream.Send(msg); err != nil {
				return healthy, fmt.Errorf("sending metrics: %w", sendError(sctx, err))
			}
			healthy = true
			p.metricsMessages.Add(1)
		}
		if ack != nil {
			close(ack)
			ack = nil
		}
		select {
		case <-sctx.Done():
			return healthy, context.Cause(sctx)
		case <-tick.C:
		case ack = <-p.flush:
		}
	}
}

// maxSeriesPerMessage keeps a metrics message near 2.8 MB (a series takes about 2.8 KB, its
// labels repeated in four families), under gRPC's default 4 MB receive limit, so that a
// large state is split rather than refused by the server.
const maxSeriesPerMessage = 1000

// maxEntriesPerMessage bounds an access-log message likewise (an entry is well under 2 KB).
const maxEntriesPerMessage = 512

// reportOrder returns every series in the order they are sent: sorted by the labels the
// control plane keeps, then by those it sums away (source_app, destination_app,
// destination_workload_namespace; see the intake's wire contract). Series that the server
// adds together are thus adjacent, and families never splits them across two messages,
// where each would look like a counter that went down. Only the metrics stream's goroutine
// calls it.
func (p *Pusher) reportOrder() []*series {
	all := p.rec.snapshot()
	if len(all) != len(p.order) {
		p.order = slices.Clone(all)
		slices.SortFunc(p.order, func(a, b *series) int {
			if c := compareReport(a, b); c != 0 {
				return c
			}
			return cmp.Or(cmp.Compare(a.key.srcApp, b.key.srcApp), cmp.Compare(a.key.dstApp, b.key.dstApp),
				cmp.Compare(a.key.dstNamespace, b.key.dstNamespace))
		})
	}
	return p.order
}

// compareReport orders series by the labels the control plane keeps; 0 means it sums them.
func compareReport(a, b *series) int {
	x, y := &a.key, &b.key
	if a.overflow != b.overflow {
		if a.overflow {
			return 1
		}
		return -1
	}
	return cmp.Or(cmp.Compare(x.reporter, y.reporter), cmp.Compare(x.srcWorkload, y.srcWorkload),
		cmp.Compare(x.srcNamespace, y.srcNamespace), cmp.Compare(x.srcVersion, y.srcVersion),
		cmp.Compare(x.dstService, y.dstService), cmp.Compare(x.dstWorkload, y.dstWorkload),
		cmp.Compare(x.dstVersion, y.dstVersion), cmp.Compare(x.code, y.code),
		cmp.Compare(x.grpcStatus, y.grpcStatus), cmp.Compare(x.flags, y.flags),
		cmp.Compare(x.protocol, y.protocol))
}

// families returns the first series of report as the four Istio metric families: up to
// p.maxSeries of them, or a few more so as not to split series the control plane sums. n is
// how many it took.
func (p *Pusher) families(report []*series) (fams []*dto.MetricFamily, n int) {
	if len(report) == 0 {
		return nil, 0
	}
	now := time.Now().UnixMilli()
	var requests, duration, reqSize, respSize []*dto.Metric
	var cum [numDuration]uint64
	for ; n < len(report); n++ {
		s := report[n]
		if n >= p.maxSeries && compareReport(report[n-1], s) != 0 {
			break
		}
		created := timestamppb.New(s.created)
		d := read(cum[:], s.duration[:], &s.durSum)
		count := d.cumulative[numDuration-1]
		requests = append(requests, &dto.Metric{Label: s.pairs, TimestampMs: &now,
			Counter: &dto.Counter{Value: new(float64(count)), CreatedTimestamp: created}})
		duration = append(duration, &dto.Metric{Label: s.pairs, TimestampMs: &now,
			Histogram: histogram(d, float64(d.sum)/1e6, DurationBuckets[:], created)})
		var sc [numSize]uint64
		r := read(sc[:], s.reqSize[:], &s.reqSum)
		reqSize = append(reqSize, &dto.Metric{Label: s.pairs, TimestampMs: &now,
			Histogram: histogram(r, float64(r.sum), SizeBuckets[:], created)})
		r = read(sc[:], s.respSize[:], &s.respSum)
		respSize = append(respSize, &dto.Metric{Label: s.pairs, TimestampMs: &now,
			Histogram: histogram(r, float64(r.sum), SizeBuckets[:], created)})
	}
	return []*dto.MetricFamily{
		family(RequestsTotal, "Requests completed, by Istio's standard labels.", dto.MetricType_COUNTER, requests),
		family(RequestDuration, "Request durations in milliseconds.", dto.MetricType_HISTOGRAM, duration),
		family(RequestBytes, "Request body sizes in bytes.", dto.MetricType_HISTOGRAM, reqSize),
		family(ResponseBytes, "Response body sizes in bytes.", dto.MetricType_HISTOGRAM, respSize),
	}, n
}

func family(name, help string, typ dto.MetricType, ms []*dto.Metric) *dto.MetricFamily {
	return &dto.MetricFamily{Name: &name, Help: &help, Type: &typ, Metric: ms}
}

// histogram converts a snapshot to the proto form: cumulative buckets for the finite
// bounds, the count in sample_count.
func histogram(h histSnapshot, sum float64, bounds []float64, created *timestamppb.Timestamp) *dto.Histogram {
	counts := make([]uint64, len(h.cumulative)) // h.cumulative is the caller's scratch
	copy(counts, h.cumulative)
	buckets := make([]dto.Bucket, len(bounds))
	ptrs := make([]*dto.Bucket, len(bounds))
	for i := range bounds {
		buckets[i].CumulativeCount = &counts[i]
		buckets[i].UpperBound = &bounds[i]
		ptrs[i] = &buckets[i]
	}
	return &dto.Histogram{SampleCount: &counts[len(counts)-1], SampleSum: &sum, Bucket: ptrs,
		CreatedTimestamp: created}
}

// logStream runs one AccessLogService stream until it fails; healthy reports that a batch
// was sent on it.
func (p *Pusher) logStream(ctx context.Context) (healthy bool, err error) {
	sctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	stream, err := p.logs.StreamAccessLogs(sctx)
	if err != nil {
		return false, fmt.Errorf("opening the access-log stream: %w", err)
	}
	done := watch(stream, new(alsv3.StreamAccessLogsResponse), cancel)
	defer func() {
		cancel(nil)
		<-done
	}()
	p.logStreams.Add(1)
	p.logsConnected.Store(true)
	defer p.logsConnected.Store(false)
	p.log.Debug("telemetry stream open", "stream", "access_log")

	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	first := true
	for {
		// Entries that waited while no stream was up go out at once.
		batch := p.rec.logs.drain()
		entries := make([]*accesslogv3.HTTPAccessLogEntry, len(batch))
		for i := range batch {
			entries[i] = logEntry(&batch[i])
		}
		p.rec.logs.recycle(batch)
		for len(entries) > 0 {
			chunk := entries[:min(len(entries), maxEntriesPerMessage)]
			entries = entries[len(chunk):]
			msg := &alsv3.StreamAccessLogsMessage{LogEntries: &alsv3.StreamAccessLogsMessage_HttpLogs{
				HttpLogs: &alsv3.StreamAccessLogsMessage_HTTPAccessLogEntries{LogEntry: chunk}}}
			if first {
				msg.Identifier = &alsv3.StreamAccessLogsMessage_Identifier{Node: p.node, LogName: p.logName}
			}
			if err := stream.Send(msg); err != nil {
				p.logEntriesLost.Add(uint64(len(chunk) + len(entries)))
				return healthy, fmt.Errorf("sending access logs: %w", sendError(sctx, err))
			}
			healthy, first = true, false
			p.logMessages.Add(1)
			p.logEntriesSent.Add(uint64(len(chunk)))
		}
		select {
		case <-sctx.Done():
			return healthy, context.Cause(sctx)
		case <-tick.C:
		case <-p.rec.logs.ready:
		}
	}
}

// PushStats is what a Pusher did.
type PushStats struct {
	// MetricsStreams and LogStreams count the streams opened.
	MetricsStreams, LogStreams uint64
	// MetricsConnected and LogsConnected say whether each stream is open now.
	MetricsConnected, LogsConnected bool
	// MetricsMessages and LogMessages count the messages sent.
	MetricsMessages, LogMessages uint64
	// LogEntriesSent counts access-log entries sent; LogEntriesLost those in batches whose
	// send failed.
	LogEntriesSent, LogEntriesLost uint64
}

// Stats returns the Pusher's counters.
func (p *Pusher) Stats() PushStats {
	return PushStats{
		MetricsStreams:   p.metricsStreams.Load(),
		LogStreams:       p.logStreams.Load(),
		MetricsConnected: p.metricsConnected.Load(),
		LogsConnected:    p.logsConnected.Load(),
		MetricsMessages:  p.metricsMessages.Load(),
		LogMessages:      p.logMessages.Load(),
		LogEntriesSent:   p.logEntriesSent.Load(),
		LogEntriesLost:   p.logEntriesLost.Load(),
	}
}
