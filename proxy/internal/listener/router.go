package listener

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluicemesh/sluice/proxy/internal/cluster"
	"github.com/sluicemesh/sluice/proxy/internal/filter"
	"github.com/sluicemesh/sluice/proxy/internal/route"
)

// maxDiscard is how much of an answer that is retried is read (and dropped) so that its
// connection can be reused; the rest closes the connection.
const maxDiscard = 4 << 10

// forward sends the request to an endpoint of cluster c, retrying as the route's retry policy
// says, and streams the last answer back.
//
// The route timeout bounds every try together, back-off waits included. What a retry can
// resend: a request without a body always; a request with a body only while the body has
// fit in MaxBufferedBody (it is recorded as the first try streams it). What is never
// retried: a request whose body grew past that bound, an answer already being streamed to
// the client, the proxy's own replies (fault aborts, circuit-breaker overflows), and
// anything after the route timeout has passed or the client has gone.
func (ex *exchange) forward(c *cluster.Cluster, authority, path string) {
	h, r, rt := ex.h, ex.r, ex.rt
	rp := rt.Action.Retry
	key := cluster.NoKey
	if rt.Action.Hash != nil && c.Policy.HashBased() {
		local, _ := r.Context().Value(http.LocalAddrContextKey).(net.Addr)
		k, ok, setCookie := rt.Action.Hash.Key(&ex.req, route.HashInput{RemoteAddr: r.RemoteAddr, LocalAddr: local})
		key, ex.setCookie = cluster.Key{Hash: k, Set: ok}, setCookie
	}
	ep := c.PickKey(key)
	if ep == nil {
		ex.noHealthyUpstream(c)
		return
	}
	ex.ep = ep
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

	out := ex.upstreamRequest(ctx, authority)
	// Copies leave with the headers as they go upstream, before the tries change them.
	var body *requestBody
	if len(rt.Action.Mirrors) > 0 {
		body = ex.startMirrors(out, path, body)
	}
	hasBody := r.Body != nil && r.Body != http.NoBody && r.ContentLength != 0
	retries := 0
	if rp != nil {
		retries = rp.NumRetries
	}
	if retries > 0 && hasBody && body == nil && r.ContentLength <= MaxBufferedBody {
		body = newRequestBody(r.Body, r.ContentLength, MaxBufferedBody)
	}
	if body != nil {
		defer func() {
			if n := body.abandon(); n > 0 {
				h.stats.MirrorsSkipped.Add(uint64(n))
			}
		}()
	}

	var triedArr [4]*cluster.Endpoint
	tried := triedArr[:0]
	h2 := c.UsesHTTP2(r.ProtoMajor == 2)
	rtr := c.RoundTripper(r.ProtoMajor == 2)
	retryHeld := false // a max_retries slot is held for the current try
	defer func() {
		if retryHeld {
			c.ReleaseRetry()
		}
	}()
	for try := 1; ; try++ {
		adm, err := c.Admit(ctx, !h2)
		if err != nil {
			ex.notAdmitted(c, err)
			return
		}
		tryCtx, cancelTry := ctx, context.CancelFunc(nil)
		if rp != nil && rp.PerTryTimeout > 0 {
			tryCtx, cancelTry = context.WithTimeout(ctx, rp.PerTryTimeout)
		}
		req := out
		switch {
		case try > 1:
			// The previous try's request may still be read by its transport: a retry gets
			// its own.
			req = out.Clone(tryCtx)
		case cancelTry != nil:
			req = out.WithContext(tryCtx)
		}
		req.URL = upstreamURL(ep.Address, path)
		if ex.vh.IncludeAttemptCount {
			req.Header["X-Envoy-Attempt-Count"] = attemptCount(try)
		}
		switch {
		case body != nil:
			req.Body, req.ContentLength = body.next(), r.ContentLength
		case hasBody:
			req.Body, req.ContentLength = r.Body, r.ContentLength
		}
		req = c.Prepare(req)

		h.stats.UpstreamRequests.Add(1)
		ep.Begin()
		res, err := rtr.RoundTrip(req)
		var failure route.Failure
		if err != nil {
			failure = classify(err, ctx, tryCtx)
		}
		if r.Context().Err() == nil {
			c.Report(ep, outcomeStatus(res, err, failure, ctx))
		}
		if retryHeld {
			// The retry has its answer: its max_retries slot is free again.
			c.ReleaseRetry()
			retryHeld = false
		}

		retry := false
		if rp != nil && ctx.Err() == nil {
			would := (err == nil && rp.RetriesAnswer(res.StatusCode, res.Header)) ||
				(err != nil && failure != 0 && rp.RetriesFailure(failure))
			switch {
			case !would:
				if try > 1 {
					h.stats.RetrySuccess.Add(1)
				}
			case try > retries:
				ex.setFlag(FlagRetryLimitExceeded)
			case body != nil && !body.replayable(), body == nil && hasBody:
				// The body is no longer whole: it cannot be sent again.
			case !c.AdmitRetry():
				h.stats.RetryOverflow.Add(1)
			default:
				retry, retryHeld = true, true
			}
		}
		if !retry {
			if err != nil {
				ep.End()
				c.Release(adm)
				ex.upstreamFailed(ctx, c, ep, err, failure, try)
				if cancelTry != nil {
					cancelTry()
				}
				return
			}
			broken := ex.respond(res)
			res.Body.Close()
			ep.End()
			c.Release(adm)
			if cancelTry != nil {
				cancelTry()
			}
			if broken {
				// The status is already sent: abort the response so the client sees a
				// broken stream, not a short body that looks complete.
				panic(http.ErrAbortHandler)
			}
			return
		}

		if res != nil {
			_, _ = io.CopyN(io.Discard, res.Body, maxDiscard)
			res.Body.Close()
		}
		ep.End()
		c.Release(adm)
		if cancelTry != nil {
			cancelTry()
		}
		if !ex.backOff(ctx, rp.BackOff(try)) {
			return
		}
		h.stats.Retries.Add(1)
		tried = append(tried, ep)
		if rp.PreviousHosts {
			ep = c.PickAvoiding(key, tried, rp.HostSelectionAttempts)
		} else {
			ep = c.PickKey(key)
		}
		if ep == nil {
			ex.noHealthyUpstream(c)
			return
		}
		ex.ep = ep
	}
}

// backOff waits a random time below bound before a retry (full jitter). It reports false,
// having answered, when the route timeout passes or the client goes away meanwhile.
func (ex *exchange) backOff(ctx context.Context, bound time.Duration) bool {
	t := time.NewTimer(jitter(bound))
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		if ex.r.Context().Err() != nil {
			ex.setFlag(FlagDownstreamTermination)
		} else {
			ex.h.stats.UpstreamErrors.Add(1)
			ex.reply(FlagUpstreamTimeout, http.StatusGatewayTimeout, "upstream request timeout",
				"the route timeout passed while waiting to retry")
		}
		return false
	}
}

// jitter draws a back-off wait uniformly from [0, bound): Envoy's full jitter.
func jitter(bound time.Duration) time.Duration { return rand.N(bound) }

var attemptCounts = [...][]string{{"0"}, {"1"}, {"2"}, {"3"}, {"4"}, {"5"}, {"6"}, {"7"}, {"8"}, {"9"}, {"10"}}

func attemptCount(try int) []string {
	if try < len(attemptCounts) {
		return attemptCounts[try]
	}
	return []string{strconv.Itoa(try)}
}

// upstreamRequest builds the request sent upstream with context ctx, without its URL and
// body: the client's headers without hop-by-hop ones, the proxy's own, and the route's
// mutations.
func (ex *exchange) upstreamRequest(ctx context.Context, authority string) *http.Request {
	r, cfg := ex.r, ex.s.Config
	// WithContext is the one way to give a request its context, and it copies: copying the
	// client's request and then setting every exported field makes the request in one
	// allocation instead of two (a new Request, then its copy with the context). The
	// unexported fields the copy keeps are the server's routing state, which a transport
	// never reads. TestUpstreamRequestSetsEveryField fails when net/http adds a field.
	out := r.WithContext(ctx)
	out.Method = r.Method
	out.URL = nil
	out.Proto, out.ProtoMajor, out.ProtoMinor = "HTTP/1.1", 1, 1
	out.Header = make(http.Header, len(r.Header)+4)
	out.Body, out.GetBody, out.ContentLength = nil, nil, 0
	out.TransferEncoding = nil
	out.Close = false
	out.Host = authority
	out.Form, out.PostForm, out.MultipartForm = nil, nil, nil
	out.Trailer = r.Trailer
	out.RemoteAddr, out.RequestURI = "", ""
	out.TLS = nil
	out.Cancel = nil //nolint:staticcheck // cleared, never used
	out.Response = nil
	out.Pattern = ""
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
			out.Header["X-Request-Id"] = requestIDValue()
		}
	}
	// The route's header mutations come last, as Envoy's router applies them: a chosen
	// weighted cluster's first, then the route's, virtual host's and route configuration's.
	if ex.branch != nil {
		ex.branch.RequestHeaders.Apply(out.Header)
	}
	filter.ApplyAll(ex.rt.RequestHeaders, out.Header)
	ex.h.rec.peerHeader(out.Header, ex.ep)
	return out
}

// outcomeStatus is the HTTP status outlier detection counts for a try, as Envoy reports it:
// the answer's status (a trailers-only gRPC answer's grpc-status mapped to HTTP), 504 for a
// timeout, 503 for a connection failure or reset.
func outcomeStatus(res *http.Response, err error, failure route.Failure, ctx context.Context) int {
	if err != nil {
		if failure == route.FailPerTryTimeout || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return http.StatusGatewayTimeout
		}
		return http.StatusServiceUnavailable
	}
	if vs := res.Header["Grpc-Status"]; len(vs) > 0 && res.StatusCode == http.StatusOK {
		if code, err := strconv.Atoi(vs[0]); err == nil {
			return grpcToHTTP(code)
		}
	}
	return res.StatusCode
}

// grpcToHTTP maps a gRPC status to the HTTP status Envoy counts it as.
func grpcToHTTP(code int) int {
	switch code {
	case 0:
		return http.StatusOK
	case 1:
		return 499
	case 3, 9, 11:
		return http.StatusBadRequest
	case 4:
		return http.StatusGatewayTimeout
	case 5:
		return http.StatusNotFound
	case 6, 10:
		return http.StatusConflict
	case 7:
		return http.StatusForbidden
	case 8:
		return http.StatusTooManyRequests
	case 12:
		return http.StatusNotImplemented
	case 14:
		return http.StatusServiceUnavailable
	case 16:
		return http.StatusUnauthorized
	default: // 2 unknown, 13 internal, 15 data loss
		return http.StatusInternalServerError
	}
}

// classify says how a try failed without an answer.
func classify(err error, ctx, tryCtx context.Context) route.Failure {
	var op *net.OpError
	switch {
	case ctx.Err() == nil && errors.Is(tryCtx.Err(), context.DeadlineExceeded):
		return route.FailPerTryTimeout
	case errors.As(err, &op) && op.Op == "dial":
		return route.FailConnect
	case strings.Contains(err.Error(), "REFUSED_STREAM"):
		return route.FailRefusedStream
	}
	return route.FailReset
}

// notAdmitted answers a request the cluster's circuit breakers turned away, or whose route
// timeout passed (or client left) while it waited as a pending request. An overflow is never
// retried, as in Envoy.
func (ex *exchange) notAdmitted(c *cluster.Cluster, err error) {
	var oe *cluster.OverflowError
	switch {
	case errors.As(err, &oe):
		ex.w.Header().Set("X-Envoy-Overloaded", "true")
		ex.reply(FlagUpstreamOverflow, http.StatusServiceUnavailable,
			"upstream connect error or disconnect/reset before headers. reset reason: overflow", oe.Error())
	case ex.r.Context().Err() != nil:
		ex.setFlag(FlagDownstreamTermination)
	default:
		ex.h.stats.UpstreamErrors.Add(1)
		ex.reply(FlagUpstreamTimeout, http.StatusGatewayTimeout, "upstream request timeout",
			"the route timeout passed while waiting for a connection to cluster "+c.Name)
	}
}

// noHealthyUpstream answers for a cluster without an endpoint to send to.
func (ex *exchange) noHealthyUpstream(c *cluster.Cluster) {
	ex.reply(FlagNoHealthyUpstream, http.StatusServiceUnavailable, "no healthy upstream", "cluster "+c.Name+" has no healthy endpoints")
}

// upstreamFailed answers a request whose last try failed before an answer began.
func (ex *exchange) upstreamFailed(ctx context.Context, c *cluster.Cluster, ep *cluster.Endpoint, err error, failure route.Failure, try int) {
	h := ex.h
	who := "upstream " + ep.Address + " of cluster " + c.Name
	if try > 1 {
		who += " (try " + strconv.Itoa(try) + ")"
	}
	prefix := "upstream connect error or disconnect/reset before headers. reset reason: "
	if try > 1 {
		prefix = "upstream connect error or disconnect/reset before headers. retried and the latest reset reason: "
	}
	switch {
	case ex.r.Context().Err() != nil:
		ex.setFlag(FlagDownstreamTermination) // nobody is left to answer
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || failure == route.FailPerTryTimeout:
		h.stats.UpstreamErrors.Add(1)
		ex.reply(FlagUpstreamTimeout, http.StatusGatewayTimeout, "upstream request timeout", who+" timed out")
	case failure == route.FailConnect:
		h.stats.UpstreamErrors.Add(1)
		ex.reply(FlagConnectFailure, http.StatusServiceUnavailable, prefix+"connection failure", who+" failed: "+describe(err))
	case failure == route.FailRefusedStream:
		h.stats.UpstreamErrors.Add(1)
		ex.reply(FlagUpstreamReset, http.StatusServiceUnavailable, prefix+"remote refused stream reset", who+" refused the stream: "+describe(err))
	default:
		h.stats.UpstreamErrors.Add(1)
		ex.reply(FlagUpstreamTermination, http.StatusServiceUnavailable, prefix+"connection termination", who+" failed: "+describe(err))
	}
}

// respond streams an upstream response back to the client. It reports whether the stream
// broke after the status was sent.
func (ex *exchange) respond(res *http.Response) (broken bool) {
	h, w := ex.h, ex.w
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
	if ex.setCookie != "" {
		wh.Add("Set-Cookie", ex.setCookie)
	}
	ex.finishHeaders(wh)
	ex.status = res.StatusCode
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
	n, err := copyBody(w, res.Body, res.ContentLength, streaming)
	ex.respBytes = n
	if ex.h.rec != nil {
		ex.grpcCode = grpcStatusOf(res)
	}
	if err != nil {
		if errors.Is(err, errWrite) {
			ex.setFlag(FlagDownstreamTermination)
		} else {
			h.stats.UpstreamResetAfterHeaders.Add(1)
			h.stats.UpstreamErrors.Add(1)
			ex.setFlag(FlagUpstreamReset)
		}
		return true
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
	return false
}
