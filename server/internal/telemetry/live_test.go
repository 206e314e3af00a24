package telemetry

import (
	"context"
	"testing"
	"time"
)

// discardStore is a Store that keeps nothing: for tests of the memory alone.
type discardStore struct{}

func (discardStore) WriteRollups(context.Context, Resolution, []Row) error { return nil }
func (discardStore) ReadRollups(context.Context, Resolution, HistoryQuery) ([]Row, error) {
	return nil, nil
}
func (discardStore) DeleteRollupsBefore(context.Context, Resolution, time.Time) (int64, error) {
	return 0, nil
}

var _ Store = discardStore{}

// TestLiveMemoryForgetsOldSeries records a series, lets the live span and more pass, and
// checks that its id is freed and reused without its traffic showing up again.
func TestLiveMemoryForgetsOldSeries(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	a, err := New(Options{Store: discardStore{}, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	series := func(code string) Series { s := okSeries; s.ResponseCode = code; return s }
	record := func(s Series, n int64) {
		a.Record(Origin{NodeID: "n"}, []Sample{{Series: s, Stats: Stats{Requests: n}}})
	}
	record(series("200"), 1000)
	now = now.Add(11 * time.Minute)
	record(series("404"), 5) // sweeps: 200 is freed
	record(series("503"), 7) // and its id is reused
	if n := a.ids.size(); n != 2 {
		t.Errorf("%d series interned, want 2", n)
	}
	for _, window := range []time.Duration{time.Minute, 5 * time.Minute} {
		g, err := a.Graph(context.Background(), window)
		if err != nil {
			t.Fatal(err)
		}
		var codes map[string]int64
		for _, e := range g.Edges {
			if e.Target == "service:"+reviews {
				codes = e.Codes
			}
		}
		if len(codes) != 2 || codes["404"] != 5 || codes["503"] != 7 {
			t.Errorf("window %s: codes %v, want only 404: 5 and 503: 7", window, codes)
		}
	}
}
