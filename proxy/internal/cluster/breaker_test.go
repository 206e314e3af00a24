package cluster

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func breakerCluster(l Limits) *Cluster {
	return &Cluster{Config: &Config{Name: "httpbin", Limits: l}, breaker: &breaker{}}
}

func overflowLimit(err error) string {
	var oe *OverflowError
	if errors.As(err, &oe) {
		return oe.Limit
	}
	return ""
}

func TestBreakerAdmission(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"max_requests turns the next request away at once", func(t *testing.T) {
			c := breakerCluster(Limits{MaxConnections: 10, MaxPendingRequests: 10, MaxRequests: 1, MaxRetries: 3})
			a, err := c.Admit(ctx, false)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Admit(ctx, false); overflowLimit(err) != "max_requests" {
				t.Fatalf("second request: %v, want max_requests overflow", err)
			}
			c.Release(a)
			if _, err := c.Admit(ctx, false); err != nil {
				t.Fatalf("after release: %v", err)
			}
		}},
		{"Istio's task: one connection, one pending, the third overflows", func(t *testing.T) {
			c := breakerCluster(Limits{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: 100, MaxRetries: 3})
			first, err := c.Admit(ctx, true)
			if err != nil {
				t.Fatal(err)
			}
			admitted := make(chan Admission)
			go func() {
				a, err := c.Admit(ctx, true)
				if err != nil {
					t.Error(err)
				}
				admitted <- a
			}()
			waitFor(t, func() bool { return c.breaker.pending.Load() == 1 })
			if _, err := c.Admit(ctx, true); overflowLimit(err) != "max_pending_requests" {
				t.Fatalf("third request: %v, want max_pending_requests overflow", err)
			}
			c.Release(first) // hands the connection to the pending request
			c.Release(<-admitted)
			st := c.Breakers()
			if st.Requests != 0 || st.Connections != 0 || st.Pending != 0 || st.PendingOverflow != 1 || st.ConnectionOverflow != 2 {
				t.Errorf("stats %+v", st)
			}
		}},
		{"HTTP/2 requests take no connection slot", func(t *testing.T) {
			c := breakerCluster(Limits{MaxConnections: 1, MaxPendingRequests: 0, MaxRequests: 5, MaxRetries: 3})
			for range 5 {
				if _, err := c.Admit(ctx, false); err != nil {
					t.Fatal(err)
				}
			}
		}},
		{"a pending request gives up when its context ends", func(t *testing.T) {
			c := breakerCluster(Limits{MaxConnections: 1, MaxPendingRequests: 5, MaxRequests: 100, MaxRetries: 3})
			held, _ := c.Admit(ctx, true)
			cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
			defer cancel()
			if _, err := c.Admit(cctx, true); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("pending request: %v, want its deadline", err)
			}
			if st := c.Breakers(); st.Pending != 0 || st.Requests != 1 {
				t.Errorf("after giving up: %+v", st)
			}
			c.Release(held)
			if st := c.Breakers(); st.Connections != 0 {
				t.Errorf("a connection leaked: %+v", st)
			}
		}},
		{"max_retries", func(t *testing.T) {
			c := breakerCluster(Limits{MaxConnections: 1, MaxPendingRequests: 1, MaxRequests: 1, MaxRetries: 2})
			if !c.AdmitRetry() || !c.AdmitRetry() || c.AdmitRetry() {
				t.Fatal("want exactly two retries admitted")
			}
			c.ReleaseRetry()
			if !c.AdmitRetry() {
				t.Fatal("a released retry slot was not reused")
			}
			if st := c.Breakers(); st.RetryOverflow != 1 || st.Retries != 2 {
				t.Errorf("stats %+v", st)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

// TestBreakerNeverExceedsItsLimits hammers one cluster from many goroutines: connections in
// use never pass max_connections, nothing leaks, and every pending request either gets a
// connection or overflows.
func TestBreakerNeverExceedsItsLimits(t *testing.T) {
	c := breakerCluster(Limits{MaxConnections: 3, MaxPendingRequests: 4, MaxRequests: 1000, MaxRetries: 3})
	var inUse, peak atomic.Int64
	var served, overflowed atomic.Int64
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for range 200 {
				a, err := c.Admit(context.Background(), true)
				if err != nil {
					if overflowLimit(err) != "max_pending_requests" {
						t.Errorf("unexpected error %v", err)
					}
					overflowed.Add(1)
					continue
				}
				n := inUse.Add(1)
				for p := peak.Load(); n > p && !peak.CompareAndSwap(p, n); p = peak.Load() {
				}
				inUse.Add(-1)
				c.Release(a)
				served.Add(1)
			}
		})
	}
	wg.Wait()
	if p := peak.Load(); p > 3 {
		t.Errorf("%d connections in use at once, want at most 3", p)
	}
	if st := c.Breakers(); st.Connections != 0 || st.Pending != 0 || st.Requests != 0 {
		t.Errorf("after the storm: %+v", st)
	}
	if served.Load()+overflowed.Load() != 32*200 {
		t.Errorf("%d served + %d overflowed, want %d", served.Load(), overflowed.Load(), 32*200)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestPoolsFollowConnectionOptions(t *testing.T) {
	var pools Pools
	defer pools.CloseIdle()
	base := &Config{ConnectTimeout: time.Second}
	idle := &Config{ConnectTimeout: time.Second, IdleTimeout: 30 * time.Second}
	never := &Config{ConnectTimeout: time.Second, IdleTimeout: -1}
	if pools.For(base) != pools.For(&Config{ConnectTimeout: time.Second}) {
		t.Error("clusters with the same options must share transports")
	}
	for _, tt := range []struct {
		cfg  *Config
		want time.Duration
	}{{base, DefaultIdleTimeout}, {idle, 30 * time.Second}, {never, 0}} {
		if got := pools.For(tt.cfg).HTTP1.IdleConnTimeout; got != tt.want {
			t.Errorf("idle timeout %v: transport's %v, want %v", tt.cfg.IdleTimeout, got, tt.want)
		}
	}
	if pools.For(idle) == pools.For(base) {
		t.Error("different idle timeouts must not share a pool")
	}
}

// BenchmarkPickAndAdmit is what a request pays in this package when nothing trips: a pick
// (with and without outlier detection configured) and the circuit breakers' admission.
func BenchmarkPickAndAdmit(b *testing.B) {
	plain := hashCluster(LeastRequest, 8)
	detected := hashCluster(LeastRequest, 8)
	cfg := *detected.Config
	cfg.Outlier = &OutlierConfig{Consecutive5xx: 5, Enforcing5xx: 100, Interval: time.Second, BaseEjectionTime: time.Second,
		MaxEjectionTime: time.Minute, MaxEjectionPercent: 10}
	var pools Pools
	detected = New(&cfg, nil, nil, &pools)
	ctx := context.Background()
	b.Run("pick", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			plain.Pick()
		}
	})
	b.Run("pick-outlier-detection", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ep := detected.Pick()
			detected.Report(ep, 200)
		}
	})
	b.Run("admit-release", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			a, _ := plain.Admit(ctx, true)
			plain.Release(a)
		}
	})
}
