// Package xdsclient is sluice-proxy's xDS client: one state-of-the-world ADS stream to the
// control plane, subscribing as Envoy does.
//
// On every new stream it asks for all clusters and all listeners (CDS and LDS, wildcard),
// then for the route configurations the accepted listeners name (RDS) and the load
// assignments the accepted EDS clusters name (EDS), sending the versions it already holds so
// the server sends nothing when nothing changed. Each response is decoded and handed to a
// Handler with the full set of resources of its type; the client ACKs (version_info and
// response_nonce of the response) when the handler accepts it and NACKs (the previous
// version, the response's nonce, and error_detail with the handler's message) when it does
// not, keeping the resources it had. When accepted listeners or clusters name new route
// configurations or assignments, the client changes its RDS or EDS subscription, and forgets
// those no longer named.
//
// When the stream breaks, the client reconnects with exponential backoff and full jitter,
// while the proxy keeps serving with what it holds. Every request carries the node, whose
// metadata the server registers the workload from; after Drain it also carries
// DRAINING=true.
//
// With Credentials holding a workload token the client dials TLS, verifying the control
// plane against the trust bundle, and sends the token with every call (Dial builds the same
// connection for the proxy's other calls). A refusal of those credentials (Unauthenticated,
// PermissionDenied, a failed TLS handshake) is logged once with what to fix, and the client
// then retries only at its longest backoff.
package xdsclient

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sort"
	"sync"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluicemesh/sluice/internal/grpccodec"
	"github.com/sluicemesh/sluice/internal/meta"
)

// The resource types the client subscribes to.
const (
	ListenerType = "type.googleapis.com/envoy.config.listener.v3.Listener"
	RouteType    = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	// SecretType is SDS: the TLS credentials a gateway's listeners name, subscribed by name
	// as RDS is, so that a sidecar, whose listeners name none, never asks for it.
	SecretType = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
)

// maxMessage is the largest response the client accepts.
const maxMessage = 128 << 20

// Types lists the resource types in the order the client subscribes: clusters before
// listeners, as Envoy does, so that routes find their clusters.
var Types = []string{ClusterType, ListenerType, RouteType, EndpointType, SecretType}

// Resource is one xDS resource the client holds. A resource that an update does not change
// keeps its *Resource, so a handler may cache what it derives from it by pointer.
type Resource struct {
	// Name is the resource's name (a load assignment's cluster_name).
	Name string
	// Message is the decoded resource, such as a *listenerv3.Listener. It must not be
	// modified.
	Message proto.Message
	// Version is the version_info of the response that last changed the resource.
	Version string
	// Updated is when that response was accepted.
	Updated time.Time

	raw []byte
}

// Handler applies resources. The client calls it from one goroutine at a time.
type Handler interface {
	// Update gets the complete set of resources of typeURL the proxy should now hold: for
	// LDS and CDS every resource of the response, for RDS and EDS the subscribed resources
	// with those of the response replacing the ones held. It returns nil to accept them, or
	// the reason to reject the response with; a rejected response changes nothing.
	Update(typeURL, version string, resources map[string]*Resource) error
}

// Config configures a Client.
type Config struct {
	// Target is the control plane's "host:port".
	Target string
	// Node identifies the proxy in every request.
	Node *corev3.Node
	// Handler applies what the server sends.
	Handler Handler
	// Log receives one line per update applied or rejected, and reconnects at debug level.
	Log *slog.Logger
	// BackoffBase and BackoffMax bound the wait before a reconnect: a random duration up to
	// BackoffBase doubled per failed attempt, never above BackoffMax. Zero means 100ms and
	// 15s.
	BackoffBase, BackoffMax time.Duration
	// Credentials are the proxy's TLS trust and workload token; the zero value dials
	// plaintext without a token (a control plane started with --insecure-xds).
	Credentials Credentials
	// Refusals tells the control plane's refusals of the credentials from other failures and
	// logs them; after a refusal the client waits BackoffMax before it tries again. Nil means
	// one of the client's own, logging to Log.
	Refusals *Refusals
	// DialOptions are added to the gRPC dial after those of Credentials (tests use them).
	DialOptions []grpc.DialOption
}

// Client is an ADS client. Create it with New and run it with Run.
type Client struct {
	cfg          Config
	node         *corev3.Node
	drainingNode *corev3.Node

	sendMu sync.Mutex // serialises Send on the stream

	mu        sync.Mutex
	types     map[string]*typeState
	stream    grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse]
	connected bool
	draining  bool
	appHealth string // the KeyAppHealth value every request carries; "" while not probed
	closed    bool
	closedCh  chan struct{} // closed by Close
	attempts  int           // consecutive failed connection attempts
	streams   int           // streams opened
}

type typeState struct {
	version   string
	nonce     string
	names     []string // sorted; nil for a wildcard subscription
	wildcard  bool
	resources map[string]*Resource
	updated   time.Time
	// lastError is the message of the last NACK, cleared by the next accepted update.
	lastError   string
	lastErrorAt time.Time
	// rejectedVersion is the version last NACKed, and rejections how many times in a row.
	rejectedVersion string
	rejections      int
}

// outgoing is a request to send, after a delay when the same version keeps being rejected.
type outgoing struct {
	req   *discoveryv3.DiscoveryRequest
	delay time.Duration
}

// nackDelay is the wait before NACKing a version rejected n times in a row. A SotW server
// answers a NACK by sending the same version again; without a growing pause the two would
// spin.
func nackDelay(n int) time.Duration {
	if n <= 1 {
		return 0
	}
	return min(100*time.Millisecond<<min(n-2, 10), 2*time.Second)
}

// New returns a client; nothing happens until Run.
func New(cfg Config) *Client {
	if cfg.BackoffBase == 0 {
		cfg.BackoffBase = 100 * time.Millisecond
	}
	if cfg.BackoffMax == 0 {
		cfg.BackoffMax = 15 * time.Second
	}
	if cfg.Refusals == nil {
		cfg.Refusals = NewRefusals(cfg.Log)
	}
	c := &Client{cfg: cfg, node: cfg.Node, types: map[string]*typeState{}, closedCh: make(chan struct{})}
	c.drainingNode = proto.Clone(cfg.Node).(*corev3.Node)
	if c.drainingNode.Metadata == nil {
		c.drainingNode.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{}}
	}
	c.drainingNode.Metadata.Fields[meta.KeyDraining] = structpb.NewStringValue("true")
	for _, t := range Types {
		c.types[t] = &typeState{wildcard: t == ListenerType || t == ClusterType, resources: map[string]*Resource{}}
	}
	return c
}

// Run keeps a stream to the control plane open until ctx ends or Close is called,
// reconnecting with backoff. It returns nil then.
func (c *Client) Run(ctx context.Context) error {
	for {
		healthy, err := c.runStream(ctx)
		c.mu.Lock()
		if ctx.Err() != nil || c.closed {
			c.mu.Unlock()
			return nil
		}
		if healthy {
			c.attempts = 0
		}
		c.attempts++
		wait := c.backoff(c.attempts)
		c.mu.Unlock()
		if !healthy && c.cfg.Refusals.Refused(err) {
			// Only an operator can fix the credentials: retrying sooner would only load the
			// control plane.
			wait = c.cfg.BackoffMax
		}
		c.cfg.Log.Debug("xds stream closed, reconnecting", "target", c.cfg.Target, "error", err,
			"attempt", c.attempts, "wait", wait)
		select {
		case <-ctx.Done():
			return nil
		case <-c.closedCh:
			return nil
		case <-time.After(wait):
		}
	}
}

// Close ends the client gracefully: it half-closes the stream, so that the server reads every
// request sent before (Drain's above all) and then ends the stream, and it stops
// reconnecting. Run returns when the server has closed the stream; cancel Run's context to
// stop waiting.
func (c *Client) Close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return
	}
	c.closed = true
	close(c.closedCh)
	if c.stream != nil {
		c.sendMu.Lock()
		_ = c.stream.CloseSend()
		c.sendMu.Unlock()
	}
}

// backoff returns the wait before attempt n (1-based): full jitter over an exponential cap.
func (c *Client) backoff(n int) time.Duration {
	ceiling := c.cfg.BackoffMax
	if n < 32 {
		ceiling = min(c.cfg.BackoffMax, c.cfg.BackoffBase<<(n-1))
	}
	return rand.N(ceiling + 1)
}

// codec decodes the control plane's responses; its buffer pool outlives each connection.
var codec = grpccodec.New(nil)

// runStream runs one stream until it fails; healthy reports that the server answered on it.
func (c *Client) runStream(ctx context.Context) (healthy bool, err error) {
	opts := append([]grpc.DialOption{
		// A mesh's CDS or EDS response can be far larger than gRPC's 4 MiB default. The
		// codec decodes from buffers sized to the response, not gRPC's default 1 MiB.
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessage), grpc.ForceCodecV2(codec)),
	}, c.cfg.DialOptions...)
	conn, err := Dial(c.cfg.Target, c.cfg.Credentials, opts...)
	if err != nil {
		return false, fmt.Errorf("dialing %s: %w", c.cfg.Target, err)
	}
	defer conn.Close()
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		return false, fmt.Errorf("opening the ADS stream to %s: %w", c.cfg.Target, err)
	}

	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return false, nil
	}
	c.stream, c.connected = stream, true
	c.streams++
	var first []*discoveryv3.DiscoveryRequest
	for _, t := range Types {
		st := c.types[t]
		st.nonce = "" // nonces belong to a stream
		if st.wildcard || len(st.names) > 0 {
			first = append(first, c.requestLocked(t))
		}
	}
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.stream, c.connected = nil, false
		c.mu.Unlock()
	}()
	c.cfg.Log.Debug("xds stream open", "target", c.cfg.Target)

	for _, req := range first {
		if err := c.sendOnStream(stream, req); err != nil {
			return false, err
		}
	}
	var delayed []*time.Timer
	defer func() {
		for _, t := range delayed {
			t.Stop()
		}
	}()
	for {
		res, err := stream.Recv()
		if err != nil {
			return healthy, fmt.Errorf("receiving from %s: %w", c.cfg.Target, err)
		}
		if !healthy {
			c.cfg.Refusals.Clear()
		}
		healthy = true
		for _, o := range c.handle(res) {
			if o.delay > 0 {
				// A stale NACK is harmless: its nonce tells the server to ignore it.
				delayed = append(delayed, time.AfterFunc(o.delay, func() { _ = c.send(stream, o.req) }))
				continue
			}
			if err := c.sendOnStream(stream, o.req); err != nil {
				return healthy, err
			}
		}
	}
}

func (c *Client) send(stream grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse], req *discoveryv3.DiscoveryRequest) error {
	c.sendMu.Lock()
	defer c.sendMu.Unlock()
	if err := stream.Send(req); err != nil {
		return fmt.Errorf("sending a %s request: %w", Short(req.GetTypeUrl()), err)
	}
	return nil
}

// sendOnStream is send for runStream's goroutine, the only one that reads the stream. When
// the server has ended the stream, Send says only EOF and gRPC keeps the reason (a refusal of
// the credentials, say) for Recv, which returns it at once; reading it is safe here because
// no other goroutine receives.
func (c *Client) sendOnStream(stream grpc.BidiStreamingClient[discoveryv3.DiscoveryRequest, discoveryv3.DiscoveryResponse], req *discoveryv3.DiscoveryRequest) error {
	err := c.send(stream, req)
	if errors.Is(err, io.EOF) {
		if _, rerr := stream.Recv(); rerr != nil && !errors.Is(rerr, io.EOF) {
			return fmt.Errorf("receiving from %s: %w", c.cfg.Target, rerr)
		}
	}
	return err
}

// requestLocked builds the request that ACKs the state of typeURL (or subscribes to it).
func (c *Client) requestLocked(typeURL string) *discoveryv3.DiscoveryRequest {
	st := c.types[typeURL]
	node := c.node
	if c.draining {
		node = c.drainingNode
	}
	return &discoveryv3.DiscoveryRequest{
		VersionInfo:   st.version,
		Node:          node,
		ResourceNames: st.names,
		TypeUrl:       typeURL,
		ResponseNonce: st.nonce,
	}
}

// handle applies one response and returns the requests to send: the ACK or NACK, and any
// change of RDS or EDS subscription.
func (c *Client) handle(res *discoveryv3.DiscoveryResponse) []outgoing {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := res.GetTypeUrl()
	st, ok := c.types[t]
	if !ok {
		c.cfg.Log.Warn("xds response of an unknown type ignored", "type", t)
		return nil
	}
	st.nonce = res.GetNonce()
	candidate, err := c.decode(st, res)
	if err == nil {
		// The handler runs under c.mu: updates of all types are applied one at a time, in
		// the order the server sent them.
		err = c.cfg.Handler.Update(t, res.GetVersionInfo(), candidate)
	}
	if err != nil {
		st.lastError, st.lastErrorAt = err.Error(), time.Now()
		if st.rejectedVersion == res.GetVersionInfo() {
			st.rejections++
		} else {
			st.rejectedVersion, st.rejections = res.GetVersionInfo(), 1
		}
		level := slog.LevelWarn
		if st.rejections > 1 {
			level = slog.LevelDebug // said already
		}
		c.cfg.Log.Log(context.Background(), level, "xds update rejected", "type", Short(t),
			"version", res.GetVersionInfo(), "nonce", res.GetNonce(), "times", st.rejections, "error", err)
		nack := c.requestLocked(t)
		nack.ErrorDetail = &status.Status{Code: int32(codes.InvalidArgument), Message: err.Error()}
		return []outgoing{{nack, nackDelay(st.rejections)}}
	}
	st.version, st.resources, st.updated = res.GetVersionInfo(), candidate, time.Now()
	st.lastError, st.rejectedVersion, st.rejections = "", "", 0
	c.cfg.Log.Info("xds update applied", "type", Short(t), "version", st.version,
		"resources", len(res.GetResources()), "held", len(candidate))
	out := []outgoing{{req: c.requestLocked(t)}}
	switch t {
	case ListenerType:
		out = append(out, c.resubscribeLocked(RouteType, routeNames(candidate))...)
		out = append(out, c.resubscribeLocked(SecretType, secretNames(candidate))...)
	case ClusterType:
		out = append(out, c.resubscribeLocked(EndpointType, endpointNames(candidate))...)
	}
	return out
}

// decode turns a response into the candidate set of resources of its type.
func (c *Client) decode(st *typeState, res *discoveryv3.DiscoveryResponse) (map[string]*Resource, error) {
	t := res.GetTypeUrl()
	now := time.Now()
	out := map[string]*Resource{}
	if !st.wildcard && t != SecretType {
		// RDS and EDS responses may hold only what changed; the rest stays. An SDS response
		// holds every subscribed secret the server has, so one left out was deleted, and a
		// gateway must stop serving it.
		for name, r := range st.resources {
			out[name] = r
		}
	}
	seen := map[string]bool{}
	for i, a := range res.GetResources() {
		if a.GetTypeUrl() != t {
			return nil, fmt.Errorf("resources[%d]: type %s in a %s response", i, a.GetTypeUrl(), Short(t))
		}
		msg := newMessage(t)
		if err := a.UnmarshalTo(msg); err != nil {
			return nil, fmt.Errorf("resources[%d]: %w", i, err)
		}
		name := resourceName(msg)
		if name == "" {
			return nil, fmt.Errorf("resources[%d]: a %s without a name", i, Short(t))
		}
		if seen[name] {
			return nil, fmt.Errorf("resources[%d]: %s %q appears twice", i, Short(t), name)
		}
		seen[name] = true
		if _, subscribed := slices.BinarySearch(st.names, name); !st.wildcard && !subscribed {
			continue // not asked for (any more)
		}
		if old, ok := st.resources[name]; ok && bytes.Equal(old.raw, a.GetValue()) {
			out[name] = old
			continue
		}
		out[name] = &Resource{Name: name, Message: msg, Version: res.GetVersionInfo(), Updated: now, raw: a.GetValue()}
	}
	return out, nil
}

// resubscribeLocked changes the subscription of typeURL to names, if it differs, and returns
// the request that says so. Resources no longer named are forgotten.
func (c *Client) resubscribeLocked(typeURL string, names []string) []outgoing {
	st := c.types[typeURL]
	if slices.Equal(st.names, names) {
		return nil
	}
	st.names = names
	kept := map[string]*Resource{}
	for _, n := range names {
		if r, ok := st.resources[n]; ok {
			kept[n] = r
		}
	}
	if len(kept) != len(st.resources) {
		if err := c.cfg.Handler.Update(typeURL, st.version, kept); err != nil {
			c.cfg.Log.Error("forgetting unsubscribed resources failed", "type", Short(typeURL), "error", err)
		} else {
			st.resources = kept
		}
	}
	return []outgoing{{req: c.requestLocked(typeURL)}}
}

// ErrNotConnected is returned by Drain when there is no stream to tell the server on.
var ErrNotConnected = errors.New("not connected to the control plane")

// Drain marks the proxy as draining: from now on every request carries DRAINING=true, and
// the current LDS request is sent again at once (an ACK of what the proxy holds) so the
// server learns it now. It returns ErrNotConnected when there is no stream; the server then
// drops the proxy when its stream's grace period ends. Like any send, it can wait for gRPC
// flow control, but no longer than the stream lives.
func (c *Client) Drain() error {
	c.mu.Lock()
	c.draining = true
	stream := c.stream
	req := c.requestLocked(ListenerType)
	c.mu.Unlock()
	if stream == nil {
		return ErrNotConnected
	}
	return c.send(stream, req)
}

// SetAppHealth records the application's health (a meta.KeyAppHealth value) in the node
// metadata of every request from now on, and sends the current LDS request again at once (an
// ACK of what the proxy holds) so that the server learns it now, as Drain does. Setting the
// value it already has sends nothing. Without a stream it returns ErrNotConnected; the next
// stream carries the value from its first request.
func (c *Client) SetAppHealth(v string) error {
	c.mu.Lock()
	if v == c.appHealth {
		c.mu.Unlock()
		return nil
	}
	c.appHealth = v
	c.node = withMetadata(c.node, meta.KeyAppHealth, v)
	c.drainingNode = withMetadata(c.drainingNode, meta.KeyAppHealth, v)
	stream := c.stream
	req := c.requestLocked(ListenerType)
	c.mu.Unlock()
	if stream == nil {
		return ErrNotConnected
	}
	return c.send(stream, req)
}

// withMetadata returns a copy of n with metadata key set to v. Requests already built keep
// the node they hold, so n itself is never changed.
func withMetadata(n *corev3.Node, key, v string) *corev3.Node {
	n = proto.Clone(n).(*corev3.Node)
	if n.Metadata == nil {
		n.Metadata = &structpb.Struct{Fields: map[string]*structpb.Value{}}
	}
	n.Metadata.Fields[key] = structpb.NewStringValue(v)
	return n
}

// TypeStatus describes what the client holds of one resource type.
type TypeStatus struct {
	// Type is the type URL.
	Type string
	// Version is the version_info last accepted.
	Version string
	// Updated is when it was accepted.
	Updated time.Time
	// Resources are the resources held, sorted by name.
	Resources []*Resource
	// Subscribed lists the names asked for; nil for a wildcard subscription.
	Subscribed []string
	// LastError is the reason of the last rejected update, if no update was accepted since.
	LastError string
	// LastErrorAt is when that update was rejected.
	LastErrorAt time.Time
}

// Status describes the client's connection and what it holds.
type Status struct {
	// Connected reports an open stream.
	Connected bool
	// Draining reports that Drain was called.
	Draining bool
	// Streams counts the streams opened since start.
	Streams int
	// Refusal says what to fix when the control plane refused the proxy's credentials
	// since the last accepted call; empty otherwise.
	Refusal string
	Types   []TypeStatus // in the order of Types
}

// Status returns a snapshot of the client's state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Status{Connected: c.connected, Draining: c.draining, Streams: c.streams, Refusal: c.cfg.Refusals.Last()}
	for _, t := range Types {
		st := c.types[t]
		ts := TypeStatus{Type: t, Version: st.version, Updated: st.updated, Subscribed: st.names,
			LastError: st.lastError, LastErrorAt: st.lastErrorAt}
		for _, r := range st.resources {
			ts.Resources = append(ts.Resources, r)
		}
		sort.Slice(ts.Resources, func(i, j int) bool { return ts.Resources[i].Name < ts.Resources[j].Name })
		s.Types = append(s.Types, ts)
	}
	return s
}

func newMessage(typeURL string) proto.Message {
	switch typeURL {
	case ListenerType:
		return &listenerv3.Listener{}
	case RouteType:
		return &routev3.RouteConfiguration{}
	case ClusterType:
		return &clusterv3.Cluster{}
	case SecretType:
		return &tlsv3.Secret{}
	default:
		return &endpointv3.ClusterLoadAssignment{}
	}
}

func resourceName(m proto.Message) string {
	switch m := m.(type) {
	case *listenerv3.Listener:
		return m.GetName()
	case *routev3.RouteConfiguration:
		return m.GetName()
	case *clusterv3.Cluster:
		return m.GetName()
	case *endpointv3.ClusterLoadAssignment:
		return m.GetClusterName()
	case *tlsv3.Secret:
		return m.GetName()
	}
	return ""
}

// routeNames returns the sorted RDS names the listeners' connection managers use.
func routeNames(listeners map[string]*Resource) []string {
	var names []string
	for _, r := range listeners {
		for _, fc := range r.Message.(*listenerv3.Listener).GetFilterChains() {
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
	}
	slices.Sort(names)
	return names
}

// secretNames returns the sorted SDS names the listeners' TLS contexts name, but for the
// workload certificate and trust bundle, which the proxy resolves from its own identity.
func secretNames(listeners map[string]*Resource) []string {
	var names []string
	add := func(n string) {
		if n != "" && n != "default" && n != "ROOTCA" && !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	for _, r := range listeners {
		for _, fc := range r.Message.(*listenerv3.Listener).GetFilterChains() {
			var dc tlsv3.DownstreamTlsContext
			if fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(&dc) != nil {
				continue
			}
			c := dc.GetCommonTlsContext()
			for _, sc := range c.GetTlsCertificateSdsSecretConfigs() {
				add(sc.GetName())
			}
			add(c.GetValidationContextSdsSecretConfig().GetName())
			add(c.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName())
		}
	}
	slices.Sort(names)
	return names
}

// endpointNames returns the sorted EDS names of the EDS clusters.
func endpointNames(clusters map[string]*Resource) []string {
	var names []string
	for _, r := range clusters {
		cl := r.Message.(*clusterv3.Cluster)
		if cl.GetType() != clusterv3.Cluster_EDS {
			continue
		}
		n := cl.GetEdsClusterConfig().GetServiceName()
		if n == "" {
			n = cl.GetName()
		}
		if !slices.Contains(names, n) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Short names a type URL by its xDS service: "LDS", "RDS", "CDS", "EDS".
func Short(typeURL string) string {
	switch typeURL {
	case ListenerType:
		return "LDS"
	case RouteType:
		return "RDS"
	case ClusterType:
		return "CDS"
	case EndpointType:
		return "EDS"
	case SecretType:
		return "SDS"
	}
	return typeURL
}
