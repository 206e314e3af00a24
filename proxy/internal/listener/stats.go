package listener

import "sync/atomic"

// Stats counts what the listeners did. The zero value is ready; all fields are safe for
// concurrent use.
type Stats struct {
	// DownstreamRequests counts every request a listener received.
	DownstreamRequests atomic.Uint64
	// UpstreamRequests counts requests sent to an upstream endpoint.
	UpstreamRequests atomic.Uint64
	// UpstreamErrors counts upstream requests that failed: connect failures, resets and
	// timeouts.
	UpstreamErrors atomic.Uint64
	// Flags counts local replies and failures by Envoy response flag.
	NoRoute           atomic.Uint64 // NR
	NoCluster         atomic.Uint64 // NC
	NoHealthyUpstream atomic.Uint64 // UH
	ConnectFailure    atomic.Uint64 // UF
	UpstreamTimeout   atomic.Uint64 // UT
	UpstreamReset     atomic.Uint64 // UR: the upstream failed after the response began
	DownstreamClosed  atomic.Uint64 // DC: the client went away first
}
