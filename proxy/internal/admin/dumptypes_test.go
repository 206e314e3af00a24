package admin

import (
	"encoding/json"
	"strings"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

func anyOf(typeURL string) *anypb.Any { return &anypb.Any{TypeUrl: typeURL} }

// Every type the proxy accepts by URL alone renders in a dump: a missing one used to blank
// the whole listener or cluster.
func TestDumpRendersTypesKnownByURL(t *testing.T) {
	l := &listenerv3.Listener{Name: "inbound|9080", ListenerFilters: []*listenerv3.ListenerFilter{{
		Name:       "envoy.filters.listener.tls_inspector",
		ConfigType: &listenerv3.ListenerFilter_TypedConfig{TypedConfig: anyOf("type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector")},
	}}}
	c := &clusterv3.Cluster{Name: "outbound|9080||reviews.default.svc.cluster.local", TransportSocketMatches: []*clusterv3.Cluster_TransportSocketMatch{{
		Name: "plaintext",
		TransportSocket: &corev3.TransportSocket{Name: "envoy.transport_sockets.raw_buffer",
			ConfigType: &corev3.TransportSocket_TypedConfig{TypedConfig: anyOf("type.googleapis.com/envoy.extensions.transport_sockets.raw_buffer.v3.RawBuffer")}},
	}}}
	for want, m := range map[string]proto.Message{l.GetName(): l, c.GetName(): c} {
		var got struct {
			Name string `json:"name"`
		}
		raw := rawJSON(m, true)
		if err := json.Unmarshal(raw, &got); err != nil || got.Name != want {
			t.Errorf("%s renders as %s (%v)", want, raw, err)
		}
	}
}

// A resource that cannot be rendered says why instead of vanishing.
func TestDumpExplainsWhatItCannotRender(t *testing.T) {
	c := &clusterv3.Cluster{Name: "x", TypedExtensionProtocolOptions: map[string]*anypb.Any{"k": {TypeUrl: "type.googleapis.com/no.such.Type"}}}
	raw := string(rawJSON(c, true))
	if !strings.Contains(raw, `"@type":"type.googleapis.com/envoy.config.cluster.v3.Cluster"`) || !strings.Contains(raw, "cannot render the resource") {
		t.Errorf("got %s", raw)
	}
}
