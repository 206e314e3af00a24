// Package telemetry is sluice-proxy's request telemetry: Istio's standard metrics, kept in
// memory, served to Prometheus and streamed to the control plane, plus sampled access logs.
//
// The proxy calls Recorder.Record once for every request it finished. Record is built to stay
// off the request's critical path: it takes no lock and allocates nothing for a label set it
// has seen before (the steady state of a mesh), and it never waits for the network. It updates
// the request's series, a set of cumulative counters and fixed-bucket histograms (Prometheus
// semantics: they only grow, for the life of the process), and may copy the request into a
// small bounded queue of access-log entries: every error, and the first successes of each
// second.
//
// Two readers take it from there, each on its own schedule:
//   - PrometheusHandler serves /stats/prometheus in the Prometheus text format, with Istio's
//     metric and label names (istio_requests_total, istio_request_duration_milliseconds,
//     istio_request_bytes, istio_response_bytes);
//   - a Pusher streams the same series every second as io.prometheus.client.MetricFamily
//     messages over Envoy's MetricsService, and the queued access-log entries as
//     HTTPAccessLogEntry messages over Envoy's AccessLogService.
//
// Memory is bounded: a Recorder holds at most Options.MaxSeries label sets (about 1.3 KB
// each), and folds any further ones into one overflow series whose labels all read "other";
// the access-log queue has a fixed size and drops its oldest entry when full.
//
// A Request's strings are kept as given, so the cheapest labels are strings the proxy
// already holds: its own identity, and each endpoint's workload and version compiled once
// from its EDS metadata (filter_metadata "istio"), rather than strings built per request.
package telemetry

import (
	"strings"
	"time"
)

// Request describes one finished request, as Record takes it. Every string is used as it
// is, never copied, so the caller may pass strings it already holds (the compiled cluster's
// metadata, the request's own header values) at no cost.
//
// The first group of fields makes the request's label set; an empty identity field is
// reported as "unknown", as Istio does. The second group only feeds the access log.
type Request struct {
	// Reporter says which side of the call this proxy is: ReporterSource on the client's
	// side (outbound), ReporterDestination on the server's side (inbound).
	Reporter Reporter
	// Protocol is the request's protocol; the zero value is ProtocolHTTP.
	Protocol Protocol

	// SourceWorkload, SourceNamespace, SourceVersion and SourceApp identify the caller.
	SourceWorkload, SourceNamespace, SourceVersion, SourceApp string
	// DestinationService is the called service's host name, such as
	// "reviews.default.svc.cluster.local".
	DestinationService string
	// DestinationWorkload, DestinationNamespace, DestinationVersion and DestinationApp
	// identify the workload that answered.
	DestinationWorkload, DestinationNamespace, DestinationVersion, DestinationApp string

	// ResponseCode is the HTTP status sent downstream; 0 when no response was sent (the
	// client went away first). Values outside 0-999 are reported as 0.
	ResponseCode int
	// GRPCStatus is the gRPC status code of a gRPC request (the response's grpc-status). It
	// is reported only when Protocol is ProtocolGRPC; when the response carried none, the
	// caller should pass the code the gRPC spec maps the HTTP status to (14 for 503).
	GRPCStatus uint32
	// Flags are Envoy's response flags for the request: why the proxy answered itself, or
	// how the exchange failed.
	Flags Flags
	// Security is how the connection the request arrived on was secured, as the destination
	// sees it (Istio's connection_security_policy); the source leaves it unknown.
	Security Security
	// Duration is the time from the first byte received to the last byte sent.
	Duration time.Duration
	// RequestBytes and ResponseBytes are the sizes of the request's and the response's
	// bodies, as Istio's metrics measure them. Negative values count as zero.
	RequestBytes, ResponseBytes int64

	// Start is when the request's first byte arrived. It dates the access-log entry and
	// places the request in its second for success sampling; the zero value means unknown,
	// and Record then reads the clock.
	Start time.Time
	// Method, Authority and Path are the request's method, :authority (Host) and path with
	// its query.
	Method, Authority, Path string
	// ProtoMajor is the downstream HTTP version's major number (1 or 2).
	ProtoMajor int
	// RequestID is the request's x-request-id.
	RequestID string
	// UpstreamCluster and UpstreamHost name the cluster and the endpoint ("ip:port") the
	// request went to; empty when it was answered locally.
	UpstreamCluster, UpstreamHost string
	// RouteName names the route that matched, when it has a name.
	RouteName string
	// Detail says why the proxy answered itself, as its x-sluice-reason header does; it
	// becomes the entry's response_code_details.
	Detail string
}

// Reporter says on which side of a call a request was observed: Istio's "reporter" label.
type Reporter uint8

// Reporters. The zero value is reported as "unknown".
const (
	ReporterUnknown Reporter = iota
	// ReporterSource is the client's sidecar (or the gateway), for outbound requests.
	ReporterSource
	// ReporterDestination is the server's sidecar, for inbound requests.
	ReporterDestination
)

// String returns the label value: "source", "destination" or "unknown".
func (r Reporter) String() string {
	switch r {
	case ReporterSource:
		return "source"
	case ReporterDestination:
		return "destination"
	default:
		return "unknown"
	}
}

// Protocol is a request's protocol: Istio's "request_protocol" label.
type Protocol uint8

// Protocols.
const (
	// ProtocolHTTP is plain HTTP, any version; the zero value.
	ProtocolHTTP Protocol = iota
	// ProtocolGRPC is gRPC (a request whose content-type is application/grpc...).
	ProtocolGRPC
)

// String returns the label value: "http" or "grpc".
func (p Protocol) String() string {
	if p == ProtocolGRPC {
		return "grpc"
	}
	return "http"
}

// Security is Istio's "connection_security_policy" label.
type Security uint8

// Connection security policies. The zero value is reported as "unknown", as the source's
// reports always are.
const (
	SecurityUnknown Security = iota
	// SecurityNone is a plaintext connection.
	SecurityNone
	// SecurityMutualTLS is a connection with mutual TLS: the caller presented a certificate.
	SecurityMutualTLS
)

// String returns the label value: "unknown", "none" or "mutual_tls".
func (s Security) String() string {
	switch s {
	case SecurityNone:
		return "none"
	case SecurityMutualTLS:
		return "mutual_tls"
	default:
		return "unknown"
	}
}

// Flags is a set of Envoy response flags. The zero value is the empty set, reported as "-".
type Flags uint32

// Response flags, in the order of Envoy's ResponseFlags message, which is also the order in
// which Envoy lists their short names.
const (
	FlagFailedLocalHealthcheck           Flags = 1 << iota // LH
	FlagNoHealthyUpstream                                  // UH
	FlagUpstreamRequestTimeout                             // UT
	FlagLocalReset                                         // LR
	FlagUpstreamRemoteReset                                // UR
	FlagUpstreamConnectionFailure                          // UF
	FlagUpstreamConnectionTermination                      // UC
	FlagUpstreamOverflow                                   // UO
	FlagNoRouteFound                                       // NR
	FlagDelayInjected                                      // DI
	FlagFaultInjected                                      // FI
	FlagRateLimited                                        // RL
	FlagUnauthorized                                       // UAEX
	FlagRateLimitServiceError                              // RLSE
	FlagDownstreamConnectionTermination                    // DC
	FlagUpstreamRetryLimitExceeded                         // URX
	FlagStreamIdleTimeout                                  // SI
	FlagInvalidEnvoyRequestHeaders                         // IH
	FlagDownstreamProtocolError                            // DPE
	FlagUpstreamMaxStreamDurationReached                   // UMSDR
	FlagResponseFromCacheFilter                            // RFCF
	FlagNoFilterConfigFound                                // NFCF
	FlagDurationTimeout                                    // DT
	FlagUpstreamProtocolError                              // UPE
	FlagNoClusterFound                                     // NC
	FlagOverloadManager                                    // OM
	FlagDNSResolutionFailure                               // DF
	FlagDownstreamRemoteReset                              // DR

	numFlags = iota
)

// flagNames are the short names of the flags, by bit.
var flagNames = [numFlags]string{"LH", "UH", "UT", "LR", "UR", "UF", "UC", "UO", "NR", "DI", "FI",
	"RL", "UAEX", "RLSE", "DC", "URX", "SI", "IH", "DPE", "UMSDR", "RFCF", "NFCF", "DT", "UPE", "NC",
	"OM", "DF", "DR"}

// String returns the flags as Envoy's %RESPONSE_FLAGS% prints them: short names joined by
// commas, such as "UH,UF", or "-" for none. Bits without a name are left out.
func (f Flags) String() string {
	if f == 0 {
		return "-"
	}
	var b strings.Builder
	for i := range numFlags {
		if f&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte(',')
			}
			b.WriteString(flagNames[i])
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// unknown is Istio's value for an identity label the proxy does not know.
const unknown = "unknown"

// orUnknown returns s, or "unknown" when s is empty. Record normalises the key with it, so
// that "" and "unknown" never become two series that print the same.
func orUnknown(s string) string {
	if s == "" {
		return unknown
	}
	return s
}

// isError reports whether a request is logged whatever the sampling: a 5xx answer, any
// response flag, or a gRPC status that HTTP maps to a 5xx (UNKNOWN, DEADLINE_EXCEEDED,
// UNIMPLEMENTED, INTERNAL, UNAVAILABLE, DATA_LOSS), the control plane's definition of an
// error.
func isError(q *Request) bool {
	if q.ResponseCode >= 500 || q.Flags != 0 {
		return true
	}
	if q.Protocol == ProtocolGRPC {
		switch q.GRPCStatus {
		case 2, 4, 12, 13, 14, 15:
			return true
		}
	}
	return false
}
