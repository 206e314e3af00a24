package xds

import (
	"slices"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	corsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/cors/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
)

// corsFilterName is the HTTP filter that answers CORS preflights and adds CORS headers;
// routes configure it through typed_per_filter_config under this name.
const corsFilterName = "envoy.filters.http.cors"

// corsPolicy is a rule's corsPolicy in Envoy's form.
func corsPolicy(p *networking.CorsPolicy) *corsv3.CorsPolicy {
	out := &corsv3.CorsPolicy{
		AllowMethods:     strings.Join(p.GetAllowMethods(), ","),
		AllowHeaders:     strings.Join(p.GetAllowHeaders(), ","),
		ExposeHeaders:    strings.Join(p.GetExposeHeaders(), ","),
		AllowCredentials: p.GetAllowCredentials(),
	}
	for _, o := range p.GetAllowOrigins() {
		if sm := stringMatcher(o); sm != nil {
			out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, sm)
		}
	}
	for _, o := range p.GetAllowOrigin() { // the deprecated exact list
		out.AllowOriginStringMatch = append(out.AllowOriginStringMatch, &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: o}})
	}
	if d := p.GetMaxAge(); d != nil {
		out.MaxAge = strconv.FormatInt(int64(d.AsDuration().Seconds()), 10)
	}
	return out
}

// faultFilterName is the HTTP filter that injects VirtualService faults; routes configure it
// through typed_per_filter_config under this name.
const faultFilterName = "envoy.filters.http.fault"

// headerOps turns a VirtualService header operation into Envoy's: set overwrites, add
// appends, remove removes. Sorted, so the configuration is stable.
func headerOps(ops *networking.Headers_HeaderOperations) ([]*corev3.HeaderValueOption, []string) {
	if ops == nil {
		return nil, nil
	}
	var add []*corev3.HeaderValueOption
	for _, k := range sortedKeys(ops.GetSet()) {
		add = append(add, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: ops.GetSet()[k]},
			AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
		})
	}
	for _, k := range sortedKeys(ops.GetAdd()) {
		add = append(add, &corev3.HeaderValueOption{
			Header:       &corev3.HeaderValue{Key: k, Value: ops.GetAdd()[k]},
			AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD,
		})
	}
	remove := slices.Clone(ops.GetRemove())
	slices.Sort(remove)
	return add, remove
}

// fractionalPercent is a percentage (0–100, fractions allowed) at Envoy's finest resolution.
func fractionalPercent(p float64) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: uint32(p*10000 + 0.5), Denominator: typev3.FractionalPercent_MILLION}
}

// percentOf reads Istio's percentage, or its older integer form; absent means 100.
func percentOf(p *networking.Percent, old int32, set bool) float64 {
	switch {
	case p != nil:
		return p.GetValue()
	case set:
		return float64(old)
	}
	return 100
}

// faultConfig is a route's fault: delay and abort, each with its own percentage.
func faultConfig(f *networking.HTTPFaultInjection) *faultv3.HTTPFault {
	out := &faultv3.HTTPFault{}
	if d := f.GetDelay(); d != nil {
		if fixed, ok := d.GetHttpDelayType().(*networking.HTTPFaultInjection_Delay_FixedDelay); ok {
			out.Delay = &faultcommonv3.FaultDelay{
				FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(fixed.FixedDelay.AsDuration())},
				Percentage:         fractionalPercent(percentOf(d.GetPercentage(), d.GetPercent(), d.GetPercent() != 0)),
			}
		}
	}
	if a := f.GetAbort(); a != nil {
		abort := &faultv3.FaultAbort{Percentage: fractionalPercent(percentOf(a.GetPercentage(), 0, false))}
		switch t := a.GetErrorType().(type) {
		case *networking.HTTPFaultInjection_Abort_HttpStatus:
			abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(t.HttpStatus)}
		case *networking.HTTPFaultInjection_Abort_GrpcStatus:
			abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: grpcCode(t.GrpcStatus)}
		default:
			abort = nil
		}
		if abort != nil {
			out.Abort = abort
		}
	}
	if out.Delay == nil && out.Abort == nil {
		return nil
	}
	return out
}

// grpcCode reads a gRPC status name such as "UNAVAILABLE" (validation accepts only real ones).
func grpcCode(name string) uint32 {
	for c := codes.OK; c <= codes.Unauthenticated; c++ {
		if strings.EqualFold(strings.ReplaceAll(c.String(), " ", ""), strings.ReplaceAll(name, "_", "")) {
			return uint32(c)
		}
	}
	if n, err := strconv.Atoi(name); err == nil {
		return uint32(n)
	}
	return uint32(codes.Unknown)
}

// Istio's retry policy when a rule says nothing: two retries on connection failures, refused
// streams, and 503 (which is what a sidecar answers when it cannot connect).
const defaultRetryOn = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"

// retryPolicy is a rule's retries, or Istio's default when it has none; attempts: 0 means
// none.
func retryPolicy(r *networking.HTTPRetry) *routev3.RetryPolicy {
	attempts, retryOn := int32(2), defaultRetryOn
	var perTry, backoff time.Duration
	if r != nil {
		attempts = r.GetAttempts()
		if r.GetRetryOn() != "" {
			retryOn = r.GetRetryOn()
		}
		perTry = r.GetPerTryTimeout().AsDuration()
		backoff = r.GetBackoff().AsDuration()
	}
	if attempts <= 0 {
		return nil
	}
	p := &routev3.RetryPolicy{
		NumRetries:                    wrapperspb.UInt32(uint32(attempts)),
		RetryHostPredicate:            []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts"}},
		HostSelectionRetryMaxAttempts: 5,
	}
	// Bare status codes in retryOn become retriable status codes, as in Istio.
	var tokens []string
	for _, t := range strings.Split(retryOn, ",") {
		t = strings.TrimSpace(t)
		if n, err := strconv.Atoi(t); err == nil {
			p.RetriableStatusCodes = append(p.RetriableStatusCodes, uint32(n))
			continue
		}
		if t != "" {
			tokens = append(tokens, t)
		}
	}
	if len(p.RetriableStatusCodes) > 0 && !slices.Contains(tokens, "retriable-status-codes") {
		tokens = append(tokens, "retriable-status-codes")
	}
	if slices.Contains(tokens, "retriable-status-codes") && len(p.RetriableStatusCodes) == 0 {
		p.RetriableStatusCodes = []uint32{503}
	}
	p.RetryOn = strings.Join(tokens, ",")
	if perTry > 0 {
		p.PerTryTimeout = durationpb.New(perTry)
	}
	if backoff > 0 {
		p.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(backoff)}
	}
	return p
}

// mirrorPolicy copies a share of a route's requests to another cluster.
func mirrorPolicy(cluster string, pct *networking.Percent, old *wrapperspb.UInt32Value) *routev3.RouteAction_RequestMirrorPolicy {
	p := 100.0
	switch {
	case pct != nil:
		p = pct.GetValue()
	case old != nil:
		p = float64(old.GetValue())
	}
	return &routev3.RouteAction_RequestMirrorPolicy{
		Cluster:         cluster,
		RuntimeFraction: &corev3.RuntimeFractionalPercent{DefaultValue: fractionalPercent(p)},
	}
}
