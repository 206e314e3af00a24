package listener

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/sluicemesh/sluice/proxy/internal/cluster"
	"github.com/sluicemesh/sluice/proxy/internal/route"
)

// MaxMirrorsInFlight bounds the mirrored requests in flight at once, per proxy. A copy that
// would exceed it is dropped (and counted): mirroring never queues, never holds up the real
// request, and cannot pile up goroutines behind a slow mirror cluster.
const MaxMirrorsInFlight = 128

// maxMirrorDrain is how much of a mirrored answer is read (and discarded) so that its
// connection can be reused; a longer answer is cut off.
const maxMirrorDrain = 64 << 10

// mirrorer sends mirrored copies of requests, fire and forget, each on its own goroutine,
// at most MaxMirrorsInFlight at once. The Manager owns it; stop ends every copy in flight.
type mirrorer struct {
	stats *Stats
	sem   chan struct{}
	ctx   context.Context
	stop  context.CancelFunc

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

func newMirrorer(stats *Stats) *mirrorer {
	ctx, cancel := context.WithCancel(context.Background())
	return &mirrorer{stats: stats, sem: make(chan struct{}, MaxMirrorsInFlight), ctx: ctx, stop: cancel}
}

// mirrorCopy is one copy to send: everything about the request that it needs, taken before
// the real request is sent, since that one's headers change between tries.
type mirrorCopy struct {
	cluster   *cluster.Cluster
	method    string
	path      string
	authority string
	header    http.Header
	h2        bool // the client spoke HTTP/2 (for clusters using the downstream protocol)
	timeout   time.Duration
}

// send starts a copy with body (nil for none). It never blocks.
func (m *mirrorer) send(c *mirrorCopy, body []byte) {
	select {
	case m.sem <- struct{}{}:
	default:
		m.stats.MirrorsDropped.Add(1)
		return
	}
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		<-m.sem
		m.stats.MirrorsDropped.Add(1)
		return
	}
	m.wg.Add(1)
	m.mu.Unlock()
	go func() {
		defer m.wg.Done()
		defer func() { <-m.sem }()
		m.do(c, body)
	}()
}

func (m *mirrorer) do(c *mirrorCopy, body []byte) {
	ep := c.cluster.Pick()
	if ep == nil {
		m.stats.MirrorsSkipped.Add(1)
		return
	}
	ctx, cancel := context.WithTimeout(m.ctx, c.timeout)
	defer cancel()
	req := &http.Request{
		Method:     c.method,
		URL:        upstreamURL(ep.Address, c.path),
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     c.header,
		Host:       c.authority,
	}
	if len(body) > 0 {
		req.Body, req.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	req = req.WithContext(ctx)
	m.stats.Mirrors.Add(1)
	m.stats.UpstreamRequests.Add(1)
	ep.Begin()
	defer ep.End()
	res, err := c.cluster.RoundTripper(c.h2).RoundTrip(req)
	if err != nil {
		m.stats.MirrorsFailed.Add(1)
		if m.ctx.Err() == nil {
			c.cluster.Report(ep, outcomeStatus(nil, err, 0, ctx))
		}
		return
	}
	c.cluster.Report(ep, outcomeStatus(res, nil, 0, ctx))
	_, _ = io.CopyN(io.Discard, res.Body, maxMirrorDrain)
	res.Body.Close()
}

// close stops new copies, cancels those in flight and waits for them to end.
func (m *mirrorer) close() {
	m.mu.Lock()
	m.closed = true
	m.mu.Unlock()
	m.stop()
	m.wg.Wait()
}

// startMirrors sends the copies the route's mirror policies draw for this request, built
// from out, the request as it goes upstream, and path, its target. A request with a body is copied only when the
// whole body fits in MaxBufferedBody: body records it as the real request streams it, and
// the copies leave when its end has been read. It returns the recorder it set up, if any.
func (ex *exchange) startMirrors(out *http.Request, path string, body *requestBody) *requestBody {
	a := &ex.rt.Action
	var copies []*mirrorCopy
	for i := range a.Mirrors {
		mp := &a.Mirrors[i]
		if !mp.Fraction.Hit() {
			continue
		}
		c := ex.s.Clusters[mp.Cluster]
		if c == nil {
			ex.h.stats.MirrorsSkipped.Add(1)
			continue
		}
		authority := out.Host
		if !mp.KeepHost {
			authority = route.ShadowAuthority(authority)
		}
		timeout := a.Timeout
		if timeout <= 0 {
			timeout = route.DefaultTimeout // a copy never waits for ever
		}
		copies = append(copies, &mirrorCopy{cluster: c, method: out.Method, path: path,
			authority: authority, header: out.Header.Clone(), h2: ex.r.ProtoMajor == 2, timeout: timeout})
	}
	if len(copies) == 0 {
		return body
	}
	r := ex.r
	switch {
	case r.Body == nil || r.Body == http.NoBody || r.ContentLength == 0:
		for _, c := range copies {
			ex.h.mirror.send(c, nil)
		}
		return body
	case r.ContentLength > MaxBufferedBody:
		ex.h.stats.MirrorsSkipped.Add(uint64(len(copies)))
		return body
	}
	if body == nil {
		body = newRequestBody(r.Body, r.ContentLength, MaxBufferedBody)
	}
	m := ex.h.mirror
	body.pendingCopies = len(copies)
	body.onComplete = func(buf []byte) {
		for _, c := range copies {
			m.send(c, buf)
		}
	}
	return body
}
