package api

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/sluicemesh/sluice/web"
)

// consoleBuild is a console build as Vite lays it out.
func consoleBuild() fstest.MapFS {
	js := "export const x = 1;\n" + strings.Repeat("console.log('sluice');\n", 100)
	return fstest.MapFS{
		"index.html":               {Data: []byte(`<!doctype html><html><head><script type="module" crossorigin src="/assets/index-Ab12Cd.js"></script></head><body><div id="root"></div></body></html>`)},
		"assets/index-Ab12Cd.js":   {Data: []byte(js)},
		"assets/index-Ef34Gh.css":  {Data: []byte("body{margin:0}")},
		"favicon.svg":              {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)},
		".keep":                    {Data: []byte("keeps dist in git")},
		"assets/EditorPage-Zz9.js": {Data: []byte("export default 1")},
	}
}

func TestConsoleServesFiles(t *testing.T) {
	files := consoleBuild()
	index := string(files["index.html"].Data)
	h := handleConsole(files)

	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantBody   string // exact, when not empty
		wantType   string // prefix
		wantCache  string
	}{
		{"the root is index.html", "GET", "/", 200, index, "text/html", cacheRevalidate},
		{"index.html itself", "GET", "/index.html", 200, index, "text/html", cacheRevalidate},
		{"a deep link gets index.html", "GET", "/config/virtualservices/default/reviews/history", 200, index, "text/html", cacheRevalidate},
		{"a deep link with a query", "GET", "/login?next=%2Fproxies", 200, index, "text/html", cacheRevalidate},
		{"a hashed script is immutable", "GET", "/assets/index-Ab12Cd.js", 200, string(files["assets/index-Ab12Cd.js"].Data), "text/javascript", cacheImmutable},
		{"a hashed style sheet is immutable", "GET", "/assets/index-Ef34Gh.css", 200, "body{margin:0}", "text/css", cacheImmutable},
		{"an unhashed file is revalidated", "GET", "/favicon.svg", 200, string(files["favicon.svg"].Data), "image/svg+xml", cacheRevalidate},
		{"a missing asset is not index.html", "GET", "/assets/index-Old999.js", 404, "", "text/plain", "no-store"},
		{"the assets directory is not listed", "GET", "/assets/", 404, "", "text/plain", "no-store"},
		{"a hidden file is not served", "GET", "/.keep", 200, index, "text/html", cacheRevalidate},
		{"a path climbing out stays in", "GET", "/../../etc/passwd", 200, index, "text/html", cacheRevalidate},
		{"an unknown API path is an API 404", "GET", "/api/v1/nothing-here", 404, "", "application/problem+json", ""},
		{"HEAD answers without a body", "HEAD", "/", 200, "", "text/html", cacheRevalidate},
		{"a write is refused", "POST", "/config", 405, "", "application/problem+json", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(tc.method, tc.path, nil)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			res := rec.Result()
			body, _ := io.ReadAll(res.Body)
			if res.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d; body %q", res.StatusCode, tc.wantStatus, body)
			}
			if tc.wantBody != "" && string(body) != tc.wantBody {
				t.Errorf("body %q, want %q", body, tc.wantBody)
			}
			if tc.method == "HEAD" && len(body) != 0 {
				t.Errorf("HEAD answered a body of %d bytes", len(body))
			}
			if got := res.Header.Get("Content-Type"); !strings.HasPrefix(got, tc.wantType) {
				t.Errorf("Content-Type %q, want %q", got, tc.wantType)
			}
			if got := res.Header.Get("Cache-Control"); got != tc.wantCache {
				t.Errorf("Cache-Control %q, want %q", got, tc.wantCache)
			}
		})
	}
}

func TestConsoleSecurityHeaders(t *testing.T) {
	h := handleConsole(consoleBuild())
	for _, p := range []string{"/", "/proxies", "/assets/index-Ab12Cd.js"} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", p, nil))
		csp := rec.Header().Get("Content-Security-Policy")
		directives := map[string]string{}
		for _, d := range strings.Split(csp, ";") {
			name, value, _ := strings.Cut(strings.TrimSpace(d), " ")
			directives[name] = value
		}
		for name, want := range map[string]string{
			"default-src":     "'self'",
			"script-src":      "'self'",
			"style-src":       "'self'",
			"connect-src":     "'self'",
			"object-src":      "'none'",
			"base-uri":        "'none'",
			"frame-ancestors": "'none'",
		} {
			if directives[name] != want {
				t.Errorf("%s: CSP %s is %q, want %q (whole policy %q)", p, name, directives[name], want, csp)
			}
		}
		if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
			t.Errorf("%s: CSP allows inline code: %q", p, csp)
		}
		for name, want := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin"} {
			if got := rec.Header().Get(name); got != want {
				t.Errorf("%s: %s %q, want %q", p, name, got, want)
			}
		}
	}
}

func TestConsoleCompressesAndRevalidates(t *testing.T) {
	files := consoleBuild()
	h := handleConsole(files)
	const script = "/assets/index-Ab12Cd.js"

	get := func(headers map[string]string) *http.Response {
		req := httptest.NewRequest("GET", script, nil)
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Result()
	}

	plain := get(nil)
	if plain.Header.Get("Content-Encoding") != "" || plain.Header.Get("Vary") != "Accept-Encoding" {
		t.Errorf("without Accept-Encoding: Content-Encoding %q, Vary %q", plain.Header.Get("Content-Encoding"), plain.Header.Get("Vary"))
	}

	zipped := get(map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
	if zipped.Header.Get("Content-Encoding") != "gzip" {
		t.Fatalf("Content-Encoding %q, want gzip", zipped.Header.Get("Content-Encoding"))
	}
	if !strings.HasPrefix(zipped.Header.Get("Content-Type"), "text/javascript") {
		t.Errorf("gzipped Content-Type %q: want the file's own type", zipped.Header.Get("Content-Type"))
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(zr)
	if !bytes.Equal(got, files["assets/index-Ab12Cd.js"].Data) {
		t.Errorf("gunzipped body differs from the file")
	}
	if zipped.Header.Get("ETag") == plain.Header.Get("ETag") {
		t.Errorf("the gzipped and plain answers share the ETag %q", plain.Header.Get("ETag"))
	}

	if r := get(map[string]string{"Accept-Encoding": "gzip;q=0, identity"}); r.Header.Get("Content-Encoding") != "" {
		t.Errorf("gzip;q=0 got Content-Encoding %q", r.Header.Get("Content-Encoding"))
	}

	again := get(map[string]string{"If-None-Match": plain.Header.Get("ETag")})
	if again.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the ETag: status %d, want 304", again.StatusCode)
	}
}

func TestAcceptsGzip(t *testing.T) {
	tests := map[string]bool{
		"":                     false,
		"gzip":                 true,
		"GZIP":                 true,
		"deflate, gzip":        true,
		"gzip;q=0.5":           true,
		"gzip;q=0":             false,
		"gzip; q=0.000":        false,
		"br":                   false,
		"*":                    true,
		"*;q=0, gzip":          true,
		"identity, *;q=0":      false,
		"gzip;q=0, *;q=1":      false,
		"deflate;q=1, *;q=0.1": true,
	}
	for header, want := range tests {
		if got := acceptsGzip(header); got != want {
			t.Errorf("acceptsGzip(%q) = %v, want %v", header, got, want)
		}
	}
}

// The files embedded in this build (the console, or the placeholder without it) must work
// under the Content-Security-Policy: no inline script or style, no inline event handlers.
func TestConsoleAssetsFitTheCSP(t *testing.T) {
	assets := web.Assets()
	index, err := fs.ReadFile(assets, "index.html")
	if err != nil {
		t.Fatalf("the embedded console has no index.html: %v", err)
	}
	inline := []*regexp.Regexp{
		regexp.MustCompile(`(?i)<script\b[^>]*>\s*[^<\s]`), // a script with a body
		regexp.MustCompile(`(?i)<style\b`),
		regexp.MustCompile(`(?i)\sstyle\s*=`),
		regexp.MustCompile(`(?i)\son[a-z]+\s*=`),
	}
	for _, re := range inline {
		if m := re.Find(index); m != nil {
			t.Errorf("index.html has inline code the CSP refuses: %q", m)
		}
	}
	for _, m := range regexp.MustCompile(`<(?:script|link|img)\b[^>]*\b(?:src|href)="/([^"]+)"`).FindAllSubmatch(index, -1) {
		if _, err := fs.Stat(assets, string(m[1])); err != nil {
			t.Errorf("index.html refers to /%s, which is not embedded: %v", m[1], err)
		}
	}
	t.Logf("console built into this binary: %v", web.Built())
}
