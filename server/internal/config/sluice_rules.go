package config

import (
	"time"
)

// Rules for the sluice.dev kinds.

func checkFaultExperiment(e errorSink, s *FaultExperimentSpec) {
	if s.Host == "" {
		e.add("spec.host", "host is required: name the target service, such as ratings")
	} else {
		checkHost(e, "spec.host", s.Host, false)
	}
	if m := s.Match; m != nil {
		for _, name := range sortedStringKeys(m.Headers) {
			p := mapKey("spec.match.headers", name)
			checkHeaderName(e, p, name, true)
			checkSluiceStringMatch(e, p, m.Headers[name])
		}
		checkLabels(e, "spec.match.sourceLabels", m.SourceLabels)
	}
	if s.Delay == nil && s.Abort == nil {
		e.add("spec", "a FaultExperiment needs a delay, an abort, or both")
	}
	if d := s.Delay; d != nil {
		if d.FixedDelay <= 0 {
			e.addf("spec.delay.fixedDelay", "fixedDelay must be more than 0, such as 2s (got %s)", d.FixedDelay)
		}
		if d.Percentage != nil {
			checkPercentage(e, "spec.delay.percentage", *d.Percentage)
		}
	}
	if a := s.Abort; a != nil {
		switch {
		case a.HTTPStatus != 0 && a.GRPCStatus != "":
			e.add("spec.abort", "httpStatus and grpcStatus cannot both be set: keep one")
		case a.HTTPStatus != 0:
			checkHTTPStatus(e, "spec.abort.httpStatus", a.HTTPStatus, "abort code")
		case a.GRPCStatus != "":
			checkGRPCStatus(e, "spec.abort.grpcStatus", a.GRPCStatus)
		default:
			e.add("spec.abort", "set httpStatus (such as 503) or grpcStatus (such as UNAVAILABLE)")
		}
		if a.Percentage != nil {
			checkPercentage(e, "spec.abort.percentage", *a.Percentage)
		}
	}
	switch {
	case s.Duration == 0:
		e.add("spec.duration", "duration is required: how long the fault lasts, such as 10m")
	case s.Duration < 0:
		e.addf("spec.duration", "duration %s is negative: use more than 0, such as 10m", s.Duration)
	case s.Duration > MaxExperimentDuration:
		e.addf("spec.duration", "duration %s is over the limit of %s: run a shorter experiment", s.Duration, time.Duration(MaxExperimentDuration))
	}
	if g := s.Guard; g != nil {
		switch {
		case g.MaxErrorRate == nil:
			e.add("spec.guard.maxErrorRate", "maxErrorRate is required: the highest tolerated share of failed requests, such as 0.05")
		case !(*g.MaxErrorRate >= 0 && *g.MaxErrorRate <= 1):
			e.addf("spec.guard.maxErrorRate", "maxErrorRate %v is out of range: it is a fraction from 0 to 1 (0.05 is 5 %%)", *g.MaxErrorRate)
		}
		if g.Window < 0 {
			e.addf("spec.guard.window", "window %s is negative: use more than 0, such as 30s (default %s)", g.Window, time.Duration(DefaultGuardWindow))
		}
	}
}

func checkSluiceStringMatch(e errorSink, path string, m StringMatch) {
	set := 0
	for _, s := range []string{m.Exact, m.Prefix, m.Regex} {
		if s != "" {
			set++
		}
	}
	switch {
	case set == 0:
		e.add(path, "set one of exact, prefix or regex")
	case set > 1:
		e.add(path, "set only one of exact, prefix or regex")
	case m.Regex != "":
		checkRegex(e, field(path, "regex"), m.Regex)
	}
}

func checkRateLimit(e errorSink, s *RateLimitSpec) {
	if s.Selector != nil {
		checkLabels(e, "spec.selector.matchLabels", s.Selector.MatchLabels)
	}
	if r := s.Route; r != nil {
		if r.URIPrefix != "" && r.URIPrefix[0] != '/' {
			e.addf("spec.route.uriPrefix", "uriPrefix %q must start with /", r.URIPrefix)
		}
		for _, name := range sortedStringKeys(r.Headers) {
			checkHeaderName(e, mapKey("spec.route.headers", name), name, true)
		}
	}
	if s.RequestsPerUnit <= 0 {
		e.addf("spec.requestsPerUnit", "requestsPerUnit must be more than 0 (got %d): how many requests each unit of time admits", s.RequestsPerUnit)
	}
	switch {
	case s.Unit == "":
		e.add("spec.unit", "unit is required: second, minute or hour")
	case s.Unit.Period() == 0:
		e.addf("spec.unit", "unit %q is not supported: use second, minute or hour", s.Unit)
	}
	if s.Burst != nil && *s.Burst < 0 {
		e.addf("spec.burst", "burst %d is negative: use 0 or more (when omitted it is requestsPerUnit)", *s.Burst)
	}
	if s.PerHeader != "" {
		checkHeaderName(e, "spec.perHeader", s.PerHeader, false)
	}
}
