package listener

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
)

// MaxBufferedBody bounds how much of a request body the proxy keeps so that it can retry the
// request or mirror it: 64 KiB, Envoy's usual per-request buffer limit for the same purpose.
// A bigger body is streamed upstream as it arrives and is then neither retried nor mirrored.
const MaxBufferedBody = 64 << 10

var (
	errRetired       = errors.New("request body: this try was abandoned for a retry")
	errNotReplayable = errors.New("request body: more than the buffered bytes were already sent, it cannot be sent again")
)

// requestBody records a request body while the first try streams it upstream, up to
// MaxBufferedBody bytes, so that a later try can send it again and a mirror can send a copy.
// Nothing is read ahead: each try's reader passes on what the client sends as it arrives,
// so a recorded request is not slowed.
//
// Each try gets its own reader from next. Starting a try retires the readers of earlier
// ones, so a transport still writing an abandoned try cannot take bytes from the new one:
// what it had read is recorded and replayed to the new try.
type requestBody struct {
	src   io.ReadCloser
	limit int

	srcMu sync.Mutex // serializes reads of src
	gen   atomic.Uint32

	mu   sync.Mutex // guards the fields below
	buf  []byte     // the first read bytes of src, while !over
	read int64      // bytes read from src
	over bool       // more than limit bytes were read; buf was dropped
	eof  bool
	err  error
	// onComplete, when set, is called once, on the goroutine that read the end of the body,
	// with the whole body if it fit in the limit. It must not block.
	onComplete func([]byte)
	// pendingCopies counts the mirrored copies waiting for onComplete.
	pendingCopies int
}

// abandon gives up the copies still waiting for the end of the body, when the exchange is
// over without having read it, and returns how many there were.
func (b *requestBody) abandon() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.onComplete == nil || b.eof {
		return 0
	}
	b.onComplete = nil
	return b.pendingCopies
}

func newRequestBody(src io.ReadCloser, contentLength int64, limit int) *requestBody {
	b := &requestBody{src: src, limit: limit}
	if contentLength > 0 && contentLength <= int64(limit) {
		b.buf = make([]byte, 0, contentLength)
	}
	return b
}

// next returns the reader for a new try and retires the readers of earlier tries.
func (b *requestBody) next() io.ReadCloser {
	return &bodyReader{b: b, gen: b.gen.Add(1)}
}

// replayable reports whether a new try can still be sent the whole body.
func (b *requestBody) replayable() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return !b.over && b.err == nil
}

type bodyReader struct {
	b   *requestBody
	gen uint32
	off int64 // bytes given to this try
}

func (r *bodyReader) Read(p []byte) (int, error) {
	b := r.b
	for {
		if r.gen != b.gen.Load() {
			return 0, errRetired
		}
		b.mu.Lock()
		switch {
		case r.off < int64(len(b.buf)):
			n := copy(p, b.buf[r.off:])
			r.off += int64(n)
			b.mu.Unlock()
			return n, nil
		case r.off < b.read:
			b.mu.Unlock()
			return 0, errNotReplayable
		case b.eof:
			b.mu.Unlock()
			return 0, io.EOF
		case b.err != nil:
			err := b.err
			b.mu.Unlock()
			return 0, err
		}
		b.mu.Unlock()

		b.srcMu.Lock()
		b.mu.Lock()
		moved := r.off < b.read || b.eof || b.err != nil
		b.mu.Unlock()
		if moved {
			// A retired try read meanwhile: what it read is recorded, replay it.
			b.srcMu.Unlock()
			continue
		}
		n, err := b.src.Read(p)
		var complete []byte
		fire := false
		b.mu.Lock()
		b.read += int64(n)
		if !b.over {
			if len(b.buf)+n <= b.limit {
				b.buf = append(b.buf, p[:n]...)
			} else {
				b.over, b.buf = true, nil
			}
		}
		switch {
		case err == io.EOF:
			b.eof = true
			if !b.over && b.onComplete != nil {
				complete, fire = b.buf, true
			}
		case err != nil:
			b.err = err
		}
		b.mu.Unlock()
		b.srcMu.Unlock()
		if fire {
			b.onComplete(complete)
		}
		if r.gen != b.gen.Load() {
			return 0, errRetired // recorded for the try that replaced this one
		}
		r.off += int64(n)
		return n, err
	}
}

// Close does nothing: the server owns the client's body, and a later try may still need it.
func (r *bodyReader) Close() error { return nil }
