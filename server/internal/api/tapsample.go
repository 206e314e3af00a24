package api

import (
	"math/rand/v2"
	"slices"
	"time"

	"golang.org/x/time/rate"

	"github.com/sluicemesh/sluice/server/internal/telemetry"
)

// tapSampler keeps a tap subscription to its rate cap with a fair sample of the traffic.
//
// Sidecars push their access logs once a second, so a busy service's entries arrive in
// bursts of a second's requests. Keeping the first entries of each burst up to the cap
// would show only the oldest requests of every push, and the tap would look a push interval
// behind however fresh the rest was. Instead each batching period keeps a uniform sample of
// what arrived in it (a reservoir of at most burst entries), and each flush sends as many
// of those as a token bucket of perSecond a second, burst at most, allows, chosen
// uniformly and then put back in time order. The rest are counted as dropped.
type tapSampler struct {
	lim  *rate.Limiter
	rng  *rand.Rand
	kept []telemetry.AccessEntry // the reservoir, of at most lim.Burst(): a uniform sample of the seen entries
	seen int                     // entries offered since the last flush
}

func newTapSampler(perSecond, burst int) *tapSampler {
	return &tapSampler{
		lim: rate.NewLimiter(rate.Limit(perSecond), burst),
		rng: rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64())),
	}
}

// offer considers one entry for the next flush.
func (s *tapSampler) offer(e telemetry.AccessEntry) {
	s.seen++
	size := s.lim.Burst()
	if len(s.kept) < size {
		s.kept = append(s.kept, e)
		return
	}
	// Algorithm R: the seen-th entry replaces a kept one with probability size/seen.
	if j := s.rng.IntN(s.seen); j < size {
		s.kept[j] = e
	}
}

// flush returns the entries to send now, in time order, and how many of those offered
// since the last flush are left out. Both are zero when nothing was offered.
func (s *tapSampler) flush(now time.Time) (batch []telemetry.AccessEntry, dropped int) {
	if s.seen == 0 {
		return nil, 0
	}
	n := min(len(s.kept), int(s.lim.TokensAt(now)))
	if n > 0 && s.lim.AllowN(now, n) {
		// A uniform subset of a uniform sample is a uniform sample.
		for i := range n {
			j := i + s.rng.IntN(len(s.kept)-i)
			s.kept[i], s.kept[j] = s.kept[j], s.kept[i]
		}
		batch = slices.Clone(s.kept[:n])
		slices.SortStableFunc(batch, func(a, b telemetry.AccessEntry) int { return a.Time.Compare(b.Time) })
	}
	dropped = s.seen - len(batch)
	clear(s.kept)
	s.kept, s.seen = s.kept[:0], 0
	return batch, dropped
}
