package filter

import (
	"fmt"
	"net/http"

	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"

	"github.com/sluicemesh/sluice/proxy/internal/match"
)

// CORSName is the name of Envoy's CORS filter, under which routes configure it in
// typed_per_filter_config.
const CORSName = "envoy.filters.http.cors"

// CORS is a compiled CorsPolicy, or the merge of a route's and its virtual host's. It is
// immutable.
//
// The filter follows Envoy's: a request with an Origin header that the policy allows gets
// Access-Control-Allow-Origin (and -Credentials, -Expose-Headers) on its answer; a preflight
// (OPTIONS with Origin and Access-Control-Request-Method) from an allowed origin is answered
// by the proxy itself, 200 with the Allow headers, and never reaches the upstream. A
// preflight from another origin is forwarded, unless forward_not_matching_preflights is
// false: then it is answered without Access-Control-Allow-Origin.
type CORS struct {
	origins       []match.String
	allowMethods  string
	allowHeaders  string
	exposeHeaders string
	maxAge        string
	credentials   optBool
	privateNet    optBool
	forward       optBool
	enabled       optPercent
	shadow        optPercent
}

type optBool struct{ set, value bool }

type optPercent struct {
	set   bool
	value Percent
}

// CompileCORS compiles p. The error names the offending field relative to p.
func CompileCORS(p *corsv3.CorsPolicy) (*CORS, error) {
	c := &CORS{allowMethods: p.GetAllowMethods(), allowHeaders: p.GetAllowHeaders(),
		exposeHeaders: p.GetExposeHeaders(), maxAge: p.GetMaxAge()}
	for i, sm := range p.GetAllowOriginStringMatch() {
		m, err := match.CompileString(sm)
		if err != nil {
			return nil, fmt.Errorf("allow_origin_string_match[%d].%w", i, err)
		}
		c.origins = append(c.origins, m)
	}
	if v := p.GetAllowCredentials(); v != nil {
		c.credentials = optBool{true, v.GetValue()}
	}
	if v := p.GetAllowPrivateNetworkAccess(); v != nil {
		c.privateNet = optBool{true, v.GetValue()}
	}
	if v := p.GetForwardNotMatchingPreflights(); v != nil {
		c.forward = optBool{true, v.GetValue()}
	}
	var err error
	if v := p.GetFilterEnabled(); v != nil {
		c.enabled.set = true
		if c.enabled.value, err = CompilePercent(v.GetDefaultValue()); err != nil {
			return nil, fmt.Errorf("filter_enabled.default_value.%w", err)
		}
	}
	if v := p.GetShadowEnabled(); v != nil {
		c.shadow.set = true
		if c.shadow.value, err = CompilePercent(v.GetDefaultValue()); err != nil {
			return nil, fmt.Errorf("shadow_enabled.default_value.%w", err)
		}
	}
	return c, nil
}

// MergeCORS returns the policy a request on a route sees when the route has policy route and
// its virtual host has policy vhost (either may be nil). As in Envoy, each attribute comes
// from the most specific policy that sets it, while whether the filter is enabled is the
// most specific policy's alone.
func MergeCORS(route, vhost *CORS) *CORS {
	switch {
	case route == nil:
		return vhost
	case vhost == nil:
		return route
	}
	m := *route
	if len(m.origins) == 0 {
		m.origins = vhost.origins
	}
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&m.allowMethods, vhost.allowMethods}, {&m.allowHeaders, vhost.allowHeaders},
		{&m.exposeHeaders, vhost.exposeHeaders}, {&m.maxAge, vhost.maxAge},
	} {
		if *f.dst == "" {
			*f.dst = f.src
		}
	}
	for _, f := range []struct {
		dst *optBool
		src optBool
	}{
		{&m.credentials, vhost.credentials}, {&m.privateNet, vhost.privateNet}, {&m.forward, vhost.forward},
	} {
		if !f.dst.set {
			*f.dst = f.src
		}
	}
	return &m
}

// Enabled draws whether the filter enforces the policy for this request (filter_enabled;
// 100% when unset).
func (c *CORS) Enabled() bool { return !c.enabled.set || c.enabled.value.Hit() }

// ShadowEnabled draws whether the filter evaluates origins for statistics only
// (shadow_enabled; never when unset).
func (c *CORS) ShadowEnabled() bool { return c.shadow.set && c.shadow.value.Hit() }

// OriginAllowed reports whether origin is allowed. As in Envoy, a matcher that matches the
// literal "*" allows every origin.
func (c *CORS) OriginAllowed(origin string) bool {
	for i := range c.origins {
		if c.origins[i].Matches("*") || c.origins[i].Matches(origin) {
			return true
		}
	}
	return false
}

// ForwardNotMatchingPreflights reports whether a preflight from an origin that is not
// allowed goes on upstream (true unless the policy says otherwise).
func (c *CORS) ForwardNotMatchingPreflights() bool { return !c.forward.set || c.forward.value }

// Preflight writes the answer headers of a preflight request req: allowOrigin is the origin
// to allow, "" for none. An allow_methods or allow_headers of "*" echoes what the request
// asked for.
func (c *CORS) Preflight(h, req http.Header, allowOrigin string) {
	if allowOrigin != "" {
		h.Set("Access-Control-Allow-Origin", allowOrigin)
	}
	if c.credentials.value {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	switch c.allowMethods {
	case "":
	case "*":
		h.Set("Access-Control-Allow-Methods", req.Get("Access-Control-Request-Method"))
	default:
		h.Set("Access-Control-Allow-Methods", c.allowMethods)
	}
	switch c.allowHeaders {
	case "":
	case "*":
		h.Set("Access-Control-Allow-Headers", req.Get("Access-Control-Request-Headers"))
	default:
		h.Set("Access-Control-Allow-Headers", c.allowHeaders)
	}
	if c.maxAge != "" {
		h.Set("Access-Control-Max-Age", c.maxAge)
	}
	if c.privateNet.value && req.Get("Access-Control-Request-Private-Network") == "true" {
		h.Set("Access-Control-Allow-Private-Network", "true")
	}
}

// Actual writes the headers of the answer to an actual (not preflight) request from the
// allowed origin.
func (c *CORS) Actual(h http.Header, origin string) {
	h.Set("Access-Control-Allow-Origin", origin)
	if c.credentials.value {
		h.Set("Access-Control-Allow-Credentials", "true")
	}
	if c.exposeHeaders != "" {
		h.Set("Access-Control-Expose-Headers", c.exposeHeaders)
	}
}
