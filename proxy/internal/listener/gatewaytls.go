package listener

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"slices"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sluicemesh/sluice/proxy/internal/cluster"
	"github.com/sluicemesh/sluice/proxy/internal/support"
)

// TLS at a gateway. A gateway listener's filter chains are each a TLS server chosen by SNI
// (filter_chain_match.server_names; a chain without names takes any), whose certificate and
// client CA are SDS secrets by name, delivered on the ADS stream (SetSecrets). The secrets are
// looked up on every handshake: a rotated secret serves the next handshake while open
// connections stay up, and a chain whose secret has not come yet refuses handshakes, as an
// Envoy listener warming on SDS serves nothing.

// GatewayChain is one TLS filter chain of a gateway listener.
type GatewayChain struct {
	// ServerNames are the SNI names the chain serves ("*.example.com" covers one label or
	// more); none means any.
	ServerNames []string
	// CertSecret names the SDS secret holding the server certificate and key.
	CertSecret string
	// CASecret names the SDS secret of the CA that client certificates are verified against;
	// empty unless RequireClientCert.
	CASecret          string
	RequireClientCert bool
	// MinVersion and MaxVersion bound the TLS version (0: Go's defaults).
	MinVersion, MaxVersion uint16
	ALPN                   []string
}

func (a GatewayChain) equal(b GatewayChain) bool {
	return slices.Equal(a.ServerNames, b.ServerNames) && a.CertSecret == b.CertSecret && a.CASecret == b.CASecret &&
		a.RequireClientCert == b.RequireClientCert && a.MinVersion == b.MinVersion && a.MaxVersion == b.MaxVersion &&
		slices.Equal(a.ALPN, b.ALPN)
}

func gatewayChainsEqual(a, b []GatewayChain) bool {
	return slices.EqualFunc(a, b, GatewayChain.equal)
}

// isGatewayListener reports whether a listener is in the gateway's TLS shape: its chains
// name certificate secrets by SDS, none of them the workload's own certificate or trust
// bundle (Istio mutual TLS, tls.go).
func isGatewayListener(l *listenerv3.Listener) bool {
	gateway := false
	for _, fc := range l.GetFilterChains() {
		var dc tlsv3.DownstreamTlsContext
		if fc.GetTransportSocket().GetTypedConfig().UnmarshalTo(&dc) != nil {
			continue
		}
		cc := dc.GetCommonTlsContext()
		if cc.GetCombinedValidationContext() != nil || cc.GetValidationContextSdsSecretConfig().GetName() == cluster.RootCASecret {
			return false
		}
		for _, sc := range cc.GetTlsCertificateSdsSecretConfigs() {
			if sc.GetName() == cluster.WorkloadCertSecret {
				return false
			}
			gateway = true
		}
	}
	return gateway
}

// gatewayTLSSupported lists the TLS context fields a gateway chain implements.
var gatewayTLSSupported = support.Fields{
	"envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext": {"common_tls_context", "require_client_certificate"},
	"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext": {"tls_params", "alpn_protocols",
		"tls_certificate_sds_secret_configs", "validation_context_sds_secret_config"},
	"envoy.extensions.transport_sockets.tls.v3.TlsParameters":   {"tls_minimum_protocol_version", "tls_maximum_protocol_version"},
	"envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig": {"name", "sds_config"},
	"envoy.config.core.v3.ConfigSource":                         {"ads", "initial_fetch_timeout", "resource_api_version"},
}

// compileGatewayChains reads a gateway listener's TLS chains into cfg.Gateway and returns the
// chain whose connection manager the listener runs: every chain must hold the same one.
func compileGatewayChains(l *listenerv3.Listener, cfg *Config) (*listenerv3.FilterChain, int, error) {
	chains := l.GetFilterChains()
	if len(chains) == 0 {
		return nil, 0, errors.New("filter_chains: required")
	}
	for i, f := range l.GetListenerFilters() {
		if f.GetTypedConfig().GetTypeUrl() != tlsInspectorTypeURL {
			return nil, 0, fmt.Errorf("listener_filters[%d] (%q): not supported by sluice-proxy (only envoy.filters.listener.tls_inspector)", i, f.GetName())
		}
	}
	anyName := false
	for i, fc := range chains {
		at := fmt.Sprintf("filter_chains[%d]", i)
		if p := fc.GetFilterChainMatch().GetTransportProtocol(); p != "" && p != "tls" {
			return nil, 0, fmt.Errorf("%s.filter_chain_match.transport_protocol: %q: a gateway TLS chain matches \"tls\" or nothing", at, p)
		}
		if i > 0 && !proto.Equal(&listenerv3.FilterChain{Filters: fc.GetFilters()}, &listenerv3.FilterChain{Filters: chains[0].GetFilters()}) {
			return nil, 0, fmt.Errorf("%s.filters: sluice-proxy needs the same filters in every TLS chain of a gateway listener", at)
		}
		c, err := compileGatewayChain(fc.GetTransportSocket())
		if err != nil {
			return nil, 0, fmt.Errorf("%s.transport_socket.%w", at, err)
		}
		c.ServerNames = fc.GetFilterChainMatch().GetServerNames()
		if len(c.ServerNames) == 0 {
			if anyName {
				return nil, 0, fmt.Errorf("%s.filter_chain_match.server_names: two chains match any server name", at)
			}
			anyName = true
		}
		cfg.Gateway = append(cfg.Gateway, c)
	}
	cfg.TLSMode = TLSOnly
	return chains[0], 0, nil
}

// compileGatewayChain reads a chain's DownstreamTlsContext naming SDS secrets.
func compileGatewayChain(ts *corev3.TransportSocket) (GatewayChain, error) {
	var c GatewayChain
	if ts == nil {
		return c, errors.New("required: a gateway chain serves TLS")
	}
	var dc tlsv3.DownstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&dc); err != nil {
		return c, fmt.Errorf("typed_config: must be a DownstreamTlsContext (%s): %w", cluster.TLSSocketName, err)
	}
	if err := support.Check(&dc, gatewayTLSSupported); err != nil {
		return c, fmt.Errorf("typed_config.%w", err)
	}
	if src := dc.GetCommonTlsContext().GetTlsCertificateSdsSecretConfigs(); len(src) > 0 && src[0].GetSdsConfig() != nil && src[0].GetSdsConfig().GetAds() == nil {
		return c, errors.New("typed_config.common_tls_context.tls_certificate_sds_secret_configs[0].sds_config: sluice-proxy takes secrets over ADS only")
	}
	cc := dc.GetCommonTlsContext()
	switch v := cc.GetTlsParams().GetTlsMinimumProtocolVersion(); v {
	case tlsv3.TlsParameters_TLS_AUTO, tlsv3.TlsParameters_TLSv1_2:
		c.MinVersion = tls.VersionTLS12
	case tlsv3.TlsParameters_TLSv1_3:
		c.MinVersion = tls.VersionTLS13
	default:
		return c, fmt.Errorf("typed_config.common_tls_context.tls_params.tls_minimum_protocol_version: %v is not supported by sluice-proxy (use TLSv1_2 or TLSv1_3)", v)
	}
	switch v := cc.GetTlsParams().GetTlsMaximumProtocolVersion(); v {
	case tlsv3.TlsParameters_TLS_AUTO:
	case tlsv3.TlsParameters_TLSv1_2:
		c.MaxVersion = tls.VersionTLS12
	case tlsv3.TlsParameters_TLSv1_3:
		c.MaxVersion = tls.VersionTLS13
	default:
		return c, fmt.Errorf("typed_config.common_tls_context.tls_params.tls_maximum_protocol_version: %v is not supported by sluice-proxy (use TLSv1_2 or TLSv1_3)", v)
	}
	c.ALPN = cc.GetAlpnProtocols()
	if len(cc.GetTlsCertificates()) > 0 {
		return c, errors.New("typed_config.common_tls_context.tls_certificates: a gateway chain takes its certificate by SDS (tls_certificate_sds_secret_configs)")
	}
	sds := cc.GetTlsCertificateSdsSecretConfigs()
	if len(sds) != 1 || sds[0].GetName() == "" {
		return c, errors.New("typed_config.common_tls_context.tls_certificate_sds_secret_configs: sluice-proxy needs exactly one, with a name")
	}
	c.CertSecret = sds[0].GetName()
	c.RequireClientCert = dc.GetRequireClientCertificate().GetValue()
	switch v := cc.GetValidationContextType().(type) {
	case nil:
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		c.CASecret = v.ValidationContextSdsSecretConfig.GetName()
	default:
		return c, errors.New("typed_config.common_tls_context: a gateway chain verifies clients with validation_context_sds_secret_config only")
	}
	if c.RequireClientCert && c.CASecret == "" {
		return c, errors.New("typed_config.common_tls_context.validation_context_sds_secret_config: required with require_client_certificate")
	}
	return c, nil
}

// gatewaySecret is a compiled SDS secret: a certificate with its key, or a client CA pool.
type gatewaySecret struct {
	cert  *tls.Certificate
	roots *x509.CertPool
}

// SetSecrets replaces the SDS secrets gateway chains serve with, by name. It fails, changing
// nothing, when a secret does not parse; the error names it but never holds key material.
func (m *Manager) SetSecrets(secrets map[string]*tlsv3.Secret) error {
	next := make(map[string]gatewaySecret, len(secrets))
	for name, s := range secrets {
		switch {
		case s.GetTlsCertificate() != nil:
			c := s.GetTlsCertificate()
			cert, err := tls.X509KeyPair(c.GetCertificateChain().GetInlineBytes(), c.GetPrivateKey().GetInlineBytes())
			if err != nil {
				// The error of X509KeyPair names no key bytes.
				return fmt.Errorf("secret %q: tls_certificate: inline certificate_chain and private_key do not make a key pair: %w", name, err)
			}
			next[name] = gatewaySecret{cert: &cert}
		case s.GetValidationContext() != nil:
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(s.GetValidationContext().GetTrustedCa().GetInlineBytes()) {
				return fmt.Errorf("secret %q: validation_context.trusted_ca: no inline PEM certificate", name)
			}
			next[name] = gatewaySecret{roots: pool}
		default:
			return fmt.Errorf("secret %q: sluice-proxy takes a tls_certificate or a validation_context", name)
		}
	}
	m.secrets.Store(&next)
	return nil
}

func (m *Manager) secret(name string) (gatewaySecret, bool) {
	p := m.secrets.Load()
	if p == nil {
		return gatewaySecret{}, false
	}
	s, ok := (*p)[name]
	return s, ok
}

// gatewayServerConfig returns the tls.Config of a gateway listener: the chain is chosen by
// the client's SNI, and its secrets are read at that moment.
func (m *Manager) gatewayServerConfig(chains []GatewayChain) *tls.Config {
	return &tls.Config{GetConfigForClient: func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
		c, ok := chooseChain(chains, hello.ServerName)
		if !ok {
			return nil, fmt.Errorf("no TLS server for SNI %q", hello.ServerName)
		}
		s, ok := m.secret(c.CertSecret)
		if !ok || s.cert == nil {
			return nil, fmt.Errorf("secret %q has not arrived", c.CertSecret)
		}
		cfg := &tls.Config{Certificates: []tls.Certificate{*s.cert}, MinVersion: c.MinVersion, MaxVersion: c.MaxVersion, NextProtos: c.ALPN}
		if c.RequireClientCert {
			ca, ok := m.secret(c.CASecret)
			if !ok || ca.roots == nil {
				return nil, fmt.Errorf("secret %q has not arrived", c.CASecret)
			}
			cfg.ClientAuth, cfg.ClientCAs = tls.RequireAndVerifyClientCert, ca.roots
		}
		return cfg, nil
	}}
}

// chooseChain picks a chain as Envoy does: an exact server name first, then the longest
// wildcard suffix, then a chain that takes any name.
func chooseChain(chains []GatewayChain, sni string) (GatewayChain, bool) {
	sni = strings.ToLower(sni)
	best, bestLen, found := GatewayChain{}, -1, false
	for _, c := range chains {
		if len(c.ServerNames) == 0 {
			if bestLen < 0 {
				best, bestLen, found = c, 0, true
			}
			continue
		}
		for _, n := range c.ServerNames {
			n = strings.ToLower(n)
			switch {
			case n == sni:
				return c, true
			case strings.HasPrefix(n, "*.") && strings.HasSuffix(sni, n[1:]) && len(n) > bestLen:
				best, bestLen, found = c, len(n), true
			}
		}
	}
	return best, found
}
