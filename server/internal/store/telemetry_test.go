package store_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/server/internal/store"
	"github.com/sluicemesh/sluice/server/internal/telemetry"
)

func series(service, version, code string) telemetry.Series {
	return telemetry.Series{
		Reporter: telemetry.ReporterDestination, SourceWorkload: "productpage-v1", SourceNamespace: "default", SourceVersion: "v1",
		DestinationService: service, DestinationWorkload: "reviews-" + version, DestinationVersion: version,
		ResponseCode: code, GRPCStatus: "", ResponseFlags: "-", Protocol: "http",
	}
}

func stats(requests int64, buckets ...int64) telemetry.Stats {
	st := telemetry.Stats{Requests: requests, RequestBytes: 10 * requests, ResponseBytes: 100 * requests, DurationCount: requests, DurationSumMs: float64(requests) * 7}
	copy(st.Duration[:], buckets)
	return st
}

func readAll(t *testing.T, st *store.Store, res telemetry.Resolution, q telemetry.HistoryQuery) map[telemetry.Series]telemetry.Row {
	t.Helper()
	rows, err := st.ReadRollups(context.Background(), res, q)
	if err != nil {
		t.Fatal(err)
	}
	out := map[telemetry.Series]telemetry.Row{}
	for _, r := range rows {
		if _, dup := out[r.Series]; dup {
			t.Fatalf("series %+v twice in %v", r.Series, rows)
		}
		out[r.Series] = r
	}
	return out
}

// TestRollupsMerge writes the same bucket twice, as a server does across a restart, and reads
// it back as one row holding both parts.
func TestRollupsMerge(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	v1 := series("reviews.default.svc.cluster.local", "v1", "200")
	v2 := series("reviews.default.svc.cluster.local", "v2", "503")

	for _, res := range []telemetry.Resolution{telemetry.Res10s, telemetry.Res1m} {
		if err := st.WriteRollups(ctx, res, []telemetry.Row{
			{Bucket: t0, Series: v1, Stats: stats(3, 1, 2)},
			{Bucket: t0, Series: v2, Stats: stats(1, 0, 0, 1)},
		}); err != nil {
			t.Fatal(err)
		}
		// The second part of the same bucket, with a longer bucket array (bounds added later
		// must not break the merge).
		second := stats(2, 1, 0, 0, 0, 1)
		second.Errors = 2
		second.MTLSRequests = 2
		if err := st.WriteRollups(ctx, res, []telemetry.Row{{Bucket: t0, Series: v1, Stats: second}}); err != nil {
			t.Fatal(err)
		}
		got := readAll(t, st, res, telemetry.HistoryQuery{From: t0, To: t0.Add(time.Hour)})
		want := stats(5, 2, 2, 0, 0, 1)
		want.Errors = 2
		want.MTLSRequests = 2
		if r := got[v1]; r.Stats != want || !r.Bucket.Equal(t0) {
			t.Errorf("%s merged row %+v at %s, want %+v at %s", res, r.Stats, r.Bucket, want, t0)
		}
		if r := got[v2]; r.Stats != stats(1, 0, 0, 1) {
			t.Errorf("%s untouched row %+v", res, r.Stats)
		}
	}
}

func TestReadRollupsStepsAndFilters(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	reviews := series("reviews.default.svc.cluster.local", "v1", "200")
	reviewsV2 := series("reviews.default.svc.cluster.local", "v2", "200")
	other := series("reviews_x.default.svc.cluster.local", "v1", "200") // "_" must not match as a LIKE wildcard
	unknownCaller := reviews
	unknownCaller.SourceWorkload, unknownCaller.SourceNamespace, unknownCaller.SourceVersion = telemetry.Unknown, telemetry.Unknown, telemetry.Unknown
	var rows []telemetry.Row
	for i := range 6 { // one minute of 10-second buckets
		at := t0.Add(time.Duration(i) * 10 * time.Second)
		rows = append(rows,
			telemetry.Row{Bucket: at, Series: reviews, Stats: stats(int64(i + 1))},
			telemetry.Row{Bucket: at, Series: reviewsV2, Stats: stats(10)},
			telemetry.Row{Bucket: at, Series: other, Stats: stats(100)},
			telemetry.Row{Bucket: at, Series: unknownCaller, Stats: stats(1000)})
	}
	if err := st.WriteRollups(ctx, telemetry.Res10s, rows); err != nil {
		t.Fatal(err)
	}

	// Steps of 30 s: two per series.
	got, err := st.ReadRollups(ctx, telemetry.Res10s, telemetry.HistoryQuery{From: t0, To: t0.Add(time.Minute), Step: 30 * time.Second, Service: "reviews", Version: "v1", SourceWorkload: "productpage-v1"})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("got %d rows, want 2: %+v", len(got), got)
	}
	sums := map[time.Time]int64{}
	for _, r := range got {
		if r.Series != reviews {
			t.Errorf("series %+v selected", r.Series)
		}
		sums[r.Bucket] += r.Stats.Requests
	}
	if sums[t0] != 1+2+3 || sums[t0.Add(30*time.Second)] != 4+5+6 {
		t.Errorf("step sums %v, want 6 at %s and 15 30 s later", sums, t0)
	}

	tests := []struct {
		name string
		q    telemetry.HistoryQuery
		want map[telemetry.Series]int64
	}{
		{"everything", telemetry.HistoryQuery{}, map[telemetry.Series]int64{reviews: 21, reviewsV2: 60, other: 600, unknownCaller: 6000}},
		{"short service name", telemetry.HistoryQuery{Service: "reviews"}, map[telemetry.Series]int64{reviews: 21, reviewsV2: 60, unknownCaller: 6000}},
		{"service and namespace", telemetry.HistoryQuery{Service: "reviews.default"}, map[telemetry.Series]int64{reviews: 21, reviewsV2: 60, unknownCaller: 6000}},
		{"host", telemetry.HistoryQuery{Service: "reviews_x.default.svc.cluster.local"}, map[telemetry.Series]int64{other: 600}},
		{"no such service", telemetry.HistoryQuery{Service: "review"}, map[telemetry.Series]int64{}},
		{"version", telemetry.HistoryQuery{Version: "v2"}, map[telemetry.Series]int64{reviewsV2: 60}},
		{"unknown caller", telemetry.HistoryQuery{SourceWorkload: telemetry.Unknown}, map[telemetry.Series]int64{unknownCaller: 6000}},
		{"caller namespace", telemetry.HistoryQuery{SourceNamespace: "default", Service: "reviews", Version: "v1"}, map[telemetry.Series]int64{reviews: 21}},
		{"before the range", telemetry.HistoryQuery{From: t0.Add(-time.Hour), To: t0}, map[telemetry.Series]int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q := tt.q
			if q.From.IsZero() {
				q.From, q.To = t0, t0.Add(time.Hour)
			}
			got := readAll(t, st, telemetry.Res10s, q)
			if len(got) != len(tt.want) {
				t.Errorf("got %d series, want %d: %v", len(got), len(tt.want), got)
			}
			for s, n := range tt.want {
				if r := got[s]; r.Stats.Requests != n || !r.Bucket.Equal(q.From) {
					t.Errorf("%s: %d requests at %s, want %d at %s", s.DestinationService, r.Stats.Requests, r.Bucket, n, q.From)
				}
			}
		})
	}

	if _, err := st.ReadRollups(ctx, telemetry.Res10s, telemetry.HistoryQuery{From: t0, To: t0.Add(time.Hour), Limit: 3}); !errors.Is(err, telemetry.ErrTooManyRows) {
		t.Errorf("4 series with a limit of 3: %v, want ErrTooManyRows", err)
	}
}

func TestDeleteRollupsBefore(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := series("reviews.default.svc.cluster.local", "v1", "200")
	for _, res := range []telemetry.Resolution{telemetry.Res10s, telemetry.Res1m} {
		w := res.Duration()
		if err := st.WriteRollups(ctx, res, []telemetry.Row{
			{Bucket: t0, Series: s, Stats: stats(1)},
			{Bucket: t0.Add(w), Series: s, Stats: stats(2)},
			{Bucket: t0.Add(2 * w), Series: s, Stats: stats(4)},
		}); err != nil {
			t.Fatal(err)
		}
		n, err := st.DeleteRollupsBefore(ctx, res, t0.Add(2*w))
		if err != nil || n != 2 {
			t.Fatalf("%s: deleted %d (%v), want 2", res, n, err)
		}
		got := readAll(t, st, res, telemetry.HistoryQuery{From: t0, To: t0.Add(time.Hour)})
		if got[s].Stats.Requests != 4 {
			t.Errorf("%s: %d requests left, want the newest bucket's 4", res, got[s].Stats.Requests)
		}
	}
}
