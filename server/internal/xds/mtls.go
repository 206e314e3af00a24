package xds

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsinspectorv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	rawbufferv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/registry"
)

// Mutual TLS between sidecars, in Istio's xDS shapes:
//
//   - Inbound listeners follow the PeerAuthentication in effect for the workload and port:
//     STRICT is one filter chain with a DownstreamTlsContext that requires a client
//     certificate; PERMISSIVE adds a plaintext chain, the two told apart by the
//     tls_inspector's transport_protocol ("tls" or "raw_buffer"); DISABLE is plaintext only.
//   - Outbound clusters use auto mTLS: transport_socket_matches send TLS to the endpoints
//     labelled tlsMode "istio" (a sidecar) and plaintext to the others. A DestinationRule's
//     tls.mode replaces that: DISABLE, ISTIO_MUTUAL, SIMPLE or MUTUAL.
//
// A namespace-wide PeerAuthentication in RootNamespace applies to the whole mesh.
//
// Certificates are not sent over xDS: the TLS contexts name the workload certificate
// "default" and the trust bundle "ROOTCA", as Istio's SDS secrets are named, and each proxy
// resolves both from its own workload identity.

// DefaultTrustDomain is the SPIFFE trust domain when Mesh.TrustDomain is empty.
const DefaultTrustDomain = "cluster.local"

// Names of the secrets TLS contexts refer to, resolved by each proxy from its identity.
const (
	workloadCertSecret = "default"
	rootCASecret       = "ROOTCA"
)

// Transport socket names and the endpoint metadata auto mTLS matches on.
const (
	tlsTransportSocket       = "envoy.transport_sockets.tls"
	rawBufferTransportSocket = "envoy.transport_sockets.raw_buffer"
	tlsInspectorFilter       = "envoy.filters.listener.tls_inspector"
	transportSocketMatchKey  = "envoy.transport_socket_match"
	tlsModeLabel             = "tlsMode"
	tlsModeIstio             = "istio"
)

// SetTrustDomain sets the SPIFFE trust domain of the workload identities auto mTLS expects
// (DefaultTrustDomain when never called). Call it before Run.
func (s *Server) SetTrustDomain(td string) { s.trustDomain = td }

// MTLSModes returns the PeerAuthentication mode in effect ("STRICT", "PERMISSIVE" or
// "DISABLE") on each inbound port of a workload, under the configuration being served; nil
// when the proxies do not enforce mutual TLS or no configuration is loaded yet. The API shows
// it with each workload.
func (s *Server) MTLSModes(w registry.Workload) map[uint32]string {
	loaded := s.config.Load()
	if !s.features.MTLS || loaded == nil || len(w.Ports) == 0 {
		return nil
	}
	m := &Mesh{Config: loaded.config, Features: s.features, TrustDomain: s.trustDomain}
	var ignored []Problem
	out := make(map[uint32]string, len(w.Ports))
	for _, p := range w.Ports {
		out[p.Port] = m.peerAuthMode(w, p.Port, &ignored).String()
	}
	return out
}

type paEntry struct {
	res *config.Resource
	pa  *security.PeerAuthentication
}

// hasSelector reports whether the policy has a workload selector.
func (e *paEntry) hasSelector() bool { return len(e.pa.GetSelector().GetMatchLabels()) > 0 }

func (e *paEntry) key() string { return e.res.Kind + "/" + e.res.Namespace + "/" + e.res.Name }

// indexPeerAuthentications lists the PeerAuthentications of rs, which are sorted by key.
func indexPeerAuthentications(rs []*config.Resource) []*paEntry {
	var out []*paEntry
	for _, r := range rs {
		if pa, ok := r.Spec.(*security.PeerAuthentication); ok {
			out = append(out, &paEntry{res: r, pa: pa})
		}
	}
	return out
}

// mtlsMode is a PeerAuthentication mode after Istio's inheritance: never UNSET.
type mtlsMode = security.PeerAuthentication_MutualTLS_Mode

// peerAuthMode returns the mode in effect for a workload's inbound port, with Istio's
// precedence: a policy selecting the workload wins over its namespace's namespace-wide
// policy, which wins over the root namespace's; a port-level mode wins over its policy's;
// UNSET inherits from the level above; nothing at all means PERMISSIVE.
func (m *Mesh) peerAuthMode(w registry.Workload, port uint32, problems *[]Problem) mtlsMode {
	mode := security.PeerAuthentication_MutualTLS_PERMISSIVE
	inherit := func(next mtlsMode) {
		if next != security.PeerAuthentication_MutualTLS_UNSET {
			mode = next
		}
	}
	var wide, selecting []*paEntry
	for _, e := range m.Config.peerAuthList() {
		switch {
		case e.res.Namespace == RootNamespace && !e.hasSelector():
			wide = append([]*paEntry{e}, wide...) // the mesh level goes first
		case e.res.Namespace != w.Namespace:
		case !e.hasSelector():
			wide = append(wide, e)
		case labelsMatch(e.pa.GetSelector().GetMatchLabels(), w.Labels):
			selecting = append(selecting, e)
		}
	}
	for _, e := range wide {
		inherit(e.pa.GetMtls().GetMode())
	}
	if len(selecting) == 0 {
		return mode
	}
	if len(selecting) > 1 {
		names := make([]string, len(selecting))
		for i, e := range selecting {
			names[i] = e.res.Name
		}
		*problems = append(*problems, Problem{Resource: selecting[1].key(), Message: fmt.Sprintf(
			"workload %s/%s is selected by several PeerAuthentications (%v); only %s applies: give them disjoint selectors",
			w.Namespace, w.Name, names, selecting[0].res.Name)})
	}
	e := selecting[0]
	inherit(e.pa.GetMtls().GetMode())
	if pl := e.pa.GetPortLevelMtls()[port]; pl != nil {
		inherit(pl.GetMode())
	}
	return mode
}

func (c *Config) peerAuthList() []*paEntry {
	if c == nil {
		return nil
	}
	return c.peerAuths
}

// reportPeerAuthNotEnforced reports every PeerAuthentication when the proxies cannot enforce
// them.
func (m *Mesh) reportPeerAuthNotEnforced(problems *[]Problem) {
	for _, e := range m.Config.peerAuthList() {
		*problems = append(*problems, Problem{Resource: e.key(), Message: "mutual TLS is not enforced by this version of sluice-proxy: inbound traffic stays plaintext"})
	}
}

// sidecarInboundListener is a sidecar's inbound listener for port, with the filter chains of
// the PeerAuthentication mode in effect.
func (sh *shared) sidecarInboundListener(w registry.Workload, port uint32) *listenerv3.Listener {
	l := inboundListener(w.Address, port)
	if !sh.mesh.Features.MTLS {
		return l
	}
	applyPeerAuthMode(l, port, sh.mesh.peerAuthMode(w, port, &sh.problems))
	return l
}

// applyPeerAuthMode rewrites a plaintext inbound listener's single filter chain for mode.
func applyPeerAuthMode(l *listenerv3.Listener, port uint32, mode mtlsMode) {
	if mode == security.PeerAuthentication_MutualTLS_DISABLE {
		return
	}
	p := strconv.FormatUint(uint64(port), 10)
	plain := l.FilterChains[0]
	secure := proto.Clone(plain).(*listenerv3.FilterChain)
	secure.Name = "inbound|" + p + "|mtls"
	secure.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: "tls"}
	secure.TransportSocket = &corev3.TransportSocket{
		Name:       tlsTransportSocket,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(downstreamTLSContext())},
	}
	l.ListenerFilters = []*listenerv3.ListenerFilter{{
		Name:       tlsInspectorFilter,
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: mustAny(&tlsinspectorv3.TlsInspector{})},
	}}
	if mode == security.PeerAuthentication_MutualTLS_STRICT {
		// A plaintext connection matches no chain, and the proxy closes it.
		l.FilterChains = []*listenerv3.FilterChain{secure}
		return
	}
	plain.Name = "inbound|" + p + "|plaintext"
	plain.FilterChainMatch = &listenerv3.FilterChainMatch{TransportProtocol: "raw_buffer"}
	l.FilterChains = []*listenerv3.FilterChain{secure, plain}
}

// downstreamTLSContext is the inbound side of Istio's mutual TLS: the workload certificate,
// a client certificate required and verified against the trust bundle, with a SPIFFE URI.
func downstreamTLSContext() *tlsv3.DownstreamTlsContext {
	return &tlsv3.DownstreamTlsContext{
		RequireClientCertificate: wrapperspb.Bool(true),
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2},
			AlpnProtocols:                  []string{"h2", "http/1.1"},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: workloadCertSecret}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext: &tlsv3.CertificateValidationContext{
						MatchTypedSubjectAltNames: []*tlsv3.SubjectAltNameMatcher{{
							SanType: tlsv3.SubjectAltNameMatcher_URI,
							Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: "spiffe://"}},
						}},
					},
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: rootCASecret},
				},
			},
		},
	}
}

// istioUpstreamTLS is the outbound side of Istio's mutual TLS: the workload certificate,
// the server verified against the trust bundle and required to be one of sans.
func istioUpstreamTLS(sans []string, sni string) *corev3.TransportSocket {
	return tlsSocket(&tlsv3.UpstreamTlsContext{
		Sni: sni,
		CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsParams:                      &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2},
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: workloadCertSecret}},
			ValidationContextType: &tlsv3.CommonTlsContext_CombinedValidationContext{
				CombinedValidationContext: &tlsv3.CommonTlsContext_CombinedCertificateValidationContext{
					DefaultValidationContext:         &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sanMatchers(sans, tlsv3.SubjectAltNameMatcher_URI)},
					ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: rootCASecret},
				},
			},
		},
	})
}

func tlsSocket(ctx *tlsv3.UpstreamTlsContext) *corev3.TransportSocket {
	return &corev3.TransportSocket{
		Name:       tlsTransportSocket,
		ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(ctx)},
	}
}

func sanMatchers(sans []string, typ tlsv3.SubjectAltNameMatcher_SanType) []*tlsv3.SubjectAltNameMatcher {
	out := make([]*tlsv3.SubjectAltNameMatcher, 0, len(sans))
	for _, s := range sans {
		out = append(out, &tlsv3.SubjectAltNameMatcher{
			SanType: typ,
			Matcher: &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: s}},
		})
	}
	return out
}

// spiffeIDs returns the SPIFFE IDs of a service's workloads, sorted.
func (m *Mesh) spiffeIDs(s *Service) []string {
	td := cmp.Or(m.TrustDomain, DefaultTrustDomain)
	var out []string
	for _, eps := range s.Endpoints {
		for _, e := range eps {
			if !e.Sidecar {
				continue
			}
			id := "spiffe://" + td + "/ns/" + s.Namespace + "/sa/" + cmp.Or(e.ServiceAccount, "default")
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
	}
	slices.Sort(out)
	return out
}

// istioSNI is the server name Istio sends to a sidecar: outbound_.<port>_.<subset>_.<host>.
func istioSNI(port uint32, subset, host string) string {
	return "outbound_." + strconv.FormatUint(uint64(port), 10) + "_." + subset + "_." + host
}

// applyClusterTLS sets the transport socket of one outbound cluster: a DestinationRule's
// tls settings when it has some for the cluster, else auto mTLS for a registered service
// (s is nil for a ServiceEntry host). sub is the subset's index, -1 for the host itself.
func (m *Mesh) applyClusterTLS(c *clusterv3.Cluster, s *Service, host string, dr *drEntry, sub int, port uint32, problems *[]Problem) {
	var pp policyParts
	if dr != nil {
		pp = effectivePolicy(dr.dr, sub, port)
	}
	if !m.Features.MTLS {
		if pp.tls != nil {
			policyReporter{dr: dr, problems: problems}.notEnforced(pp.tlsAt)
		}
		return
	}
	subset := ""
	if sub >= 0 {
		subset = dr.dr.GetSubsets()[sub].GetName()
	}
	if pp.tls == nil {
		if s != nil {
			c.TransportSocketMatches = autoMTLS(m.spiffeIDs(s), istioSNI(port, subset, host))
		}
		return
	}
	r := policyReporter{dr: dr, problems: problems}
	tls, at := pp.tls, pp.tlsAt
	if tls.GetCredentialName() != "" {
		r.report("%s.credentialName is not supported (sluice-proxy reads clientCertificate, privateKey and caCertificates files); the cluster keeps the rest of its tls settings", at)
	}
	if tls.GetInsecureSkipVerify().GetValue() {
		r.report("%s.insecureSkipVerify is not supported: the server's certificate is still verified", at)
	}
	if tls.GetCaCrl() != "" {
		r.report("%s.caCrl is not supported: revocation lists are not checked", at)
	}
	switch tls.GetMode() {
	case networking.ClientTLSSettings_DISABLE:
		// Plaintext, even to sidecars.
	case networking.ClientTLSSettings_ISTIO_MUTUAL:
		sans := tls.GetSubjectAltNames()
		if len(sans) == 0 && s != nil {
			sans = m.spiffeIDs(s)
		}
		c.TransportSocket = istioUpstreamTLS(sans, cmp.Or(tls.GetSni(), istioSNI(port, subset, host)))
	case networking.ClientTLSSettings_SIMPLE, networking.ClientTLSSettings_MUTUAL:
		ctx := &tlsv3.UpstreamTlsContext{
			// Without an sni the host name is sent, which is what an external server expects.
			Sni: cmp.Or(tls.GetSni(), host),
			CommonTlsContext: &tlsv3.CommonTlsContext{
				TlsParams: &tlsv3.TlsParameters{TlsMinimumProtocolVersion: tlsv3.TlsParameters_TLSv1_2},
			},
		}
		vc := &tlsv3.CertificateValidationContext{MatchTypedSubjectAltNames: sanMatchers(tls.GetSubjectAltNames(), tlsv3.SubjectAltNameMatcher_DNS)}
		if ca := tls.GetCaCertificates(); ca != "" {
			vc.TrustedCa = &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: ca}}
		} else {
			// Istio verifies against the system's roots when no CA is given.
			vc.SystemRootCerts = &tlsv3.CertificateValidationContext_SystemRootCerts{}
		}
		ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContext{ValidationContext: vc}
		if tls.GetMode() == networking.ClientTLSSettings_MUTUAL {
			if tls.GetClientCertificate() == "" || tls.GetPrivateKey() == "" {
				r.report("%s: MUTUAL needs clientCertificate and privateKey (file paths on the proxy's machine); the cluster sends no client certificate", at)
			} else {
				ctx.CommonTlsContext.TlsCertificates = []*tlsv3.TlsCertificate{{
					CertificateChain: &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: tls.GetClientCertificate()}},
					PrivateKey:       &corev3.DataSource{Specifier: &corev3.DataSource_Filename{Filename: tls.GetPrivateKey()}},
				}}
			}
		}
		c.TransportSocket = tlsSocket(ctx)
	}
}

// autoMTLS is Istio's auto mTLS: TLS to endpoints labelled tlsMode "istio", plaintext to the
// others.
func autoMTLS(sans []string, sni string) []*clusterv3.Cluster_TransportSocketMatch {
	return []*clusterv3.Cluster_TransportSocketMatch{
		{
			Name:            "tlsMode-istio",
			Match:           &structpb.Struct{Fields: map[string]*structpb.Value{tlsModeLabel: structpb.NewStringValue(tlsModeIstio)}},
			TransportSocket: istioUpstreamTLS(sans, sni),
		},
		{
			Name:  "tlsMode-disabled",
			Match: &structpb.Struct{},
			TransportSocket: &corev3.TransportSocket{
				Name:       rawBufferTransportSocket,
				ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: mustAny(&rawbufferv3.RawBuffer{})},
			},
		},
	}
}

// withPeerAuthentication returns the endpoints of a service port with Sidecar cleared where
// the workload's PeerAuthentication DISABLEs mutual TLS on the port: as in Istio, auto mTLS
// then sends plaintext, which is all such a listener accepts.
func (m *Mesh) withPeerAuthentication(eps []Endpoint, port uint32, problems *[]Problem) []Endpoint {
	if !m.Features.MTLS || len(m.Config.peerAuthList()) == 0 {
		return eps
	}
	var out []Endpoint
	for i, e := range eps {
		if !e.Sidecar {
			continue
		}
		w := registry.Workload{Namespace: e.Namespace, Name: e.Workload, Labels: e.Labels}
		if m.peerAuthMode(w, port, problems) != security.PeerAuthentication_MutualTLS_DISABLE {
			continue
		}
		if out == nil {
			out = slices.Clone(eps)
		}
		out[i].Sidecar = false
	}
	if out == nil {
		return eps
	}
	return out
}

// withTLSMode labels the metadata of an endpoint that has a sidecar with tlsMode "istio",
// under filter_metadata "envoy.transport_socket_match", where auto mTLS matches it.
func withTLSMode(md *corev3.Metadata, e Endpoint) *corev3.Metadata {
	if !e.Sidecar {
		return md
	}
	if md == nil {
		md = &corev3.Metadata{}
	}
	if md.FilterMetadata == nil {
		md.FilterMetadata = map[string]*structpb.Struct{}
	}
	md.FilterMetadata[transportSocketMatchKey] = &structpb.Struct{Fields: map[string]*structpb.Value{
		tlsModeLabel: structpb.NewStringValue(tlsModeIstio),
	}}
	return md
}

// proxylessClusters are the clusters for proxyless gRPC clients: without auto mTLS, since
// they have no workload certificate and grpc-go refuses transport_socket_matches. They call
// sidecars in plaintext, which PERMISSIVE accepts.
func (sh *shared) proxylessClusters() []types.Resource {
	if sh.plainClusters != nil {
		return sh.plainClusters
	}
	out := make([]types.Resource, len(sh.clusters))
	for i, r := range sh.clusters {
		c := r.(*clusterv3.Cluster)
		if len(c.GetTransportSocketMatches()) > 0 {
			c = proto.Clone(c).(*clusterv3.Cluster)
			c.TransportSocketMatches = nil
		}
		out[i] = c
	}
	sh.plainClusters = out
	return out
}

// sidecarWorkload reports whether a registered workload has a sidecar, and so a workload
// certificate to speak mutual TLS with.
func sidecarWorkload(w registry.Workload) bool { return w.Mode == meta.ModeSidecar || w.Mode == "" }
