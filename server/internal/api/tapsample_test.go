package api

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/server/internal/telemetry"
)

// seededSampler is a tapSampler whose choices repeat from run to run.
func seededSampler(perSecond, burst int) *tapSampler {
	s := newTapSampler(perSecond, burst)
	s.rng = rand.New(rand.NewPCG(1, 2))
	return s
}

// burst offers n entries stamped evenly over the second before at, as one sidecar push.
func burst(s *tapSampler, at time.Time, n int) {
	for i := range n {
		s.offer(telemetry.AccessEntry{Time: at.Add(-time.Second + time.Duration(i)*time.Second/time.Duration(n)), RequestBytes: int64(i)})
	}
}

// TestTapSamplerSpreadsOverABurst checks that a push of 1,000 entries yields 100 of them from
// across its whole second, in time order, and 900 counted as dropped; that the bucket then
// holds the next flush to nothing until it refills; and that traffic under the cap passes
// whole.
func TestTapSamplerSpreadsOverABurst(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := seededSampler(100, 100)
	burst(s, t0, 1000)
	batch, dropped := s.flush(t0)
	if len(batch) != 100 || dropped != 900 {
		t.Fatalf("sent %d, dropped %d; want 100 and 900", len(batch), dropped)
	}
	if !slices.IsSortedFunc(batch, func(a, b telemetry.AccessEntry) int { return a.Time.Compare(b.Time) }) {
		t.Error("the batch is not in time order")
	}
	// The first 100 of the push would all be in its first tenth; a fair sample has about
	// half of its entries in each half of the push.
	var late int
	for _, e := range batch {
		if e.RequestBytes >= 500 {
			late++
		}
	}
	if late < 30 || late > 70 {
		t.Errorf("%d of 100 entries from the push's second half, want about 50", late)
	}
	if batch[0].RequestBytes > 100 || batch[99].RequestBytes < 900 {
		t.Errorf("the sample spans entries %d to %d of 1000, want the whole push", batch[0].RequestBytes, batch[99].RequestBytes)
	}

	// The bucket is empty: the next push, a quarter second later, is all dropped.
	burst(s, t0.Add(250*time.Millisecond), 1000)
	if batch, dropped := s.flush(t0.Add(250 * time.Millisecond)); len(batch) != 25 || dropped != 975 {
		t.Errorf("a quarter second later: sent %d, dropped %d; want 25 (the refill) and 975", len(batch), dropped)
	}
	if batch, dropped := s.flush(t0.Add(2 * time.Second)); batch != nil || dropped != 0 {
		t.Errorf("nothing offered: sent %d, dropped %d", len(batch), dropped)
	}

	// A second later the bucket is full again; 40 entries are under the cap and all go.
	burst(s, t0.Add(3*time.Second), 40)
	batch, dropped = s.flush(t0.Add(3 * time.Second))
	if len(batch) != 40 || dropped != 0 {
		t.Fatalf("under the cap: sent %d, dropped %d; want 40 and 0", len(batch), dropped)
	}
	for i, e := range batch {
		if e.RequestBytes != int64(i) {
			t.Fatalf("under the cap, entry %d is offered entry %d: want every entry, in order", i, e.RequestBytes)
		}
	}
}

// TestTapSamplerKeepsTheRate feeds 400 entries a second for ten seconds, flushed every
// 250 ms, and checks that about 100 a second are sent and every other one counted.
func TestTapSamplerKeepsTheRate(t *testing.T) {
	t0 := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	s := seededSampler(100, 100)
	var sent, dropped int
	for tick := 1; tick <= 40; tick++ {
		now := t0.Add(time.Duration(tick) * 250 * time.Millisecond)
		for i := range 100 {
			s.offer(telemetry.AccessEntry{Time: now.Add(-250*time.Millisecond + time.Duration(i)*2500*time.Microsecond)})
		}
		b, d := s.flush(now)
		if len(b) > 100 {
			t.Fatalf("one message of %d entries, over the burst of 100", len(b))
		}
		sent, dropped = sent+len(b), dropped+d
	}
	// The bucket starts full (100) and refills 100 a second for ten seconds.
	if sent < 1000 || sent > 1100 || sent+dropped != 4000 {
		t.Errorf("sent %d and dropped %d of 4000 over 10 s, want 1000 to 1100 sent and the rest dropped", sent, dropped)
	}
}
