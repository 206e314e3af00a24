package listener

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"

	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"

	"github.com/sluicemesh/sluice/proxy/internal/cluster"
	"github.com/sluicemesh/sluice/proxy/internal/filter"
	"github.com/sluicemesh/sluice/proxy/internal/route"
	"github.com/sluicemesh/sluice/proxy/internal/support"
)

// Type URLs the listener compiler recognises without importing their packages.
const (
	hcmTypeURL    = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
	routerTypeURL = "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
	corsTypeURL   = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"
	faultTypeURL  = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
	rbacTypeURL   = "type.googleapis.com/envoy.extensions.filters.http.rbac.v3.RBAC"
	rlTypeURL     = "type.googleapis.com/envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit"
)

// FilterKind is an HTTP filter sluice-proxy runs before its router.
type FilterKind uint8

// The HTTP filters sluice-proxy implements besides the router.
const (
	// FilterCORS is envoy.filters.http.cors: its policies come from the routes.
	FilterCORS FilterKind = iota + 1
	// FilterFault is envoy.filters.http.fault: its own config, unless a route has one.
	FilterFault
	// FilterRBAC is envoy.filters.http.rbac (authorization); a chain may hold several.
	FilterRBAC
	// FilterRateLimit is envoy.filters.http.local_ratelimit; a chain may hold several.
	FilterRateLimit
)

// HTTPFilter is one compiled entry of the HCM's http_filters.
type HTTPFilter struct {
	// Kind says which filter it is.
	Kind FilterKind
	// Fault is a fault filter's own config, for routes without one (Istio sends an empty
	// HTTPFault: no fault).
	Fault *filter.Fault
	// RBAC and RateLimit are the config of an RBAC or local rate limit filter.
	RBAC      *filter.RBAC
	RateLimit *filter.RateLimit
}

// DefaultWarmingTimeout is Envoy's initial_fetch_timeout: how long a new listener waits for
// its RDS route configuration before it serves without one (answering 404 NR).
const DefaultWarmingTimeout = 15 * time.Second

// Supported lists the Listener and HttpConnectionManager fields sluice-proxy implements;
// Compile rejects anything else, naming the field. The HTTP/1 and HTTP/2 protocol option
// messages are accepted whole and not applied: the server uses Go's defaults.
var Supported = support.Fields{
	"envoy.config.listener.v3.Listener": {"name", "address", "filter_chains", "traffic_direction",
		"metadata", "stat_prefix", "listener_filters"},
	"envoy.config.listener.v3.ListenerFilter":   {"name", "typed_config"},
	"envoy.config.listener.v3.FilterChainMatch": {"transport_protocol", "server_names"},
	"envoy.config.core.v3.Address":              {"socket_address"},
	"envoy.config.core.v3.SocketAddress":        {"address", "port_value", "protocol", "ipv4_compat"},
	"envoy.config.listener.v3.FilterChain":      {"name", "filters", "metadata", "filter_chain_match", "transport_socket"},
	"envoy.config.listener.v3.Filter":           {"name", "typed_config"},
	"envoy.config.core.v3.ConfigSource":         {"ads", "initial_fetch_timeout", "resource_api_version"},
	"envoy.config.core.v3.HttpProtocolOptions":  {"idle_timeout"},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager": {"codec_type",
		"stat_prefix", "rds", "route_config", "http_filters", "use_remote_address", "generate_request_id",
		"preserve_external_request_id", "strip_any_host_port", "strip_matching_host_port",
		"common_http_protocol_options", "http_protocol_options", "http2_protocol_options"},
	"envoy.extensions.filters.network.http_connection_manager.v3.Rds":        {"config_source", "route_config_name"},
	"envoy.extensions.filters.network.http_connection_manager.v3.HttpFilter": {"name", "typed_config", "is_optional", "disabled"},
}

// Config is a compiled Listener with its HttpConnectionManager. It is immutable.
type Config struct {
	// Name is the listener's name.
	Name string
	// Address is the "ip:port" the listener binds.
	Address string
	// Port is the port of Address.
	Port string
	// RouteName names the RDS RouteConfiguration the listener routes with; empty when the
	// routes are inline.
	RouteName string
	// Inline is the compiled inline route_config, when there is one.
	Inline *route.Table
	// WarmingTimeout bounds how long the listener waits for its RDS routes; zero waits for
	// ever.
	WarmingTimeout time.Duration

	// HTTP1 and HTTP2 are the protocols the listener speaks (codec_type: AUTO is both, h2 as
	// h2c with prior knowledge).
	HTTP1, HTTP2 bool
	// IdleTimeout closes a downstream connection idle this long; zero uses Go's default.
	IdleTimeout time.Duration
	// UseRemoteAddress appends the peer's address to X-Forwarded-For (edge proxies).
	UseRemoteAddress bool
	// GenerateRequestID adds an x-request-id to requests without one (Envoy's default).
	GenerateRequestID bool
	// StripAnyHostPort removes any port from the authority; StripMatchingHostPort removes it
	// only when it is the listener's own port.
	StripAnyHostPort, StripMatchingHostPort bool
	// Filters are the HTTP filters before the router, in the order they run.
	Filters []HTTPFilter
	// TLSMode says whether the listener takes TLS, plaintext or both (tls.go); TLS is its
	// TLS context, nil for Plaintext.
	TLSMode TLSMode
	TLS     *cluster.TLSContext
	// Gateway holds a gateway listener's TLS chains, chosen by SNI (gatewaytls.go); TLSMode
	// is then TLSOnly and TLS nil.
	Gateway []GatewayChain
}

// SameServer reports whether a and b can share one running server: the same socket and the
// same connection-level settings. Other differences are swapped in atomically.
func (a *Config) SameServer(b *Config) bool {
	return a.Address == b.Address && a.HTTP1 == b.HTTP1 && a.HTTP2 == b.HTTP2 && a.IdleTimeout == b.IdleTimeout &&
		a.TLSMode == b.TLSMode && a.TLS.Equal(b.TLS) &&
		gatewayChainsEqual(a.Gateway, b.Gateway)
}

// Compile validates an LDS Listener. The error names the offending field, so the proxy can
// NACK with it.
func Compile(l *listenerv3.Listener) (*Config, error) {
	if err := support.Check(l, Supported); err != nil {
		return nil, err
	}
	cfg := &Config{Name: l.GetName(), GenerateRequestID: true, WarmingTimeout: DefaultWarmingTimeout}
	if cfg.Name == "" {
		return nil, errors.New("name: required")
	}
	sa := l.GetAddress().GetSocketAddress()
	if sa == nil {
		return nil, errors.New("address.socket_address: required")
	}
	ip, err := netip.ParseAddr(sa.GetAddress())
	if err != nil {
		return nil, fmt.Errorf("address.socket_address.address: %q is not an IP address", sa.GetAddress())
	}
	if sa.GetPortValue() == 0 || sa.GetPortValue() > 65535 {
		return nil, fmt.Errorf("address.socket_address.port_value: %d is not a port (1-65535)", sa.GetPortValue())
	}
	cfg.Port = strconv.FormatUint(uint64(sa.GetPortValue()), 10)
	cfg.Address = net.JoinHostPort(ip.Unmap().String(), cfg.Port)

	compile := compileChains
	if isGatewayListener(l) {
		compile = compileGatewayChains
	} else {
		for i, fc := range l.GetFilterChains() {
			if len(fc.GetFilterChainMatch().GetServerNames()) > 0 {
				return nil, fmt.Errorf("filter_chains[%d].filter_chain_match.server_names: not supported by sluice-proxy but on a gateway's TLS chains, whose certificates come by SDS", i)
			}
		}
	}
	chain, ci, err := compile(l, cfg)
	if err != nil {
		return nil, err
	}
	filters := chain.GetFilters()
	if len(filters) != 1 || filters[0].GetTypedConfig().GetTypeUrl() != hcmTypeURL {
		return nil, fmt.Errorf("filter_chains[%d].filters: sluice-proxy needs exactly one filter, an envoy.filters.network.http_connection_manager with a typed_config", ci)
	}
	var hcm hcmv3.HttpConnectionManager
	if err := filters[0].GetTypedConfig().UnmarshalTo(&hcm); err != nil {
		return nil, fmt.Errorf("filter_chains[%d].filters[0].typed_config: %w", ci, err)
	}
	if err := compileHCM(&hcm, cfg); err != nil {
		return nil, fmt.Errorf("filter_chains[%d].filters[0].typed_config.%w", ci, err)
	}
	return cfg, nil
}

func compileHCM(hcm *hcmv3.HttpConnectionManager, cfg *Config) error {
	if err := support.Check(hcm, Supported); err != nil {
		return err
	}
	switch hcm.GetCodecType() {
	case hcmv3.HttpConnectionManager_AUTO:
		cfg.HTTP1, cfg.HTTP2 = true, true
	case hcmv3.HttpConnectionManager_HTTP1:
		cfg.HTTP1 = true
	case hcmv3.HttpConnectionManager_HTTP2:
		cfg.HTTP2 = true
	default:
		return fmt.Errorf("codec_type: %v is not supported by sluice-proxy (use AUTO, HTTP1 or HTTP2)", hcm.GetCodecType())
	}
	switch rs := hcm.GetRouteSpecifier().(type) {
	case *hcmv3.HttpConnectionManager_Rds:
		if rs.Rds.GetConfigSource().GetAds() == nil {
			return errors.New("rds.config_source: must be an ads config source (sluice-proxy speaks ADS only)")
		}
		if rs.Rds.GetRouteConfigName() == "" {
			return errors.New("rds.route_config_name: required")
		}
		cfg.RouteName = rs.Rds.GetRouteConfigName()
		if t := rs.Rds.GetConfigSource().GetInitialFetchTimeout(); t != nil {
			cfg.WarmingTimeout = t.AsDuration()
		}
	case *hcmv3.HttpConnectionManager_RouteConfig:
		t, err := route.Compile(rs.RouteConfig)
		if err != nil {
			return fmt.Errorf("route_config.%w", err)
		}
		cfg.Inline = t
	default:
		return errors.New("route_specifier: one of rds or route_config is required")
	}
	seen := map[FilterKind]bool{}
	for i, f := range hcm.GetHttpFilters() {
		last := i == len(hcm.GetHttpFilters())-1
		typeURL := f.GetTypedConfig().GetTypeUrl()
		var kind FilterKind
		var fault *filter.Fault
		switch {
		case typeURL == routerTypeURL && last:
			continue
		case typeURL == routerTypeURL:
			return fmt.Errorf("http_filters[%d]: the router filter must be the last filter", i)
		case typeURL == corsTypeURL:
			kind = FilterCORS
			if f.GetName() != filter.CORSName {
				return fmt.Errorf("http_filters[%d].name: the CORS filter must be named %s, the key routes configure it under, not %q", i, filter.CORSName, f.GetName())
			}
		case typeURL == faultTypeURL:
			kind = FilterFault
			if f.GetName() != filter.FaultName {
				return fmt.Errorf("http_filters[%d].name: the fault filter must be named %s, the key routes configure it under, not %q", i, filter.FaultName, f.GetName())
			}
			fc, err := route.CompileFaultConfig(f.GetTypedConfig())
			if err != nil {
				return fmt.Errorf("http_filters[%d].typed_config%w", i, err)
			}
			fault = fc
		case typeURL == rbacTypeURL || typeURL == rlTypeURL:
			hf, err := compileSecurityFilter(f)
			if err != nil {
				return fmt.Errorf("http_filters[%d]%w", i, err)
			}
			cfg.Filters = append(cfg.Filters, hf)
			continue
		case f.GetIsOptional() || f.GetDisabled():
			// Envoy skips an optional filter it does not know, and a disabled one until a
			// route enables it, which a route cannot do for a filter sluice-proxy lacks.
			continue
		default:
			return fmt.Errorf("http_filters[%d] (%q): not supported by sluice-proxy yet (supported: %s, %s, %s, %s, envoy.filters.http.router)", i, f.GetName(), filter.CORSName, filter.FaultName, filter.RBACName, filter.RateLimitName)
		}
		if f.GetDisabled() {
			return fmt.Errorf("http_filters[%d] (%q).disabled: a filter disabled until a route enables it is not supported by sluice-proxy", i, f.GetName())
		}
		if seen[kind] {
			return fmt.Errorf("http_filters[%d] (%q): the filter is already in the chain", i, f.GetName())
		}
		seen[kind] = true
		cfg.Filters = append(cfg.Filters, HTTPFilter{Kind: kind, Fault: fault})
	}
	if n := len(hcm.GetHttpFilters()); n == 0 || hcm.GetHttpFilters()[n-1].GetTypedConfig().GetTypeUrl() != routerTypeURL {
		return errors.New("http_filters: the last filter must be envoy.filters.http.router with a typed_config")
	}
	if t := hcm.GetCommonHttpProtocolOptions().GetIdleTimeout(); t != nil {
		cfg.IdleTimeout = t.AsDuration()
	}
	cfg.UseRemoteAddress = hcm.GetUseRemoteAddress().GetValue()
	if g := hcm.GetGenerateRequestId(); g != nil {
		cfg.GenerateRequestID = g.GetValue()
	}
	cfg.StripAnyHostPort = hcm.GetStripAnyHostPort()
	cfg.StripMatchingHostPort = hcm.GetStripMatchingHostPort()
	return nil
}
