package health

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// recorder collects the results a Prober reports.
type recorder struct {
	mu  sync.Mutex
	got []Status
	ch  chan Status
}

func newRecorder() *recorder { return &recorder{ch: make(chan Status, 64)} }

func (r *recorder) onChange(s Status) {
	r.mu.Lock()
	r.got = append(r.got, s)
	r.mu.Unlock()
	r.ch <- s
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.got)
}

// next waits for the next reported result.
func (r *recorder) next(t *testing.T) Status {
	t.Helper()
	select {
	case s := <-r.ch:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no result reported")
		return Status{}
	}
}

func run(t *testing.T, cfg Config) *recorder {
	t.Helper()
	rec := newRecorder()
	p, err := New(cfg, rec.onChange)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = p.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return rec
}

func TestTCPProbeFollowsTheListener(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	rec := run(t, Config{Address: addr, Interval: 10 * time.Millisecond})
	if s := rec.next(t); !s.Ready || s.Reason != "" {
		t.Fatalf("first result %+v, want ready", s)
	}
	ln.Close()
	s := rec.next(t)
	if s.Ready || !strings.Contains(s.Reason, "TCP connect to "+addr) || !strings.Contains(s.Reason, "refused") {
		t.Fatalf("after close: %+v, want not ready with connection refused", s)
	}
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	defer ln2.Close()
	if s := rec.next(t); !s.Ready {
		t.Fatalf("after listening again: %+v, want ready", s)
	}
}

func TestHTTPProbeReadsTheStatus(t *testing.T) {
	var code atomic.Int32
	code.Store(http.StatusOK)
	var paths sync.Map
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths.Store(r.URL.Path, true)
		w.WriteHeader(int(code.Load()))
	}))
	defer srv.Close()
	rec := run(t, Config{Address: strings.TrimPrefix(srv.URL, "http://"), Path: "/healthz", Interval: 10 * time.Millisecond})
	if s := rec.next(t); !s.Ready {
		t.Fatalf("first result %+v", s)
	}
	code.Store(http.StatusServiceUnavailable)
	if s := rec.next(t); s.Ready || s.Reason != "GET /healthz: 503 Service Unavailable" {
		t.Fatalf("after 503: %+v", s)
	}
	// A redirect is not followed and counts as ready, as for a kubelet.
	code.Store(http.StatusMovedPermanently)
	if s := rec.next(t); !s.Ready {
		t.Fatalf("after 301: %+v", s)
	}
	if _, ok := paths.Load("/healthz"); !ok {
		t.Error("the probe did not ask for /healthz")
	}
}

func TestOneFailureBelowTheThresholdDoesNotFlap(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Every third probe fails: never two in a row.
		if n.Add(1)%3 == 0 {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	defer srv.Close()
	rec := run(t, Config{Address: strings.TrimPrefix(srv.URL, "http://"), Path: "/", Interval: 5 * time.Millisecond, Threshold: 2})
	if s := rec.next(t); !s.Ready {
		t.Fatalf("first result %+v", s)
	}
	deadline := time.Now().Add(10 * time.Second)
	for n.Load() < 30 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if n.Load() < 30 {
		t.Fatalf("only %d probes ran", n.Load())
	}
	if c := rec.count(); c != 1 {
		t.Errorf("%d results reported over %d probes with isolated failures, want only the first", c, n.Load())
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want string
	}{
		{"no address", Config{}, "address is empty"},
		{"no port", Config{Address: "127.0.0.1"}, `address "127.0.0.1"`},
		{"relative path", Config{Address: "127.0.0.1:80", Path: "healthz"}, `path "healthz" must start with /`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg, nil); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New(%+v) = %v, want an error containing %q", tc.cfg, err, tc.want)
			}
		})
	}
}

func TestInitReportsBeforeRun(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: the application is not up yet
	rec := newRecorder()
	p, err := New(Config{Address: addr, Interval: time.Hour}, rec.onChange)
	if err != nil {
		t.Fatal(err)
	}
	st := p.Init(context.Background())
	if st.Ready || !strings.Contains(st.Reason, "refused") {
		t.Fatalf("Init = %+v, want not ready", st)
	}
	if s := rec.next(t); s != st || p.Status() != st {
		t.Fatalf("reported %+v, status %+v, want %+v", s, p.Status(), st)
	}
}
