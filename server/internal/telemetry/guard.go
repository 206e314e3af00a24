package telemetry

import (
	"strings"
	"time"
)

// DestinationErrors returns the requests to the destination service host (fully qualified)
// over the last window, and how many of them failed (see IsError), from the live data: each
// request counted once (see Select), exact to the second for windows up to a minute, and
// whole 10-second buckets beyond. The window is at least a second and at most the live span.
//
// Requests the caller's proxy answered with an injected fault (response flag FI) are left out
// of both counts: they measure the experiment, not the service. What remains is how the
// service and the path to it behave while a fault is injected: timeouts, overflows, errors of
// the service itself.
func (a *Aggregator) DestinationErrors(host string, window time.Duration) (requests, errors int64) {
	seconds := int64(min(max(window, time.Second), a.o.LiveSpan) / time.Second)
	rows, _, _ := a.liveRows(a.o.Now().Unix(), seconds)
	for _, r := range Select(rows) {
		if r.Series.DestinationService != host || injectedFault(r.Series.ResponseFlags) {
			continue
		}
		requests += r.Stats.Requests
		errors += r.Stats.Errors
	}
	return requests, errors
}

// injectedFault reports whether response flags say the fault filter answered the request.
func injectedFault(flags string) bool {
	for f := range strings.SplitSeq(flags, ",") {
		if strings.TrimSpace(f) == "FI" {
			return true
		}
	}
	return false
}
