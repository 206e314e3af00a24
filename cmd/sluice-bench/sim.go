package main

import (
	"context"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluicemesh/sluice/internal/grpccodec"
	"github.com/sluicemesh/sluice/internal/meta"
)

// The xDS types a sidecar subscribes to.
const (
	typeListener = "type.googleapis.com/envoy.config.listener.v3.Listener"
	typeRoute    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	typeCluster  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	typeEndpoint = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// streamsPerConn is how many simulated proxies share one gRPC connection.
const streamsPerConn = 100

// simulator holds N simulated proxies, each an ADS stream subscribing as sluice-proxy does.
type simulator struct {
	log      *slog.Logger
	target   string
	services int
	proxies  []*simProxy
	conns    []*grpc.ClientConn
	wg       sync.WaitGroup
	cancel   context.CancelFunc
	// names caches the RDS or EDS names a listener or cluster refers to, by its bytes.
	names sync.Map // uint64 → []string
	seed  maphash.Seed
	// gen counts server restarts: a proxy is in sync when its stream of the current
	// generation has ACKed every type it subscribes to.
	gen atomic.Int64
}

// simProxy is one simulated sidecar.
type simProxy struct {
	node *corev3.Node
	conn *grpc.ClientConn
	// syncedGen is the generation whose stream has ACKed LDS, CDS, RDS and EDS.
	syncedGen atomic.Int64
	acks      atomic.Int64
}

// simService names the i-th simulated service.
func simService(i int) string { return fmt.Sprintf("svc-%03d", i) }

// newSimulator prepares n proxies spread over services services, two versions each.
func newSimulator(log *slog.Logger, target string, n, services int) (*simulator, error) {
	s := &simulator{log: log, target: target, services: services, seed: maphash.MakeSeed()}
	codec := grpccodec.New(nil)
	for i := range (n + streamsPerConn - 1) / streamsPerConn {
		// The proxies' codec, as sluice-proxy's xDS client uses. Reconnects are tried at
		// least every second: with gRPC's default backoff (growing 1.6× to two minutes) the
		// time to resync after a restart was set by which backoff step the server's
		// readiness fell in (27, 40 or 52 s at 5,000 proxies for the same server), not by
		// the server.
		c, err := grpc.NewClient(target, grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithConnectParams(grpc.ConnectParams{Backoff: backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
				MinConnectTimeout: 5 * time.Second}),
			grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(256<<20), grpc.ForceCodecV2(codec)))
		if err != nil {
			s.close()
			return nil, fmt.Errorf("simulator connection %d to %s: %w", i, target, err)
		}
		s.conns = append(s.conns, c)
	}
	for i := range n {
		svc := simService(i % services)
		version := []string{"v1", "v2"}[(i/services)%2]
		addr := fmt.Sprintf("10.%d.%d.%d", 1+i/65536, (i/256)%256, i%256)
		name := fmt.Sprintf("%s-%s-%s", svc, version, addr)
		labels := &structpb.Struct{Fields: map[string]*structpb.Value{
			"app": structpb.NewStringValue(svc), "version": structpb.NewStringValue(version)}}
		str := structpb.NewStringValue
		node := &corev3.Node{
			Id:      "sidecar~" + addr + "~" + name + ".default~default.svc." + meta.DefaultDomain,
			Cluster: svc,
			Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{
				meta.KeyNamespace:      str("default"),
				meta.KeyService:        str(svc),
				meta.KeyLabels:         structpb.NewStructValue(labels),
				meta.KeyAddress:        str(addr),
				meta.KeyInboundPorts:   str("8080=18080"),
				meta.KeyServiceAccount: str(svc),
				meta.KeyWorkloadName:   str(name),
				meta.KeyMode:           str(meta.ModeSidecar),
			}},
			UserAgentName: "sluice-bench",
		}
		s.proxies = append(s.proxies, &simProxy{node: node, conn: s.conns[i/streamsPerConn]})
	}
	return s, nil
}

// start opens every stream; each reconnects after an error until stop.
func (s *simulator) start(ctx context.Context) {
	ctx, s.cancel = context.WithCancel(ctx)
	s.gen.Store(1)
	for _, p := range s.proxies {
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.runProxy(ctx, p)
		}()
	}
}

// stop ends every stream and waits for them.
func (s *simulator) stop() {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	s.close()
}

func (s *simulator) close() {
	for _, c := range s.conns {
		c.Close()
	}
}

// synced counts the proxies in sync on the current generation's streams.
func (s *simulator) synced() int {
	g := s.gen.Load()
	n := 0
	for _, p := range s.proxies {
		if p.syncedGen.Load() >= g {
			n++
		}
	}
	return n
}

// waitSynced waits until every proxy is in sync, and returns when that happened.
func (s *simulator) waitSynced(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		n := s.synced()
		if n == len(s.proxies) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("simulated proxies: %d of %d in sync after %v", n, len(s.proxies), timeout)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// runProxy keeps one proxy's stream open, reconnecting with a short jittered pause.
func (s *simulator) runProxy(ctx context.Context, p *simProxy) {
	for ctx.Err() == nil {
		err := s.stream(ctx, p)
		if ctx.Err() != nil {
			return
		}
		s.log.Debug("simulated stream ended", "node", p.node.Id, "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(100*time.Millisecond + rand.N(200*time.Millisecond)):
		}
	}
}

// typeState is what one stream holds of one type.
type simType struct {
	version, nonce string
	names          []string
	acked          bool
}

// stream runs one ADS stream: LDS and CDS wildcard, then RDS and EDS for the names the
// listeners and clusters hold; every response is ACKed.
// A stream in sync marks its proxy with the current generation: streams of an older server
// have all ended when a restarted one answers.
func (s *simulator) stream(ctx context.Context, p *simProxy) error {
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	st, err := discoveryv3.NewAggregatedDiscoveryServiceClient(p.conn).StreamAggregatedResources(sctx)
	if err != nil {
		return fmt.Errorf("open ADS stream: %w", err)
	}
	types := map[string]*simType{typeListener: {}, typeCluster: {}, typeRoute: {}, typeEndpoint: {}}
	req := func(t string) *discoveryv3.DiscoveryRequest {
		ts := types[t]
		return &discoveryv3.DiscoveryRequest{Node: p.node, TypeUrl: t, VersionInfo: ts.version, ResponseNonce: ts.nonce, ResourceNames: ts.names}
	}
	for _, t := range []string{typeCluster, typeListener} {
		if err := st.Send(req(t)); err != nil {
			return fmt.Errorf("send %s request: %w", t, err)
		}
	}
	for {
		res, err := st.Recv()
		if err != nil {
			return fmt.Errorf("receive: %w", err)
		}
		t := res.GetTypeUrl()
		ts := types[t]
		if ts == nil {
			continue
		}
		ts.version, ts.nonce = res.GetVersionInfo(), res.GetNonce()
		var resub string
		var names []string
		switch t {
		case typeListener:
			names, resub = s.subscriptions(res, listenerRoutes), typeRoute
		case typeCluster:
			names, resub = s.subscriptions(res, clusterEndpoints), typeEndpoint
		}
		ts.acked = true
		if err := st.Send(req(t)); err != nil {
			return fmt.Errorf("ACK %s: %w", t, err)
		}
		p.acks.Add(1)
		if resub != "" && !slices.Equal(names, types[resub].names) {
			types[resub].names = names
			types[resub].acked = len(names) == 0
			if err := st.Send(req(resub)); err != nil {
				return fmt.Errorf("subscribe %s: %w", resub, err)
			}
		}
		if types[typeListener].acked && types[typeCluster].acked && types[typeRoute].acked && types[typeEndpoint].acked {
			if gen := s.gen.Load(); p.syncedGen.Load() < gen {
				p.syncedGen.Store(gen)
			}
		}
	}
}

// subscriptions returns the names res's resources refer to (of, one resource's), sorted, with
// each resource's from the cache when a resource of the same bytes was seen before: proxies
// of one mesh get the same clusters and mostly the same listeners, and decoding them for each
// of N streams would make the simulator, not the server, the bottleneck.
func (s *simulator) subscriptions(res *discoveryv3.DiscoveryResponse, of func(*anypb.Any) []string) []string {
	var names []string
	for _, a := range res.GetResources() {
		var h maphash.Hash
		h.SetSeed(s.seed)
		h.WriteString(a.GetTypeUrl())
		h.Write(a.GetValue())
		key := h.Sum64()
		var n []string
		if v, ok := s.names.Load(key); ok {
			n = v.([]string)
		} else {
			n = of(a)
			s.names.Store(key, n)
		}
		for _, name := range n {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	slices.Sort(names)
	return names
}

// listenerRoutes returns the route configuration names a listener's connection managers use.
func listenerRoutes(a *anypb.Any) []string {
	var l listenerv3.Listener
	if a.UnmarshalTo(&l) != nil {
		return nil
	}
	var names []string
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			var hcm hcmv3.HttpConnectionManager
			if f.GetTypedConfig().UnmarshalTo(&hcm) != nil {
				continue
			}
			if n := hcm.GetRds().GetRouteConfigName(); n != "" && !slices.Contains(names, n) {
				names = append(names, n)
			}
		}
	}
	return names
}

// clusterEndpoints returns the EDS name of an EDS cluster.
func clusterEndpoints(a *anypb.Any) []string {
	var c clusterv3.Cluster
	if a.UnmarshalTo(&c) != nil || c.GetType() != clusterv3.Cluster_EDS {
		return nil
	}
	if n := c.GetEdsClusterConfig().GetServiceName(); n != "" {
		return []string{n}
	}
	return []string{c.GetName()}
}
