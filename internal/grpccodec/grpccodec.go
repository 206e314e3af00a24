// Package grpccodec is the protobuf codec of Sluice's gRPC servers and clients (the control
// plane's xDS and certificate services, and the proxies' xDS client).
package grpccodec

import (
	"fmt"

	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/proto"
)

// Codec is a protobuf codec for gRPC. It encodes as grpc-go's own does, into a pooled
// buffer, and decodes from one, but with a pool of its choosing. grpc-go's codec always
// takes the default pool, whose sizes jump from 32 KiB to 1 MiB and which zeroes what it
// hands out: each 40 KiB discovery response held a 1 MiB buffer and cleared all of it, a
// tenth of the server's CPU in a push to 1,000 proxies and as much on the receiving side.
// With NewPool's sizes, a buffer is at most twice its message.
type Codec struct{ pool mem.BufferPool }

// New returns a Codec that takes its buffers from pool (NewPool's when nil). Pass it to
// grpc.ForceServerCodecV2 or, on a client, grpc.ForceCodecV2.
func New(pool mem.BufferPool) Codec {
	if pool == nil {
		pool = NewPool()
	}
	return Codec{pool: pool}
}

// NewPool returns a gRPC buffer pool with every power of two from 256 B to 8 MiB, for a
// server's transport (experimental.BufferPool) and its Codec alike.
func NewPool() mem.BufferPool {
	var exps []uint8
	for e := uint8(8); e <= 23; e++ {
		exps = append(exps, e)
	}
	pool, err := mem.NewBinaryTieredBufferPool(exps...)
	if err != nil {
		panic(fmt.Sprintf("grpccodec: buffer pool of 2^8 to 2^23: %v", err)) // constant sizes
	}
	return pool
}

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
