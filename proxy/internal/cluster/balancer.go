package cluster

import (
	"math/rand/v2"
	"sync/atomic"
)

// Endpoint is one upstream endpoint of a Cluster.
type Endpoint struct {
	// Address is the "host:port" to dial.
	Address string
	// Weight is the endpoint's load-balancing weight, at least 1.
	Weight uint32
	// Identity is the workload behind the endpoint (EDS metadata), for telemetry; nil when
	// EDS names none.
	Identity *Identity

	load    *load
	outlier *hostOutlier // nil without outlier detection
}

// load is what survives a rebuild of the cluster: the requests in flight to an endpoint.
type load struct{ active atomic.Int64 }

// Begin counts a request to e as in flight; the caller must call End when it completes.
func (e *Endpoint) Begin() { e.load.active.Add(1) }

// End counts the end of a request started with Begin.
func (e *Endpoint) End() { e.load.active.Add(-1) }

// Active returns the number of requests in flight to e.
func (e *Endpoint) Active() int64 { return e.load.active.Load() }

// Selector picks an endpoint for a request. Implementations are safe for concurrent use and
// never return nil for a non-empty endpoint list.
type Selector interface {
	Select() *Endpoint
}

var (
	_ Selector = (*roundRobin)(nil)
	_ Selector = (*random)(nil)
	_ Selector = (*leastRequest)(nil)
)

func newSelector(cfg *Config, eps []*Endpoint) Selector {
	switch cfg.Policy {
	case RingHash:
		return newRing(eps, cfg.MinRingSize, cfg.MaxRingSize)
	case Maglev:
		return newMaglev(eps, cfg.MaglevTableSize)
	}
	w := newWeights(eps)
	switch cfg.Policy {
	case LeastRequest:
		return &leastRequest{eps: eps, w: w}
	case Random:
		return &random{eps: eps, w: w}
	default:
		return newRoundRobin(eps, w)
	}
}

// weights draws endpoint indexes in proportion to their weights. The zero value (all weights
// equal) draws uniformly without a table.
type weights struct {
	cumulative []uint64 // nil when all weights are equal
}

func newWeights(eps []*Endpoint) weights {
	equal := true
	for _, e := range eps {
		equal = equal && e.Weight == eps[0].Weight
	}
	if equal {
		return weights{}
	}
	cum := make([]uint64, len(eps))
	var sum uint64
	for i, e := range eps {
		sum += uint64(e.Weight)
		cum[i] = sum
	}
	return weights{cumulative: cum}
}

// draw returns an index in [0, n) chosen in proportion to the weights.
func (w weights) draw(n int) int {
	if w.cumulative == nil {
		return rand.IntN(n)
	}
	x := rand.Uint64N(w.cumulative[len(w.cumulative)-1])
	lo, hi := 0, len(w.cumulative)-1
	for lo < hi {
		mid := (lo + hi) / 2
		if x < w.cumulative[mid] {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	return lo
}

// roundRobin walks a schedule in which each endpoint appears as often as its weight, spread
// out (smooth weighted round robin), so a heavy endpoint does not get its turns in a burst.
type roundRobin struct {
	eps      []*Endpoint
	schedule []int32 // nil when all weights are equal: plain rotation
	next     atomic.Uint64
}

// maxSchedule bounds the schedule's size; larger weights are scaled down to fit.
const maxSchedule = 4096

func newRoundRobin(eps []*Endpoint, w weights) *roundRobin {
	rr := &roundRobin{eps: eps}
	// Start at a random place so that proxies started together do not all hit one endpoint.
	if len(eps) > 0 {
		rr.next.Store(uint64(rand.IntN(len(eps))))
	}
	if w.cumulative == nil {
		return rr
	}
	total := w.cumulative[len(w.cumulative)-1]
	ws := make([]int64, len(eps))
	var sum int64
	for i, e := range eps {
		ws[i] = int64(e.Weight)
		if total > maxSchedule {
			ws[i] = max(1, int64(uint64(e.Weight)*maxSchedule/total))
		}
		sum += ws[i]
	}
	current := make([]int64, len(eps))
	rr.schedule = make([]int32, 0, sum)
	for range sum {
		best := 0
		for i := range current {
			current[i] += ws[i]
			if current[i] > current[best] {
				best = i
			}
		}
		current[best] -= sum
		rr.schedule = append(rr.schedule, int32(best))
	}
	return rr
}

// Select implements Selector.
func (rr *roundRobin) Select() *Endpoint {
	if len(rr.eps) == 0 {
		return nil
	}
	n := rr.next.Add(1)
	if rr.schedule == nil {
		return rr.eps[n%uint64(len(rr.eps))]
	}
	return rr.eps[rr.schedule[n%uint64(len(rr.schedule))]]
}

type random struct {
	eps []*Endpoint
	w   weights
}

// Select implements Selector.
func (r *random) Select() *Endpoint {
	if len(r.eps) == 0 {
		return nil
	}
	return r.eps[r.w.draw(len(r.eps))]
}

// leastRequest is Envoy's default least-request balancer: draw two endpoints (by weight) and
// take the one with fewer requests in flight ("power of two choices").
type leastRequest struct {
	eps []*Endpoint
	w   weights
}

// Select implements Selector.
func (l *leastRequest) Select() *Endpoint {
	switch len(l.eps) {
	case 0:
		return nil
	case 1:
		return l.eps[0]
	}
	a := l.w.draw(len(l.eps))
	b := l.w.draw(len(l.eps))
	if a == b {
		// Two draws of one endpoint compare nothing; take its neighbour as the second choice.
		b = (a + 1) % len(l.eps)
	}
	ea, eb := l.eps[a], l.eps[b]
	if eb.Active() < ea.Active() {
		return eb
	}
	return ea
}
