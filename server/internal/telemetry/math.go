package telemetry

// Quantile estimates the q-quantile (0 < q ≤ 1) of the durations counted in buckets, in
// milliseconds, as Prometheus's histogram_quantile does: it finds the bucket holding the
// q·total-th request and interpolates linearly between that bucket's bounds, taking the
// requests to be spread evenly within it. The first bucket's lower bound is 0. A quantile
// that falls in the +Inf bucket is reported as the highest finite bound, the most that can be
// said of it. ok is false when there are no requests (or q is outside (0, 1]).
func Quantile(q float64, buckets *[DurationBuckets]int64) (ms float64, ok bool) {
	if !(q > 0 && q <= 1) {
		return 0, false
	}
	var total int64
	for _, c := range buckets {
		total += c
	}
	if total <= 0 {
		return 0, false
	}
	rank := q * float64(total)
	var below int64 // requests in the buckets before i
	for i, c := range buckets {
		if c <= 0 || float64(below+c) < rank {
			below += max(c, 0)
			continue
		}
		if i == len(DurationBounds) {
			return DurationBounds[len(DurationBounds)-1], true
		}
		lower := 0.0
		if i > 0 {
			lower = DurationBounds[i-1]
		}
		upper := DurationBounds[i]
		return lower + (upper-lower)*(rank-float64(below))/float64(c), true
	}
	// Unreachable with non-negative counts: the last non-empty bucket reaches total.
	return DurationBounds[len(DurationBounds)-1], true
}

// Summary is what the graph and the time series show of some traffic over some seconds.
// Pointers are nil where there is nothing to say: no requests, no success rate.
type Summary struct {
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	// RPS is Requests divided by the seconds covered.
	RPS float64 `json:"rps"`
	// SuccessRate is the share of requests that did not fail, from 0 to 1.
	SuccessRate *float64 `json:"successRate"`
	// P50, P95 and P99 are duration percentiles in milliseconds.
	P50 *float64 `json:"p50"`
	P95 *float64 `json:"p95"`
	P99 *float64 `json:"p99"`
	// RequestBytes and ResponseBytes are the bytes received and sent.
	RequestBytes  int64 `json:"requestBytes"`
	ResponseBytes int64 `json:"responseBytes"`
}

// Summarize computes the rate, success rate and percentiles of s over seconds (> 0).
func Summarize(s *Stats, seconds float64) Summary {
	out := Summary{
		Requests: s.Requests, Errors: s.Errors,
		RequestBytes: s.RequestBytes, ResponseBytes: s.ResponseBytes,
	}
	if seconds > 0 {
		out.RPS = float64(s.Requests) / seconds
	}
	if s.Requests > 0 {
		// Errors can exceed requests only by a proxy's mistake; the rate stays within [0, 1].
		r := float64(s.Requests-min(s.Errors, s.Requests)) / float64(s.Requests)
		out.SuccessRate = &r
	}
	for _, p := range []struct {
		q   float64
		dst **float64
	}{{0.50, &out.P50}, {0.95, &out.P95}, {0.99, &out.P99}} {
		if v, ok := Quantile(p.q, &s.Duration); ok {
			*p.dst = &v
		}
	}
	return out
}
