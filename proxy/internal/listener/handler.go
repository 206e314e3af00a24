package listener

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemesh/sluice/proxy/internal/cluster"
	"github.com/sluicemesh/sluice/proxy/internal/filter"
	"github.com/sluicemesh/sluice/proxy/internal/route"
)

// Serving is what a listener serves with: its config, its route table and the clusters the
// routes lead to. It is immutable and swapped whole, so a request sees one version of all
// three: never a route to a cluster that the same version does not hold.
type Serving struct {
	// Config is the listener's compiled config.
	Config *Config
	// Routes is the route table requests are matched against.
	Routes *route.Table
	// Clusters holds every cluster Routes can lead to that exists.
	Clusters cluster.Set
}

// handler is a listener's http.Handler: Envoy's HTTP connection manager with its HTTP filters
// and the router filter.
type handler struct {
	serving atomic.Pointer[Serving]
	stats   *Stats
	log     *slog.Logger
	mirror  *mirrorer
	// rec is what the listener records requests with; nil records nothing.
	rec *recording
}

// exchange is one request on its way through the filters and the router. It lives on the
// stack of ServeHTTP.
type exchange struct {
	h   *handler
	w   http.ResponseWriter
	r   *http.Request
	s   *Serving
	req route.Request
	vh  *route.VirtualHost
	rt  *route.Route
	// branch is the weighted cluster picked, nil when the route has one cluster.
	branch *route.WeightedCluster
	// routed is set once the router handles the request: from then on the route's response
	// header mutations apply to what is answered, local replies included, as in Envoy.
	routed bool
	// flags holds the response flags set for the request so far, a bit per Flag.
	flags uint32
	// corsOrigin is the allowed Origin of a CORS request, echoed on the answer under
	// corsPolicy; "" for none.
	corsOrigin string
	corsPolicy *filter.CORS
	// setCookie is a cookie the route's hash policy made, for the upstream's answer.
	setCookie string

	// What telemetry records (telemetry.go), set only while the listener records.
	start time.Time
	// body counts a request body of unknown length; nil otherwise.
	body *countingBody
	// status is the HTTP status sent downstream, 0 until one was; grpcCode the gRPC status
	// answered (-1 for none seen); respBytes the response body's bytes sent.
	status, grpcCode int
	respBytes        int64
	// clusterName and ep are the cluster the router chose and the endpoint last tried.
	clusterName string
	ep          *cluster.Endpoint
	// detail is why the proxy answered itself.
	detail string
}

// ServeHTTP routes one request, runs it through the HTTP filters and forwards it or answers
// it locally.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.stats.DownstreamRequests.Add(1)
	s := h.serving.Load()
	cfg := s.Config

	authority := r.Host
	switch {
	case cfg.StripAnyHostPort:
		authority = route.StripPort(authority)
	case cfg.StripMatchingHostPort && strings.HasSuffix(authority, ":"+cfg.Port):
		authority = route.StripPort(authority)
	}
	path := requestPath(r)
	ex := exchange{h: h, w: w, r: r, s: s, grpcCode: -1,
		req: route.Request{Authority: authority, Method: r.Method, Path: path, Scheme: "http", Header: r.Header}}
	if h.rec != nil && h.rec.rec != nil {
		ex.startRecording()
		defer ex.record()
	}
	ex.vh, ex.rt = s.Routes.Match(&ex.req)
	if ex.rt == nil {
		ex.reply(FlagNoRoute, http.StatusNotFound, "", "no route for "+authority+" "+r.Method+" "+path)
		return
	}
	for i := range cfg.Filters {
		switch cfg.Filters[i].Kind {
		case FilterCORS:
			if ex.cors() {
				return
			}
		case FilterFault:
			if ex.fault(cfg.Filters[i].Fault) {
				return
			}
		case FilterRBAC:
			if ex.authorize(cfg.Filters[i].RBAC) {
				return
			}
		case FilterRateLimit:
			if ex.rateLimit(cfg.Filters[i].RateLimit) {
				return
			}
		}
	}
	ex.route()
}

// setFlag records response flag f for the request and counts it.
func (ex *exchange) setFlag(f Flag) {
	if f != FlagNone && ex.flags&(1<<f) == 0 {
		ex.flags |= 1 << f
		ex.h.stats.flag(f)
	}
}

// fault runs the fault filter with the route's config, or the filter's own (def) when the
// route has none: it may delay the request, then may abort it (reporting true).
func (ex *exchange) fault(def *filter.Fault) (answered bool) {
	f := def
	if ex.rt.FaultSet {
		f = ex.rt.Fault
	}
	if f == nil || !f.Applies(&ex.req) {
		return false
	}
	if d, ok := f.Delay(); ok {
		ex.setFlag(FlagDelayInjected)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ex.r.Context().Done():
			t.Stop()
			ex.setFlag(FlagDownstreamTermination)
			return true
		}
	}
	if status, grpcStatus, ok := f.Abort(); ok {
		ex.replyGRPC(FlagFaultInjected, status, grpcStatus, "fault filter abort", f.Describe(status, grpcStatus))
		return true
	}
	return false
}

// cors runs the CORS filter: it answers a preflight itself (reporting true), and remembers
// an allowed origin so that the answer, whoever makes it, carries the CORS headers.
func (ex *exchange) cors() (answered bool) {
	p := ex.rt.CORS
	if p == nil {
		return false
	}
	enabled := p.Enabled()
	if !enabled && !p.ShadowEnabled() {
		return false
	}
	r := ex.r
	origin := r.Header.Get("Origin")
	if origin == "" {
		return false
	}
	allowed := p.OriginAllowed(origin)
	if allowed {
		ex.h.stats.CORSOriginValid.Add(1)
	} else {
		ex.h.stats.CORSOriginInvalid.Add(1)
	}
	if !enabled {
		return false // shadow mode: counted, not enforced
	}
	if allowed {
		ex.corsPolicy, ex.corsOrigin = p, origin
	}
	if r.Method != http.MethodOptions || r.Header.Get("Access-Control-Request-Method") == "" {
		return false
	}
	if !allowed && p.ForwardNotMatchingPreflights() {
		return false
	}
	allow := ""
	if allowed {
		allow = origin
	}
	h := ex.w.Header()
	p.Preflight(h, r.Header, allow)
	reason := "CORS preflight answered by the proxy"
	if !allowed {
		reason += ": origin " + origin + " is not allowed"
	}
	h.Set(ReasonHeader, reason)
	ex.h.stats.CORSPreflights.Add(1)
	ex.status, ex.detail = http.StatusOK, reason
	ex.w.WriteHeader(http.StatusOK)
	return true
}

// route runs the router filter: a direct response, a redirect, or a request upstream.
func (ex *exchange) route() {
	rt := ex.rt
	ex.routed = true
	switch rt.Action.Kind {
	case route.DirectResponse:
		wh := ex.w.Header()
		if len(rt.Action.Body) > 0 {
			wh.Set("Content-Type", "text/plain")
			wh.Set("Content-Length", strconv.Itoa(len(rt.Action.Body)))
		}
		ex.finishHeaders(wh)
		ex.status, ex.respBytes = rt.Action.Status, int64(len(rt.Action.Body))
		ex.w.WriteHeader(rt.Action.Status)
		_, _ = ex.w.Write(rt.Action.Body)
		return
	case route.Redirect:
		wh := ex.w.Header()
		wh.Set("Location", rt.Action.RedirectSpec.Location(&ex.req, rt))
		ex.finishHeaders(wh)
		ex.status = rt.Action.RedirectSpec.Status
		ex.w.WriteHeader(rt.Action.RedirectSpec.Status)
		return
	}

	name, branch := rt.Action.Pick(&ex.req)
	ex.branch, ex.clusterName = branch, name
	c := ex.s.Clusters[name]
	if c == nil {
		ex.reply(FlagNoCluster, rt.Action.ClusterNotFoundStatus, "", "cluster "+name+" not found")
		return
	}
	authority := ex.req.Authority
	if hr := rt.Action.HostRewriteFor(branch); hr != "" {
		authority = hr
	}
	ex.forward(c, authority, rt.RewritePath(ex.req.Path))
}

// finishHeaders applies what the filters add to every response they see, in Envoy's encoding
// order: the route's response header mutations once the router handles the request (a chosen
// weighted cluster's first), then the CORS filter's headers for an allowed origin.
func (ex *exchange) finishHeaders(h http.Header) {
	if ex.routed {
		if ex.branch != nil {
			ex.branch.ResponseHeaders.Apply(h)
		}
		filter.ApplyAll(ex.rt.ResponseHeaders, h)
	}
	if ex.corsOrigin != "" {
		ex.corsPolicy.Actual(h, ex.corsOrigin)
	}
}

// requestPath returns the request target in origin form, query included, as sent: for an
// absolute-form request (the application uses the proxy as HTTP_PROXY) the scheme and
// authority are cut off.
func requestPath(r *http.Request) string {
	uri := r.RequestURI
	if strings.HasPrefix(uri, "/") || uri == "*" {
		return uri
	}
	if i := strings.Index(uri, "://"); i >= 0 {
		rest := uri[i+3:]
		if j := strings.IndexAny(rest, "/?"); j >= 0 {
			if rest[j] == '/' {
				return rest[j:]
			}
			return "/" + rest[j:]
		}
		return "/"
	}
	// Authority form (CONNECT) or something else net/http accepted: route by its URL.
	return r.URL.RequestURI()
}

// hopHeaders are the hop-by-hop headers of RFC 9110 section 7.6.1, plus the ones HTTP
// proxies commonly see. They are never forwarded.
var hopHeaders = []string{
	"Connection", "Proxy-Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade",
}

func isHopHeader(k string) bool {
	for _, h := range hopHeaders {
		if h == k {
			return true
		}
	}
	return false
}

// copyHeaders copies src into dst without hop-by-hop headers, nor the headers named in
// src's Connection header. Value slices are shared, not copied: neither side modifies them.
func copyHeaders(dst, src http.Header) {
	conn := src["Connection"]
	for k, vv := range src {
		if isHopHeader(k) || (len(conn) > 0 && listedIn(conn, k)) {
			continue
		}
		dst[k] = vv
	}
}

// listedIn reports whether key is named in the comma-separated Connection values.
func listedIn(conn []string, key string) bool {
	for _, v := range conn {
		for v != "" {
			var name string
			name, v, _ = strings.Cut(v, ",")
			if strings.EqualFold(strings.TrimSpace(name), key) {
				return true
			}
		}
	}
	return false
}

var (
	trailersValue = []string{"trailers"}
	httpValue     = []string{"http"}
	oneValue      = []string{"1"}
)

// describe shortens a transport error to its cause: "dial tcp ...: connection refused"
// becomes "connection refused".
func describe(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		return op.Op + ": " + op.Err.Error()
	}
	return err.Error()
}

// upstreamURL makes the URL of a request to addr for path, an origin-form target with its
// query, kept byte for byte as the client sent it.
func upstreamURL(addr, path string) *url.URL {
	if strings.HasPrefix(path, "//") {
		// An opaque "//x" would be read as an authority; parse the rare odd path instead.
		if u, err := url.ParseRequestURI(path); err == nil {
			u.Scheme, u.Host = "http", addr
			return u
		}
	}
	return &url.URL{Scheme: "http", Host: addr, Opaque: path}
}

var errWrite = errors.New("write to client failed")

// Response bodies are copied with pooled buffers of two sizes: a large one lets a big or
// streamed body be read with few system calls, and a body known to fit in a small one
// (most API answers) takes that instead, so that the buffers held by the requests in
// flight, and those the pool drops and makes again after every garbage collection, stay
// small.
const (
	smallBuf = 4 << 10
	largeBuf = 32 << 10
)

var (
	smallBufPool = sync.Pool{New: func() any { b := make([]byte, smallBuf); return &b }}
	largeBufPool = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}
)

// copyBody copies body, of length size (-1 when unknown), to w and returns how many bytes
// were written.
func copyBody(w http.ResponseWriter, body io.Reader, size int64, flush bool) (int64, error) {
	pool := &largeBufPool
	if size >= 0 && size <= smallBuf {
		pool = &smallBufPool
	}
	bp := pool.Get().(*[]byte)
	defer pool.Put(bp)
	buf := *bp
	rc := http.NewResponseController(w)
	var written int64
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			m, err := w.Write(buf[:n])
			written += int64(m)
			if err != nil {
				return written, errWrite
			}
			if flush {
				if err := rc.Flush(); err != nil {
					return written, errWrite
				}
			}
		}
		if rerr == io.EOF {
			return written, nil
		}
		if rerr != nil {
			return written, rerr
		}
	}
}

// grpcTimeout parses a grpc-timeout header: up to 8 digits and a unit (H, M, S, m, u, n).
func grpcTimeout(v string) (time.Duration, bool) {
	if len(v) < 2 || len(v) > 9 {
		return 0, false
	}
	n, err := strconv.ParseInt(v[:len(v)-1], 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	var unit time.Duration
	switch v[len(v)-1] {
	case 'H':
		unit = time.Hour
	case 'M':
		unit = time.Minute
	case 'S':
		unit = time.Second
	case 'm':
		unit = time.Millisecond
	case 'u':
		unit = time.Microsecond
	case 'n':
		unit = time.Nanosecond
	default:
		return 0, false
	}
	return time.Duration(n) * unit, true
}
