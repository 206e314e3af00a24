package config

import (
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/durationpb"

	networking "istio.io/api/networking/v1alpha3"
)

// Small checks shared by the kinds' rules. Each returns nothing and reports through e.

func durationOf(m protoreflect.Message) time.Duration {
	md := m.Descriptor()
	d := &durationpb.Duration{
		Seconds: m.Get(md.Fields().ByName("seconds")).Int(),
		Nanos:   int32(m.Get(md.Fields().ByName("nanos")).Int()),
	}
	return d.AsDuration()
}

// hostProblem says what is wrong with a host name, or returns "". A wildcard is "*" alone or
// a leading "*." label, and is refused unless wildcardOK. IP addresses are accepted.
func hostProblem(host string, wildcardOK bool) string {
	name := host
	switch {
	case host == "":
		return "host is empty: name a service, such as reviews"
	case host == "*" && wildcardOK:
		return ""
	case strings.Contains(host, "*") && !wildcardOK:
		return fmt.Sprintf("host %q has a wildcard, which is not allowed here: name one service, such as reviews", host)
	case strings.HasPrefix(host, "*."):
		name = host[2:]
	case strings.Contains(host, "*"):
		return fmt.Sprintf("host %q is not valid: a wildcard must be the whole first label, as in *.example.com", host)
	}
	if _, err := netip.ParseAddr(name); err == nil && name == host {
		return ""
	}
	if len(name) > 253 {
		return fmt.Sprintf("host %q is too long: at most 253 characters", host)
	}
	for _, label := range strings.Split(name, ".") {
		if !isHostLabel(label) {
			return fmt.Sprintf("host %q is not a valid DNS name: use a name such as reviews or reviews.default.svc.cluster.local", host)
		}
	}
	return ""
}

func checkHost(e errorSink, path, host string, wildcardOK bool) {
	if msg := hostProblem(host, wildcardOK); msg != "" {
		e.add(path, msg)
	}
}

// checkRegex checks a regular expression the proxy will compile. Envoy uses RE2, whose syntax
// Go's regexp shares.
func checkRegex(e errorSink, path, re string) {
	if _, err := regexp.Compile(re); err != nil {
		e.addf(path, "invalid regular expression %q: %s (the syntax is RE2)", re, strings.TrimPrefix(err.Error(), "error parsing regexp: "))
	}
}

// checkStringMatch checks an Istio StringMatch. emptyOK allows {}, which in header and query
// parameter matches means "present, with any value".
func checkStringMatch(e errorSink, path string, sm *networking.StringMatch, emptyOK bool) {
	if sm == nil {
		return
	}
	switch m := sm.MatchType.(type) {
	case nil:
		if !emptyOK {
			e.add(path, "set one of exact, prefix or regex")
		}
	case *networking.StringMatch_Regex:
		checkRegex(e, field(path, "regex"), m.Regex)
	}
}

const headerTokenChars = "!#$%&'*+-.^_`|~"

func isHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte(headerTokenChars, c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// checkHeaderName checks the name of an HTTP header. pseudoOK allows HTTP/2 pseudo-headers
// such as :authority, which can be matched but not rewritten.
func checkHeaderName(e errorSink, path, name string, pseudoOK bool) {
	if pseudoOK && strings.HasPrefix(name, ":") {
		name = name[1:]
	}
	if !isHeaderName(name) {
		e.addf(path, "%q is not a valid HTTP header name: use letters, digits and '-', such as x-request-id", name)
	}
}

func checkPercentage(e errorSink, path string, v float64) {
	if !(v >= 0 && v <= 100) { // also refuses NaN
		e.addf(path, "percentage %v is out of range: use 0 to 100", v)
	}
}

func checkPort(e errorSink, path string, n uint32) {
	if n < 1 || n > 65535 {
		e.addf(path, "port %d is out of range: use 1 to 65535", n)
	}
}

func checkNotNegative(e errorSink, path string, n int32) {
	if n < 0 {
		e.addf(path, "%d is negative: use 0 or more", n)
	}
}

func checkPositiveDuration(e errorSink, path string, d *durationpb.Duration) {
	if d != nil && d.AsDuration() == 0 {
		e.add(path, "duration must be more than 0, such as 1s")
	}
}

// checkExportTo checks an exportTo list: "." (this namespace), "*" (all) or namespace names.
func checkExportTo(e errorSink, path string, list []string) {
	for i, ns := range list {
		if ns != "." && ns != "*" && !isDNS1123Label(ns) {
			e.addf(index(path, i), "%q is not a namespace: use \".\" for this namespace, \"*\" for all, or a namespace name", ns)
		}
	}
}

// checkAddressOrCIDR accepts an IP address or a CIDR block.
func checkAddressOrCIDR(e errorSink, path, s string) {
	if _, err := netip.ParsePrefix(s); err == nil {
		return
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return
	}
	e.addf(path, "%q is not an IP address or CIDR block: write one such as 10.0.0.0/8 or 192.168.1.7", s)
}

// grpcCodes are the status names a gRPC abort may use.
var grpcCodes = []string{
	"OK", "CANCELLED", "UNKNOWN", "INVALID_ARGUMENT", "DEADLINE_EXCEEDED", "NOT_FOUND",
	"ALREADY_EXISTS", "PERMISSION_DENIED", "RESOURCE_EXHAUSTED", "FAILED_PRECONDITION",
	"ABORTED", "OUT_OF_RANGE", "UNIMPLEMENTED", "INTERNAL", "UNAVAILABLE", "DATA_LOSS",
	"UNAUTHENTICATED",
}

func checkGRPCStatus(e errorSink, path, status string) {
	if !slices.Contains(grpcCodes, status) {
		e.addf(path, "unknown gRPC status %q: use a code name such as UNAVAILABLE (one of %s)", status, strings.Join(grpcCodes, ", "))
	}
}

func checkHTTPStatus(e errorSink, path string, code int32, what string) {
	if code < 200 || code > 599 {
		e.addf(path, "%s %d is not a valid HTTP status: use 200 to 599, such as 503", what, code)
	}
}
