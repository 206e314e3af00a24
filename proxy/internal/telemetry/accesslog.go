package telemetry

import (
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// window counts the samples taken in the current second, packed in one word (the second in
// the high bits, the count in the low countBits) so that moving to a new second and counting
// are one compare-and-swap. Once a second's cap is reached, take is a single atomic load.
type window struct{ v atomic.Uint64 }

const (
	countBits = 24
	// maxPerSecond is the largest limit take can count to.
	maxPerSecond = 1<<countBits - 1
)

// take reports whether a request that ended in Unix second sec may be sampled, at most limit
// per second. A request that ended in a second already past counts against the current one.
func (w *window) take(sec int64, limit uint64) bool {
	for {
		old := w.v.Load()
		cur, n := int64(old>>countBits), old&(1<<countBits-1)
		var next uint64
		if sec > cur {
			next = uint64(sec)<<countBits | 1
		} else {
			if n >= limit {
				return false
			}
			next = old + 1
		}
		if w.v.CompareAndSwap(old, next) {
			return true
		}
	}
}

// logQueue is a bounded ring of requests waiting to be sent as access-log entries. push
// overwrites the oldest entry when full. It holds two buffers: drain hands the filled one to
// the Pusher and installs the spare, so push waits for a pointer swap, never for a copy.
type logQueue struct {
	size    int
	dropped atomic.Uint64
	// ready receives a token when the ring becomes half full, so the Pusher sends before
	// its next tick rather than let entries be overwritten.
	ready chan struct{}

	mu      sync.Mutex
	buf     []Request // allocated on first use, so a proxy that never logs pays nothing
	spare   []Request
	head, n int
}

func (q *logQueue) push(r *Request) {
	q.mu.Lock()
	if q.buf == nil {
		q.buf = make([]Request, q.size)
	}
	if q.n == len(q.buf) {
		q.buf[q.head] = *r
		q.head = (q.head + 1) % len(q.buf)
		q.dropped.Add(1)
	} else {
		q.buf[(q.head+q.n)%len(q.buf)] = *r
		q.n++
		if q.n == (q.size+1)/2 {
			select {
			case q.ready <- struct{}{}:
			default:
			}
		}
	}
	q.mu.Unlock()
}

func (q *logQueue) len() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.n
}

// drain returns the queued requests, oldest first. The caller owns the slice until it hands
// it back with recycle, which it must do before the next drain.
func (q *logQueue) drain() []Request {
	q.mu.Lock()
	buf, head, n := q.buf, q.head, q.n
	if n == 0 {
		q.mu.Unlock()
		return nil
	}
	q.buf, q.spare, q.head, q.n = q.spare, nil, 0, 0
	q.mu.Unlock()
	if head > 0 {
		// The ring wrapped, which only happens when it is full: rotate it into order.
		slices.Reverse(buf[:head])
		slices.Reverse(buf[head:])
		slices.Reverse(buf)
	}
	return buf[:n]
}

// recycle clears a drained buffer, so it no longer keeps the requests' strings alive, and
// keeps it as the spare.
func (q *logQueue) recycle(b []Request) {
	if b == nil {
		return
	}
	b = b[:cap(b)]
	clear(b)
	q.mu.Lock()
	if q.spare == nil && q.buf != nil {
		q.spare = b
	} else if q.buf == nil {
		q.buf = b
	}
	q.mu.Unlock()
}

// methods maps request methods to Envoy's enum.
var methods = map[string]corev3.RequestMethod{
	"GET": corev3.RequestMethod_GET, "HEAD": corev3.RequestMethod_HEAD, "POST": corev3.RequestMethod_POST,
	"PUT": corev3.RequestMethod_PUT, "DELETE": corev3.RequestMethod_DELETE,
	"CONNECT": corev3.RequestMethod_CONNECT, "OPTIONS": corev3.RequestMethod_OPTIONS,
	"TRACE": corev3.RequestMethod_TRACE, "PATCH": corev3.RequestMethod_PATCH,
}

// flagSetters set the ResponseFlags field of each flag, by bit.
var flagSetters = [numFlags]func(*accesslogv3.ResponseFlags){
	func(f *accesslogv3.ResponseFlags) { f.FailedLocalHealthcheck = true },
	func(f *accesslogv3.ResponseFlags) { f.NoHealthyUpstream = true },
	func(f *accesslogv3.ResponseFlags) { f.UpstreamRequestTimeout = true },
	func(f *accesslogv3.ResponseFlags) { f.LocalReset = true },
	func(f *accesslogv3.ResponseFlags) { f.UpstreamRemoteReset = true },
	func(f *accesslogv3.ResponseFlags) { f.UpstreamConnectionFailure = true },
	func(f *accesslogv3.ResponseFlags) { f.UpstreamConnectionTermination = true },
	func(f *accesslogv3.ResponseFlags) { f.UpstreamOverflow = true },
	func(f *accesslogv3.ResponseFlags) { f.NoRouteFound = true },
	func(f *accesslogv3.ResponseFlags) { f.DelayInjected = true },
	func(f *accesslogv3.ResponseFlags) { f.FaultInjected = true },
	func(f *accesslogv3.ResponseFlags) { f.RateLimited = true },
	func(f *accesslogv3.ResponseFlags) {
		f.UnauthorizedDetails = &accesslogv3.ResponseFlags_Unauthorized{
			Reason: accesslogv3.ResponseFlags_Unauthorized_EXTERNAL_SERVICE}
	},
	func(f *accesslogv3.ResponseFlags) { f.RateLimitServiceError = true },
	func(f *accesslogv3.ResponseFlags) { f.DownstreamConnectionTermination = true },
	func(f *accesslogv3.ResponseFlags) { f.UpstreamRetryLimitExceeded = true },
	func(f *accesslogv3.ResponseFlags) { f.StreamIdleTimeout = true },
	func(f *accesslogv3.ResponseFlags) { f.InvalidEnvoyRequestHeaders = true },
	func(f *accesslogv3.ResponseFlags) { f.DownstreamProtocolError = true },
	func(f *accesslogv3.ResponseFlags) { f.UpstreamMaxStreamDurationReached = true },
	func(f *accesslogv3.ResponseFlags) { f.ResponseFromCacheFilter = true },
	func(f *accesslogv3.ResponseFlags) { f.NoFilterConfigFound = true },
	func(f *accesslogv3.ResponseFlags) { f.DurationTimeout = true },
	func(f *accesslogv3.ResponseFlags) { f.UpstreamProtocolError = true },
	func(f *accesslogv3.ResponseFlags) { f.NoClusterFound = true },
	func(f *accesslogv3.ResponseFlags) { f.OverloadManager = true },
	func(f *accesslogv3.ResponseFlags) { f.DnsResolutionFailure = true },
	func(f *accesslogv3.ResponseFlags) { f.DownstreamRemoteReset = true },
}

// responseFlags returns f as Envoy's message, or nil for none.
func responseFlags(f Flags) *accesslogv3.ResponseFlags {
	if f == 0 {
		return nil
	}
	out := &accesslogv3.ResponseFlags{}
	for i := range numFlags {
		if f&(1<<i) != 0 {
			flagSetters[i](out)
		}
	}
	return out
}

// validUTF8 returns s with invalid UTF-8 replaced by U+FFFD: proto3 strings must be valid,
// and one bad header value must not make a whole batch fail to marshal.
func validUTF8(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// logEntry turns a request into an Envoy HTTP access-log entry. The Istio labels of the
// request go into custom_tags under their metric label names, so a reader of the log sees
// the same identities as the metrics. sample_rate is 1 for an error (every one is logged)
// and 0, unknown, for a sampled success.
func logEntry(q *Request) *accesslogv3.HTTPAccessLogEntry {
	s := series{key: labelKey{
		srcWorkload: orUnknown(q.SourceWorkload), srcNamespace: orUnknown(q.SourceNamespace),
		srcVersion: orUnknown(q.SourceVersion), srcApp: orUnknown(q.SourceApp),
		dstService: orUnknown(q.DestinationService), dstWorkload: orUnknown(q.DestinationWorkload),
		dstNamespace: orUnknown(q.DestinationNamespace), dstVersion: orUnknown(q.DestinationVersion),
		dstApp: orUnknown(q.DestinationApp), flags: q.Flags, reporter: q.Reporter, protocol: q.Protocol,
		grpcStatus: q.GRPCStatus,
	}}
	if q.ResponseCode > 0 && q.ResponseCode < 1000 {
		s.key.code = uint16(q.ResponseCode)
	}
	vals := s.values()
	tags := make(map[string]string, numLabels)
	for i, name := range labelNames {
		tags[name] = validUTF8(vals[i])
	}
	common := &accesslogv3.AccessLogCommon{
		StartTime:       timestamppb.New(q.Start),
		Duration:        durationpb.New(max(q.Duration, 0)),
		UpstreamCluster: validUTF8(q.UpstreamCluster),
		ResponseFlags:   responseFlags(q.Flags),
		RouteName:       validUTF8(q.RouteName),
		CustomTags:      tags,
		AccessLogType:   accesslogv3.AccessLogType_DownstreamEnd,
	}
	if q.Start.IsZero() {
		common.StartTime = nil
	}
	if isError(q) {
		common.SampleRate = 1
	}
	if host, port, err := net.SplitHostPort(q.UpstreamHost); err == nil {
		if p, err := strconv.ParseUint(port, 10, 32); err == nil {
			common.UpstreamRemoteAddress = &corev3.Address{Address: &corev3.Address_SocketAddress{
				SocketAddress: &corev3.SocketAddress{Address: validUTF8(host),
					PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}}
		}
	}
	version := accesslogv3.HTTPAccessLogEntry_HTTP11
	if q.ProtoMajor == 2 {
		version = accesslogv3.HTTPAccessLogEntry_HTTP2
	}
	resp := &accesslogv3.HTTPResponseProperties{
		ResponseBodyBytes:   uint64(max(q.ResponseBytes, 0)),
		ResponseCodeDetails: validUTF8(q.Detail),
	}
	if q.ResponseCode > 0 {
		resp.ResponseCode = wrapperspb.UInt32(uint32(q.ResponseCode))
	}
	if q.Protocol == ProtocolGRPC {
		resp.ResponseTrailers = map[string]string{"grpc-status": strconv.FormatUint(uint64(q.GRPCStatus), 10)}
	}
	return &accesslogv3.HTTPAccessLogEntry{
		CommonProperties: common,
		ProtocolVersion:  version,
		Request: &accesslogv3.HTTPRequestProperties{
			RequestMethod:    methods[q.Method],
			Scheme:           "http",
			Authority:        validUTF8(q.Authority),
			Path:             validUTF8(q.Path),
			RequestId:        validUTF8(q.RequestID),
			RequestBodyBytes: uint64(max(q.RequestBytes, 0)),
		},
		Response: resp,
	}
}
