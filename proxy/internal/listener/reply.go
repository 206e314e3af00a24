package listener

import (
	"encoding/binary"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"unsafe"
)

// ReasonHeader carries, on every answer the proxy makes itself, why it made it: "no route for
// reviews GET /x", "cluster outbound|9080|v3|reviews.default.svc.cluster.local has no healthy
// endpoints". It plays the part of Envoy's response flags for a person with curl.
const ReasonHeader = "X-Sluice-Reason"

// reply answers the request from the proxy itself, counting and logging the response flag.
// A gRPC request gets what a gRPC client can read, as Envoy does: HTTP 200 with grpc-status
// and grpc-message in a trailers-only response, the status mapped from the HTTP one.
func (ex *exchange) reply(f Flag, status int, body, reason string) {
	ex.replyGRPC(f, status, -1, body, reason)
}

// replyGRPC is reply with a gRPC status of its own for gRPC requests (grpcCode >= 0) rather
// than one mapped from status.
func (ex *exchange) replyGRPC(f Flag, status, grpcCode int, body, reason string) {
	ex.setFlag(f)
	if ex.h.log != nil && ex.h.log.Enabled(ex.r.Context(), slog.LevelDebug) {
		ex.h.log.Debug("local reply", "status", status, "response_flags", f.String(), "reason", reason,
			"authority", ex.req.Authority, "method", ex.r.Method, "path", ex.req.Path)
	}
	h := ex.w.Header()
	ex.finishHeaders(h)
	ex.detail = reason
	if isGRPC(ex.r.Header) {
		ex.status, ex.grpcCode = http.StatusOK, grpcCode
		if grpcCode < 0 {
			ex.grpcCode = grpcStatus(status)
		}
	} else {
		ex.status, ex.respBytes = status, int64(len(body))
	}
	localReply(ex.w, ex.r, status, grpcCode, body, reason)
}

// localReply writes a reply of the proxy's own; see exchange.reply.
func localReply(w http.ResponseWriter, r *http.Request, status, grpcCode int, body, reason string) {
	h := w.Header()
	h.Set(ReasonHeader, reason)
	if isGRPC(r.Header) {
		if grpcCode < 0 {
			grpcCode = grpcStatus(status)
		}
		h.Set("Content-Type", "application/grpc")
		h.Set("Grpc-Status", strconv.Itoa(grpcCode))
		msg := body
		if msg == "" {
			msg = reason
		}
		h.Set("Grpc-Message", grpcMessage(msg))
		w.WriteHeader(http.StatusOK)
		return
	}
	if body == "" {
		w.WriteHeader(status)
		return
	}
	h.Set("Content-Type", "text/plain")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write([]byte(body))
}

func isGRPC(h http.Header) bool {
	ct := h.Get("Content-Type")
	return strings.HasPrefix(ct, "application/grpc")
}

// grpcStatus maps an HTTP status to a gRPC code as Envoy and the gRPC spec do.
func grpcStatus(httpStatus int) int {
	switch httpStatus {
	case http.StatusBadRequest:
		return 13 // INTERNAL
	case http.StatusUnauthorized:
		return 16 // UNAUTHENTICATED
	case http.StatusForbidden:
		return 7 // PERMISSION_DENIED
	case http.StatusNotFound:
		return 12 // UNIMPLEMENTED
	case http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return 14 // UNAVAILABLE
	default:
		return 2 // UNKNOWN
	}
}

// grpcMessage percent-encodes a grpc-message value as the gRPC spec asks: every byte outside
// printable ASCII, and "%" itself.
func grpcMessage(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= ' ' && c <= '~' && c != '%' {
			b.WriteByte(c)
		} else {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
		}
	}
	return b.String()
}

// newRequestID returns a random (version 4) UUID, the form of Envoy's x-request-id.
func newRequestID() string { return requestIDValue()[0] }

// requestID is a header value holding a request id: the value's slice and the id's bytes
// in one allocation, the one a generated x-request-id costs per request.
type requestID struct {
	value [1]string
	text  [36]byte
}

// requestIDValue returns a new random request id as a header value.
func requestIDValue() []string {
	var b [16]byte
	binary.LittleEndian.PutUint64(b[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(b[8:], rand.Uint64())
	b[6] = b[6]&0x0f | 0x40 // version 4
	b[8] = b[8]&0x3f | 0x80 // RFC 4122 variant
	const hex = "0123456789abcdef"
	id := new(requestID)
	out := &id.text
	j := 0
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			out[j] = '-'
			j++
		}
		out[j], out[j+1] = hex[c>>4], hex[c&0xf]
		j += 2
	}
	// The bytes are never written again: the string may share them.
	id.value[0] = unsafe.String(&out[0], len(out))
	return id.value[:]
}
