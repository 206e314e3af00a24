package cluster

import (
	"net"
	"net/http"
	"sync"
	"time"
)

// MaxIdleConnsPerHost is how many idle keep-alive connections the pools keep per endpoint.
// It is large because a sidecar funnels all of its application's traffic to a few endpoints,
// and a pool smaller than the concurrency closes and reopens connections under load.
const MaxIdleConnsPerHost = 256

// Pools holds the upstream connection pools. Clusters with the same connect timeout share a
// pair of transports, one HTTP/1.1 and one h2c, whose pools are keyed by endpoint address,
// so two clusters with a common endpoint share its connections. The zero value is ready to use.
type Pools struct {
	// SourceIP, when set, is the local address upstream connections come from: the workload's
	// own loopback address in universal mode, so the peer sees who is calling.
	SourceIP net.IP

	mu        sync.Mutex
	byTimeout map[time.Duration]*Transports
}

// Transports is a pair of pooled upstream transports.
type Transports struct {
	// HTTP1 speaks HTTP/1.1 only.
	HTTP1 *http.Transport
	// H2C speaks HTTP/2 with prior knowledge over cleartext only.
	H2C *http.Transport
}

// For returns the transports for clusters whose connect timeout is d.
func (p *Pools) For(d time.Duration) *Transports {
	p.mu.Lock()
	defer p.mu.Unlock()
	if t, ok := p.byTimeout[d]; ok {
		return t
	}
	dialer := &net.Dialer{Timeout: d, KeepAlive: 30 * time.Second}
	if p.SourceIP != nil {
		dialer.LocalAddr = &net.TCPAddr{IP: p.SourceIP}
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
			DialContext:         dialer.DialContext,
			MaxIdleConns:        0, // no global cap; MaxIdleConnsPerHost bounds each endpoint
			MaxIdleConnsPerHost: MaxIdleConnsPerHost,
			IdleConnTimeout:     90 * time.Second,
			// A proxy passes bodies through as they are: no Accept-Encoding of its own and no
			// transparent decompression.
			DisableCompression: true,
			Protocols:          &protos,
		}
	}
	t := &Transports{HTTP1: newTransport(true), H2C: newTransport(false)}
	if p.byTimeout == nil {
		p.byTimeout = map[time.Duration]*Transports{}
	}
	p.byTimeout[d] = t
	return t
}

// CloseIdle closes every idle upstream connection.
func (p *Pools) CloseIdle() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, t := range p.byTimeout {
		t.HTTP1.CloseIdleConnections()
		t.H2C.CloseIdleConnections()
	}
}

// RoundTripper returns the transport for a request to c that arrived over HTTP/2 or not.
func (c *Cluster) RoundTripper(downstreamHTTP2 bool) http.RoundTripper {
	if c.Protocol == HTTP2 || (c.Protocol == Downstream && downstreamHTTP2) {
		return c.transports.H2C
	}
	return c.transports.HTTP1
}
