package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	ratelimitv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/registry"
)

// localRateLimitFilterName is Envoy's local rate limit HTTP filter.
const localRateLimitFilterName = "envoy.filters.http.local_ratelimit"

// MaxHeaderBuckets bounds the buckets a RateLimit with perHeader keeps in each sidecar: the
// least recently used value's bucket is dropped past it, so a client sending ever new values
// cannot grow the proxy's memory (a dropped value starts again with a full bucket).
const MaxHeaderBuckets = 1024

// Descriptor keys of the entries a RateLimit's actions produce.
const (
	rateLimitKey       = "ratelimit" // "<namespace>/<name>" of the RateLimit
	rateLimitHeaderKey = "header"    // the perHeader value
)

type rateLimitEntry struct {
	res  *config.Resource
	spec *config.RateLimitSpec
}

// indexRateLimits keeps the RateLimits of sorted, in their order.
func indexRateLimits(sorted []*config.Resource) []*rateLimitEntry {
	var out []*rateLimitEntry
	for _, r := range sorted {
		if s, ok := r.Spec.(*config.RateLimitSpec); ok {
			out = append(out, &rateLimitEntry{res: r, spec: s})
		}
	}
	return out
}

// rateLimitFilters translates the RateLimits of w's namespace that select it, one local
// rate limit filter each; a request must pass every one.
func rateLimitFilters(c *Config, w registry.Workload) []*hcmv3.HttpFilter {
	if c == nil {
		return nil
	}
	var out []*hcmv3.HttpFilter
	for _, e := range c.rateLimits {
		if e.res.Namespace != w.Namespace {
			continue
		}
		if sel := e.spec.Selector; sel != nil && !labelsMatch(sel.MatchLabels, w.Labels) {
			continue
		}
		out = append(out, &hcmv3.HttpFilter{
			Name:       localRateLimitFilterName,
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(localRateLimit(e))},
		})
	}
	return out
}

// localRateLimit is one RateLimit as Envoy's LocalRateLimit. A limit on every request is the
// filter's own token bucket. A limit narrowed to a route, or kept per header value, is a
// descriptor: the filter's rate_limits actions describe each request as
// [ratelimit=<ns>/<name>] (only when the route matches) plus [header=<value>] (only when the
// header is present), and the descriptors hold the buckets: one per header value (a
// wildcard entry, at most MaxHeaderBuckets of them) and one shared by requests without the
// header. Requests that match no descriptor are not limited.
func localRateLimit(e *rateLimitEntry) *localrlv3.LocalRateLimit {
	s := e.spec
	id := e.res.Namespace + "/" + e.res.Name
	burst := s.RequestsPerUnit
	if s.Burst != nil {
		burst = *s.Burst
	}
	bucket := &typev3.TokenBucket{
		MaxTokens:     uint32(burst),
		TokensPerFill: wrapperspb.UInt32(uint32(s.RequestsPerUnit)),
		FillInterval:  durationpb.New(s.Unit.Period()),
	}
	always := &corev3.RuntimeFractionalPercent{DefaultValue: &typev3.FractionalPercent{Numerator: 100, Denominator: typev3.FractionalPercent_HUNDRED}}
	out := &localrlv3.LocalRateLimit{
		StatPrefix:     "ratelimit_" + e.res.Namespace + "_" + e.res.Name,
		FilterEnabled:  always,
		FilterEnforced: always,
		ResponseHeadersToAdd: []*corev3.HeaderValueOption{{
			Header:       &corev3.HeaderValue{Key: "x-sluice-ratelimit", Value: id},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		}},
		EnableRetryAfterHeader: true,
	}
	if s.Route == nil && s.PerHeader == "" {
		out.TokenBucket = bucket
		return out
	}
	first := &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_GenericKey_{
		GenericKey: &routev3.RateLimit_Action_GenericKey{DescriptorKey: rateLimitKey, DescriptorValue: id},
	}}
	if r := s.Route; r != nil {
		var hs []*routev3.HeaderMatcher
		if r.URIPrefix != "" {
			hs = append(hs, rbacHeader(":path", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: r.URIPrefix}}))
		}
		for _, k := range sortedKeys(r.Headers) {
			hs = append(hs, rbacHeader(k, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: r.Headers[k]}}))
		}
		first = &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_HeaderValueMatch_{
			HeaderValueMatch: &routev3.RateLimit_Action_HeaderValueMatch{
				DescriptorKey: rateLimitKey, DescriptorValue: id, ExpectMatch: wrapperspb.Bool(true), Headers: hs,
			},
		}}
	}
	actions := []*routev3.RateLimit_Action{first}
	descriptors := []*ratelimitv3.LocalRateLimitDescriptor{{
		Entries:     []*ratelimitv3.RateLimitDescriptor_Entry{{Key: rateLimitKey, Value: id}},
		TokenBucket: bucket,
	}}
	if s.PerHeader != "" {
		actions = append(actions, &routev3.RateLimit_Action{ActionSpecifier: &routev3.RateLimit_Action_RequestHeaders_{
			RequestHeaders: &routev3.RateLimit_Action_RequestHeaders{HeaderName: s.PerHeader, DescriptorKey: rateLimitHeaderKey, SkipIfAbsent: true},
		}})
		descriptors = append([]*ratelimitv3.LocalRateLimitDescriptor{{
			Entries:     []*ratelimitv3.RateLimitDescriptor_Entry{{Key: rateLimitKey, Value: id}, {Key: rateLimitHeaderKey}},
			TokenBucket: bucket,
		}}, descriptors...)
		out.MaxDynamicDescriptors = wrapperspb.UInt32(MaxHeaderBuckets)
	}
	out.RateLimits = []*routev3.RateLimit{{Actions: actions}}
	out.Descriptors = descriptors
	return out
}
