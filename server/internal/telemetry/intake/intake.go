// Package intake receives the proxies' telemetry over Envoy's standard gRPC services, served
// on the xDS server's gRPC server: request metrics over envoy.service.metrics.v3.MetricsService
// and access logs over envoy.service.accesslog.v3.AccessLogService. It is the adapter between
// those protos and package telemetry.
//
// # Wire contract (what a proxy sends)
//
// Metrics: one StreamMetrics stream per proxy, held open, with a report (one
// StreamMetricsMessage, or several: see below) about every second. The first message's identifier.node carries the proxy's xDS node: its id
// (required; the same id as on its ADS stream, stable across restarts of the same workload)
// and metadata (MODE "gateway" marks a gateway). Later messages may leave identifier out.
// Each message holds the proxy's current values of Istio's standard metrics, as
// io.prometheus.client.MetricFamily:
//
//	istio_requests_total                  COUNTER (or UNTYPED)  value
//	istio_request_duration_milliseconds   HISTOGRAM  milliseconds, Istio's bucket bounds
//	istio_request_bytes                   HISTOGRAM  bytes (only the sum and count are kept)
//	istio_response_bytes                  HISTOGRAM  bytes (only the sum and count are kept)
//
// with the labels reporter ("source" on the caller's side, "destination" on the callee's;
// other values are ignored), source_workload, source_workload_namespace, source_version,
// destination_service (the host, "<name>.<namespace>.svc.cluster.local" for mesh services),
// destination_workload, destination_version, response_code, grpc_response_status,
// response_flags (Envoy's short names joined by commas, "-" for none) and request_protocol
// ("http" or "grpc"). An identity the proxy does not know is "unknown". Other labels are
// allowed and summed away. Other families are ignored.
//
// Values are cumulative for the life of the proxy process, as Prometheus's are. Every report
// carries every series (not only the ones that changed); a large report may be split over
// several messages sent back to back, each series in exactly one of them, and series that
// differ only in ignored labels in the same one (they are summed per message). A counter's or
// histogram's created_timestamp, when set (the process start is fine), tells a restart apart
// from growth; otherwise a value that went down means the proxy restarted. Duration buckets
// other than Istio's bounds (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
// 30000, 60000, 300000, 600000, 1800000, 3600000 ms) are counted in the next of those bounds
// up. The first report a server gets from a proxy it does not know (its messages until one
// repeats a series, follows an empty message, or comes 0.5 s after the first) is a baseline,
// not traffic: after a server restart at most one interval of each proxy's traffic is lost,
// none is counted twice. The rate of reports sets the live graph's delay, not its numbers:
// sending every second keeps a request's appearance within the live view's 2 seconds; any
// interval up to the server's 5-minute memory of an idle proxy is counted exactly.
//
// Access logs: one StreamAccessLogs stream per proxy, identifier.node as above in the first
// message, then http_logs batches (TCP logs are ignored). These feed the tap and may be
// sampled freely: they are never counted. Each entry should carry
// common_properties.custom_tags with the metric labels above (reporter, source_workload,
// source_workload_namespace, destination_service, destination_workload, destination_version,
// request_protocol); without them the destination is taken from upstream_cluster
// ("outbound|port|subset|host") or, for an inbound cluster, from the node's metadata.
package intake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/service/accesslog/v3"
	metricsv3 "github.com/envoyproxy/go-control-plane/envoy/service/metrics/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/telemetry"
)

// MetricsSink takes the traffic derived from the proxies' reports. It must not keep samples
// after Record returns: the intake reuses it. *telemetry.Aggregator implements it.
type MetricsSink interface {
	Record(o telemetry.Origin, samples []telemetry.Sample)
}

// LogSink takes access-log entries. *telemetry.Tap implements it.
type LogSink interface {
	Publish(entries []telemetry.AccessEntry)
}

var (
	_ MetricsSink = (*telemetry.Aggregator)(nil)
	_ LogSink     = (*telemetry.Tap)(nil)
)

// Options configure a Server.
type Options struct {
	// Log receives stream events; nil discards them.
	Log *slog.Logger
	// Tracker turns cumulative values into deltas; nil means a new one with defaults.
	Tracker *telemetry.Tracker
	// Metrics takes the traffic. Required.
	Metrics MetricsSink
	// Logs takes the access-log entries. Required.
	Logs LogSink
}

// Server implements MetricsService and AccessLogService. Its streams run on the goroutines
// of the gRPC server it is registered with, and end when that server stops.
type Server struct {
	log     *slog.Logger
	tracker *telemetry.Tracker
	metrics MetricsSink
	logs    LogSink
}

// New returns a Server; Register attaches it to a gRPC server.
func New(o Options) (*Server, error) {
	if o.Metrics == nil || o.Logs == nil {
		return nil, errors.New("intake: Options.Metrics and Options.Logs are required")
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	if o.Tracker == nil {
		o.Tracker = telemetry.NewTracker(telemetry.TrackerOptions{})
	}
	return &Server{log: o.Log, tracker: o.Tracker, metrics: o.Metrics, logs: o.Logs}, nil
}

// Register attaches both services to g.
func (s *Server) Register(g grpc.ServiceRegistrar) {
	metricsv3.RegisterMetricsServiceServer(g, metricsService{s: s})
	accesslogv3.RegisterAccessLogServiceServer(g, accessLogService{s: s})
}

type metricsService struct {
	metricsv3.UnimplementedMetricsServiceServer
	s *Server
}

// StreamMetrics receives one proxy's reports until it closes the stream.
func (m metricsService) StreamMetrics(stream metricsv3.MetricsService_StreamMetricsServer) error {
	s := m.s
	var (
		origin telemetry.Origin
		log    *slog.Logger
		warned bool
	)
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&metricsv3.StreamMetricsResponse{})
		}
		if err != nil {
			return err
		}
		if origin.NodeID == "" {
			node := msg.GetIdentifier().GetNode()
			if node.GetId() == "" {
				return status.Error(codes.InvalidArgument, "the first StreamMetricsMessage must carry identifier.node.id: the proxy's xDS node id")
			}
			if err := checkNode(stream.Context(), node); err != nil {
				return err
			}
			origin = telemetry.Origin{NodeID: node.GetId(), Gateway: metadata(node, meta.KeyMode) == meta.ModeGateway}
			log = s.log.With("node_id", origin.NodeID)
			log.Debug("metrics stream opened")
		}
		sc := scratches.Get().(*scratch)
		report := sc.conv.convert(msg.GetEnvoyMetrics())
		var dropped int
		sc.samples, dropped = s.tracker.Observe(origin.NodeID, report, sc.samples[:0])
		if (dropped > 0 || sc.conv.skipped > 0) && !warned {
			warned = true
			log.Warn("ignoring part of a proxy's metrics", "series_over_limit", dropped, "series_without_reporter", sc.conv.skipped)
		}
		s.metrics.Record(origin, sc.samples)
		scratches.Put(sc)
	}
}

// scratch is the buffers of processing one report. They are pooled rather than kept per
// stream: a thousand idle streams would otherwise hold a thousand sets.
type scratch struct {
	conv    converter
	samples []telemetry.Sample
}

var scratches = sync.Pool{New: func() any { return new(scratch) }}

type accessLogService struct {
	accesslogv3.UnimplementedAccessLogServiceServer
	s *Server
}

// StreamAccessLogs receives one proxy's access logs until it closes the stream.
func (a accessLogService) StreamAccessLogs(stream accesslogv3.AccessLogService_StreamAccessLogsServer) error {
	s := a.s
	var node *nodeInfo
	for {
		msg, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&accesslogv3.StreamAccessLogsResponse{})
		}
		if err != nil {
			return err
		}
		if node == nil {
			n := msg.GetIdentifier().GetNode()
			if n.GetId() == "" {
				return status.Error(codes.InvalidArgument, "the first StreamAccessLogsMessage must carry identifier.node.id: the proxy's xDS node id")
			}
			if err := checkNode(stream.Context(), n); err != nil {
				return err
			}
			node = &nodeInfo{
				id: n.GetId(), namespace: metadata(n, meta.KeyNamespace), service: metadata(n, meta.KeyService),
				version: n.GetMetadata().GetFields()[meta.KeyLabels].GetStructValue().GetFields()["version"].GetStringValue(),
			}
			s.log.Debug("access log stream opened", "node_id", node.id, "log_name", msg.GetIdentifier().GetLogName())
		}
		logs := msg.GetHttpLogs().GetLogEntry()
		if len(logs) == 0 {
			continue
		}
		entries := make([]telemetry.AccessEntry, 0, len(logs))
		for _, e := range logs {
			entries = append(entries, accessEntry(e, node))
		}
		s.logs.Publish(entries)
	}
}

// metadata returns a string of the node's metadata.
func metadata(n *corev3.Node, key string) string {
	return n.GetMetadata().GetFields()[key].GetStringValue()
}

// nodeInfo is what an access-log stream knows of its proxy.
type nodeInfo struct {
	id, namespace, service, version string
}

// checkNode refuses, on the authenticated port, a stream whose node claims another identity
// than the workload token it came with, as the xDS server does: a token for one workload must
// not report, or reset the counters of, another. The plaintext port authenticates nobody and
// checks nothing.
func checkNode(ctx context.Context, n *corev3.Node) error {
	w, ok := auth.WorkloadFromContext(ctx)
	if !ok {
		return nil
	}
	ns, sa := metadata(n, meta.KeyNamespace), metadata(n, meta.KeyServiceAccount)
	if ns != w.Identity.Namespace || sa != w.Identity.ServiceAccount {
		return status.Error(codes.PermissionDenied, fmt.Sprintf(
			"node %s claims namespace %q and service account %q, but its workload token is for namespace %q and service account %q: use a token for the proxy's own identity",
			n.GetId(), ns, sa, w.Identity.Namespace, w.Identity.ServiceAccount))
	}
	return nil
}
