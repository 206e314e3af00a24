package filter

import (
	"errors"
	"fmt"
	"time"

	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"

	"github.com/sluicemesh/sluice/proxy/internal/match"
)

// FaultName is the name of Envoy's fault filter, under which routes configure it in
// typed_per_filter_config.
const FaultName = "envoy.filters.http.fault"

// Fault is a compiled HTTPFault: a delay and an abort, each injected into its own share of
// the requests whose headers match. It is immutable.
//
// As in Envoy, the two are independent draws: a request may be delayed, aborted, both (the
// abort comes after the delay) or neither. The delay happens before the router, so it does
// not count against the route timeout, which starts when the request is forwarded. An abort
// answers "fault filter abort" with the configured status; a gRPC request gets HTTP 200 with
// the gRPC status (configured, or mapped from the HTTP one) in a trailers-only response. An
// aborted request never reaches the router, so it is never retried.
type Fault struct {
	headers []match.Header

	delay    time.Duration
	delayPct Percent

	abortHTTP int // 0 for a gRPC abort
	abortGRPC int // -1 for an HTTP abort
	abortPct  Percent
}

// CompileFault compiles f. The error names the offending field relative to f.
func CompileFault(f *faultv3.HTTPFault) (*Fault, error) {
	c := &Fault{abortGRPC: -1}
	hs, err := match.CompileHeaders(f.GetHeaders())
	if err != nil {
		return nil, fmt.Errorf("headers%w", err)
	}
	c.headers = hs
	if d := f.GetDelay(); d != nil {
		fd := d.GetFixedDelay()
		if fd == nil {
			return nil, errors.New("delay.fixed_delay: required (header_delay is not supported by sluice-proxy)")
		}
		if err := fd.CheckValid(); err != nil || fd.AsDuration() < 0 {
			return nil, fmt.Errorf("delay.fixed_delay: %v is not a duration of 0 or more", fd.AsDuration())
		}
		c.delay = fd.AsDuration()
		if c.delayPct, err = CompilePercent(d.GetPercentage()); err != nil {
			return nil, fmt.Errorf("delay.percentage.%w", err)
		}
	}
	if a := f.GetAbort(); a != nil {
		switch e := a.GetErrorType().(type) {
		case *faultv3.FaultAbort_HttpStatus:
			if e.HttpStatus < 200 || e.HttpStatus >= 600 {
				return nil, fmt.Errorf("abort.http_status: %d is not an HTTP status (200-599)", e.HttpStatus)
			}
			c.abortHTTP = int(e.HttpStatus)
		case *faultv3.FaultAbort_GrpcStatus:
			c.abortGRPC = int(e.GrpcStatus)
		default:
			return nil, errors.New("abort: one of http_status or grpc_status is required (header_abort is not supported by sluice-proxy)")
		}
		if c.abortPct, err = CompilePercent(a.GetPercentage()); err != nil {
			return nil, fmt.Errorf("abort.percentage.%w", err)
		}
	}
	return c, nil
}

// Applies reports whether the fault considers req at all: its headers all match.
func (f *Fault) Applies(req *match.Request) bool { return match.All(f.headers, req) }

// Delay draws whether to delay the request, and for how long. A 0% delay draws nothing.
func (f *Fault) Delay() (time.Duration, bool) {
	if f.delay <= 0 || !f.delayPct.Hit() {
		return 0, false
	}
	return f.delay, true
}

// Abort draws whether to abort the request. It returns the HTTP status and, for a gRPC abort,
// the gRPC status (-1 otherwise); a gRPC abort's HTTP status is 200, as in Envoy.
func (f *Fault) Abort() (httpStatus, grpcStatus int, ok bool) {
	if (f.abortHTTP == 0 && f.abortGRPC < 0) || !f.abortPct.Hit() {
		return 0, 0, false
	}
	if f.abortGRPC >= 0 {
		return 200, f.abortGRPC, true
	}
	return f.abortHTTP, -1, true
}

// Describe says in words what the fault does, for x-sluice-reason.
func (f *Fault) Describe(httpStatus, grpcStatus int) string {
	if grpcStatus >= 0 {
		return fmt.Sprintf("fault injected: abort with gRPC status %d for %s of requests", grpcStatus, f.abortPct)
	}
	return fmt.Sprintf("fault injected: abort with HTTP %d for %s of requests", httpStatus, f.abortPct)
}
