package telemetry

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is the start of the second most tests' requests fall in.
var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// outbound is a request as productpage's sidecar reports a call to reviews v2.
func outbound() Request {
	return Request{
		Reporter:             ReporterSource,
		SourceWorkload:       "productpage-v1",
		SourceNamespace:      "bookinfo",
		SourceVersion:        "v1",
		SourceApp:            "productpage",
		DestinationService:   "reviews.bookinfo.svc.cluster.local",
		DestinationWorkload:  "reviews-v2",
		DestinationNamespace: "bookinfo",
		DestinationVersion:   "v2",
		DestinationApp:       "reviews",
		ResponseCode:         200,
		Duration:             7 * time.Millisecond,
		RequestBytes:         0,
		ResponseBytes:        295,
		Start:                t0,
		Method:               "GET",
		Authority:            "reviews:9080",
		Path:                 "/reviews/0",
		ProtoMajor:           1,
		RequestID:            "id-0",
		UpstreamCluster:      "outbound|9080|v2|reviews.bookinfo.svc.cluster.local",
		UpstreamHost:         "127.0.0.7:9080",
	}
}

// samples parses exposition text into "name{labels}" → value, failing on a line that is not
// a comment or a sample.
func samples(t *testing.T, text string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		if strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			t.Fatalf("not a sample line: %q", line)
		}
		out[line[:i]] = line[i+1:]
	}
	return out
}

func text(t *testing.T, r *Recorder) string {
	t.Helper()
	var b bytes.Buffer
	if err := r.WriteText(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// requestLabels returns the label text of the only istio_requests_total series.
func requestLabels(t *testing.T, r *Recorder) string {
	t.Helper()
	var found []string
	for k := range samples(t, text(t, r)) {
		if rest, ok := strings.CutPrefix(k, RequestsTotal+"{"); ok {
			found = append(found, strings.TrimSuffix(rest, "}"))
		}
	}
	if len(found) != 1 {
		t.Fatalf("want one series, got %q", found)
	}
	return found[0]
}

func TestLabels(t *testing.T) {
	const identity = `source_workload="productpage-v1",source_workload_namespace="bookinfo",source_app="productpage",source_version="v1",` +
		`destination_service="reviews.bookinfo.svc.cluster.local",destination_workload="reviews-v2",destination_workload_namespace="bookinfo",destination_app="reviews",destination_version="v2"`
	tests := []struct {
		name   string
		change func(*Request)
		want   string
	}{{
		name:   "outbound HTTP success",
		change: func(*Request) {},
		want:   `reporter="source",` + identity + `,request_protocol="http",response_code="200",grpc_response_status="",response_flags="-",connection_security_policy="unknown"`,
	}, {
		name: "inbound",
		change: func(q *Request) {
			q.Reporter = ReporterDestination
		},
		want: `reporter="destination",` + identity + `,request_protocol="http",response_code="200",grpc_response_status="",response_flags="-",connection_security_policy="unknown"`,
	}, {
		name: "inbound over mutual TLS",
		change: func(q *Request) {
			q.Reporter, q.Security = ReporterDestination, SecurityMutualTLS
		},
		want: `reporter="destination",` + identity + `,request_protocol="http",response_code="200",grpc_response_status="",response_flags="-",connection_security_policy="mutual_tls"`,
	}, {
		name: "inbound in plaintext",
		change: func(q *Request) {
			q.Reporter, q.Security = ReporterDestination, SecurityNone
		},
		want: `reporter="destination",` + identity + `,request_protocol="http",response_code="200",grpc_response_status="",response_flags="-",connection_security_policy="none"`,
	}, {
		name: "unknown identities and reporter",
		change: func(q *Request) {
			*q = Request{ResponseCode: 404}
		},
		want: `reporter="unknown",source_workload="unknown",source_workload_namespace="unknown",source_app="unknown",source_version="unknown",` +
			`destination_service="unknown",destination_workload="unknown",destination_workload_namespace="unknown",destination_app="unknown",destination_version="unknown",` +
			`request_protocol="http",response_code="404",grpc_response_status="",response_flags="-",connection_security_policy="unknown"`,
	}, {
		name: "gRPC reports its status",
		change: func(q *Request) {
			q.Protocol, q.GRPCStatus = ProtocolGRPC, 14
		},
		want: `reporter="source",` + identity + `,request_protocol="grpc",response_code="200",grpc_response_status="14",response_flags="-",connection_security_policy="unknown"`,
	}, {
		name: "gRPC OK",
		change: func(q *Request) {
			q.Protocol = ProtocolGRPC
		},
		want: `reporter="source",` + identity + `,request_protocol="grpc",response_code="200",grpc_response_status="0",response_flags="-",connection_security_policy="unknown"`,
	}, {
		name: "a gRPC status on HTTP is not a label",
		change: func(q *Request) {
			q.GRPCStatus = 5
		},
		want: `reporter="source",` + identity + `,request_protocol="http",response_code="200",grpc_response_status="",response_flags="-",connection_security_policy="unknown"`,
	}, {
		name: "flags in Envoy's order",
		change: func(q *Request) {
			q.ResponseCode, q.Flags = 503, FlagUpstreamConnectionFailure|FlagNoHealthyUpstream
		},
		want: `reporter="source",` + identity + `,request_protocol="http",response_code="503",grpc_response_status="",response_flags="UH,UF",connection_security_policy="unknown"`,
	}, {
		name: "client went away",
		change: func(q *Request) {
			q.ResponseCode, q.Flags = 0, FlagDownstreamConnectionTermination
		},
		want: `reporter="source",` + identity + `,request_protocol="http",response_code="0",grpc_response_status="",response_flags="DC",connection_security_policy="unknown"`,
	}, {
		name: "a code out of range",
		change: func(q *Request) {
			q.ResponseCode = 1234
		},
		want: `reporter="source",` + identity + `,request_protocol="http",response_code="0",grpc_response_status="",response_flags="-",connection_security_policy="unknown"`,
	}, {
		name: "values are escaped",
		change: func(q *Request) {
			q.SourceWorkload = "a\"b\\c\nd"
			q.SourceApp = "caf\xe9" // Latin-1, not UTF-8
			q.SourceVersion = "✓"
		},
		want: `reporter="source",source_workload="a\"b\\c\nd",source_workload_namespace="bookinfo",source_app="caf` + "\uFFFD" + `",source_version="✓",` +
			`destination_service="reviews.bookinfo.svc.cluster.local",destination_workload="reviews-v2",destination_workload_namespace="bookinfo",destination_app="reviews",destination_version="v2"` +
			`,request_protocol="http",response_code="200",grpc_response_status="",response_flags="-",connection_security_policy="unknown"`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRecorder(Options{})
			q := outbound()
			tt.change(&q)
			r.Record(q)
			if got := requestLabels(t, r); got != tt.want {
				t.Errorf("labels\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestEmptyAndUnknownAreOneSeries(t *testing.T) {
	r := NewRecorder(Options{})
	q := outbound()
	r.Record(q)
	q.SourceVersion = "unknown"
	r.Record(q)
	q.SourceVersion = ""
	r.Record(q)
	if n := r.Stats().Series; n != 2 {
		t.Errorf("series = %d, want 2 (v1, and unknown whether empty or spelled out)", n)
	}
}

func TestFlagsString(t *testing.T) {
	tests := []struct {
		flags Flags
		want  string
	}{
		{0, "-"},
		{FlagNoRouteFound, "NR"},
		{FlagNoClusterFound, "NC"},
		{FlagDownstreamRemoteReset, "DR"},
		{FlagUnauthorized | FlagRateLimited, "RL,UAEX"},
		{FlagFaultInjected | FlagDelayInjected | FlagUpstreamRequestTimeout, "UT,DI,FI"},
		{1 << 31, "-"}, // no such flag
	}
	for _, tt := range tests {
		if got := tt.flags.String(); got != tt.want {
			t.Errorf("Flags(%#x).String() = %q, want %q", uint32(tt.flags), got, tt.want)
		}
	}
}

func TestBuckets(t *testing.T) {
	durations := []struct {
		d    time.Duration
		want string // the le of the bucket d falls in
	}{
		{0, "0.5"},
		{500 * time.Microsecond, "0.5"},
		{500*time.Microsecond + 1, "1"},
		{time.Millisecond, "1"},
		{7 * time.Millisecond, "10"},
		{30 * time.Second, "30000"},
		{time.Hour, "3.6e+06"},
		{time.Hour + 1, "+Inf"},
	}
	for _, tt := range durations {
		if got := durationLe[durationBucket(tt.d)]; got != tt.want {
			t.Errorf("duration %v in le=%q, want %q", tt.d, got, tt.want)
		}
	}
	sizes := []struct {
		n    int64
		want string
	}{
		{0, "1"}, {1, "1"}, {2, "10"}, {10, "10"}, {11, "100"}, {999_999, "1e+06"},
		{1_000_000_000, "1e+09"}, {1_000_000_001, "+Inf"},
	}
	for _, tt := range sizes {
		if got := sizeLe[sizeBucket(tt.n)]; got != tt.want {
			t.Errorf("size %d in le=%q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestHistogramsThroughExposition(t *testing.T) {
	r := NewRecorder(Options{})
	q := outbound()
	for _, d := range []time.Duration{300 * time.Microsecond, 7 * time.Millisecond, 7 * time.Millisecond, 2 * time.Hour, -time.Second} {
		q.Duration, q.RequestBytes, q.ResponseBytes = d, 150, -5
		r.Record(q)
	}
	got := samples(t, text(t, r))
	l := requestLabels(t, r)
	want := map[string]string{
		RequestsTotal + "{" + l + "}":                       "5",
		RequestDuration + "_bucket{" + l + `,le="0.5"}`:     "2", // 300µs and the negative one, as 0
		RequestDuration + "_bucket{" + l + `,le="5"}`:       "2",
		RequestDuration + "_bucket{" + l + `,le="10"}`:      "4",
		RequestDuration + "_bucket{" + l + `,le="3.6e+06"}`: "4",
		RequestDuration + "_bucket{" + l + `,le="+Inf"}`:    "5",
		RequestDuration + "_count{" + l + "}":               "5",
		RequestBytes + "_bucket{" + l + `,le="100"}`:        "0",
		RequestBytes + "_bucket{" + l + `,le="1000"}`:       "5",
		RequestBytes + "_sum{" + l + "}":                    "750",
		ResponseBytes + "_bucket{" + l + `,le="1"}`:         "5",
		ResponseBytes + "_sum{" + l + "}":                   "0",
		ResponseBytes + "_count{" + l + "}":                 "5",
		"sluice_telemetry_series":                           "1",
		"sluice_telemetry_dropped_label_sets_total":         "0",
	}
	// 0.3 + 7 + 7 + 7,200,000 ms, kept in nanoseconds
	want[RequestDuration+"_sum{"+l+"}"] = strconv.FormatFloat(7_200_014_300_000/1e6, 'g', -1, 64)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestCardinalityCap(t *testing.T) {
	r := NewRecorder(Options{MaxSeries: 3})
	withVersion := func(v string) Request {
		q := outbound()
		q.DestinationVersion = v
		return q
	}
	for _, v := range []string{"v1", "v2", "v3", "v4", "v5", "v4", "v1", "v6", "v6"} {
		r.Record(withVersion(v))
	}
	st := r.Stats()
	// Held: v1 v2 v3. Overflow: v4 v5 v4 v6 v6, three label sets.
	if st.Series != 3 || st.OverflowRequests != 5 || st.DroppedLabelSets != 3 {
		t.Errorf("stats = %+v, want 3 series, 5 requests in overflow, 3 label sets dropped", st)
	}
	got := samples(t, text(t, r))
	var otherLabels []string
	for _, name := range labelNames {
		otherLabels = append(otherLabels, name+`="other"`)
	}
	key := RequestsTotal + "{" + strings.Join(otherLabels, ",") + "}"
	if got[key] != strconv.FormatUint(st.OverflowRequests, 10) {
		t.Errorf("%s = %q, want %d", key, got[key], st.OverflowRequests)
	}
	// v1 was held before the cap: it keeps counting in its own series.
	q := withVersion("v1")
	r.Record(q)
	for k, v := range samples(t, text(t, r)) {
		if strings.HasPrefix(k, RequestsTotal+"{") && strings.Contains(k, `destination_version="v1"`) && v != "3" {
			t.Errorf("v1 series = %s, want 3", v)
		}
	}
}

func TestOverflowSeriesListedOnlyOnceUsed(t *testing.T) {
	r := NewRecorder(Options{MaxSeries: 1})
	r.Record(outbound())
	if strings.Contains(text(t, r), `reporter="other"`) {
		t.Error("the overflow series is listed before any request fell into it")
	}
}

// TestConcurrentRecord records from many goroutines at once, over more label sets than the
// cap, while the label sets are still new (so the locked path and the publishing run
// concurrently with lock-free lookups), and checks every total exactly.
func TestConcurrentRecord(t *testing.T) {
	const (
		goroutines = 8
		perG       = 3000
		labelSets  = 60
		maxSeries  = 40
	)
	r := NewRecorder(Options{MaxSeries: maxSeries, SuccessLogsPerSecond: -1, LogQueue: 8})
	req := func(g, i int) Request {
		q := outbound()
		q.DestinationWorkload = fmt.Sprintf("reviews-%d", (g*7+i)%labelSets)
		q.Duration = time.Duration((g*perG+i)%97) * 331 * time.Microsecond
		q.RequestBytes = int64(i % 1500)
		q.ResponseBytes = int64(g * 1000)
		return q
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			for i := range perG {
				r.Record(req(g, i))
			}
		})
	}
	// Scrape while recording: the race detector checks the readers too.
	wg.Go(func() {
		for range 20 {
			_ = r.WriteText(&bytes.Buffer{})
		}
	})
	wg.Wait()

	// The same requests counted one at a time, by hand.
	type totals struct{ n, durSum, reqSum, respSum uint64 }
	want := map[string]*totals{}
	var all totals
	for g := range goroutines {
		for i := range perG {
			q := req(g, i)
			tt := want[q.DestinationWorkload]
			if tt == nil {
				tt = &totals{}
				want[q.DestinationWorkload] = tt
			}
			for _, x := range []*totals{tt, &all} {
				x.n++
				x.durSum += uint64(q.Duration)
				x.reqSum += uint64(q.RequestBytes)
				x.respSum += uint64(q.ResponseBytes)
			}
		}
	}
	var sum totals
	held := 0
	for _, s := range r.snapshot() {
		got := totals{count(s.duration[:]), s.durSum.Load(), s.reqSum.Load(), s.respSum.Load()}
		sum.n += got.n
		sum.durSum += got.durSum
		sum.reqSum += got.reqSum
		sum.respSum += got.respSum
		if count(s.reqSize[:]) != got.n || count(s.respSize[:]) != got.n {
			t.Errorf("series %s: histogram counts disagree", s.text)
		}
		if s.overflow {
			continue
		}
		held++
		if w := want[s.key.dstWorkload]; got != *w {
			t.Errorf("%s: got %+v, want %+v", s.key.dstWorkload, got, *w)
		}
	}
	if sum != all {
		t.Errorf("all series together: got %+v, want %+v", sum, all)
	}
	if held != maxSeries {
		t.Errorf("held %d series, want the cap, %d", held, maxSeries)
	}
	if d := r.Stats().DroppedLabelSets; d != labelSets-maxSeries {
		t.Errorf("dropped label sets = %d, want %d", d, labelSets-maxSeries)
	}
}

func TestAccessLogSampling(t *testing.T) {
	r := NewRecorder(Options{SuccessLogsPerSecond: 3, LogQueue: 100})
	var want []string
	record := func(id string, logged bool, change func(*Request)) {
		q := outbound()
		q.RequestID = id
		change(&q)
		r.Record(q)
		if logged {
			want = append(want, id)
		}
	}
	none := func(*Request) {}
	// Second one: five successes, of which three are taken, and every kind of error.
	record("ok-0", true, none)
	record("ok-1", true, none)
	record("5xx", true, func(q *Request) { q.ResponseCode = 503 })
	record("ok-2", true, none)
	record("ok-3", false, none)
	record("flag", true, func(q *Request) { q.Flags = FlagFaultInjected })
	record("404", false, func(q *Request) { q.ResponseCode = 404 })
	record("grpc-unavailable", true, func(q *Request) { q.Protocol, q.GRPCStatus = ProtocolGRPC, 14 })
	record("grpc-unimplemented", true, func(q *Request) { q.Protocol, q.GRPCStatus = ProtocolGRPC, 12 })
	record("grpc-not-found", false, func(q *Request) { q.Protocol, q.GRPCStatus = ProtocolGRPC, 5 })
	// Second two: the count starts again. A request belongs to the second it ended in.
	record("late", true, func(q *Request) { q.Start, q.Duration = t0.Add(500*time.Millisecond), time.Second })
	next := func(q *Request) { q.Start = t0.Add(time.Second) }
	record("next-0", true, next)
	record("next-1", true, next)
	record("next-2", false, next)
	// A request that ended in a second already past counts against the current one.
	record("past", false, func(q *Request) { q.Start = t0.Add(-time.Hour) })

	batch := r.logs.drain()
	var got []string
	for _, q := range batch {
		got = append(got, q.RequestID)
	}
	r.logs.recycle(batch)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("logged\n got %v\nwant %v", got, want)
	}
}

func TestLogQueueDropsOldest(t *testing.T) {
	r := NewRecorder(Options{LogQueue: 4})
	errorReq := func(i int) Request {
		q := outbound()
		q.ResponseCode, q.RequestID = 500, strconv.Itoa(i)
		return q
	}
	ids := func() string {
		batch := r.logs.drain()
		var out []string
		for _, q := range batch {
			out = append(out, q.RequestID)
		}
		r.logs.recycle(batch)
		return strings.Join(out, " ")
	}
	for i := range 10 {
		r.Record(errorReq(i))
	}
	if st := r.Stats(); st.LogsQueued != 4 || st.LogsDropped != 6 {
		t.Errorf("stats = %+v, want 4 queued and 6 dropped", st)
	}
	if got := ids(); got != "6 7 8 9" {
		t.Errorf("drained %q, want the newest four, oldest first", got)
	}
	if got := ids(); got != "" {
		t.Errorf("drained %q from an empty queue", got)
	}
	for i := 10; i < 13; i++ {
		r.Record(errorReq(i))
	}
	if got := ids(); got != "10 11 12" {
		t.Errorf("drained %q after a refill", got)
	}
	// Both buffers were handed back cleared: nothing keeps the old requests alive.
	r.logs.mu.Lock()
	defer r.logs.mu.Unlock()
	for _, b := range [][]Request{r.logs.buf, r.logs.spare} {
		for _, q := range b[:cap(b)] {
			if q.RequestID != "" {
				t.Fatalf("a recycled buffer still holds request %q", q.RequestID)
			}
		}
	}
}
