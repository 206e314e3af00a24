package intake

import (
	"cmp"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	accesslogdatav3 "github.com/envoyproxy/go-control-plane/envoy/data/accesslog/v3"
	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/telemetry"
)

// metric is which of the four metrics a family is.
type metric uint8

const (
	metricRequests metric = iota + 1
	metricDuration
	metricRequestBytes
	metricResponseBytes
)

// metrics maps the metric families read to their metric.
var metrics = map[string]metric{
	telemetry.MetricRequests:      metricRequests,
	telemetry.MetricDuration:      metricDuration,
	telemetry.MetricRequestBytes:  metricRequestBytes,
	telemetry.MetricResponseBytes: metricResponseBytes,
}

// converter turns a message's metric families into cumulative values, one per series. It
// belongs to one stream and reuses its buffers from message to message.
type converter struct {
	out   []telemetry.Cumulative
	index map[telemetry.Series]int
	// pairs holds a histogram's buckets while they are sorted.
	pairs          []bucketPair
	bounds, counts []float64
	// skipped counts the series of the last message without a valid reporter.
	skipped int
}

type bucketPair struct{ bound, count float64 }

// convert returns the cumulative values of fams, valid until the next call. Series that
// differ only in labels outside telemetry.Series are summed, and then carry no created
// timestamp: a new one of them appearing is growth, not a restart.
func (c *converter) convert(fams []*dto.MetricFamily) []telemetry.Cumulative {
	c.out = c.out[:0]
	c.skipped = 0
	if c.index == nil {
		c.index = map[telemetry.Series]int{}
	}
	clear(c.index)
	for _, f := range fams {
		kind, ok := metrics[f.GetName()]
		if !ok {
			continue
		}
		for j, m := range f.GetMetric() {
			s, mtls, ok := series(m.GetLabel())
			if !ok {
				c.skipped++
				continue
			}
			var v telemetry.Value
			var buckets *[telemetry.DurationBuckets]float64
			var rebinned [telemetry.DurationBuckets]float64
			if kind == metricRequests {
				switch {
				case m.GetCounter() != nil:
					v.Count = m.GetCounter().GetValue()
					v.Created = nanos(m.GetCounter().GetCreatedTimestamp())
				case m.GetUntyped() != nil:
					v.Count = m.GetUntyped().GetValue()
				default:
					continue
				}
			} else {
				h := m.GetHistogram()
				if h == nil {
					continue
				}
				v.Count = float64(h.GetSampleCount())
				if h.SampleCountFloat != nil {
					v.Count = h.GetSampleCountFloat()
				}
				v.Sum = h.GetSampleSum()
				v.Created = nanos(h.GetCreatedTimestamp())
				if kind == metricDuration {
					rebinned = c.rebin(h, v.Count)
					buckets = &rebinned
				}
			}
			if !(v.Count >= 0) || !(v.Sum >= 0) { // NaN, or a value no counter holds
				continue
			}
			v.Present = true
			e := c.entry(j, s)
			if kind == metricRequests {
				// The series without the security policy label sum into one; the mutual
				// TLS ones are also counted apart.
				e.MTLSRequests.Present = true
				if mtls {
					e.MTLSRequests.Count += v.Count
				}
			}
			dst := e.value(kind)
			if dst.Present {
				// Another series with the same labels but ignored ones: add it.
				dst.Count += v.Count
				dst.Sum += v.Sum
				dst.Created = 0
				if buckets != nil {
					for i := range e.Buckets {
						e.Buckets[i] += buckets[i]
					}
				}
				continue
			}
			*dst = v
			if buckets != nil {
				e.Buckets = *buckets
			}
		}
	}
	return c.out
}

// entry returns the output's entry for s, adding it when new. Proxies list the series of
// every family in the same order, so the j-th metric of a family is first looked for at
// position j, which costs a comparison rather than a hash.
func (c *converter) entry(j int, s telemetry.Series) *cumulative {
	if j < len(c.out) && c.out[j].Series == s {
		return (*cumulative)(&c.out[j])
	}
	if i, ok := c.index[s]; ok {
		return (*cumulative)(&c.out[i])
	}
	c.index[s] = len(c.out)
	c.out = append(c.out, telemetry.Cumulative{Series: s})
	return (*cumulative)(&c.out[len(c.out)-1])
}

// cumulative adds to telemetry.Cumulative the choice of a value by metric.
type cumulative telemetry.Cumulative

func (c *cumulative) value(m metric) *telemetry.Value {
	switch m {
	case metricRequests:
		return &c.Requests
	case metricDuration:
		return &c.Duration
	case metricRequestBytes:
		return &c.RequestBytes
	}
	return &c.ResponseBytes
}

// rebin returns the histogram's cumulative counts by telemetry.DurationBounds.
func (c *converter) rebin(h *dto.Histogram, count float64) [telemetry.DurationBuckets]float64 {
	c.pairs = c.pairs[:0]
	sorted := true
	for _, b := range h.GetBucket() {
		n := float64(b.GetCumulativeCount())
		if b.CumulativeCountFloat != nil {
			n = b.GetCumulativeCountFloat()
		}
		p := bucketPair{b.GetUpperBound(), n}
		if len(c.pairs) > 0 && p.bound < c.pairs[len(c.pairs)-1].bound {
			sorted = false
		}
		c.pairs = append(c.pairs, p)
	}
	if !sorted {
		slices.SortFunc(c.pairs, func(a, b bucketPair) int { return cmp.Compare(a.bound, b.bound) })
	}
	c.bounds, c.counts = c.bounds[:0], c.counts[:0]
	for _, p := range c.pairs {
		c.bounds = append(c.bounds, p.bound)
		c.counts = append(c.counts, p.count)
	}
	return telemetry.Rebin(c.bounds, c.counts, count)
}

func nanos(ts *timestamppb.Timestamp) int64 {
	if ts == nil {
		return 0
	}
	return ts.AsTime().UnixNano()
}

// series reads a metric's labels; ok is false without a reporter of "source" or
// "destination". mtls is true when the destination's proxy reports that the request came over
// mutual TLS; a source proxy's value ("unknown") is ignored.
func series(labels []*dto.LabelPair) (s telemetry.Series, mtls, ok bool) {
	policy := ""
	for _, l := range labels {
		v := l.GetValue()
		switch l.GetName() {
		case telemetry.LabelReporter:
			s.Reporter = v
		case telemetry.LabelSourceWorkload:
			s.SourceWorkload = clean(v)
		case telemetry.LabelSourceWorkloadNamespace:
			s.SourceNamespace = clean(v)
		case telemetry.LabelSourceVersion:
			s.SourceVersion = clean(v)
		case telemetry.LabelDestinationService:
			s.DestinationService = clean(v)
		case telemetry.LabelDestinationWorkload:
			s.DestinationWorkload = clean(v)
		case telemetry.LabelDestinationVersion:
			s.DestinationVersion = clean(v)
		case telemetry.LabelResponseCode:
			s.ResponseCode = clean(v)
		case telemetry.LabelGRPCResponseStatus:
			s.GRPCStatus = clean(v)
		case telemetry.LabelResponseFlags:
			s.ResponseFlags = clean(v)
		case telemetry.LabelRequestProtocol:
			s.Protocol = clean(v)
		case telemetry.LabelConnectionSecurityPolicy:
			policy = v
		}
	}
	if s.Reporter != telemetry.ReporterSource && s.Reporter != telemetry.ReporterDestination {
		return s, false, false
	}
	mtls = s.Reporter == telemetry.ReporterDestination && policy == telemetry.PolicyMutualTLS
	for _, f := range []*string{&s.SourceWorkload, &s.SourceNamespace, &s.SourceVersion, &s.DestinationService, &s.DestinationWorkload, &s.DestinationVersion} {
		if *f == "" {
			*f = telemetry.Unknown
		}
	}
	if s.ResponseFlags == "" {
		s.ResponseFlags = "-"
	}
	return s, mtls, true
}

// clean makes a label value storable: valid UTF-8 (proto2 strings are not checked), no NUL
// (PostgreSQL text cannot hold one), at most telemetry.MaxLabelLength bytes.
func clean(v string) string {
	return truncate(v, telemetry.MaxLabelLength)
}

// truncate returns v as valid UTF-8 without NUL, cut to at most n bytes on a rune boundary.
func truncate(v string, n int) string {
	if !utf8.ValidString(v) {
		v = strings.ToValidUTF8(v, "\uFFFD")
	}
	if strings.IndexByte(v, 0) >= 0 {
		v = strings.ReplaceAll(v, "\x00", "\uFFFD")
	}
	if len(v) <= n {
		return v
	}
	i := n
	for i > 0 && !utf8.RuneStart(v[i]) {
		i--
	}
	return v[:i]
}

// maxFieldLength bounds an access-log entry's free-text fields (path, authority, …).
const maxFieldLength = 1024

// accessEntry converts an access-log entry of node's.
func accessEntry(e *accesslogdatav3.HTTPAccessLogEntry, node *nodeInfo) telemetry.AccessEntry {
	common := e.GetCommonProperties()
	req, resp := e.GetRequest(), e.GetResponse()
	tags := common.GetCustomTags()
	tag := func(name string) string { return truncate(tags[name], telemetry.MaxLabelLength) }
	out := telemetry.AccessEntry{
		NodeID:              node.id,
		Reporter:            tag(telemetry.LabelReporter),
		SourceWorkload:      tag(telemetry.LabelSourceWorkload),
		SourceNamespace:     tag(telemetry.LabelSourceWorkloadNamespace),
		DestinationService:  tag(telemetry.LabelDestinationService),
		DestinationWorkload: tag(telemetry.LabelDestinationWorkload),
		DestinationVersion:  tag(telemetry.LabelDestinationVersion),
		Protocol:            tag(telemetry.LabelRequestProtocol),
		Method:              req.GetRequestMethod().String(),
		Authority:           truncate(req.GetAuthority(), maxFieldLength),
		Path:                truncate(req.GetPath(), maxFieldLength),
		RequestID:           truncate(req.GetRequestId(), maxFieldLength),
		ResponseCode:        int(resp.GetResponseCode().GetValue()),
		ResponseFlags:       responseFlags(common.GetResponseFlags()),
		RequestBytes:        int64(req.GetRequestHeadersBytes() + req.GetRequestBodyBytes()),
		ResponseBytes:       int64(resp.GetResponseHeadersBytes() + resp.GetResponseBodyBytes()),
		UpstreamCluster:     truncate(common.GetUpstreamCluster(), maxFieldLength),
		Detail:              truncate(resp.GetResponseCodeDetails(), maxFieldLength),
	}
	if req.GetRequestMethod() == 0 { // METHOD_UNSPECIFIED
		out.Method = ""
	}
	if ts := common.GetStartTime(); ts != nil {
		out.Time = ts.AsTime()
	} else {
		out.Time = time.Now().UTC()
	}
	d := common.GetDuration()
	if d == nil {
		d = common.GetTimeToLastDownstreamTxByte()
	}
	if d != nil {
		out.DurationMs = float64(d.AsDuration()) / float64(time.Millisecond)
	}
	if sa := common.GetUpstreamRemoteAddress().GetSocketAddress(); sa != nil {
		out.UpstreamHost = truncate(sa.GetAddress(), maxFieldLength)
		if p := sa.GetPortValue(); p != 0 {
			out.UpstreamHost = net.JoinHostPort(out.UpstreamHost, strconv.FormatUint(uint64(p), 10))
		}
	}

	// Without tags, the cluster tells the side and the destination.
	if dir, _, subset, host, err := meta.ParseCluster(common.GetUpstreamCluster()); err == nil {
		switch dir {
		case "outbound":
			out.Reporter = or(out.Reporter, telemetry.ReporterSource)
			out.DestinationService = or(out.DestinationService, host)
			out.DestinationVersion = or(out.DestinationVersion, subset)
		case "inbound":
			out.Reporter = or(out.Reporter, telemetry.ReporterDestination)
			if node.service != "" && node.namespace != "" {
				out.DestinationService = or(out.DestinationService, meta.FQDN(node.service, node.namespace))
			}
			out.DestinationVersion = or(out.DestinationVersion, node.version)
		}
	}
	for _, f := range []*string{&out.SourceWorkload, &out.SourceNamespace, &out.DestinationService, &out.DestinationWorkload, &out.DestinationVersion, &out.Reporter} {
		*f = or(*f, telemetry.Unknown)
	}
	out.Protocol = or(out.Protocol, "http")
	return out
}

func or(v, def string) string {
	if v == "" {
		return def
	}
	return v
}

// flagNames are Envoy's short names of the response flags, in its order.
var flagNames = []struct {
	name string
	set  func(*accesslogdatav3.ResponseFlags) bool
}{
	{"LH", (*accesslogdatav3.ResponseFlags).GetFailedLocalHealthcheck},
	{"UH", (*accesslogdatav3.ResponseFlags).GetNoHealthyUpstream},
	{"UT", (*accesslogdatav3.ResponseFlags).GetUpstreamRequestTimeout},
	{"LR", (*accesslogdatav3.ResponseFlags).GetLocalReset},
	{"UR", (*accesslogdatav3.ResponseFlags).GetUpstreamRemoteReset},
	{"UF", (*accesslogdatav3.ResponseFlags).GetUpstreamConnectionFailure},
	{"UC", (*accesslogdatav3.ResponseFlags).GetUpstreamConnectionTermination},
	{"UO", (*accesslogdatav3.ResponseFlags).GetUpstreamOverflow},
	{"NR", (*accesslogdatav3.ResponseFlags).GetNoRouteFound},
	{"DI", (*accesslogdatav3.ResponseFlags).GetDelayInjected},
	{"FI", (*accesslogdatav3.ResponseFlags).GetFaultInjected},
	{"RL", (*accesslogdatav3.ResponseFlags).GetRateLimited},
	{"UAEX", func(f *accesslogdatav3.ResponseFlags) bool { return f.GetUnauthorizedDetails() != nil }},
	{"RLSE", (*accesslogdatav3.ResponseFlags).GetRateLimitServiceError},
	{"DC", (*accesslogdatav3.ResponseFlags).GetDownstreamConnectionTermination},
	{"URX", (*accesslogdatav3.ResponseFlags).GetUpstreamRetryLimitExceeded},
	{"SI", (*accesslogdatav3.ResponseFlags).GetStreamIdleTimeout},
	{"IH", (*accesslogdatav3.ResponseFlags).GetInvalidEnvoyRequestHeaders},
	{"DPE", (*accesslogdatav3.ResponseFlags).GetDownstreamProtocolError},
	{"UMSDR", (*accesslogdatav3.ResponseFlags).GetUpstreamMaxStreamDurationReached},
	{"RFCF", (*accesslogdatav3.ResponseFlags).GetResponseFromCacheFilter},
	{"NFCF", (*accesslogdatav3.ResponseFlags).GetNoFilterConfigFound},
	{"DT", (*accesslogdatav3.ResponseFlags).GetDurationTimeout},
	{"UPE", (*accesslogdatav3.ResponseFlags).GetUpstreamProtocolError},
	{"NC", (*accesslogdatav3.ResponseFlags).GetNoClusterFound},
	{"OM", (*accesslogdatav3.ResponseFlags).GetOverloadManager},
	{"DF", (*accesslogdatav3.ResponseFlags).GetDnsResolutionFailure},
	{"DR", (*accesslogdatav3.ResponseFlags).GetDownstreamRemoteReset},
}

// responseFlags prints flags as Envoy's %RESPONSE_FLAGS% does: "UH,UF", or "-" for none.
func responseFlags(f *accesslogdatav3.ResponseFlags) string {
	if f == nil {
		return "-"
	}
	var names []string
	for _, n := range flagNames {
		if n.set(f) {
			names = append(names, n.name)
		}
	}
	if len(names) == 0 {
		return "-"
	}
	return strings.Join(names, ",")
}
