package listener

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	rbachttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/rbac/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/sluicemesh/sluice/proxy/internal/filter"
	"github.com/sluicemesh/sluice/proxy/internal/route"
)

// compileSecurityFilter compiles an RBAC or local rate limit entry of http_filters; the
// error starts with the field path below the entry.
func compileSecurityFilter(f *hcmv3.HttpFilter) (HTTPFilter, error) {
	if f.GetDisabled() {
		return HTTPFilter{}, fmt.Errorf(" (%q).disabled: a filter disabled until a route enables it is not supported by sluice-proxy", f.GetName())
	}
	switch f.GetTypedConfig().GetTypeUrl() {
	case rbacTypeURL:
		var c rbachttpv3.RBAC
		if err := f.GetTypedConfig().UnmarshalTo(&c); err != nil {
			return HTTPFilter{}, fmt.Errorf(".typed_config: %w", err)
		}
		r, err := filter.CompileRBAC(&c)
		if err != nil {
			return HTTPFilter{}, fmt.Errorf(".typed_config.%w", err)
		}
		return HTTPFilter{Kind: FilterRBAC, RBAC: r}, nil
	default:
		var c localrlv3.LocalRateLimit
		if err := f.GetTypedConfig().UnmarshalTo(&c); err != nil {
			return HTTPFilter{}, fmt.Errorf(".typed_config: %w", err)
		}
		r, err := filter.CompileRateLimit(&c)
		if err != nil {
			return HTTPFilter{}, fmt.Errorf(".typed_config.%w", err)
		}
		return HTTPFilter{Kind: FilterRateLimit, RateLimit: r}, nil
	}
}

// rbacRequest gathers what RBAC matching reads of the exchange: the request (req, a copy of
// ex.req), both ends of the connection and, over mutual TLS, the client's certificate
// identity.
func (ex *exchange) rbacRequest(req *route.Request) filter.RBACRequest {
	q := filter.RBACRequest{Req: req}
	if ap, err := netip.ParseAddrPort(ex.r.RemoteAddr); err == nil {
		q.DirectRemote = ap.Addr().Unmap()
	}
	q.Remote = filter.RemoteAddr(ex.r.Header, q.DirectRemote)
	if a, ok := ex.r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		if ta, ok := a.(*net.TCPAddr); ok {
			ap := ta.AddrPort()
			q.Local = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
		}
	}
	if cs := ex.r.TLS; cs != nil {
		q.SNI = cs.ServerName
		q.Principal, q.Authenticated = filter.PeerPrincipal(cs)
	}
	return q
}

// authorize runs an RBAC filter: a refused request is answered 403 "RBAC: access denied", as
// Envoy does (reporting true). Envoy sets no response flag for it; the reason names the
// policy. A LOG (AUDIT) policy's match is counted and logged.
func (ex *exchange) authorize(r *filter.RBAC) (answered bool) {
	// RBAC keeps what it is given as far as escape analysis can tell: handing it a copy of
	// the request keeps the exchange itself on ServeHTTP's stack.
	req := ex.req
	q := ex.rbacRequest(&req)
	allowed, reason := r.Decide(&q)
	if !allowed {
		ex.h.stats.RBACDenied.Add(1)
		ex.reply(FlagNone, http.StatusForbidden, filter.RBACDeniedBody, reason)
		return true
	}
	if reason != "" && r.Action() == filter.RBACLog {
		ex.h.stats.RBACLogged.Add(1)
		if ex.h.log != nil {
			ex.h.log.Info("authorization audit", "reason", reason, "authority", ex.req.Authority,
				"method", ex.r.Method, "path", ex.req.Path, "principal", q.Principal, "source_ip", q.DirectRemote.String())
		}
	}
	return false
}

// rateLimit runs a local rate limit filter: a request over the limit is answered 429 with
// the RL flag and, when the filter asks for it, Retry-After in seconds until a token is
// back (reporting true).
func (ex *exchange) rateLimit(l *filter.RateLimit) (answered bool) {
	limited, wait := l.Check(&ex.req, time.Now())
	if !limited {
		return false
	}
	h := ex.w.Header()
	for _, hv := range l.Headers {
		h.Set(hv.Key, hv.Value)
	}
	if l.RetryAfterEnabled() && h.Get("Retry-After") == "" {
		h.Set("Retry-After", strconv.FormatInt(filter.RetryAfterSeconds(wait), 10))
	}
	ex.reply(FlagRateLimited, http.StatusTooManyRequests, "local_rate_limited", l.Describe())
	return true
}
