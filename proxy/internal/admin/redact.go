package admin

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	"google.golang.org/protobuf/proto"
)

// redacted replaces private keys in /config_dump, as Envoy's dump does.
const redacted = "[redacted]"

// redactSecret returns a copy of an SDS secret without its private key, so that the admin
// port never shows one.
func redactSecret(m proto.Message) proto.Message {
	s, ok := m.(*tlsv3.Secret)
	if !ok {
		return m
	}
	s = proto.Clone(s).(*tlsv3.Secret)
	if c := s.GetTlsCertificate(); c != nil {
		if c.PrivateKey != nil {
			c.PrivateKey = &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: redacted}}
		}
		c.Password = nil
	}
	return s
}
