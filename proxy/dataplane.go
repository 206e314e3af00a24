package proxy

import (
	"context"
	"fmt"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"

	"github.com/sluicemesh/sluice/proxy/internal/cluster"
	"github.com/sluicemesh/sluice/proxy/internal/listener"
	"github.com/sluicemesh/sluice/proxy/internal/route"
	"github.com/sluicemesh/sluice/proxy/internal/xdsclient"
)

// routeHoldTimeout bounds how long a new route configuration waits for the clusters it
// newly sends traffic to, before it is used anyway (and those routes answer 503).
const routeHoldTimeout = cluster.DefaultWarmingTimeout

// dataplane turns accepted xDS resources into what the listeners serve. It is the
// xdsclient.Handler: it compiles each update (a compile error NACKs it), then recomputes the
// active configuration, applying Envoy's warming rules:
//
//   - An EDS cluster is used once its ClusterLoadAssignment has arrived, or once its
//     initial_fetch_timeout (15s by default) has passed, then without endpoints. Until then
//     an updated cluster keeps serving with its previous version.
//   - A listener is bound at once, but serves only once its RDS route configuration has
//     arrived (or its initial_fetch_timeout has passed, then with no routes). Until then an
//     updated listener keeps serving with its previous version.
//   - A route configuration version (RDS or inline) that sends traffic to a cluster that is
//     not in use yet, and was not referenced by the version being served, is held back
//     while that cluster warms, for up to 15s: the version being served stays. This is the
//     traffic-shift case: the server sends a new subset cluster and a route that splits
//     traffic to it, and the route must not win the race and send a share of requests to a
//     cluster with no endpoints yet. (Envoy has no such hold; it relies on the server
//     sending CDS and EDS before RDS.)
//
// All state is guarded by mu; requests never take it. Each recompute hands every listener a
// new immutable Serving (settings, route table, cluster set), which a request loads with one
// atomic read.
type dataplane struct {
	log       *slog.Logger
	pools     *cluster.Pools
	listeners *listener.Manager
	now       func() time.Time

	mu sync.Mutex
	// Accepted and compiled resources, by resource name.
	lds map[string]*compiledListener
	rds map[string]*compiledRoutes
	cds map[string]*compiledCluster
	eds map[string]*compiledAssignment
	// clusters is the cluster set in use.
	clusters cluster.Set
	// ldsSeen and cdsSeen record a first accepted LDS and CDS update.
	ldsSeen, cdsSeen bool
	// What is active: route tables by RDS name, inline tables by listener name.
	activeRDS    map[string]*route.Table
	activeInline map[string]*route.Table
	// removedAt records when CDS removed a cluster that routes still used.
	removedAt map[string]time.Time
	// Warming, as of the last recompute.
	warmingListeners, warmingClusters []string
	ready                             bool
	deadline                          time.Time // the next warming timeout, zero for none
	wake                              chan struct{}
}

type compiledListener struct {
	res   *xdsclient.Resource
	cfg   *listener.Config
	since time.Time
}

type compiledRoutes struct {
	res   *xdsclient.Resource
	table *route.Table
	since time.Time
}

type compiledCluster struct {
	res   *xdsclient.Resource
	cfg   *cluster.Config
	since time.Time
}

type compiledAssignment struct {
	res *xdsclient.Resource
	a   *cluster.Assignment
}

var _ xdsclient.Handler = (*dataplane)(nil)

func newDataplane(log *slog.Logger, pools *cluster.Pools, lm *listener.Manager) *dataplane {
	return &dataplane{
		log: log, pools: pools, listeners: lm, now: time.Now, clusters: cluster.Set{},
		lds: map[string]*compiledListener{}, rds: map[string]*compiledRoutes{},
		cds: map[string]*compiledCluster{}, eds: map[string]*compiledAssignment{},
		activeRDS: map[string]*route.Table{}, activeInline: map[string]*route.Table{},
		removedAt: map[string]time.Time{},
		wake:      make(chan struct{}, 1),
	}
}

// Update compiles one xDS update and applies it. An error rejects (NACKs) the update and
// leaves everything as it was.
func (d *dataplane) Update(typeURL, version string, resources map[string]*xdsclient.Resource) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	switch typeURL {
	case xdsclient.ListenerType:
		next := map[string]*compiledListener{}
		for name, res := range resources {
			if old, ok := d.lds[name]; ok && old.res == res {
				next[name] = old
				continue
			}
			cfg, err := listener.Compile(res.Message.(*listenerv3.Listener))
			if err != nil {
				return fmt.Errorf("listener %q: %w", name, err)
			}
			next[name] = &compiledListener{res: res, cfg: cfg, since: now}
		}
		prev, prevSeen := d.lds, d.ldsSeen
		d.lds, d.ldsSeen = next, true
		if err := d.recompute(now); err != nil {
			// A listener could not be bound: reject the update and serve as before.
			d.lds, d.ldsSeen = prev, prevSeen
			if rerr := d.recompute(now); rerr != nil {
				d.log.Error("restoring the previous listeners failed", "error", rerr)
			}
			return err
		}
		return nil
	case xdsclient.RouteType:
		next := map[string]*compiledRoutes{}
		for name, res := range resources {
			if old, ok := d.rds[name]; ok && old.res == res {
				next[name] = old
				continue
			}
			t, err := route.Compile(res.Message.(*routev3.RouteConfiguration))
			if err != nil {
				return fmt.Errorf("route configuration %q: %w", name, err)
			}
			next[name] = &compiledRoutes{res: res, table: t, since: now}
		}
		d.rds = next
	case xdsclient.ClusterType:
		next := map[string]*compiledCluster{}
		for name, res := range resources {
			if old, ok := d.cds[name]; ok && old.res == res {
				next[name] = old
				continue
			}
			cfg, err := cluster.Compile(res.Message.(*clusterv3.Cluster))
			if err != nil {
				return fmt.Errorf("cluster %q: %w", name, err)
			}
			next[name] = &compiledCluster{res: res, cfg: cfg, since: now}
		}
		d.cds, d.cdsSeen = next, true
	case xdsclient.EndpointType:
		next := map[string]*compiledAssignment{}
		for name, res := range resources {
			if old, ok := d.eds[name]; ok && old.res == res {
				next[name] = old
				continue
			}
			a, err := cluster.CompileAssignment(res.Message.(*endpointv3.ClusterLoadAssignment), false)
			if err != nil {
				return fmt.Errorf("cluster load assignment %q: %w", name, err)
			}
			next[name] = &compiledAssignment{res: res, a: a}
		}
		d.eds = next
	case xdsclient.SecretType:
		// Secrets are read by the listeners on every handshake: nothing to recompute.
		next := make(map[string]*tlsv3.Secret, len(resources))
		for name, res := range resources {
			next[name] = res.Message.(*tlsv3.Secret)
		}
		if err := d.listeners.SetSecrets(next); err != nil {
			return err
		}
		return nil
	default:
		return fmt.Errorf("resource type %s is not supported", typeURL)
	}
	if err := d.recompute(now); err != nil {
		// The update itself is fine; a listener failing is not its fault.
		d.log.Error("applying the configuration to the listeners failed", "error", err)
	}
	return nil
}

// recompute derives the active configuration from the accepted one and applies it.
func (d *dataplane) recompute(now time.Time) error {
	var deadline time.Time
	due := func(since time.Time, timeout time.Duration) bool {
		if timeout <= 0 {
			return false // an initial_fetch_timeout of 0s waits for ever
		}
		if end := since.Add(timeout); now.Before(end) {
			if deadline.IsZero() || end.Before(deadline) {
				deadline = end
			}
			return false
		}
		return true
	}

	// Clusters.
	prev := d.clusters
	next := cluster.Set{}
	var warmingClusters []string
	for name, cc := range d.cds {
		old := prev[name]
		if old != nil && d.removedAt[name] != (time.Time{}) {
			old = nil // a lingering removed cluster is not a previous version of a new one
		}
		delete(d.removedAt, name)
		var a *cluster.Assignment
		if cc.cfg.Discovery == cluster.EDS {
			ca := d.eds[cc.cfg.EDSName]
			switch {
			case ca != nil:
				a = ca.a
			case old != nil && old.Config.EDSName != cc.cfg.EDSName && !due(cc.since, cc.cfg.WarmingTimeout):
				// Updated to another assignment that has not arrived: keep the old version.
				warmingClusters = append(warmingClusters, name)
				next[name] = old
				continue
			case old == nil && !due(cc.since, cc.cfg.WarmingTimeout):
				warmingClusters = append(warmingClusters, name)
				continue
			}
		}
		if old != nil && old.Config == cc.cfg && old.Assignment == a {
			next[name] = old
		} else {
			next[name] = cluster.New(cc.cfg, a, old, d.pools)
		}
	}
	warming := map[string]bool{}
	for _, name := range warmingClusters {
		warming[name] = true
	}

	// Route tables. A new version that sends traffic to a cluster not in use waits for it:
	// for a first version only while the cluster is known but warming (or CDS has not come
	// yet), for a later version whenever the version being served did not use the cluster.
	routesReady := func(t, active *route.Table, since time.Time) bool {
		if t == active {
			return true
		}
		for _, c := range t.Clusters() {
			if _, ok := next[c]; ok {
				continue
			}
			if active == nil && d.cdsSeen && !warming[c] {
				continue // unknown: Envoy answers 503 NC for it, so does the proxy
			}
			if active != nil && slices.Contains(active.Clusters(), c) {
				continue
			}
			if !due(since, routeHoldTimeout) {
				return false
			}
			d.log.Warn("route configuration applied although a cluster it uses is missing",
				"route_config", t.Name, "cluster", c, "waited", routeHoldTimeout)
			return true
		}
		return true
	}
	for name, cr := range d.rds {
		if routesReady(cr.table, d.activeRDS[name], cr.since) {
			d.activeRDS[name] = cr.table
		}
	}
	for name := range d.activeRDS {
		if _, ok := d.rds[name]; !ok {
			delete(d.activeRDS, name)
		}
	}

	// Listeners.
	want := map[string]listener.Desired{}
	var warmingListeners []string
	for name, cl := range d.lds {
		var t *route.Table
		if cl.cfg.Inline != nil {
			if routesReady(cl.cfg.Inline, d.activeInline[name], cl.since) {
				d.activeInline[name] = cl.cfg.Inline
			}
			t = d.activeInline[name]
		} else {
			t = d.activeRDS[cl.cfg.RouteName]
			if t == nil && due(cl.since, cl.cfg.WarmingTimeout) {
				t = &route.Table{Name: cl.cfg.RouteName} // serve, answering 404 NR
			}
		}
		if t == nil {
			warmingListeners = append(warmingListeners, name)
		}
		want[name] = listener.Desired{Config: cl.cfg, Routes: t}
	}
	for name := range d.activeInline {
		if _, ok := d.lds[name]; !ok {
			delete(d.activeInline, name)
		}
	}

	// A cluster CDS removed stays while a route table still sends traffic to it, for up to
	// routeHoldTimeout: the server's new routes may arrive after its new clusters, and
	// requests must not meet a missing cluster meanwhile.
	served := d.servedClusters()
	for name, old := range prev {
		if _, ok := next[name]; ok || !served[name] {
			delete(d.removedAt, name)
			continue
		}
		since, ok := d.removedAt[name]
		if !ok {
			since = now
			d.removedAt[name] = since
		}
		if due(since, routeHoldTimeout) {
			delete(d.removedAt, name)
			continue
		}
		next[name] = old
	}
	if sameSet(prev, next) {
		next = prev
	}
	d.clusters = next
	for name, dl := range want {
		dl.Clusters = next
		want[name] = dl
	}
	err := d.listeners.Apply(want)

	sort.Strings(warmingClusters)
	sort.Strings(warmingListeners)
	d.warmingClusters, d.warmingListeners = warmingClusters, warmingListeners
	if !d.ready && err == nil && d.ldsSeen && d.cdsSeen && len(warmingClusters) == 0 && len(warmingListeners) == 0 {
		d.ready = true
		d.log.Info("configuration ready", "listeners", len(d.lds), "clusters", len(next))
	}
	d.deadline = deadline
	select {
	case d.wake <- struct{}{}:
	default:
	}
	return err
}

// servedClusters returns the clusters the active route tables send traffic to.
func (d *dataplane) servedClusters() map[string]bool {
	out := map[string]bool{}
	for _, tables := range []map[string]*route.Table{d.activeRDS, d.activeInline} {
		for _, t := range tables {
			for _, c := range t.Clusters() {
				out[c] = true
			}
		}
	}
	return out
}

func sameSet(a, b cluster.Set) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// run recomputes when a warming timeout passes, until ctx ends.
func (d *dataplane) run(ctx context.Context) error {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		d.mu.Lock()
		deadline := d.deadline
		d.mu.Unlock()
		timer.Stop()
		if !deadline.IsZero() {
			timer.Reset(max(0, deadline.Sub(d.now())))
		}
		select {
		case <-ctx.Done():
			return nil
		case <-d.wake:
		case <-timer.C:
			d.mu.Lock()
			d.log.Debug("warming timeout passed")
			if err := d.recompute(d.now()); err != nil {
				d.log.Error("applying the configuration to the listeners failed", "error", err)
			}
			d.mu.Unlock()
		}
	}
}

// Ready reports whether the first complete configuration is applied: LDS and CDS accepted,
// nothing warming, every listener bound and serving.
func (d *dataplane) Ready() bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ready
}

// Clusters returns the clusters in use.
func (d *dataplane) Clusters() cluster.Set {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.clusters
}

// Warming returns the names of the listeners and clusters still warming.
func (d *dataplane) Warming() (listeners, clusters []string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.warmingListeners, d.warmingClusters
}
