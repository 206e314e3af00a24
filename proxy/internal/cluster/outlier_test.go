package cluster

import (
	"fmt"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// clock is a fake clock for outlier detection.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func addrs(n int) (specs []EndpointSpec) {
	for i := range n {
		specs = append(specs, EndpointSpec{Address: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: 1})
	}
	return specs
}

// istioOutlier is what Istio's pilot writes for a DestinationRule's outlierDetection.
func istioOutlier(consecutive5xx, maxPct uint32, base time.Duration) *clusterv3.OutlierDetection {
	return &clusterv3.OutlierDetection{
		EnforcingSuccessRate:     wrapperspb.UInt32(0),
		Consecutive_5Xx:          wrapperspb.UInt32(consecutive5xx),
		EnforcingConsecutive_5Xx: wrapperspb.UInt32(100),
		Interval:                 durationpb.New(10 * time.Second),
		BaseEjectionTime:         durationpb.New(base),
		MaxEjectionPercent:       wrapperspb.UInt32(maxPct),
	}
}

func outlierCluster(t *testing.T, n int, od *clusterv3.OutlierDetection, panic *float64) (*Cluster, *clock) {
	t.Helper()
	pc := &clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		OutlierDetection: od, LbPolicy: clusterv3.Cluster_ROUND_ROBIN}
	if panic != nil {
		pc.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: *panic}}
	}
	cfg, err := Compile(pc)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Static = &Assignment{Endpoints: addrs(n)}
	var pools Pools
	c := New(cfg, nil, nil, &pools)
	clk := &clock{t: time.Unix(1000, 0)}
	c.setClock(clk.now)
	return c, clk
}

func fail(c *Cluster, ep *Endpoint, n int) {
	for range n {
		c.Report(ep, 503)
	}
}

// picked returns the addresses Pick returns over many picks.
func picked(c *Cluster) string {
	seen := map[string]bool{}
	for range 100 {
		if e := c.Pick(); e != nil {
			seen[e.Address] = true
		} else {
			seen["nil"] = true
		}
	}
	var out []string
	for _, a := range []string{"10.0.0.1:80", "10.0.0.2:80", "10.0.0.3:80", "10.0.0.4:80", "nil"} {
		if seen[a] {
			out = append(out, a)
		}
	}
	return strings.Join(out, ",")
}

func ptr[T any](v T) *T { return &v }

func TestOutlierDetection(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"the 5th consecutive 5xx ejects, a success in between resets the run", func(t *testing.T) {
			c, _ := outlierCluster(t, 4, istioOutlier(5, 100, 30*time.Second), ptr(0.0))
			ep := c.Endpoints[0]
			fail(c, ep, 4)
			c.Report(ep, 200)
			fail(c, ep, 4)
			if c.Outliers().Active != 0 {
				t.Fatal("ejected before 5 consecutive failures")
			}
			c.Report(ep, 500)
			if st := c.Outliers(); st.Active != 1 || st.Enforced5xx != 1 || st.Ejected[ep.Address].IsZero() {
				t.Fatalf("after the 5th: %+v", st)
			}
			if got := picked(c); got != "10.0.0.2:80,10.0.0.3:80,10.0.0.4:80" {
				t.Errorf("picks %s: the ejected endpoint must get nothing", got)
			}
		}},
		{"gateway failures need their enforcing percentage", func(t *testing.T) {
			od := istioOutlier(100, 100, 30*time.Second)
			od.ConsecutiveGatewayFailure = wrapperspb.UInt32(3)
			c, _ := outlierCluster(t, 4, od, ptr(0.0))
			fail(c, c.Endpoints[0], 3)
			if st := c.Outliers(); st.Active != 0 || st.DetectedGateway != 1 {
				t.Fatalf("enforcing_consecutive_gateway_failure unset (0): %+v", st)
			}
			od.EnforcingConsecutiveGatewayFailure = wrapperspb.UInt32(100)
			c, _ = outlierCluster(t, 4, od, ptr(0.0))
			fail(c, c.Endpoints[0], 3)
			if st := c.Outliers(); st.Active != 1 || st.EnforcedGateway != 1 {
				t.Fatalf("enforced at 100: %+v", st)
			}
		}},
		{"max_ejection_percent caps the ejections", func(t *testing.T) {
			c, _ := outlierCluster(t, 3, istioOutlier(1, 50, 30*time.Second), ptr(0.0))
			for _, ep := range c.Endpoints {
				fail(c, ep, 1)
			}
			// 1 of 3 is 33% <= 50%; 2 of 3 would be 67%.
			if st := c.Outliers(); st.Active != 1 || st.Overflow != 2 {
				t.Fatalf("%+v, want 1 ejected and 2 overflows", st)
			}
		}},
		{"10% of a small cluster ejects nobody, unless always_eject_one_host", func(t *testing.T) {
			c, _ := outlierCluster(t, 3, istioOutlier(1, 10, 30*time.Second), ptr(0.0))
			fail(c, c.Endpoints[0], 1)
			if st := c.Outliers(); st.Active != 0 || st.Overflow != 1 {
				t.Fatalf("%+v", st)
			}
			od := istioOutlier(1, 10, 30*time.Second)
			od.AlwaysEjectOneHost = wrapperspb.Bool(true)
			c, _ = outlierCluster(t, 3, od, ptr(0.0))
			fail(c, c.Endpoints[0], 1)
			fail(c, c.Endpoints[1], 1)
			if st := c.Outliers(); st.Active != 1 {
				t.Fatalf("always_eject_one_host: %+v", st)
			}
		}},
		{"an endpoint returns after base_ejection_time times its ejection count, capped", func(t *testing.T) {
			od := istioOutlier(1, 100, 30*time.Second)
			od.MaxEjectionTime = durationpb.New(70 * time.Second)
			c, clk := outlierCluster(t, 2, od, ptr(0.0))
			ep := c.Endpoints[0]
			for i, want := range []time.Duration{30 * time.Second, 60 * time.Second, 70 * time.Second, 70 * time.Second} {
				fail(c, ep, 1)
				if st := c.Outliers(); st.Ejected[ep.Address].Sub(clk.now()) != want {
					t.Fatalf("ejection %d lasts %v, want %v", i+1, st.Ejected[ep.Address].Sub(clk.now()), want)
				}
				clk.advance(want - time.Millisecond)
				if got := picked(c); got != "10.0.0.2:80" {
					t.Fatalf("ejection %d: picks %s just before the end", i+1, got)
				}
				clk.advance(time.Millisecond)
				if got := picked(c); got != "10.0.0.1:80,10.0.0.2:80" {
					t.Fatalf("ejection %d: picks %s after the end, want both", i+1, got)
				}
			}
		}},
		{"the multiplier drops by one per healthy interval", func(t *testing.T) {
			c, clk := outlierCluster(t, 2, istioOutlier(1, 100, 30*time.Second), ptr(0.0))
			ep := c.Endpoints[0]
			fail(c, ep, 1)
			clk.advance(30 * time.Second)
			c.Pick()
			fail(c, ep, 1) // second ejection: 60s
			clk.advance(60 * time.Second)
			c.Pick()
			clk.advance(25 * time.Second) // healthy for two intervals of 10s: the multiplier 2 drops to 0
			fail(c, ep, 1)
			if got := c.Outliers().Ejected[ep.Address].Sub(clk.now()); got != 30*time.Second {
				t.Errorf("after a healthy spell the ejection lasts %v, want 30s", got)
			}
		}},
		{"all ejected under a panic threshold of 0: no healthy upstream", func(t *testing.T) {
			c, _ := outlierCluster(t, 2, istioOutlier(1, 100, 30*time.Second), ptr(0.0))
			fail(c, c.Endpoints[0], 1)
			fail(c, c.Endpoints[1], 1)
			if got := picked(c); got != "nil" {
				t.Errorf("picks %s, want none", got)
			}
		}},
		{"below the panic threshold, Envoy balances over every endpoint", func(t *testing.T) {
			c, _ := outlierCluster(t, 4, istioOutlier(1, 100, 30*time.Second), nil) // Envoy's default 50%
			fail(c, c.Endpoints[0], 1)
			if got := picked(c); got != "10.0.0.2:80,10.0.0.3:80,10.0.0.4:80" {
				t.Fatalf("75%% healthy: picks %s", got)
			}
			fail(c, c.Endpoints[1], 1)
			if got := picked(c); got != "10.0.0.3:80,10.0.0.4:80" {
				t.Fatalf("50%% healthy is not below 50%%: picks %s", got)
			}
			fail(c, c.Endpoints[2], 1)
			if got := picked(c); got != "10.0.0.1:80,10.0.0.2:80,10.0.0.3:80,10.0.0.4:80" {
				t.Fatalf("25%% healthy: panic mode picks %s, want all", got)
			}
			if c.PanicPicks() == 0 {
				t.Error("panic picks not counted")
			}
		}},
		{"ejections survive an EDS update; a removed endpoint stops counting", func(t *testing.T) {
			c, clk := outlierCluster(t, 3, istioOutlier(1, 100, 30*time.Second), ptr(0.0))
			fail(c, c.Endpoints[0], 1)
			fail(c, c.Endpoints[2], 1)
			cfg := *c.Config
			cfg.Static = &Assignment{Endpoints: addrs(2)} // 10.0.0.3 leaves
			var pools Pools
			next := New(&cfg, nil, c, &pools)
			next.setClock(clk.now)
			if st := next.Outliers(); st.Active != 1 || st.Ejected["10.0.0.1:80"].IsZero() {
				t.Fatalf("after the update: %+v", st)
			}
			if got := picked(next); got != "10.0.0.2:80" {
				t.Errorf("picks %s", got)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestEDSPanicMode(t *testing.T) {
	// One healthy endpoint of three: 33% is below Envoy's default 50%, so all three get
	// traffic; with the threshold at 0 (Istio's, with outlier detection) only the healthy one.
	for _, tt := range []struct {
		threshold float64
		want      int
	}{{DefaultPanicThreshold, 3}, {0, 1}} {
		cfg := &Config{Name: "c", Discovery: Static, Policy: Random, PanicThreshold: tt.threshold, Limits: DefaultLimits,
			Static: &Assignment{Endpoints: addrs(1), Unhealthy: addrs(3)[1:]}}
		var pools Pools
		c := New(cfg, nil, nil, &pools)
		seen := map[*Endpoint]bool{}
		for range 300 {
			seen[c.Pick()] = true
		}
		if len(seen) != tt.want {
			t.Errorf("panic threshold %v: %d endpoints picked, want %d", tt.threshold, len(seen), tt.want)
		}
	}
}

func TestCompileOutlierDetection(t *testing.T) {
	for _, tt := range []struct {
		od   *clusterv3.OutlierDetection
		want string
	}{
		{&clusterv3.OutlierDetection{Consecutive_5Xx: wrapperspb.UInt32(3)}, "enforcing_success_rate: success-rate ejection is not supported"},
		{&clusterv3.OutlierDetection{EnforcingSuccessRate: wrapperspb.UInt32(0), EnforcingFailurePercentage: wrapperspb.UInt32(50)},
			"outlier_detection.enforcing_failure_percentage: not supported"},
		{&clusterv3.OutlierDetection{EnforcingSuccessRate: wrapperspb.UInt32(0), SplitExternalLocalOriginErrors: true},
			"outlier_detection.split_external_local_origin_errors: not supported"},
		{&clusterv3.OutlierDetection{EnforcingSuccessRate: wrapperspb.UInt32(0), BaseEjectionTime: durationpb.New(time.Hour),
			MaxEjectionTime: durationpb.New(time.Minute)}, "max_ejection_time: cannot be smaller than base_ejection_time"},
	} {
		_, err := Compile(&clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
			OutlierDetection: tt.od})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("error %v, want %q", err, tt.want)
		}
	}
	cfg, err := Compile(&clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC},
		OutlierDetection: &clusterv3.OutlierDetection{EnforcingSuccessRate: wrapperspb.UInt32(0)}})
	if err != nil {
		t.Fatal(err)
	}
	want := OutlierConfig{Consecutive5xx: 5, Enforcing5xx: 100, ConsecutiveGatewayFailure: 5, Interval: 10 * time.Second,
		BaseEjectionTime: 30 * time.Second, MaxEjectionTime: 300 * time.Second, MaxEjectionPercent: 10}
	if *cfg.Outlier != want || cfg.PanicThreshold != 50 {
		t.Errorf("defaults %+v panic %v, want Envoy's %+v and 50", *cfg.Outlier, cfg.PanicThreshold, want)
	}
}
