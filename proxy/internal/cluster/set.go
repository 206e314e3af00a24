package cluster

// Cluster is an upstream cluster ready for traffic: its compiled config, its usable endpoints
// and the balancer over them. It is immutable; an update builds a new one.
type Cluster struct {
	*Config
	// Endpoints are the endpoints traffic may go to; empty means "no healthy upstream".
	Endpoints []*Endpoint
	// Assignment is the load assignment the endpoints came from (nil while an EDS cluster has
	// none).
	Assignment *Assignment

	selector   Selector
	transports *Transports
}

// New builds a Cluster from its config and, for EDS, its assignment (nil for none yet). prev,
// the cluster it replaces (or nil), lends its in-flight counters to endpoints that remain.
// Its connections come from pools.
func New(cfg *Config, a *Assignment, prev *Cluster, pools *Pools) *Cluster {
	if cfg.Discovery != EDS {
		a = cfg.Static
	}
	old := map[string]*load{}
	if prev != nil {
		for _, e := range prev.Endpoints {
			old[e.Address] = e.load
		}
	}
	c := &Cluster{Config: cfg, Assignment: a, transports: pools.For(cfg.ConnectTimeout)}
	if a != nil {
		for _, spec := range a.Endpoints {
			l := old[spec.Address]
			if l == nil {
				l = &load{}
			}
			c.Endpoints = append(c.Endpoints, &Endpoint{Address: spec.Address, Weight: spec.Weight, load: l})
		}
	}
	c.selector = newSelector(cfg.Policy, c.Endpoints)
	return c
}

// Pick returns the endpoint for the next request, or nil when the cluster has none.
func (c *Cluster) Pick() *Endpoint { return c.selector.Select() }

// Set is an immutable set of clusters by name, swapped whole on every update.
type Set map[string]*Cluster
