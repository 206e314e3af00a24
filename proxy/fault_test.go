package proxy

import (
	"context"
	"math"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
)

// faultFilter is the fault filter as Istio puts it in every HCM: an empty HTTPFault, so only
// the routes' configs inject anything.
func faultFilter() *hcmv3.HttpFilter {
	return &hcmv3.HttpFilter{Name: "envoy.filters.http.fault",
		ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(&faultv3.HTTPFault{})}}
}

func percentOf(p float64) *typev3.FractionalPercent {
	// Istio's translation: a percentage with 4 decimals, in millionths.
	return &typev3.FractionalPercent{Numerator: uint32(p * 10_000), Denominator: typev3.FractionalPercent_MILLION}
}

func routeFault(f *faultv3.HTTPFault) map[string]*anypb.Any {
	return map[string]*anypb.Any{"envoy.filters.http.fault": mustAny(f)}
}

func httpAbort(status uint32, p float64) *faultv3.FaultAbort {
	return &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: status}, Percentage: percentOf(p)}
}

func fixedDelay(d time.Duration, p float64) *faultcommonv3.FaultDelay {
	return &faultcommonv3.FaultDelay{FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d)},
		Percentage: percentOf(p)}
}

func TestFaultInjection(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	addr := nextAddr()
	var hits atomic.Int64
	app := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Write([]byte("app"))
	}))
	grpcBackend := startGRPCServer(t)
	w := world{addr: addr,
		services: []service{
			{domains: []string{"details"}, backends: []backend{{cluster: "details", weight: 1, endpoints: []string{app}}}},
			{domains: []string{"ratings"}, backends: []backend{{cluster: "ratings", weight: 1, endpoints: []string{app}}}},
			{domains: []string{"slow"}, backends: []backend{{cluster: "slow", weight: 1, endpoints: []string{app}}}},
			{domains: []string{"flaky"}, backends: []backend{{cluster: "flaky", weight: 1, endpoints: []string{app}}}},
			{domains: []string{"grpc-svc:50051"}, h2: true, backends: []backend{{cluster: "grpc", weight: 1, endpoints: []string{grpcBackend}}}},
		},
		httpFilters: []*hcmv3.HttpFilter{faultFilter()},
		mutate: func(rc *routev3.RouteConfiguration) {
			// fault-injection-details-v1.yaml: abort 555 for everyone.
			rc.VirtualHosts[0].Routes[0].TypedPerFilterConfig = routeFault(&faultv3.HTTPFault{Abort: httpAbort(555, 100)})
			// An abort for jason only, selected by the fault's own header match.
			rc.VirtualHosts[1].Routes[0].TypedPerFilterConfig = routeFault(&faultv3.HTTPFault{Abort: httpAbort(500, 100),
				Headers: []*routev3.HeaderMatcher{{Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "jason"}}}})
			// A delay longer than the route timeout: the timeout starts after the delay.
			slow := rc.VirtualHosts[2].Routes[0]
			slow.TypedPerFilterConfig = routeFault(&faultv3.HTTPFault{Delay: fixedDelay(700*time.Millisecond, 100)})
			slow.GetRoute().Timeout = durationpb.New(400 * time.Millisecond)
			// 30% aborted, 50% delayed by 1ms, independently.
			rc.VirtualHosts[3].Routes[0].TypedPerFilterConfig = routeFault(&faultv3.HTTPFault{
				Abort: httpAbort(503, 30), Delay: fixedDelay(time.Millisecond, 50)})
			// gRPC: abort with UNAVAILABLE.
			rc.VirtualHosts[4].Routes[0].TypedPerFilterConfig = routeFault(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
				ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: uint32(codes.Unavailable)}, Percentage: percentOf(100)}})
		},
	}
	cp.set(nodeID(addr, "test"), w.snapshot("1"))
	p := startProxy(t, cp, addr)

	t.Run("abort", func(t *testing.T) {
		res, body, err := p.get("details", "/api/v1/products/0")
		if err != nil || res.StatusCode != 555 || body != "fault filter abort" {
			t.Fatalf("%v %v %q, want 555 fault filter abort", res, err, body)
		}
		if reason := res.Header.Get("X-Sluice-Reason"); reason != "fault injected: abort with HTTP 555 for 100% of requests" {
			t.Errorf("x-sluice-reason %q", reason)
		}
		if hits.Load() != 0 {
			t.Error("an aborted request reached the upstream")
		}
	})

	t.Run("the fault's headers select who is aborted", func(t *testing.T) {
		req := p.outboundRequest("GET", "ratings", "/ratings/0")
		req.Header.Set("End-User", "jason")
		res, body, err := do(p.client, req)
		if err != nil || res.StatusCode != 500 || body != "fault filter abort" {
			t.Fatalf("jason: %v %v %q", res, err, body)
		}
		res, body, err = p.get("ratings", "/ratings/0")
		if err != nil || res.StatusCode != 200 || body != "app" {
			t.Fatalf("everyone else: %v %v %q", res, err, body)
		}
	})

	t.Run("a delay does not count against the route timeout", func(t *testing.T) {
		before := statValue(t, p, "http.fault.delays_injected")
		res, body, err := p.get("slow", "/")
		if err != nil || res.StatusCode != 200 || body != "app" {
			t.Fatalf("%v %v %q, want 200 app: the 400ms timeout starts after the 700ms delay", res, err, body)
		}
		if got := statValue(t, p, "http.fault.delays_injected"); got != before+1 {
			t.Errorf("delays_injected %d, want %d", got, before+1)
		}
	})

	t.Run("percentages over many requests", func(t *testing.T) {
		const n = 1000
		delaysBefore, abortsBefore := statValue(t, p, "http.response_flags.DI"), statValue(t, p, "http.response_flags.FI")
		aborted := 0
		for range n {
			res, _, err := p.get("flaky", "/")
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode == 503 {
				aborted++
			}
		}
		check := func(what string, got int, want float64) {
			if tol := 5 * math.Sqrt(want*(1-want)/n); math.Abs(float64(got)/n-want) > tol {
				t.Errorf("%s: %d of %d, want %.0f%% ± %.1f%%", what, got, n, want*100, tol*100)
			}
		}
		check("aborted", aborted, 0.3)
		check("delayed", int(statValue(t, p, "http.response_flags.DI")-delaysBefore), 0.5)
		if got := int(statValue(t, p, "http.response_flags.FI") - abortsBefore); got != aborted {
			t.Errorf("FI counted %d, want %d", got, aborted)
		}
	})

	t.Run("gRPC abort is a trailers-only gRPC status", func(t *testing.T) {
		conn, err := grpc.NewClient("passthrough:///"+net.JoinHostPort(addr, "15001"),
			grpc.WithTransportCredentials(insecure.NewCredentials()), grpc.WithAuthority("grpc-svc:50051"))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err = testpb.NewTestServiceClient(conn).UnaryCall(ctx, &testpb.SimpleRequest{})
		if st := status.Convert(err); st.Code() != codes.Unavailable || st.Message() != "fault filter abort" {
			t.Errorf("got %v %q, want Unavailable \"fault filter abort\"", st.Code(), st.Message())
		}
	})
}
