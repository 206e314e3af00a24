package xds

import (
	"testing"
	"time"
)

// The debounce waits longer when pushes are costly, within its bounds.
func TestMaxDelay(t *testing.T) {
	for built, want := range map[time.Duration]time.Duration{
		0:                      debounceMaxDelay,
		5 * time.Millisecond:   debounceMaxDelay,
		50 * time.Millisecond:  200 * time.Millisecond,
		300 * time.Millisecond: debounceMaxDelayCap,
	} {
		if got := maxDelay(built); got != want {
			t.Errorf("maxDelay(%v) = %v, want %v", built, got, want)
		}
	}
}
