package cluster

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strings"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"

	"github.com/sluicemesh/sluice/proxy/internal/identity"
	"github.com/sluicemesh/sluice/proxy/internal/support"
)

// Transport sockets and TLS contexts, in Envoy's shapes (envoy.transport_sockets.tls). The
// certificates of Istio's mutual TLS are not in the config: a context names the workload
// certificate WorkloadCertSecret and the trust bundle RootCASecret, as Istio's SDS secrets
// are named, and the proxy resolves both from its identity.Source on every handshake, so a
// rotated certificate serves the next connection while open ones stay up. Files (SIMPLE and
// MUTUAL DestinationRules) are read when the config is compiled: a missing file NACKs it.

// Secret names a TLS context may refer to; any other name is refused.
const (
	// WorkloadCertSecret is the proxy's own workload certificate.
	WorkloadCertSecret = "default"
	// RootCASecret is the mesh's trust bundle.
	RootCASecret = "ROOTCA"
)

// Transport socket names and type URLs.
const (
	TLSSocketName       = "envoy.transport_sockets.tls"
	RawBufferSocketName = "envoy.transport_sockets.raw_buffer"
	upstreamTLSTypeURL  = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext"
	rawBufferTypeURL    = "type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer"
)

// TransportSocketMatchKey is the endpoint filter_metadata key transport_socket_matches read.
const TransportSocketMatchKey = "envoy.transport_socket_match"

// TLSSupported lists the TLS context fields sluice-proxy implements, for Check.
var TLSSupported = support.Fields{
	"envoy.config.core.v3.TransportSocket":                           {"name", "typed_config"},
	"envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext":   {"common_tls_context", "sni"},
	"envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext": {"common_tls_context", "require_client_certificate"},
	"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext": {"tls_params", "alpn_protocols", "tls_certificates",
		"tls_certificate_sds_secret_configs", "validation_context", "combined_validation_context",
		"validation_context_sds_secret_config"},
	"envoy.extensions.transport_sockets.tls.v3.TlsParameters":   {"tls_minimum_protocol_version", "tls_maximum_protocol_version"},
	"envoy.extensions.transport_sockets.tls.v3.TlsCertificate":  {"certificate_chain", "private_key"},
	"envoy.extensions.transport_sockets.tls.v3.SdsSecretConfig": {"name"},
	"envoy.extensions.transport_sockets.tls.v3.CommonTlsContext.CombinedCertificateValidationContext": {
		"default_validation_context", "validation_context_sds_secret_config"},
	"envoy.extensions.transport_sockets.tls.v3.CertificateValidationContext": {"trusted_ca", "system_root_certs",
		"match_typed_subject_alt_names", "match_subject_alt_names"},
	"envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher": {"san_type", "matcher"},
	"envoy.type.matcher.v3.StringMatcher":                             {"exact", "prefix", "suffix"},
	"envoy.config.core.v3.DataSource":                                 {"filename"},
}

// TLSContext is a compiled Upstream- or DownstreamTlsContext. It is immutable.
type TLSContext struct {
	// IdentityCert presents the proxy's workload certificate (WorkloadCertSecret); else Cert,
	// when set, is presented.
	IdentityCert bool
	Cert         *tls.Certificate
	// IdentityRoots verifies the peer against the mesh's trust bundle (RootCASecret); else
	// against Roots, or the system's roots when Roots is nil.
	IdentityRoots bool
	Roots         *x509.CertPool
	// SANs are the names the peer's certificate must have one of; none means any.
	SANs []SANMatcher
	// MinVersion and MaxVersion bound the TLS version (0: Go's defaults).
	MinVersion, MaxVersion uint16
	// ALPN lists the protocols a server offers; an upstream offers the one it will speak.
	ALPN []string
	// SNI is the server name an upstream connection sends.
	SNI string
	// RequireClientCert makes a server require and verify a client certificate.
	RequireClientCert bool
	// key identifies the settings, so that connections made with equal contexts are pooled
	// together and no others are.
	key string
}

// Istio reports whether the context uses the proxy's workload identity: a proxy without a
// certificate then speaks plaintext instead (see Pools.Identity).
func (t *TLSContext) Istio() bool { return t != nil && (t.IdentityCert || t.IdentityRoots) }

// Equal reports whether a and b are the same settings.
func (a *TLSContext) Equal(b *TLSContext) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.key == b.key
}

// SANType says which subject alternative names a SANMatcher looks at.
type SANType uint8

// SAN types.
const (
	SANAny SANType = iota
	SANURI
	SANDNS
)

// SANMatcher matches one subject alternative name.
type SANMatcher struct {
	Type                  SANType
	Exact, Prefix, Suffix string
}

func (m SANMatcher) match(s string) bool {
	switch {
	case m.Exact != "":
		return s == m.Exact
	case m.Prefix != "":
		return strings.HasPrefix(s, m.Prefix)
	case m.Suffix != "":
		return strings.HasSuffix(s, m.Suffix)
	}
	return false
}

// CompileUpstreamSocket compiles a cluster's transport_socket: nil for raw_buffer (plaintext).
func CompileUpstreamSocket(ts *corev3.TransportSocket) (*TLSContext, error) {
	if err := support.Check(ts, TLSSupported); err != nil {
		return nil, err
	}
	switch ts.GetTypedConfig().GetTypeUrl() {
	case rawBufferTypeURL:
		return nil, nil
	case upstreamTLSTypeURL:
	default:
		return nil, fmt.Errorf("typed_config: %q is not supported by sluice-proxy (use %s with an UpstreamTlsContext, or %s)", ts.GetTypedConfig().GetTypeUrl(), TLSSocketName, RawBufferSocketName)
	}
	var uc tlsv3.UpstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&uc); err != nil {
		return nil, fmt.Errorf("typed_config: %w", err)
	}
	if err := support.Check(&uc, TLSSupported); err != nil {
		return nil, fmt.Errorf("typed_config.%w", err)
	}
	t, err := compileCommon(uc.GetCommonTlsContext())
	if err != nil {
		return nil, fmt.Errorf("typed_config.common_tls_context.%w", err)
	}
	if len(t.ALPN) > 0 {
		// The pools offer the protocol the request goes upstream in.
		return nil, errors.New("typed_config.common_tls_context.alpn_protocols: not supported upstream by sluice-proxy (it offers h2 or http/1.1, whichever it speaks)")
	}
	t.SNI = uc.GetSni()
	t.key += "|sni=" + t.SNI
	return t, nil
}

// CompileDownstreamSocket compiles a filter chain's transport_socket, which must be TLS.
func CompileDownstreamSocket(ts *corev3.TransportSocket) (*TLSContext, error) {
	if err := support.Check(ts, TLSSupported); err != nil {
		return nil, err
	}
	var dc tlsv3.DownstreamTlsContext
	if err := ts.GetTypedConfig().UnmarshalTo(&dc); err != nil {
		return nil, fmt.Errorf("typed_config: must be a DownstreamTlsContext (%s): %w", TLSSocketName, err)
	}
	if err := support.Check(&dc, TLSSupported); err != nil {
		return nil, fmt.Errorf("typed_config.%w", err)
	}
	t, err := compileCommon(dc.GetCommonTlsContext())
	if err != nil {
		return nil, fmt.Errorf("typed_config.common_tls_context.%w", err)
	}
	if !t.IdentityCert && t.Cert == nil {
		return nil, errors.New("typed_config.common_tls_context: a server needs a certificate: tls_certificate_sds_secret_configs [{name: default}] or tls_certificates")
	}
	t.RequireClientCert = dc.GetRequireClientCertificate().GetValue()
	t.key += fmt.Sprintf("|client=%v", t.RequireClientCert)
	return t, nil
}

func compileCommon(c *tlsv3.CommonTlsContext) (*TLSContext, error) {
	t := &TLSContext{}
	var key strings.Builder
	switch v := c.GetTlsParams().GetTlsMinimumProtocolVersion(); v {
	case tlsv3.TlsParameters_TLS_AUTO, tlsv3.TlsParameters_TLSv1_2:
		t.MinVersion = tls.VersionTLS12
	case tlsv3.TlsParameters_TLSv1_3:
		t.MinVersion = tls.VersionTLS13
	default:
		return nil, fmt.Errorf("tls_params.tls_minimum_protocol_version: %v is not supported by sluice-proxy (use TLSv1_2 or TLSv1_3)", v)
	}
	switch v := c.GetTlsParams().GetTlsMaximumProtocolVersion(); v {
	case tlsv3.TlsParameters_TLS_AUTO:
	case tlsv3.TlsParameters_TLSv1_2:
		t.MaxVersion = tls.VersionTLS12
	case tlsv3.TlsParameters_TLSv1_3:
		t.MaxVersion = tls.VersionTLS13
	default:
		return nil, fmt.Errorf("tls_params.tls_maximum_protocol_version: %v is not supported by sluice-proxy (use TLSv1_2 or TLSv1_3)", v)
	}
	fmt.Fprintf(&key, "v=%d-%d", t.MinVersion, t.MaxVersion)
	t.ALPN = c.GetAlpnProtocols()
	fmt.Fprintf(&key, "|alpn=%q", t.ALPN)
	sds := c.GetTlsCertificateSdsSecretConfigs()
	certs := c.GetTlsCertificates()
	switch {
	case len(sds)+len(certs) > 1:
		return nil, errors.New("tls_certificates: sluice-proxy presents one certificate: set one entry of tls_certificates or tls_certificate_sds_secret_configs")
	case len(sds) == 1:
		if sds[0].GetName() != WorkloadCertSecret {
			return nil, fmt.Errorf("tls_certificate_sds_secret_configs[0].name: %q is not a secret sluice-proxy has (only %q, the workload certificate)", sds[0].GetName(), WorkloadCertSecret)
		}
		t.IdentityCert = true
		key.WriteString("|cert=identity")
	case len(certs) == 1:
		chain, pk := certs[0].GetCertificateChain().GetFilename(), certs[0].GetPrivateKey().GetFilename()
		if chain == "" || pk == "" {
			return nil, errors.New("tls_certificates[0]: certificate_chain.filename and private_key.filename are required")
		}
		cert, err := tls.LoadX509KeyPair(chain, pk)
		if err != nil {
			return nil, fmt.Errorf("tls_certificates[0]: loading the certificate: %w", err)
		}
		t.Cert = &cert
		fmt.Fprintf(&key, "|cert=%q,%q", chain, pk)
	}
	var vc *tlsv3.CertificateValidationContext
	var vcAt string
	switch v := c.GetValidationContextType().(type) {
	case *tlsv3.CommonTlsContext_ValidationContext:
		vc, vcAt = v.ValidationContext, "validation_context"
	case *tlsv3.CommonTlsContext_CombinedValidationContext:
		vc, vcAt = v.CombinedValidationContext.GetDefaultValidationContext(), "combined_validation_context.default_validation_context"
		sc := v.CombinedValidationContext.GetValidationContextSdsSecretConfig()
		if sc.GetName() != RootCASecret {
			return nil, fmt.Errorf("combined_validation_context.validation_context_sds_secret_config.name: %q is not a secret sluice-proxy has (only %q, the trust bundle)", sc.GetName(), RootCASecret)
		}
		t.IdentityRoots = true
		key.WriteString("|roots=identity")
		if vc.GetTrustedCa() != nil || vc.GetSystemRootCerts() != nil {
			return nil, fmt.Errorf("%s: trusted_ca and system_root_certs cannot be combined with the %s secret", vcAt, RootCASecret)
		}
	case *tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig:
		if v.ValidationContextSdsSecretConfig.GetName() != RootCASecret {
			return nil, fmt.Errorf("validation_context_sds_secret_config.name: %q is not a secret sluice-proxy has (only %q, the trust bundle)", v.ValidationContextSdsSecretConfig.GetName(), RootCASecret)
		}
		t.IdentityRoots = true
		key.WriteString("|roots=identity")
	case nil:
		return nil, errors.New("validation_context: required: sluice-proxy always verifies the peer (use the ROOTCA secret, trusted_ca or system_root_certs)")
	}
	if vc != nil && !t.IdentityRoots {
		switch {
		case vc.GetTrustedCa() != nil:
			name := vc.GetTrustedCa().GetFilename()
			pem, err := os.ReadFile(name)
			if err != nil {
				return nil, fmt.Errorf("%s.trusted_ca.filename: %w", vcAt, err)
			}
			pool := x509.NewCertPool()
			if !pool.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("%s.trusted_ca.filename: %s holds no PEM certificate", vcAt, name)
			}
			t.Roots = pool
			fmt.Fprintf(&key, "|roots=%q", name)
		case vc.GetSystemRootCerts() != nil:
			key.WriteString("|roots=system")
		default:
			return nil, fmt.Errorf("%s: set trusted_ca or system_root_certs: sluice-proxy always verifies the peer", vcAt)
		}
	}
	for i, m := range vc.GetMatchTypedSubjectAltNames() {
		sm, err := sanMatcher(m.GetMatcher())
		if err != nil {
			return nil, fmt.Errorf("%s.match_typed_subject_alt_names[%d].matcher.%w", vcAt, i, err)
		}
		switch m.GetSanType() {
		case tlsv3.SubjectAltNameMatcher_URI:
			sm.Type = SANURI
		case tlsv3.SubjectAltNameMatcher_DNS:
			sm.Type = SANDNS
		default:
			return nil, fmt.Errorf("%s.match_typed_subject_alt_names[%d].san_type: %v is not supported by sluice-proxy (use URI or DNS)", vcAt, i, m.GetSanType())
		}
		t.SANs = append(t.SANs, sm)
	}
	for i, m := range vc.GetMatchSubjectAltNames() { //nolint:staticcheck // deprecated, still sent by older control planes
		sm, err := sanMatcher(m)
		if err != nil {
			return nil, fmt.Errorf("%s.match_subject_alt_names[%d].%w", vcAt, i, err)
		}
		t.SANs = append(t.SANs, sm)
	}
	fmt.Fprintf(&key, "|sans=%v", t.SANs)
	t.key = key.String()
	return t, nil
}

func sanMatcher(m *matcherv3.StringMatcher) (SANMatcher, error) {
	if m.GetIgnoreCase() {
		return SANMatcher{}, errors.New("ignore_case: not supported by sluice-proxy")
	}
	var out SANMatcher
	switch p := m.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		out.Exact = p.Exact
	case *matcherv3.StringMatcher_Prefix:
		out.Prefix = p.Prefix
	case *matcherv3.StringMatcher_Suffix:
		out.Suffix = p.Suffix
	}
	if out == (SANMatcher{}) {
		return out, errors.New("match_pattern: set a non-empty exact, prefix or suffix")
	}
	return out, nil
}

// verifyPeer verifies a peer's chain against roots at the current time, for usage, and
// checks its names against the context's SANs.
func (t *TLSContext) verifyPeer(cs tls.ConnectionState, roots *x509.CertPool, usage x509.ExtKeyUsage) error {
	if len(cs.PeerCertificates) == 0 {
		return errors.New("the peer presented no certificate")
	}
	leaf := cs.PeerCertificates[0]
	inter := x509.NewCertPool()
	for _, c := range cs.PeerCertificates[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{usage}}); err != nil {
		return fmt.Errorf("verifying the peer's certificate: %w", err)
	}
	if len(t.SANs) == 0 {
		return nil
	}
	for _, m := range t.SANs {
		if m.Type != SANDNS {
			for _, u := range leaf.URIs {
				if m.match(u.String()) {
					return nil
				}
			}
		}
		if m.Type != SANURI && slices.ContainsFunc(leaf.DNSNames, m.match) {
			return nil
		}
	}
	var names []string
	for _, u := range leaf.URIs {
		names = append(names, u.String())
	}
	names = append(names, leaf.DNSNames...)
	return fmt.Errorf("the peer's certificate names %v, none of which the cluster accepts", names)
}

// ClientConfig returns the tls.Config an upstream connection with this context uses,
// offering alpn. The workload certificate and the trust bundle are read from id on every
// handshake.
func (t *TLSContext) ClientConfig(id identity.Source, alpn string) *tls.Config {
	cfg := &tls.Config{
		ServerName: t.SNI,
		MinVersion: t.MinVersion,
		MaxVersion: t.MaxVersion,
		NextProtos: []string{alpn},
		// The chain is verified by VerifyConnection against the roots of the moment, and the
		// name against the SANs, not against ServerName: Istio's SNI is not a host name.
		InsecureSkipVerify: true,
	}
	if t.IdentityCert {
		cfg.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return identityCert(id)
		}
	} else if t.Cert != nil {
		cfg.Certificates = []tls.Certificate{*t.Cert}
	}
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		roots, err := t.roots(id)
		if err != nil {
			return err
		}
		if err := t.verifyPeer(cs, roots, x509.ExtKeyUsageServerAuth); err != nil {
			return err
		}
		if t.SANs == nil && !t.IdentityRoots && t.SNI != "" {
			// Without SAN matchers a public server is checked against the name dialled.
			return cs.PeerCertificates[0].VerifyHostname(t.SNI)
		}
		return nil
	}
	return cfg
}

// ServerConfig returns the tls.Config a listener with this context serves with. The
// workload certificate and the trust bundle are read from id on every handshake.
func (t *TLSContext) ServerConfig(id identity.Source) *tls.Config {
	cfg := &tls.Config{MinVersion: t.MinVersion, MaxVersion: t.MaxVersion, NextProtos: t.ALPN}
	if t.IdentityCert {
		cfg.GetCertificate = func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return identityCert(id) }
	} else {
		cfg.Certificates = []tls.Certificate{*t.Cert}
	}
	if t.RequireClientCert {
		// Verified by VerifyConnection against the roots of the moment.
		cfg.ClientAuth = tls.RequireAnyClientCert
		cfg.VerifyConnection = func(cs tls.ConnectionState) error {
			roots, err := t.roots(id)
			if err != nil {
				return err
			}
			return t.verifyPeer(cs, roots, x509.ExtKeyUsageClientAuth)
		}
	}
	return cfg
}

// identityCert returns the workload certificate of id.
func identityCert(id identity.Source) (*tls.Certificate, error) {
	if id == nil {
		return nil, identity.ErrNoCertificate
	}
	c, err := id.Certificate()
	if err != nil {
		return nil, fmt.Errorf("workload certificate: %w", err)
	}
	return c, nil
}

// roots returns the pool a peer is verified against; nil means the system's roots.
func (t *TLSContext) roots(id identity.Source) (*x509.CertPool, error) {
	if !t.IdentityRoots {
		return t.Roots, nil
	}
	if id == nil || id.Roots() == nil {
		return nil, errors.New("the proxy has no trust bundle to verify the peer with")
	}
	return id.Roots(), nil
}

// HasCertificate reports whether id can present a workload certificate now.
func HasCertificate(id identity.Source) bool {
	if id == nil {
		return false
	}
	_, err := id.Certificate()
	return err == nil
}

// tlsDialer wraps a TCP dial function with a TLS handshake.
func tlsDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error), t *TLSContext, id identity.Source, alpn string) func(ctx context.Context, network, addr string) (net.Conn, error) {
	cfg := t.ClientConfig(id, alpn)
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		if t.Istio() && !HasCertificate(id) {
			// A proxy without a workload certificate (plaintext development mode) speaks
			// plaintext, as it did before mutual TLS; a STRICT peer refuses it.
			return c, nil
		}
		tc := tls.Client(c, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			c.Close()
			return nil, fmt.Errorf("TLS handshake with %s: %w", addr, err)
		}
		if got := tc.ConnectionState().NegotiatedProtocol; alpn == "h2" && got != "h2" {
			tc.Close()
			return nil, fmt.Errorf("TLS handshake with %s: the server does not speak HTTP/2 (ALPN %q)", addr, got)
		}
		return tc, nil
	}
}

// compileTransportSockets reads a cluster's transport_socket and transport_socket_matches.
// Matches are read in Istio's auto mTLS shape only: a match on {tlsMode: istio} with a TLS
// socket, and optionally a catch-all plaintext match after it.
func compileTransportSockets(c *clusterv3.Cluster, cfg *Config) error {
	if ts := c.GetTransportSocket(); ts != nil {
		t, err := CompileUpstreamSocket(ts)
		if err != nil {
			return fmt.Errorf("transport_socket.%w", err)
		}
		cfg.TLS = t
	}
	for i, m := range c.GetTransportSocketMatches() {
		at := fmt.Sprintf("transport_socket_matches[%d]", i)
		t, err := CompileUpstreamSocket(m.GetTransportSocket())
		if err != nil {
			return fmt.Errorf("%s.transport_socket.%w", at, err)
		}
		fields := m.GetMatch().GetFields()
		switch {
		case len(fields) == 0:
			if t != nil {
				return fmt.Errorf("%s: sluice-proxy supports a catch-all match only with a raw_buffer (plaintext) socket", at)
			}
			if i != len(c.GetTransportSocketMatches())-1 {
				return fmt.Errorf("%s: a catch-all match must be the last one", at)
			}
		case len(fields) == 1 && fields[tlsModeLabel].GetStringValue() == tlsModeIstio:
			if t == nil || cfg.TLSMatch != nil {
				return fmt.Errorf("%s: sluice-proxy supports one {%s: %s} match, with a TLS socket", at, tlsModeLabel, tlsModeIstio)
			}
			cfg.TLSMatch = t
		default:
			return fmt.Errorf("%s.match: sluice-proxy matches only {%s: %s} (auto mTLS) and {} (plaintext)", at, tlsModeLabel, tlsModeIstio)
		}
	}
	if cfg.TLS != nil && cfg.TLSMatch != nil {
		// Envoy would use the match for labelled endpoints; the control plane never sends both.
		return errors.New("transport_socket_matches: not supported together with transport_socket by sluice-proxy")
	}
	return nil
}

// Endpoint metadata auto mTLS matches on.
const (
	tlsModeLabel = "tlsMode"
	tlsModeIstio = "istio"
)

// addTLSMode records that the endpoint at addr is labelled tlsMode "istio".
func (a *Assignment) addTLSMode(addr string, md *corev3.Metadata) {
	if md.GetFilterMetadata()[TransportSocketMatchKey].GetFields()[tlsModeLabel].GetStringValue() != tlsModeIstio {
		return
	}
	if a.TLSHosts == nil {
		a.TLSHosts = map[string]bool{}
	}
	a.TLSHosts[addr] = true
}
