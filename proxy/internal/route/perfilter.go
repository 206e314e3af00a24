package route

import (
	"fmt"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluicemesh/sluice/proxy/internal/filter"
	"github.com/sluicemesh/sluice/proxy/internal/support"
)

// Type URLs of the per-filter configs routes may carry.
const (
	filterConfigTypeURL = "type.googleapis.com/envoy.config.route.v3.FilterConfig"
	corsPolicyTypeURL   = "type.googleapis.com/envoy.extensions.filters.http.cors.v3.CorsPolicy"
	httpFaultTypeURL    = "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"
)

// perFilter is one level's (virtual host's or route's) typed_per_filter_config.
type perFilter struct {
	// cors is the CORS policy; corsSet records that the level configures the CORS filter
	// at all (a policy, or disabled: then cors is nil).
	cors    *filter.CORS
	corsSet bool
	// fault and faultSet likewise for the fault filter.
	fault    *filter.Fault
	faultSet bool
}

// compilePerFilter compiles a typed_per_filter_config map. Keys name HTTP filters; a filter
// sluice-proxy does not implement is rejected, unless its config is wrapped in a FilterConfig
// marked is_optional, which Envoy too skips when it does not know the filter.
func compilePerFilter(m map[string]*anypb.Any) (perFilter, error) {
	var pf perFilter
	for key, cfg := range m {
		field := fmt.Sprintf("typed_per_filter_config[%q]", key)
		cfgField := field
		disabled, optional := false, false
		if cfg.GetTypeUrl() == filterConfigTypeURL {
			var fc routev3.FilterConfig
			if err := cfg.UnmarshalTo(&fc); err != nil {
				return pf, fmt.Errorf("%s: %w", field, err)
			}
			disabled, optional, cfg = fc.GetDisabled(), fc.GetIsOptional(), fc.GetConfig()
			cfgField += ".config"
		}
		switch key {
		case filter.CORSName:
			pf.corsSet = true
			if disabled {
				continue
			}
			if cfg.GetTypeUrl() != corsPolicyTypeURL {
				return pf, fmt.Errorf("%s: the CORS filter's per-route config must be a %s, got %q", cfgField, corsPolicyTypeURL, cfg.GetTypeUrl())
			}
			var p corsv3.CorsPolicy
			if err := cfg.UnmarshalTo(&p); err != nil {
				return pf, fmt.Errorf("%s: %w", cfgField, err)
			}
			if err := support.Check(&p, Supported); err != nil {
				return pf, fmt.Errorf("%s.%w", cfgField, err)
			}
			c, err := filter.CompileCORS(&p)
			if err != nil {
				return pf, fmt.Errorf("%s.%w", cfgField, err)
			}
			pf.cors = c
		case filter.FaultName:
			pf.faultSet = true
			if disabled {
				continue
			}
			f, err := CompileFaultConfig(cfg)
			if err != nil {
				return pf, fmt.Errorf("%s%w", cfgField, err)
			}
			pf.fault = f
		default:
			if optional {
				continue
			}
			return pf, fmt.Errorf("%s: filter %q is not supported by sluice-proxy (per-route configs are accepted for %s and %s)",
				field, key, filter.CORSName, filter.FaultName)
		}
	}
	return pf, nil
}

// mergePerFilter resolves a route's per-filter configs over its virtual host's, as Envoy
// does: the most specific level wins, and CORS merges attribute by attribute.
func mergePerFilter(r *Route, route, vhost perFilter) {
	switch {
	case route.corsSet && route.cors == nil: // disabled on the route
	case route.corsSet && vhost.cors != nil:
		r.CORS = filter.MergeCORS(route.cors, vhost.cors)
	case route.corsSet:
		r.CORS = route.cors
	default:
		r.CORS = vhost.cors
	}
	// Envoy takes the most specific fault config whole.
	switch {
	case route.faultSet:
		r.Fault, r.FaultSet = route.fault, true
	case vhost.faultSet:
		r.Fault, r.FaultSet = vhost.fault, true
	}
}

// CompileFaultConfig compiles an HTTPFault in an Any, the fault filter's config in the HCM's
// chain and in typed_per_filter_config alike. Its errors start with ":" or "." so the caller
// can prefix the field.
func CompileFaultConfig(cfg *anypb.Any) (*filter.Fault, error) {
	if cfg.GetTypeUrl() != httpFaultTypeURL {
		return nil, fmt.Errorf(": the fault filter's config must be a %s, got %q", httpFaultTypeURL, cfg.GetTypeUrl())
	}
	var hf faultv3.HTTPFault
	if err := cfg.UnmarshalTo(&hf); err != nil {
		return nil, fmt.Errorf(": %w", err)
	}
	if err := support.Check(&hf, Supported); err != nil {
		return nil, fmt.Errorf(".%w", err)
	}
	f, err := filter.CompileFault(&hf)
	if err != nil {
		return nil, fmt.Errorf(".%w", err)
	}
	return f, nil
}
