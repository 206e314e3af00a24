package listener

import (
	"math"
	"testing"
	"time"
)

func TestJitterIsFullAndBounded(t *testing.T) {
	const n = 20_000
	for _, bound := range []time.Duration{25 * time.Millisecond, 250 * time.Millisecond, time.Millisecond} {
		var sum float64
		lo, hi := bound, time.Duration(0)
		for range n {
			d := jitter(bound)
			if d < 0 || d >= bound {
				t.Fatalf("jitter(%v) = %v, outside [0, %v)", bound, d, bound)
			}
			sum += float64(d)
			lo, hi = min(lo, d), max(hi, d)
		}
		// Uniform on [0, b): mean b/2, standard deviation b/sqrt(12).
		mean, want := sum/n, float64(bound)/2
		if tol := 5 * float64(bound) / math.Sqrt(12*n); math.Abs(mean-want) > tol {
			t.Errorf("jitter(%v): mean %v, want %v ± %v", bound, time.Duration(mean), time.Duration(want), time.Duration(tol))
		}
		// Full jitter reaches both ends of the range.
		if lo > bound/100 || hi < bound-bound/100 {
			t.Errorf("jitter(%v) spans [%v, %v], want close to [0, %v)", bound, lo, hi, bound)
		}
	}
}
