package proxy

import (
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// istioOutlierDetection is what Istio writes for outlierDetection {consecutive5xxErrors,
// interval, baseEjectionTime, maxEjectionPercent} and minHealthPercent 0.
func istioOutlierDetection(c *clusterv3.Cluster, consecutive uint32, base time.Duration) {
	c.LbPolicy = clusterv3.Cluster_ROUND_ROBIN
	c.OutlierDetection = &clusterv3.OutlierDetection{
		EnforcingSuccessRate:     wrapperspb.UInt32(0),
		Consecutive_5Xx:          wrapperspb.UInt32(consecutive),
		EnforcingConsecutive_5Xx: wrapperspb.UInt32(100),
		Interval:                 durationpb.New(time.Second),
		BaseEjectionTime:         durationpb.New(base),
		MaxEjectionPercent:       wrapperspb.UInt32(100),
	}
	c.CommonLbConfig = &clusterv3.Cluster_CommonLbConfig{HealthyPanicThreshold: &typev3.Percent{Value: 0}}
}

func TestOutlierDetectionEjectsAndReturns(t *testing.T) {
	cp := startControlPlane(t, "127.0.0.1:0", nil)
	addr := nextAddr()
	good := upstream(t, echoServer("good"))
	bad := upstream(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) }))
	w := world{addr: addr,
		services: []service{
			{domains: []string{"reviews"}, backends: []backend{{cluster: "reviews", weight: 1, endpoints: []string{good, bad}}}},
			{domains: []string{"lonely"}, backends: []backend{{cluster: "lonely", weight: 1, endpoints: []string{bad}}}},
		},
		mutateClusters: func(name string, c *clusterv3.Cluster) {
			switch name {
			case "reviews":
				istioOutlierDetection(c, 3, time.Hour)
			case "lonely":
				istioOutlierDetection(c, 2, 2*time.Second)
			}
		},
	}
	cp.set(nodeID(addr, "test"), w.snapshot("1"))
	p := startProxy(t, cp, addr)
	admin := func(path string) string {
		_, body, err := do(p.client, mustRequest("GET", "http://"+net.JoinHostPort(addr, "15000")+path, ""))
		if err != nil {
			t.Fatal(err)
		}
		return body
	}

	t.Run("a failing endpoint is ejected and gets no more requests", func(t *testing.T) {
		failures := 0
		for range 6 { // round robin: 3 of them reach the bad endpoint
			res, _, err := p.get("reviews", "/")
			if err != nil {
				t.Fatal(err)
			}
			if res.StatusCode == 503 {
				failures++
			}
		}
		if failures != 3 {
			t.Fatalf("%d failures before the ejection, want 3", failures)
		}
		for range 20 {
			res, e := getEcho(t, p, p.outboundRequest("GET", "reviews", "/"))
			if res.StatusCode != 200 || e.Name != "good" {
				t.Fatalf("after the ejection: %d from %q", res.StatusCode, e.Name)
			}
		}
		if got := statValue(t, p, "cluster.reviews.outlier_detection.ejections_active"); got != 1 {
			t.Errorf("ejections_active %d, want 1", got)
		}
		if clusters := admin("/clusters"); !strings.Contains(clusters, "reviews::"+bad+"::health_flags::/failed_outlier_check") ||
			!strings.Contains(clusters, "reviews::"+good+"::health_flags::healthy") {
			t.Errorf("/clusters:\n%s", clusters)
		}
		dump := admin("/config_dump")
		host, _, _ := net.SplitHostPort(bad)
		if i := strings.Index(dump, `"health_status": "UNHEALTHY"`); i < 0 || !strings.Contains(dump, host) {
			t.Errorf("/config_dump does not show the ejected endpoint UNHEALTHY")
		}
	})

	t.Run("all ejected and no panic: no healthy upstream, then back after the ejection time", func(t *testing.T) {
		for range 2 {
			if res, _, _ := p.get("lonely", "/"); res.StatusCode != 503 {
				t.Fatalf("%d, want the upstream's 503", res.StatusCode)
			}
		}
		res, body, err := p.get("lonely", "/")
		if err != nil || res.StatusCode != 503 || body != "no healthy upstream" {
			t.Fatalf("%v %v %q, want 503 no healthy upstream", res, err, body)
		}
		eventually(t, 10*time.Second, "the endpoint returns", func() bool {
			_, body, _ := p.get("lonely", "/")
			return body != "no healthy upstream"
		})
	})
}
