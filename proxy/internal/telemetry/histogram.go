package telemetry

import (
	"strconv"
	"sync/atomic"
	"time"
)

// DurationBuckets are the upper bounds, in milliseconds, of
// istio_request_duration_milliseconds: Istio's default buckets.
var DurationBuckets = [...]float64{0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000,
	30000, 60000, 300000, 600000, 1800000, 3600000}

// SizeBuckets are the upper bounds, in bytes, of istio_request_bytes and istio_response_bytes:
// Istio's exponential buckets, 1 to 1e9 by powers of ten.
var SizeBuckets = [...]float64{1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9}

const (
	numDuration = len(DurationBuckets) + 1 // the last counts what is above every bound (+Inf)
	numSize     = len(SizeBuckets) + 1
)

// durationBoundsNs are DurationBuckets in nanoseconds, so a duration is placed by integer
// comparisons, exactly: 500µs falls in le="0.5", 500.001µs in le="1".
var durationBoundsNs = func() (b [len(DurationBuckets)]int64) {
	for i, ms := range DurationBuckets {
		b[i] = int64(ms * float64(time.Millisecond))
	}
	return b
}()

var sizeBounds = func() (b [len(SizeBuckets)]int64) {
	for i, v := range SizeBuckets {
		b[i] = int64(v)
	}
	return b
}()

// leText holds the "le" label values, formatted as Prometheus' Go client does ("0.5",
// "1e+06"), the last one "+Inf".
var (
	durationLe = leValues(DurationBuckets[:])
	sizeLe     = leValues(SizeBuckets[:])
)

func leValues(bounds []float64) []string {
	out := make([]string, 0, len(bounds)+1)
	for _, b := range bounds {
		out = append(out, strconv.FormatFloat(b, 'g', -1, 64))
	}
	return append(out, "+Inf")
}

// durationBucket returns the index of the bucket d falls in. Most requests are fast, so a
// linear scan from the smallest bound ends in a step or two.
func durationBucket(d time.Duration) int {
	ns := int64(d)
	for i, b := range durationBoundsNs {
		if ns <= b {
			return i
		}
	}
	return len(durationBoundsNs)
}

// sizeBucket returns the index of the bucket n bytes fall in.
func sizeBucket(n int64) int {
	for i, b := range sizeBounds {
		if n <= b {
			return i
		}
	}
	return len(sizeBounds)
}

// observe adds one observation of v to the bucket i of counts and to sum. The buckets are
// kept non-cumulative, so an observation is one atomic add, and readers accumulate.
func observe(counts []atomic.Uint64, sum *atomic.Uint64, i int, v uint64) {
	counts[i].Add(1)
	sum.Add(v)
}

// histSnapshot is a histogram read at one moment: cumulative bucket counts (the last is
// +Inf, the count of observations) and the sum.
type histSnapshot struct {
	cumulative []uint64
	sum        uint64
}

// read accumulates counts into dst, which must be as long as counts. The count (+Inf bucket)
// is the sum of the buckets read, so a scrape never shows a _count that disagrees with its
// buckets, even while Record runs.
func read(dst []uint64, counts []atomic.Uint64, sum *atomic.Uint64) histSnapshot {
	var total uint64
	for i := range counts {
		total += counts[i].Load()
		dst[i] = total
	}
	return histSnapshot{cumulative: dst, sum: sum.Load()}
}

// count returns the number of observations of a histogram's buckets.
func count(counts []atomic.Uint64) uint64 {
	var total uint64
	for i := range counts {
		total += counts[i].Load()
	}
	return total
}
