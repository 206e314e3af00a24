package route

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
)

// Envoy's retry defaults.
const (
	// DefaultRetryBaseInterval is the back-off base interval when retry_back_off is unset.
	DefaultRetryBaseInterval = 25 * time.Millisecond
	// previousHostsPredicate is the only retry host predicate sluice-proxy implements.
	previousHostsPredicate = "envoy.retry_host_predicates.previous_hosts"
	previousHostsTypeURL   = "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
)

// RetryOn is a set of Envoy retry conditions (retry_on).
type RetryOn uint32

// The retry conditions sluice-proxy implements, by their retry_on names.
const (
	Retry5xx                   RetryOn = 1 << iota // "5xx": any 5xx, and every reset, connect failure or per-try timeout
	RetryGatewayError                              // "gateway-error": 502, 503, 504, and every reset, connect failure or per-try timeout
	RetryReset                                     // "reset": no answer (disconnect, reset, per-try timeout)
	RetryConnectFailure                            // "connect-failure"
	RetryRefusedStream                             // "refused-stream": HTTP/2 REFUSED_STREAM
	RetryRetriable4xx                              // "retriable-4xx": 409
	RetryStatusCodes                               // "retriable-status-codes": RetryPolicy.StatusCodes
	RetryEnvoyRateLimited                          // "envoy-ratelimited": an answer with x-envoy-ratelimited
	RetryGRPCCancelled                             // "cancelled": grpc-status 1
	RetryGRPCDeadlineExceeded                      // "deadline-exceeded": grpc-status 4
	RetryGRPCResourceExhausted                     // "resource-exhausted": grpc-status 8
	RetryGRPCInternal                              // "internal": grpc-status 13
	RetryGRPCUnavailable                           // "unavailable": grpc-status 14
)

var retryOnNames = map[string]RetryOn{
	"5xx": Retry5xx, "gateway-error": RetryGatewayError, "reset": RetryReset,
	"connect-failure": RetryConnectFailure, "refused-stream": RetryRefusedStream,
	"retriable-4xx": RetryRetriable4xx, "retriable-status-codes": RetryStatusCodes,
	"envoy-ratelimited": RetryEnvoyRateLimited,
	"cancelled":         RetryGRPCCancelled, "deadline-exceeded": RetryGRPCDeadlineExceeded,
	"resource-exhausted": RetryGRPCResourceExhausted, "internal": RetryGRPCInternal,
	"unavailable": RetryGRPCUnavailable,
}

// Failure is how an upstream try failed without an answer.
type Failure uint8

// The ways a try fails without an answer.
const (
	FailConnect       Failure = iota + 1 // connecting failed (refused, timed out)
	FailRefusedStream                    // the HTTP/2 stream was refused (REFUSED_STREAM)
	FailReset                            // the connection or stream broke before the answer
	FailPerTryTimeout                    // the try's per_try_timeout passed
)

// RetryPolicy is a compiled RetryPolicy. The zero value retries nothing.
type RetryPolicy struct {
	// On is the set of conditions that retry.
	On RetryOn
	// NumRetries is how many retries a request may get (Envoy's default: 1).
	NumRetries int
	// PerTryTimeout bounds each try; zero leaves only the route timeout.
	PerTryTimeout time.Duration
	// StatusCodes are the retriable_status_codes for RetryStatusCodes.
	StatusCodes []int
	// PreviousHosts makes each retry prefer an endpoint not tried before, re-picking up to
	// HostSelectionAttempts times (retry_host_predicate previous_hosts).
	PreviousHosts         bool
	HostSelectionAttempts int
	// BaseInterval and MaxInterval are the back-off's (25ms and 10 times the base by
	// default).
	BaseInterval, MaxInterval time.Duration
}

func compileRetryPolicy(p *routev3.RetryPolicy) (*RetryPolicy, error) {
	rp := &RetryPolicy{NumRetries: 1, HostSelectionAttempts: 1, BaseInterval: DefaultRetryBaseInterval}
	for tok := range strings.SplitSeq(p.GetRetryOn(), ",") {
		tok = strings.TrimSpace(tok)
		if tok == "" {
			continue
		}
		on, ok := retryOnNames[tok]
		if !ok {
			return nil, fmt.Errorf("retry_on: %q is not a retry condition sluice-proxy implements (it does: 5xx, gateway-error, reset, connect-failure, refused-stream, retriable-4xx, retriable-status-codes, envoy-ratelimited, cancelled, deadline-exceeded, internal, resource-exhausted, unavailable)", tok)
		}
		rp.On |= on
	}
	if n := p.GetNumRetries(); n != nil {
		rp.NumRetries = int(n.GetValue())
	}
	if t := p.GetPerTryTimeout(); t != nil {
		d, err := duration(t)
		if err != nil {
			return nil, fmt.Errorf("per_try_timeout: %w", err)
		}
		rp.PerTryTimeout = d
	}
	for i, code := range p.GetRetriableStatusCodes() {
		if code < 100 || code > 599 {
			return nil, fmt.Errorf("retriable_status_codes[%d]: %d is not an HTTP status", i, code)
		}
		rp.StatusCodes = append(rp.StatusCodes, int(code))
	}
	for i, hp := range p.GetRetryHostPredicate() {
		tu := hp.GetTypedConfig().GetTypeUrl()
		if hp.GetName() != previousHostsPredicate && tu != previousHostsTypeURL {
			return nil, fmt.Errorf("retry_host_predicate[%d]: %q is not supported by sluice-proxy (only %s)", i, hp.GetName(), previousHostsPredicate)
		}
		if tu != "" && tu != previousHostsTypeURL {
			return nil, fmt.Errorf("retry_host_predicate[%d].typed_config: want a %s, got %q", i, previousHostsTypeURL, tu)
		}
		rp.PreviousHosts = true
	}
	if n := p.GetHostSelectionRetryMaxAttempts(); n != 0 {
		if n < 0 {
			return nil, fmt.Errorf("host_selection_retry_max_attempts: %d is negative", n)
		}
		rp.HostSelectionAttempts = int(n)
	}
	if bo := p.GetRetryBackOff(); bo != nil {
		if bo.GetBaseInterval() == nil {
			return nil, errors.New("retry_back_off.base_interval: required")
		}
		d, err := duration(bo.GetBaseInterval())
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("retry_back_off.base_interval: %v must be positive", bo.GetBaseInterval().AsDuration())
		}
		// Envoy rounds an interval below 1ms up to 1ms.
		rp.BaseInterval = max(d, time.Millisecond)
		if mi := bo.GetMaxInterval(); mi != nil {
			d, err := duration(mi)
			if err != nil || d < rp.BaseInterval {
				return nil, fmt.Errorf("retry_back_off.max_interval: %v must be at least base_interval", mi.AsDuration())
			}
			rp.MaxInterval = d
		}
	}
	if rp.MaxInterval == 0 {
		rp.MaxInterval = 10 * rp.BaseInterval
	}
	return rp, nil
}

// RetriesAnswer reports whether an upstream answer with status and headers h is retried, as
// Envoy's RetryStateImpl::wouldRetryFromHeaders decides. gRPC conditions read the
// grpc-status of a trailers-only answer.
func (p *RetryPolicy) RetriesAnswer(status int, h http.Header) bool {
	if _, ok := h["X-Envoy-Ratelimited"]; ok {
		return p.On&RetryEnvoyRateLimited != 0
	}
	switch {
	case p.On&Retry5xx != 0 && status >= 500 && status <= 599,
		p.On&RetryGatewayError != 0 && status >= 502 && status <= 504,
		p.On&RetryRetriable4xx != 0 && status == http.StatusConflict:
		return true
	}
	if p.On&RetryStatusCodes != 0 {
		for _, c := range p.StatusCodes {
			if c == status {
				return true
			}
		}
	}
	const grpcConditions = RetryGRPCCancelled | RetryGRPCDeadlineExceeded | RetryGRPCResourceExhausted |
		RetryGRPCInternal | RetryGRPCUnavailable
	if p.On&grpcConditions == 0 {
		return false
	}
	vs := h["Grpc-Status"]
	if len(vs) == 0 {
		return false
	}
	code, err := strconv.Atoi(vs[0])
	if err != nil {
		return false
	}
	switch code {
	case 1:
		return p.On&RetryGRPCCancelled != 0
	case 4:
		return p.On&RetryGRPCDeadlineExceeded != 0
	case 8:
		return p.On&RetryGRPCResourceExhausted != 0
	case 13:
		return p.On&RetryGRPCInternal != 0
	case 14:
		return p.On&RetryGRPCUnavailable != 0
	}
	return false
}

// RetriesFailure reports whether a try that failed with f is retried, as Envoy's
// RetryStateImpl::wouldRetryFromReset decides (a per-try timeout counts as a reset).
func (p *RetryPolicy) RetriesFailure(f Failure) bool {
	switch {
	case p.On&(Retry5xx|RetryGatewayError|RetryReset) != 0:
		return true
	case f == FailRefusedStream:
		return p.On&RetryRefusedStream != 0
	case f == FailConnect:
		return p.On&RetryConnectFailure != 0
	}
	return false
}

// BackOff returns the upper bound of the wait before retry n (1 for the first retry), from
// which the wait is drawn uniformly (full jitter): the base interval, doubled for each later
// retry, and the max interval once doubling would pass half of it, as Envoy's
// JitteredExponentialBackOffStrategy computes it.
func (p *RetryPolicy) BackOff(n int) time.Duration {
	d := p.BaseInterval
	for range n - 1 {
		if d >= p.MaxInterval/2 {
			return p.MaxInterval
		}
		d *= 2
	}
	return min(d, p.MaxInterval)
}
