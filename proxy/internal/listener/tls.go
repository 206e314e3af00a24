package listener

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sluicemesh/sluice/proxy/internal/cluster"
	"github.com/sluicemesh/sluice/proxy/internal/identity"
)

// Inbound mutual TLS. A listener has one HTTP connection manager, and up to two filter
// chains in Istio's shapes:
//
//   - one chain without a transport socket: plaintext (PeerAuthentication DISABLE);
//   - one chain with a TLS transport socket, matching transport_protocol "tls" or nothing:
//     TLS only (STRICT); a plaintext connection is closed, as Envoy closes a connection no
//     chain matches;
//   - a "tls" chain with the TLS socket and a "raw_buffer" chain without: both (PERMISSIVE).
//
// The transport protocol is told by the connection's first byte, as Envoy's tls_inspector
// does: 0x16 starts a TLS handshake record. A proxy without a workload certificate cannot
// complete a handshake: under STRICT it refuses every connection, and says so in its log.

// TLSMode says which transport protocols a listener accepts.
type TLSMode uint8

// Listener TLS modes.
const (
	// Plaintext accepts plaintext connections only.
	Plaintext TLSMode = iota
	// TLSOnly accepts TLS connections only (PeerAuthentication STRICT).
	TLSOnly
	// TLSOrPlaintext accepts both, by their first byte (PERMISSIVE).
	TLSOrPlaintext
)

// String names the mode after the PeerAuthentication mode that asks for it.
func (m TLSMode) String() string {
	return [...]string{"DISABLE", "STRICT", "PERMISSIVE"}[m]
}

// tlsInspectorTypeURL is the listener filter that tells TLS from plaintext.
const tlsInspectorTypeURL = "type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector"

// sniffTimeout bounds how long a connection may take to send its first byte.
const sniffTimeout = 10 * time.Second

// compileChains reads a listener's filter chains and listener filters into cfg's TLS
// settings, and returns the chain whose HTTP connection manager the listener runs.
func compileChains(l *listenerv3.Listener, cfg *Config) (*listenerv3.FilterChain, int, error) {
	chains := l.GetFilterChains()
	inspector := false
	for i, f := range l.GetListenerFilters() {
		if f.GetTypedConfig().GetTypeUrl() != tlsInspectorTypeURL {
			return nil, 0, fmt.Errorf("listener_filters[%d] (%q): not supported by sluice-proxy (only envoy.filters.listener.tls_inspector)", i, f.GetName())
		}
		inspector = true
	}
	type chain struct {
		proto string // "", "tls" or "raw_buffer"
		tls   *cluster.TLSContext
	}
	parsed := make([]chain, len(chains))
	for i, fc := range chains {
		at := fmt.Sprintf("filter_chains[%d]", i)
		switch p := fc.GetFilterChainMatch().GetTransportProtocol(); p {
		case "", "tls", "raw_buffer":
			parsed[i].proto = p
		default:
			return nil, 0, fmt.Errorf("%s.filter_chain_match.transport_protocol: %q is not supported by sluice-proxy (use tls or raw_buffer)", at, p)
		}
		if parsed[i].proto != "" && !inspector {
			return nil, 0, fmt.Errorf("%s.filter_chain_match.transport_protocol: needs the envoy.filters.listener.tls_inspector listener filter", at)
		}
		if ts := fc.GetTransportSocket(); ts != nil && ts.GetName() != cluster.RawBufferSocketName {
			t, err := cluster.CompileDownstreamSocket(ts)
			if err != nil {
				return nil, 0, fmt.Errorf("%s.transport_socket.%w", at, err)
			}
			parsed[i].tls = t
		}
		if parsed[i].tls != nil && parsed[i].proto == "raw_buffer" || parsed[i].tls == nil && parsed[i].proto == "tls" {
			return nil, 0, fmt.Errorf("%s: a chain matching transport_protocol %q must have a TLS transport socket exactly when it matches \"tls\"", at, parsed[i].proto)
		}
	}
	switch len(chains) {
	case 1:
		if parsed[0].tls == nil {
			cfg.TLSMode = Plaintext
			return chains[0], 0, nil
		}
		cfg.TLSMode, cfg.TLS = TLSOnly, parsed[0].tls
		return chains[0], 0, nil
	case 2:
		ti, pi := 0, 1
		if parsed[0].proto == "raw_buffer" {
			ti, pi = 1, 0
		}
		if parsed[ti].proto != "tls" || parsed[pi].proto != "raw_buffer" {
			return nil, 0, errors.New("filter_chains: with two chains, sluice-proxy needs one matching transport_protocol \"tls\" and one matching \"raw_buffer\"")
		}
		if len(chains[0].GetFilters()) != len(chains[1].GetFilters()) {
			return nil, 0, errors.New("filter_chains: sluice-proxy needs the same filters in the tls and raw_buffer chains")
		}
		for j := range chains[0].GetFilters() {
			if !proto.Equal(chains[0].GetFilters()[j], chains[1].GetFilters()[j]) {
				return nil, 0, fmt.Errorf("filter_chains[1].filters[%d]: sluice-proxy needs the same filters in the tls and raw_buffer chains", j)
			}
		}
		cfg.TLSMode, cfg.TLS = TLSOrPlaintext, parsed[ti].tls
		return chains[ti], ti, nil
	}
	return nil, 0, fmt.Errorf("filter_chains: sluice-proxy needs one filter chain, or two told apart by transport_protocol, got %d", len(chains))
}

// SetIdentity gives the listeners the proxy's workload identity, which TLS filter chains
// present and verify clients with; nil (the default) is a proxy without a certificate.
// Listeners read it on every handshake; call it before the first Apply.
func (m *Manager) SetIdentity(id identity.Source) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.identity = id
}

// serveListener returns what a listener's server accepts from: ln itself for plaintext, a
// sniffing listener otherwise.
func (m *Manager) serveListener(l *Listener) net.Listener {
	if l.cfg.TLSMode == Plaintext {
		return l.ln
	}
	if len(l.cfg.Gateway) > 0 {
		return newSniffListener(l.ln, TLSOnly, m.gatewayServerConfig(l.cfg.Gateway), m.stats, m.log.With("listener", l.name))
	}
	switch {
	case !l.cfg.TLS.Istio() || cluster.HasCertificate(m.identity):
	case m.identity != nil:
		// The first certificate is on its way; the proxy is not ready before it comes.
		m.log.Debug("mutual TLS listener starts before the first workload certificate", "listener", l.name, "mode", l.cfg.TLSMode.String())
	default:
		if l.cfg.TLSMode == TLSOnly {
			m.log.Warn("mutual TLS is STRICT but the proxy has no workload identity (it was started without --token-file): the listener refuses every connection; start the proxy with a workload token, or make the PeerAuthentication PERMISSIVE",
				"listener", l.name, "address", l.cfg.Address)
		} else {
			m.log.Info("mutual TLS is PERMISSIVE but the proxy has no workload identity (it was started without --token-file): only plaintext connections succeed",
				"listener", l.name, "address", l.cfg.Address)
		}
	}
	return newSniffListener(l.ln, l.cfg.TLSMode, l.cfg.TLS.ServerConfig(m.identity), m.stats, m.log.With("listener", l.name))
}

// sniffListener accepts connections from a socket and classifies each by its first byte:
// TLS connections are returned as *tls.Conn (net/http then handshakes and fills in
// Request.TLS), plaintext ones as they are, or closed under TLSOnly. Classification runs
// on a goroutine per connection, so a slow client holds up no other.
type sniffListener struct {
	net.Listener
	mode  TLSMode
	tls   *tls.Config
	stats *Stats
	log   *slog.Logger

	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
	wg    sync.WaitGroup
	// mu guards pending, the connections being classified, whose reads Close cuts short.
	mu      sync.Mutex
	pending map[net.Conn]struct{}
	err     error // the socket's Accept error, once it failed
}

func newSniffListener(ln net.Listener, mode TLSMode, cfg *tls.Config, stats *Stats, log *slog.Logger) *sniffListener {
	s := &sniffListener{Listener: ln, mode: mode, tls: cfg, stats: stats, log: log,
		conns: make(chan net.Conn), done: make(chan struct{}), pending: map[net.Conn]struct{}{}}
	s.wg.Go(s.acceptLoop)
	return s
}

func (s *sniffListener) acceptLoop() {
	for {
		c, err := s.Listener.Accept()
		if err != nil {
			s.mu.Lock()
			s.err = err
			s.mu.Unlock()
			s.stop()
			return
		}
		s.mu.Lock()
		select {
		case <-s.done:
			s.mu.Unlock()
			c.Close()
			return
		default:
		}
		s.pending[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() { s.classify(c) })
	}
}

// classify reads c's first byte and hands c to Accept, wrapped as its protocol needs.
func (s *sniffListener) classify(c net.Conn) {
	var first [1]byte
	c.SetReadDeadline(time.Now().Add(sniffTimeout))
	_, err := c.Read(first[:])
	c.SetReadDeadline(time.Time{})
	s.mu.Lock()
	delete(s.pending, c)
	s.mu.Unlock()
	if err != nil {
		c.Close()
		return
	}
	pc := &peekedConn{Conn: c, first: first[0], unread: true}
	var out net.Conn = pc
	if first[0] == 0x16 { // a TLS handshake record
		s.stats.DownstreamTLS.Add(1)
		out = tls.Server(pc, s.tls)
	} else if s.mode == TLSOnly {
		s.stats.PlaintextRefused.Add(1)
		s.log.Debug("plaintext connection refused: mutual TLS is STRICT", "remote", c.RemoteAddr().String())
		c.Close()
		return
	}
	select {
	case s.conns <- out:
	case <-s.done:
		c.Close()
	}
}

// Accept returns the next classified connection.
func (s *sniffListener) Accept() (net.Conn, error) {
	select {
	case c := <-s.conns:
		return c, nil
	case <-s.done:
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.err != nil {
			return nil, s.err
		}
		return nil, net.ErrClosed
	}
}

// stop ends Accept and cuts short the connections being classified.
func (s *sniffListener) stop() {
	s.once.Do(func() {
		s.mu.Lock()
		close(s.done)
		for c := range s.pending {
			c.SetReadDeadline(time.Now())
		}
		s.mu.Unlock()
	})
}

// Close closes the socket, cuts short the connections being classified, and waits for its
// goroutines to end.
func (s *sniffListener) Close() error {
	s.stop()
	err := s.Listener.Close()
	s.wg.Wait()
	return err
}

// peekedConn is a connection whose first byte was read already.
type peekedConn struct {
	net.Conn
	first  byte
	unread bool
}

// Read returns the byte read ahead first, alone.
func (c *peekedConn) Read(p []byte) (int, error) {
	if c.unread && len(p) > 0 {
		c.unread = false
		p[0] = c.first
		return 1, nil
	}
	return c.Conn.Read(p)
}
