package listener

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/sluicemesh/sluice/proxy/internal/cluster"
	"github.com/sluicemesh/sluice/proxy/internal/identity"
)

// testCA is a small mesh CA for tests.
type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func newTestCA(t testing.TB) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"test mesh"}},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{cert: cert, key: key, pool: pool}
}

var serial atomic.Int64

// issue returns a workload certificate for spiffe://cluster.local/ns/<ns>/sa/<sa>, valid
// from notBefore for a day.
func (ca *testCA) issue(t testing.TB, ns, sa string, notBefore time.Time) *tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	u, _ := url.Parse("spiffe://cluster.local/ns/" + ns + "/sa/" + sa)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial.Add(1) + 1), URIs: []*url.URL{u},
		NotBefore: notBefore, NotAfter: notBefore.Add(24 * time.Hour),
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func (ca *testCA) identity(t testing.TB, ns, sa string) *identity.Static {
	return &identity.Static{Identity: spiffeid.RequireFromString("spiffe://cluster.local/ns/" + ns + "/sa/" + sa),
		Cert: ca.issue(t, ns, sa, time.Now().Add(-time.Minute)), Pool: ca.pool}
}

func mustAnyT(t testing.TB, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// istioCommon is the CommonTlsContext the server sends for Istio mutual TLS.
func istioCommon(sans ...string) *tlsv3.CommonTlsContext {
	var ms []*tlsv3.SubjectAltNameMatcher
	for _, s := range sans {
		ms = append(ms, &tlsv3.SubjectAltNameMatcher{SanType: tlsv3.SubjectAltNameMatcher_URI,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}}})
	}
	return &tlsv3.CommonTlsContext{
		TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2},
		TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: "default"}},
		ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
			CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
				DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: ms},
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: "ROOTCA"},
			}},
	}
}

func downstreamSocket(t testing.TB) *corev3.TransportSocket {
	common := istioCommon()
	common.AlpnProtocols = []string{"h2", "http/1.1"}
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
		TypedConfig: mustAnyT(t, &tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: common})}}
}

func upstreamSocket(t testing.TB, sans ...string) *corev3.TransportSocket {
	return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{
		TypedConfig: mustAnyT(t, &tlsv3.UpstreamTlsContext{Sni: "outbound_.9080_._.reviews.default.svc.cluster.local", CommonTlsContext: istioCommon(sans...)})}}
}

// mtlsListener is a listener proto answering "ok", in the shape the server sends for mode.
func mtlsListener(t testing.TB, addr, mode string) *listenerv3.Listener {
	t.Helper()
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "inbound",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: direct("ok")},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: routerTypeURL}}}}}
	host, port, _ := net.SplitHostPort(addr)
	p, _ := net.LookupPort("tcp", port)
	filters := []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAnyT(t, hcm)}}}
	l := &listenerv3.Listener{Name: "inbound|" + port,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}}}
	secure := &listenerv3.FilterChain{Filters: filters, TransportSocket: downstreamSocket(t),
		FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "tls"}}
	plain := &listenerv3.FilterChain{Filters: filters, FilterChainMatch: &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer"}}
	inspector := []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAnyT(t, &tlsinspectorv3.TlsInspector{})}}}
	switch mode {
	case "STRICT":
		l.FilterChains, l.ListenerFilters = []*listenerv3.FilterChain{secure}, inspector
	case "PERMISSIVE":
		l.FilterChains, l.ListenerFilters = []*listenerv3.FilterChain{secure, plain}, inspector
	default:
		l.FilterChains = []*listenerv3.FilterChain{{Filters: filters}}
	}
	return l
}

// serveMTLS starts a Manager serving one listener of mode with identity id (nil for none).
func serveMTLS(t *testing.T, mode string, id identity.Source) (string, *Stats) {
	t.Helper()
	stats := &Stats{}
	m := NewManager(stats, slog.New(slog.DiscardHandler), time.Second)
	m.SetIdentity(id)
	addr := freeAddr(t)
	cfg, err := Compile(mtlsListener(t, addr, mode))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(map[string]Desired{cfg.Name: {Config: cfg, Routes: cfg.Inline}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Drain(t.Context()) })
	return addr, stats
}

// client returns an HTTP/1.1 or HTTP/2 client whose connections use the upstream socket ts
// (nil for plaintext) with identity id.
func client(t *testing.T, ts *corev3.TransportSocket, id identity.Source, h2 bool) *http.Transport {
	t.Helper()
	pools := &cluster.Pools{Identity: id}
	cfg, err := cluster.Compile(&clusterv3.Cluster{Name: "c", ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}, TransportSocket: ts})
	if err != nil {
		t.Fatal(err)
	}
	tr := pools.ForTLS(cfg, cfg.TLS)
	t.Cleanup(pools.CloseIdle)
	if h2 {
		return tr.H2C
	}
	return tr.HTTP1
}

func fetch(rt http.RoundTripper, addr string) (*http.Response, string, error) {
	req, _ := http.NewRequest("GET", "http://"+addr+"/", nil)
	res, err := rt.RoundTrip(req)
	if err != nil {
		return nil, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res, string(b), err
}

func TestMutualTLS(t *testing.T) {
	ca := newTestCA(t)
	server := ca.identity(t, "default", "reviews")
	caller := ca.identity(t, "default", "productpage")
	const want = "spiffe://cluster.local/ns/default/sa/reviews"
	expired := &identity.Static{Identity: caller.Identity, Pool: ca.pool,
		Cert: ca.issue(t, "default", "productpage", time.Now().Add(-48*time.Hour))}
	forged := newTestCA(t).identity(t, "default", "productpage")
	forged.Pool = ca.pool // it trusts the mesh, but the mesh does not trust its issuer

	tests := []struct {
		name    string
		mode    string
		socket  *corev3.TransportSocket // nil: plaintext
		id      identity.Source
		h2      bool
		wantErr string // "" means 200 "ok"; else alternatives separated by "|"
	}{
		{"strict mutual handshake", "STRICT", upstreamSocket(t, want), caller, false, ""},
		{"strict over HTTP/2 by ALPN", "STRICT", upstreamSocket(t, want), caller, true, ""},
		{"strict refuses plaintext", "STRICT", nil, nil, false, "connection reset|EOF|broken pipe"},
		{"permissive accepts TLS", "PERMISSIVE", upstreamSocket(t, want), caller, false, ""},
		{"permissive accepts plaintext", "PERMISSIVE", nil, nil, false, ""},
		{"permissive plaintext HTTP/2", "PERMISSIVE", nil, nil, true, ""},
		{"wrong SAN refused by the caller", "STRICT", upstreamSocket(t, "spiffe://cluster.local/ns/default/sa/ratings"), caller, false, "none of which the cluster accepts"},
		{"expired client certificate refused", "STRICT", upstreamSocket(t, want), expired, false, "remote error"},
		{"forged client certificate refused", "STRICT", upstreamSocket(t, want), forged, false, "remote error"},
		{"disable is plaintext only", "DISABLE", upstreamSocket(t, want), caller, false, "first record does not look like a TLS handshake"},
		{"a caller without a certificate speaks plaintext", "PERMISSIVE", upstreamSocket(t, want), &identity.Static{Pool: ca.pool}, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addr, stats := serveMTLS(t, tc.mode, server)
			res, body, err := fetch(client(t, tc.socket, tc.id, tc.h2), addr)
			if tc.wantErr != "" {
				if err == nil || !slices.ContainsFunc(strings.Split(tc.wantErr, "|"), func(w string) bool { return strings.Contains(err.Error(), w) }) {
					t.Fatalf("got %v %q, want an error containing %q", err, body, tc.wantErr)
				}
				if tc.socket == nil && stats.PlaintextRefused.Load() != 1 {
					t.Errorf("plaintext refusals counted %d, want 1", stats.PlaintextRefused.Load())
				}
				return
			}
			if err != nil || res.StatusCode != 200 || body != "ok" {
				t.Fatalf("got %v %q, want 200 ok", err, body)
			}
			if tc.h2 != (res.ProtoMajor == 2) {
				t.Errorf("answered over HTTP/%d", res.ProtoMajor)
			}
		})
	}
}

func TestStrictWithoutCertificateRefusesEverything(t *testing.T) {
	ca := newTestCA(t)
	addr, _ := serveMTLS(t, "STRICT", &identity.Static{Pool: ca.pool})
	if _, _, err := fetch(client(t, upstreamSocket(t), ca.identity(t, "default", "productpage"), false), addr); err == nil {
		t.Fatal("a TLS handshake succeeded with a server that has no certificate")
	}
	if _, _, err := fetch(client(t, nil, nil, false), addr); err == nil {
		t.Fatal("a plaintext request succeeded under STRICT")
	}
}

// rotating is an identity.Source whose certificate can be replaced.
type rotating struct {
	identity.Static
	cert atomic.Pointer[tls.Certificate]
}

func (r *rotating) Certificate() (*tls.Certificate, error) { return r.cert.Load(), nil }

func TestPeerIdentityReachesTheRequestAndRotationNeedsNoRestart(t *testing.T) {
	ca := newTestCA(t)
	server := ca.identity(t, "default", "reviews")
	caller := &rotating{Static: identity.Static{Pool: ca.pool}}
	first := ca.issue(t, "default", "productpage", time.Now().Add(-time.Minute))
	caller.cert.Store(first)

	cfg, err := Compile(mtlsListener(t, freeAddr(t), "PERMISSIVE"))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", cfg.Address)
	if err != nil {
		t.Fatal(err)
	}
	sl := newSniffListener(ln, cfg.TLSMode, cfg.TLS.ServerConfig(server), &Stats{}, slog.New(slog.DiscardHandler))
	var protos http.Protocols
	protos.SetHTTP1(true)
	protos.SetHTTP2(true)
	protos.SetUnencryptedHTTP2(true)
	srv := &http.Server{Protocols: &protos, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS == nil || len(r.TLS.PeerCertificates) == 0 {
			io.WriteString(w, "plaintext")
			return
		}
		io.WriteString(w, r.TLS.PeerCertificates[0].URIs[0].String()+" "+r.TLS.PeerCertificates[0].SerialNumber.String())
	})}
	done := make(chan struct{})
	go func() { defer close(done); srv.Serve(sl) }()
	defer func() { srv.Close(); <-done }()

	rt := client(t, upstreamSocket(t, "spiffe://cluster.local/ns/default/sa/reviews"), caller, false)
	_, body, err := fetch(rt, cfg.Address)
	wantID := "spiffe://cluster.local/ns/default/sa/productpage "
	if err != nil || body != wantID+first.Leaf.SerialNumber.String() {
		t.Fatalf("got %q %v, want the caller's SPIFFE ID and serial in Request.TLS", body, err)
	}
	// Rotate: the open connection keeps its certificate, the next connection presents the
	// new one.
	second := ca.issue(t, "default", "productpage", time.Now().Add(-time.Minute))
	caller.cert.Store(second)
	if _, body, _ := fetch(rt, cfg.Address); body != wantID+first.Leaf.SerialNumber.String() {
		t.Fatalf("the kept-alive connection answered %q", body)
	}
	rt.CloseIdleConnections()
	if _, body, _ := fetch(rt, cfg.Address); body != wantID+second.Leaf.SerialNumber.String() {
		t.Fatalf("after rotation a new connection answered %q, want the new serial", body)
	}
	if _, body, _ := fetch(client(t, nil, nil, false), cfg.Address); body != "plaintext" {
		t.Fatalf("a plaintext request saw %q", body)
	}
}

func TestTLSConfigNACKs(t *testing.T) {
	addr := freeAddr(t)
	withDownstream := func(mod func(*tlsv3.DownstreamTlsContext)) *listenerv3.Listener {
		l := mtlsListener(t, addr, "STRICT")
		common := istioCommon()
		dc := &tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: common}
		mod(dc)
		l.FilterChains[0].TransportSocket.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: mustAnyT(t, dc)}
		return l
	}
	tests := []struct {
		name string
		l    *listenerv3.Listener
		want string
	}{
		{"unsupported context field", withDownstream(func(dc *tlsv3.DownstreamTlsContext) {
			dc.OcspStaplePolicy = tlsv3.DownstreamTlsContext_STRICT_STAPLING
		}), "filter_chains[0].transport_socket.typed_config.ocsp_staple_policy: not supported by sluice-proxy"},
		{"unknown secret", withDownstream(func(dc *tlsv3.DownstreamTlsContext) {
			dc.CommonTlsContext.TlsCertificateSdsSecretConfigs[0].Name = "other"
		}), `tls_certificate_sds_secret_configs[0].name: "other" is not a secret`},
		{"sds config source", withDownstream(func(dc *tlsv3.DownstreamTlsContext) {
			dc.CommonTlsContext.TlsCertificateSdsSecretConfigs[0].SdsConfig = &corev3.ConfigSource{}
		}), "tls_certificate_sds_secret_configs[0].sds_config: not supported by sluice-proxy"},
		{"chain match without inspector", func() *listenerv3.Listener {
			l := mtlsListener(t, addr, "PERMISSIVE")
			l.ListenerFilters = nil
			return l
		}(), "needs the envoy.filters.listener.tls_inspector listener filter"},
		{"other chain match", func() *listenerv3.Listener {
			l := mtlsListener(t, addr, "STRICT")
			l.FilterChains[0].FilterChainMatch.ServerNames = []string{"x"}
			return l
		}(), "filter_chains[0].filter_chain_match.server_names: not supported by sluice-proxy"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.l)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// TestAutoMTLS sends through a cluster with Istio's transport_socket_matches: the endpoint
// EDS labels tlsMode "istio" is reached over mutual TLS (its listener is STRICT), the other
// in plaintext.
func TestAutoMTLS(t *testing.T) {
	ca := newTestCA(t)
	secureAddr, _ := serveMTLS(t, "STRICT", ca.identity(t, "default", "reviews"))
	plainAddr, _ := serveMTLS(t, "DISABLE", nil)
	c := &clusterv3.Cluster{Name: "outbound|9080||reviews.default.svc.cluster.local",
		ClusterDiscoveryType: &clusterv3.Cluster_Type{Type: clusterv3.Cluster_EDS},
		EdsClusterConfig:     &clusterv3.Cluster_EdsClusterConfig{EdsConfig: &corev3.ConfigSource{ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}}}},
		TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{
			{Name: "tlsMode-istio", Match: structOf(t, map[string]any{"tlsMode": "istio"}), TransportSocket: upstreamSocket(t, "spiffe://cluster.local/ns/default/sa/reviews")},
			{Name: "tlsMode-disabled", Match: structOf(t, nil), TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer",
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"}}}},
		}}
	cfg, err := cluster.Compile(c)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Protocol = cluster.Downstream // as use_downstream_protocol_config sets it
	ep := func(addr string, md *corev3.Metadata) *endpointv3.LbEndpoint {
		host, port, _ := net.SplitHostPort(addr)
		p, _ := net.LookupPort("tcp", port)
		return &endpointv3.LbEndpoint{Metadata: md, HostIdentifier: &endpointv3.LbEndpoint_Endpoint{Endpoint: &endpointv3.Endpoint{
			Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
				Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}}}}}
	}
	a, err := cluster.CompileAssignment(&endpointv3.ClusterLoadAssignment{ClusterName: c.Name, Endpoints: []*endpointv3.LocalityLbEndpoints{{
		LbEndpoints: []*endpointv3.LbEndpoint{
			ep(secureAddr, &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.transport_socket_match": structOf(t, map[string]any{"tlsMode": "istio"})}}),
			ep(plainAddr, nil),
		}}}}, false)
	if err != nil {
		t.Fatal(err)
	}
	pools := &cluster.Pools{Identity: ca.identity(t, "default", "productpage")}
	defer pools.CloseIdle()
	cl := cluster.New(cfg, a, nil, pools)
	for _, h2 := range []bool{false, true} {
		for _, addr := range []string{secureAddr, plainAddr} {
			res, body, err := fetch(cl.RoundTripper(h2), addr)
			if err != nil || body != "ok" {
				t.Fatalf("HTTP/2 %v, endpoint %s: got %q %v", h2, addr, body, err)
			}
			if h2 != (res.ProtoMajor == 2) {
				t.Errorf("endpoint %s answered over HTTP/%d", addr, res.ProtoMajor)
			}
		}
	}
}

func structOf(t *testing.T, m map[string]any) *structpb.Struct {
	t.Helper()
	s, err := structpb.NewStruct(m)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestUpstreamTLSNACKs(t *testing.T) {
	sock := func(mod func(*tlsv3.UpstreamTlsContext)) *corev3.TransportSocket {
		uc := &tlsv3.UpstreamTlsContext{CommonTlsContext: istioCommon("spiffe://cluster.local/ns/default/sa/reviews")}
		mod(uc)
		return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAnyT(t, uc)}}
	}
	tests := []struct {
		name string
		c    *clusterv3.Cluster
		want string
	}{
		{"unsupported context field", &clusterv3.Cluster{TransportSocket: sock(func(uc *tlsv3.UpstreamTlsContext) { uc.AllowRenegotiation = true })},
			"transport_socket.typed_config.allow_renegotiation: not supported by sluice-proxy"},
		{"certificate provider", &clusterv3.Cluster{TransportSocket: sock(func(uc *tlsv3.UpstreamTlsContext) {
			uc.CommonTlsContext.TlsCertificateProviderInstance = &tlsv3.CertificateProviderPluginInstance{InstanceName: "x"}
		})}, "transport_socket.typed_config.common_tls_context.tls_certificate_provider_instance: not supported by sluice-proxy"},
		{"missing file", &clusterv3.Cluster{TransportSocket: sock(func(uc *tlsv3.UpstreamTlsContext) {
			uc.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: "/nonexistent/ca.pem"}}}}
		})}, "transport_socket.typed_config.common_tls_context.validation_context.trusted_ca.filename: open /nonexistent/ca.pem"},
		{"other match", &clusterv3.Cluster{TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{{Name: "x",
			Match: structOf(t, map[string]any{"zone": "a"}), TransportSocket: sock(func(*tlsv3.UpstreamTlsContext) {})}}},
			"transport_socket_matches[0].match: sluice-proxy matches only {tlsMode: istio}"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.c.Name = "c"
			tc.c.ClusterDiscoveryType = &clusterv3.Cluster_Type{Type: clusterv3.Cluster_STATIC}
			_, err := cluster.Compile(tc.c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}
