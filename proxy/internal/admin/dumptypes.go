package admin

import (
	"encoding/json"
	"fmt"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	// Types the proxy recognises by their type URL alone, without decoding them: they must
	// still be linked for /config_dump to render the Any that holds them.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/listener/tls_inspector/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/path/match/uri_template/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/retry/host/previous_hosts/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/raw_buffer/v3"
)

// marshalDump renders m as Envoy's dump does: protojson with the proto field names, and
// "@type" first when typed. When m
// cannot be rendered (a nested Any of a type this proxy does not link), the answer says so
// in place of the resource instead of dropping it silently.
func marshalDump(m proto.Message, typed bool) json.RawMessage {
	out := m
	if typed {
		a, err := anypb.New(m)
		if err != nil {
			return json.RawMessage(`null`)
		}
		out = a
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(out)
	if err != nil {
		b, _ = json.Marshal(map[string]string{
			"@type": "type.googleapis.com/" + string(m.ProtoReflect().Descriptor().FullName()),
			"error": fmt.Sprintf("this proxy cannot render the resource: %v", err),
		})
	}
	return b
}
