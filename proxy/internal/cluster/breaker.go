package cluster

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
)

// Limits are a cluster's circuit-breaker thresholds, Envoy's CircuitBreakers.Thresholds for
// the default priority.
type Limits struct {
	// MaxConnections bounds the connections to the cluster's endpoints. Over HTTP/1.1 a
	// connection carries one request at a time, so it bounds the HTTP/1.1 requests in flight;
	// a request that finds them all busy waits as a pending request.
	MaxConnections int64
	// MaxPendingRequests bounds the requests waiting for a connection.
	MaxPendingRequests int64
	// MaxRequests bounds the requests in flight, any protocol.
	MaxRequests int64
	// MaxRetries bounds the retries in flight.
	MaxRetries int64
}

// DefaultLimits are Envoy's thresholds when a cluster sets none: they apply to every
// cluster, as in Envoy.
var DefaultLimits = Limits{MaxConnections: 1024, MaxPendingRequests: 1024, MaxRequests: 1024, MaxRetries: 3}

// OverflowError says which circuit breaker turned a request away.
type OverflowError struct {
	// Cluster is the cluster's name.
	Cluster string
	// Limit names the threshold, such as "max_pending_requests".
	Limit string
	// Max is its value.
	Max int64
}

func (e *OverflowError) Error() string {
	return fmt.Sprintf("cluster %s: circuit breaker %s (%d) is full", e.Cluster, e.Limit, e.Max)
}

// breaker counts what a cluster's circuit breakers limit, for one proxy. It is shared by
// every version of the cluster (it survives CDS and EDS updates), while the limits come
// from the version a request uses.
type breaker struct {
	requests atomic.Int64
	retries  atomic.Int64
	conns    atomic.Int64 // HTTP/1.1 requests in flight: connections in use

	mu      sync.Mutex
	waiters []*waiter // pending requests, oldest first
	pending atomic.Int64

	// Overflow counters, by threshold.
	cxOverflow, pendingOverflow, rqOverflow, retryOverflow atomic.Uint64
	// panicPicks counts picks in panic mode; it lives here as the one per-cluster state
	// every cluster has.
	panicPicks atomic.Uint64
}

type waiter struct {
	ready   chan struct{}
	granted bool // guarded by breaker.mu
}

// Admission is a request's hold on its cluster's circuit breakers, given back by
// Cluster.Release.
type Admission struct {
	conn bool
}

// Admit reserves room for one upstream request (one try) to c under its circuit breakers:
// a request slot and, when the request goes over HTTP/1.1, a connection. When every
// connection is busy it waits as a pending request, until one frees or ctx ends. It returns
// an *OverflowError when a threshold is full, or ctx's error.
func (c *Cluster) Admit(ctx context.Context, http1 bool) (Admission, error) {
	b, l := c.breaker, &c.Limits
	if b.requests.Add(1) > l.MaxRequests {
		b.requests.Add(-1)
		b.rqOverflow.Add(1)
		return Admission{}, &OverflowError{Cluster: c.Name, Limit: "max_requests", Max: l.MaxRequests}
	}
	if !http1 {
		return Admission{}, nil
	}
	if b.tryConn(l.MaxConnections) {
		return Admission{conn: true}, nil
	}
	b.cxOverflow.Add(1)
	if err := b.wait(ctx, c, l); err != nil {
		b.requests.Add(-1)
		return Admission{}, err
	}
	return Admission{conn: true}, nil
}

// Release gives back what Admit reserved.
func (c *Cluster) Release(a Admission) {
	b := c.breaker
	b.requests.Add(-1)
	if !a.conn {
		return
	}
	b.conns.Add(-1)
	if b.pending.Load() > 0 {
		b.handOff(c.Limits.MaxConnections)
	}
}

// AdmitRetry reserves room for one retry under max_retries; ReleaseRetry gives it back.
func (c *Cluster) AdmitRetry() bool {
	if c.breaker.retries.Add(1) > c.Limits.MaxRetries {
		c.breaker.retries.Add(-1)
		c.breaker.retryOverflow.Add(1)
		return false
	}
	return true
}

// ReleaseRetry gives back what AdmitRetry reserved.
func (c *Cluster) ReleaseRetry() { c.breaker.retries.Add(-1) }

// tryConn takes a connection if one is free, without waiting.
func (b *breaker) tryConn(max int64) bool {
	for {
		n := b.conns.Load()
		if n >= max {
			return false
		}
		if b.conns.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// wait queues the request as pending until a connection is handed to it.
func (b *breaker) wait(ctx context.Context, c *Cluster, l *Limits) error {
	b.mu.Lock()
	if int64(len(b.waiters)) >= l.MaxPendingRequests {
		b.mu.Unlock()
		b.pendingOverflow.Add(1)
		return &OverflowError{Cluster: c.Name, Limit: "max_pending_requests", Max: l.MaxPendingRequests}
	}
	w := &waiter{ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.pending.Add(1)
	b.mu.Unlock()
	// A connection may have freed between the first try and queueing; its releaser saw no
	// one pending. Try again now that this request is visible.
	if b.tryConn(l.MaxConnections) {
		if !b.dequeue(w) {
			b.release1(l.MaxConnections) // handed one too: give it back
		}
		return nil
	}
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		if !b.dequeue(w) {
			b.release1(l.MaxConnections) // handed one as the context ended
		}
		return ctx.Err()
	}
}

// dequeue removes w from the queue, reporting false when a connection was already handed
// to it.
func (b *breaker) dequeue(w *waiter) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if w.granted {
		return false
	}
	for i, x := range b.waiters {
		if x == w {
			b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
			b.pending.Add(-1)
			break
		}
	}
	return true
}

func (b *breaker) release1(max int64) {
	b.conns.Add(-1)
	if b.pending.Load() > 0 {
		b.handOff(max)
	}
}

// handOff gives free connections to the oldest pending requests.
func (b *breaker) handOff(max int64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for len(b.waiters) > 0 && b.tryConn(max) {
		w := b.waiters[0]
		b.waiters = b.waiters[1:]
		b.pending.Add(-1)
		w.granted = true
		close(w.ready)
	}
}

// BreakerStats is a snapshot of a cluster's circuit breakers.
type BreakerStats struct {
	// Limits are the thresholds in force.
	Limits Limits
	// Requests, Pending, Connections and Retries are in use now.
	Requests, Pending, Connections, Retries int64
	// Overflows count the requests each threshold turned away.
	ConnectionOverflow, PendingOverflow, RequestOverflow, RetryOverflow uint64
}

// Breakers returns a snapshot of c's circuit breakers.
func (c *Cluster) Breakers() BreakerStats {
	b := c.breaker
	return BreakerStats{Limits: c.Limits, Requests: b.requests.Load(), Pending: b.pending.Load(),
		Connections: b.conns.Load(), Retries: b.retries.Load(),
		ConnectionOverflow: b.cxOverflow.Load(), PendingOverflow: b.pendingOverflow.Load(),
		RequestOverflow: b.rqOverflow.Load(), RetryOverflow: b.retryOverflow.Load()}
}
