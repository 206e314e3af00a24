package intake

import (
	"math"
	"strings"
	"testing"
	"unicode/utf8"

	dto "github.com/prometheus/client_model/go"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/sluicemesh/sluice/server/internal/telemetry"
)

func labels(kv ...string) []*dto.LabelPair {
	var out []*dto.LabelPair
	for i := 0; i < len(kv); i += 2 {
		out = append(out, &dto.LabelPair{Name: proto.String(kv[i]), Value: proto.String(kv[i+1])})
	}
	return out
}

func counter(v float64, kv ...string) *dto.Metric {
	return &dto.Metric{Label: labels(kv...), Counter: &dto.Counter{Value: proto.Float64(v), CreatedTimestamp: timestamppb.Now()}}
}

func TestConvert(t *testing.T) {
	base := []string{"reporter", "destination", "source_workload", "productpage-v1", "destination_service", "reviews.default.svc.cluster.local", "response_code", "200"}
	with := func(extra ...string) []string { return append(append([]string{}, base...), extra...) }
	fams := []*dto.MetricFamily{
		{Name: proto.String("istio_requests_total"), Metric: []*dto.Metric{
			// Two series that differ only in a label the server ignores: summed, undated.
			counter(3, with("source_app", "a")...),
			counter(4, with("source_app", "b")...),
			// No reporter: skipped.
			counter(100, "source_workload", "x"),
			// A reporter the server does not know: skipped.
			counter(100, "reporter", "waypoint"),
			// Untyped is read as a counter too (a repeated label: the last one counts).
			{Label: labels(with("response_code", "503")...), Untyped: &dto.Untyped{Value: proto.Float64(1)}},
			// NaN is no count.
			counter(math.NaN(), with("response_code", "404")...),
		}},
		{Name: proto.String("istio_request_duration_milliseconds"), Metric: []*dto.Metric{{
			Label: labels(base...),
			Histogram: &dto.Histogram{SampleCount: proto.Uint64(9), SampleSum: proto.Float64(99), Bucket: []*dto.Bucket{
				// Out of order, and one bound that is not Istio's (7 ms counts at 10).
				{UpperBound: proto.Float64(25), CumulativeCount: proto.Uint64(8)},
				{UpperBound: proto.Float64(7), CumulativeCount: proto.Uint64(5)},
				{UpperBound: proto.Float64(1), CumulativeCount: proto.Uint64(2)},
			}},
		}}},
		{Name: proto.String("envoy_cluster_upstream_rq_total"), Metric: []*dto.Metric{counter(5, base...)}},
	}
	var c converter
	got := c.convert(fams)
	if c.skipped != 2 {
		t.Errorf("skipped %d series, want 2", c.skipped)
	}
	want200 := telemetry.Series{
		Reporter: "destination", SourceWorkload: "productpage-v1", SourceNamespace: "unknown", SourceVersion: "unknown",
		DestinationService: "reviews.default.svc.cluster.local", DestinationWorkload: "unknown", DestinationVersion: "unknown",
		ResponseCode: "200", ResponseFlags: "-",
	}
	want503 := want200
	want503.ResponseCode = "503"
	bySeries := map[telemetry.Series]telemetry.Cumulative{}
	for _, v := range got {
		bySeries[v.Series] = v
	}
	if len(got) != 2 {
		t.Errorf("%d series, want 2: %+v", len(got), got)
	}
	ok := bySeries[want200]
	if v := ok.Requests; !v.Present || v.Count != 7 || v.Created != 0 {
		t.Errorf("summed counter %+v, want 7 without a created timestamp", v)
	}
	if v := bySeries[want503]; !v.Requests.Present || v.Requests.Count != 1 || v.Duration.Present {
		t.Errorf("untyped counter %+v, want 1 request and no histogram", v)
	}
	// Bounds 0.5, 1, 5, 10, 25, …
	h, b := ok.Duration, ok.Buckets
	if !h.Present || h.Count != 9 || h.Sum != 99 || b[0] != 0 || b[1] != 2 || b[2] != 2 || b[3] != 5 || b[4] != 8 || b[telemetry.DurationBuckets-1] != 9 {
		t.Errorf("histogram %+v %v", h, b)
	}
	if ok.RequestBytes.Present || ok.ResponseBytes.Present {
		t.Errorf("bytes present without their families: %+v", ok)
	}

	// The converter's buffers are reused: a second message starts afresh.
	if got := c.convert(fams[2:]); len(got) != 0 || c.skipped != 0 {
		t.Errorf("second message: %+v, skipped %d", got, c.skipped)
	}
}

func TestCleanLabels(t *testing.T) {
	long := strings.Repeat("é", telemetry.MaxLabelLength) // two bytes each
	for in, check := range map[string]func(string) bool{
		"plain":         func(s string) bool { return s == "plain" },
		"bad\xffutf8":   func(s string) bool { return utf8.ValidString(s) && strings.HasPrefix(s, "bad") },
		"nul\x00inside": func(s string) bool { return !strings.Contains(s, "\x00") },
		long: func(s string) bool {
			return len(s) <= telemetry.MaxLabelLength && utf8.ValidString(s) && len(s) == telemetry.MaxLabelLength
		},
	} {
		if out := clean(in); !check(out) {
			t.Errorf("clean(%q) = %q", in, out)
		}
	}
}

// TestConvertConnectionSecurityPolicy sums the series that differ in
// connection_security_policy and counts the mutual TLS part of the destination's reports.
func TestConvertConnectionSecurityPolicy(t *testing.T) {
	dest := []string{"reporter", "destination", "source_workload", "productpage-v1", "destination_service", "reviews.default.svc.cluster.local", "response_code", "200"}
	src := []string{"reporter", "source", "source_workload", "productpage-v1", "destination_service", "ratings.default.svc.cluster.local", "response_code", "200"}
	with := func(base []string, extra ...string) []string { return append(append([]string{}, base...), extra...) }
	fams := []*dto.MetricFamily{{Name: proto.String("istio_requests_total"), Metric: []*dto.Metric{
		counter(5, with(dest, "connection_security_policy", "mutual_tls")...),
		counter(2, with(dest, "connection_security_policy", "none")...),
		counter(1, dest...),
		// The source side does not know; even a claim of mutual TLS from it is not counted.
		counter(4, with(src, "connection_security_policy", "unknown")...),
		counter(3, with(src, "connection_security_policy", "mutual_tls")...),
	}}}
	var c converter
	got := map[string]telemetry.Cumulative{}
	for _, v := range c.convert(fams) {
		got[v.Series.Reporter] = v
	}
	if len(got) != 2 {
		t.Fatalf("series %+v, want one per reporter", got)
	}
	d := got["destination"]
	if d.Requests.Count != 8 || !d.MTLSRequests.Present || d.MTLSRequests.Count != 5 {
		t.Errorf("destination: requests %+v, mutual TLS %+v; want 8 of which 5", d.Requests, d.MTLSRequests)
	}
	s := got["source"]
	if s.Requests.Count != 7 || !s.MTLSRequests.Present || s.MTLSRequests.Count != 0 {
		t.Errorf("source: requests %+v, mutual TLS %+v; want 7 of which none", s.Requests, s.MTLSRequests)
	}
}
