package telemetry

import (
	"math"
	"strconv"
	"testing"
)

// bucketsAt returns duration buckets with count requests in the bucket whose upper bound is
// upper (math.Inf(1) for the last), for each pair.
func bucketsAt(pairs ...float64) *[DurationBuckets]int64 {
	var b [DurationBuckets]int64
	for i := 0; i < len(pairs); i += 2 {
		b[bucketIndex(pairs[i])] += int64(pairs[i+1])
	}
	return &b
}

// bucketIndex returns the index of the bucket whose upper bound is upper.
func bucketIndex(upper float64) int {
	for i, b := range DurationBounds {
		if b == upper {
			return i
		}
	}
	if math.IsInf(upper, 1) {
		return len(DurationBounds)
	}
	panic("no bucket with upper bound " + strconv.FormatFloat(upper, 'g', -1, 64))
}

func TestQuantile(t *testing.T) {
	tests := []struct {
		name    string
		q       float64
		buckets *[DurationBuckets]int64
		want    float64
		ok      bool
	}{
		{"no requests", 0.5, bucketsAt(), 0, false},
		{"q zero", 0, bucketsAt(10, 4), 0, false},
		{"q above one", 1.5, bucketsAt(10, 4), 0, false},
		{"first bucket starts at zero", 0.5, bucketsAt(0.5, 10), 0.25, true},
		{"middle of one bucket", 0.5, bucketsAt(10, 4), 7.5, true},          // (5,10]: 5 + 5·2/4
		{"quarter of one bucket", 0.25, bucketsAt(100, 100), 62.5, true},    // (50,100]: 50 + 50·25/100
		{"all of one bucket", 1, bucketsAt(100, 100), 100, true},            // its upper bound
		{"across buckets", 0.9, bucketsAt(10, 50, 25, 50), 22, true},        // rank 90: 40 of 50 into (10,25]
		{"exactly at a boundary", 0.5, bucketsAt(10, 50, 25, 50), 10, true}, // rank 50 ends the first
		{"skips empty buckets", 0.5, bucketsAt(1, 5, 250, 5), 1, true},
		{"+Inf bucket reports the highest bound", 0.99, bucketsAt(10, 1, math.Inf(1), 99), 3600000, true},
		{"p99 of a known mix", 0.99, bucketsAt(25, 500, 250, 70, 1000, 30), 900, true}, // rank 594: 24 of 30 into (500,1000]
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Quantile(tt.q, tt.buckets)
			if ok != tt.ok || math.Abs(got-tt.want) > 1e-9 {
				t.Errorf("Quantile(%v) = %v, %v; want %v, %v", tt.q, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	st := Stats{Requests: 600, Errors: 70, RequestBytes: 1, ResponseBytes: 2}
	st.Duration = *bucketsAt(25, 500, 250, 70, 1000, 30)
	s := Summarize(&st, 60)
	if s.Requests != 600 || s.Errors != 70 || s.RPS != 10 || s.RequestBytes != 1 || s.ResponseBytes != 2 {
		t.Errorf("counts %+v", s)
	}
	if s.SuccessRate == nil || math.Abs(*s.SuccessRate-530.0/600) > 1e-12 {
		t.Errorf("success rate %v, want %v", deref(s.SuccessRate), 530.0/600)
	}
	// p50: rank 300 of 500 in (10,25] → 10 + 15·300/500 = 19; p95: rank 570 is the last of
	// the 70 in (100,250] → 250; p99: 900 (see TestQuantile).
	for name, c := range map[string]struct {
		got  *float64
		want float64
	}{"p50": {s.P50, 19}, "p95": {s.P95, 250}, "p99": {s.P99, 900}} {
		if c.got == nil || math.Abs(*c.got-c.want) > 1e-9 {
			t.Errorf("%s = %v, want %v", name, deref(c.got), c.want)
		}
	}

	empty := Summarize(&Stats{}, 60)
	if empty.SuccessRate != nil || empty.P50 != nil || empty.P95 != nil || empty.P99 != nil || empty.RPS != 0 {
		t.Errorf("no traffic: %+v, want null rates", empty)
	}
	// A rate over no time is not infinite.
	if z := Summarize(&st, 0); z.RPS != 0 {
		t.Errorf("zero seconds: rps %v", z.RPS)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

func TestIsErrorAndNotForwarded(t *testing.T) {
	for _, tt := range []struct {
		s    Series
		want bool
	}{
		{Series{ResponseCode: "200", Protocol: "http"}, false},
		{Series{ResponseCode: "404", Protocol: "http"}, false},
		{Series{ResponseCode: "503", Protocol: "http"}, true},
		{Series{ResponseCode: "599", Protocol: "http"}, true},
		{Series{ResponseCode: "0", Protocol: "http"}, false},
		{Series{ResponseCode: "200", Protocol: "grpc", GRPCStatus: "0"}, false},
		{Series{ResponseCode: "200", Protocol: "grpc", GRPCStatus: "5"}, false},  // NOT_FOUND
		{Series{ResponseCode: "200", Protocol: "grpc", GRPCStatus: "14"}, true},  // UNAVAILABLE
		{Series{ResponseCode: "200", Protocol: "http", GRPCStatus: "14"}, false}, // not gRPC
	} {
		if got := IsError(tt.s); got != tt.want {
			t.Errorf("IsError(code %s, %s, status %q) = %v", tt.s.ResponseCode, tt.s.Protocol, tt.s.GRPCStatus, got)
		}
	}
	for flags, want := range map[string]bool{"": false, "-": false, "DI": false, "URX": false, "FI": true, "UF,URX": true, "DC,UH": true} {
		if got := NotForwarded(flags); got != want {
			t.Errorf("NotForwarded(%q) = %v", flags, got)
		}
	}
}

func TestSplitService(t *testing.T) {
	for host, want := range map[string][2]string{
		"reviews.default.svc.cluster.local": {"reviews", "default"},
		"reviews.default.svc":               {"reviews", "default"},
		"api.example.com":                   {"api.example.com", ""},
		"unknown":                           {"unknown", ""},
	} {
		if n, ns := SplitService(host); n != want[0] || ns != want[1] {
			t.Errorf("SplitService(%q) = %q, %q", host, n, ns)
		}
	}
}
