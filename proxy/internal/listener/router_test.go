package listener

import (
	"context"
	"crypto/tls"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/proxy/internal/route"
)

func TestJitterIsFullAndBounded(t *testing.T) {
	const n = 20_000
	for _, bound := range []time.Duration{25 * time.Millisecond, 250 * time.Millisecond, time.Millisecond} {
		var sum float64
		lo, hi := bound, time.Duration(0)
		for range n {
			d := jitter(bound)
			if d < 0 || d >= bound {
				t.Fatalf("jitter(%v) = %v, outside [0, %v)", bound, d, bound)
			}
			sum += float64(d)
			lo, hi = min(lo, d), max(hi, d)
		}
		// Uniform on [0, b): mean b/2, standard deviation b/sqrt(12).
		mean, want := sum/n, float64(bound)/2
		if tol := 5 * float64(bound) / math.Sqrt(12*n); math.Abs(mean-want) > tol {
			t.Errorf("jitter(%v): mean %v, want %v ± %v", bound, time.Duration(mean), time.Duration(want), time.Duration(tol))
		}
		// Full jitter reaches both ends of the range.
		if lo > bound/100 || hi < bound-bound/100 {
			t.Errorf("jitter(%v) spans [%v, %v], want close to [0, %v)", bound, lo, hi, bound)
		}
	}
}

// The upstream request is a copy of the client's with every exported field set again: a field
// net/http adds would be carried upstream unseen, so this test lists them.
func TestUpstreamRequestSetsEveryField(t *testing.T) {
	set := map[string]bool{}
	for _, f := range []string{"Method", "URL", "Proto", "ProtoMajor", "ProtoMinor", "Header", "Body", "GetBody",
		"ContentLength", "TransferEncoding", "Close", "Host", "Form", "PostForm", "MultipartForm", "Trailer",
		"RemoteAddr", "RequestURI", "TLS", "Cancel", "Response", "Pattern"} {
		set[f] = true
	}
	rt := reflect.TypeFor[http.Request]()
	for i := range rt.NumField() {
		if f := rt.Field(i); f.IsExported() && !set[f.Name] {
			t.Errorf("http.Request.%s is new: decide whether upstreamRequest forwards it, clear it there, and list it here", f.Name)
		}
	}

	in := httptest.NewRequest(http.MethodPost, "http://reviews:9080/a?b=c", strings.NewReader("body"))
	in.Header.Set("X-Kept", "1")
	in.Header.Set("Connection", "close")
	in.Close = true
	in.TLS = &tls.ConnectionState{}
	in.Form = url.Values{"b": {"c"}}
	in.Pattern = "/a"
	in.TransferEncoding = []string{"chunked"}
	in.GetBody = func() (io.ReadCloser, error) { return nil, nil }
	uri := in.RequestURI
	cfg := &Config{Name: "l"}
	ex := &exchange{h: &handler{stats: &Stats{}}, r: in, s: &Serving{Config: cfg}, rt: &route.Route{}}
	ctx := context.WithValue(context.Background(), struct{}{}, "mine")
	out := ex.upstreamRequest(ctx, "reviews.default")
	if out == in || out.Context() != ctx {
		t.Fatal("the upstream request is not a new request with the given context")
	}
	if out.Method != http.MethodPost || out.Host != "reviews.default" || out.Proto != "HTTP/1.1" || out.Header.Get("X-Kept") != "1" {
		t.Errorf("forwarded %s %s %s %v", out.Method, out.Host, out.Proto, out.Header)
	}
	if out.URL != nil || out.Body != nil || out.GetBody != nil || out.ContentLength != 0 || out.TransferEncoding != nil ||
		out.Close || out.Form != nil || out.RemoteAddr != "" || out.RequestURI != "" || out.TLS != nil || out.Pattern != "" ||
		out.Header.Get("Connection") != "" {
		t.Errorf("the client's connection state leaked upstream: %+v", out)
	}
	if in.Host != "reviews:9080" || in.RequestURI != uri || in.TLS == nil || !in.Close {
		t.Errorf("the client's request was changed: %+v", in)
	}
}
