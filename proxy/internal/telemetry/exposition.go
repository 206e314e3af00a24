package telemetry

import (
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"unicode/utf8"
)

// Istio's metric names.
const (
	RequestsTotal   = "istio_requests_total"
	RequestDuration = "istio_request_duration_milliseconds"
	RequestBytes    = "istio_request_bytes"
	ResponseBytes   = "istio_response_bytes"
)

// TextContentType is the media type of the Prometheus text format, version 0.0.4.
const TextContentType = "text/plain; version=0.0.4; charset=utf-8"

// PrometheusHandler returns the handler of /stats/prometheus: r's metrics in the Prometheus
// text format, and the Recorder's own counters as sluice_telemetry_*. It answers GET and
// HEAD.
func PrometheusHandler(r *Recorder) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method != http.MethodGet && req.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "use GET", http.StatusMethodNotAllowed)
			return
		}
		w.Header().Set("Content-Type", TextContentType)
		if req.Method == http.MethodHead {
			return
		}
		// An error here is the scraper going away: nobody is left to tell.
		_ = r.WriteText(w)
	})
}

// chunk is how much exposition text is gathered before a Write.
const chunk = 32 << 10

var textBufs = sync.Pool{New: func() any { b := make([]byte, 0, chunk+4096); return &b }}

// WriteText writes every series in the Prometheus text format (version 0.0.4): the four
// Istio families in a fixed order, each series sorted by its labels, then the Recorder's own
// counters. Counters and histograms are cumulative since the Recorder was created.
func (r *Recorder) WriteText(w io.Writer) error {
	all := r.snapshot()
	bp := textBufs.Get().(*[]byte)
	defer textBufs.Put(bp)
	t := textWriter{w: w, b: (*bp)[:0]}
	defer func() { *bp = t.b[:0] }()

	t.header(RequestsTotal, "counter", "Requests completed, by Istio's standard labels.")
	for _, s := range all {
		t.sample(RequestsTotal, "", s.text, "", count(s.duration[:]), -1)
	}
	var cum [numDuration]uint64
	t.histogram(RequestDuration, "Request durations in milliseconds.", all, durationLe, cum[:],
		func(s *series) ([]atomic.Uint64, *atomic.Uint64) { return s.duration[:], &s.durSum }, true)
	t.histogram(RequestBytes, "Request body sizes in bytes.", all, sizeLe, cum[:numSize],
		func(s *series) ([]atomic.Uint64, *atomic.Uint64) { return s.reqSize[:], &s.reqSum }, false)
	t.histogram(ResponseBytes, "Response body sizes in bytes.", all, sizeLe, cum[:numSize],
		func(s *series) ([]atomic.Uint64, *atomic.Uint64) { return s.respSize[:], &s.respSum }, false)

	st := r.Stats()
	t.header("sluice_telemetry_series", "gauge", "Distinct label sets held, the overflow series not included.")
	t.sample("sluice_telemetry_series", "", "", "", uint64(st.Series), -1)
	t.header("sluice_telemetry_max_series", "gauge", "Cap on distinct label sets; beyond it requests count in the series labelled \"other\".")
	t.sample("sluice_telemetry_max_series", "", "", "", uint64(r.max), -1)
	t.header("sluice_telemetry_dropped_label_sets_total", "counter", "Distinct label sets refused because of the cap (estimated).")
	t.sample("sluice_telemetry_dropped_label_sets_total", "", "", "", st.DroppedLabelSets, -1)
	t.header("sluice_telemetry_access_logs_dropped_total", "counter", "Access-log entries dropped because the queue was full.")
	t.sample("sluice_telemetry_access_logs_dropped_total", "", "", "", st.LogsDropped, -1)
	return t.flush()
}

// textWriter gathers exposition text and writes it in chunks, remembering the first error.
type textWriter struct {
	w   io.Writer
	b   []byte
	err error
}

func (t *textWriter) header(name, typ, help string) {
	t.b = append(t.b, "# HELP "...)
	t.b = append(t.b, name...)
	t.b = append(t.b, ' ')
	t.b = appendHelp(t.b, help)
	t.b = append(t.b, "\n# TYPE "...)
	t.b = append(t.b, name...)
	t.b = append(t.b, ' ')
	t.b = append(t.b, typ...)
	t.b = append(t.b, '\n')
}

// sample writes one line: name+suffix, the labels (plus le when given) and the value: v, or
// the float f when f is not negative.
func (t *textWriter) sample(name, suffix, labels, le string, v uint64, f float64) {
	b := append(t.b, name...)
	b = append(b, suffix...)
	if labels != "" || le != "" {
		b = append(b, '{')
		b = append(b, labels...)
		if le != "" {
			if labels != "" {
				b = append(b, ',')
			}
			b = append(b, `le="`...)
			b = append(b, le...)
			b = append(b, '"')
		}
		b = append(b, '}')
	}
	b = append(b, ' ')
	if f >= 0 {
		b = strconv.AppendFloat(b, f, 'g', -1, 64)
	} else {
		b = strconv.AppendUint(b, v, 10)
	}
	t.b = append(b, '\n')
	if len(t.b) >= chunk {
		t.flush()
	}
}

// histogram writes one histogram family. cum is scratch space as long as the buckets; ns
// says the sums are nanoseconds, printed as milliseconds.
func (t *textWriter) histogram(name, help string, all []*series, le []string, cum []uint64,
	field func(*series) ([]atomic.Uint64, *atomic.Uint64), ns bool) {
	t.header(name, "histogram", help)
	for _, s := range all {
		counts, sum := field(s)
		h := read(cum, counts, sum)
		for i, c := range h.cumulative {
			t.sample(name, "_bucket", s.text, le[i], c, -1)
		}
		if ns {
			t.sample(name, "_sum", s.text, "", 0, float64(h.sum)/1e6)
		} else {
			t.sample(name, "_sum", s.text, "", h.sum, -1)
		}
		t.sample(name, "_count", s.text, "", h.cumulative[len(h.cumulative)-1], -1)
	}
}

func (t *textWriter) flush() error {
	if t.err == nil && len(t.b) > 0 {
		_, t.err = t.w.Write(t.b)
	}
	t.b = t.b[:0]
	return t.err
}

// appendEscaped appends a label value escaped as the text format asks: backslash, double
// quote and line feed are escaped, and invalid UTF-8 becomes U+FFFD, since the format is
// UTF-8.
func appendEscaped(b []byte, s string) []byte {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch c {
			case '\\':
				b = append(b, `\\`...)
			case '"':
				b = append(b, `\"`...)
			case '\n':
				b = append(b, `\n`...)
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = utf8.AppendRune(b, utf8.RuneError)
		} else {
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return b
}

// appendHelp appends a HELP text: only backslash and line feed are escaped there.
func appendHelp(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			b = append(b, `\\`...)
		case '\n':
			b = append(b, `\n`...)
		default:
			b = append(b, s[i])
		}
	}
	return b
}
