package cluster

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/types/known/durationpb"
)

// DefaultPanicThreshold is Envoy's healthy_panic_threshold when a cluster sets none.
const DefaultPanicThreshold = 50

// OutlierConfig is a compiled OutlierDetection, with Envoy's defaults filled in.
type OutlierConfig struct {
	// Consecutive5xx ejects an endpoint after this many 5xx answers in a row (default 5),
	// in Enforcing5xx percent of the cases (default 100).
	Consecutive5xx uint32
	Enforcing5xx   uint32
	// ConsecutiveGatewayFailure ejects after this many 502, 503 or 504 in a row (default 5),
	// in EnforcingGatewayFailure percent of the cases (default 0: off).
	ConsecutiveGatewayFailure uint32
	EnforcingGatewayFailure   uint32
	// Interval is how often Envoy's detector runs (default 10s): an endpoint's ejection
	// multiplier drops by one for each interval it stays healthy.
	Interval time.Duration
	// BaseEjectionTime times the ejection multiplier is how long an ejection lasts (default
	// 30s), at most MaxEjectionTime (default 300s, or BaseEjectionTime if longer), plus a
	// random jitter up to MaxJitter (default 0).
	BaseEjectionTime, MaxEjectionTime, MaxJitter time.Duration
	// MaxEjectionPercent bounds the share of the cluster's endpoints ejected at once (default
	// 10); AlwaysEjectOne ejects one even when that share is below one endpoint.
	MaxEjectionPercent uint32
	AlwaysEjectOne     bool
}

func compileOutlier(od *clusterv3.OutlierDetection) (*OutlierConfig, error) {
	if sr := od.GetEnforcingSuccessRate(); sr == nil || sr.GetValue() != 0 {
		return nil, errors.New("enforcing_success_rate: success-rate ejection is not supported by sluice-proxy; set it to 0 (Istio does), it defaults to 100")
	}
	o := &OutlierConfig{Consecutive5xx: 5, Enforcing5xx: 100, ConsecutiveGatewayFailure: 5,
		Interval: 10 * time.Second, BaseEjectionTime: 30 * time.Second, MaxEjectionPercent: 10}
	u32 := func(v interface{ GetValue() uint32 }, set bool, dst *uint32) {
		if set {
			*dst = v.GetValue()
		}
	}
	u32(od.GetConsecutive_5Xx(), od.GetConsecutive_5Xx() != nil, &o.Consecutive5xx)
	u32(od.GetEnforcingConsecutive_5Xx(), od.GetEnforcingConsecutive_5Xx() != nil, &o.Enforcing5xx)
	u32(od.GetConsecutiveGatewayFailure(), od.GetConsecutiveGatewayFailure() != nil, &o.ConsecutiveGatewayFailure)
	u32(od.GetEnforcingConsecutiveGatewayFailure(), od.GetEnforcingConsecutiveGatewayFailure() != nil, &o.EnforcingGatewayFailure)
	u32(od.GetMaxEjectionPercent(), od.GetMaxEjectionPercent() != nil, &o.MaxEjectionPercent)
	o.AlwaysEjectOne = od.GetAlwaysEjectOneHost().GetValue()
	for _, p := range []struct {
		name string
		v    uint32
	}{{"enforcing_consecutive_5xx", o.Enforcing5xx}, {"enforcing_consecutive_gateway_failure", o.EnforcingGatewayFailure},
		{"max_ejection_percent", o.MaxEjectionPercent}} {
		if p.v > 100 {
			return nil, fmt.Errorf("%s: %d is not a percentage", p.name, p.v)
		}
	}
	pos := func(name string, d *durationpb.Duration, dst *time.Duration, zeroOK bool) error {
		if d == nil {
			return nil
		}
		if err := d.CheckValid(); err != nil || d.AsDuration() < 0 || (!zeroOK && d.AsDuration() == 0) {
			return fmt.Errorf("%s: %v is not a positive duration", name, d.AsDuration())
		}
		*dst = d.AsDuration()
		return nil
	}
	if err := pos("interval", od.GetInterval(), &o.Interval, false); err != nil {
		return nil, err
	}
	if err := pos("base_ejection_time", od.GetBaseEjectionTime(), &o.BaseEjectionTime, false); err != nil {
		return nil, err
	}
	o.MaxEjectionTime = max(300*time.Second, o.BaseEjectionTime)
	if err := pos("max_ejection_time", od.GetMaxEjectionTime(), &o.MaxEjectionTime, false); err != nil {
		return nil, err
	}
	if o.MaxEjectionTime < o.BaseEjectionTime {
		return nil, errors.New("max_ejection_time: cannot be smaller than base_ejection_time (Envoy rejects this too)")
	}
	if err := pos("max_ejection_time_jitter", od.GetMaxEjectionTimeJitter(), &o.MaxJitter, true); err != nil {
		return nil, err
	}
	return o, nil
}

// outlier is a cluster's outlier detector, for one proxy. It is shared by every version of
// the cluster, so ejections survive CDS and EDS updates.
//
// Consecutive failures eject an endpoint at once, as in Envoy. Rather than a timer, the
// detector is driven by the requests themselves: an ejected endpoint returns on the first
// pick after its ejection time has passed (Envoy checks at each interval tick, so it can
// return up to one interval later), and an endpoint's ejection multiplier drops by one for
// each interval it has stayed healthy, computed when it is next ejected. Nothing runs when
// nothing is ejected, and the detector owns no goroutine.
type outlier struct {
	now func() time.Time

	// gen changes whenever an endpoint is ejected or returns: a cluster rebuilds its
	// balancer when it sees a new one.
	gen atomic.Uint64
	// nextReturn is when the next ejected endpoint returns, in Unix nanoseconds; 0 for none.
	nextReturn atomic.Int64

	mu     sync.Mutex
	hosts  map[string]*hostOutlier // by address
	active int                     // endpoints ejected now

	detected5xx, detectedGateway atomic.Uint64
	enforced5xx, enforcedGateway atomic.Uint64
	overflow, returns            atomic.Uint64
}

// hostOutlier is an endpoint's outlier state.
type hostOutlier struct {
	consecutive5xx, consecutiveGateway atomic.Uint32
	ejected                            atomic.Bool

	// Guarded by outlier.mu.
	ejectedAt, returnAt, returnedAt time.Time
	multiplier                      int
	ejections                       int
}

func newOutlier() *outlier {
	return &outlier{now: time.Now, hosts: map[string]*hostOutlier{}}
}

// track makes the detector follow exactly the endpoints at addrs: new ones start healthy, and
// an ejected endpoint that left the cluster no longer counts.
func (o *outlier) track(addrs []string) map[string]*hostOutlier {
	o.mu.Lock()
	defer o.mu.Unlock()
	keep := make(map[string]*hostOutlier, len(addrs))
	for _, a := range addrs {
		h := o.hosts[a]
		if h == nil {
			h = &hostOutlier{}
		}
		keep[a] = h
	}
	changed := false
	for a, h := range o.hosts {
		if _, ok := keep[a]; !ok && h.ejected.Load() {
			o.active--
			changed = true
		}
	}
	o.hosts = keep
	if changed {
		o.recomputeNextReturn()
		o.gen.Add(1)
	}
	return keep
}

// Report records the outcome of a request to ep: an HTTP status as the upstream answered
// it, or as Envoy maps a failure to one (503 for a connection failure or reset, 504 for a
// timeout, the gRPC status mapped to HTTP for a trailers-only gRPC answer). It ejects ep
// when that completes a run of consecutive failures. Without outlier detection it does
// nothing.
func (c *Cluster) Report(ep *Endpoint, status int) {
	cfg, o := c.Outlier, c.detector
	if cfg == nil || o == nil || ep.outlier == nil {
		return
	}
	h := ep.outlier
	if status < 500 || status > 599 {
		if h.consecutive5xx.Load() != 0 {
			h.consecutive5xx.Store(0)
		}
		if h.consecutiveGateway.Load() != 0 {
			h.consecutiveGateway.Store(0)
		}
		return
	}
	if status >= 502 && status <= 504 {
		if h.consecutiveGateway.Add(1) == cfg.ConsecutiveGatewayFailure {
			c.consecutiveFailure(ep, true)
		}
	} else {
		h.consecutiveGateway.Store(0)
	}
	if h.consecutive5xx.Add(1) == cfg.Consecutive5xx {
		c.consecutiveFailure(ep, false)
	}
}

// consecutiveFailure is Envoy's ejectHost for a consecutive-5xx or consecutive-gateway-
// failure run.
func (c *Cluster) consecutiveFailure(ep *Endpoint, gateway bool) {
	cfg, o, h := c.Outlier, c.detector, ep.outlier
	o.mu.Lock()
	defer o.mu.Unlock()
	if h.ejected.Load() {
		return
	}
	enforcing := cfg.Enforcing5xx
	if gateway {
		o.detectedGateway.Add(1)
		enforcing = cfg.EnforcingGatewayFailure
		h.consecutiveGateway.Store(0)
	} else {
		o.detected5xx.Add(1)
		h.consecutive5xx.Store(0)
	}
	total := len(o.hosts)
	allowed := float64(o.active+1)*100/float64(total) <= float64(cfg.MaxEjectionPercent) ||
		(cfg.AlwaysEjectOne && o.active == 0)
	if !allowed {
		o.overflow.Add(1)
		return
	}
	if enforcing < 100 && (enforcing == 0 || rand.Uint32N(100) >= enforcing) {
		return
	}
	if gateway {
		o.enforcedGateway.Add(1)
	} else {
		o.enforced5xx.Add(1)
	}
	now := o.now()
	// The multiplier drops by one for each interval the endpoint stayed healthy since it
	// last returned, then grows by one for this ejection, as long as it does not pass the
	// cap.
	if !h.returnedAt.IsZero() && cfg.Interval > 0 {
		h.multiplier = max(0, h.multiplier-int(now.Sub(h.returnedAt)/cfg.Interval))
	}
	if time.Duration(h.multiplier)*cfg.BaseEjectionTime < cfg.MaxEjectionTime+cfg.BaseEjectionTime {
		h.multiplier++
	}
	d := min(time.Duration(h.multiplier)*cfg.BaseEjectionTime, cfg.MaxEjectionTime)
	if cfg.MaxJitter > 0 {
		d += rand.N(cfg.MaxJitter + 1)
	}
	h.ejected.Store(true)
	h.ejectedAt, h.returnAt = now, now.Add(d)
	h.ejections++
	o.active++
	o.recomputeNextReturn()
	o.gen.Add(1)
}

// returnDue brings back the ejected endpoints whose time has passed. o.mu must not be held.
func (o *outlier) returnDue(now time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	changed := false
	for _, h := range o.hosts {
		if h.ejected.Load() && !now.Before(h.returnAt) {
			h.ejected.Store(false)
			h.returnedAt = now
			// As in Envoy, a returning endpoint starts its runs afresh.
			h.consecutive5xx.Store(0)
			h.consecutiveGateway.Store(0)
			o.active--
			o.returns.Add(1)
			changed = true
		}
	}
	if changed {
		o.recomputeNextReturn()
		o.gen.Add(1)
	}
}

func (o *outlier) recomputeNextReturn() {
	var next int64
	for _, h := range o.hosts {
		if h.ejected.Load() {
			if t := h.returnAt.UnixNano(); next == 0 || t < next {
				next = t
			}
		}
	}
	o.nextReturn.Store(next)
}

// OutlierStats is a snapshot of a cluster's outlier detection.
type OutlierStats struct {
	// Enabled reports whether the cluster has outlier detection.
	Enabled bool
	// Active counts the endpoints ejected now.
	Active int
	// Ejected maps each ejected endpoint's address to when it returns.
	Ejected map[string]time.Time
	// Counters, named after Envoy's outlier_detection stats.
	Detected5xx, DetectedGateway, Enforced5xx, EnforcedGateway, Overflow uint64
}

// Outliers returns a snapshot of c's outlier detection.
func (c *Cluster) Outliers() OutlierStats {
	o := c.detector
	if c.Outlier == nil || o == nil {
		return OutlierStats{}
	}
	o.returnDue(o.now())
	o.mu.Lock()
	defer o.mu.Unlock()
	st := OutlierStats{Enabled: true, Active: o.active, Ejected: map[string]time.Time{},
		Detected5xx: o.detected5xx.Load(), DetectedGateway: o.detectedGateway.Load(),
		Enforced5xx: o.enforced5xx.Load(), EnforcedGateway: o.enforcedGateway.Load(),
		Overflow: o.overflow.Load()}
	for a, h := range o.hosts {
		if h.ejected.Load() {
			st.Ejected[a] = h.returnAt
		}
	}
	return st
}
