package telemetry

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// goldenRecorder records a small mesh's worth of requests, one of each kind the exposition
// has to print.
func goldenRecorder() *Recorder {
	r := NewRecorder(Options{MaxSeries: 4})
	q := outbound()
	for _, d := range []time.Duration{300 * time.Microsecond, 7 * time.Millisecond, 120 * time.Millisecond} {
		q.Duration, q.RequestBytes, q.ResponseBytes = d, 0, 295
		r.Record(q)
	}

	// No healthy endpoint: the proxy answered itself, so no workload answered.
	q = outbound()
	q.DestinationWorkload, q.DestinationVersion, q.DestinationApp, q.DestinationNamespace = "", "", "", ""
	q.ResponseCode, q.Flags, q.Duration, q.ResponseBytes = 503, FlagNoHealthyUpstream, 200*time.Microsecond, 19
	r.Record(q)

	// No route: not even the service is known.
	q = outbound()
	q.DestinationService, q.DestinationWorkload, q.DestinationVersion, q.DestinationApp, q.DestinationNamespace = "", "", "", "", ""
	q.ResponseCode, q.Flags, q.Duration, q.ResponseBytes = 404, FlagNoRouteFound, 90*time.Microsecond, 0
	r.Record(q)

	// Inbound gRPC call that failed upstream, from a caller with an awkward version label.
	r.Record(Request{
		Reporter: ReporterDestination, Protocol: ProtocolGRPC,
		SourceWorkload: "ratings-v1", SourceNamespace: "bookinfo", SourceVersion: "v1 \"canary\"\\x\n", SourceApp: "ratings",
		DestinationService: "reviews.bookinfo.svc.cluster.local", DestinationWorkload: "reviews-v2",
		DestinationNamespace: "bookinfo", DestinationVersion: "v2", DestinationApp: "reviews",
		ResponseCode: 200, GRPCStatus: 14, Duration: 2500 * time.Millisecond, RequestBytes: 12_000, ResponseBytes: 5,
	})

	// Over the cap of four: both go to the overflow series.
	for _, v := range []string{"v7", "v8"} {
		q = outbound()
		q.DestinationVersion = v
		q.Duration, q.ResponseBytes = 2*time.Hour, 2_000_000_000
		r.Record(q)
	}
	return r
}

func TestWriteTextGolden(t *testing.T) {
	got := text(t, goldenRecorder())
	checkTextFormat(t, got)
	golden := filepath.Join("testdata", "exposition.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("exposition differs from %s (go test -update rewrites it; review the diff):\n%s", golden, diffLines(string(want), got))
	}
}

// diffLines lists the first lines that differ.
func diffLines(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	shown := 0
	for i := 0; i < max(len(w), len(g)) && shown < 10; i++ {
		var wl, gl string
		if i < len(w) {
			wl = w[i]
		}
		if i < len(g) {
			gl = g[i]
		}
		if wl != gl {
			fmt.Fprintf(&b, "line %d:\n-%s\n+%s\n", i+1, wl, gl)
			shown++
		}
	}
	return b.String()
}

var (
	metricName = regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`)
	labelName  = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)
)

// checkTextFormat checks text against the Prometheus text format, version 0.0.4: every
// family has one HELP and one TYPE line before its samples, every sample names a metric of
// the current family, labels parse, and values are numbers.
func checkTextFormat(t *testing.T, text string) {
	t.Helper()
	if !strings.HasSuffix(text, "\n") {
		t.Fatal("exposition does not end with a line feed")
	}
	var family, typ string
	seen := map[string]bool{}
	for n, line := range strings.Split(strings.TrimSuffix(text, "\n"), "\n") {
		fail := func(why string) { t.Fatalf("line %d %q: %s", n+1, line, why) }
		if rest, ok := strings.CutPrefix(line, "# HELP "); ok {
			family, _, _ = strings.Cut(rest, " ")
			if !metricName.MatchString(family) || seen[family] {
				fail("bad or repeated family")
			}
			seen[family], typ = true, ""
			continue
		}
		if rest, ok := strings.CutPrefix(line, "# TYPE "); ok {
			name, tp, _ := strings.Cut(rest, " ")
			if name != family || typ != "" {
				fail("TYPE does not follow its HELP")
			}
			typ = tp
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			fail("no value")
		}
		if _, err := strconv.ParseFloat(line[i+1:], 64); err != nil {
			fail("value is not a number")
		}
		name, labels, hasLabels := strings.Cut(line[:i], "{")
		want := map[string][]string{"counter": {""}, "gauge": {""}, "histogram": {"_bucket", "_sum", "_count"}}[typ]
		ok := false
		for _, suffix := range want {
			ok = ok || name == family+suffix
		}
		if !ok {
			fail("sample outside its family " + family + " (" + typ + ")")
		}
		if hasLabels {
			if !strings.HasSuffix(labels, "}") {
				fail("labels not closed")
			}
			pairs, err := parseLabels(strings.TrimSuffix(labels, "}"))
			if err != nil {
				fail(err.Error())
			}
			if (name == family+"_bucket") != (len(pairs) > 0 && pairs[len(pairs)-1][0] == "le") {
				fail("le must be the last label of a bucket, and only there")
			}
		}
	}
}

// parseLabels parses `a="x",b="y"` as the text format defines it.
func parseLabels(s string) ([][2]string, error) {
	var out [][2]string
	for s != "" {
		name, rest, ok := strings.Cut(s, `="`)
		if !ok || !labelName.MatchString(name) {
			return nil, fmt.Errorf("bad label name at %q", s)
		}
		var v strings.Builder
		i := 0
		for ; i < len(rest) && rest[i] != '"'; i++ {
			if rest[i] == '\n' {
				return nil, fmt.Errorf("raw line feed in the value of %s", name)
			}
			if rest[i] != '\\' {
				v.WriteByte(rest[i])
				continue
			}
			i++
			switch {
			case i == len(rest):
				return nil, fmt.Errorf("dangling escape in %s", name)
			case rest[i] == 'n':
				v.WriteByte('\n')
			case rest[i] == '\\' || rest[i] == '"':
				v.WriteByte(rest[i])
			default:
				return nil, fmt.Errorf("unknown escape \\%c in %s", rest[i], name)
			}
		}
		if i == len(rest) {
			return nil, fmt.Errorf("value of %s not closed", name)
		}
		out = append(out, [2]string{name, v.String()})
		s = rest[i+1:]
		if s != "" {
			if s[0] != ',' {
				return nil, fmt.Errorf("want a comma at %q", s)
			}
			s = s[1:]
		}
	}
	return out, nil
}

func TestLabelValuesRoundTrip(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain", "reviews-v2", "reviews-v2"},
		{"quote", `say "hi"`, `say "hi"`},
		{"backslash", `C:\mesh\`, `C:\mesh\`},
		{"line feed", "a\nb", "a\nb"},
		{"escape look-alike", `\n`, `\n`},
		{"unicode", "résumé ✓", "résumé ✓"},
		{"invalid UTF-8", "a\xffb\xc3", "a\uFFFDb\uFFFD"},
		{"tab and carriage return stay raw", "a\tb\rc", "a\tb\rc"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRecorder(Options{})
			q := outbound()
			q.DestinationVersion = tt.in
			r.Record(q)
			pairs, err := parseLabels(requestLabels(t, r))
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pairs {
				if p[0] == "destination_version" && p[1] != tt.want {
					t.Errorf("parsed back %q, want %q", p[1], tt.want)
				}
			}
		})
	}
}

func TestPrometheusHandler(t *testing.T) {
	r := goldenRecorder()
	srv := httptest.NewServer(PrometheusHandler(r))
	defer srv.Close()

	res, err := http.Get(srv.URL + "/stats/prometheus")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || res.Header.Get("Content-Type") != TextContentType {
		t.Errorf("GET: %d %q", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if string(body) != text(t, r) {
		t.Error("GET body differs from WriteText")
	}

	res, err = http.Post(srv.URL+"/stats/prometheus", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
		t.Errorf("POST: %d, Allow %q", res.StatusCode, res.Header.Get("Allow"))
	}
}

// TestWriteTextLarge checks a scrape bigger than the write chunk is whole and well formed.
func TestWriteTextLarge(t *testing.T) {
	r := NewRecorder(Options{})
	for _, q := range benchRequests(300) {
		r.Record(q)
	}
	out := text(t, r)
	if len(out) < 4*chunk {
		t.Fatalf("only %d bytes: the test needs several chunks", len(out))
	}
	checkTextFormat(t, out)
	if n := strings.Count(out, RequestsTotal+"{"); n != 300 {
		t.Errorf("%d requests series, want 300", n)
	}
}
