package grpccodec

import (
	"strings"
	"testing"

	discoveryv3 "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// response is a discovery response holding one resource of n bytes of fill.
func response(nonce string, n int, fill string) *discoveryv3.DiscoveryResponse {
	return &discoveryv3.DiscoveryResponse{VersionInfo: "7", Nonce: nonce, TypeUrl: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
		Resources: []*anypb.Any{{TypeUrl: "type.googleapis.com/envoy.config.route.v3.RouteConfiguration", Value: []byte(strings.Repeat(fill, n))}}}
}

// TestCodecReusesBuffers encodes a large response, frees its buffer, then encodes a smaller
// one that reuses it, and checks that each decodes to what was encoded.
func TestCodecReusesBuffers(t *testing.T) {
	c := New(nil)
	big, small := response("a", 60_000, "x"), response("b", 40_000, "y")
	for i, m := range []*discoveryv3.DiscoveryResponse{big, small, big, small} {
		data, err := c.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		if got := data.Len(); got != proto.Size(m) {
			t.Errorf("message %d: %d bytes encoded, want %d", i, got, proto.Size(m))
		}
		var back discoveryv3.DiscoveryResponse
		if err := c.Unmarshal(data, &back); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if !proto.Equal(&back, m) {
			t.Errorf("message %d decodes to nonce %q with %d resource bytes, want nonce %q with %d", i,
				back.Nonce, len(back.Resources[0].Value), m.Nonce, len(m.Resources[0].Value))
		}
		data.Free()
	}
	if _, err := c.Marshal("not a message"); err == nil || !strings.Contains(err.Error(), "not a protobuf message") {
		t.Errorf("marshal of a string: %v, want an error naming the type", err)
	}
	small2 := response("s", 10, "z") // below gRPC's pooling threshold
	data, err := c.Marshal(small2)
	if err != nil {
		t.Fatal(err)
	}
	var back discoveryv3.DiscoveryResponse
	if err := c.Unmarshal(data, &back); err != nil || !proto.Equal(&back, small2) {
		t.Errorf("small message: %v, equal %v", err, proto.Equal(&back, small2))
	}
}

// TestCodecBuffersFitTheMessage checks that a 40 KiB message is encoded into a 64 KiB buffer,
// not the 1 MiB one gRPC's default pool would give it.
func TestCodecBuffersFitTheMessage(t *testing.T) {
	data, err := New(nil).Marshal(response("n", 40_000, "r"))
	if err != nil {
		t.Fatal(err)
	}
	defer data.Free()
	if len(data) != 1 {
		t.Fatalf("encoded into %d buffers, want 1", len(data))
	}
	if got := cap(data[0].ReadOnlyData()); got != 64<<10 {
		t.Errorf("a %d-byte message is in a buffer of %d bytes, want %d", data.Len(), got, 64<<10)
	}
}
