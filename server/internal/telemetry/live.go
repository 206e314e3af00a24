package telemetry

import (
	"sync"
)

// The live view's memory. A mesh of a thousand sidecars with twenty busy series each has
// twenty thousand series, every second; kept as Series keys and Stats for five minutes of
// seconds that would be gigabytes. So series are interned to small ids, the per-second sums
// keep only the number of requests (for rates exact to the second over the last minute:
// errors follow from the series), and everything else is kept per 10-second bucket, in
// 32-bit counts.

// interner gives each series a small id for as long as it is used. An id not used for a
// while is freed and reused, once nothing can still refer to it.
type interner struct {
	mu     sync.Mutex
	ids    map[Series]uint32
	series []Series
	seen   []int64 // Unix second each id was last used
	free   []uint32
	swept  int64
}

// internAll returns the ids of the samples' series, in ids (grown as needed).
func (in *interner) internAll(samples []Sample, now int64, ids []uint32) []uint32 {
	ids = ids[:0]
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.ids == nil {
		in.ids = map[Series]uint32{}
	}
	for i := range samples {
		s := &samples[i].Series
		id, ok := in.ids[*s]
		if !ok {
			if n := len(in.free); n > 0 {
				id = in.free[n-1]
				in.free = in.free[:n-1]
				in.series[id] = *s
			} else {
				id = uint32(len(in.series))
				in.series = append(in.series, *s)
				in.seen = append(in.seen, 0)
			}
			in.ids[*s] = id
		}
		in.seen[id] = now
		ids = append(ids, id)
	}
	return ids
}

// lookup returns the series of ids, appended to dst.
func (in *interner) lookup(ids []uint32, dst []Series) []Series {
	in.mu.Lock()
	defer in.mu.Unlock()
	for _, id := range ids {
		dst = append(dst, in.series[id])
	}
	return dst
}

// sweep frees the ids unused since before, at most once every interval seconds.
func (in *interner) sweep(now, before, interval int64) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if now-in.swept < interval {
		return
	}
	in.swept = now
	for s, id := range in.ids {
		if in.seen[id] < before {
			delete(in.ids, s)
			in.series[id] = Series{}
			in.free = append(in.free, id)
		}
	}
}

// size returns the number of ids in use.
func (in *interner) size() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.ids)
}

// compact is Stats in a third of the memory, for the many kept: counts within a bucket of
// at most a minute fit 32 bits.
type compact struct {
	requests, errors, durationCount uint32
	mtlsRequests                    uint32
	requestBytes, responseBytes     uint64
	durationSumMs                   float64
	duration                        [DurationBuckets]uint32
}

func (c *compact) add(st *Stats) {
	c.requests += uint32(st.Requests)
	c.errors += uint32(st.Errors)
	c.mtlsRequests += uint32(st.MTLSRequests)
	c.durationCount += uint32(st.DurationCount)
	c.requestBytes += uint64(st.RequestBytes)
	c.responseBytes += uint64(st.ResponseBytes)
	c.durationSumMs += st.DurationSumMs
	for i, n := range st.Duration {
		c.duration[i] += uint32(n)
	}
}

func (c *compact) merge(o *compact) {
	c.requests += o.requests
	c.errors += o.errors
	c.mtlsRequests += o.mtlsRequests
	c.durationCount += o.durationCount
	c.requestBytes += o.requestBytes
	c.responseBytes += o.responseBytes
	c.durationSumMs += o.durationSumMs
	for i, n := range o.duration {
		c.duration[i] += n
	}
}

func (c *compact) stats() Stats {
	st := Stats{
		Requests: int64(c.requests), Errors: int64(c.errors), DurationCount: int64(c.durationCount),
		MTLSRequests: int64(c.mtlsRequests),
		RequestBytes: int64(c.requestBytes), ResponseBytes: int64(c.responseBytes), DurationSumMs: c.durationSumMs,
	}
	for i, n := range c.duration {
		st.Duration[i] = int64(n)
	}
	return st
}

// idStats sums compact stats per series id: an index into dense slices, so that it can be
// emptied and refilled without allocating.
type idStats struct {
	index map[uint32]int32
	ids   []uint32
	stats []compact
}

func newIDStats() *idStats { return &idStats{index: map[uint32]int32{}} }

func (s *idStats) slot(id uint32) *compact {
	i, ok := s.index[id]
	if !ok {
		i = int32(len(s.ids))
		s.index[id] = i
		s.ids = append(s.ids, id)
		s.stats = append(s.stats, compact{})
	}
	return &s.stats[i]
}

func (s *idStats) reset() {
	clear(s.index)
	s.ids = s.ids[:0]
	s.stats = s.stats[:0]
}

func (s *idStats) mergeAll(o *idStats) {
	for i, id := range o.ids {
		s.slot(id).merge(&o.stats[i])
	}
}

// secondSlot is one second's requests per series id.
type secondSlot struct {
	mu       sync.Mutex
	sec      int64
	requests map[uint32]uint32
}

// tenSlot is one 10-second bucket's stats per series id.
type tenSlot struct {
	mu    sync.Mutex
	start int64
	stats *idStats
}
