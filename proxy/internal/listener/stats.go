package listener

import "sync/atomic"

// Flag is an Envoy response flag: why a request did not get a plain upstream answer. The
// proxy counts each in Stats and logs it with every local reply, as Envoy's access log
// %RESPONSE_FLAGS% field would show it.
type Flag uint8

// The response flags sluice-proxy sets, with Envoy's short names.
const (
	FlagNone                  Flag = iota
	FlagNoRoute                    // NR: no route matched
	FlagNoCluster                  // NC: the route's cluster does not exist
	FlagNoHealthyUpstream          // UH: the cluster has no healthy endpoint
	FlagConnectFailure             // UF: connecting to the upstream failed
	FlagUpstreamTimeout            // UT: the route timeout or a per-try timeout passed
	FlagUpstreamReset              // UR: the upstream reset the stream
	FlagUpstreamTermination        // UC: the upstream connection closed before a response
	FlagUpstreamOverflow           // UO: a circuit breaker of the cluster was full
	FlagRetryLimitExceeded         // URX: retries were exhausted
	FlagDelayInjected              // DI: the fault filter delayed the request
	FlagFaultInjected              // FI: the fault filter aborted the request
	FlagDownstreamTermination      // DC: the client went away first
	FlagRateLimited                // RL: the local rate limit filter refused the request
	NumFlags
)

var flagNames = [NumFlags]string{"-", "NR", "NC", "UH", "UF", "UT", "UR", "UC", "UO", "URX", "DI", "FI", "DC", "RL"}

// String returns the flag's Envoy name, such as "UO".
func (f Flag) String() string { return flagNames[f] }

// Stats counts what the listeners did. The zero value is ready; all fields are safe for
// concurrent use.
type Stats struct {
	// DownstreamRequests counts every request a listener received.
	DownstreamRequests atomic.Uint64
	// UpstreamRequests counts requests (each try, each mirror) sent to an upstream endpoint.
	UpstreamRequests atomic.Uint64
	// UpstreamErrors counts upstream requests that failed: connect failures, resets and
	// timeouts.
	UpstreamErrors atomic.Uint64
	// UpstreamResetAfterHeaders counts upstream answers that broke after their headers were
	// sent on; the client sees a broken stream.
	UpstreamResetAfterHeaders atomic.Uint64

	// Retries counts retries sent; RetryOverflow those the cluster's max_retries circuit
	// breaker refused; RetryLimitExceeded answers still failing after the last retry.
	Retries, RetryOverflow, RetrySuccess atomic.Uint64

	// Mirrors counts mirrored requests sent, MirrorsDropped those not sent because too many
	// were in flight, MirrorsSkipped those not sent because the body was too large (or the
	// mirror cluster was missing or empty), MirrorsFailed those that got no answer.
	Mirrors, MirrorsDropped, MirrorsSkipped, MirrorsFailed atomic.Uint64

	// CORSPreflights counts preflight requests the CORS filter answered; CORSOriginValid and
	// CORSOriginInvalid count requests with an Origin the policy allowed or not.
	CORSPreflights, CORSOriginValid, CORSOriginInvalid atomic.Uint64

	// DownstreamTLS counts inbound connections that arrived over TLS (their handshake may
	// still fail); PlaintextRefused counts plaintext connections a TLS-only (STRICT)
	// listener closed.
	DownstreamTLS, PlaintextRefused atomic.Uint64

	// RBACDenied counts requests an RBAC filter refused; RBACLogged requests an RBAC LOG
	// (AUDIT) filter's policies matched.
	RBACDenied, RBACLogged atomic.Uint64

	// flags counts requests by response flag.
	flags [NumFlags]atomic.Uint64
}

// Flagged returns how many requests were given flag f.
func (s *Stats) Flagged(f Flag) uint64 { return s.flags[f].Load() }

func (s *Stats) flag(f Flag) {
	if f != FlagNone {
		s.flags[f].Add(1)
	}
}
