// Package registry keeps the set of workloads in the mesh. In universal mode every proxy
// registers itself through its xDS node metadata: the xDS server calls Connect when a stream
// opens, Drain when the proxy announces a graceful shutdown, and Disconnect when the stream
// closes. A disconnected workload keeps its endpoints for a grace period, so that a control
// plane restart or a brief network fault does not empty the mesh; after that it is removed.
//
// The registry is the domain side: it holds no I/O of its own and persists through the Store
// interface, which the PostgreSQL adapter implements.
package registry

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/sluicemesh/sluice/internal/meta"
)

// Workload is one registered proxy instance and the application behind it.
type Workload struct {
	// NodeID is the proxy's xDS node id, unique in the mesh.
	NodeID         string
	Namespace      string
	Service        string
	Name           string
	Mode           string // meta.ModeSidecar or meta.ModeGateway
	Labels         map[string]string
	Address        netip.Addr
	Ports          []meta.PortMapping
	ServiceAccount string
	ConnectedAt    time.Time
	// DisconnectedAt is zero while the proxy's stream is open.
	DisconnectedAt time.Time
	// Health is the application's health as its sidecar last reported it. It is not
	// persisted: a reconnecting sidecar reports it again in its first request.
	Health Health
}

// Health is an application's readiness as its sidecar probes it. The zero value is ready: a
// proxy that does not probe never takes its workload out of load balancing.
type Health struct {
	// NotReady is true while the sidecar's probe fails; Reason says how.
	NotReady bool
	Reason   string
	// Since is when the server learned the current state.
	Since time.Time
}

// Version returns the workload's "version" label, or "" when it has none.
func (w Workload) Version() string { return w.Labels["version"] }

// Store persists workloads. Implemented by the PostgreSQL store.
type Store interface {
	UpsertWorkload(ctx context.Context, w Workload) error
	MarkDisconnected(ctx context.Context, nodeID string, at time.Time) error
	DeleteWorkload(ctx context.Context, nodeID string) error
	// ListWorkloads returns every stored workload.
	ListWorkloads(ctx context.Context) ([]Workload, error)
}

// Registry is the in-memory view of the mesh's workloads, written through to a Store.
type Registry struct {
	store Store
	log   *slog.Logger
	grace time.Duration
	now   func() time.Time

	mu        sync.Mutex
	workloads map[string]*entry
	changed   chan struct{} // capacity 1: a pending change notification
}

type entry struct {
	w        Workload
	streams  int  // open xDS streams of this node
	draining bool // announced a graceful shutdown: out of every endpoint set
}

// New returns a registry persisting to store. grace is how long a disconnected workload keeps
// its endpoints; zero means the default of 10 s.
func New(store Store, log *slog.Logger, grace time.Duration) *Registry {
	if grace <= 0 {
		grace = 10 * time.Second
	}
	return &Registry{
		store:     store,
		log:       log,
		grace:     grace,
		now:       time.Now,
		workloads: map[string]*entry{},
		changed:   make(chan struct{}, 1),
	}
}

// Load reads the stored workloads at start. Every one of them counts as disconnected from now:
// its proxy will reconnect to this server within its backoff, and one that does not is
// removed after the grace period.
func (r *Registry) Load(ctx context.Context) error {
	ws, err := r.store.ListWorkloads(ctx)
	if err != nil {
		return fmt.Errorf("load workloads: %w", err)
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, w := range ws {
		if w.DisconnectedAt.IsZero() {
			w.DisconnectedAt = now
			if err := r.store.MarkDisconnected(ctx, w.NodeID, now); err != nil {
				return fmt.Errorf("load workloads: %w", err)
			}
		}
		r.workloads[w.NodeID] = &entry{w: w}
	}
	r.notifyLocked()
	return nil
}

// Connect records that the proxy of w opened a stream. It is called for every stream, and
// again when the proxy's metadata changes.
func (r *Registry) Connect(ctx context.Context, w Workload) error {
	w.ConnectedAt = r.now()
	w.DisconnectedAt = time.Time{}
	if err := r.store.UpsertWorkload(ctx, w); err != nil {
		return fmt.Errorf("register workload %s: %w", w.NodeID, err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.workloads[w.NodeID]
	if !ok {
		e = &entry{}
		r.workloads[w.NodeID] = e
		r.log.Info("workload registered", "node_id", w.NodeID, "service", w.Service, "namespace", w.Namespace, "address", w.Address.String())
	}
	if w.Health.NotReady == e.w.Health.NotReady && w.Health.Reason == e.w.Health.Reason {
		w.Health.Since = e.w.Health.Since
	} else {
		w.Health.Since = w.ConnectedAt
	}
	e.w = w
	e.streams++
	e.draining = false
	r.notifyLocked()
	return nil
}

// Drain takes the workload out of every endpoint set at once: its proxy is shutting down
// gracefully and finishes its in-flight requests while its peers stop sending new ones.
func (r *Registry) Drain(ctx context.Context, nodeID string) error {
	r.mu.Lock()
	e, ok := r.workloads[nodeID]
	if !ok || e.draining {
		r.mu.Unlock()
		return nil
	}
	e.draining = true
	r.notifyLocked()
	r.mu.Unlock()
	r.log.Info("workload draining", "node_id", nodeID)
	if err := r.store.DeleteWorkload(ctx, nodeID); err != nil {
		return fmt.Errorf("drain workload %s: %w", nodeID, err)
	}
	return nil
}

// SetHealth records the application health the proxy of nodeID reports. A change moves the
// workload's endpoints in or out of load balancing on every proxy. It reports whether the
// health changed.
func (r *Registry) SetHealth(nodeID string, notReady bool, reason string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.workloads[nodeID]
	if !ok || (e.w.Health.NotReady == notReady && e.w.Health.Reason == reason) {
		return false
	}
	e.w.Health = Health{NotReady: notReady, Reason: reason, Since: r.now()}
	if notReady {
		r.log.Warn("workload not ready", "node_id", nodeID, "reason", reason)
	} else {
		r.log.Info("workload ready", "node_id", nodeID)
	}
	r.notifyLocked()
	return true
}

// Disconnect records that one stream of the node closed. When its last stream is gone the
// workload keeps its endpoints for the grace period (or leaves at once if it was draining).
func (r *Registry) Disconnect(ctx context.Context, nodeID string) error {
	r.mu.Lock()
	e, ok := r.workloads[nodeID]
	if !ok {
		r.mu.Unlock()
		return nil
	}
	if e.streams > 0 {
		e.streams--
	}
	if e.streams > 0 {
		r.mu.Unlock()
		return nil
	}
	if e.draining {
		delete(r.workloads, nodeID)
		r.notifyLocked()
		r.mu.Unlock()
		r.log.Info("workload left", "node_id", nodeID, "reason", "drained")
		return nil
	}
	at := r.now()
	e.w.DisconnectedAt = at
	r.mu.Unlock()
	r.log.Info("workload disconnected", "node_id", nodeID, "grace", r.grace.String())
	if err := r.store.MarkDisconnected(ctx, nodeID, at); err != nil {
		return fmt.Errorf("disconnect workload %s: %w", nodeID, err)
	}
	return nil
}

// Reap removes the workloads whose grace period has run out and reports how many left.
func (r *Registry) Reap(ctx context.Context) (int, error) {
	now := r.now()
	r.mu.Lock()
	var gone []string
	for id, e := range r.workloads {
		if e.streams == 0 && !e.w.DisconnectedAt.IsZero() && now.Sub(e.w.DisconnectedAt) >= r.grace {
			gone = append(gone, id)
			delete(r.workloads, id)
		}
	}
	if len(gone) > 0 {
		r.notifyLocked()
	}
	r.mu.Unlock()
	for _, id := range gone {
		r.log.Info("workload left", "node_id", id, "reason", "grace period ended")
		if err := r.store.DeleteWorkload(ctx, id); err != nil {
			return len(gone), fmt.Errorf("reap workload %s: %w", id, err)
		}
	}
	return len(gone), nil
}

// Run reaps expired workloads until ctx ends.
func (r *Registry) Run(ctx context.Context) error {
	tick := time.NewTicker(min(r.grace/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
			if _, err := r.Reap(ctx); err != nil && ctx.Err() == nil {
				r.log.Warn("reap workloads", "error", err)
			}
		}
	}
}

// Changed returns a channel that receives a value after any change to the endpoint sets. A
// burst of changes delivers at least one value; the receiver then reads Endpoints again.
func (r *Registry) Changed() <-chan struct{} { return r.changed }

func (r *Registry) notifyLocked() {
	select {
	case r.changed <- struct{}{}:
	default:
	}
}

// Endpoints returns the workloads that receive traffic: every registered one that is not
// draining and is connected or within its grace period, including those whose application is
// not ready (Health.NotReady), which the translator sends as UNHEALTHY so that every proxy
// shows them and none balances to them. Sorted by node id.
func (r *Registry) Endpoints() []Workload {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Workload, 0, len(r.workloads))
	for _, e := range r.workloads {
		if e.draining {
			continue
		}
		w := e.w
		w.Labels = maps.Clone(w.Labels)
		w.Ports = slices.Clone(w.Ports)
		out = append(out, w)
	}
	slices.SortFunc(out, func(a, b Workload) int { return cmp.Compare(a.NodeID, b.NodeID) })
	return out
}

// Entry is a registered workload with its connection state.
type Entry struct {
	Workload
	Connected bool
	Draining  bool
}

// List returns every registered workload, connected or within its grace period, sorted by
// node id.
func (r *Registry) List() []Entry {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]Entry, 0, len(r.workloads))
	for _, e := range r.workloads {
		w := e.w
		w.Labels = maps.Clone(w.Labels)
		w.Ports = slices.Clone(w.Ports)
		out = append(out, Entry{Workload: w, Connected: e.streams > 0, Draining: e.draining})
	}
	slices.SortFunc(out, func(a, b Entry) int { return cmp.Compare(a.NodeID, b.NodeID) })
	return out
}

// Get returns the workload registered under nodeID.
func (r *Registry) Get(nodeID string) (Workload, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.workloads[nodeID]
	if !ok {
		return Workload{}, false
	}
	return e.w, true
}
