package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"golang.org/x/sync/errgroup"

	"github.com/sluicemesh/sluice/server/internal/store"
	"github.com/sluicemesh/sluice/server/internal/telemetry"
	"github.com/sluicemesh/sluice/server/internal/xds"
)

// The live WebSocket, GET /api/v1/live: a client subscribes to topics (the traffic graph,
// the tap of a service, configuration events) and the server streams their updates as JSON
// text frames. docs/live.md is the protocol; this file implements it.
//
// Every connection has one reader (the handler's goroutine), one writer, and a goroutine per
// graph or tap subscription. Producers (the subscriptions, and the hub's configuration feeds)
// only ever put encoded messages on the connection's bounded send queue without waiting: a
// client whose queue is full is closed with 1008, so a slow browser never holds up the
// aggregator, the tap, the configuration feed or the other clients.

// Limits and timings of the live protocol.
const (
	// liveSendQueue is the default number of messages waiting for a client's writer.
	liveSendQueue = 64
	// liveMaxSubscriptions bounds the subscriptions of one connection.
	liveMaxSubscriptions = 16
	// liveMaxID bounds a subscription id.
	liveMaxID = 64
	// liveMaxMessage bounds a message from the client: a subscribe is a few hundred bytes.
	liveMaxMessage = 16 << 10
	// livePingEvery is how often the server pings; a client that has not answered (or sent
	// anything) for livePongWait is closed.
	livePingEvery = 20 * time.Second
	livePongWait  = 40 * time.Second
	// liveWriteWait bounds one write to a client.
	liveWriteWait = 10 * time.Second
	// liveCloseWait is how long a client has to answer the server's close frame.
	liveCloseWait = 5 * time.Second

	// Graph topic: window bounds and default, update period, and how often a full graph is
	// sent again.
	liveGraphMinWindow     = time.Second
	liveGraphMaxWindow     = 5 * time.Minute
	liveGraphDefaultWindow = 10 * time.Second
	liveGraphEvery         = time.Second
	liveGraphFullEvery     = 30 * time.Second

	// Tap topic: batching period and rate cap per subscription.
	liveTapEvery     = 250 * time.Millisecond
	liveTapPerSecond = 100
)

// slowConsumerReason is the close reason of a client whose send queue filled up.
const slowConsumerReason = "slow consumer: send queue full"

// GraphSource answers the traffic graph. *telemetry.Aggregator implements it.
type GraphSource interface {
	Graph(ctx context.Context, window time.Duration) (telemetry.GraphResult, error)
}

// TapSource hands out live feeds of access-log entries. *telemetry.Tap implements it.
type TapSource interface {
	Subscribe(f telemetry.TapFilter) *telemetry.Subscription
}

// RevisionFeed is the store's feed of committed revisions. *store.Store implements it.
type RevisionFeed interface {
	CurrentRevision(ctx context.Context) (int64, error)
	Subscribe(ctx context.Context, after int64, fn func(store.Revision) error) error
}

// ProxyFeed lists the proxies and tells which of them changed. *xds.Server implements it.
type ProxyFeed interface {
	ProxyLister
	SubscribeProxies() *xds.ProxyEvents
}

var (
	_ GraphSource  = (*telemetry.Aggregator)(nil)
	_ TapSource    = (*telemetry.Tap)(nil)
	_ RevisionFeed = (*store.Store)(nil)
	_ ProxyFeed    = (*xds.Server)(nil)
)

// LiveOptions configure a LiveHub. A nil source turns its topic off: subscribing to it is
// answered with an error message.
type LiveOptions struct {
	// Log receives connection events; nil discards them.
	Log *slog.Logger
	// Graph feeds the graph topic.
	Graph GraphSource
	// Tap feeds the tap topic.
	Tap TapSource
	// Revisions and Proxies feed the config topic.
	Revisions RevisionFeed
	Proxies   ProxyFeed
	// ProxySecurity adds identity, mTLS modes and certificates to the proxy events.
	ProxySecurity ProxySecurity
	// SendQueue is the number of messages that may wait for a client's writer; zero means
	// 64. A client whose queue is full is closed.
	SendQueue int
}

// LiveHub serves GET /api/v1/live: it keeps the open connections and fans the configuration
// events out to them. Run it for as long as the HTTP server serves.
type LiveHub struct {
	o   LiveOptions
	log *slog.Logger

	mu      sync.Mutex
	stopped bool
	conns   map[*liveConn]struct{}
	// config holds the config topic's subscriptions: connection → subscription ids.
	config map[*liveConn]map[string]bool
	active sync.WaitGroup // one per connection being served

	// slowClosed counts the connections closed because their queue was full.
	slowClosed atomic.Int64
	// following is closed once every revision committed from then on is sure to reach the
	// config topic.
	following chan struct{}
}

// NewLiveHub returns a hub; call Run to start the configuration feeds.
func NewLiveHub(o LiveOptions) *LiveHub {
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	// Sixty-four messages are several seconds of every topic at its fastest: a client that
	// is that far behind is not keeping up, and holding more only delays the news.
	if o.SendQueue <= 0 {
		o.SendQueue = liveSendQueue
	}
	return &LiveHub{o: o, log: o.Log, conns: map[*liveConn]struct{}{}, config: map[*liveConn]map[string]bool{}, following: make(chan struct{})}
}

// Run follows the committed revisions and the proxies' sync state until ctx ends, sending
// them to the config topic's subscribers. Then it closes every connection with 1001 (going
// away) and returns once their handlers have ended. A feed that fails is logged, and the
// other topics go on being served; Run returns only nil.
func (h *LiveHub) Run(ctx context.Context) error {
	var g errgroup.Group
	if h.o.Revisions != nil {
		g.Go(func() error { return h.followRevisions(ctx) })
	} else {
		close(h.following)
	}
	if h.o.Proxies != nil {
		g.Go(func() error { return h.followProxies(ctx) })
	}
	if err := g.Wait(); err != nil && ctx.Err() == nil {
		h.log.Error("live configuration events stopped; the graph and tap topics go on", "error", err)
	}
	<-ctx.Done()
	h.mu.Lock()
	h.stopped = true
	conns := make([]*liveConn, 0, len(h.conns))
	for c := range h.conns {
		conns = append(conns, c)
	}
	h.mu.Unlock()
	for _, c := range conns {
		c.close(websocket.CloseGoingAway, "server shutting down")
	}
	h.active.Wait()
	return nil
}

func (h *LiveHub) followRevisions(ctx context.Context) error {
	after, err := h.o.Revisions.CurrentRevision(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("live: read the current revision: %w", err)
	}
	// Subscribe delivers everything after it, even what commits before it starts listening.
	close(h.following)
	return h.o.Revisions.Subscribe(ctx, after, func(r store.Revision) error {
		raw, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("live: encode revision %d: %w", r.Revision, err)
		}
		h.broadcastConfig("revision", raw)
		return nil
	})
}

func (h *LiveHub) followProxies(ctx context.Context) error {
	ev := h.o.Proxies.SubscribeProxies()
	defer ev.Close()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ev.C:
		}
		ids := ev.Next()
		if len(ids) == 0 || !h.anyConfig() {
			continue
		}
		rev := h.o.Proxies.Revision()
		byID := map[string]xds.ProxyInfo{}
		for _, p := range h.o.Proxies.Proxies() {
			byID[p.NodeID] = p
		}
		for _, id := range ids {
			v := proxyView{NodeID: id, Labels: map[string]string{}, Acked: map[string]string{}, Sent: map[string]string{}, Nacks: map[string]string{}}
			if p, ok := byID[id]; ok {
				v = viewOfProxy(p, rev, h.o.ProxySecurity)
			}
			raw, err := json.Marshal(v)
			if err != nil {
				return fmt.Errorf("live: encode proxy %s: %w", id, err)
			}
			h.broadcastConfig("proxy", raw)
		}
	}
}

func (h *LiveHub) anyConfig() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.config) > 0
}

// broadcastConfig sends {"type":typ,"id":…,typ:raw} to every config subscription.
func (h *LiveHub) broadcastConfig(typ string, raw json.RawMessage) {
	type target struct {
		c  *liveConn
		id string
	}
	h.mu.Lock()
	var targets []target
	for c, ids := range h.config {
		for id := range ids {
			targets = append(targets, target{c, id})
		}
	}
	h.mu.Unlock()
	for _, t := range targets {
		t.c.enqueue(eventMessage(typ, t.id, raw))
	}
}

// eventMessage encodes {"type":typ,"id":id,typ:raw} without encoding raw again.
func eventMessage(typ, id string, raw json.RawMessage) []byte {
	qid, _ := json.Marshal(id)
	var b bytes.Buffer
	b.Grow(len(raw) + len(id) + 2*len(typ) + 32)
	b.WriteString(`{"type":"`)
	b.WriteString(typ)
	b.WriteString(`","id":`)
	b.Write(qid)
	b.WriteString(`,"`)
	b.WriteString(typ)
	b.WriteString(`":`)
	b.Write(raw)
	b.WriteByte('}')
	return b.Bytes()
}

// register adds a connection, unless the hub has stopped.
func (h *LiveHub) register(c *liveConn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stopped {
		return false
	}
	h.conns[c] = struct{}{}
	h.active.Add(1)
	return true
}

func (h *LiveHub) unregister(c *liveConn) {
	h.mu.Lock()
	delete(h.conns, c)
	delete(h.config, c)
	h.mu.Unlock()
	h.active.Done()
}

func (h *LiveHub) addConfig(c *liveConn, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.config[c] == nil {
		h.config[c] = map[string]bool{}
	}
	h.config[c][id] = true
}

func (h *LiveHub) removeConfig(c *liveConn, id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.config[c], id)
	if len(h.config[c]) == 0 {
		delete(h.config, c)
	}
}

var liveUpgrader = websocket.Upgrader{
	ReadBufferSize:  4 << 10,
	WriteBufferSize: 16 << 10,
	// The origin is checked before upgrading, with an answer that says why.
	CheckOrigin: func(*http.Request) bool { return true },
	Error: func(w http.ResponseWriter, r *http.Request, status int, reason error) {
		writeProblem(w, status, fmt.Sprintf("cannot open the live WebSocket: %v; connect with a WebSocket client as docs/live.md describes", reason), nil, nil)
	},
}

// handleLive answers GET /api/v1/live: it upgrades the request to a WebSocket and serves the
// live protocol on it until either side closes it. The request has been authenticated (any
// role may watch); a browser's upgrade must come from a page of this server (Origin matching
// Host), or it is refused with 403.
func handleLive(h *LiveHub, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		if h == nil {
			return &Error{Status: http.StatusServiceUnavailable, Message: "live updates are not running on this server"}
		}
		if o := r.Header.Get("Origin"); o != "" {
			u, err := url.Parse(o)
			if err != nil || !strings.EqualFold(u.Host, r.Host) {
				return &Error{Status: http.StatusForbidden, Message: fmt.Sprintf("cross-origin WebSocket refused: Origin %q is not this server (%s); open the console from this server", o, r.Host)}
			}
		}
		if !websocket.IsWebSocketUpgrade(r) {
			return &Error{Status: http.StatusBadRequest, Message: "GET /api/v1/live is a WebSocket: connect with a WebSocket client (Connection: Upgrade, Upgrade: websocket) as docs/live.md describes"}
		}
		ctx, cancel := context.WithCancel(context.WithoutCancel(r.Context()))
		c := &liveConn{
			hub: h, log: h.log.With("user", principal(r).Username, "client_addr", clientAddr(r)),
			send: make(chan []byte, h.o.SendQueue), done: make(chan struct{}),
			ctx: ctx, cancel: cancel, subs: map[string]context.CancelFunc{},
		}
		if !h.register(c) {
			cancel()
			return &Error{Status: http.StatusServiceUnavailable, Message: "the server is shutting down: connect again in a moment"}
		}
		defer h.unregister(c)
		ws, err := liveUpgrader.Upgrade(w, r, nil)
		if err != nil {
			cancel()
			return nil // the upgrader has answered
		}
		c.ws = ws
		c.serve()
		return nil
	})
}

// liveConn is one client's connection.
type liveConn struct {
	hub *LiveHub
	log *slog.Logger
	ws  *websocket.Conn

	// send is the bounded queue of encoded messages for the writer.
	send chan []byte
	// done is closed when the connection is to end; closeCode and closeReason (set before)
	// say what close frame the writer sends, none when closeCode is 0.
	done        chan struct{}
	closeOnce   sync.Once
	closeCode   int
	closeReason string

	// ctx ends the subscriptions' goroutines, which subs (id → cancel) and wg keep.
	ctx    context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	subs   map[string]context.CancelFunc
	wg     sync.WaitGroup
}

// serve runs the connection: the writer on a goroutine of its own, the reader on this one.
// It returns once both have ended and every subscription has stopped.
func (c *liveConn) serve() {
	c.log.Debug("live connection opened")
	writer := make(chan struct{})
	go func() {
		defer close(writer)
		c.writeLoop()
	}()
	c.readLoop()
	c.close(0, "")
	<-writer
	c.cancel()
	c.wg.Wait()
	_ = c.ws.Close()
	c.log.Debug("live connection closed", "code", c.closeCode)
}

// close ends the connection, once: the writer sends a close frame with code and reason
// (none when code is 0) and stops, and every subscription stops.
func (c *liveConn) close(code int, reason string) {
	c.closeOnce.Do(func() {
		c.closeCode, c.closeReason = code, reason
		close(c.done)
		c.cancel()
	})
}

// enqueue puts a message on the send queue without waiting. A full queue closes the
// connection with 1008. It reports whether the message was queued.
func (c *liveConn) enqueue(b []byte) bool {
	select {
	case <-c.done:
		return false
	default:
	}
	select {
	case c.send <- b:
		return true
	default:
		c.closeOnce.Do(func() {
			c.hub.slowClosed.Add(1)
			c.log.Warn("live client closed: it does not read its messages fast enough", "queue", cap(c.send))
			c.closeCode, c.closeReason = websocket.ClosePolicyViolation, slowConsumerReason
			close(c.done)
			c.cancel()
		})
		return false
	}
}

// enqueueJSON encodes v and queues it.
func (c *liveConn) enqueueJSON(v any) bool {
	b, err := json.Marshal(v)
	if err != nil {
		c.log.Error("encode live message", "error", err)
		return false
	}
	return c.enqueue(b)
}

// sendError tells the client that its message id could not be done, and why.
func (c *liveConn) sendError(id, msg string) {
	c.enqueueJSON(liveError{Type: "error", ID: id, Message: msg})
}

type liveError struct {
	Type    string `json:"type"`
	ID      string `json:"id"`
	Message string `json:"message"`
}

func (c *liveConn) writeLoop() {
	ping := time.NewTicker(livePingEvery)
	defer ping.Stop()
	for {
		select {
		case <-c.done:
			c.writeClose()
			return
		case b := <-c.send:
			select {
			case <-c.done: // closing wins over what is still queued
				c.writeClose()
				return
			default:
			}
			_ = c.ws.SetWriteDeadline(time.Now().Add(liveWriteWait))
			if err := c.ws.WriteMessage(websocket.TextMessage, b); err != nil {
				c.close(0, "")
				_ = c.ws.SetReadDeadline(time.Now()) // the connection is dead: stop the reader too
				return
			}
		case <-ping.C:
			if err := c.ws.WriteControl(websocket.PingMessage, nil, time.Now().Add(liveWriteWait)); err != nil {
				c.close(0, "")
				_ = c.ws.SetReadDeadline(time.Now())
				return
			}
		}
	}
}

// writeClose sends the close frame, if any, and gives the client liveCloseWait to answer
// it before the reader gives up.
func (c *liveConn) writeClose() {
	if c.closeCode != 0 {
		_ = c.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(c.closeCode, c.closeReason), time.Now().Add(liveWriteWait))
	}
	_ = c.ws.SetReadDeadline(time.Now().Add(liveCloseWait))
}

func (c *liveConn) readLoop() {
	c.ws.SetReadLimit(liveMaxMessage)
	_ = c.ws.SetReadDeadline(time.Now().Add(livePongWait))
	c.ws.SetPongHandler(func(string) error {
		return c.extendRead()
	})
	for {
		// A message over the limit ends the connection too; the library has already sent
		// the client close status 1009.
		_, data, err := c.ws.ReadMessage()
		if err != nil {
			return
		}
		if err := c.extendRead(); err != nil {
			return
		}
		c.handle(data)
	}
}

// extendRead gives the client another livePongWait, unless the connection is closing.
func (c *liveConn) extendRead() error {
	select {
	case <-c.done:
		return nil
	default:
	}
	return c.ws.SetReadDeadline(time.Now().Add(livePongWait))
}

// clientMessage is a message from the client.
type clientMessage struct {
	Type   string          `json:"type"`
	ID     string          `json:"id"`
	Topic  string          `json:"topic"`
	Params json.RawMessage `json:"params"`
}

// handle acts on one message from the client; a bad one gets an error message.
func (c *liveConn) handle(data []byte) {
	var m clientMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		c.sendError("", fmt.Sprintf("the message is not a JSON object of the live protocol (%s): send {\"type\":\"subscribe\",\"id\":…,\"topic\":…,\"params\":{…}} or {\"type\":\"unsubscribe\",\"id\":…}", jsonProblem(err)))
		return
	}
	switch {
	case m.Type != "subscribe" && m.Type != "unsubscribe":
		c.sendError(m.ID, fmt.Sprintf("type: %q is not a message type: use subscribe or unsubscribe", m.Type))
		return
	case m.ID == "":
		c.sendError("", "id: required: name the subscription with an id of your choice (at most 64 characters)")
		return
	case len(m.ID) > liveMaxID:
		c.sendError("", fmt.Sprintf("id: %d characters is over the limit of %d", len(m.ID), liveMaxID))
		return
	}
	if m.Type == "unsubscribe" {
		if !c.unsubscribe(m.ID) {
			c.sendError(m.ID, fmt.Sprintf("id: %q is not subscribed on this connection", m.ID))
		}
		return
	}
	c.subscribe(m)
}

// jsonProblem words a JSON decoding error without Go's type names.
func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("invalid JSON at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("%s must be a %s", te.Field, jsonType(te.Type.Kind().String()))
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonType(kind string) string {
	switch kind {
	case "string":
		return "string"
	case "struct", "map":
		return "object"
	case "slice":
		return "array"
	case "bool":
		return "boolean"
	}
	return "number"
}

func (c *liveConn) subscribe(m clientMessage) {
	var run func(ctx context.Context)
	switch m.Topic {
	case "graph":
		p, err := graphParams(m.Params)
		if err == "" && c.hub.o.Graph == nil {
			err = "topic: the graph is not available: telemetry is not running on this server"
		}
		if err != "" {
			c.sendError(m.ID, err)
			return
		}
		run = func(ctx context.Context) { c.runGraph(ctx, m.ID, p) }
	case "tap":
		p, err := tapParams(m.Params)
		if err == "" && c.hub.o.Tap == nil {
			err = "topic: the tap is not available: telemetry is not running on this server"
		}
		if err != "" {
			c.sendError(m.ID, err)
			return
		}
		run = func(ctx context.Context) { c.runTap(ctx, m.ID, p) }
	case "config":
		if err := decodeParams(m.Params, &struct{}{}); err != "" {
			c.sendError(m.ID, err)
			return
		}
		if c.hub.o.Revisions == nil && c.hub.o.Proxies == nil {
			c.sendError(m.ID, "topic: configuration events are not available on this server")
			return
		}
	case "":
		c.sendError(m.ID, "topic: required: use graph, tap or config")
		return
	default:
		c.sendError(m.ID, fmt.Sprintf("topic: %q is not a topic: use graph, tap or config", m.Topic))
		return
	}

	c.mu.Lock()
	switch {
	case c.subs[m.ID] != nil:
		c.mu.Unlock()
		c.sendError(m.ID, fmt.Sprintf("id: %q is already subscribed on this connection: unsubscribe it first, or choose another id", m.ID))
		return
	case len(c.subs) >= liveMaxSubscriptions:
		c.mu.Unlock()
		c.sendError(m.ID, fmt.Sprintf("at most %d subscriptions per connection: unsubscribe one first", liveMaxSubscriptions))
		return
	}
	ctx, cancel := context.WithCancel(c.ctx)
	c.subs[m.ID] = cancel
	c.mu.Unlock()
	if run == nil { // config: the hub sends it events
		c.hub.addConfig(c, m.ID)
		return
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		run(ctx)
	}()
}

func (c *liveConn) unsubscribe(id string) bool {
	c.mu.Lock()
	cancel := c.subs[id]
	delete(c.subs, id)
	c.mu.Unlock()
	if cancel == nil {
		return false
	}
	cancel()
	c.hub.removeConfig(c, id)
	return true
}

// decodeParams decodes a subscription's params strictly into v, and words the problem with
// its field path ("" when there is none).
func decodeParams(raw json.RawMessage, v any) string {
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return fmt.Sprintf("params.%s: must be a %s", te.Field, jsonType(te.Type.Kind().String()))
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return fmt.Sprintf("params.%s: unknown field", strings.Trim(f, `"`))
		}
		return "params: " + jsonProblem(err) + ": params is a JSON object"
	}
	return ""
}

// graphSub is a graph subscription's parameters.
type graphSub struct {
	window    time.Duration
	namespace string
}

func graphParams(raw json.RawMessage) (graphSub, string) {
	var p struct {
		Window    string `json:"window"`
		Namespace string `json:"namespace"`
	}
	if err := decodeParams(raw, &p); err != "" {
		return graphSub{}, err
	}
	s := graphSub{window: liveGraphDefaultWindow, namespace: p.Namespace}
	if p.Window != "" {
		d, err := time.ParseDuration(p.Window)
		if err != nil || d < liveGraphMinWindow || d > liveGraphMaxWindow {
			return s, fmt.Sprintf("params.window: %q must be a duration from 1s to 5m, such as \"10s\" or \"1m\"", truncateRunes(p.Window, 32))
		}
		s.window = d
	}
	if len(p.Namespace) > 63 {
		return s, "params.namespace: longer than a namespace can be (63 characters)"
	}
	return s, ""
}

// tapSub is a tap subscription's parameters.
type tapSub struct {
	service, method, pathPrefix, status string
}

// tapStatuses are the values of a tap subscription's status.
var tapStatuses = []string{"", "2xx", "3xx", "4xx", "5xx", "error"}

func tapParams(raw json.RawMessage) (tapSub, string) {
	var p struct {
		Service    string `json:"service"`
		Method     string `json:"method"`
		PathPrefix string `json:"pathPrefix"`
		Status     string `json:"status"`
	}
	if err := decodeParams(raw, &p); err != "" {
		return tapSub{}, err
	}
	s := tapSub{service: p.Service, method: strings.ToUpper(p.Method), pathPrefix: p.PathPrefix, status: p.Status}
	switch {
	case p.Service == "":
		return s, `params.service: required: name the service, by host ("reviews.default.svc.cluster.local") or short name ("reviews", "reviews.default")`
	case len(p.Service) > 253:
		return s, "params.service: longer than a host name can be (253 characters)"
	case len(p.Method) > 32:
		return s, "params.method: longer than an HTTP method can be (32 characters)"
	case p.PathPrefix != "" && !strings.HasPrefix(p.PathPrefix, "/"):
		return s, fmt.Sprintf("params.pathPrefix: %q must start with /", truncateRunes(p.PathPrefix, 32))
	case len(p.PathPrefix) > 2048:
		return s, "params.pathPrefix: over 2048 characters"
	}
	ok := false
	for _, st := range tapStatuses {
		ok = ok || p.Status == st
	}
	if !ok {
		return s, fmt.Sprintf("params.status: %q must be one of 2xx, 3xx, 4xx, 5xx or error (or empty for any)", truncateRunes(p.Status, 32))
	}
	return s, ""
}

// match reports whether the tap subscription wants e (its service is matched by the Tap).
func (s tapSub) match(e *telemetry.AccessEntry) bool {
	if s.method != "" && !strings.EqualFold(e.Method, s.method) {
		return false
	}
	if s.pathPrefix != "" && !strings.HasPrefix(e.Path, s.pathPrefix) {
		return false
	}
	code := e.ResponseCode
	switch s.status {
	case "2xx", "3xx", "4xx", "5xx":
		return code/100 == int(s.status[0]-'0')
	case "error":
		// No status at all means the request got no response.
		return code >= 500 || code == 0
	}
	return true
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}

// graphMessage is a full graph; graphDeltaMessage what changed since the previous message.
type graphMessage struct {
	Type  string           `json:"type"`
	ID    string           `json:"id"`
	Time  time.Time        `json:"time"`
	Full  bool             `json:"full"`
	Nodes []telemetry.Node `json:"nodes"`
	Edges []telemetry.Edge `json:"edges"`
}

type graphDeltaMessage struct {
	Type string    `json:"type"`
	ID   string    `json:"id"`
	Time time.Time `json:"time"`
	Full bool      `json:"full"`
	telemetry.GraphDelta
}

// runGraph sends the graph at once, then every second what changed, with the whole graph
// again every 30 seconds or whenever the change is bigger than the graph.
func (c *liveConn) runGraph(ctx context.Context, id string, p graphSub) {
	tick := time.NewTicker(liveGraphEvery)
	defer tick.Stop()
	var (
		prev     telemetry.Graph
		lastFull time.Time
		sent     bool
		failing  bool
	)
	for {
		res, err := c.hub.o.Graph.Graph(ctx, p.window)
		switch {
		case ctx.Err() != nil:
			return
		case err != nil:
			if !failing {
				failing = true
				c.log.Error("live graph", "window", p.window.String(), "error", err)
				c.sendError(id, "the graph cannot be read right now; updates resume when it can")
			}
		default:
			failing = false
			now := time.Now().UTC().Truncate(time.Millisecond)
			g := namespaceGraph(res.Graph, p.namespace)
			var msg any
			d := telemetry.DiffGraph(prev, g)
			if !sent || now.Sub(lastFull) >= liveGraphFullEvery || d.Size() > len(g.Nodes)+len(g.Edges) {
				msg = graphMessage{Type: "graph", ID: id, Time: now, Full: true, Nodes: g.Nodes, Edges: g.Edges}
				lastFull, sent = now, true
			} else {
				msg = graphDeltaMessage{Type: "graph", ID: id, Time: now, GraphDelta: d}
			}
			if !c.enqueueJSON(msg) {
				return
			}
			prev = g
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// namespaceGraph keeps the part of g that touches namespace: the edges with an end in it, and
// their nodes. An empty namespace keeps everything.
func namespaceGraph(g telemetry.Graph, namespace string) telemetry.Graph {
	out := telemetry.Graph{Nodes: []telemetry.Node{}, Edges: []telemetry.Edge{}}
	if namespace == "" {
		if g.Nodes != nil {
			out.Nodes = g.Nodes
		}
		if g.Edges != nil {
			out.Edges = g.Edges
		}
		return out
	}
	in := map[string]bool{}
	for _, n := range g.Nodes {
		if n.Namespace == namespace {
			in[n.ID] = true
		}
	}
	keep := map[string]bool{}
	for _, e := range g.Edges {
		if in[e.Source] || in[e.Target] {
			out.Edges = append(out.Edges, e)
			keep[e.Source], keep[e.Target] = true, true
		}
	}
	for _, n := range g.Nodes {
		if in[n.ID] || keep[n.ID] {
			out.Nodes = append(out.Nodes, n)
		}
	}
	return out
}

// tapMessage is a batch of a tap subscription's entries.
type tapMessage struct {
	Type    string                  `json:"type"`
	ID      string                  `json:"id"`
	Entries []telemetry.AccessEntry `json:"entries"`
	// Dropped counts the entries left out since the previous message to keep to the rate
	// cap.
	Dropped int `json:"dropped,omitempty"`
}

// runTap forwards the entries the subscription selects every 250 ms, about 100 a second
// at most (a token bucket of 100 a second, 100 at once): when more match, a uniform sample
// of them (tapSampler), and the rest are counted as dropped.
func (c *liveConn) runTap(ctx context.Context, id string, p tapSub) {
	sub := c.hub.o.Tap.Subscribe(telemetry.TapFilter{Service: p.service})
	defer sub.Close()
	flush := time.NewTicker(liveTapEvery)
	defer flush.Stop()
	sample := newTapSampler(liveTapPerSecond, liveTapPerSecond)
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-sub.C:
			if !ok {
				c.sendError(id, "the tap fell behind the traffic and ended this subscription: subscribe again")
				c.unsubscribe(id)
				return
			}
			if p.match(&e) {
				sample.offer(e)
			}
		case now := <-flush.C:
			batch, dropped := sample.flush(now)
			if len(batch) == 0 && dropped == 0 {
				continue
			}
			if batch == nil {
				batch = []telemetry.AccessEntry{}
			}
			if !c.enqueueJSON(tapMessage{Type: "tap", ID: id, Entries: batch, Dropped: dropped}) {
				return
			}
		}
	}
}
