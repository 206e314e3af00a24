package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	"fortio.org/fortio/fgrpc"
	"fortio.org/fortio/periodic"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
)

// Protocols of the data-plane arms, as results.json names them.
const (
	protoHTTP1 = "http1"
	protoGRPC  = "grpc"
)

// protocols lists the protocols in table order.
var protocols = []string{protoHTTP1, protoGRPC}

// protocolName is how the Markdown names a protocol.
func protocolName(p string) string {
	switch p {
	case protoHTTP1:
		return "HTTP/1.1"
	case protoGRPC:
		return "gRPC (h2c)"
	}
	return p
}

// upstreamAddrHeader is the response header in which the gRPC upstream names the local
// address the call arrived on, so that a route check can tell which hop delivered it.
const upstreamAddrHeader = "x-bench-upstream-addr"

// pingPayload is what the gRPC upstream answers every ping with: 1 KiB, like the HTTP
// upstream's body. Requests carry no payload, as the HTTP arms' GETs carry no body.
var pingPayload = strings.Repeat("s", 1024)

// pinger is the gRPC upstream's ping service (fortio's ping protocol, so that fortio's gRPC
// runner can load it).
type pinger struct {
	calls atomic.Int64
}

var _ fgrpc.PingServerServer = (*pinger)(nil)

// Ping answers 1 KiB and names the address the call arrived on.
func (p *pinger) Ping(ctx context.Context, in *fgrpc.PingMessage) (*fgrpc.PingMessage, error) {
	p.calls.Add(1)
	if pr, ok := peer.FromContext(ctx); ok && pr.LocalAddr != nil {
		// A failure here only loses the route check's evidence, which then fails loudly.
		_ = grpc.SetHeader(ctx, metadata.Pairs(upstreamAddrHeader, pr.LocalAddr.String()))
	}
	return &fgrpc.PingMessage{Seq: in.GetSeq(), Ts: time.Now().UnixNano(), Payload: pingPayload}, nil
}

// grpcUpstream is the gRPC application every gRPC arm ends at, serving h2c on several
// addresses.
type grpcUpstream struct {
	srv *grpc.Server
	lns []net.Listener
}

// startGRPCUpstream serves the ping service over h2c on each of addrs.
func startGRPCUpstream(log *slog.Logger, addrs ...string) (*grpcUpstream, error) {
	u := &grpcUpstream{srv: grpc.NewServer()}
	fgrpc.RegisterPingServerServer(u.srv, &pinger{})
	for _, a := range addrs {
		l, err := net.Listen("tcp", a)
		if err != nil {
			u.close()
			return nil, fmt.Errorf("gRPC upstream listen on %s: %w", a, err)
		}
		u.lns = append(u.lns, l)
	}
	for _, l := range u.lns {
		go func() {
			// Serve returns when close stops the server; anything else is worth a line.
			if err := u.srv.Serve(l); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				log.Debug("gRPC upstream stopped serving", "addr", l.Addr().String(), "error", err)
			}
		}()
	}
	return u, nil
}

func (u *grpcUpstream) close() {
	done := make(chan struct{})
	go func() {
		u.srv.GracefulStop()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		u.srv.Stop()
	}
	for _, l := range u.lns {
		l.Close()
	}
}

// runGRPCLoad sends rate unary pings per second over conns h2c connections (one call at a
// time on each, as the HTTP arms keep one request in flight per connection) for d, open
// loop with fortio's periodic runner, and returns the latency percentiles.
func runGRPCLoad(ctx context.Context, t target, rate, conns int, d time.Duration) (loadResult, error) {
	o := fgrpc.GRPCRunnerOptions{}
	o.RunnerOptions = periodic.RunnerOptions{
		QPS:         float64(rate),
		Duration:    d,
		NumThreads:  conns,
		Percentiles: []float64{50, 90, 99, 99.9},
		Resolution:  0.00001,
		Out:         io.Discard,
		Stop:        periodic.NewAborter(),
	}
	o.Destination = t.url
	// One stream per connection: Streams multiplies the goroutines and shares a connection
	// between them, which would make "connections" mean something else than for HTTP.
	o.Streams = 1
	o.UsePing = true
	o.AllowInitialErrors = true
	if t.host != "" {
		// fortio turns a "host" entry into the calls' :authority.
		o.Metadata = metadata.Pairs("host", t.host)
	}
	stop := context.AfterFunc(ctx, func() { o.Stop.Abort(false) })
	defer stop()
	res, err := fgrpc.RunGRPCTest(&o)
	if err != nil {
		return loadResult{}, fmt.Errorf("load %s (gRPC) at %d rps: %w", t.arm, rate, err)
	}
	if ctx.Err() != nil {
		return loadResult{}, ctx.Err()
	}
	h := res.DurationHistogram
	if h == nil || h.Count == 0 {
		return loadResult{}, fmt.Errorf("load %s (gRPC) at %d rps: no call completed", t.arm, rate)
	}
	return loadResult{ActualRPS: res.ActualQPS, Requests: h.Count, Errors: h.Count - res.RetCodes["SERVING"], Latency: latencyOf(h)}, nil
}

// checkGRPCRoute fails unless one ping to t answers the upstream's 1 KiB from the address
// t.via names: the hop that must have delivered it.
func checkGRPCRoute(ctx context.Context, t target) error {
	opts := []grpc.DialOption{grpc.WithTransportCredentials(insecure.NewCredentials())}
	if t.host != "" {
		opts = append(opts, grpc.WithAuthority(t.host))
	}
	conn, err := grpc.NewClient("passthrough:///"+t.url, opts...)
	if err != nil {
		return fmt.Errorf("%s (gRPC): %w", t.arm, err)
	}
	defer conn.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	var hdr metadata.MD
	out, err := fgrpc.NewPingServerClient(conn).Ping(cctx, &fgrpc.PingMessage{Seq: 1}, grpc.Header(&hdr))
	if err != nil {
		return fmt.Errorf("%s (gRPC): %w", t.arm, err)
	}
	if len(out.GetPayload()) != len(pingPayload) {
		return fmt.Errorf("%s (gRPC): answer of %d bytes, want %d", t.arm, len(out.GetPayload()), len(pingPayload))
	}
	if got := hdr.Get(upstreamAddrHeader); t.via != "" && (len(got) == 0 || got[0] != t.via) {
		return fmt.Errorf("%s (gRPC): the call reached the upstream on %v, want %s", t.arm, got, t.via)
	}
	return nil
}
