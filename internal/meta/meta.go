// Package meta holds the names that sluice-server and sluice-proxy must agree on: the keys of
// the xDS node metadata a proxy registers with, the well-known resource names of the xDS
// configuration the server generates, and the ports of universal mode.
//
// The xDS output is plain Envoy v3, following Istio's conventions, so that Envoy itself or
// grpc-go's proxyless client could read it too:
//
//   - Listener "virtualOutbound" binds <address>:15001. Its one filter chain holds an
//     HttpConnectionManager whose routes come over RDS (ADS config source) as the
//     RouteConfiguration named "outbound". Requests are routed by authority (Host).
//   - Listener "inbound|<port>" binds <address>:<port> for each inbound port. Its
//     HttpConnectionManager carries an inline RouteConfiguration with one virtual host "*"
//     whose catch-all route points at cluster "inbound|<port>||", a STATIC cluster whose one
//     endpoint is the application at <address>:<appPort>.
//   - RouteConfiguration "outbound" has one virtual host per service port, named
//     "<fqdn>:<port>", whose domains are "<name>", "<name>.<ns>", "<fqdn>", each also with
//     ":<port>" (the bare forms only for the lowest port of a service, and the short name only
//     for proxies in the service's own namespace).
//   - Clusters "outbound|<port>|<subset>|<fqdn>" are EDS clusters (ADS config source); their
//     ClusterLoadAssignment has the same name. Endpoint metadata under filter_metadata
//     "istio" carries "workload", "version" and "namespace".
//   - Clusters use the downstream request's protocol upstream (HTTP/1.1 or h2c), declared by
//     HttpProtocolOptions.use_downstream_protocol_config.
package meta

import (
	"fmt"
	"strconv"
	"strings"
)

// Node metadata keys. A proxy sends them in every DiscoveryRequest's node.metadata; the server
// registers the workload from them.
const (
	// KeyNamespace is the workload's namespace (string).
	KeyNamespace = "NAMESPACE"
	// KeyService is the service the workload serves (string).
	KeyService = "SERVICE"
	// KeyLabels is the workload's labels (struct of strings). "version" selects subsets.
	KeyLabels = "LABELS"
	// KeyAddress is the IP address the proxy's listeners bind (string).
	KeyAddress = "ADDRESS"
	// KeyInboundPorts lists the inbound ports as "port=appPort" pairs joined by commas
	// (string), as FormatInboundPorts writes them.
	KeyInboundPorts = "INBOUND_PORTS"
	// KeyServiceAccount is the workload's service account (string).
	KeyServiceAccount = "SERVICE_ACCOUNT"
	// KeyWorkloadName names this instance (string), such as "reviews-v2-127.0.0.6".
	KeyWorkloadName = "WORKLOAD_NAME"
	// KeyMode is "sidecar" or "gateway" (string).
	KeyMode = "MODE"
	// KeyDraining is "true" once the proxy has begun a graceful shutdown: the server removes
	// its endpoints at once instead of waiting for the disconnect grace period.
	KeyDraining = "DRAINING"
	// KeyAppHealth is the application's health as its sidecar probes it (string): absent
	// or empty when the sidecar does not probe, AppReady, or AppNotReady followed by the
	// reason. The server takes a not-ready workload's endpoints out of load balancing.
	KeyAppHealth = "APP_HEALTH"
)

// Values of KeyAppHealth.
const (
	AppReady    = "ready"
	AppNotReady = "not ready: "
)

// ParseAppHealth reads a KeyAppHealth value: whether the application takes traffic, and why
// not. Anything but an AppNotReady value counts as ready, so that a proxy that does not
// probe, or a newer proxy's value this server does not know, never empties a service.
func ParseAppHealth(v string) (ready bool, reason string) {
	if r, ok := strings.CutPrefix(v, AppNotReady); ok {
		return false, r
	}
	if v == strings.TrimSuffix(AppNotReady, ": ") {
		return false, ""
	}
	return true, ""
}

// Proxy modes.
const (
	ModeSidecar = "sidecar"
	ModeGateway = "gateway"
	// ModeProxyless is a gRPC application that reads xDS itself (grpc-go's xds resolver): it
	// gets an API listener for every service port, named as its dial target ("name:port",
	// "name.ns:port", "<fqdn>:port"), and no sockets.
	ModeProxyless = "proxyless"
)

// Well-known resource names and ports.
const (
	OutboundListenerName = "virtualOutbound"
	OutboundRouteName    = "outbound"
	OutboundPort         = 15001
	AdminPort            = 15000
	PrometheusPort       = 15090
	// DefaultDomain is the cluster domain appended to "<name>.<namespace>.svc".
	DefaultDomain = "cluster.local"
)

// FQDN returns the service's fully qualified name, "<name>.<ns>.svc.cluster.local".
func FQDN(name, namespace string) string {
	return name + "." + namespace + ".svc." + DefaultDomain
}

// OutboundCluster returns Istio's name for an outbound cluster: "outbound|port|subset|fqdn".
func OutboundCluster(port uint32, subset, fqdn string) string {
	return "outbound|" + strconv.FormatUint(uint64(port), 10) + "|" + subset + "|" + fqdn
}

// InboundListener returns the name of the inbound listener for a port.
func InboundListener(port uint32) string {
	return "inbound|" + strconv.FormatUint(uint64(port), 10)
}

// InboundCluster returns Istio's name for the inbound cluster of a port: "inbound|port||".
func InboundCluster(port uint32) string {
	return "inbound|" + strconv.FormatUint(uint64(port), 10) + "||"
}

// ParseCluster splits an Istio cluster name into its direction, port, subset and host.
func ParseCluster(name string) (direction string, port uint32, subset, host string, err error) {
	parts := strings.Split(name, "|")
	if len(parts) != 4 {
		return "", 0, "", "", fmt.Errorf("cluster name %q is not direction|port|subset|host", name)
	}
	p, err := strconv.ParseUint(parts[1], 10, 16)
	if err != nil {
		return "", 0, "", "", fmt.Errorf("cluster name %q: bad port: %w", name, err)
	}
	return parts[0], uint32(p), parts[2], parts[3], nil
}

// PortMapping is one inbound port of a workload: the service port its sidecar listens on and
// the port the application itself listens on, on the same address.
type PortMapping struct {
	Port    uint32 `json:"port"`
	AppPort uint32 `json:"appPort"`
}

// ParsePortMapping parses "9080=19080" (or "9080", meaning the same port on both sides is not
// possible on one address, so it is refused).
func ParsePortMapping(s string) (PortMapping, error) {
	port, app, ok := strings.Cut(strings.TrimSpace(s), "=")
	if !ok {
		return PortMapping{}, fmt.Errorf("inbound port %q: want PORT=APPPORT, such as 9080=19080", s)
	}
	p, err := parsePort(port)
	if err != nil {
		return PortMapping{}, fmt.Errorf("inbound port %q: service port: %w", s, err)
	}
	a, err := parsePort(app)
	if err != nil {
		return PortMapping{}, fmt.Errorf("inbound port %q: application port: %w", s, err)
	}
	if p == a {
		return PortMapping{}, fmt.Errorf("inbound port %q: the sidecar and the application cannot both listen on port %d of one address", s, p)
	}
	return PortMapping{Port: p, AppPort: a}, nil
}

func parsePort(s string) (uint32, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return uint32(n), nil
}

// FormatInboundPorts joins port mappings as KeyInboundPorts expects.
func FormatInboundPorts(ms []PortMapping) string {
	var b strings.Builder
	for i, m := range ms {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, "%d=%d", m.Port, m.AppPort)
	}
	return b.String()
}

// ParseInboundPorts is the inverse of FormatInboundPorts. An empty string means no ports.
func ParseInboundPorts(s string) ([]PortMapping, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []PortMapping
	for _, part := range strings.Split(s, ",") {
		m, err := ParsePortMapping(part)
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}

// ParseLabels parses "k=v,k=v". Keys must be non-empty.
func ParseLabels(s string) (map[string]string, error) {
	out := map[string]string{}
	if strings.TrimSpace(s) == "" {
		return out, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value, such as version=v2", part)
		}
		out[k] = v
	}
	return out, nil
}
