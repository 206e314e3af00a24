package filter

import (
	"math"
	"net/http"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluicemesh/sluice/proxy/internal/match"
)

func pct(num uint32, den typev3.FractionalPercent_DenominatorType) *typev3.FractionalPercent {
	return &typev3.FractionalPercent{Numerator: num, Denominator: den}
}

func delayFault(d time.Duration, p *typev3.FractionalPercent) *faultv3.HTTPFault {
	return &faultv3.HTTPFault{Delay: &faultcommonv3.FaultDelay{
		FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(d)}, Percentage: p}}
}

func abortFault(status uint32, p *typev3.FractionalPercent) *faultv3.HTTPFault {
	return &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HttpStatus{HttpStatus: status}, Percentage: p}}
}

// within checks a measured share against p with 5 standard deviations of tolerance: a false
// alarm is vanishingly rare.
func within(t *testing.T, what string, hits, n int, p float64) {
	t.Helper()
	got := float64(hits) / float64(n)
	if tol := 5 * math.Sqrt(p*(1-p)/float64(n)); math.Abs(got-p) > tol {
		t.Errorf("%s: %.4f of %d draws, want %.4f ± %.4f", what, got, n, p, tol)
	}
}

func TestFaultPercentages(t *testing.T) {
	const n = 20_000
	tests := []struct {
		name  string
		fault *faultv3.HTTPFault
		delay float64
		abort float64
	}{
		{"abort 30 of a hundred", abortFault(503, pct(30, typev3.FractionalPercent_HUNDRED)), 0, 0.3},
		{"abort 0.5% in ten-thousandths", abortFault(500, pct(50, typev3.FractionalPercent_TEN_THOUSAND)), 0, 0.005},
		{"abort 100%", abortFault(555, pct(100, typev3.FractionalPercent_HUNDRED)), 0, 1},
		{"abort without a percentage: never (Envoy's default 0%)", abortFault(500, nil), 0, 0},
		{"a numerator over the denominator is 100%", abortFault(500, pct(200, typev3.FractionalPercent_HUNDRED)), 0, 1},
		{"delay 25% in millionths", delayFault(time.Millisecond, pct(250_000, typev3.FractionalPercent_MILLION)), 0.25, 0},
		{"delay and abort are independent draws", func() *faultv3.HTTPFault {
			f := delayFault(time.Millisecond, pct(50, typev3.FractionalPercent_HUNDRED))
			f.Abort = abortFault(503, pct(20, typev3.FractionalPercent_HUNDRED)).Abort
			return f
		}(), 0.5, 0.2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := CompileFault(tt.fault)
			if err != nil {
				t.Fatal(err)
			}
			var delays, aborts, both int
			for range n {
				_, d := f.Delay()
				_, _, a := f.Abort()
				if d {
					delays++
				}
				if a {
					aborts++
				}
				if d && a {
					both++
				}
			}
			within(t, "delays", delays, n, tt.delay)
			within(t, "aborts", aborts, n, tt.abort)
			within(t, "delayed and aborted", both, n, tt.delay*tt.abort)
		})
	}
}

func TestFaultAbortAndHeaders(t *testing.T) {
	grpc, err := CompileFault(&faultv3.HTTPFault{Abort: &faultv3.FaultAbort{
		ErrorType: &faultv3.FaultAbort_GrpcStatus{GrpcStatus: 14}, Percentage: pct(100, typev3.FractionalPercent_HUNDRED)}})
	if err != nil {
		t.Fatal(err)
	}
	if status, code, ok := grpc.Abort(); !ok || status != 200 || code != 14 {
		t.Errorf("gRPC abort = %d %d %v, want HTTP 200 with gRPC 14", status, code, ok)
	}
	hf := abortFault(500, pct(100, typev3.FractionalPercent_HUNDRED))
	hf.Headers = []*routev3.HeaderMatcher{{Name: "end-user", HeaderMatchSpecifier: &routev3.HeaderMatcher_ExactMatch{ExactMatch: "jason"}}}
	f, err := CompileFault(hf)
	if err != nil {
		t.Fatal(err)
	}
	if f.Applies(&match.Request{Header: http.Header{"End-User": {"bob"}}}) || !f.Applies(&match.Request{Header: http.Header{"End-User": {"jason"}}}) {
		t.Error("the fault's headers must select jason only")
	}
	if got := f.Describe(500, -1); got != "fault injected: abort with HTTP 500 for 100% of requests" {
		t.Errorf("Describe = %q", got)
	}
}

func TestCompileFaultRejects(t *testing.T) {
	tests := []struct {
		name  string
		fault *faultv3.HTTPFault
		want  string
	}{
		{"a status that is not one", abortFault(700, nil), "abort.http_status: 700 is not an HTTP status"},
		{"header abort", &faultv3.HTTPFault{Abort: &faultv3.FaultAbort{ErrorType: &faultv3.FaultAbort_HeaderAbort_{}}}, "header_abort is not supported"},
		{"header delay", &faultv3.HTTPFault{Delay: &faultcommonv3.FaultDelay{FaultDelaySecifier: &faultcommonv3.FaultDelay_HeaderDelay_{}}}, "header_delay is not supported"},
		{"negative delay", delayFault(-time.Second, nil), "delay.fixed_delay: -1s"},
		{"bad header matcher", &faultv3.HTTPFault{Headers: []*routev3.HeaderMatcher{{Name: ":bogus"}}}, `headers[0] (":bogus").name`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileFault(tt.fault)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestZeroPercentFaultDrawsNothing(t *testing.T) {
	f, _ := CompileFault(&faultv3.HTTPFault{Delay: delayFault(time.Second, pct(0, typev3.FractionalPercent_HUNDRED)).Delay,
		Abort: abortFault(500, pct(0, typev3.FractionalPercent_HUNDRED)).Abort})
	if n := testing.AllocsPerRun(100, func() {
		_, d := f.Delay()
		_, _, a := f.Abort()
		if d || a {
			t.Fatal("a 0% fault fired")
		}
	}); n != 0 {
		t.Errorf("%v allocations", n)
	}
}
