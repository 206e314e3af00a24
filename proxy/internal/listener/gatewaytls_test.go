package listener

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// pemLeaf signs a certificate for name with ca, for servers or clients, and returns it and
// its key in PEM.
func (ca *testCA) pemLeaf(t *testing.T, name string, client bool) (certPEM, keyPEM []byte) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	usage := x509.ExtKeyUsageServerAuth
	if client {
		usage = x509.ExtKeyUsageClientAuth
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial.Add(1) + 1), Subject: pkix.Name{CommonName: name}, DNSNames: []string{name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &k.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kd, _ := x509.MarshalPKCS8PrivateKey(k)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kd})
}

func certSecret(name string, certPEM, keyPEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
		CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: certPEM}},
		PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: keyPEM}},
	}}}
}

func caSecret(name string, caPEM []byte) *tlsv3.Secret {
	return &tlsv3.Secret{Name: name, Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
		TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: caPEM}},
	}}}
}

// gatewayListener is a gateway listener as the control plane sends it: a SIMPLE chain for
// a.example.com, a MUTUAL chain for b.example.com, both answering "ok".
func gatewayListener(t *testing.T, addr string) *listenerv3.Listener {
	t.Helper()
	hcm := &hcmv3.HttpConnectionManager{StatPrefix: "gateway",
		RouteSpecifier: &hcmv3.HttpConnectionManager_RouteConfig{RouteConfig: direct("ok")},
		HttpFilters: []*hcmv3.HttpFilter{{Name: "envoy.filters.http.router",
			ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: &anypb.Any{TypeUrl: routerTypeURL}}}}}
	filters := []*listenerv3.Filter{{Name: "envoy.filters.network.http_connection_manager",
		ConfigType: &listenerv3.Filter_TypedConfig{TypedConfig: mustAnyT(t, hcm)}}}
	host, port, _ := net.SplitHostPort(addr)
	p, _ := net.LookupPort("tcp", port)
	sds := func(n string) *tlsv3.SdsSecretConfig { return &tlsv3.SdsSecretConfig{Name: n} }
	simple := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols: []string{"h2", "http/1.1"}, TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("kubernetes://a")}}}
	mutual := &tlsv3.DownstreamTlsContext{RequireClientCertificate: wrapperspb.Bool(true), CommonTlsContext: &tlsv3.CommonTlsContext{
		AlpnProtocols: []string{"h2", "http/1.1"}, TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{sds("kubernetes://b")},
		ValidationContextType: &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{ValidationContextSdsSecretConfig: sds("kubernetes://b-cacert")}}}
	socket := func(c *tlsv3.DownstreamTlsContext) *corev3.TransportSocket {
		return &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAnyT(t, c)}}
	}
	return &listenerv3.Listener{Name: "gateway|" + port,
		Address: &corev3.Address{Address: &corev3.Address_SocketAddress{SocketAddress: &corev3.SocketAddress{
			Address: host, PortSpecifier: &corev3.SocketAddress_PortValue{PortValue: uint32(p)}}}},
		ListenerFilters: []*listenerv3.ListenerFilter{{Name: "envoy.filters.listener.tls_inspector",
			ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAnyT(t, &tlsinspectorv3.TlsInspector{})}}},
		FilterChains: []*listenerv3.FilterChain{
			{FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{"a.example.com"}}, Filters: filters, TransportSocket: socket(simple)},
			{FilterChainMatch: &listenerv3.FilterChainMatch{ServerNames: []string{"b.example.com"}}, Filters: filters, TransportSocket: socket(mutual)},
		}}
}

// tlsGet requests https://sni/ from addr, trusting roots, presenting cert when not nil, and
// returns the body and the server certificate's common name.
func tlsGet(addr, sni string, roots *x509.CertPool, cert *tls.Certificate) (body, cn string, err error) {
	cfg := &tls.Config{RootCAs: roots, ServerName: sni}
	if cert != nil {
		cfg.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: cfg, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	req, _ := http.NewRequest("GET", "https://"+addr+"/", nil)
	res, err := tr.RoundTrip(req)
	if err != nil {
		return "", "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return string(b), res.TLS.PeerCertificates[0].Subject.CommonName, err
}

func TestGatewayTLSChains(t *testing.T) {
	ca := newTestCA(t)
	aCert, aKey := ca.pemLeaf(t, "a.example.com", false)
	bCert, bKey := ca.pemLeaf(t, "b.example.com", false)
	clientPEM, clientKey := ca.pemLeaf(t, "client", true)
	clientCert, _ := tls.X509KeyPair(clientPEM, clientKey)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw})

	m := NewManager(&Stats{}, slog.New(slog.DiscardHandler), time.Second)
	addr := freeAddr(t)
	cfg, err := Compile(gatewayListener(t, addr))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Gateway) != 2 || cfg.TLSMode != TLSOnly {
		t.Fatalf("compiled %d gateway chains, mode %v", len(cfg.Gateway), cfg.TLSMode)
	}
	if err := m.Apply(map[string]Desired{cfg.Name: {Config: cfg, Routes: cfg.Inline}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Drain(t.Context()) })

	// Before the secrets come, handshakes fail: the chains are warming.
	if _, _, err := tlsGet(addr, "a.example.com", ca.pool, nil); err == nil {
		t.Fatal("a handshake succeeded before the secret arrived")
	}
	if err := m.SetSecrets(map[string]*tlsv3.Secret{
		"kubernetes://a": certSecret("kubernetes://a", aCert, aKey),
		"kubernetes://b": certSecret("kubernetes://b", bCert, bKey), "kubernetes://b-cacert": caSecret("kubernetes://b-cacert", caPEM),
	}); err != nil {
		t.Fatal(err)
	}

	t.Run("SNI selects the chain", func(t *testing.T) {
		for _, sni := range []string{"a.example.com", "b.example.com"} {
			body, cn, err := tlsGet(addr, sni, ca.pool, &clientCert)
			if err != nil || body != "ok" || cn != sni {
				t.Errorf("SNI %s: body %q, certificate %q, err %v", sni, body, cn, err)
			}
		}
		if _, _, err := tlsGet(addr, "c.example.com", ca.pool, nil); err == nil {
			t.Error("a handshake for a name no chain serves succeeded")
		}
	})
	t.Run("MUTUAL refuses a client without a certificate", func(t *testing.T) {
		if _, _, err := tlsGet(addr, "b.example.com", ca.pool, nil); err == nil {
			t.Error("MUTUAL served a client without a certificate")
		}
		// SIMPLE asks for none.
		if body, _, err := tlsGet(addr, "a.example.com", ca.pool, nil); err != nil || body != "ok" {
			t.Errorf("SIMPLE without a client certificate: %q %v", body, err)
		}
	})
	t.Run("SDS swap keeps open connections", func(t *testing.T) {
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool, ServerName: "a.example.com"}}
		defer tr.CloseIdleConnections()
		get := func() (string, *big.Int) {
			req, _ := http.NewRequest("GET", "https://"+addr+"/", nil)
			res, err := tr.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			defer res.Body.Close()
			io.Copy(io.Discard, res.Body)
			return res.TLS.PeerCertificates[0].Subject.CommonName, res.TLS.PeerCertificates[0].SerialNumber
		}
		_, before := get()
		newCert, newKey := ca.pemLeaf(t, "a.example.com", false)
		if err := m.SetSecrets(map[string]*tlsv3.Secret{
			"kubernetes://a": certSecret("kubernetes://a", newCert, newKey),
			"kubernetes://b": certSecret("kubernetes://b", bCert, bKey), "kubernetes://b-cacert": caSecret("kubernetes://b-cacert", caPEM),
		}); err != nil {
			t.Fatal(err)
		}
		// The kept-alive connection still answers, with the certificate it was opened with.
		if _, serial := get(); serial.Cmp(before) != 0 {
			t.Errorf("the open connection changed certificate")
		}
		block, _ := pem.Decode(newCert)
		leaf, _ := x509.ParseCertificate(block.Bytes)
		if _, cn, err := tlsGet(addr, "a.example.com", ca.pool, nil); err != nil || cn != "a.example.com" {
			t.Fatalf("after the swap: %v", err)
		}
		cfg := &tls.Config{RootCAs: ca.pool, ServerName: "a.example.com"}
		c, err := tls.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if got := c.ConnectionState().PeerCertificates[0].SerialNumber; got.Cmp(leaf.SerialNumber) != 0 {
			t.Errorf("a new connection got serial %v, want the new certificate's %v", got, leaf.SerialNumber)
		}
	})
	t.Run("a secret that does not parse is refused, keeping the old ones", func(t *testing.T) {
		err := m.SetSecrets(map[string]*tlsv3.Secret{"kubernetes://a": certSecret("kubernetes://a", aCert, bKey)})
		if err == nil || !strings.Contains(err.Error(), `secret "kubernetes://a"`) {
			t.Fatalf("mismatched key: %v", err)
		}
		if strings.Contains(err.Error(), string(bKey[40:70])) {
			t.Error("the error shows the key")
		}
		if body, _, err := tlsGet(addr, "b.example.com", ca.pool, &clientCert); err != nil || body != "ok" {
			t.Errorf("after a refused update: %q %v", body, err)
		}
	})
}

func TestChooseChain(t *testing.T) {
	chains := []GatewayChain{
		{ServerNames: []string{"*.example.com"}, CertSecret: "wild"},
		{ServerNames: []string{"*.a.example.com"}, CertSecret: "wild-a"},
		{ServerNames: []string{"exact.example.com"}, CertSecret: "exact"},
		{CertSecret: "any"},
	}
	for sni, want := range map[string]string{
		"exact.example.com": "exact", "EXACT.example.com": "exact", "x.example.com": "wild",
		"x.a.example.com": "wild-a", "other.org": "any", "": "any",
	} {
		if got, ok := chooseChain(chains, sni); !ok || got.CertSecret != want {
			t.Errorf("SNI %q: chain %q, want %q", sni, got.CertSecret, want)
		}
	}
	if _, ok := chooseChain(chains[:3], "other.org"); ok {
		t.Error("a name no chain serves found one")
	}
}

func TestGatewayTLSNACKs(t *testing.T) {
	addr := freeAddr(t)
	with := func(mod func(l *listenerv3.Listener, dc *tlsv3.DownstreamTlsContext)) *listenerv3.Listener {
		l := gatewayListener(t, addr)
		var dc tlsv3.DownstreamTlsContext
		if err := l.FilterChains[0].TransportSocket.GetTypedConfig().UnmarshalTo(&dc); err != nil {
			t.Fatal(err)
		}
		mod(l, &dc)
		l.FilterChains[0].TransportSocket.ConfigType = &corev3.TransportSocket_TypedConfig{TypedConfig: mustAnyT(t, &dc)}
		return l
	}
	tests := []struct {
		name string
		l    *listenerv3.Listener
		want string
	}{
		{"unsupported field", with(func(_ *listenerv3.Listener, dc *tlsv3.DownstreamTlsContext) {
			dc.OcspStaplePolicy = tlsv3.DownstreamTlsContext_STRICT_STAPLING
		}), "filter_chains[0].transport_socket.typed_config.ocsp_staple_policy: not supported by sluice-proxy"},
		{"secret from elsewhere than ADS", with(func(_ *listenerv3.Listener, dc *tlsv3.DownstreamTlsContext) {
			dc.CommonTlsContext.TlsCertificateSdsSecretConfigs[0].SdsConfig = &corev3.ConfigSource{}
		}), "sds_config: sluice-proxy takes secrets over ADS only"},
		{"client certificate without a CA", with(func(_ *listenerv3.Listener, dc *tlsv3.DownstreamTlsContext) {
			dc.RequireClientCertificate = wrapperspb.Bool(true)
		}), "validation_context_sds_secret_config: required with require_client_certificate"},
		{"different filters", with(func(l *listenerv3.Listener, _ *tlsv3.DownstreamTlsContext) {
			l.FilterChains[1].Filters = nil
		}), "filter_chains[1].filters: sluice-proxy needs the same filters in every TLS chain"},
		{"two chains for any name", with(func(l *listenerv3.Listener, _ *tlsv3.DownstreamTlsContext) {
			l.FilterChains[0].FilterChainMatch, l.FilterChains[1].FilterChainMatch = nil, nil
		}), "filter_chains[1].filter_chain_match.server_names: two chains match any server name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Compile(tc.l)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	m := NewManager(&Stats{}, slog.New(slog.DiscardHandler), time.Second)
	if err := m.SetSecrets(map[string]*tlsv3.Secret{"x": {Name: "x"}}); err == nil || !strings.Contains(err.Error(), `secret "x": sluice-proxy takes a tls_certificate or a validation_context`) {
		t.Errorf("a secret of no kind: %v", err)
	}
}
