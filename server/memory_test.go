package server

import (
	"io"
	"log/slog"
	"runtime/debug"
	"runtime/metrics"
	"sync"
	"testing"
)

var sink [][]byte

// Garbage left by a burst of work goes back to the operating system without waiting for the
// runtime's own pace: the checks find the resident heap well above its size at the start, and
// the trim collects and releases it.
func TestTrimMemoryReturnsGarbage(t *testing.T) {
	trimsAfter(t, "dropped", func() {
		for range 256 {
			sink = append(sink, make([]byte, 1<<20))
		}
		sink = nil
	})
}

var pooled sync.Pool

// Buffers a burst left in a sync.Pool (as gRPC's transports and codec do) go back with the
// same trim, although they outlive one collection in the pool's victim cache.
func TestTrimMemoryReturnsPooledBuffers(t *testing.T) {
	trimsAfter(t, "pooled", func() {
		for range 256 {
			b := make([]byte, 1<<20)
			pooled.Put(&b)
		}
	})
}

// trimsAfter lets burst leave 256 MiB unused and checks that the first trim releases at least
// half of it. Only the trim collects meanwhile: the runtime's own collections would free the
// memory without it.
func trimsAfter(t *testing.T, what string, burst func()) {
	t.Helper()
	released := func() uint64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	m := newMemoryTrim(slog.New(slog.NewTextHandler(io.Discard, nil)))
	burst()
	before := released()
	for i := 0; !m.check(); i++ {
		if i == 5 {
			t.Fatalf("no trim after %d checks with 256 MiB %s", i+1, what)
		}
	}
	if got := int64(released()) - int64(before); got < 128<<20 {
		t.Errorf("the trim released %d MiB, want at least 128 MiB of the 256 MiB %s", got>>20, what)
	}
}

// The trimmer trims after a storm even when a trim in the middle of it left a high floor, and
// backs off when the heap is simply large.
func TestTrimmerDecisions(t *testing.T) {
	const mb = 1 << 20
	tr := newTrimmer(30 * mb)
	checks := func(resident uint64, n int) (trims int) {
		for range n {
			if tr.check(resident) {
				trims++
				tr.trimmed(resident, resident) // nothing to free: the heap is live
			}
		}
		return trims
	}
	if n := checks(60*mb, 20); n != 0 {
		t.Errorf("a heap within the threshold of its floor was trimmed %d times", n)
	}
	// A storm: the heap grows to 800 MiB; a trim in the middle finds it all live.
	if !tr.check(800*mb) && !tr.check(800*mb) {
		t.Fatal("800 MiB over a 30 MiB floor for two checks: no trim")
	}
	tr.trimmed(800*mb, 790*mb)
	// After it, the garbage stays resident: the floor decays and the next trim frees it.
	trimmed := false
	for range 200 {
		if tr.check(790 * mb) {
			trimmed = true
			break
		}
	}
	if !trimmed {
		t.Fatal("after a mid-storm trim, the storm's garbage was never trimmed")
	}
	tr.trimmed(790*mb, 80*mb)
	if tr.floor != 80*mb || tr.backoff != 1 {
		t.Errorf("after a trim freeing 710 MiB: floor %d MiB, backoff %d; want 80 MiB, 1", tr.floor/mb, tr.backoff)
	}
	// Trims in the middle of a storm free little but do not back off: the storm's pages go
	// back within a few checks of its end.
	tr = newTrimmer(30 * mb)
	for heap := uint64(100 * mb); heap <= 1000*mb; heap += 100 * mb {
		if tr.check(heap) {
			tr.trimmed(heap, heap)
		}
	}
	if tr.skip > 1 {
		t.Errorf("after trims during a storm, %d checks are skipped; want at most 1", tr.skip)
	}
	trimmed = false
	for range 8 {
		if tr.check(1000 * mb) {
			trimmed = true
			break
		}
	}
	if !trimmed {
		t.Error("the storm's pages were not trimmed within 8 checks of its end")
	}
	// A large live heap: trims free nothing, so they back off to one per trimMaxBackoff checks.
	tr = newTrimmer(30 * mb)
	if n := checks(1000*mb, 2000); n > 2000/trimMaxBackoff+8 {
		t.Errorf("a 1 GiB live heap was trimmed %d times in 2,000 checks; want about %d", n, 2000/trimMaxBackoff)
	}
}
