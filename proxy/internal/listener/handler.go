package listener

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sluicemesh/sluice/proxy/internal/cluster"
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

// handler is a listener's http.Handler: Envoy's HTTP connection manager with only the
// router filter.
type handler struct {
	serving atomic.Pointer[Serving]
	stats   *Stats
}

// ServeHTTP routes one request and forwards it or answers it locally.
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
	rreq := route.Request{Authority: authority, Method: r.Method, Path: path, Scheme: "http", Header: r.Header}
	vh, rt := s.Routes.Match(&rreq)
	if rt == nil {
		h.stats.NoRoute.Add(1)
		localReply(w, r, http.StatusNotFound, "", "no route for "+authority+" "+r.Method+" "+path)
		return
	}
	switch rt.Action.Kind {
	case route.DirectResponse:
		if len(rt.Action.Body) > 0 {
			w.Header().Set("Content-Type", "text/plain")
			w.Header().Set("Content-Length", strconv.Itoa(len(rt.Action.Body)))
		}
		w.WriteHeader(rt.Action.Status)
		_, _ = w.Write(rt.Action.Body)
		return
	case route.Redirect:
		w.Header().Set("Location", rt.Action.RedirectSpec.Location(&rreq, rt))
		w.WriteHeader(rt.Action.RedirectSpec.Status)
		return
	}

	name, hostRewrite := rt.Action.Pick(&rreq)
	c := s.Clusters[name]
	if c == nil {
		h.stats.NoCluster.Add(1)
		localReply(w, r, rt.Action.ClusterNotFoundStatus, "", "cluster "+name+" not found")
		return
	}
	ep := c.Pick()
	if ep == nil {
		h.stats.NoHealthyUpstream.Add(1)
		localReply(w, r, http.StatusServiceUnavailable, "no healthy upstream", "cluster "+name+" has no healthy endpoints")
		return
	}
	if hostRewrite != "" {
		authority = hostRewrite
	}
	h.forward(w, r, cfg, vh, rt, c, ep, authority, rt.RewritePath(path))
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

// forward sends r to endpoint ep of cluster c and streams the answer back.
func (h *handler) forward(w http.ResponseWriter, r *http.Request, cfg *Config, vh *route.VirtualHost,
	rt *route.Route, c *cluster.Cluster, ep *cluster.Endpoint, authority, path string) {
	ctx := r.Context()
	timeout := rt.Action.Timeout
	if rt.Action.HonorGRPCTimeout {
		if d, ok := grpcTimeout(r.Header.Get("Grpc-Timeout")); ok {
			if rt.Action.GRPCTimeoutMax > 0 {
				d = min(d, rt.Action.GRPCTimeoutMax)
			}
			timeout = d
		}
	}
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}

	out := &http.Request{
		Method:     r.Method,
		URL:        upstreamURL(ep.Address, path),
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     make(http.Header, len(r.Header)+4),
		Host:       authority,
		Trailer:    r.Trailer,
	}
	out = out.WithContext(ctx)
	if r.Body != nil && r.Body != http.NoBody {
		out.Body, out.ContentLength = r.Body, r.ContentLength
	}
	copyHeaders(out.Header, r.Header)
	// net/http has answered the client's Expect: 100-continue already.
	delete(out.Header, "Expect")
	if te := r.Header["Te"]; len(te) > 0 && listedIn(te, "trailers") {
		out.Header["Te"] = trailersValue // gRPC needs it end to end
	}
	if _, ok := out.Header["X-Forwarded-Proto"]; !ok || cfg.UseRemoteAddress {
		out.Header["X-Forwarded-Proto"] = httpValue
	}
	if cfg.UseRemoteAddress {
		// Only an edge proxy vouches for the peer's address; a sidecar leaves the header to
		// the edge, so a request crossing two sidecars does not list a hop twice.
		if ip, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
			if prior := r.Header["X-Forwarded-For"]; len(prior) > 0 {
				ip = strings.Join(prior, ", ") + ", " + ip
			}
			out.Header["X-Forwarded-For"] = []string{ip}
		}
	}
	if cfg.GenerateRequestID {
		if _, ok := out.Header["X-Request-Id"]; !ok {
			out.Header["X-Request-Id"] = []string{newRequestID()}
		}
	}
	if vh.IncludeAttemptCount {
		out.Header["X-Envoy-Attempt-Count"] = oneValue
	}

	h.stats.UpstreamRequests.Add(1)
	ep.Begin()
	defer ep.End()
	res, err := c.RoundTripper(r.ProtoMajor == 2).RoundTrip(out)
	if err != nil {
		h.upstreamFailed(w, r, ctx, c, ep, err)
		return
	}
	defer res.Body.Close()

	wh := w.Header()
	copyHeaders(wh, res.Header)
	announced := len(res.Trailer)
	if announced > 0 {
		names := make([]string, 0, announced)
		for k := range res.Trailer {
			names = append(names, k)
		}
		wh["Trailer"] = []string{strings.Join(names, ", ")}
	}
	w.WriteHeader(res.StatusCode)
	streaming := res.ContentLength < 0
	if streaming && isGRPC(res.Header) && len(res.Header["Grpc-Status"]) == 0 {
		// A gRPC stream's headers go out at once, as Envoy sends them, so a client waiting
		// for the server's metadata is not kept waiting for its first message. A
		// trailers-only answer (grpc-status in the headers) must not be flushed: it has to
		// reach the client as one HEADERS frame that ends the stream.
		_ = http.NewResponseController(w).Flush()
	}

	// Stream as the upstream does: a body of unknown length (chunked, gRPC, server-sent
	// events) is flushed after every read, a sized one left to net/http's buffering.
	if err := copyBody(w, res.Body, streaming); err != nil {
		if errors.Is(err, errWrite) {
			h.stats.DownstreamClosed.Add(1)
		} else {
			h.stats.UpstreamReset.Add(1)
			h.stats.UpstreamErrors.Add(1)
		}
		// The status is already sent: abort the response so the client sees a broken
		// stream, not a short body that looks complete.
		panic(http.ErrAbortHandler)
	}
	if len(res.Trailer) > 0 {
		for k, vv := range res.Trailer {
			if announced > 0 && len(res.Trailer) == announced {
				wh[k] = vv
			} else {
				// Trailers that were not announced (gRPC's grpc-status over HTTP/2).
				wh[http.TrailerPrefix+k] = vv
			}
		}
	}
}

// upstreamFailed answers a request whose upstream exchange failed before a response began.
func (h *handler) upstreamFailed(w http.ResponseWriter, r *http.Request, ctx context.Context, c *cluster.Cluster, ep *cluster.Endpoint, err error) {
	switch {
	case r.Context().Err() != nil:
		h.stats.DownstreamClosed.Add(1) // nobody is left to answer
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		h.stats.UpstreamErrors.Add(1)
		h.stats.UpstreamTimeout.Add(1)
		localReply(w, r, http.StatusGatewayTimeout, "upstream request timeout",
			"upstream "+ep.Address+" of cluster "+c.Name+" timed out")
	default:
		h.stats.UpstreamErrors.Add(1)
		h.stats.ConnectFailure.Add(1)
		localReply(w, r, http.StatusServiceUnavailable,
			"upstream connect error or disconnect/reset before headers. reset reason: connection failure",
			"upstream "+ep.Address+" of cluster "+c.Name+" failed: "+describe(err))
	}
}

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

// bufPool holds the buffers response bodies are copied with.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}

func copyBody(w http.ResponseWriter, body io.Reader, flush bool) error {
	bp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bp)
	buf := *bp
	rc := http.NewResponseController(w)
	for {
		n, rerr := body.Read(buf)
		if n > 0 {
			if _, err := w.Write(buf[:n]); err != nil {
				return errWrite
			}
			if flush {
				if err := rc.Flush(); err != nil {
					return errWrite
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
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
