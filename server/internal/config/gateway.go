package config

import (
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// Rules for Gateway.

// protocols are the port protocols Istio accepts on gateways and service entries.
var protocols = []string{"HTTP", "HTTPS", "HTTP2", "GRPC", "GRPC-WEB", "TCP", "TLS", "MONGO", "REDIS", "MYSQL"}

func checkProtocol(e errorSink, path, protocol string) {
	if protocol != "" && !slices.Contains(protocols, strings.ToUpper(protocol)) {
		e.addf(path, "protocol %q is not supported: use one of %s", protocol, strings.Join(protocols, ", "))
	}
}

func checkGateway(e errorSink, gw *networking.Gateway) {
	if len(gw.Servers) == 0 {
		e.add("spec.servers", "servers is required: add a server with a port and hosts")
	}
	checkLabels(e, "spec.selector", gw.Selector)
	type portUse struct {
		protocol string
		server   int
	}
	ports := map[uint32]portUse{}
	names := map[string]int{}
	for i, s := range gw.Servers {
		p := index("spec.servers", i)
		protocol := ""
		if s.Port != nil {
			pp := field(p, "port")
			protocol = strings.ToUpper(s.Port.Protocol)
			if s.Port.Number != 0 {
				checkPort(e, field(pp, "number"), s.Port.Number)
				if prev, used := ports[s.Port.Number]; used && prev.protocol != protocol && protocol != "" {
					e.addf(field(pp, "protocol"), "port %d is %s here but %s in servers[%d]: one port carries one protocol", s.Port.Number, protocol, prev.protocol, prev.server)
				} else if !used {
					ports[s.Port.Number] = portUse{protocol, i}
				}
			}
			checkProtocol(e, field(pp, "protocol"), s.Port.Protocol)
		}
		for j, h := range s.Hosts {
			checkGatewayHost(e, index(field(p, "hosts"), j), h)
		}
		if s.Name != "" {
			if j, dup := names[s.Name]; dup {
				e.addf(field(p, "name"), "server name %s is used twice (also servers[%d]): server names must be unique", s.Name, j)
			}
			names[s.Name] = i
		}
		if protocol == "HTTPS" || protocol == "TLS" {
			checkServerTLS(e, field(p, "tls"), protocol, s.Tls)
		}
	}
}

func checkServerTLS(e errorSink, path, protocol string, tls *networking.ServerTLSSettings) {
	if tls == nil {
		e.addf(path, "a server with protocol %s needs tls: add tls with mode SIMPLE and credentialName", protocol)
		return
	}
	switch tls.Mode {
	case networking.ServerTLSSettings_SIMPLE, networking.ServerTLSSettings_MUTUAL, networking.ServerTLSSettings_OPTIONAL_MUTUAL:
		hasCert := tls.CredentialName != "" || len(tls.CredentialNames) > 0 || len(tls.TlsCertificates) > 0 ||
			(tls.ServerCertificate != "" && tls.PrivateKey != "")
		if !hasCert {
			e.addf(path, "mode %s needs a certificate: set credentialName, or serverCertificate and privateKey", tls.Mode)
		}
	}
}

// checkGatewayHost checks a gateway server host: an optional "namespace/" (".", "*" and "~"
// are allowed) and a host that may be a wildcard.
func checkGatewayHost(e errorSink, path, h string) {
	host := h
	if ns, name, ok := strings.Cut(h, "/"); ok {
		if ns != "*" && ns != "." && ns != "~" && !isDNS1123Label(ns) {
			e.addf(path, "%q: the part before / must be a namespace, \".\" or \"*\"", h)
			return
		}
		host = name
	}
	checkHost(e, path, host, true)
}
