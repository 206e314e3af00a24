package bookinfo

import "net/http"

// propagatedHeaders are the request headers every Bookinfo service copies
// from an inbound request onto its outbound calls: the union of the lists in
// Istio's productpage and reviews, plus the single-header "b3". Tracing needs
// them to stitch spans into one trace; routing needs end-user ("jason").
var propagatedHeaders = []string{
	// x-request-id ties access logs together and drives trace sampling.
	"x-request-id",
	// Lightstep.
	"x-ot-span-context",
	// Datadog.
	"x-datadog-trace-id",
	"x-datadog-parent-id",
	"x-datadog-sampling-priority",
	// W3C Trace Context.
	"traceparent",
	"tracestate",
	// Google Cloud Trace and gRPC binary trace context.
	"x-cloud-trace-context",
	"grpc-trace-bin",
	// Zipkin B3, multi-header and single-header forms.
	"x-b3-traceid",
	"x-b3-spanid",
	"x-b3-parentspanid",
	"x-b3-sampled",
	"x-b3-flags",
	"b3",
	// SkyWalking.
	"sw8",
	// Application and session headers.
	"end-user",
	"user-agent",
	"cookie",
	"authorization",
	"jwt",
}

// forwardHeaders returns the propagated headers of an inbound request, every
// value of each, ready to send on an outbound call.
func forwardHeaders(in http.Header) http.Header {
	out := make(http.Header, len(propagatedHeaders))
	for _, name := range propagatedHeaders {
		for _, v := range in.Values(name) {
			out.Add(name, v)
		}
	}
	return out
}
