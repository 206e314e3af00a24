package xds

import (
	"slices"
	"strconv"
	"strings"
	"sync/atomic"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluicemesh/sluice/server/internal/registry"
)

// TLS at the gateway, in Istio's shapes:
//
//   - A Gateway server with protocol HTTPS and tls.mode SIMPLE or MUTUAL gets a filter chain
//     on its port's listener, matched by SNI (filter_chain_match.server_names: the server's
//     hosts, none for "*"), whose DownstreamTlsContext names its certificate by SDS:
//     "kubernetes://<credentialName>", as Istio names gateway credentials, and for MUTUAL
//     the client CA "kubernetes://<credentialName>-cacert".
//   - The credentials are Sluice secrets of the gateway proxy's namespace, as Istio reads
//     credentialName from the gateway workload's namespace. They are sent as SDS Secret
//     resources on the same ADS stream, only to the gateway proxies whose Gateways name them.
//   - An HTTP server with tls.httpsRedirect answers every request for its hosts with a 301 to
//     the same URL in https.
//
// PASSTHROUGH, AUTO_PASSTHROUGH, ISTIO_MUTUAL and OPTIONAL_MUTUAL are reported as not
// enforced, and the server is left out.

// GatewaySecret is a TLS credential in the clear, as a gateway proxy receives it over SDS.
type GatewaySecret struct {
	// CertPEM is the certificate chain, leaf first; KeyPEM its private key.
	CertPEM, KeyPEM []byte
	// CACertPEM verifies client certificates (MUTUAL); nil when the secret has none.
	CACertPEM []byte
}

// gatewaySecrets holds the credentials by "namespace/name"; nil until SetSecrets.
type gatewaySecrets = atomic.Pointer[map[string]GatewaySecret]

// SetSecrets replaces the TLS credentials gateways may serve, keyed "namespace/name", and
// pushes the change.
func (s *Server) SetSecrets(m map[string]GatewaySecret) {
	s.secrets.Store(&m)
	s.Kick()
}

// credentialSDSName is the SDS name of a gateway credential's certificate, and
// caSDSName that of its client CA, as Istio names them.
func credentialSDSName(credential string) string { return "kubernetes://" + credential }
func caSDSName(credential string) string         { return "kubernetes://" + credential + "-cacert" }

// serverTLS reads a server's tls block: whether the gateway serves it (and how), and the
// problem to report when it does not.
func serverTLS(gateway string, srv *networking.Server, problems *[]Problem) (ok bool) {
	t := srv.GetTls()
	port := strconv.FormatUint(uint64(srv.GetPort().GetNumber()), 10)
	report := func(msg string) {
		*problems = append(*problems, Problem{Resource: "Gateway/" + gateway, Message: "server on port " + port + ": " + msg})
	}
	switch t.GetMode() {
	case networking.ServerTLSSettings_SIMPLE, networking.ServerTLSSettings_MUTUAL:
	default:
		report("tls.mode " + t.GetMode().String() + " is not enforced by sluice gateways (use SIMPLE or MUTUAL); the server is not served")
		return false
	}
	if credential(t) == "" {
		report("tls: sluice gateways read certificates from Sluice secrets only: set credentialName (serverCertificate and privateKey files are not served)")
		return false
	}
	// Settings the gateway does not apply are named, so that nothing looks enforced that
	// is not; the server is served without them.
	var ignored []string
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"credentialNames beyond the first", len(t.GetCredentialNames()) > 1},
		{"caCertCredentialName (put the CA certificate in the credential's secret with --ca-cert)", t.GetCaCertCredentialName() != ""},
		{"caCertificates", t.GetCaCertificates() != ""},
		{"caCrl", t.GetCaCrl() != ""},
		{"subjectAltNames", len(t.GetSubjectAltNames()) > 0},
		{"verifyCertificateSpki", len(t.GetVerifyCertificateSpki()) > 0},
		{"verifyCertificateHash", len(t.GetVerifyCertificateHash()) > 0},
		{"maxProtocolVersion", t.GetMaxProtocolVersion() != networking.ServerTLSSettings_TLS_AUTO},
		{"cipherSuites", len(t.GetCipherSuites()) > 0},
	} {
		if f.set {
			ignored = append(ignored, f.name)
		}
	}
	switch t.GetMinProtocolVersion() {
	case networking.ServerTLSSettings_TLSV1_0, networking.ServerTLSSettings_TLSV1_1:
		ignored = append(ignored, "minProtocolVersion below TLSV1_2 (TLS 1.2 is the least served)")
	}
	if len(ignored) > 0 {
		report("tls." + strings.Join(ignored, ", tls.") + ": not enforced by sluice gateways")
	}
	return true
}

// credential is the secret a server's tls names.
func credential(t *networking.ServerTLSSettings) string {
	if t.GetCredentialName() != "" {
		return t.GetCredentialName()
	}
	if len(t.GetCredentialNames()) > 0 {
		return t.GetCredentialNames()[0]
	}
	return ""
}

// gatewayTLSListener is the listener of an HTTPS port: one filter chain per server, chosen by
// SNI, each with the same connection manager and route table.
func (sh *shared) gatewayTLSListener(w registry.Workload, port uint32, servers []gatewayServer) *listenerv3.Listener {
	p := strconv.FormatUint(uint64(port), 10)
	l := listener("gateway|"+p, w.Address, port, rdsManager("gateway_"+p, gatewayRouteName(port), sh.mesh.Features, true))
	template := l.FilterChains[0]
	l.FilterChains = nil
	l.ListenerFilters = []*listenerv3.ListenerFilter{{
		Name:       tlsInspectorFilter,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
	}}
	for i, srv := range servers {
		fc := &listenerv3.FilterChain{
			Name:    "gateway|" + p + "|" + strconv.Itoa(i) + "|" + credential(srv.tls),
			Filters: template.Filters,
			TransportSocket: &corev3.TransportSocket{
				Name:       tlsTransportSocket,
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(gatewayTLSContext(srv.tls))},
			},
		}
		if !slices.Contains(srv.hosts, "*") {
			fc.FilterChainMatch = &listenerv3.FilterChainMatch{ServerNames: slices.Clone(srv.hosts)}
		}
		l.FilterChains = append(l.FilterChains, fc)
	}
	return l
}

// gatewayTLSContext is a server's DownstreamTlsContext.
func gatewayTLSContext(t *networking.ServerTLSSettings) *tlsv3.DownstreamTlsContext {
	cred := credential(t)
	minVersion := tlsv3.TlsParameters_TLSv1_2
	if t.GetMinProtocolVersion() == networking.ServerTLSSettings_TLSV1_3 {
		minVersion = tlsv3.TlsParameters_TLSv1_3
	}
	ctx := &tlsv3.DownstreamTlsContext{
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams:     &tlsv3.TlsParameters{TlsMinimumProtocolVersion: minVersion},
			AlpnProtocols: []string{"h2", "http/1.1"},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{
				Name: credentialSDSName(cred), SdsConfig: adsSource(),
			}},
		},
	}
	if t.GetMode() == networking.ServerTLSSettings_MUTUAL {
		ctx.RequireClientCertificate = wrapperspb.Bool(true)
		ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
			ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: caSDSName(cred), SdsConfig: adsSource()},
		}
	}
	return ctx
}

// redirectVirtualHost answers every request for host with a 301 to https.
func redirectVirtualHost(host string, port uint32) *routev3.VirtualHost {
	return &routev3.VirtualHost{
		Name:    host + ":" + strconv.FormatUint(uint64(port), 10),
		Domains: gatewayDomains(host, port),
		Routes: []*routev3.Route{{
			Match: &routev3.RouteMatch{PathSpecifier: &routev3.RouteMatch_Prefix{Prefix: "/"}},
			Action: &routev3.Route_Redirect{Redirect: &routev3.RedirectAction{
				SchemeRewriteSpecifier: &routev3.RedirectAction_HttpsRedirect{HttpsRedirect: true},
				ResponseCode:           routev3.RedirectAction_MOVED_PERMANENTLY,
			}},
		}},
	}
}

// gatewaySecretResources returns the SDS secrets a gateway proxy's TLS servers name, from secrets
// (keyed "namespace/name"), sorted by name. A secret that does not exist, or a MUTUAL server's
// secret without a CA certificate, is reported; the chain naming it refuses handshakes until
// it comes, and the rest of the gateway keeps serving.
func (sh *shared) gatewaySecretResources(w registry.Workload, secrets map[string]GatewaySecret) []types.Resource {
	servers := sh.gatewayServers(w)
	seen := map[string]bool{}
	var out []types.Resource
	for _, port := range sortedPorts(servers) {
		for _, srv := range servers[port] {
			if srv.tls == nil {
				continue
			}
			cred := credential(srv.tls)
			key := w.Namespace + "/" + cred
			sec, ok := secrets[key]
			if !ok {
				sh.problems = append(sh.problems, Problem{Resource: "Gateway/" + srv.gateway,
					Message: "secret " + key + " not found: create it with sluicectl secret create tls " + cred + " -n " + w.Namespace + " --cert FILE --key FILE; the server on port " + strconv.FormatUint(uint64(port), 10) + " refuses TLS handshakes until then"})
				continue
			}
			if !seen[credentialSDSName(cred)] {
				seen[credentialSDSName(cred)] = true
				out = append(out, &tlsv3.Secret{Name: credentialSDSName(cred), Type: &tlsv3.Secret_TlsCertificate{TlsCertificate: &tlsv3.TlsCertificate{
					CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: sec.CertPEM}},
					PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: sec.KeyPEM}},
				}}})
			}
			if srv.tls.GetMode() != networking.ServerTLSSettings_MUTUAL || seen[caSDSName(cred)] {
				continue
			}
			if len(sec.CACertPEM) == 0 {
				sh.problems = append(sh.problems, Problem{Resource: "Gateway/" + srv.gateway,
					Message: "secret " + key + " has no CA certificate, which tls.mode MUTUAL verifies clients with: create it again with --ca-cert; the server on port " + strconv.FormatUint(uint64(port), 10) + " refuses TLS handshakes until then"})
				continue
			}
			seen[caSDSName(cred)] = true
			out = append(out, &tlsv3.Secret{Name: caSDSName(cred), Type: &tlsv3.Secret_ValidationContext{ValidationContext: &tlsv3.CertificateValidationContext{
				TrustedCa: &corev3.DataSource{Specifier: &corev3.DataSource_InlineBytes{InlineBytes: sec.CACertPEM}},
			}}})
		}
	}
	slices.SortFunc(out, func(a, b types.Resource) int {
		an, bn := a.(*tlsv3.Secret).GetName(), b.(*tlsv3.Secret).GetName()
		if an < bn {
			return -1
		}
		if an > bn {
			return 1
		}
		return 0
	})
	return out
}
