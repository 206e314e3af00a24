package cluster

import (
	"context"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemesh/sluice/proxy/internal/identity"
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
	// Identity is the proxy's workload identity, which mutual TLS connections present and
	// verify peers with; nil (or one without a certificate yet) makes Istio mutual TLS
	// connections plaintext, as in development mode. Set it before the first For.
	Identity identity.Source

	mu        sync.Mutex
	byOptions map[poolKey]*Transports
}

// poolKey is what makes two clusters' connections interchangeable.
type poolKey struct {
	connect, idle time.Duration
	perConn       uint32
	// tls is the key of the TLS context connections are made with; "" for plaintext.
	tls string
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

// For returns the plaintext transports for a cluster with config cfg.
func (p *Pools) For(cfg *Config) *Transports { return p.ForTLS(cfg, nil) }

// ForTLS returns the transports for a cluster with config cfg whose connections use the TLS
// context t (nil for plaintext).
func (p *Pools) ForTLS(cfg *Config, t *TLSContext) *Transports {
	k := poolKey{connect: cfg.ConnectTimeout, idle: cfg.IdleTimeout, perConn: cfg.MaxRequestsPerConnection}
	if t != nil {
		k.tls = t.key
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if out, ok := p.byOptions[k]; ok {
		return out
	}
	dialer := &net.Dialer{Timeout: k.connect, KeepAlive: 30 * time.Second}
	if p.SourceIP != nil {
		dialer.LocalAddr = &net.TCPAddr{IP: p.SourceIP}
	}
	counted := func(dial func(ctx context.Context, network, addr string) (net.Conn, error)) func(ctx context.Context, network, addr string) (net.Conn, error) {
		if k.perConn == 0 {
			return dial
		}
		// Count each connection's requests: see Cluster.Prepare.
		return func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := dial(ctx, network, addr)
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
		alpn := "http/1.1"
		if h1 {
			protos.SetHTTP1(true)
		} else {
			// Over TLS too: the transport socket below negotiates h2 by ALPN, and HTTP/2
			// then starts with its preface as on a cleartext connection.
			protos.SetUnencryptedHTTP2(true)
			alpn = "h2"
		}
		dial := dialer.DialContext
		if t != nil {
			dial = tlsDialer(dial, t, p.Identity, alpn)
		}
		return &http.Transport{
			// Proxy stays nil: the sidecar must never send its own traffic through the
			// HTTP_PROXY its application uses to reach it.
			DialContext:         counted(dial),
			MaxIdleConns:        0, // no global cap; MaxIdleConnsPerHost bounds each endpoint
			MaxIdleConnsPerHost: MaxIdleConnsPerHost,
			IdleConnTimeout:     idle,
			// A proxy passes bodies through as they are: no Accept-Encoding of its own and no
			// transparent decompression.
			DisableCompression: true,
			Protocols:          &protos,
		}
	}
	out := &Transports{HTTP1: newTransport(true), H2C: newTransport(false)}
	if p.byOptions == nil {
		p.byOptions = map[poolKey]*Transports{}
	}
	p.byOptions[k] = out
	return out
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
// When only some endpoints take TLS (auto mTLS), it picks by the request's URL host, the
// endpoint's address.
func (c *Cluster) RoundTripper(downstreamHTTP2 bool) http.RoundTripper {
	i := 0
	if c.UsesHTTP2(downstreamHTTP2) {
		i = 1
	}
	return c.roundTrippers[i]
}

// pick returns t's transport for HTTP/2 or HTTP/1.1.
func (t *Transports) pick(h2 bool) *http.Transport {
	if h2 {
		return t.H2C
	}
	return t.HTTP1
}

// matchedTransport sends a request to an endpoint EDS labels tlsMode "istio" over TLS, and
// to the others in plaintext.
type matchedTransport struct {
	secure, plain *http.Transport
	tlsHosts      map[string]bool
}

// RoundTrip sends req over the transport its endpoint's transport socket match selects.
func (m *matchedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if m.tlsHosts[req.URL.Host] {
		return m.secure.RoundTrip(req)
	}
	return m.plain.RoundTrip(req)
}

// roundTrippers returns the HTTP/1.1 and HTTP/2 round trippers of a cluster with config cfg
// and assignment a.
func (p *Pools) roundTrippers(cfg *Config, a *Assignment) [2]http.RoundTripper {
	var out [2]http.RoundTripper
	plain := p.For(cfg)
	switch {
	case cfg.TLS != nil:
		secure := p.ForTLS(cfg, cfg.TLS)
		out[0], out[1] = secure.HTTP1, secure.H2C
	case cfg.TLSMatch != nil && a != nil && len(a.TLSHosts) > 0:
		secure := p.ForTLS(cfg, cfg.TLSMatch)
		for i, h2 := range []bool{false, true} {
			out[i] = &matchedTransport{secure: secure.pick(h2), plain: plain.pick(h2), tlsHosts: a.TLSHosts}
		}
	default:
		out[0], out[1] = plain.HTTP1, plain.H2C
	}
	return out
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
