// Package xds turns the mesh (the registry's workloads, and the stored configuration as it
// lands) into Envoy v3 resources and streams them to proxies over ADS.
//
// Watch, translate, stream: the registry and the store publish changes; Run debounces them,
// rebuilds every connected proxy's configuration with pure builders (translate.go), and hands
// each proxy a snapshot to go-control-plane's cache, which streams it. A proxy's snapshot
// changes only in the types whose content changed for it, so an unrelated change pushes
// nothing, and each type's version is the mesh version at which its content last changed.
// Versions come from a PostgreSQL sequence, so a restarted server never reuses one.
package xds

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	serverv3 "github.com/envoyproxy/go-control-plane/pkg/server/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/changes"
	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/registry"
	"github.com/sluicemesh/sluice/server/internal/store"
)

// Debounce bounds: a push waits for Quiet without further changes, but never longer than a
// maximum delay after the first change, so a steady trickle of changes cannot starve pushes.
// The maximum is MaxDelay, or MaxDelayFactor times as long as the last push took to build
// when that is longer, up to MaxDelayCap: while a thousand proxies connect one after the
// other, every connection changes the endpoints of all, and pushing each change to every
// proxy as it comes would spend the server on pushes soon superseded. A lone change still
// goes out after Quiet.
const (
	debounceQuiet          = 10 * time.Millisecond
	debounceMaxDelay       = 50 * time.Millisecond
	debounceMaxDelayFactor = 4
	debounceMaxDelayCap    = time.Second
)

// maxDelay is the debounce's longest wait after a push that took built to build.
func maxDelay(built time.Duration) time.Duration {
	return min(max(debounceMaxDelay, debounceMaxDelayFactor*built), debounceMaxDelayCap)
}

// Versioner hands out mesh-wide config versions. The PostgreSQL store implements it.
type Versioner interface {
	NextVersion(ctx context.Context) (int64, error)
}

// Server is the ADS server: it registers proxies in the registry as they connect and keeps
// each one's snapshot current.
type Server struct {
	log      *slog.Logger
	reg      *registry.Registry
	versions Versioner
	cache    cachev3.SnapshotCache
	xds      serverv3.Server
	kick     chan struct{}

	// source is where the mesh configuration comes from; config is its latest decoded state.
	source   ConfigSource
	config   atomic.Pointer[loadedConfig]
	features Features
	// trustDomain is the SPIFFE trust domain of workload identities (SetTrustDomain).
	trustDomain string
	// halted holds the FaultExperiment runs ended early (SetHaltedExperiments).
	halted atomic.Pointer[map[RunKey]bool]
	// secrets holds the gateways' TLS credentials (SetSecrets, gatewaytls.go).
	secrets gatewaySecrets

	// events tells subscribers which proxies' sync state changed (events.go).
	events eventHub

	// idents holds the workload identity of each stream opened on the authenticated port.
	idents sync.Map // stream id (int64) → auth.WorkloadIdentity

	mu       sync.Mutex
	streams  map[int64]string // stream id → node id, once the first request named the node
	nodes    map[string]*nodeState
	problems []Problem
}

// loadedConfig is the configuration as of a committed revision.
type loadedConfig struct {
	config   *Config
	revision int64
}

// ConfigSource is the configuration store: its resources, and the feed of committed revisions.
type ConfigSource interface {
	List(ctx context.Context, kind, namespace string) ([]*store.Object, error)
	CurrentRevision(ctx context.Context) (int64, error)
	Subscribe(ctx context.Context, after int64, fn func(store.Revision) error) error
}

// nodeState is what the server knows of one connected proxy.
type nodeState struct {
	workload registry.Workload
	streams  int
	// hashes and versions of the last snapshot, per type URL.
	hashes   map[string]uint64
	versions map[string]string
	status   streamStatus
	// syncedRevision is the newest configuration revision whose snapshot the proxy has ACKed
	// in every type, and syncedAt when that happened; pending are the newer snapshots.
	syncedRevision int64
	syncedAt       time.Time
	pending        []pendingSync
	// empty marks the types of which the last snapshot held no resource.
	empty map[string]bool
	// requested holds a proxyless client's subscribed names by type URL.
	requested map[string][]string
	// last is the last snapshot handed to the cache.
	last *cachev3.Snapshot
	// gen counts the streams opened for this node; own is a sidecar's own resources as
	// last built for the workload of that stream (ownSet).
	gen int64
	own *ownSet
}

// expect records that the proxy's current snapshot reflects configuration revision rev: once
// it has ACKed the snapshot's version of every type, it is in sync with rev.
func (n *nodeState) expect(rev int64) {
	want := make(map[string]string, len(n.versions))
	for typ, v := range n.versions {
		// A proxy never asks for a type it has nothing of (a gateway without routes).
		if !n.empty[typ] {
			want[typ] = v
		}
	}
	n.pending = append(n.pending, pendingSync{revision: rev, versions: want})
	n.settle()
}

// settle advances syncedRevision past every pending snapshot the proxy has fully ACKed.
func (n *nodeState) settle() {
	for len(n.pending) > 0 {
		last := -1
		for i, p := range n.pending {
			ok := true
			for typ, v := range p.versions {
				if n.status.acked[typ] != v {
					ok = false
					break
				}
			}
			if ok {
				last = i
			}
		}
		if last < 0 {
			return
		}
		if r := n.pending[last].revision; r > n.syncedRevision {
			n.syncedRevision = r
			n.syncedAt = time.Now()
		}
		n.pending = n.pending[last+1:]
	}
}

// pendingSync is a snapshot a proxy has not fully ACKed yet.
type pendingSync struct {
	revision int64
	versions map[string]string
}

// streamStatus is what a proxy has acknowledged, keyed by type URL.
type streamStatus struct {
	acked    map[string]string // last version ACKed
	sent     map[string]string // last version sent
	nack     map[string]string // last NACK message, cleared by a later ACK
	lastSync time.Time
}

// New returns an ADS server. Call Register to attach it to a gRPC server, LoadConfig before
// serving, and Run to keep the snapshots current. features lists what the proxies enforce.
func New(ctx context.Context, log *slog.Logger, reg *registry.Registry, versions Versioner, source ConfigSource, features Features) *Server {
	s := &Server{
		log:      log,
		reg:      reg,
		versions: versions,
		source:   source,
		features: features,
		cache:    cachev3.NewSnapshotCache(true, cachev3.IDHash{}, cacheLogger{log.With("part", "snapshot-cache")}),
		kick:     make(chan struct{}, 1),
		streams:  map[int64]string{},
		nodes:    map[string]*nodeState{},
	}
	s.xds = serverv3.NewServer(ctx, s.cache, serverv3.CallbackFuncs{
		StreamOpenFunc:     s.onStreamOpen,
		StreamClosedFunc:   s.onStreamClosed,
		StreamRequestFunc:  s.onStreamRequest,
		StreamResponseFunc: s.onStreamResponse,
	})
	return s
}

// Register attaches the ADS service to g.
func (s *Server) Register(g *grpc.Server) {
	discoveryv3.RegisterAggregatedDiscoveryServiceServer(g, s.xds)
}

func (s *Server) onStreamOpen(ctx context.Context, id int64, typeURL string) error {
	if typeURL != resourcev3.AnyType {
		return status.Errorf(codes.Unimplemented, "only ADS (StreamAggregatedResources) is served; got a stream for %s", typeURL)
	}
	if ident, ok := streamIdentity(ctx); ok {
		s.idents.Store(id, ident)
	}
	return nil
}

func (s *Server) onStreamRequest(id int64, req *discoveryv3.DiscoveryRequest) error {
	s.mu.Lock()
	nodeID, known := s.streams[id]
	s.mu.Unlock()
	if !known {
		w, err := WorkloadFromNode(req.GetNode())
		if err != nil {
			s.log.Warn("proxy refused", "node_id", req.GetNode().GetId(), "error", err)
			return status.Error(codes.InvalidArgument, err.Error())
		}
		ident, authenticated := s.idents.Load(id)
		if err := checkIdentity(asIdentity(ident), authenticated, w); err != nil {
			s.log.Warn("proxy refused", "node_id", w.NodeID, "error", err)
			return err
		}
		if err := s.reg.Connect(context.Background(), w); err != nil {
			s.log.Error("register proxy", "node_id", w.NodeID, "error", err)
			return status.Error(codes.Unavailable, "the control plane cannot record this proxy right now; retrying will help")
		}
		nodeID = w.NodeID
		s.mu.Lock()
		s.streams[id] = nodeID
		n := s.nodes[nodeID]
		if n == nil {
			n = &nodeState{hashes: map[string]uint64{}, versions: map[string]string{}}
			n.status = streamStatus{acked: map[string]string{}, sent: map[string]string{}, nack: map[string]string{}}
			s.nodes[nodeID] = n
		}
		n.workload = w
		n.gen++
		n.own = nil
		n.streams++
		s.mu.Unlock()
		s.events.notify(nodeID)
		s.Kick()
	}
	if v, ok := req.GetNode().GetMetadata().GetFields()[meta.KeyAppHealth]; ok && known {
		notReady, reason := appHealth(v.GetStringValue())
		if s.reg.SetHealth(nodeID, notReady, reason) {
			s.events.notify(nodeID)
		}
	}
	if req.GetNode().GetMetadata().GetFields()[meta.KeyDraining].GetStringValue() == "true" {
		if err := s.reg.Drain(context.Background(), nodeID); err != nil {
			s.log.Error("drain proxy", "node_id", nodeID, "error", err)
		}
	}
	s.noteRequested(nodeID, req)
	if req.GetResponseNonce() == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[nodeID]
	if n == nil {
		return nil
	}
	n.status.lastSync = time.Now()
	if d := req.GetErrorDetail(); d != nil {
		n.status.nack[req.GetTypeUrl()] = d.GetMessage()
		s.log.Warn("proxy rejected config", "node_id", nodeID, "type", shortType(req.GetTypeUrl()), "error", d.GetMessage())
		s.events.notify(nodeID)
		return nil
	}
	delete(n.status.nack, req.GetTypeUrl())
	n.status.acked[req.GetTypeUrl()] = req.GetVersionInfo()
	n.settle()
	s.events.notify(nodeID)
	return nil
}

func (s *Server) onStreamResponse(_ context.Context, id int64, _ *discoveryv3.DiscoveryRequest, resp *discoveryv3.DiscoveryResponse) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[s.streams[id]]; n != nil {
		n.status.sent[resp.GetTypeUrl()] = resp.GetVersionInfo()
	}
}

func (s *Server) onStreamClosed(id int64, _ *corev3.Node) {
	s.idents.Delete(id)
	s.mu.Lock()
	nodeID, ok := s.streams[id]
	delete(s.streams, id)
	if ok {
		if n := s.nodes[nodeID]; n != nil {
			n.streams--
			if n.streams <= 0 {
				delete(s.nodes, nodeID)
				s.cache.ClearSnapshot(nodeID)
			}
		}
	}
	s.mu.Unlock()
	if !ok {
		return
	}
	if err := s.reg.Disconnect(context.Background(), nodeID); err != nil {
		s.log.Error("disconnect proxy", "node_id", nodeID, "error", err)
	}
	s.events.notify(nodeID)
}

// noteRequested keeps the resource names a proxyless client subscribes to. Unlike Envoy, it
// names every resource it wants, and go-control-plane answers an ADS subscription only with a
// snapshot holding no other resource of that type; a change of names triggers a push.
func (s *Server) noteRequested(nodeID string, req *discoveryv3.DiscoveryRequest) {
	s.mu.Lock()
	n := s.nodes[nodeID]
	if n == nil || n.workload.Mode != meta.ModeProxyless {
		s.mu.Unlock()
		return
	}
	if n.requested == nil {
		n.requested = map[string][]string{}
	}
	names := slices.Sorted(slices.Values(req.GetResourceNames()))
	changed := !slices.Equal(n.requested[req.GetTypeUrl()], names)
	n.requested[req.GetTypeUrl()] = names
	s.mu.Unlock()
	if changed {
		s.Kick()
	}
}

// onlyRequested keeps the resources a proxyless client asked for, by type.
func (s *Server) onlyRequested(id string, byType map[string][]types.Resource) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[id]
	if n == nil {
		return
	}
	for typ, items := range byType {
		want := n.requested[typ]
		var kept []types.Resource
		for _, r := range items {
			if slices.Contains(want, cachev3.GetResourceName(r)) {
				kept = append(kept, r)
			}
		}
		byType[typ] = kept
	}
}

// Kick asks for a rebuild of every proxy's snapshot.
func (s *Server) Kick() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// LoadConfig reads the whole stored configuration and returns the revision it reflects.
func (s *Server) LoadConfig(ctx context.Context) (int64, error) {
	// The revision is read first: a commit landing in between is delivered again by the feed,
	// which is harmless, while reading it after the list could skip one.
	rev, err := s.source.CurrentRevision(ctx)
	if err != nil {
		return 0, fmt.Errorf("load configuration: %w", err)
	}
	objs, err := s.source.List(ctx, "", "")
	if err != nil {
		return 0, fmt.Errorf("load configuration: %w", err)
	}
	rs := make([]*config.Resource, 0, len(objs))
	for _, o := range objs {
		r, err := changes.FromObject(o)
		if err != nil {
			// A stored resource that no longer decodes is skipped, not fatal: the rest of
			// the mesh keeps being served.
			s.log.Error("stored resource skipped", "resource", o.Key().String(), "error", err)
			continue
		}
		rs = append(rs, r)
	}
	s.config.Store(&loadedConfig{config: IndexConfig(rs), revision: rev})
	return rev, nil
}

// WatchConfig reloads the configuration after every committed revision newer than after,
// and pushes it, until ctx ends.
func (s *Server) WatchConfig(ctx context.Context, after int64) error {
	return s.source.Subscribe(ctx, after, func(r store.Revision) error {
		if _, err := s.LoadConfig(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Error("reload configuration", "revision", r.Revision, "error", err)
			return nil
		}
		s.log.Debug("configuration changed", "revision", r.Revision, "actor", r.Actor)
		s.Kick()
		return nil
	})
}

// Run rebuilds snapshots after every change until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	var built time.Duration // how long the last push took to build
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.reg.Changed():
		case <-s.kick:
		}
		if !s.debounce(ctx, maxDelay(built)) {
			return nil
		}
		for {
			start := time.Now()
			err := s.Push(ctx)
			built = time.Since(start)
			if err == nil || ctx.Err() != nil {
				break
			}
			// Only the version sequence can fail; the database may be restarting.
			s.log.Error("push config", "error", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
		}
	}
}

// debounce waits until no change arrived for debounceQuiet, or longest passed.
func (s *Server) debounce(ctx context.Context, longest time.Duration) bool {
	deadline := time.NewTimer(longest)
	defer deadline.Stop()
	quiet := time.NewTimer(debounceQuiet)
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return true
		case <-quiet.C:
			return true
		case <-s.reg.Changed():
		case <-s.kick:
		}
		quiet.Reset(debounceQuiet)
	}
}

// Push builds every connected proxy's configuration from the current mesh and updates the
// snapshots whose content changed.
func (s *Server) Push(ctx context.Context) error {
	start := time.Now()
	mesh := BuildMesh(s.reg.Endpoints())
	loaded := s.config.Load()
	if loaded == nil {
		loaded = &loadedConfig{}
	}
	mesh.Config = loaded.config
	mesh.Features = s.features
	mesh.TrustDomain = s.trustDomain
	mesh.Now, mesh.Halted = time.Now(), s.haltedExperiments()
	version, err := s.versions.NextVersion(ctx)
	if err != nil {
		return err
	}
	v := strconv.FormatInt(version, 10)

	type nodeInput struct {
		w   registry.Workload
		gen int64
		own *ownSet
	}
	s.mu.Lock()
	nodes := make(map[string]nodeInput, len(s.nodes))
	for id, n := range s.nodes {
		nodes[id] = nodeInput{w: n.workload, gen: n.gen, own: n.own}
	}
	s.mu.Unlock()
	var listenerInputs uint64
	if loaded.config != nil {
		listenerInputs = loaded.config.listenerInputs
	} else {
		listenerInputs = hashListenerInputs(&Config{})
	}

	sh := newShared(mesh)
	var secrets map[string]GatewaySecret
	if p := s.secrets.Load(); p != nil {
		secrets = *p
	}
	// The resources every sidecar gets are encoded once here, not once per stream.
	clusters, clusterHash, err := marshalAll(sh.clusters)
	if err != nil {
		return s.skipPush(err)
	}
	endpoints, endpointHash, err := marshalAll(sh.endpoints)
	if err != nil {
		return s.skipPush(err)
	}
	endpointNames := resourceNames(sh.endpoints)
	endpointIndex := index(endpoints)
	if err := sameNames(resourcev3.EndpointType, references(sh.clusters), endpointNames); err != nil {
		return s.skipPush(fmt.Errorf("inconsistent clusters and endpoints: %w", err))
	}
	// Route tables are shared between proxies alike (routesFor); each is encoded once.
	type routeSet struct {
		res   []types.Resource
		hash  uint64
		names map[string]bool
		index map[string]types.ResourceWithTTL
		err   error
	}
	routeSets := map[*types.Resource]*routeSet{}
	pushed := 0
	for id, in := range nodes {
		w := in.w
		if w.Mode == meta.ModeProxyless {
			res := BuildProxy(w, sh)
			byType := map[string][]types.Resource{
				resourcev3.ListenerType: res.Listeners,
				resourcev3.RouteType:    res.Routes,
				resourcev3.ClusterType:  res.Clusters,
				resourcev3.EndpointType: res.Endpoints,
			}
			s.onlyRequested(id, byType)
			hashes := map[string]uint64{}
			for typ, items := range byType {
				hashes[typ] = hashResources(items)
			}
			if s.setSnapshot(ctx, id, v, loaded.revision, byType, nil, hashes) {
				pushed++
			}
			continue
		}
		// A sidecar's own listeners and clusters are reused while the workload and the
		// configuration they are built from stay the same; gateways' are rebuilt.
		var routes []types.Resource
		own := in.own
		if w.Mode == meta.ModeGateway {
			res := BuildProxy(w, sh)
			routes = res.Routes
			if own, err = newOwnSet(res.Listeners, res.Clusters[len(sh.clusters):], nil, 0); err != nil {
				s.log.Error("snapshot skipped", "node_id", id, "error", err)
				continue
			}
		} else {
			routes = sh.routesFor(w)
			if own == nil || own.inputs != listenerInputs || listenerInputs == 0 {
				before := len(sh.problems)
				listeners, clusters := sh.sidecarOwn(w)
				if own, err = newOwnSet(listeners, clusters, slices.Clone(sh.problems[before:]), listenerInputs); err != nil {
					s.log.Error("snapshot skipped", "node_id", id, "error", err)
					continue
				}
				s.keepOwn(id, in.gen, own)
			} else {
				sh.problems = append(sh.problems, own.problems...)
			}
		}
		rs := &routeSet{}
		if len(routes) > 0 {
			key := &routes[0]
			if rs = routeSets[key]; rs == nil {
				rs = &routeSet{names: resourceNames(routes)}
				rs.res, rs.hash, rs.err = marshalAll(routes)
				rs.index = index(rs.res)
				routeSets[key] = rs
			}
		}
		if err := own.consistent(rs.names, endpointNames); err != nil || rs.err != nil {
			s.log.Error("inconsistent snapshot skipped", "node_id", id, "error", errors.Join(err, rs.err))
			continue
		}
		byType := map[string][]types.Resource{
			resourcev3.ListenerType: own.listeners,
			resourcev3.RouteType:    rs.res,
			resourcev3.ClusterType:  append(slices.Clip(clusters), own.clusters...),
			resourcev3.EndpointType: endpoints,
		}
		hashes := map[string]uint64{
			resourcev3.ListenerType: own.listenerHash,
			resourcev3.RouteType:    rs.hash,
			resourcev3.ClusterType:  clusterHash ^ own.clusterHash,
			resourcev3.EndpointType: endpointHash,
		}
		if w.Mode == meta.ModeGateway {
			// Only gateways get secrets, and only those their Gateways name.
			byType[resourcev3.SecretType] = sh.gatewaySecretResources(w, secrets)
			hashes[resourcev3.SecretType] = hashResources(byType[resourcev3.SecretType])
		}
		indexed := map[string]map[string]types.ResourceWithTTL{resourcev3.EndpointType: endpointIndex, resourcev3.RouteType: rs.index}
		if s.setSnapshot(ctx, id, v, loaded.revision, byType, indexed, hashes) {
			pushed++
		}
	}
	s.reportProblems(sh.problems)
	if pushed > 0 {
		s.log.Debug("config pushed", "version", v, "proxies", pushed, "services", len(mesh.Services), "took", time.Since(start).String())
	}
	return nil
}

// keepOwn stores a sidecar's own resources for the next push, unless the node reconnected
// (perhaps as another workload) meanwhile.
func (s *Server) keepOwn(id string, gen int64, own *ownSet) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.nodes[id]; n != nil && n.gen == gen {
		n.own = own
	}
}

// skipPush reports a push that could not be built: a translator bug, since the builders'
// output is valid by construction. The proxies keep their last configuration.
func (s *Server) skipPush(err error) error {
	s.log.Error("push skipped: every proxy keeps its last configuration", "error", err)
	return nil
}

// setSnapshot hands a proxy its new snapshot when its content changed, and reports whether
// it did.
func (s *Server) setSnapshot(ctx context.Context, id string, v string, revision int64, byType map[string][]types.Resource, indexed map[string]map[string]types.ResourceWithTTL, hashes map[string]uint64) bool {
	changed, snap := s.nextSnapshot(id, v, revision, byType, indexed, hashes)
	if !changed {
		return false
	}
	if err := s.cache.SetSnapshot(ctx, id, snap); err != nil {
		s.log.Error("set snapshot", "node_id", id, "error", err)
		return false
	}
	return true
}

// reportProblems logs the translation problems that are new since the last push, and keeps
// the current set for Problems.
func (s *Server) reportProblems(ps []Problem) {
	seen := map[Problem]bool{}
	var uniq []Problem
	for _, p := range ps {
		if !seen[p] {
			seen[p] = true
			uniq = append(uniq, p)
		}
	}
	s.mu.Lock()
	old := s.problems
	s.problems = uniq
	s.mu.Unlock()
	before := map[Problem]bool{}
	for _, p := range old {
		before[p] = true
	}
	for _, p := range uniq {
		if !before[p] {
			s.log.Warn("configuration not fully applied", "resource", p.Resource, "problem", p.Message)
		}
	}
}

// Revision returns the configuration revision the server is serving.
func (s *Server) Revision() int64 {
	if l := s.config.Load(); l != nil {
		return l.revision
	}
	return 0
}

// Problems returns the parts of the stored configuration that the last push could not
// translate as written.
func (s *Server) Problems() []Problem {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.problems)
}

// nextSnapshot records the hashes of a proxy's new configuration and returns the snapshot to
// publish, versioning each type with v only where its hash changed. A type whose content did
// not change keeps its indexed resources from the last snapshot; indexed gives, by type, an
// index shared with other proxies to use instead of indexing byType's list again.
func (s *Server) nextSnapshot(id, v string, revision int64, byType map[string][]types.Resource, indexed map[string]map[string]types.ResourceWithTTL, hashes map[string]uint64) (bool, *cachev3.Snapshot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := s.nodes[id]
	if n == nil {
		return false, nil // disconnected meanwhile
	}
	// A snapshot with nothing new for the proxy syncs it to the revision at once, without an
	// ACK: subscribers hear of that too.
	defer func(synced int64) {
		n.expect(revision)
		if n.syncedRevision != synced {
			s.events.notify(id)
		}
	}(n.syncedRevision)
	changed := map[string]bool{}
	for typ, h := range hashes {
		if old, ok := n.hashes[typ]; !ok || old != h {
			n.hashes[typ] = h
			n.versions[typ] = v
			changed[typ] = true
		}
	}
	if len(changed) == 0 {
		return false, nil
	}
	snap := &cachev3.Snapshot{}
	n.empty = map[string]bool{}
	for typ, items := range byType {
		n.empty[typ] = len(items) == 0
		rt := cachev3.GetResponseType(typ)
		switch {
		case !changed[typ] && n.last != nil && n.last.Resources[rt].Version == n.versions[typ]:
			snap.Resources[rt] = n.last.Resources[rt]
		case indexed[typ] != nil:
			snap.Resources[rt] = cachev3.Resources{Version: n.versions[typ], Items: indexed[typ]}
		default:
			snap.Resources[rt] = cachev3.NewResources(n.versions[typ], items)
		}
	}
	n.last = snap
	return true, snap
}

// ProxyInfo is a registered proxy with what it has acknowledged.
type ProxyInfo struct {
	registry.Entry
	// Acked, Sent and Nack map xDS type names (LDS, RDS, CDS, EDS) to the last version the
	// proxy ACKed, the last version sent to it, and its last NACK message.
	Acked, Sent, Nack map[string]string
	LastSync          time.Time
	// SyncedRevision is the newest configuration revision the proxy has applied in full, and
	// SyncedAt when its last ACK for it arrived.
	SyncedRevision int64
	SyncedAt       time.Time
}

// Proxies returns every registered proxy, connected or within its grace period, joined with
// its stream's ACK state.
func (s *Server) Proxies() []ProxyInfo {
	entries := s.reg.List()
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]ProxyInfo, 0, len(entries))
	for _, e := range entries {
		pi := ProxyInfo{Entry: e, Acked: map[string]string{}, Sent: map[string]string{}, Nack: map[string]string{}}
		if n := s.nodes[e.NodeID]; n != nil {
			for typ, v := range n.status.acked {
				pi.Acked[shortType(typ)] = v
			}
			for typ, v := range n.status.sent {
				pi.Sent[shortType(typ)] = v
			}
			for typ, v := range n.status.nack {
				pi.Nack[shortType(typ)] = v
			}
			pi.LastSync = n.status.lastSync
			pi.SyncedRevision, pi.SyncedAt = n.syncedRevision, n.syncedAt
		}
		out = append(out, pi)
	}
	return out
}

func shortType(typeURL string) string {
	for _, t := range []struct{ url, name string }{
		{resourcev3.ListenerType, "LDS"}, {resourcev3.RouteType, "RDS"},
		{resourcev3.ClusterType, "CDS"}, {resourcev3.EndpointType, "EDS"}, {resourcev3.SecretType, "SDS"},
	} {
		if t.url == typeURL {
			return t.name
		}
	}
	return typeURL
}

// WorkloadFromNode reads a proxy's registration from its xDS node. Every error names the
// metadata key and what a valid value looks like.
func WorkloadFromNode(n *corev3.Node) (registry.Workload, error) {
	if n.GetId() == "" {
		return registry.Workload{}, errors.New("the first request must carry node.id")
	}
	f := n.GetMetadata().GetFields()
	str := func(k string) string { return f[k].GetStringValue() }
	w := registry.Workload{
		NodeID:         n.GetId(),
		Namespace:      str(meta.KeyNamespace),
		Service:        str(meta.KeyService),
		Name:           str(meta.KeyWorkloadName),
		Mode:           str(meta.KeyMode),
		ServiceAccount: str(meta.KeyServiceAccount),
		Labels:         map[string]string{},
	}
	if w.Namespace == "" || w.Service == "" {
		return registry.Workload{}, fmt.Errorf("node %s: metadata %s and %s are required", w.NodeID, meta.KeyNamespace, meta.KeyService)
	}
	switch w.Mode {
	case "":
		w.Mode = meta.ModeSidecar
	case meta.ModeSidecar, meta.ModeGateway, meta.ModeProxyless:
	default:
		return registry.Workload{}, fmt.Errorf("node %s: metadata %s %q must be %q, %q or %q", w.NodeID, meta.KeyMode, w.Mode, meta.ModeSidecar, meta.ModeGateway, meta.ModeProxyless)
	}
	if w.Name == "" {
		w.Name = w.NodeID
	}
	addr, err := netip.ParseAddr(str(meta.KeyAddress))
	if err != nil {
		return registry.Workload{}, fmt.Errorf("node %s: metadata %s %q is not an IP address", w.NodeID, meta.KeyAddress, str(meta.KeyAddress))
	}
	w.Address = addr
	if w.Ports, err = meta.ParseInboundPorts(str(meta.KeyInboundPorts)); err != nil {
		return registry.Workload{}, fmt.Errorf("node %s: metadata %s: %w", w.NodeID, meta.KeyInboundPorts, err)
	}
	w.Health.NotReady, w.Health.Reason = appHealth(str(meta.KeyAppHealth))
	for k, v := range f[meta.KeyLabels].GetStructValue().GetFields() {
		sv, ok := v.GetKind().(*structpb.Value_StringValue)
		if !ok {
			return registry.Workload{}, fmt.Errorf("node %s: metadata %s.%s must be a string", w.NodeID, meta.KeyLabels, k)
		}
		w.Labels[k] = sv.StringValue
	}
	return w, nil
}

// cacheLogger sends go-control-plane's cache logs to slog. Its warnings are the expected steps
// of ADS (a proxy still asking for the endpoints of clusters it is about to drop, a fetch of
// an unchanged version), so they are debug-level like the rest of its chatter.
// It formats a message only when its level is logged: the cache logs every response it
// builds, and formatting them all was 7 % of the server's CPU in a push to 1,000 proxies.
type cacheLogger struct{ log *slog.Logger }

func (l cacheLogger) Debugf(format string, args ...any) { l.at(slog.LevelDebug, format, args) }
func (l cacheLogger) Infof(format string, args ...any)  { l.at(slog.LevelDebug, format, args) }
func (l cacheLogger) Warnf(format string, args ...any)  { l.at(slog.LevelDebug, format, args) }
func (l cacheLogger) Errorf(format string, args ...any) { l.at(slog.LevelError, format, args) }

func (l cacheLogger) at(level slog.Level, format string, args []any) {
	if l.log.Enabled(context.Background(), level) {
		l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

// maxHealthReason bounds the reason a proxy reports for its application's health.
const maxHealthReason = 256

// appHealth reads a meta.KeyAppHealth value into the registry's terms.
func appHealth(v string) (notReady bool, reason string) {
	ready, reason := meta.ParseAppHealth(v)
	if len(reason) > maxHealthReason {
		reason = reason[:maxHealthReason]
	}
	return !ready, reason
}
