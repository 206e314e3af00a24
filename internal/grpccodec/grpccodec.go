// Package grpccodec is the protobuf codec of Sluice's gRPC servers and clients (the control
// plane's xDS and certificate services, and the proxies' xDS client).
package grpccodec

import (
	"fmt"
	"math/bits"
	"sync"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// Codec is a protobuf codec for gRPC. It encodes as grpc-go's own does, into a pooled
// buffer, and decodes from one, with two differences that matter when the same route table
// goes to a thousand proxies at once:
//
//   - grpc-go's codec takes its buffers from the default pool, whose sizes jump from 32 KiB
//     to 1 MiB, so each 40 KiB discovery response in flight held a 1 MiB buffer;
//   - that pool zeroes every buffer it hands out, which is a megabyte cleared per response:
//     in a profile of a push to 1,000 proxies, a tenth of the server's CPU, and as much again
//     on the receiving side.
//
// The codec's pool has every power of two (dirtyPool) and does not zero: an encoded message
// overwrites all of the length it asked for, and a decoded one is copied in whole, so no
// byte of an earlier use is ever read.
type Codec struct{ pool *dirtyPool }

// New returns a Codec with its own pool. Pass it to grpc.ForceServerCodecV2 or, on a client,
// grpc.ForceCodecV2.
func New() Codec { return Codec{pool: &dirtyPool{}} }

// Name is the content subtype: this codec replaces grpc-go's "proto".
func (Codec) Name() string { return "proto" }

func (c Codec) Marshal(v any) (mem.BufferSlice, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("grpc codec: cannot marshal %T: not a protobuf message", v)
	}
	// UseCachedSize reuses this Size: the message is not changed between the two.
	size := proto.Size(m)
	opts := proto.MarshalOptions{UseCachedSize: true}
	if mem.IsBelowBufferPoolingThreshold(size) {
		b, err := opts.Marshal(m)
		if err != nil {
			return nil, err
		}
		return mem.BufferSlice{mem.SliceBuffer(b)}, nil
	}
	buf := c.pool.Get(size)
	b, err := opts.MarshalAppend((*buf)[:0], m)
	if err != nil {
		c.pool.Put(buf)
		return nil, err
	}
	*buf = b
	return mem.BufferSlice{mem.NewBuffer(buf, c.pool)}, nil
}

func (c Codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("grpc codec: cannot unmarshal into %T: not a protobuf message", v)
	}
	buf := data.MaterializeToBuffer(c.pool)
	defer buf.Free()
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

// The dirty pool's buffer sizes: 2^minPoolExp (256 B) to 2^maxPoolExp (8 MiB). Larger
// requests are allocated and left to the collector.
const minPoolExp, maxPoolExp = 8, 23

// dirtyPool is a gRPC buffer pool with a tier for every power of two that hands buffers
// out as they were put back, not zeroed. Only code that overwrites what it asked for may use
// it (Codec).
type dirtyPool struct {
	tiers [maxPoolExp + 1]sync.Pool
}

var _ mem.BufferPool = (*dirtyPool)(nil)

// Get returns a buffer of length n whose capacity is the power of two at or above n.
func (p *dirtyPool) Get(n int) *[]byte {
	e := max(bits.Len(uint(max(n, 1)-1)), minPoolExp)
	if e > maxPoolExp {
		b := make([]byte, n)
		return &b
	}
	if b, ok := p.tiers[e].Get().(*[]byte); ok {
		*b = (*b)[:n]
		return b
	}
	b := make([]byte, n, 1<<e)
	return &b
}

// Put keeps b for reuse if its capacity is one of the pool's sizes.
func (p *dirtyPool) Put(b *[]byte) {
	c := cap(*b)
	if c == 0 || c&(c-1) != 0 {
		return
	}
	if e := bits.Len(uint(c)) - 1; e >= minPoolExp && e <= maxPoolExp {
		p.tiers[e].Put(b)
	}
}
