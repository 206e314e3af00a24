package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"github.com/gorilla/websocket"
	rpcstatus "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/auth"
	"github.com/sluicemesh/sluice/server/internal/changes"
	"github.com/sluicemesh/sluice/server/internal/registry"
	"github.com/sluicemesh/sluice/server/internal/store"
	"github.com/sluicemesh/sluice/server/internal/telemetry"
	"github.com/sluicemesh/sluice/server/internal/xds"
)

// liveEnv is an env whose API serves the live WebSocket, fed by a real Aggregator and Tap
// (filled through their public APIs) and the store's revision feed.
type liveEnv struct {
	*env
	agg *telemetry.Aggregator
	tap *telemetry.Tap
	hub *LiveHub
}

func newLiveEnv(t *testing.T) *liveEnv {
	t.Helper()
	e := newEnv(t)
	log := slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	agg, err := telemetry.New(telemetry.Options{Store: e.st, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	tap := telemetry.NewTap(telemetry.TapOptions{})
	hub := NewLiveHub(LiveOptions{Log: log, Graph: agg, Tap: tap, Revisions: e.st})
	svc, err := auth.NewService(e.st, auth.Options{Params: fastParams, Now: e.clock.Now, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	e.api = NewServer(Deps{
		Log: log, DB: e.st, XDSServing: func() bool { return true }, Proxies: noProxies{},
		Console: fstest.MapFS{"index.html": {Data: []byte("<!doctype html><title>Sluice</title>")}},
		Auth:    svc, Audit: e.st, Config: e.st, Changes: changes.New(e.st),
		Telemetry: agg, Live: hub,
	})
	e.srv = httptest.NewServer(e.api)
	t.Cleanup(e.srv.Close)
	// Cleanups run last first: the hub closes its connections before the server closes.
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- hub.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("hub: %v", err)
		}
	})
	return &liveEnv{env: e, agg: agg, tap: tap, hub: hub}
}

func (e *liveEnv) liveURL() string {
	return "ws" + strings.TrimPrefix(e.srv.URL, "http") + "/api/v1/live"
}

// dial opens the live WebSocket as c (its cookie or token), with extra headers as name, value
// pairs.
func (e *liveEnv) dial(c *client, header ...string) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	h := http.Header{}
	if c != nil {
		d.Jar = c.hc.Jar
		if c.token != "" {
			h.Set("Authorization", "Bearer "+c.token)
		}
	}
	for i := 0; i+1 < len(header); i += 2 {
		h.Set(header[i], header[i+1])
	}
	return d.Dial(e.liveURL(), h)
}

// mustDial opens the live WebSocket and fails the test unless it is upgraded.
func (e *liveEnv) mustDial(c *client) *wsClient {
	e.t.Helper()
	ws, resp, err := e.dial(c)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		e.t.Fatalf("dial %s: %v (status %d)", e.liveURL(), err, status)
	}
	e.t.Cleanup(func() { ws.Close() })
	return &wsClient{t: e.t, ws: ws}
}

// wsClient is a test's end of the live WebSocket.
type wsClient struct {
	t  *testing.T
	ws *websocket.Conn
}

// liveMsg is any message from the server.
type liveMsg struct {
	Type         string                  `json:"type"`
	ID           string                  `json:"id"`
	Message      string                  `json:"message"`
	Time         time.Time               `json:"time"`
	Full         bool                    `json:"full"`
	Nodes        []telemetry.Node        `json:"nodes"`
	Edges        []telemetry.Edge        `json:"edges"`
	RemovedNodes []string                `json:"removedNodes"`
	RemovedEdges []string                `json:"removedEdges"`
	Entries      []telemetry.AccessEntry `json:"entries"`
	Dropped      int                     `json:"dropped"`
	Revision     *store.Revision         `json:"revision"`
}

func (c *wsClient) send(v any) {
	c.t.Helper()
	var err error
	if s, ok := v.(string); ok {
		err = c.ws.WriteMessage(websocket.TextMessage, []byte(s))
	} else {
		err = c.ws.WriteJSON(v)
	}
	if err != nil {
		c.t.Fatalf("send %v: %v", v, err)
	}
}

// read returns the next message. The deadline only bounds a failing test.
func (c *wsClient) read() liveMsg {
	c.t.Helper()
	_ = c.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, b, err := c.ws.ReadMessage()
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	var m liveMsg
	if err := json.Unmarshal(b, &m); err != nil {
		c.t.Fatalf("decode %s: %v", b, err)
	}
	return m
}

// readUntil returns the first message for which ok holds, skipping the others.
func (c *wsClient) readUntil(what string, ok func(liveMsg) bool) liveMsg {
	c.t.Helper()
	for range 200 {
		if m := c.read(); ok(m) {
			return m
		}
	}
	c.t.Fatalf("no message %s among 200", what)
	return liveMsg{}
}

func subscribe(id, topic string, params map[string]string) map[string]any {
	m := map[string]any{"type": "subscribe", "id": id, "topic": topic}
	if params != nil {
		m["params"] = params
	}
	return m
}

// waitFor polls cond; the timeout only bounds a failing test.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestLiveAuthentication(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t)
	admin := e.admin()
	viewerPassword := "viewer password!"
	e.addUser(admin, "vera", viewerPassword, auth.RoleViewer)
	vera := e.signedIn("vera", viewerPassword)
	token := e.createToken(admin, map[string]string{"name": "live"})

	if _, resp, err := e.dial(nil); !errors.Is(err, websocket.ErrBadHandshake) || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("without credentials: %v, %v; want 401 before the upgrade", err, resp)
	}
	if _, resp, err := e.dial(e.script("slc_not-a-token")); err == nil || resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("with a bad token: %v; want 401", err)
	}
	if _, resp, err := e.dial(vera, "Origin", "https://evil.example"); !errors.Is(err, websocket.ErrBadHandshake) || resp.StatusCode != http.StatusForbidden {
		t.Errorf("cookie from another origin: %v, %v; want 403", err, resp)
	}
	// The console: a viewer's cookie, from the server's own page.
	ws, _, err := e.dial(vera, "Origin", e.srv.URL)
	if err != nil {
		t.Fatalf("viewer's cookie from the server's origin: %v", err)
	}
	ws.Close()
	// sluicectl: a token, no Origin.
	ws, _, err = e.dial(e.script(token.Token))
	if err != nil {
		t.Fatalf("token: %v", err)
	}
	ws.Close()
	// Not a WebSocket at all.
	res := vera.do("GET", "/api/v1/live", nil, nil)
	wantStatus(t, "plain GET", res, http.StatusBadRequest, "WebSocket")
}

func TestLiveBadSubscribe(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t)
	c := e.mustDial(e.admin())
	for _, tc := range []struct {
		name   string
		msg    any
		wantID string
		want   string
	}{
		{"not JSON", "{nope", "", "not a JSON object"},
		{"unknown type", map[string]any{"type": "watch", "id": "w1"}, "w1", `type: "watch" is not a message type`},
		{"no id", map[string]any{"type": "subscribe", "topic": "graph"}, "", "id: required"},
		{"long id", subscribe(strings.Repeat("x", 65), "graph", nil), "", "id: 65 characters"},
		{"unknown topic", subscribe("u1", "weather", nil), "u1", `topic: "weather" is not a topic`},
		{"no topic", subscribe("u2", "", nil), "u2", "topic: required"},
		{"bad window", subscribe("g1", "graph", map[string]string{"window": "2h"}), "g1", `params.window: "2h" must be a duration from 1s to 5m`},
		{"window not a duration", subscribe("g2", "graph", map[string]string{"window": "soon"}), "g2", "params.window"},
		{"unknown param", subscribe("g3", "graph", map[string]string{"windw": "10s"}), "g3", "params.windw: unknown field"},
		{"param of the wrong type", map[string]any{"type": "subscribe", "id": "g4", "topic": "graph", "params": map[string]any{"window": 10}}, "g4", "params.window: must be a string"},
		{"tap without service", subscribe("t1", "tap", map[string]string{"method": "GET"}), "t1", "params.service: required"},
		{"tap bad status", subscribe("t2", "tap", map[string]string{"service": "reviews", "status": "6xx"}), "t2", `params.status: "6xx" must be one of`},
		{"tap bad path", subscribe("t3", "tap", map[string]string{"service": "reviews", "pathPrefix": "reviews"}), "t3", "params.pathPrefix: \"reviews\" must start with /"},
		{"config with params", subscribe("c1", "config", map[string]string{"window": "1s"}), "c1", "params.window: unknown field"},
		{"unsubscribe unknown", map[string]any{"type": "unsubscribe", "id": "nope"}, "nope", `id: "nope" is not subscribed`},
	} {
		c.send(tc.msg)
		m := c.read()
		if m.Type != "error" || m.ID != tc.wantID || !strings.Contains(m.Message, tc.want) {
			t.Errorf("%s: got %+v, want an error for id %q containing %q", tc.name, m, tc.wantID, tc.want)
		}
	}

	// The connection stays open, and enforces ids and the subscription limit.
	c.send(subscribe("g", "graph", nil))
	if m := c.read(); m.Type != "graph" || m.ID != "g" || !m.Full {
		t.Fatalf("after the errors, a good subscribe got %+v", m)
	}
	c.send(subscribe("g", "config", nil))
	m := c.readUntil("about the duplicate id", func(m liveMsg) bool { return m.Type == "error" })
	if m.ID != "g" || !strings.Contains(m.Message, `id: "g" is already subscribed`) {
		t.Errorf("duplicate id: %+v", m)
	}
	for i := range 15 {
		c.send(subscribe(fmt.Sprintf("c%d", i), "config", nil))
	}
	c.send(subscribe("one-too-many", "config", nil))
	m = c.readUntil("about the limit", func(m liveMsg) bool { return m.Type == "error" })
	if m.ID != "one-too-many" || !strings.Contains(m.Message, "at most 16 subscriptions") {
		t.Errorf("17th subscription: %+v", m)
	}
	c.send(map[string]any{"type": "unsubscribe", "id": "c0"})
	c.send(subscribe("one-more", "config", nil))
	c.send(map[string]any{"type": "unsubscribe", "id": "one-more"})
	c.send(map[string]any{"type": "unsubscribe", "id": "one-more"})
	m = c.readUntil("about the unsubscribed id", func(m liveMsg) bool { return m.Type == "error" })
	if m.ID != "one-more" || !strings.Contains(m.Message, "is not subscribed") {
		t.Errorf("after unsubscribing one, subscribing again and unsubscribing twice: %+v", m)
	}
}

// record adds n requests from productpage to a reviews version, as the destination reports
// them, to the aggregator.
func record(agg *telemetry.Aggregator, version, code string, n int64) {
	s := telemetry.Series{
		Reporter: telemetry.ReporterDestination, SourceWorkload: "productpage-v1", SourceNamespace: "default", SourceVersion: "v1",
		DestinationService: "reviews.default.svc.cluster.local", DestinationWorkload: "reviews-" + version, DestinationVersion: version,
		ResponseCode: code, ResponseFlags: "-", Protocol: "http",
	}
	st := telemetry.Stats{Requests: n, DurationCount: n, DurationSumMs: float64(n) * 20}
	st.Duration[4] = n // (10, 25] ms
	if telemetry.IsError(s) {
		st.Errors = n
	}
	agg.Record(telemetry.Origin{NodeID: "reviews-" + version}, []telemetry.Sample{{Series: s, Stats: st}})
}

func TestLiveGraphFullThenDelta(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t)
	record(e.agg, "v1", "200", 30)
	c := e.mustDial(e.admin())
	c.send(subscribe("g1", "graph", map[string]string{"window": "1m"}))
	c.send(subscribe("other", "graph", map[string]string{"namespace": "elsewhere"}))

	svc := "service:reviews.default.svc.cluster.local"
	v1, v2 := "workload:default/reviews-v1", "workload:default/reviews-v2"
	var full liveMsg
	for full.ID != "g1" {
		m := c.read()
		switch {
		case m.ID == "other" && m.Full && (len(m.Nodes) != 0 || len(m.Edges) != 0):
			t.Errorf("a namespace without traffic got %+v", m)
		case m.ID == "g1":
			full = m
		}
	}
	if full.Type != "graph" || !full.Full || full.Time.IsZero() {
		t.Fatalf("first message %+v, want the full graph", full)
	}
	ids := func(ns []telemetry.Node) []string {
		var out []string
		for _, n := range ns {
			out = append(out, n.ID)
		}
		return out
	}
	if got := ids(full.Nodes); !slices.Equal(got, []string{svc, "workload:default/productpage-v1", v1}) {
		t.Errorf("full graph nodes %v", got)
	}
	edge := func(es []telemetry.Edge, id string) *telemetry.Edge {
		for i := range es {
			if es[i].ID == id {
				return &es[i]
			}
		}
		return nil
	}
	if e := edge(full.Edges, telemetry.EdgeID(svc, v1)); e == nil || e.Requests != 30 || e.Source != svc || e.Target != v1 {
		t.Errorf("full graph edges %+v, want 30 requests %s", full.Edges, telemetry.EdgeID(svc, v1))
	}

	// New traffic to v2: a delta with the new node and edge, and nothing about what did not
	// change.
	record(e.agg, "v2", "503", 10)
	d := c.readUntil("with reviews-v2", func(m liveMsg) bool {
		return m.ID == "g1" && slices.ContainsFunc(m.Nodes, func(n telemetry.Node) bool { return n.ID == v2 })
	})
	if d.Full {
		t.Fatalf("the update is a full graph, want a delta: %+v", d)
	}
	if got := ids(d.Nodes); !slices.Equal(got, []string{v2}) {
		t.Errorf("delta nodes %v, want only the new one", got)
	}
	e2 := edge(d.Edges, telemetry.EdgeID(svc, v2))
	if e2 == nil || e2.Requests != 10 || e2.Errors != 10 || e2.SuccessRate == nil || *e2.SuccessRate != 0 {
		t.Errorf("delta edges %+v, want %s with 10 failed requests", d.Edges, telemetry.EdgeID(svc, v2))
	}
	if edge(d.Edges, telemetry.EdgeID(svc, v1)) != nil {
		t.Errorf("delta carries the unchanged edge to v1: %+v", d.Edges)
	}
	if d.RemovedNodes == nil || d.RemovedEdges == nil || len(d.RemovedNodes)+len(d.RemovedEdges) != 0 {
		t.Errorf("delta removes %v %v, want empty lists", d.RemovedNodes, d.RemovedEdges)
	}

	// Unsubscribed, it stops; the other subscription goes on.
	c.send(map[string]any{"type": "unsubscribe", "id": "g1"})
	c.readUntil("of the other subscription", func(m liveMsg) bool { return m.ID == "other" })
}

func TestLiveTapFiltered(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t)
	c := e.mustDial(e.admin())
	c.send(subscribe("t1", "tap", map[string]string{"service": "reviews", "method": "get", "pathPrefix": "/reviews/", "status": "5xx"}))
	waitFor(t, "the tap subscription", func() bool { return e.tap.Subscribers() == 1 })

	entry := func(service, method, path string, code int) telemetry.AccessEntry {
		return telemetry.AccessEntry{
			Time: time.Now().UTC(), NodeID: "reviews-v2", Reporter: telemetry.ReporterDestination,
			SourceWorkload: "productpage-v1", SourceNamespace: "default",
			DestinationService: service + ".default.svc.cluster.local", DestinationWorkload: service + "-v2", DestinationVersion: "v2",
			Method: method, Path: path, Protocol: "http", ResponseCode: code, ResponseFlags: "-", DurationMs: 12,
		}
	}
	want := []telemetry.AccessEntry{
		entry("reviews", "GET", "/reviews/0", 503),
		entry("reviews", "GET", "/reviews/1", 500),
	}
	e.tap.Publish([]telemetry.AccessEntry{
		entry("reviews", "GET", "/reviews/0", 200), // wrong status
		want[0],
		entry("ratings", "GET", "/reviews/0", 503),  // another service
		entry("reviewsx", "GET", "/reviews/0", 503), // a longer name is another service too
		entry("reviews", "POST", "/reviews/0", 503), // wrong method
		entry("reviews", "GET", "/health", 503),     // wrong path
		want[1],
	})
	var got []telemetry.AccessEntry
	for len(got) < len(want) {
		m := c.read()
		if m.Type != "tap" || m.ID != "t1" {
			t.Fatalf("got %+v, want tap messages", m)
		}
		got = append(got, m.Entries...)
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Path != want[i].Path || got[i].ResponseCode != want[i].ResponseCode || got[i].DestinationService != want[i].DestinationService || !got[i].Time.Equal(want[i].Time) {
			t.Errorf("entry %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestLiveConfigRevision(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t)
	admin := e.admin()
	c := e.mustDial(admin)
	c.send(subscribe("c1", "config", nil))
	waitFor(t, "the config subscription", e.hub.anyConfig)
	<-e.hub.following

	out := admin.mustApply(reviewsBase)
	m := c.read()
	if m.Type != "revision" || m.ID != "c1" || m.Revision == nil {
		t.Fatalf("got %+v, want the revision", m)
	}
	if m.Revision.Revision != out.Revision || m.Revision.Actor == "" || len(m.Revision.Changes) != 2 {
		t.Errorf("revision %+v, want %d by admin with two changes", m.Revision, out.Revision)
	}
	// The same JSON as GET /api/v1/revisions lists.
	var list struct {
		Revisions []json.RawMessage `json:"revisions"`
	}
	admin.do("GET", "/api/v1/revisions?limit=1", nil, &list)
	mine, _ := json.Marshal(m.Revision)
	if len(list.Revisions) != 1 || !sameJSON(t, list.Revisions[0], mine) {
		t.Errorf("live revision\n%s\nGET /api/v1/revisions\n%s", mine, list.Revisions)
	}
}

// TestLiveSlowConsumerClosed fills one client's queue by never reading it, and checks that
// the server closes it with 1008 while another client goes on receiving.
func TestLiveSlowConsumerClosed(t *testing.T) {
	t.Parallel()
	e := newLiveEnv(t)
	admin := e.admin()

	// The slow client's socket holds little, so that its queue fills soon. (The buffer is
	// set before connecting: shrinking it later can stall the connection.)
	small := &net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 8<<10)
		}); err != nil {
			return err
		}
		return serr
	}}
	d := websocket.Dialer{Jar: admin.hc.Jar, NetDialContext: small.DialContext}
	slowWS, _, err := d.Dial(e.liveURL(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer slowWS.Close()
	slow := &wsClient{t: t, ws: slowWS}
	for i := range liveMaxSubscriptions {
		slow.send(subscribe(fmt.Sprintf("t%d", i), "tap", map[string]string{"service": "reviews"}))
	}
	fast := e.mustDial(admin)
	fast.send(subscribe("t", "tap", map[string]string{"service": "reviews"}))
	waitFor(t, "every tap subscription", func() bool { return e.tap.Subscribers() == liveMaxSubscriptions+1 })

	// Traffic until the test ends, with long paths so that the socket fills up.
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	defer func() { cancel(); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		pad := strings.Repeat("x", 2000)
		batch := make([]telemetry.AccessEntry, 20)
		for i := 0; ctx.Err() == nil; i++ {
			for j := range batch {
				batch[j] = telemetry.AccessEntry{Time: time.Now(), DestinationService: "reviews.default.svc.cluster.local", Method: "GET", Path: fmt.Sprintf("/reviews/%d/%s", i, pad), ResponseCode: 200}
			}
			e.tap.Publish(batch)
			time.Sleep(10 * time.Millisecond)
		}
	}()

	// The fast client reads on while the slow one's queue fills and it is closed.
	for e.hub.slowClosed.Load() == 0 {
		if m := fast.read(); m.Type != "tap" {
			t.Fatalf("fast client got %+v", m)
		}
	}
	for got := 0; got < 3; {
		m := fast.read()
		if m.Type != "tap" {
			t.Fatalf("after the slow client was closed, the fast one got %+v", m)
		}
		if len(m.Entries) > 0 {
			got++
		}
		// At most 100 entries a second: the rest of the second's traffic is counted.
		if len(m.Entries) > liveTapPerSecond {
			t.Errorf("one message holds %d entries, over the cap of %d a second", len(m.Entries), liveTapPerSecond)
		}
	}
	if n := e.hub.slowClosed.Load(); n != 1 {
		t.Errorf("%d clients closed as slow, want 1", n)
	}

	// The slow client finds the close frame after what it had not read.
	_ = slowWS.SetReadDeadline(time.Now().Add(30 * time.Second))
	for n := 0; ; n++ {
		_, _, err := slowWS.ReadMessage()
		if err == nil {
			continue
		}
		t.Logf("slow client read %d messages, then %v", n, err)
		var ce *websocket.CloseError
		if !errors.As(err, &ce) || ce.Code != websocket.ClosePolicyViolation || ce.Text != slowConsumerReason {
			t.Fatalf("slow client ended with %v, want close 1008 %q", err, slowConsumerReason)
		}
		break
	}
}

// TestLiveConfigProxyEvents connects a proxy to a real ADS server over gRPC, and checks that
// the config topic tells of its connecting, its NACK and its leaving, with the JSON of
// GET /api/v1/proxies.
func TestLiveConfigProxyEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	log := slog.New(slog.NewTextHandler(logWriter{t}, nil))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	reg := registry.New(e.st, log, time.Minute)
	xdsSrv := xds.New(ctx, log, reg, e.st, e.st, xds.Features{})
	if _, err := xdsSrv.LoadConfig(ctx); err != nil {
		t.Fatal(err)
	}
	g := grpc.NewServer()
	xdsSrv.Register(g)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- g.Serve(lis) }()
	defer func() {
		g.Stop()
		if err := <-served; err != nil {
			t.Errorf("gRPC server: %v", err)
		}
	}()

	hub := NewLiveHub(LiveOptions{Log: log, Proxies: xdsSrv})
	ran := make(chan error, 1)
	go func() { ran <- hub.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("hub: %v", err)
		}
	}()
	svc, err := auth.NewService(e.st, auth.Options{Params: fastParams, Now: e.clock.Now, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(NewServer(Deps{
		Log: log, DB: e.st, XDSServing: func() bool { return true }, Proxies: xdsSrv,
		Console: fstest.MapFS{}, Auth: svc, Audit: e.st, Config: e.st, Changes: changes.New(e.st), Live: hub,
	}))
	defer srv.Close()
	le := &liveEnv{env: &env{t: t, srv: srv, st: e.st, clock: e.clock}, hub: hub}
	admin := le.admin()
	c := le.mustDial(admin)
	defer c.ws.Close() // before the hub stops, which would wait for the client's close
	c.send(subscribe("c1", "config", nil))
	waitFor(t, "the config subscription", hub.anyConfig)

	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	sctx, closeStream := context.WithCancel(ctx)
	defer closeStream()
	stream, err := discoveryv3.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(sctx)
	if err != nil {
		t.Fatal(err)
	}
	md, _ := structpb.NewStruct(map[string]any{
		meta.KeyNamespace: "default", meta.KeyService: "reviews", meta.KeyAddress: "127.0.0.6",
		meta.KeyLabels: map[string]any{"version": "v2"},
	})
	node := &corev3.Node{Id: "reviews-v2-sim", Metadata: md}
	if err := stream.Send(&discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType}); err != nil {
		t.Fatal(err)
	}

	type proxyMsg struct {
		Type  string          `json:"type"`
		ID    string          `json:"id"`
		Proxy json.RawMessage `json:"proxy"`
	}
	var pv proxyView
	nextProxy := func(what string, ok func(proxyView) bool) json.RawMessage {
		t.Helper()
		for range 50 {
			_ = c.ws.SetReadDeadline(time.Now().Add(30 * time.Second))
			var m proxyMsg
			if err := c.ws.ReadJSON(&m); err != nil {
				t.Fatalf("waiting for %s: %v", what, err)
			}
			if m.Type != "proxy" || m.ID != "c1" {
				t.Fatalf("waiting for %s, got %+v", what, m)
			}
			pv = proxyView{}
			if err := json.Unmarshal(m.Proxy, &pv); err != nil {
				t.Fatal(err)
			}
			if ok(pv) {
				return m.Proxy
			}
		}
		t.Fatalf("no proxy message %s", what)
		return nil
	}
	raw := nextProxy("of the proxy connecting", func(p proxyView) bool { return p.NodeID == "reviews-v2-sim" && p.Connected })
	var list struct {
		Proxies []json.RawMessage `json:"proxies"`
	}
	admin.do("GET", "/api/v1/proxies", nil, &list)
	if len(list.Proxies) != 1 || !sameJSON(t, list.Proxies[0], raw) {
		t.Errorf("live proxy\n%s\nGET /api/v1/proxies\n%s", raw, list.Proxies)
	}

	nack := &discoveryv3.DiscoveryRequest{Node: node, TypeUrl: resourcev3.ClusterType, ResponseNonce: "1", VersionInfo: "",
		ErrorDetail: &rpcstatus.Status{Code: 3, Message: "cluster outbound|9080||ratings: bad"}}
	if err := stream.Send(nack); err != nil {
		t.Fatal(err)
	}
	nextProxy("of the NACK", func(p proxyView) bool { return p.Nacks["CDS"] == "cluster outbound|9080||ratings: bad" })

	closeStream()
	nextProxy("of the proxy leaving", func(p proxyView) bool { return p.NodeID == "reviews-v2-sim" && !p.Connected && p.DisconnectedAt != nil })
}
