// Package listener binds the proxy's LDS listeners and serves HTTP on them: Envoy's HTTP
// connection manager, HTTP/1.1 and h2c (prior knowledge) on one port, with its HTTP filters
// (envoy.filters.http.cors and envoy.filters.http.fault, in the configured order) and the
// router filter (router.go): header mutations, retries with back-off, circuit breakers,
// outlier reporting, consistent-hash keys and request mirroring (mirror.go).
//
// A listener's route table and settings live in an atomic.Pointer to an immutable Serving,
// so an update swaps them in one store and a request sees either the old or the new version,
// never a mix. A new listener is bound at once (so a port conflict NACKs the update), but
// accepts connections only when its routes are ready; until then connections wait in the
// kernel's backlog, as they do while Envoy warms a listener.
package listener

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sluicemesh/sluice/proxy/internal/cluster"
	"github.com/sluicemesh/sluice/proxy/internal/identity"
	"github.com/sluicemesh/sluice/proxy/internal/route"
)

// Desired is what the proxy wants a listener to be.
type Desired struct {
	// Config is the listener's compiled config.
	Config *Config
	// Routes is the route table to serve with, or nil while the listener warms: a serving
	// listener keeps its current routes, a new one does not accept connections yet.
	Routes *route.Table
	// Clusters are the clusters the routes lead to.
	Clusters cluster.Set
}

// Manager owns the bound listeners. Its zero value is not usable; use NewManager.
type Manager struct {
	stats  *Stats
	log    *slog.Logger
	mirror *mirrorer
	// drainTimeout bounds the graceful close of a listener that LDS removed.
	drainTimeout time.Duration
	// telemetry is what listeners record with; nil for nothing.
	telemetry *Telemetry
	// identity is the workload identity TLS filter chains use; nil for none (SetIdentity).
	identity identity.Source
	// secrets are the SDS secrets gateway TLS chains serve with (SetSecrets).
	secrets atomic.Pointer[map[string]gatewaySecret]

	mu        sync.Mutex
	listeners map[string]*Listener
	reserved  map[string]net.Listener
	draining  bool
	wg        sync.WaitGroup // serving and closing goroutines
}

// Listener is one bound listener.
type Listener struct {
	name    string
	cfg     *Config // the config the server was started with (server-level settings)
	ln      net.Listener
	h       *handler
	srv     *http.Server // nil until the listener serves
	started bool
}

// NewManager returns a manager whose listeners count into stats. A listener removed by LDS
// gets drainTimeout to finish its requests.
func NewManager(stats *Stats, log *slog.Logger, drainTimeout time.Duration) *Manager {
	return &Manager{
		stats:        stats,
		log:          log,
		mirror:       newMirrorer(stats),
		drainTimeout: drainTimeout,
		listeners:    map[string]*Listener{},
		reserved:     map[string]net.Listener{},
	}
}

// UseTelemetry makes every listener bound from now on record its requests with t and
// exchange the peer header (see Telemetry). Call it before the first Apply.
func (m *Manager) UseTelemetry(t Telemetry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.telemetry = &t
}

func (m *Manager) newHandler(name string) *handler {
	return &handler{stats: m.stats, log: m.log, mirror: m.mirror, rec: recordingFor(m.telemetry, name)}
}

// BindError reports an address that could not be bound.
type BindError struct {
	// Addr is the "ip:port" that could not be bound.
	Addr string
	// Owner names the process holding the address, when it could be found.
	Owner string
	// Err is the error from the socket call.
	Err error
}

// Error says what could not be bound and, for an address in use, by whom.
func (e *BindError) Error() string {
	if errors.Is(e.Err, syscall.EADDRINUSE) {
		if e.Owner != "" {
			return fmt.Sprintf("cannot listen on %s: address already in use by %s", e.Addr, e.Owner)
		}
		return fmt.Sprintf("cannot listen on %s: address already in use", e.Addr)
	}
	return fmt.Sprintf("cannot listen on %s: %v", e.Addr, e.Err)
}

// Unwrap returns the socket error.
func (e *BindError) Unwrap() error { return e.Err }

// InUse reports whether the address was taken by someone else.
func (e *BindError) InUse() bool { return errors.Is(e.Err, syscall.EADDRINUSE) }

// Listen binds a TCP address, describing a failure with a BindError.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		be := &BindError{Addr: addr, Err: err}
		if be.InUse() {
			be.Owner = PortOwner(addr)
		}
		return nil, be
	}
	return ln, nil
}

// Reserve binds addr now, at start-up, so that a conflict is reported before anything runs;
// the listener LDS later asks for at addr takes over the socket.
func (m *Manager) Reserve(addr string) error {
	ln, err := Listen(addr)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reserved[addr] = ln
	return nil
}

// bind returns a socket for addr: the reserved one, or a new one.
func (m *Manager) bind(addr string) (net.Listener, error) {
	if ln, ok := m.reserved[addr]; ok {
		delete(m.reserved, addr)
		return ln, nil
	}
	return Listen(addr)
}

// unbind gives back a socket bind returned: reserved addresses stay reserved.
func (m *Manager) unbind(addr string, ln net.Listener, wasReserved bool) {
	if wasReserved {
		m.reserved[addr] = ln
		return
	}
	ln.Close()
}

// Apply makes the listeners what want says, by name: it binds new listeners, swaps the
// config of those whose routes are ready, and drains those no longer wanted. It binds every
// new socket before changing anything else, so when it fails (a port is taken, an address
// would change) the listeners stay as they were and the caller can NACK.
func (m *Manager) Apply(want map[string]Desired) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.draining {
		return nil
	}
	byAddr := map[string]string{}
	for name, d := range want {
		if other, ok := byAddr[d.Config.Address]; ok {
			return fmt.Errorf("listeners %q and %q both want %s", other, name, d.Config.Address)
		}
		byAddr[d.Config.Address] = name
		if l := m.listeners[name]; l != nil && l.cfg.Address != d.Config.Address {
			// Envoy refuses this too: a listener is its socket.
			return fmt.Errorf("listener %q: address: cannot change from %s to %s; add a listener with a new name instead", name, l.cfg.Address, d.Config.Address)
		}
	}
	// A socket that a removed listener holds is free for a new one.
	for name, l := range m.listeners {
		if _, ok := want[name]; !ok {
			if n, taken := byAddr[l.cfg.Address]; taken {
				return fmt.Errorf("listener %q: %s is still held by listener %q, which this update removes; the proxy binds a new socket before it closes the old one, so use another port for a while", n, l.cfg.Address, name)
			}
		}
	}

	fresh := map[string]net.Listener{}
	freshReserved := map[string]bool{}
	for name, d := range want {
		if m.listeners[name] != nil {
			continue
		}
		_, reserved := m.reserved[d.Config.Address]
		ln, err := m.bind(d.Config.Address)
		if err != nil {
			for n, fl := range fresh {
				m.unbind(want[n].Config.Address, fl, freshReserved[n])
			}
			return fmt.Errorf("listener %q: %w", name, err)
		}
		fresh[name], freshReserved[name] = ln, reserved
	}

	for name, l := range m.listeners {
		if _, ok := want[name]; !ok {
			m.retire(l)
			delete(m.listeners, name)
		}
	}
	var errs []error
	for name, d := range want {
		l := m.listeners[name]
		if l == nil {
			l = &Listener{name: name, cfg: d.Config, ln: fresh[name],
				h: m.newHandler(name)}
			m.listeners[name] = l
		}
		if d.Routes == nil {
			if !l.started {
				l.cfg = d.Config // still warming: start with the latest settings
			}
			continue
		}
		if l.started && !l.cfg.SameServer(d.Config) {
			// Connection-level settings changed: close the socket, drain the old server and
			// serve the same address with a new one.
			var err error
			if l, err = m.rebind(l, d.Config); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		l.h.serving.Store(&Serving{Config: d.Config, Routes: d.Routes, Clusters: d.Clusters})
		if !l.started {
			m.start(l)
		}
	}
	return errors.Join(errs...)
}

func (m *Manager) start(l *Listener) {
	var protos http.Protocols
	protos.SetHTTP1(l.cfg.HTTP1)
	protos.SetUnencryptedHTTP2(l.cfg.HTTP2)
	// Over TLS, HTTP/2 is chosen by ALPN.
	protos.SetHTTP2(l.cfg.HTTP2 && l.cfg.TLSMode != Plaintext)
	l.srv = &http.Server{
		Handler:     l.h,
		Protocols:   &protos,
		IdleTimeout: l.cfg.IdleTimeout,
		// "OPTIONS *" is for the upstream to answer, not for net/http.
		DisableGeneralOptionsHandler: true,
		ReadHeaderTimeout:            time.Minute,
		ErrorLog:                     slog.NewLogLogger(m.log.Handler(), slog.LevelDebug),
	}
	l.started = true
	srv, ln := l.srv, m.serveListener(l)
	m.wg.Go(func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			m.log.Error("listener stopped", "listener", l.name, "address", l.cfg.Address, "error", err)
		}
	})
	m.log.Debug("listener serving", "listener", l.name, "address", l.cfg.Address)
}

func (m *Manager) rebind(old *Listener, cfg *Config) (*Listener, error) {
	old.ln.Close()
	m.retire(old)
	ln, err := Listen(cfg.Address)
	if err != nil {
		delete(m.listeners, old.name)
		return nil, fmt.Errorf("listener %q: rebinding for new connection settings: %w", old.name, err)
	}
	l := &Listener{name: old.name, cfg: cfg, ln: ln, h: m.newHandler(old.name)}
	m.listeners[old.name] = l
	return l, nil
}

// retire stops l accepting and lets its requests finish within the drain timeout.
func (m *Manager) retire(l *Listener) {
	if !l.started {
		l.ln.Close()
		return
	}
	m.log.Debug("listener draining", "listener", l.name, "address", l.cfg.Address)
	srv := l.srv
	m.wg.Go(func() {
		ctx, cancel := context.WithTimeout(context.Background(), m.drainTimeout)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			srv.Close()
		}
	})
}

// Drain stops every listener accepting connections, waits for the requests in flight until
// ctx ends, then closes what is left. Apply does nothing after Drain. It returns
// ctx.Err() when requests had to be cut off.
func (m *Manager) Drain(ctx context.Context) error {
	m.mu.Lock()
	m.draining = true
	var servers []*http.Server
	for _, l := range m.listeners {
		if l.started {
			servers = append(servers, l.srv)
		} else {
			l.ln.Close()
		}
	}
	m.listeners = map[string]*Listener{}
	for _, ln := range m.reserved {
		ln.Close()
	}
	m.reserved = map[string]net.Listener{}
	m.mu.Unlock()

	var wg sync.WaitGroup
	errs := make([]error, len(servers))
	for i, srv := range servers {
		wg.Go(func() {
			if errs[i] = srv.Shutdown(ctx); errs[i] != nil {
				srv.Close()
			}
		})
	}
	wg.Wait()
	m.wg.Wait()
	// Copies in flight are cut off: the real requests they copy are done.
	m.mirror.close()
	return errors.Join(errs...)
}

// Addresses returns the addresses of the listeners that accept connections, by name.
func (m *Manager) Addresses() map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := map[string]string{}
	for name, l := range m.listeners {
		if l.started {
			out[name] = l.cfg.Address
		}
	}
	return out
}
