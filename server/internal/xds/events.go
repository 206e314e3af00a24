package xds

import (
	"sync"
)

// ProxyEvents is a subscription to changes of proxies' sync state: a proxy connected or
// disconnected, ACKed or NACKed a type, or became synced to a newer revision. It tells which
// proxies changed, not how: read their state from Proxies. Changes of one proxy coalesce until
// they are read, so a subscription holds at most one entry per proxy and the server never
// waits for its reader.
type ProxyEvents struct {
	// C receives a value when there are changes to read with Next.
	C <-chan struct{}

	c   chan struct{}
	hub *eventHub

	mu      sync.Mutex
	pending map[string]struct{}
	order   []string
}

// Next returns the node ids of the proxies that changed since the previous call, in the order
// they first changed, and forgets them.
func (e *ProxyEvents) Next() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := e.order
	e.order = nil
	clear(e.pending)
	return out
}

// Close ends the subscription. It is safe to call more than once.
func (e *ProxyEvents) Close() {
	e.hub.mu.Lock()
	defer e.hub.mu.Unlock()
	delete(e.hub.subs, e)
}

func (e *ProxyEvents) note(nodeID string) {
	e.mu.Lock()
	if _, ok := e.pending[nodeID]; !ok {
		e.pending[nodeID] = struct{}{}
		e.order = append(e.order, nodeID)
	}
	e.mu.Unlock()
	select {
	case e.c <- struct{}{}:
	default: // a wake-up is already waiting
	}
}

// eventHub fans proxy changes out to the subscriptions. The zero value is ready to use.
type eventHub struct {
	mu   sync.Mutex
	subs map[*ProxyEvents]struct{}
}

// notify records that the proxy nodeID changed. It never blocks on a subscriber, and takes
// only the hub's and the subscriptions' own locks, so it may be called with Server.mu held.
func (h *eventHub) notify(nodeID string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for e := range h.subs {
		e.note(nodeID)
	}
}

// SubscribeProxies starts a subscription to the proxies' changes, from now on. Close it when
// done.
func (s *Server) SubscribeProxies() *ProxyEvents {
	c := make(chan struct{}, 1)
	e := &ProxyEvents{C: c, c: c, hub: &s.events, pending: map[string]struct{}{}}
	s.events.mu.Lock()
	defer s.events.mu.Unlock()
	if s.events.subs == nil {
		s.events.subs = map[*ProxyEvents]struct{}{}
	}
	s.events.subs[e] = struct{}{}
	return e
}
