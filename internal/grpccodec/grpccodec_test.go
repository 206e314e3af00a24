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

// TestGRPCCodecReusesBuffersWithoutStaleBytes encodes a large response, frees its buffer,
// then encodes a smaller one that reuses it, and checks that each decodes to what was
// encoded: a buffer handed out unzeroed must never leak an earlier message's bytes.
func TestGRPCCodecReusesBuffersWithoutStaleBytes(t *testing.T) {
	c := New()
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

// TestDirtyPoolSizes checks that buffers come at the power of two at or above the length
// asked, go back only at the pool's sizes, and come back out of it.
func TestDirtyPoolSizes(t *testing.T) {
	p := &dirtyPool{}
	for _, tc := range []struct{ n, cap int }{{1, 256}, {256, 256}, {257, 512}, {40_000, 65_536}, {1 << 23, 1 << 23}, {1<<23 + 1, 1<<23 + 1}} {
		b := p.Get(tc.n)
		if len(*b) != tc.n || cap(*b) != tc.cap {
			t.Errorf("Get(%d): len %d cap %d, want len %d cap %d", tc.n, len(*b), cap(*b), tc.n, tc.cap)
		}
		p.Put(b)
	}
	b := p.Get(40_000)
	(*b)[0] = 42
	p.Put(b)
	var reused bool
	for range 100 { // sync.Pool may drop an item; it keeps most
		c := p.Get(33_000)
		if cap(*c) != 65_536 {
			t.Fatalf("Get(33000): cap %d, want 65536", cap(*c))
		}
		reused = reused || &(*c)[0] == &(*b)[0]
		p.Put(c)
	}
	if !reused {
		t.Error("a buffer put back was never handed out again")
	}
	odd := make([]byte, 1000)
	p.Put(&odd) // not a pool size: dropped, not handed out as a 1,024-byte buffer
	if c := p.Get(1000); cap(*c) != 1024 {
		t.Errorf("Get(1000) after putting a 1,000-byte buffer: cap %d, want 1024", cap(*c))
	}
}
