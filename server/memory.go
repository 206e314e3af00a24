package server

import (
	"context"
	"log/slog"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"time"
)

// Returning memory to the operating system.
//
// A push to every proxy at once (a thousand proxies reconnecting after a restart, a change of
// every cluster) encodes each proxy's configuration while it is in flight to it, so the heap
// briefly grows with the number of proxies times the size of their configuration, and falls
// back once they have read it. Go keeps the freed pages and gives them back slowly, and when
// its last collection ran at the peak, no collection may come for minutes once the server is
// quiet: the server would keep the storm's peak as its resident size. trimMemory collects and
// returns the pages once the resident heap stays well above where the last trim left it.
const (
	trimInterval = 5 * time.Second
	// trimThreshold is how far above its floor the resident heap must be for a trim.
	trimThreshold = 64 << 20
	// trimMaxBackoff bounds how many checks are skipped after trims that freed little.
	trimMaxBackoff = 64
)

// trimmer decides when to trim from the resident heap's size at each check.
type trimmer struct {
	// floor is the resident heap after the last trim, decaying toward min between trims: a
	// trim that ran in the middle of a storm must not keep the storm's size as the floor.
	floor, min uint64
	above      int
	skip       int
	backoff    int
	// prev is the resident heap at the last check, and growing whether it grew by more than
	// a quarter of the threshold since: a storm still going on.
	prev    uint64
	growing bool
}

func newTrimmer(resident uint64) *trimmer {
	return &trimmer{floor: resident, min: resident, backoff: 1, prev: resident}
}

// check reports whether to trim now, given the resident heap.
func (t *trimmer) check(resident uint64) bool {
	t.growing, t.prev = resident > t.prev+trimThreshold/4, resident
	if t.skip > 0 {
		t.skip--
		return false
	}
	if resident < t.floor+trimThreshold {
		t.above = 0
		t.floor = max(t.min, t.floor/4*3)
		return false
	}
	if t.above++; t.above < 2 {
		return false
	}
	t.above = 0
	return true
}

// trimmed records a trim that took the resident heap from before to after. A trim that freed
// less than the threshold while the heap was not growing (the heap is that big, not full of
// garbage) doubles the checks skipped before the next, so a large live heap is not collected
// over and over; one in the middle of a storm does not, so that the storm's pages go back
// soon after it ends.
func (t *trimmer) trimmed(before, after uint64) {
	t.floor = after
	t.prev = after
	if before-min(after, before) < trimThreshold && !t.growing {
		t.backoff = min(2*t.backoff, trimMaxBackoff)
		t.skip = t.backoff
	} else {
		t.backoff = 1
	}
}

// trimMemory checks the resident heap every interval and, when the trimmer says so, collects
// and returns the free pages to the operating system, until ctx ends.
func trimMemory(ctx context.Context, log *slog.Logger, every time.Duration) error {
	return newMemoryTrim(log).run(ctx, every)
}

// memoryTrim is trimMemory's loop. Its floor is the resident heap when it is made.
type memoryTrim struct {
	log    *slog.Logger
	sample []metrics.Sample
	tr     *trimmer
}

func newMemoryTrim(log *slog.Logger) *memoryTrim {
	m := &memoryTrim{log: log, sample: []metrics.Sample{
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
	}}
	m.tr = newTrimmer(m.resident())
	return m
}

func (m *memoryTrim) resident() uint64 {
	metrics.Read(m.sample)
	return m.sample[0].Value.Uint64() + m.sample[1].Value.Uint64()
}

func (m *memoryTrim) run(ctx context.Context, every time.Duration) error {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			m.check()
		}
	}
}

// check reads the resident heap and trims when the trimmer says so. It reports whether it
// trimmed.
func (m *memoryTrim) check() bool {
	r := m.resident()
	if !m.tr.check(r) {
		return false
	}
	start := time.Now()
	// Two collections: buffers that went back to a sync.Pool (gRPC's, which hold every
	// response of a push) survive the first in the pool's victim cache and are freed by the
	// second. With one, a push's buffers stayed resident until a later trim or the runtime's
	// next collection.
	runtime.GC()
	debug.FreeOSMemory()
	after := m.resident()
	m.tr.trimmed(r, after)
	m.log.Debug("returned free memory to the operating system", "resident_heap_before", r, "after", after, "took", time.Since(start).String())
	return true
}
