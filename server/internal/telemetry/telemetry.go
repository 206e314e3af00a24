// Package telemetry is the control plane's view of the mesh's traffic: it turns the cumulative
// request metrics that proxies stream (Istio's metric and label names) into per-second deltas,
// keeps the last few minutes of them in memory for the live graph, rolls them up into 10-second
// and 1-minute buckets in a Store, and answers the graph and time-series queries from both. It
// also keeps the tap: the last access-log entries per destination service, fanned out to live
// subscribers.
//
// The package is the domain: it has no I/O of its own. The gRPC intake (package intake) feeds
// it, the PostgreSQL store implements Store, and the HTTP API reads it.
//
// Counting rules, which every number here follows:
//
//   - Proxies report cumulative values (Prometheus semantics). A Tracker keeps the last value
//     per proxy and series and emits the difference. A value lower than the last one (or a new
//     created timestamp) means the proxy restarted and its counters began again: the delta is
//     the new value itself, so a restart never yields a negative or a doubled rate.
//   - The first report of a proxy the Tracker has not seen is a baseline (delta 0): after a
//     server restart nothing tells how much of a cumulative value was already counted, and
//     counting it again would double it. This loses at most one report interval per proxy
//     (the traffic between the last report the old server saw and the first the new one
//     sees). A series that first appears in a later report counts in full: it was born since
//     the previous report. (A report may span several messages; see Tracker.Observe.)
//   - A request between two sidecars is reported twice, by the caller (reporter "source") and
//     by the callee (reporter "destination"). Select keeps each request once; see there.
//   - A request is an error when its HTTP status is 5xx, or when it is gRPC and its status is
//     one that HTTP maps to 5xx (see IsError).
package telemetry

import (
	"strconv"
	"strings"
	"time"
)

// Metric names: Istio's standard metrics, which sidecars report and this package reads.
const (
	// MetricRequests is a counter of requests.
	MetricRequests = "istio_requests_total"
	// MetricDuration is a histogram of request durations in milliseconds.
	MetricDuration = "istio_request_duration_milliseconds"
	// MetricRequestBytes and MetricResponseBytes are histograms of request and response sizes
	// in bytes; only their sums are kept.
	MetricRequestBytes  = "istio_request_bytes"
	MetricResponseBytes = "istio_response_bytes"
)

// Label names, Istio's. Other labels a proxy sends (source_app, destination_app, …) are
// ignored, and the series that differ only in them are summed.
const (
	LabelReporter                = "reporter"
	LabelSourceWorkload          = "source_workload"
	LabelSourceWorkloadNamespace = "source_workload_namespace"
	LabelSourceVersion           = "source_version"
	LabelDestinationService      = "destination_service"
	LabelDestinationWorkload     = "destination_workload"
	LabelDestinationVersion      = "destination_version"
	LabelResponseCode            = "response_code"
	LabelGRPCResponseStatus      = "grpc_response_status"
	LabelResponseFlags           = "response_flags"
	LabelRequestProtocol         = "request_protocol"
	// LabelConnectionSecurityPolicy says whether the request came over mutual TLS
	// ("mutual_tls"), as the destination's proxy saw it; it is not a Series label: the
	// requests that had "mutual_tls" are counted in Stats.MTLSRequests.
	LabelConnectionSecurityPolicy = "connection_security_policy"
)

// PolicyMutualTLS is the value of LabelConnectionSecurityPolicy for a request over mutual TLS.
const PolicyMutualTLS = "mutual_tls"

// Values of the reporter label, and Istio's value for an identity a proxy does not know.
const (
	ReporterSource      = "source"
	ReporterDestination = "destination"
	Unknown             = "unknown"
)

// MaxLabelLength bounds a label value; longer ones are cut, so that one misbehaving proxy
// cannot blow up memory or the database.
const MaxLabelLength = 256

// Series is one time series' labels: who called whom, and how it went. It is comparable and
// used as a map key. Empty identity fields are normalised to Unknown by the intake.
type Series struct {
	Reporter            string
	SourceWorkload      string
	SourceNamespace     string
	SourceVersion       string
	DestinationService  string
	DestinationWorkload string
	DestinationVersion  string
	ResponseCode        string
	GRPCStatus          string
	ResponseFlags       string
	Protocol            string
}

// DurationBounds are the upper bounds, in milliseconds, of the duration histogram's buckets:
// Istio's defaults. A last bucket, without an upper bound (+Inf), follows them. A proxy that
// reports other bounds has each of its buckets counted in the first of these at or above its
// upper bound.
var DurationBounds = [...]float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000}

// DurationBuckets is the number of duration buckets, the +Inf one included.
const DurationBuckets = len(DurationBounds) + 1

// Stats are counts over some time for one series or a sum of them. The zero value is no
// traffic.
type Stats struct {
	Requests int64
	// Errors counts the requests that failed (see IsError).
	Errors        int64
	RequestBytes  int64
	ResponseBytes int64
	// DurationCount and DurationSumMs are the duration histogram's count and sum.
	DurationCount int64
	DurationSumMs float64
	// Duration holds the number of requests per duration bucket (not cumulative), by
	// DurationBounds; the last is the +Inf bucket.
	Duration [DurationBuckets]int64
	// MTLSRequests counts the requests the destination's proxy received over mutual TLS
	// (connection_security_policy "mutual_tls"); always zero for reporter "source", whose
	// proxy does not know.
	MTLSRequests int64
}

// Add adds o to s.
func (s *Stats) Add(o *Stats) {
	s.Requests += o.Requests
	s.Errors += o.Errors
	s.RequestBytes += o.RequestBytes
	s.ResponseBytes += o.ResponseBytes
	s.DurationCount += o.DurationCount
	s.DurationSumMs += o.DurationSumMs
	s.MTLSRequests += o.MTLSRequests
	for i := range s.Duration {
		s.Duration[i] += o.Duration[i]
	}
}

// IsZero reports whether s counts nothing.
func (s *Stats) IsZero() bool { return *s == Stats{} }

// Row is one series' stats over a time bucket starting at Bucket; a zero Bucket means the
// whole of a query's window.
type Row struct {
	Bucket time.Time
	Series Series
	Stats  Stats
}

// Origin is the proxy a report came from.
type Origin struct {
	// NodeID is the proxy's xDS node id.
	NodeID string
	// Gateway is set when the proxy is an ingress or egress gateway (node metadata MODE is
	// "gateway"): the callers it reports as reporter "source" are shown as gateways.
	Gateway bool
}

// Resolution is the width of a stored rollup bucket.
type Resolution int

// Resolutions of the stored rollups.
const (
	Res10s Resolution = iota + 1
	Res1m
)

// Duration returns the width of r's buckets.
func (r Resolution) Duration() time.Duration {
	if r == Res1m {
		return time.Minute
	}
	return 10 * time.Second
}

func (r Resolution) String() string {
	if r == Res1m {
		return "1m"
	}
	return "10s"
}

// grpcServerErrors are the gRPC status codes that HTTP maps to 5xx: UNKNOWN, DEADLINE_EXCEEDED,
// UNIMPLEMENTED, INTERNAL, UNAVAILABLE and DATA_LOSS.
var grpcServerErrors = map[string]bool{"2": true, "4": true, "12": true, "13": true, "14": true, "15": true}

// IsError reports whether the requests of s failed: an HTTP status of 5xx, or, for gRPC, a
// status that maps to one. A 4xx is the caller's mistake, not the service's failure, as in
// Istio's dashboards.
func IsError(s Series) bool {
	if c, err := strconv.Atoi(s.ResponseCode); err == nil && c >= 500 && c <= 599 {
		return true
	}
	return s.Protocol == "grpc" && grpcServerErrors[s.GRPCStatus]
}

// notForwardedFlags are the response flags of a request that never reached the destination's
// proxy: the caller's proxy answered it itself (injected fault, no route, no healthy or
// reachable endpoint, overflow, rate limit, refused by authorization) or it never left.
var notForwardedFlags = map[string]bool{
	"UH": true, "UF": true, "UO": true, "NR": true, "NC": true, "FI": true, "RL": true,
	"RLSE": true, "UAEX": true, "IH": true, "DPE": true, "OM": true, "DF": true,
}

// NotForwarded reports whether response_flags flags (Envoy's comma-separated short names)
// say that the request never reached the destination's proxy.
func NotForwarded(flags string) bool {
	if flags == "" || flags == "-" {
		return false
	}
	for f := range strings.SplitSeq(flags, ",") {
		if notForwardedFlags[strings.TrimSpace(f)] {
			return true
		}
	}
	return false
}

// SplitService splits a destination_service host into the service's short name and
// namespace, for "<name>.<namespace>.svc.<domain>" hosts; any other host (a ServiceEntry's,
// say) is its own name, without a namespace.
func SplitService(host string) (name, namespace string) {
	parts := strings.SplitN(host, ".", 4)
	if len(parts) >= 3 && parts[2] == "svc" && parts[0] != "" && parts[1] != "" {
		return parts[0], parts[1]
	}
	return host, ""
}

// isUnknown reports whether an identity label is missing.
func isUnknown(v string) bool { return v == "" || v == Unknown }
