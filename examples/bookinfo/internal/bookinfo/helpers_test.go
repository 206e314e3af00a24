package bookinfo

import (
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"sync"
	"testing"
)

// testLogger logs through t, at debug level.
func testLogger(t *testing.T) *slog.Logger {
	t.Helper()
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// serve runs h on a loopback test server until the test ends, and returns
// its base URL.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

// downURL returns the URL of a server that is no longer listening.
func downURL(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	srv.Close()
	return srv.URL
}

// recorder passes requests to a real handler and remembers their headers.
type recorder struct {
	next http.Handler

	mu      sync.Mutex
	headers []http.Header
}

func record(next http.Handler) *recorder { return &recorder{next: next} }

func (rec *recorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec.mu.Lock()
	rec.headers = append(rec.headers, r.Header.Clone())
	rec.mu.Unlock()
	rec.next.ServeHTTP(w, r)
}

// calls returns how many requests the recorder saw.
func (rec *recorder) calls() int {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	return len(rec.headers)
}

// last returns the headers of the latest request, or nil.
func (rec *recorder) last() http.Header {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.headers) == 0 {
		return nil
	}
	return rec.headers[len(rec.headers)-1]
}

// fault answers status to the first n requests, like an Istio abort fault,
// and passes the later ones to next. A negative n faults every request.
type fault struct {
	status int
	n      int
	next   http.Handler

	mu   sync.Mutex
	seen int
}

func (f *fault) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	f.seen++
	faulted := f.n < 0 || f.seen <= f.n
	f.mu.Unlock()
	if faulted {
		http.Error(w, "fault filter abort", f.status)
		return
	}
	f.next.ServeHTTP(w, r)
}

// hang answers nothing until the caller gives up, like an Istio delay
// fault longer than the caller's timeout.
var hang = http.HandlerFunc(func(_ http.ResponseWriter, r *http.Request) {
	<-r.Context().Done()
})

// do sends r to h and returns the status, headers and body of the answer.
func do(t *testing.T, h http.Handler, r *http.Request) (int, http.Header, []byte) {
	t.Helper()
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	res := w.Result()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return res.StatusCode, res.Header, body
}

// get fetches url with client and returns the status and body.
func get(t *testing.T, client *http.Client, url string, header http.Header) (int, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatalf("build request: %v", err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("read answer of %s: %v", url, err)
	}
	return res.StatusCode, body
}

// assertJSON fails the test unless got and want are the same JSON value.
func assertJSON(t *testing.T, got []byte, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("answer is not JSON: %v\n%s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("expected value is not JSON: %v", err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("JSON differs\n got: %s\nwant: %s", got, want)
	}
}
