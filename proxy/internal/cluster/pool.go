package cluster

import (
	"context"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"
)

// MaxIdleConnsPerHost is how many idle keep-alive connections the pools keep per endpoint.
// It is large because a sidecar funnels all of its application's traffic to a few endpoints,
// and a pool smaller than the concurrency closes and reopens connections under load.
const MaxIdleConnsPerHost = 256

// Pools holds the upstream connection pools. Clusters with the same connection settings
// (connect timeout, idle timeout, requests per connection) share a pair of transports, one
// HTTP/1.1 and one h2c, whose pools are keyed by endpoint address, so two clusters with a
// common endpoint share its connections. The zero value is ready to use.
type Pools struct {
	// SourceIP, when set, is the local address upstream connections come from: the workload's
	// own loopback address in universal mode, so the peer sees who is calling.
	SourceIP net.IP

	mu        sync.Mutex
	byOptions map[poolKey]*Transports
}

// poolKey is what makes two clusters' connections interchangeable.
type poolKey struct {
	connect, idle time.Duration
	perConn       uint32
}

// DefaultIdleTimeout closes upstream connections idle this long, unless a cluster's
// common_http_protocol_options.idle_timeout says otherwise.
const DefaultIdleTimeout = 90 * time.Second

// Transports is a pair of pooled upstream transports.
type Transports struct {
	// HTTP1 speaks HTTP/1.1 only.
	HTTP1 *http.Transport
	// H2C speaks HTTP/2 with prior knowledge over cleartext only.
	H2C *http.Transport
}

// For returns the transports for a cluster with config cfg.
func (p *Pools) For(cfg *Config) *Transports {
	k := poolKey{connect: cfg.ConnectTimeout, idle: cfg.IdleTimeout, perConn: cfg.MaxRequestsPerConnection}
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.byOptions[k]; ok {
		return t
	}
	dialer := &net.Dialer{Timeout: k.connect, KeepAlive: 30 * time.Second}
	if p.SourceIP != nil {
		dialer.LocalAddr = &net.TCPAddr{IP: p.SourceIP}
	}
	dial := dialer.DialContext
	if k.perConn > 0 {
		// Count each connection's requests: see Cluster.Prepare.
		dial = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dialer.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &countedConn{Conn: c}, nil
		}
	}
	idle := DefaultIdleTimeout
	switch {
	case k.idle < 0:
		idle = 0 // no idle timeout
	case k.idle > 0:
		idle = k.idle
	}
	newTransport := func(h1 bool) *http.Transport {
		var protos http.Protocols
		if h1 {
			protos.SetHTTP1(true)
		} else {
			protos.SetUnencryptedHTTP2(true)
		}
		return &http.Transport{
			// Proxy stays nil: the sidecar must never send its own traffic through the
			// HTTP_PROXY its application uses to reach it.
			DialContext:         dial,
			MaxIdleConns:        0, // no global cap; MaxIdleConnsPerHost bounds each endpoint
			MaxIdleConnsPerHost: MaxIdleConnsPerHost,
			IdleConnTimeout:     idle,
			// A proxy passes bodies through as they are: no Accept-Encoding of its own and no
			// transparent decompression.
			DisableCompression: true,
			Protocols:          &protos,
		}
	}
	t := &Transports{HTTP1: newTransport(true), H2C: newTransport(false)}
	if p.byOptions == nil {
		p.byOptions = map[poolKey]*Transports{}
	}
	p.byOptions[k] = t
	return t
}

// CloseIdle closes every idle upstream connection.
func (p *Pools) CloseIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.byOptions {
		t.HTTP1.CloseIdleConnections()
		t.H2C.CloseIdleConnections()
	}
}

// RoundTripper returns the transport for a request to c that arrived over HTTP/2 or not.
func (c *Cluster) RoundTripper(downstreamHTTP2 bool) http.RoundTripper {
	if c.UsesHTTP2(downstreamHTTP2) {
		return c.transports.H2C
	}
	return c.transports.HTTP1
}

// UsesHTTP2 reports whether a request to c that arrived over HTTP/2 or not goes upstream
// over HTTP/2.
func (c *Cluster) UsesHTTP2(downstreamHTTP2 bool) bool {
	return c.Protocol == HTTP2 || (c.Protocol == Downstream && downstreamHTTP2)
}

// countedConn counts the requests sent on an upstream connection.
type countedConn struct {
	net.Conn
	requests atomic.Uint32
}

// Prepare returns req ready for c's transport. With max_requests_per_connection, it watches
// which connection the request gets, and asks for that connection to close after the
// request when it has carried its share: Go's transport then does not reuse it. Otherwise
// req is returned as it is, at no cost.
func (c *Cluster) Prepare(req *http.Request) *http.Request {
	limit := c.MaxRequestsPerConnection
	if limit == 0 {
		return req
	}
	var out *http.Request
	trace := &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		// The transport calls this on the request's own goroutine, before it writes the
		// request, so setting Close here is seen and races nothing.
		if cc, ok := info.Conn.(*countedConn); ok && cc.requests.Add(1) >= limit {
			out.Close = true
		}
	}}
	out = req.WithContext(httptrace.WithClientTrace(req.Context(), trace))
	return out
}
