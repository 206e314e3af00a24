package cluster

import (
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Cluster is an upstream cluster ready for traffic: its compiled config, its endpoints and
// the balancer over them. Its config and endpoints are immutable; an update builds a new
// Cluster. What must outlive an update (in-flight counts, circuit breakers, ejections) is
// shared with the Cluster it replaces.
type Cluster struct {
	*Config
	// Endpoints are the endpoints EDS calls usable; empty means "no healthy upstream" unless
	// panic mode balances over the unhealthy ones.
	Endpoints []*Endpoint
	// Assignment is the load assignment the endpoints came from (nil while an EDS cluster has
	// none).
	Assignment *Assignment

	// unhealthy are EDS's unhealthy endpoints, for panic mode.
	unhealthy []*Endpoint
	// hosts is the balancer in use: over the healthy endpoints, or over all of them in panic
	// mode. Without outlier detection it never changes; with it, a pick that finds the
	// detector's generation moved on builds a new one.
	hosts   atomic.Pointer[hostSet]
	rebuild sync.Mutex
	// roundTrippers are the HTTP/1.1 and HTTP/2 transports (see RoundTripper).
	roundTrippers [2]http.RoundTripper
	// breaker and detector are shared by every version of the cluster.
	breaker  *breaker
	detector *outlier
}

// hostSet is a balancer over the endpoints a cluster sends to at one moment.
type hostSet struct {
	gen      uint64
	selector Selector
	panic    bool
}

// New builds a Cluster from its config and, for EDS, its assignment (nil for none yet). prev,
// the cluster it replaces (or nil), lends its in-flight counters, circuit breakers and
// outlier detector. Its connections come from pools.
func New(cfg *Config, a *Assignment, prev *Cluster, pools *Pools) *Cluster {
	if cfg.Discovery != EDS {
		a = cfg.Static
	}
	old := map[string]*load{}
	if prev != nil {
		for _, e := range prev.all() {
			old[e.Address] = e.load
		}
	}
	c := &Cluster{Config: cfg, Assignment: a, roundTrippers: pools.roundTrippers(cfg, a)}
	if prev != nil && prev.Name == cfg.Name {
		c.breaker = prev.breaker
		if cfg.Outlier != nil {
			c.detector = prev.detector
		}
	}
	if c.breaker == nil {
		c.breaker = &breaker{}
	}
	if cfg.Outlier != nil && c.detector == nil {
		c.detector = newOutlier()
	}
	endpoint := func(spec EndpointSpec) *Endpoint {
		l := old[spec.Address]
		if l == nil {
			l = &load{}
		}
		e := &Endpoint{Address: spec.Address, Weight: spec.Weight, load: l}
		if a != nil {
			e.Identity = a.Identities[spec.Address]
		}
		return e
	}
	if a != nil {
		for _, spec := range a.Endpoints {
			c.Endpoints = append(c.Endpoints, endpoint(spec))
		}
		for _, spec := range a.Unhealthy {
			c.unhealthy = append(c.unhealthy, endpoint(spec))
		}
	}
	if c.detector != nil {
		all := c.all()
		addrs := make([]string, len(all))
		for i, e := range all {
			addrs[i] = e.Address
		}
		states := c.detector.track(addrs)
		for _, e := range all {
			e.outlier = states[e.Address]
		}
		c.hosts.Store(c.buildHosts(c.detector.gen.Load()))
	} else {
		c.hosts.Store(c.buildHosts(0))
	}
	return c
}

// all returns every endpoint of the cluster, healthy first.
func (c *Cluster) all() []*Endpoint {
	if len(c.unhealthy) == 0 {
		return c.Endpoints
	}
	return append(slices.Clip(c.Endpoints), c.unhealthy...)
}

// buildHosts builds the balancer for the endpoints usable now: those EDS calls healthy and
// outlier detection has not ejected, unless they are fewer than the panic threshold's share
// of all endpoints: then, as in Envoy's panic mode, all of them.
func (c *Cluster) buildHosts(gen uint64) *hostSet {
	all := c.all()
	healthy := c.Endpoints
	if c.detector != nil {
		healthy = make([]*Endpoint, 0, len(c.Endpoints))
		for _, e := range c.Endpoints {
			if !e.outlier.ejected.Load() {
				healthy = append(healthy, e)
			}
		}
	}
	hs := &hostSet{gen: gen}
	if len(all) > 0 && float64(len(healthy))*100/float64(len(all)) < c.PanicThreshold {
		hs.panic = true
		healthy = all
	}
	hs.selector = newSelector(c.Config, healthy)
	return hs
}

// current returns the balancer to use now, bringing back ejected endpoints whose time has
// come and rebuilding after ejections.
func (c *Cluster) current() *hostSet {
	hs := c.hosts.Load()
	o := c.detector
	if o == nil {
		if hs.panic {
			c.breaker.panicPicks.Add(1)
		}
		return hs
	}
	if next := o.nextReturn.Load(); next != 0 {
		if now := o.now(); now.UnixNano() >= next {
			o.returnDue(now)
		}
	}
	if gen := o.gen.Load(); hs.gen != gen {
		c.rebuild.Lock()
		if hs = c.hosts.Load(); hs.gen != gen {
			hs = c.buildHosts(gen)
			c.hosts.Store(hs)
		}
		c.rebuild.Unlock()
	}
	if hs.panic {
		c.breaker.panicPicks.Add(1)
	}
	return hs
}

// PanicPicks counts the picks made in panic mode (Envoy's lb_healthy_panic).
func (c *Cluster) PanicPicks() uint64 { return c.breaker.panicPicks.Load() }

// Pick returns the endpoint for the next request, or nil when the cluster has none to send
// to ("no healthy upstream"). A hash balancer picks at random.
func (c *Cluster) Pick() *Endpoint { return c.current().selector.Select() }

// PickKey returns the endpoint for a request with hash key k: a hash balancer maps the key
// to its endpoint; other balancers ignore it.
func (c *Cluster) PickKey(k Key) *Endpoint {
	sel := c.current().selector
	if hs, ok := sel.(hashSelector); ok && k.Set {
		return hs.selectHash(k.Hash, 0)
	}
	return sel.Select()
}

// PickAvoiding returns the endpoint for a retry, preferring one not in tried (Envoy's
// previous_hosts retry predicate): it picks again up to reselect times (a hash balancer
// takes the key's next alternatives, as Envoy's do), then takes the last pick, so a
// cluster of one endpoint still gets its retries.
func (c *Cluster) PickAvoiding(k Key, tried []*Endpoint, reselect int) *Endpoint {
	sel := c.current().selector
	hs, hashed := sel.(hashSelector)
	if hashed && !k.Set {
		k = Key{Hash: rand.Uint64(), Set: true}
	}
	var ep *Endpoint
	for attempt := range reselect + 1 {
		if hashed {
			ep = hs.selectHash(k.Hash, attempt)
		} else {
			ep = sel.Select()
		}
		if ep == nil || !slices.Contains(tried, ep) {
			return ep
		}
	}
	return ep
}

// Set is an immutable set of clusters by name, swapped whole on every update.
type Set map[string]*Cluster

// setClock replaces the detector's clock, for tests.
func (c *Cluster) setClock(now func() time.Time) {
	if c.detector != nil {
		c.detector.now = now
	}
}

// HostStatus describes one endpoint of a cluster for the admin endpoints.
type HostStatus struct {
	// Address is the endpoint's "host:port".
	Address string
	// EDSHealthy reports whether EDS calls the endpoint usable.
	EDSHealthy bool
	// Ejected reports whether outlier detection has ejected it.
	Ejected bool
	// Active counts its requests in flight.
	Active int64
}

// Hosts describes every endpoint of c, healthy first.
func (c *Cluster) Hosts() []HostStatus {
	c.current() // bring back endpoints whose ejection has ended
	var out []HostStatus
	for i, e := range c.all() {
		out = append(out, HostStatus{Address: e.Address, EDSHealthy: i < len(c.Endpoints),
			Ejected: e.outlier != nil && e.outlier.ejected.Load(), Active: e.Active()})
	}
	return out
}
