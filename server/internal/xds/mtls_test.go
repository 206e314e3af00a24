package xds

import (
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	security "istio.io/api/security/v1beta1"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/registry"
)

var withMTLS = Features{MTLS: true}

// mtlsMesh is reviews (v1 as bookinfo-reviews, v2 as reviews-v2, ports 9080 and 9090) and
// productpage in default, ratings in other, a proxyless client and a gateway, configured by
// yaml.
func mtlsMesh(t *testing.T, yaml string, f Features) (*shared, []registry.Workload) {
	t.Helper()
	p9080 := meta.PortMapping{Port: 9080, AppPort: 19080}
	p9090 := meta.PortMapping{Port: 9090, AppPort: 19090}
	ws := []registry.Workload{
		workload("default", "reviews", "v1", "127.0.0.5", p9080, p9090),
		workload("default", "reviews", "v2", "127.0.0.6", p9080, p9090),
		workload("default", "productpage", "v1", "127.0.0.4", p9080),
		workload("other", "ratings", "v1", "127.0.0.7", p9080),
		{NodeID: "proxyless~127.0.0.8~grpc", Namespace: "default", Service: "grpc-client", Name: "grpc-client",
			Mode: meta.ModeProxyless, Address: mustAddr("127.0.0.8")},
		{NodeID: "router~127.0.0.10~gw", Namespace: "istio-system", Service: "istio-ingressgateway",
			Name: "gw", Mode: meta.ModeGateway, Address: mustAddr("127.0.0.10"), ServiceAccount: "istio-ingressgateway"},
	}
	ws[0].ServiceAccount = "bookinfo-reviews"
	ws[1].ServiceAccount = "reviews-v2"
	ws[2].ServiceAccount = "bookinfo-productpage"
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
	return newShared(mesh), ws
}

const (
	meshStrict = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: istio-system}
spec:
  mtls: {mode: STRICT}
`
	namespaceDisable = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: default}
spec:
  mtls: {mode: DISABLE}
`
	workloadStrictPortDisable = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: reviews, namespace: default}
spec:
  selector: {matchLabels: {app: reviews}}
  mtls: {mode: STRICT}
  portLevelMtls:
    9090: {mode: DISABLE}
`
	workloadUnsetPortStrict = `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: reviews-v2, namespace: default}
spec:
  selector: {matchLabels: {app: reviews, version: v2}}
  portLevelMtls:
    9090: {mode: STRICT}
`
)

// TestPeerAuthenticationGolden checks the inbound listeners of reviews v1 under
// PeerAuthentications at each level.
func TestPeerAuthenticationGolden(t *testing.T) {
	tests := []struct{ name, yaml string }{
		{"mtls-inbound-permissive-default", ""},
		{"mtls-inbound-mesh-strict", meshStrict},
		{"mtls-inbound-namespace-disable-over-mesh", meshStrict + "---\n" + namespaceDisable},
		{"mtls-inbound-workload-strict-port-disable", namespaceDisable + "---\n" + workloadStrictPortDisable},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sh, ws := mtlsMesh(t, tc.yaml, withMTLS)
			res := BuildProxy(ws[0], sh)
			golden(t, tc.name, render(t, &Resources{Listeners: res.Listeners[1:]}))
			if len(sh.problems) > 0 {
				t.Errorf("problems: %+v", sh.problems)
			}
		})
	}
}

// TestPeerAuthenticationPrecedence checks Istio's precedence, level by level, for every
// workload port.
func TestPeerAuthenticationPrecedence(t *testing.T) {
	const (
		S = security.PeerAuthentication_MutualTLS_STRICT
		P = security.PeerAuthentication_MutualTLS_PERMISSIVE
		D = security.PeerAuthentication_MutualTLS_DISABLE
	)
	type want struct {
		workload int
		port     uint32
		mode     mtlsMode
	}
	tests := []struct {
		name string
		yaml string
		want []want
	}{
		{"nothing is permissive", "", []want{{0, 9080, P}, {3, 9080, P}}},
		{"mesh strict reaches every namespace", meshStrict, []want{{0, 9080, S}, {3, 9080, S}}},
		{"namespace beats mesh", meshStrict + "---\n" + namespaceDisable, []want{{0, 9080, D}, {2, 9080, D}, {3, 9080, S}}},
		{"workload beats namespace, port beats workload", namespaceDisable + "---\n" + workloadStrictPortDisable,
			[]want{{0, 9080, S}, {0, 9090, D}, {1, 9080, S}, {2, 9080, D}}},
		{"unset inherits, port level still applies", meshStrict + "---\n" + namespaceDisable + "---\n" + workloadUnsetPortStrict,
			[]want{{1, 9080, D}, {1, 9090, S}, {0, 9090, D}}},
		{"a selector in the root namespace is not mesh-wide", `apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: gw, namespace: istio-system}
spec:
  selector: {matchLabels: {app: reviews}}
  mtls: {mode: STRICT}
`, []want{{0, 9080, P}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sh, ws := mtlsMesh(t, tc.yaml, withMTLS)
			for _, w := range tc.want {
				if got := sh.mesh.peerAuthMode(ws[w.workload], w.port, &sh.problems); got != w.mode {
					t.Errorf("%s/%s port %d: %v, want %v", ws[w.workload].Namespace, ws[w.workload].Name, w.port, got, w.mode)
				}
			}
		})
	}
}

func hostClusters(rs []types.Resource, host string) []types.Resource {
	var out []types.Resource
	for _, r := range rs {
		if c, ok := r.(*clusterv3.Cluster); ok && strings.HasSuffix(c.GetName(), "|"+host) {
			out = append(out, c)
		}
		if la, ok := r.(*endpointv3.ClusterLoadAssignment); ok && strings.HasSuffix(la.GetClusterName(), "|"+host) {
			out = append(out, la)
		}
	}
	return out
}

// TestClusterTLSGolden checks auto mTLS and DestinationRule tls modes on outbound clusters.
func TestClusterTLSGolden(t *testing.T) {
	const reviews = "reviews.default.svc.cluster.local"
	tests := []struct {
		name, yaml, host string
		endpoints        bool
	}{
		{"mtls-auto-clusters", "", reviews, true},
		{"mtls-auto-port-disabled", workloadStrictPortDisable, reviews, true},
		{"mtls-destination-rule-modes", `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    tls: {mode: ISTIO_MUTUAL}
    portLevelSettings:
    - port: {number: 9090}
      tls: {mode: DISABLE}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      tls: {mode: SIMPLE, caCertificates: /etc/certs/ca.pem, sni: reviews.example.com, subjectAltNames: [reviews.example.com]}
  - name: v2
    labels: {version: v2}
    trafficPolicy:
      tls: {mode: MUTUAL, clientCertificate: /etc/certs/client.pem, privateKey: /etc/certs/client-key.pem}
`, reviews, false},
		{"mtls-external-mutual", `apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: bank}
spec:
  hosts: [api.bank.example]
  ports: [{number: 443, name: https, protocol: HTTPS}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: bank}
spec:
  host: api.bank.example
  trafficPolicy:
    tls: {mode: MUTUAL, clientCertificate: /etc/certs/client.pem, privateKey: /etc/certs/client-key.pem, caCertificates: /etc/certs/bank-ca.pem}
`, "api.bank.example", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sh, ws := mtlsMesh(t, tc.yaml, withMTLS)
			res := BuildProxy(ws[2], sh)
			out := &Resources{Clusters: hostClusters(res.Clusters, tc.host)}
			if tc.endpoints {
				out.Endpoints = hostClusters(res.Endpoints, tc.host)
			}
			golden(t, tc.name, render(t, out))
			if len(sh.problems) > 0 {
				t.Errorf("problems: %+v", sh.problems)
			}
		})
	}
}

func TestMTLSReachesGatewaysButNotProxylessClients(t *testing.T) {
	sh, ws := mtlsMesh(t, "", withMTLS)
	const name = "outbound|9080||reviews.default.svc.cluster.local"
	find := func(rs []types.Resource) *clusterv3.Cluster {
		for _, r := range rs {
			if c := r.(*clusterv3.Cluster); c.GetName() == name {
				return c
			}
		}
		t.Fatalf("no cluster %s", name)
		return nil
	}
	if c := find(BuildProxy(ws[5], sh).Clusters); len(c.GetTransportSocketMatches()) != 2 {
		t.Errorf("the gateway's cluster has no auto mTLS: %v", c)
	}
	if c := find(BuildProxy(ws[4], sh).Clusters); len(c.GetTransportSocketMatches()) != 0 {
		t.Errorf("a proxyless client got transport_socket_matches, which grpc-go refuses: %v", c)
	}
	// The shared clusters are not modified for the proxyless client.
	if c := find(sh.clusters); len(c.GetTransportSocketMatches()) != 2 {
		t.Errorf("the shared cluster lost its auto mTLS")
	}
}

func TestMTLSProblems(t *testing.T) {
	dr := `apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  trafficPolicy:
    tls: {mode: SIMPLE, credentialName: reviews-ca, insecureSkipVerify: true}
`
	tests := []struct {
		name     string
		yaml     string
		features Features
		want     []string
	}{
		{"not enforced without proxy support", meshStrict + "---\n" + dr, Features{},
			[]string{"PeerAuthentication/istio-system/default: mutual TLS is not enforced", "DestinationRule/default/reviews: spec.trafficPolicy.tls is not enforced"}},
		{"fields without a translation", dr, withMTLS,
			[]string{"spec.trafficPolicy.tls.credentialName is not supported", "spec.trafficPolicy.tls.insecureSkipVerify is not supported"}},
		{"two selecting policies", workloadStrictPortDisable + "---\n" + strings.Replace(workloadUnsetPortStrict, "9090: {mode: STRICT}", "9080: {mode: STRICT}", 1), withMTLS,
			[]string{"workload default/reviews-v2 is selected by several PeerAuthentications ([reviews reviews-v2]); only reviews applies"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			sh, ws := mtlsMesh(t, tc.yaml, tc.features)
			for _, w := range ws {
				BuildProxy(w, sh)
			}
			var got []string
			for _, p := range sh.problems {
				got = append(got, p.Resource+": "+p.Message)
			}
			all := strings.Join(got, "\n")
			for _, w := range tc.want {
				if !strings.Contains(all, w) {
					t.Errorf("problems:\n%s\nwant one containing %q", all, w)
				}
			}
		})
	}
}

// A listener without mutual TLS keeps Envoy's single plaintext chain.
func TestDisableKeepsOnePlaintextChain(t *testing.T) {
	l := inboundListener(mustAddr("127.0.0.5"), 9080)
	applyPeerAuthMode(l, 9080, security.PeerAuthentication_MutualTLS_DISABLE)
	if len(l.GetFilterChains()) != 1 || l.GetFilterChains()[0].GetTransportSocket() != nil || len(l.GetListenerFilters()) != 0 {
		t.Fatalf("DISABLE changed the listener: %v", l)
	}
}

func TestMTLSModesForTheAPI(t *testing.T) {
	rs, err := config.ParseYAML([]byte(namespaceDisable + "---\n" + workloadStrictPortDisable))
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{features: withMTLS}
	w := workload("default", "reviews", "v1", "127.0.0.5", meta.PortMapping{Port: 9080, AppPort: 19080}, meta.PortMapping{Port: 9090, AppPort: 19090})
	if got := s.MTLSModes(w); got != nil {
		t.Fatalf("before any configuration: %v", got)
	}
	s.config.Store(&loadedConfig{config: IndexConfig(rs)})
	got := s.MTLSModes(w)
	if len(got) != 2 || got[9080] != "STRICT" || got[9090] != "DISABLE" {
		t.Fatalf("modes %v, want 9080 STRICT and 9090 DISABLE", got)
	}
}
