package xds

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/registry"
)

// allPolicies turns on every DestinationRule policy, as this release's proxies enforce them.
var allPolicies = Features{ConsistentHash: true, ConnectionPool: true, OutlierDetection: true}

// withRetries adds Istio's retries, which a route to one consistent-hash destination keeps
// on the endpoint its key picks.
var withRetries = Features{ConsistentHash: true, ConnectionPool: true, OutlierDetection: true, Retries: true}

// policyMesh is httpbin (v1, v2 on port 8000), a two-port service "multi" (8000 and 9000) and
// a client, configured by yaml.
func policyMesh(t *testing.T, yaml string, f Features) (*shared, registry.Workload) {
	t.Helper()
	p8000 := meta.PortMapping{Port: 8000, AppPort: 18000}
	p9000 := meta.PortMapping{Port: 9000, AppPort: 19000}
	ws := []registry.Workload{
		workload("default", "httpbin", "v1", "127.0.0.11", p8000),
		workload("default", "httpbin", "v2", "127.0.0.12", p8000),
		workload("default", "multi", "v1", "127.0.0.13", p8000, p9000),
		workload("default", "multi", "v2", "127.0.0.14", p8000, p9000),
		workload("default", "client", "v1", "127.0.0.15", meta.PortMapping{Port: 8080, AppPort: 18080}),
	}
	var rs []*config.Resource
	if yaml != "" {
		var err error
		rs, err = config.ParseYAML([]byte(yaml))
		if err != nil {
			t.Fatal(err)
		}
		if errs := config.Validate(rs, nil); len(errs) > 0 {
			t.Fatalf("configuration does not validate: %v", errs)
		}
	}
	mesh := BuildMesh(ws)
	mesh.Config = IndexConfig(rs)
	mesh.Features = f
	return newShared(mesh), ws[4]
}

// policyClusters keeps the clusters of one host.
func policyClusters(rs []types.Resource, host string) []types.Resource {
	var out []types.Resource
	for _, r := range rs {
		if c := r.(*clusterv3.Cluster); strings.HasSuffix(c.GetName(), "|"+host) {
			out = append(out, c)
		}
	}
	return out
}

// policyVirtualHosts keeps the virtual hosts of one host in a sidecar's route table.
func policyVirtualHosts(rs []types.Resource, host string) []types.Resource {
	var out []types.Resource
	for _, r := range rs {
		for _, vh := range r.(*routev3.RouteConfiguration).GetVirtualHosts() {
			if strings.HasPrefix(vh.GetName(), host+":") {
				out = append(out, vh)
			}
		}
	}
	return out
}

// TestTrafficPolicyGolden checks the translation of DestinationRule traffic policies into the
// cluster fields sluice-proxy reads, and of consistent-hash keys into route hash policies.
func TestTrafficPolicyGolden(t *testing.T) {
	const httpbin = "httpbin.default.svc.cluster.local"
	const multi = "multi.default.svc.cluster.local"
	tests := []struct {
		name     string
		yaml     string
		host     string
		features Features
		routes   bool
	}{
		{name: "policy-defaults", host: httpbin, features: allPolicies},
		{name: "policy-circuit-breaking", host: httpbin, features: allPolicies, yaml: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin}
spec:
  host: httpbin
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1, connectTimeout: 250ms, idleTimeout: 1h}
      http: {http1MaxPendingRequests: 1, http2MaxRequests: 7, maxRequestsPerConnection: 1, maxRetries: 2, idleTimeout: 30s}
    outlierDetection:
      consecutive5xxErrors: 1
      interval: 1s
      baseEjectionTime: 3m
      maxEjectionPercent: 100
`},
		{name: "policy-outlier-defaults", host: httpbin, features: allPolicies, yaml: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin}
spec:
  host: httpbin
  trafficPolicy:
    connectionPool:
      tcp: {idleTimeout: 0s}
    outlierDetection: {}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 3, minHealthPercent: 25}
`},
		{name: "policy-consistent-hash", host: httpbin, features: withRetries, routes: true, yaml: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin}
spec:
  host: httpbin
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        consistentHash:
          httpCookie: {name: session, path: /, ttl: 60s}
          maglev: {tableSize: 1009}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer:
        consistentHash:
          httpQueryParameterName: user
          ringHash: {minimumRingSize: 4096}
  - name: v3
    labels: {version: v3}
    trafficPolicy:
      loadBalancer:
        consistentHash: {useSourceIp: true}
  - name: rr
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: httpbin}
spec:
  hosts: [httpbin]
  http:
  - match: [{headers: {x-split: {exact: "yes"}}}]
    route:
    - {destination: {host: httpbin, subset: v1}, weight: 50}
    - {destination: {host: httpbin, subset: v2}, weight: 25}
    - {destination: {host: httpbin, subset: rr}, weight: 25}
  - match: [{uri: {prefix: /v3}}]
    route:
    - destination: {host: httpbin, subset: v3}
  - route:
    - destination: {host: httpbin}
`},
		{name: "policy-default-route-hash", host: multi, features: withRetries, routes: true, yaml: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: multi}
spec:
  host: multi
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
    portLevelSettings:
    - port: {number: 9000}
      loadBalancer: {simple: RANDOM}
`},
		{name: "policy-subset-port-overrides", host: multi, features: allPolicies, yaml: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: multi}
spec:
  host: multi
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    connectionPool:
      tcp: {maxConnections: 100}
    outlierDetection: {consecutive5xxErrors: 7}
    portLevelSettings:
    - port: {number: 9000}
      connectionPool:
        tcp: {maxConnections: 9}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      connectionPool:
        http: {http1MaxPendingRequests: 11}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      loadBalancer: {simple: RANDOM}
      portLevelSettings:
      - port: {number: 8000}
        outlierDetection: {consecutive5xxErrors: 2}
`},
		{name: "policy-not-enforced", host: httpbin, features: Features{}, yaml: `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin}
spec:
  host: httpbin
  trafficPolicy:
    loadBalancer:
      consistentHash: {httpHeaderName: x-user}
    connectionPool:
      tcp: {maxConnections: 1}
    outlierDetection: {consecutive5xxErrors: 1}
`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sh, client := policyMesh(t, tc.yaml, tc.features)
			res := BuildProxy(client, sh)
			out := &Resources{Clusters: policyClusters(res.Clusters, tc.host)}
			if tc.routes {
				out.Routes = policyVirtualHosts(res.Routes, tc.host)
			}
			if tc.features.ConnectionPool && len(sh.problems) > 0 {
				t.Errorf("problems: %+v", sh.problems)
			}
			golden(t, tc.name, render(t, out))
		})
	}
}

// Policies that cannot be translated as written are reported with their field path, once
// each, and the rest of the rule applies.
func TestTrafficPolicyProblems(t *testing.T) {
	const dr = `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: httpbin}
spec:
  host: httpbin
`
	tests := []struct {
		name     string
		spec     string
		features Features
		want     []string
		// check inspects httpbin's port-8000 cluster.
		check func(t *testing.T, c *clusterv3.Cluster)
	}{
		{
			name: "proxies that do not enforce the policies",
			spec: `  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
    connectionPool: {tcp: {maxConnections: 1}}
    outlierDetection: {consecutive5xxErrors: 1}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
`,
			want: []string{
				"spec.trafficPolicy.loadBalancer.consistentHash is not enforced",
				"spec.trafficPolicy.connectionPool is not enforced",
				"spec.trafficPolicy.outlierDetection is not enforced",
			},
			check: func(t *testing.T, c *clusterv3.Cluster) {
				if c.GetLbPolicy() != clusterv3.Cluster_LEAST_REQUEST || c.GetCircuitBreakers() != nil || c.GetOutlierDetection() != nil {
					t.Errorf("policies sent to proxies that do not enforce them: %v", c)
				}
			},
		},
		{
			name: "maglev table size not prime",
			spec: `  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user, maglev: {tableSize: 1000}}}
`,
			features: allPolicies,
			want:     []string{"spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: 1000 is not a prime number"},
			check: func(t *testing.T, c *clusterv3.Cluster) {
				if c.GetLbPolicy() != clusterv3.Cluster_MAGLEV || c.GetMaglevLbConfig() != nil {
					t.Errorf("want MAGLEV with the default table: %v", c)
				}
			},
		},
		{
			name: "ring larger than Envoy allows",
			spec: `  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer: {consistentHash: {httpHeaderName: x-user, ringHash: {minimumRingSize: 9000000}}}
`,
			features: allPolicies,
			want:     []string{"spec.subsets[0].trafficPolicy.loadBalancer.consistentHash.ringHash.minimumRingSize: 9000000 is above the largest ring"},
		},
		{
			name: "useSourceIp false",
			spec: `  trafficPolicy:
    loadBalancer: {consistentHash: {useSourceIp: false}}
`,
			features: allPolicies,
			want:     []string{"spec.trafficPolicy.loadBalancer.consistentHash.useSourceIp: false names no hash key"},
			check: func(t *testing.T, c *clusterv3.Cluster) {
				if c.GetLbPolicy() != clusterv3.Cluster_LEAST_REQUEST {
					t.Errorf("a consistent hash without a key must keep the default lb: %v", c.GetLbPolicy())
				}
			},
		},
		{
			name: "parts the proxy does not implement",
			spec: `  trafficPolicy:
    connectionPool:
      tcp: {maxConnectionDuration: 1h, tcpKeepalive: {time: 10s}}
      http: {maxConcurrentStreams: 10, h2UpgradePolicy: UPGRADE}
    outlierDetection: {consecutiveErrors: 3, splitExternalLocalOriginErrors: true}
    tls: {mode: SIMPLE}
    portLevelSettings:
    - port: {number: 8000}
      loadBalancer: {simple: PASSTHROUGH}
`,
			features: allPolicies,
			want: []string{
				"spec.trafficPolicy.portLevelSettings[0].loadBalancer.simple PASSTHROUGH is not enforced",
			},
		},
		{
			name: "the same parts on the other port",
			spec: `  trafficPolicy:
    connectionPool:
      tcp: {maxConnectionDuration: 1h, tcpKeepalive: {time: 10s}}
      http: {maxConcurrentStreams: 10, h2UpgradePolicy: UPGRADE}
    outlierDetection: {consecutiveErrors: 3, splitExternalLocalOriginErrors: true}
    tls: {mode: SIMPLE}
    portLevelSettings:
    - port: {number: 9999}
      loadBalancer: {simple: PASSTHROUGH}
`,
			features: allPolicies,
			want: []string{
				"spec.trafficPolicy.connectionPool.http.maxConcurrentStreams is not enforced",
				"spec.trafficPolicy.connectionPool.http.h2UpgradePolicy UPGRADE is not enforced",
				"spec.trafficPolicy.connectionPool.tcp.maxConnectionDuration is not enforced",
				"spec.trafficPolicy.connectionPool.tcp.tcpKeepalive is not enforced",
				"spec.trafficPolicy.outlierDetection.consecutiveErrors is deprecated and ignored",
				"spec.trafficPolicy.outlierDetection.splitExternalLocalOriginErrors is not enforced",
				"spec.trafficPolicy.tls is not enforced",
			},
			check: func(t *testing.T, c *clusterv3.Cluster) {
				if c.GetOutlierDetection() == nil || c.GetCircuitBreakers() == nil {
					t.Errorf("the rest of the policy must apply: %v", c)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sh, client := policyMesh(t, dr+tc.spec, tc.features)
			res := BuildProxy(client, sh)
			var got []string
			for _, p := range sh.problems {
				if p.Resource != "DestinationRule/default/httpbin" {
					t.Errorf("problem names %q", p.Resource)
				}
				got = append(got, p.Message)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("problems:\n%s\nwant %d, one per line:\n%s", strings.Join(got, "\n"), len(tc.want), strings.Join(tc.want, "\n"))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(got[i], w) {
					t.Errorf("problem %d: %q, want it to start with %q", i, got[i], w)
				}
			}
			if tc.check != nil {
				for _, r := range res.Clusters {
					if c := r.(*clusterv3.Cluster); c.GetName() == "outbound|8000||httpbin.default.svc.cluster.local" {
						tc.check(t, c)
					}
				}
			}
		})
	}
}

// Istio's precedence, part by part: a subset's part over the rule's, port-level settings over
// the policy they belong to, and port-level settings replace all four parts.
func TestEffectivePolicyPrecedence(t *testing.T) {
	rs, err := config.ParseYAML([]byte(`apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: multi}
spec:
  host: multi
  trafficPolicy:
    loadBalancer: {simple: ROUND_ROBIN}
    outlierDetection: {consecutive5xxErrors: 7}
    portLevelSettings:
    - port: {number: 9000}
      connectionPool: {tcp: {maxConnections: 9}}
  subsets:
  - name: a
    trafficPolicy:
      connectionPool: {tcp: {maxConnections: 3}}
  - name: b
    trafficPolicy:
      portLevelSettings:
      - port: {number: 8000}
        outlierDetection: {consecutive5xxErrors: 2}
`))
	if err != nil {
		t.Fatal(err)
	}
	dr := IndexConfig(rs).destinationRule("multi.default.svc.cluster.local").dr
	tests := []struct {
		name                      string
		sub                       int
		port                      uint32
		lbAt, poolAt, odAt, tlsAt string
	}{
		{"rule", -1, 8000, "spec.trafficPolicy.loadBalancer", "", "spec.trafficPolicy.outlierDetection", ""},
		{"rule's port: no inheritance", -1, 9000, "", "spec.trafficPolicy.portLevelSettings[0].connectionPool", "", ""},
		{"subset over rule", 0, 8000, "spec.trafficPolicy.loadBalancer", "spec.subsets[0].trafficPolicy.connectionPool", "spec.trafficPolicy.outlierDetection", ""},
		{"subset over the rule's port", 0, 9000, "", "spec.subsets[0].trafficPolicy.connectionPool", "", ""},
		{"subset's port over all", 1, 8000, "", "", "spec.subsets[1].trafficPolicy.portLevelSettings[0].outlierDetection", ""},
		{"subset without that port", 1, 9000, "", "spec.trafficPolicy.portLevelSettings[0].connectionPool", "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			pp := effectivePolicy(dr, tc.sub, tc.port)
			at := func(set bool, path string) string {
				if !set {
					return ""
				}
				return path
			}
			got := [4]string{at(pp.lb != nil, pp.lbAt), at(pp.pool != nil, pp.poolAt), at(pp.od != nil, pp.odAt), at(pp.tls != nil, pp.tlsAt)}
			if want := [4]string{tc.lbAt, tc.poolAt, tc.odAt, tc.tlsAt}; got != want {
				t.Errorf("parts from %q, want %q", got, want)
			}
		})
	}
}
