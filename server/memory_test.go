package server

import (
	"context"
	"io"
	"log/slog"
	"runtime/metrics"
	"sync"
	"testing"
	"time"
)

var sink [][]byte

// Garbage left by a burst of work goes back to the operating system without waiting for the
// runtime's own pace: two checks that find the resident heap well above its size at the
// start, then a collection and a release. (The checks come every half second, long after the
// burst's allocations are done.)
func TestTrimMemoryReturnsGarbage(t *testing.T) {
	trimsAfter(t, "dropped", func() {
		for range 256 {
			sink = append(sink, make([]byte, 1<<20))
		}
		sink = nil
	})
}

var pooled sync.Pool

// Buffers a burst left in a sync.Pool (as gRPC's transports and codec do) go back too: they
// outlive one collection in the pool's victim cache.
func TestTrimMemoryReturnsPooledBuffers(t *testing.T) {
	trimsAfter(t, "pooled", func() {
		for range 256 {
			b := make([]byte, 1<<20)
			pooled.Put(&b)
		}
	})
}

// trimsAfter runs trimMemory, lets burst leave 256 MiB unused, and waits for at least half of
// it to be released.
func trimsAfter(t *testing.T, what string, burst func()) {
	t.Helper()
	released := func() uint64 {
		s := []metrics.Sample{{Name: "/memory/classes/heap/released:bytes"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- trimMemory(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)), 500*time.Millisecond) }()
	burst()
	before := released()
	deadline := time.Now().Add(10 * time.Second)
	for released() < before+128<<20 {
		if time.Now().After(deadline) {
			t.Fatalf("released %d MiB more after 10 s, want at least 128 MiB of the 256 MiB %s", (released()-before)>>20, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
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
