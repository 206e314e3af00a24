package xdsclient

import (
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/types/known/anypb"
)

// tlsListener is a gateway listener whose chains name the SDS secrets certs (and ca, when
// not empty), besides the workload's own, which is never subscribed to.
func tlsListener(name, ca string, certs ...string) *listenerv3.Listener {
	l := rdsListener(name, "http.443")
	hcm := l.FilterChains[0].Filters
	l.FilterChains = nil
	for _, c := range append(certs, "default") {
		ctx := &tlsv3.DownstreamTlsContext{CommonTlsContext: &tlsv3.CommonTlsContext{
			TlsCertificateSdsSecretConfigs: []*tlsv3.SdsSecretConfig{{Name: c}}}}
		if ca != "" {
			ctx.CommonTlsContext.ValidationContextType = &tlsv3.CommonTlsContext_ValidationContextSdsSecretConfig{
				ValidationContextSdsSecretConfig: &tlsv3.SdsSecretConfig{Name: ca}}
		}
		a, _ := anypb.New(ctx)
		l.FilterChains = append(l.FilterChains, &listenerv3.FilterChain{Filters: hcm,
			TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.tls", ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: a}}})
	}
	return l
}

func TestSecretSubscriptions(t *testing.T) {
	h := &recorder{}
	c := newTestClient(h)
	steps := []struct {
		res  *discoveryv3.DiscoveryResponse
		want string
	}{
		// LDS names two credentials and a CA: SDS subscribes to them, never to "default".
		{response(ListenerType, "1", "a", tlsListener("gw", "kubernetes://b-cacert", "kubernetes://a", "kubernetes://b")),
			"LDS v=1 n=a []; RDS v= n= [http.443]; SDS v= n= [kubernetes://a,kubernetes://b,kubernetes://b-cacert]"},
		{response(SecretType, "1", "b", &tlsv3.Secret{Name: "kubernetes://a"}, &tlsv3.Secret{Name: "kubernetes://b"}),
			"SDS v=1 n=b [kubernetes://a,kubernetes://b,kubernetes://b-cacert]"},
		// A response without b: b was deleted, and the gateway must stop serving it.
		{response(SecretType, "2", "c", &tlsv3.Secret{Name: "kubernetes://a"}), "SDS v=2 n=c [kubernetes://a,kubernetes://b,kubernetes://b-cacert]"},
		// LDS drops the CA: SDS unsubscribes from it.
		{response(ListenerType, "2", "d", tlsListener("gw", "", "kubernetes://a")), "LDS v=2 n=d []; SDS v=2 n=c [kubernetes://a]"},
	}
	for i, s := range steps {
		if got := describe(c.handle(s.res)); got != s.want {
			t.Fatalf("step %d: sent %q, want %q", i, got, s.want)
		}
	}
	want := "LDS 1 gw|SDS 1 kubernetes://a,kubernetes://b|SDS 2 kubernetes://a|LDS 2 gw"
	if got := strings.Join(h.updates, "|"); got != want {
		t.Errorf("updates\n%s\nwant\n%s", got, want)
	}
}

// A sidecar's listeners name only the workload's secrets: it never asks for SDS.
func TestSidecarNeverSubscribesToSecrets(t *testing.T) {
	c := newTestClient(&recorder{})
	if got := describe(c.handle(response(ListenerType, "1", "a", tlsListener("inbound", "ROOTCA")))); strings.Contains(got, "SDS") {
		t.Fatalf("sent %q", got)
	}
}
