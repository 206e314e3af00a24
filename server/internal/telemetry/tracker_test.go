package telemetry

import (
	"math"
	"sync"
	"testing"
	"time"
)

var (
	okSeries   = Series{Reporter: ReporterDestination, SourceWorkload: "productpage-v1", SourceNamespace: "default", SourceVersion: "v1", DestinationService: "reviews.default.svc.cluster.local", DestinationWorkload: "reviews-v1", DestinationVersion: "v1", ResponseCode: "200", ResponseFlags: "-", Protocol: "http"}
	failSeries = func() Series { s := okSeries; s.ResponseCode = "503"; return s }()
)

// requests is a cumulative istio_requests_total value.
func requests(s Series, n float64) Cumulative {
	return Cumulative{Series: s, Requests: Value{Present: true, Count: n}}
}

// requestsCreated is requests with a created timestamp.
func requestsCreated(s Series, n float64, created int64) Cumulative {
	return Cumulative{Series: s, Requests: Value{Present: true, Count: n, Created: created}}
}

// durations is a cumulative duration histogram with the given cumulative counts per bound
// (Istio's bounds, in order; the rest equal the last given), count the total.
func durations(s Series, sum float64, cumulative ...float64) Cumulative {
	c := Cumulative{Series: s, Duration: Value{Present: true, Sum: sum}}
	last := 0.0
	for i := range c.Buckets {
		if i < len(cumulative) {
			last = cumulative[i]
		}
		c.Buckets[i] = last
	}
	c.Duration.Count = last
	return c
}

func observe(tr *Tracker, node string, report ...Cumulative) ([]Sample, int) {
	return tr.Observe(node, report, nil)
}

func sampleOf(samples []Sample, s Series) Stats {
	for _, x := range samples {
		if x.Series == s {
			return x.Stats
		}
	}
	return Stats{}
}

// TestTrackerDeltas follows one proxy's reports: a baseline, growth, a series born later, a
// counter reset, and a restart told by the created timestamp.
func TestTrackerDeltas(t *testing.T) {
	tr := NewTracker(TrackerOptions{})
	type step struct {
		name   string
		report []Cumulative
		ok     int64 // requests of okSeries
		fail   int64 // requests (and errors) of failSeries
	}
	steps := []step{
		{"first report is a baseline", []Cumulative{requests(okSeries, 1000)}, 0, 0},
		{"growth", []Cumulative{requests(okSeries, 1010)}, 10, 0},
		{"no change", []Cumulative{requests(okSeries, 1010)}, 0, 0},
		{"a series born since the last report counts in full", []Cumulative{requests(okSeries, 1015), requests(failSeries, 3)}, 5, 3},
		{"a counter that went down restarted: its value is the delta", []Cumulative{requests(okSeries, 4), requests(failSeries, 1)}, 4, 1},
		{"and it grows from there", []Cumulative{requests(okSeries, 9), requests(failSeries, 1)}, 5, 0},
		{"a created timestamp appearing is not a restart", []Cumulative{
			requestsCreated(okSeries, 20, 2), requests(failSeries, 1)}, 11, 0},
		{"same created timestamp: growth", []Cumulative{
			requestsCreated(okSeries, 26, 2), requests(failSeries, 1)}, 6, 0},
		{"a changed created timestamp is a restart, though the value grew", []Cumulative{
			requestsCreated(okSeries, 30, 3), requests(failSeries, 1)}, 30, 0},
	}
	for _, st := range steps {
		samples, dropped := tr.Observe("sidecar~a", st.report, nil)
		if dropped != 0 {
			t.Fatalf("%s: %d dropped", st.name, dropped)
		}
		ok, fail := sampleOf(samples, okSeries), sampleOf(samples, failSeries)
		if ok.Requests != st.ok || ok.Errors != 0 || fail.Requests != st.fail || fail.Errors != st.fail {
			t.Errorf("%s: ok %d/%d errors, fail %d/%d errors; want ok %d, fail %d (all errors)", st.name, ok.Requests, ok.Errors, fail.Requests, fail.Errors, st.ok, st.fail)
		}
		for _, s := range samples {
			if s.Stats.IsZero() {
				t.Errorf("%s: empty sample for %+v", st.name, s.Series)
			}
		}
	}
}

func TestTrackerHistogram(t *testing.T) {
	tr := NewTracker(TrackerOptions{})
	// Bounds 0.5, 1, 5, 10, 25, …: cumulative counts.
	observe(tr, "n", durations(okSeries, 100, 0, 0, 1, 2, 2))
	samples, _ := observe(tr, "n", durations(okSeries, 160, 0, 0, 3, 7, 9))
	got := sampleOf(samples, okSeries)
	var want [DurationBuckets]int64
	want[2], want[3], want[4] = 2, 3, 2 // (1,5]: 3-1, (5,10]: (7-2)-2, (10,25]: (9-2)-(7-2)
	if got.Duration != want || got.DurationCount != 7 || got.DurationSumMs != 60 {
		t.Errorf("delta %+v, want buckets %v count 7 sum 60", got, want)
	}

	// A restart: counts went down. The new histogram is the delta, whole.
	samples, _ = observe(tr, "n", durations(okSeries, 4, 0, 1, 1))
	got = sampleOf(samples, okSeries)
	want = [DurationBuckets]int64{1: 1}
	if got.Duration != want || got.DurationCount != 1 || got.DurationSumMs != 4 {
		t.Errorf("after a reset %+v, want buckets %v count 1 sum 4", got, want)
	}

	// Bytes keep their sums.
	bytes := func(req, resp float64) Cumulative {
		return Cumulative{Series: okSeries, RequestBytes: Value{Present: true, Count: 1, Sum: req}, ResponseBytes: Value{Present: true, Count: 1, Sum: resp}}
	}
	observe(tr, "b", bytes(10, 100))
	samples, _ = observe(tr, "b", bytes(50, 700))
	if got := sampleOf(samples, okSeries); got.RequestBytes != 40 || got.ResponseBytes != 600 || got.Requests != 0 {
		t.Errorf("bytes %+v, want 40 and 600", got)
	}
}

func TestTrackerNodesAreSeparateAndExpire(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	tr := NewTracker(TrackerOptions{IdleTTL: time.Minute, Now: clock})

	observe(tr, "a", requests(okSeries, 10))
	observe(tr, "b", requests(okSeries, 500))
	if s, _ := observe(tr, "a", requests(okSeries, 12)); sampleOf(s, okSeries).Requests != 2 {
		t.Errorf("a: %+v, want 2 requests", s)
	}
	// b's values are b's: 600 after 500 is 100, not 588.
	if s, _ := observe(tr, "b", requests(okSeries, 600)); sampleOf(s, okSeries).Requests != 100 {
		t.Errorf("b: %+v, want 100 requests", s)
	}

	// a keeps reporting; b goes quiet past the TTL and is forgotten: its next report is a
	// baseline, as after a server restart.
	for range 3 {
		mu.Lock()
		now = now.Add(30 * time.Second)
		mu.Unlock()
		observe(tr, "a", requests(okSeries, 12))
	}
	if n := tr.Nodes(); n != 1 {
		t.Errorf("%d nodes remembered, want 1", n)
	}
	if s, _ := observe(tr, "b", requests(okSeries, 700)); len(s) != 0 {
		t.Errorf("b after its TTL: %+v, want a baseline", s)
	}
}

func TestTrackerMaxSeries(t *testing.T) {
	tr := NewTracker(TrackerOptions{MaxSeriesPerNode: 2})
	s3 := okSeries
	s3.ResponseCode = "404"
	_, dropped := observe(tr, "n", requests(okSeries, 1), requests(failSeries, 1), requests(s3, 1))
	if dropped != 1 {
		t.Errorf("dropped %d, want 1", dropped)
	}
	samples, dropped := observe(tr, "n", requests(okSeries, 2), requests(failSeries, 2), requests(s3, 2))
	if dropped != 1 || len(samples) != 2 {
		t.Errorf("dropped %d, %d samples; want 1 and 2", dropped, len(samples))
	}
}

func TestRebin(t *testing.T) {
	tests := []struct {
		name           string
		bounds, counts []float64
		count          float64
		want           map[int]float64 // index → cumulative; others follow the previous
	}{
		{"Istio's bounds are kept", DurationBounds[:], cumulativeRamp(len(DurationBounds)), 25, nil},
		{"other bounds count in the next bound up", []float64{2, 7, 20}, []float64{1, 3, 6}, 8,
			map[int]float64{0: 0, 1: 0, 2: 1, 3: 3, 4: 6, len(DurationBounds): 8}},
		{"an explicit +Inf bucket", []float64{10, inf()}, []float64{4, 9}, 0, map[int]float64{3: 4, len(DurationBounds): 9}},
		{"bounds in seconds converted to ms", []float64{100.00000000001}, []float64{5}, 5, map[int]float64{6: 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Rebin(tt.bounds, tt.counts, tt.count)
			if tt.want == nil {
				for i := range DurationBounds {
					if got[i] != tt.counts[i] {
						t.Fatalf("bucket %d: %v, want %v", i, got[i], tt.counts[i])
					}
				}
				return
			}
			cur := 0.0
			for i := range got {
				if w, ok := tt.want[i]; ok {
					cur = w
				}
				if got[i] != cur {
					t.Errorf("bucket %d: %v, want %v (all %v)", i, got[i], cur, got)
				}
			}
		})
	}
}

func cumulativeRamp(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(i + 1)
	}
	return out
}

func inf() float64 { return math.Inf(1) }

// TestTrackerBaselineSpansASplitReport sends a proxy's first report in three messages, as a
// proxy with many series does: all three are the baseline, and the next report counts.
func TestTrackerBaselineSpansASplitReport(t *testing.T) {
	s := func(code string) Series { x := okSeries; x.ResponseCode = code; return x }
	a, b, c := s("200"), s("404"), s("503")

	t.Run("split first report", func(t *testing.T) {
		tr := NewTracker(TrackerOptions{})
		for _, part := range [][]Cumulative{{requests(a, 100)}, {requests(b, 200)}, {requests(c, 300)}} {
			if got, _ := tr.Observe("n", part, nil); len(got) != 0 {
				t.Errorf("part of the first report counted: %+v", got)
			}
		}
		// The next report repeats a series: the baseline is over, and a new series in it
		// counts in full.
		d := s("500")
		got, _ := observe(tr, "n", requests(a, 101), requests(d, 4))
		if sampleOf(got, a).Requests != 1 || sampleOf(got, d).Requests != 4 {
			t.Errorf("second report: %+v, want 1 and 4", got)
		}
		got, _ = observe(tr, "n", requests(b, 210), requests(c, 300))
		if sampleOf(got, b).Requests != 10 || len(got) != 1 {
			t.Errorf("second report's second part: %+v, want 10 of b", got)
		}
	})

	t.Run("empty first report", func(t *testing.T) {
		// A proxy that had counted nothing yet: what it reports next is all traffic.
		tr := NewTracker(TrackerOptions{})
		observe(tr, "n")
		if got, _ := observe(tr, "n", requests(a, 7)); sampleOf(got, a).Requests != 7 {
			t.Errorf("after an empty first report: %+v, want 7", got)
		}
	})

	t.Run("half a second ends it", func(t *testing.T) {
		now := time.Unix(1_000_000, 0)
		tr := NewTracker(TrackerOptions{Now: func() time.Time { return now }})
		observe(tr, "n", requests(a, 100))
		now = now.Add(time.Second)
		if got, _ := observe(tr, "n", requests(b, 5)); sampleOf(got, b).Requests != 5 {
			t.Errorf("a series born a second after the baseline: %+v, want 5", got)
		}
	})
}

// TestTrackerMTLSRequests follows the mutual TLS part of a series' requests through growth
// and a restart.
func TestTrackerMTLSRequests(t *testing.T) {
	tr := NewTracker(TrackerOptions{})
	report := func(total, mtls float64) Cumulative {
		c := requests(okSeries, total)
		c.MTLSRequests = Value{Present: true, Count: mtls}
		return c
	}
	for _, st := range []struct {
		name        string
		total, mtls float64
		want        Stats
	}{
		{"baseline", 100, 40, Stats{}},
		{"growth, part over mutual TLS", 110, 45, Stats{Requests: 10, MTLSRequests: 5}},
		{"growth, all over mutual TLS", 120, 55, Stats{Requests: 10, MTLSRequests: 10}},
		{"a restart counts both from zero", 6, 6, Stats{Requests: 6, MTLSRequests: 6}},
		// The requests counter went down but the mutual TLS one did not: that is a restart
		// too, so the mutual TLS part counts from zero.
		{"a restart the mTLS count alone cannot tell", 5, 5, Stats{Requests: 5, MTLSRequests: 5}},
		{"no mutual TLS", 9, 5, Stats{Requests: 4}},
	} {
		samples, _ := observe(tr, "sidecar~m", report(st.total, st.mtls))
		if got := sampleOf(samples, okSeries); got != st.want {
			t.Errorf("%s: %+v, want %+v", st.name, got, st.want)
		}
	}
}
