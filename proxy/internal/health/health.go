// Package health probes the application behind a sidecar, the way a kubelet readiness probe
// does: a TCP connect to the application's port, or an HTTP GET of a readiness path that must
// answer 2xx or 3xx. The sidecar reports every change of the result to the control plane,
// which takes a not-ready application's endpoints out of load balancing on every other proxy
// and puts them back when it is ready again.
//
// A result changes only after Threshold consecutive probes agree, so that one slow answer
// does not flap the endpoint across the mesh.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Defaults for Config.
const (
	// DefaultInterval is the time between probes. With DefaultThreshold it bounds the time
	// from an application failing to its endpoints leaving the mesh at about one second.
	DefaultInterval = 500 * time.Millisecond
	// DefaultTimeout bounds one probe.
	DefaultTimeout = time.Second
	// DefaultThreshold is how many consecutive probes must agree to change the result.
	DefaultThreshold = 2
)

// Config describes the probe of one application.
type Config struct {
	// Address is the application's HOST:PORT. Required.
	Address string
	// Path is the readiness path for an HTTP GET, such as "/healthz"; empty means a TCP
	// connect.
	Path string
	// Interval, Timeout and Threshold: zero means the defaults above.
	Interval  time.Duration
	Timeout   time.Duration
	Threshold int
}

// Status is a probe's result.
type Status struct {
	// Ready is true when the application answered as it should.
	Ready bool
	// Reason says why it is not ready, such as "GET /healthz: 503 Service Unavailable".
	Reason string
	// Since is when the result last changed.
	Since time.Time
}

// Prober probes one application until its context ends. Create it with New.
type Prober struct {
	cfg      Config
	client   *http.Client
	onChange func(Status)

	mu     sync.Mutex
	status Status
	probed bool // at least one result has been reported
}

// New returns a prober of cfg that calls onChange with the first result and then with every
// change (from Run's goroutine, never concurrently).
func New(cfg Config, onChange func(Status)) (*Prober, error) {
	if cfg.Address == "" {
		return nil, errors.New("health: the application's address is empty")
	}
	if _, _, err := net.SplitHostPort(cfg.Address); err != nil {
		return nil, fmt.Errorf("health: address %q: %w", cfg.Address, err)
	}
	if cfg.Path != "" && !strings.HasPrefix(cfg.Path, "/") {
		return nil, fmt.Errorf("health: path %q must start with /", cfg.Path)
	}
	// Provision: the defaults keep a detection under about a second while costing the
	// application two cheap requests a second.
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Threshold <= 0 {
		cfg.Threshold = DefaultThreshold
	}
	p := &Prober{cfg: cfg, onChange: onChange}
	if cfg.Path != "" {
		p.client = &http.Client{
			Timeout: cfg.Timeout,
			// A probe talks to the application directly, never through a proxy, and does
			// not follow redirects: a 3xx counts as ready, as for a kubelet.
			Transport:     &http.Transport{Proxy: nil, DisableKeepAlives: true},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return p, nil
}

// Status returns the latest result; before the first probe it is not ready.
func (p *Prober) Status() Status {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.status
}

// Init probes once and reports the result as the first one, so that a sidecar can register
// with its application's health already known instead of counting as ready until the first
// probe of Run.
func (p *Prober) Init(ctx context.Context) Status {
	err := p.probe(ctx)
	p.mu.Lock()
	p.probed = true
	p.status = Status{Ready: err == nil, Since: time.Now()}
	if err != nil {
		p.status.Reason = err.Error()
	}
	st := p.status
	p.mu.Unlock()
	if p.onChange != nil {
		p.onChange(st)
	}
	return st
}

// Run probes at once and then every Interval until ctx ends. The first result is reported
// right away (unless Init reported one); later ones only after Threshold probes in a row
// agree.
func (p *Prober) Run(ctx context.Context) error {
	tick := time.NewTicker(p.cfg.Interval)
	defer tick.Stop()
	streak := 0
	for {
		err := p.probe(ctx)
		if ctx.Err() != nil {
			return nil
		}
		p.mu.Lock()
		ready := err == nil
		change := false
		switch {
		case !p.probed:
			change = true
		case ready != p.status.Ready:
			streak++
			change = streak >= p.cfg.Threshold
		default:
			streak = 0
		}
		if change {
			streak = 0
			p.probed = true
			p.status = Status{Ready: ready, Since: time.Now()}
			if err != nil {
				p.status.Reason = err.Error()
			}
		}
		st := p.status
		p.mu.Unlock()
		if change && p.onChange != nil {
			p.onChange(st)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-tick.C:
		}
	}
}

// probe checks the application once; nil means ready.
func (p *Prober) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	defer cancel()
	if p.client == nil {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", p.cfg.Address)
		if err != nil {
			return fmt.Errorf("TCP connect to %s: %w", p.cfg.Address, unwrapOp(err))
		}
		return conn.Close()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.cfg.Address+p.cfg.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "sluice-proxy/health")
	resp, err := p.client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", p.cfg.Path, unwrapOp(err))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
	resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode >= 400 {
		return fmt.Errorf("GET %s: %s", p.cfg.Path, resp.Status)
	}
	return nil
}

// unwrapOp drops the layers of net and url errors that repeat the address, keeping the cause
// ("connection refused", "i/o timeout").
func unwrapOp(err error) error {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("timed out")
	}
	return err
}
