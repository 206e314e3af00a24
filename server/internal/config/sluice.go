package config

import (
	"encoding/json"
	"fmt"
	"time"
)

// Duration is a time.Duration written in JSON and YAML as a Go duration string, such as "30s",
// "1m30s" or "500ms".
type Duration time.Duration

// String returns the duration in Go syntax, e.g. "1m30s".
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalJSON writes the duration as a string such as "1m30s".
func (d Duration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

// UnmarshalJSON reads a string such as "1m30s".
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"30s\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// FaultExperimentSpec is the spec of a FaultExperiment (sluice.dev/v1alpha1): a fault that is
// overlaid on the routes to one host for a bounded time, and lifted early if its guard trips.
//
//	apiVersion: sluice.dev/v1alpha1
//	kind: FaultExperiment
//	metadata: {name: ratings-slow, namespace: default}
//	spec:
//	  host: ratings
//	  match: {headers: {end-user: {exact: jason}}}
//	  delay: {fixedDelay: 2s, percentage: 50}
//	  duration: 10m
//	  guard: {maxErrorRate: 0.05, window: 30s}
type FaultExperimentSpec struct {
	// Host is the target service, resolved like a VirtualService destination host (a short
	// name is in the experiment's namespace). Required.
	Host string `json:"host"`
	// Match narrows the fault to some requests; nil means every request to Host.
	Match *FaultMatch `json:"match,omitempty"`
	// Delay and Abort are the fault; at least one is required.
	Delay *FaultDelay `json:"delay,omitempty"`
	Abort *FaultAbort `json:"abort,omitempty"`
	// Start is when the fault begins. Nil means when the experiment is applied: the server,
	// which owns the clock, sets it then; this package never reads the time.
	Start *time.Time `json:"start,omitempty"`
	// Duration is how long the fault lasts from Start: more than 0, at most 24h. Required.
	Duration Duration `json:"duration"`
	// Guard ends the experiment early when the error rate climbs; nil means no guard.
	Guard *FaultGuard `json:"guard,omitempty"`
}

// FaultMatch selects the requests a FaultExperiment applies to. All given conditions must hold.
type FaultMatch struct {
	// Headers maps a request header name to how its value must match.
	Headers map[string]StringMatch `json:"headers,omitempty"`
	// SourceLabels selects the calling workloads by their labels; empty means any caller.
	SourceLabels map[string]string `json:"sourceLabels,omitempty"`
}

// StringMatch matches a string like Istio's StringMatch: exactly one of Exact, Prefix or Regex
// (RE2 syntax, matching the whole value) is set.
type StringMatch struct {
	Exact  string `json:"exact,omitempty"`
	Prefix string `json:"prefix,omitempty"`
	Regex  string `json:"regex,omitempty"`
}

// FaultDelay delays requests before forwarding them.
type FaultDelay struct {
	// FixedDelay is how long to wait: more than 0. Required.
	FixedDelay Duration `json:"fixedDelay"`
	// Percentage is the share of matching requests delayed, 0 to 100. Nil means 100: a
	// parsed spec always has it set.
	Percentage *float64 `json:"percentage,omitempty"`
}

// FaultAbort answers requests with an error instead of forwarding them. Exactly one of
// HTTPStatus and GRPCStatus is set.
type FaultAbort struct {
	// HTTPStatus is the status to answer, 200 to 599.
	HTTPStatus int32 `json:"httpStatus,omitempty"`
	// GRPCStatus is a gRPC status name such as "UNAVAILABLE", for gRPC requests.
	GRPCStatus string `json:"grpcStatus,omitempty"`
	// Percentage is the share of matching requests aborted, 0 to 100. Nil means 100: a
	// parsed spec always has it set.
	Percentage *float64 `json:"percentage,omitempty"`
}

// FaultGuard stops an experiment when the target's error rate goes over a limit.
type FaultGuard struct {
	// MaxErrorRate is the highest tolerated share of failed requests (5xx answers), as a
	// fraction from 0 to 1 (0.05 is 5 %). Required.
	MaxErrorRate *float64 `json:"maxErrorRate"`
	// Window is the period the error rate is measured over. Zero means DefaultGuardWindow:
	// a parsed spec always has it set.
	Window Duration `json:"window,omitempty"`
}

// DefaultGuardWindow is the window of a FaultGuard that names none: long enough to hold a few
// requests of a quiet service, short enough to stop a bad experiment quickly.
const DefaultGuardWindow = Duration(10 * time.Second)

// MaxExperimentDuration bounds FaultExperimentSpec.Duration, so that a forgotten experiment
// cannot outlive a working day.
const MaxExperimentDuration = Duration(24 * time.Hour)

// RateLimitUnit is the period RateLimitSpec.RequestsPerUnit counts over.
type RateLimitUnit string

// The accepted rate limit units.
const (
	UnitSecond RateLimitUnit = "second"
	UnitMinute RateLimitUnit = "minute"
	UnitHour   RateLimitUnit = "hour"
)

// Period returns the length of the unit, or 0 for an unknown unit.
func (u RateLimitUnit) Period() time.Duration {
	switch u {
	case UnitSecond:
		return time.Second
	case UnitMinute:
		return time.Minute
	case UnitHour:
		return time.Hour
	}
	return 0
}

// RateLimitSpec is the spec of a RateLimit (sluice.dev/v1alpha1): a local token bucket in the
// sidecars of the selected workloads, applied to their inbound requests. A request over the
// limit is answered 429.
//
//	apiVersion: sluice.dev/v1alpha1
//	kind: RateLimit
//	metadata: {name: productpage, namespace: default}
//	spec:
//	  selector: {matchLabels: {app: productpage}}
//	  route: {uriPrefix: /api/}
//	  requestsPerUnit: 100
//	  unit: minute
//	  burst: 20
//	  perHeader: x-user
type RateLimitSpec struct {
	// Selector picks the workloads by label; nil or empty means every workload of the
	// RateLimit's namespace.
	Selector *WorkloadSelector `json:"selector,omitempty"`
	// Route narrows the limit to some requests; nil means all of them.
	Route *RateLimitRoute `json:"route,omitempty"`
	// RequestsPerUnit is how many requests are admitted per Unit: more than 0. Required.
	RequestsPerUnit int64 `json:"requestsPerUnit"`
	// Unit is second, minute or hour. Required.
	Unit RateLimitUnit `json:"unit"`
	// Burst is the size of the bucket: the most requests admitted at once after an idle
	// period. 0 admits nothing. Nil means RequestsPerUnit: a parsed spec always has it set.
	Burst *int64 `json:"burst,omitempty"`
	// PerHeader, when set, keeps one bucket per distinct value of this request header (a
	// request without the header shares the bucket of the empty value). Empty means one
	// bucket per sidecar.
	PerHeader string `json:"perHeader,omitempty"`
}

// WorkloadSelector selects workloads by their labels.
type WorkloadSelector struct {
	MatchLabels map[string]string `json:"matchLabels,omitempty"`
}

// RateLimitRoute selects the requests a RateLimit counts. All given conditions must hold.
type RateLimitRoute struct {
	// URIPrefix matches requests whose path starts with it; it must start with "/".
	URIPrefix string `json:"uriPrefix,omitempty"`
	// Headers maps a header name to the exact value it must have.
	Headers map[string]string `json:"headers,omitempty"`
}

// provision fills the defaults a parsed FaultExperiment spec carries, so that the stored spec
// says what will happen.
func (s *FaultExperimentSpec) provision() {
	if s.Delay != nil && s.Delay.Percentage == nil {
		s.Delay.Percentage = ptr(100.0)
	}
	if s.Abort != nil && s.Abort.Percentage == nil {
		s.Abort.Percentage = ptr(100.0)
	}
	if s.Guard != nil && s.Guard.Window == 0 {
		s.Guard.Window = DefaultGuardWindow
	}
}

// provision fills the defaults a parsed RateLimit spec carries.
func (s *RateLimitSpec) provision() {
	if s.Burst == nil {
		s.Burst = ptr(s.RequestsPerUnit)
	}
}

func ptr[T any](v T) *T { return &v }
