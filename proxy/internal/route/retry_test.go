package route

import (
	"net/http"
	"strings"
	"testing"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// istioDefaultRetry is the retry policy Istio's pilot puts on every route.
func istioDefaultRetry() *routev3.RetryPolicy {
	return &routev3.RetryPolicy{
		NumRetries:           wrapperspb.UInt32(2),
		RetryOn:              "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes",
		RetriableStatusCodes: []uint32{503},
		RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.previous_hosts",
			ConfigType: &routev3.RetryPolicy_RetryHostPredicate_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: previousHostsTypeURL}}}},
		HostSelectionRetryMaxAttempts: 5,
	}
}

func TestCompileRetryPolicy(t *testing.T) {
	rp, err := compileRetryPolicy(istioDefaultRetry())
	if err != nil {
		t.Fatal(err)
	}
	want := RetryConnectFailure | RetryRefusedStream | RetryGRPCUnavailable | RetryGRPCCancelled | RetryStatusCodes
	if rp.On != want || rp.NumRetries != 2 || !rp.PreviousHosts || rp.HostSelectionAttempts != 5 ||
		len(rp.StatusCodes) != 1 || rp.BaseInterval != 25*time.Millisecond || rp.MaxInterval != 250*time.Millisecond {
		t.Errorf("Istio's default policy compiled to %+v", rp)
	}
	rp, err = compileRetryPolicy(&routev3.RetryPolicy{RetryOn: "5xx"})
	if err != nil || rp.NumRetries != 1 || rp.HostSelectionAttempts != 1 || rp.PreviousHosts {
		t.Errorf("defaults: %+v %v, want Envoy's 1 retry", rp, err)
	}
	for _, tt := range []struct {
		p    *routev3.RetryPolicy
		want string
	}{
		{&routev3.RetryPolicy{RetryOn: "5xx,bogus"}, `retry_on: "bogus"`},
		{&routev3.RetryPolicy{RetryHostPredicate: []*routev3.RetryPolicy_RetryHostPredicate{{Name: "envoy.retry_host_predicates.omit_canary_hosts"}}},
			"retry_host_predicate[0]: \"envoy.retry_host_predicates.omit_canary_hosts\" is not supported"},
		{&routev3.RetryPolicy{RetryBackOff: &routev3.RetryPolicy_RetryBackOff{}}, "retry_back_off.base_interval: required"},
		{&routev3.RetryPolicy{RetryBackOff: &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(time.Second), MaxInterval: durationpb.New(time.Millisecond)}},
			"retry_back_off.max_interval: 1ms must be at least base_interval"},
		{&routev3.RetryPolicy{RetriableStatusCodes: []uint32{999}}, "retriable_status_codes[0]: 999"},
	} {
		if _, err := compileRetryPolicy(tt.p); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: error %v, want %q", tt.p, err, tt.want)
		}
	}
}

func TestRetryConditions(t *testing.T) {
	grpc := func(code string) http.Header { return http.Header{"Grpc-Status": {code}} }
	tests := []struct {
		on      string
		codes   []uint32
		status  int
		header  http.Header
		failure Failure // when set, the try failed without an answer
		want    bool
	}{
		{"5xx", nil, 500, nil, 0, true},
		{"5xx", nil, 404, nil, 0, false},
		{"5xx", nil, 0, nil, FailReset, true},
		{"5xx", nil, 0, nil, FailPerTryTimeout, true},
		{"gateway-error", nil, 502, nil, 0, true},
		{"gateway-error", nil, 500, nil, 0, false},
		{"gateway-error", nil, 0, nil, FailConnect, true},
		{"reset", nil, 503, nil, 0, false},
		{"reset", nil, 0, nil, FailReset, true},
		{"connect-failure", nil, 0, nil, FailConnect, true},
		{"connect-failure", nil, 0, nil, FailReset, false},
		{"connect-failure", nil, 0, nil, FailPerTryTimeout, false},
		{"refused-stream", nil, 0, nil, FailRefusedStream, true},
		{"refused-stream", nil, 0, nil, FailConnect, false},
		{"retriable-4xx", nil, 409, nil, 0, true},
		{"retriable-4xx", nil, 429, nil, 0, false},
		{"retriable-status-codes", []uint32{418}, 418, nil, 0, true},
		{"retriable-status-codes", []uint32{418}, 503, nil, 0, false},
		{"5xx", []uint32{418}, 418, nil, 0, false},
		{"unavailable", nil, 200, grpc("14"), 0, true},
		{"unavailable", nil, 200, grpc("13"), 0, false},
		{"cancelled,deadline-exceeded,internal,resource-exhausted", nil, 200, grpc("1"), 0, true},
		{"cancelled,deadline-exceeded,internal,resource-exhausted", nil, 200, grpc("4"), 0, true},
		{"cancelled,deadline-exceeded,internal,resource-exhausted", nil, 200, grpc("8"), 0, true},
		{"cancelled,deadline-exceeded,internal,resource-exhausted", nil, 200, grpc("13"), 0, true},
		{"cancelled,deadline-exceeded,internal,resource-exhausted", nil, 200, grpc("14"), 0, false},
		{"5xx", nil, 503, http.Header{"X-Envoy-Ratelimited": {"true"}}, 0, false},
		{"envoy-ratelimited", nil, 429, http.Header{"X-Envoy-Ratelimited": {"true"}}, 0, true},
	}
	for _, tt := range tests {
		rp, err := compileRetryPolicy(&routev3.RetryPolicy{RetryOn: tt.on, RetriableStatusCodes: tt.codes})
		if err != nil {
			t.Fatal(err)
		}
		var got bool
		if tt.failure != 0 {
			got = rp.RetriesFailure(tt.failure)
		} else {
			h := tt.header
			if h == nil {
				h = http.Header{}
			}
			got = rp.RetriesAnswer(tt.status, h)
		}
		if got != tt.want {
			t.Errorf("retry_on %q codes %v: status %d %v failure %d: retried %v, want %v", tt.on, tt.codes, tt.status, tt.header, tt.failure, got, tt.want)
		}
	}
}

func TestBackOffBounds(t *testing.T) {
	tests := []struct {
		base, max time.Duration // zero base: Envoy's defaults
		want      []time.Duration
	}{
		{0, 0, []time.Duration{25, 50, 100, 200, 250, 250, 250}},
		{100, 1000, []time.Duration{100, 200, 400, 800, 1000, 1000}},
		{10, 30, []time.Duration{10, 20, 30, 30}},
		{40, 40, []time.Duration{40, 40, 40}},
	}
	for _, tt := range tests {
		p := &routev3.RetryPolicy{}
		if tt.base != 0 {
			p.RetryBackOff = &routev3.RetryPolicy_RetryBackOff{BaseInterval: durationpb.New(tt.base * time.Millisecond),
				MaxInterval: durationpb.New(tt.max * time.Millisecond)}
		}
		rp, err := compileRetryPolicy(p)
		if err != nil {
			t.Fatal(err)
		}
		for i, want := range tt.want {
			if got := rp.BackOff(i + 1); got != want*time.Millisecond {
				t.Errorf("base %dms max %dms: retry %d bound %v, want %v", tt.base, tt.max, i+1, got, want*time.Millisecond)
			}
		}
	}
}

func TestVirtualHostRetryPolicy(t *testing.T) {
	tab, err := Compile(&routev3.RouteConfiguration{VirtualHosts: []*routev3.VirtualHost{{Name: "all", Domains: []string{"*"},
		RetryPolicy: &routev3.RetryPolicy{RetryOn: "5xx", NumRetries: wrapperspb.UInt32(3)},
		Routes: []*routev3.Route{
			{Match: prefix("/own"), Action: &routev3.Route_Route{Route: &routev3.RouteAction{
				ClusterSpecifier: &routev3.RouteAction_Cluster{Cluster: "c"}, RetryPolicy: &routev3.RetryPolicy{RetryOn: "reset"}}}},
			{Match: prefix("/"), Action: toCluster("c")},
		}}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, r := tab.Match(req("/own")); r.Action.Retry.On != RetryReset {
		t.Error("a route's own policy must win")
	}
	if _, r := tab.Match(req("/x")); r.Action.Retry == nil || r.Action.Retry.NumRetries != 3 {
		t.Error("a route without a policy must use its virtual host's")
	}
}
