package listener

import (
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/proxy/internal/cluster"
	"github.com/sluicemesh/sluice/proxy/internal/route"
	"github.com/sluicemesh/sluice/proxy/internal/telemetry"
)

// Telemetry is how a Manager's listeners record the requests they handle (see
// Manager.UseTelemetry).
//
// Each listener reports as Istio's sidecars do: the outbound listener (virtualOutbound) and
// a gateway's listeners as reporter "source", with this proxy as the source and the endpoint
// that answered (its EDS metadata) as the destination; an inbound listener (inbound|<port>)
// as reporter "destination", with this proxy as the destination and the caller named by the
// meta.PeerHeader its sidecar added. Source-side listeners set that header on every request
// they send upstream to a mesh workload, replacing whatever the client sent (and remove it
// from requests to anything else); inbound listeners remove it before the application sees
// it.
type Telemetry struct {
	// Recorder counts the requests. Nil records nothing; the peer header is still exchanged.
	Recorder *telemetry.Recorder
	// Self is this proxy's workload.
	Self Peer
	// Service is the host name of the service this proxy serves, such as
	// "reviews.default.svc.cluster.local": the destination_service of inbound requests.
	Service string
}

// Peer names a workload, as telemetry labels it.
type Peer struct {
	Workload, Namespace, Version, App string
}

// maxPeerHeader bounds the peer header read: anything longer is ignored (the caller is
// labelled unknown), so a client cannot make label values arbitrarily long.
const maxPeerHeader = 512

// HeaderValue returns p as meta.PeerHeader carries it:
// "workload=reviews-v2;namespace=default;version=v2;app=reviews", empty fields left out.
func (p Peer) HeaderValue() string {
	var b strings.Builder
	for _, kv := range [...][2]string{{"workload", p.Workload}, {"namespace", p.Namespace},
		{"version", p.Version}, {"app", p.App}} {
		if kv[1] == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(';')
		}
		b.WriteString(kv[0])
		b.WriteByte('=')
		b.WriteString(kv[1])
	}
	return b.String()
}

// ParsePeer reads a meta.PeerHeader value. Unknown keys are skipped, so a newer sidecar may
// add some; a value that is too long or not key=value pairs gives the zero Peer. The strings
// returned share v's memory: nothing is allocated.
func ParsePeer(v string) Peer {
	var p Peer
	if len(v) > maxPeerHeader {
		return Peer{}
	}
	for v != "" {
		var kv string
		kv, v, _ = strings.Cut(v, ";")
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			return Peer{}
		}
		switch strings.TrimSpace(k) {
		case "workload":
			p.Workload = val
		case "namespace":
			p.Namespace = val
		case "version":
			p.Version = val
		case "app":
			p.App = val
		}
	}
	return p
}

// recording is a listener's share of the Telemetry: its role and what it adds per request.
type recording struct {
	rec      *telemetry.Recorder
	reporter telemetry.Reporter
	self     Peer
	service  string
	// peerValue is the header value sent upstream by source-side listeners, one shared slice
	// so that setting it allocates nothing.
	peerValue []string
}

// recordingFor returns what the listener named name records; nil without telemetry.
func recordingFor(t *Telemetry, name string) *recording {
	if t == nil {
		return nil
	}
	r := &recording{rec: t.Recorder, reporter: telemetry.ReporterSource, self: t.Self, service: t.Service}
	if strings.HasPrefix(name, "inbound|") {
		r.reporter = telemetry.ReporterDestination
	} else if v := t.Self.HeaderValue(); v != "" {
		r.peerValue = []string{v}
	}
	return r
}

// peerHeader sets or removes the peer header on a request going upstream to ep: a
// source-side listener names this proxy to a mesh workload (an endpoint EDS names), and
// sends no header elsewhere (a ServiceEntry's host learns nothing of the mesh); an inbound
// listener removes the caller's.
func (rc *recording) peerHeader(h http.Header, ep *cluster.Endpoint) {
	if rc == nil {
		return
	}
	if rc.reporter == telemetry.ReporterDestination || ep == nil || ep.Identity == nil {
		delete(h, meta.PeerHeader)
		return
	}
	if rc.peerValue != nil {
		h[meta.PeerHeader] = rc.peerValue
	}
}

// flagBits maps the listener's flags to telemetry's, by Flag.
var flagBits = [NumFlags]telemetry.Flags{
	FlagNoRoute:               telemetry.FlagNoRouteFound,
	FlagNoCluster:             telemetry.FlagNoClusterFound,
	FlagNoHealthyUpstream:     telemetry.FlagNoHealthyUpstream,
	FlagConnectFailure:        telemetry.FlagUpstreamConnectionFailure,
	FlagUpstreamTimeout:       telemetry.FlagUpstreamRequestTimeout,
	FlagUpstreamReset:         telemetry.FlagUpstreamRemoteReset,
	FlagUpstreamTermination:   telemetry.FlagUpstreamConnectionTermination,
	FlagUpstreamOverflow:      telemetry.FlagUpstreamOverflow,
	FlagRetryLimitExceeded:    telemetry.FlagUpstreamRetryLimitExceeded,
	FlagDelayInjected:         telemetry.FlagDelayInjected,
	FlagFaultInjected:         telemetry.FlagFaultInjected,
	FlagDownstreamTermination: telemetry.FlagDownstreamConnectionTermination,
	FlagRateLimited:           telemetry.FlagRateLimited,
}

func telemetryFlags(bits uint32) telemetry.Flags {
	var f telemetry.Flags
	for i := Flag(1); i < NumFlags && bits != 0; i++ {
		if bits&(1<<i) != 0 {
			f |= flagBits[i]
			bits &^= 1 << i
		}
	}
	return f
}

// countingBody counts the bytes of a request body of unknown length as they are read.
type countingBody struct {
	io.ReadCloser
	n int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.n += int64(n)
	return n, err
}

// startRecording prepares the exchange for record: the clock, and a counter on a body
// whose length is not known in advance (chunked uploads, gRPC streams).
func (ex *exchange) startRecording() {
	ex.start = time.Now()
	r := ex.r
	if r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody {
		ex.body = &countingBody{ReadCloser: r.Body}
		r.Body = ex.body
	}
}

// record counts the finished request in the Recorder. It runs deferred, so a request whose
// answer broke (the handler panics to abort it) is counted too.
func (ex *exchange) record() {
	rc := ex.h.rec
	if rc == nil || rc.rec == nil {
		return
	}
	r := ex.r
	q := telemetry.Request{
		Reporter:      rc.reporter,
		ResponseCode:  ex.status,
		Flags:         telemetryFlags(ex.flags),
		Duration:      time.Since(ex.start),
		RequestBytes:  r.ContentLength,
		ResponseBytes: ex.respBytes,
		Start:         ex.start,
		Method:        r.Method,
		Authority:     ex.req.Authority,
		Path:          ex.req.Path,
		ProtoMajor:    r.ProtoMajor,
	}
	if ex.body != nil {
		q.RequestBytes = ex.body.n
	}
	if ids := r.Header["X-Request-Id"]; len(ids) > 0 {
		q.RequestID = ids[0]
	}
	if isGRPC(r.Header) {
		q.Protocol = telemetry.ProtocolGRPC
		if ex.grpcCode >= 0 {
			q.GRPCStatus = uint32(ex.grpcCode)
		} else {
			q.GRPCStatus = uint32(grpcStatus(ex.status))
		}
	}
	if ex.rt != nil {
		q.RouteName = ex.rt.Name
	}
	if ex.ep != nil {
		q.UpstreamHost = ex.ep.Address
	}
	q.UpstreamCluster = ex.clusterName
	q.Detail = ex.detail

	if rc.reporter == telemetry.ReporterDestination {
		var src Peer
		if vs := r.Header[meta.PeerHeader]; len(vs) == 1 {
			src = ParsePeer(vs[0])
		}
		q.SourceWorkload, q.SourceNamespace, q.SourceVersion, q.SourceApp = src.Workload, src.Namespace, src.Version, src.App
		q.DestinationService = rc.service
		q.DestinationWorkload, q.DestinationNamespace = rc.self.Workload, rc.self.Namespace
		q.DestinationVersion, q.DestinationApp = rc.self.Version, rc.self.App
		q.Security = telemetry.SecurityNone
		if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
			q.Security = telemetry.SecurityMutualTLS
		}
	} else {
		q.SourceWorkload, q.SourceNamespace = rc.self.Workload, rc.self.Namespace
		q.SourceVersion, q.SourceApp = rc.self.Version, rc.self.App
		q.DestinationService = clusterHost(ex.clusterName)
		if ex.clusterName == "" && ex.rt != nil {
			// A filter (a fault abort, say) answered before a cluster was picked: the
			// destination is the service the route leads to, as Istio reports it.
			q.DestinationService = routeHost(&ex.rt.Action)
		}
		if ex.ep != nil && ex.ep.Identity != nil {
			id := ex.ep.Identity
			q.DestinationWorkload, q.DestinationNamespace = id.Workload, id.Namespace
			q.DestinationVersion, q.DestinationApp = id.Version, id.App
		}
	}
	rc.rec.Record(q)
}

// routeHost returns the one service host a route's clusters lead to, or "" when they lead to
// several (a split across services) or to none.
func routeHost(a *route.Action) string {
	if a.Cluster != "" {
		return clusterHost(a.Cluster)
	}
	host := ""
	for i := range a.Weighted {
		h := clusterHost(a.Weighted[i].Name)
		if host != "" && h != host {
			return ""
		}
		host = h
	}
	return host
}

// clusterHost returns the host of an Istio cluster name ("outbound|9080|v2|reviews.default.svc.cluster.local"),
// or "" for another name.
func clusterHost(name string) string {
	if i := strings.LastIndexByte(name, '|'); i >= 0 {
		return name[i+1:]
	}
	return ""
}

// grpcStatusOf reads the grpc-status an upstream answer carried, in its trailers or (a
// trailers-only answer) its headers; -1 for none.
func grpcStatusOf(res *http.Response) int {
	vs := res.Trailer["Grpc-Status"]
	if len(vs) == 0 {
		vs = res.Header["Grpc-Status"]
	}
	if len(vs) == 0 {
		return -1
	}
	n, err := strconv.Atoi(vs[0])
	if err != nil || n < 0 {
		return -1
	}
	return n
}
