package api

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"
)

// consoleCSP is the console's Content-Security-Policy. Scripts, styles and connections come
// from the server itself only: no inline script can run, so an injected string cannot become
// code; connect-src 'self' also covers the console's WebSocket to /api/v1/live. The built
// console holds no inline script or style (web/scripts/bundle-size.mjs refuses an inline
// script, and TestConsoleAssetsFitTheCSP checks what is embedded).
const consoleCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; " +
	"frame-ancestors 'none'"

// Cache lifetimes. Vite names every file under assets/ after a hash of its content, so such a
// file never changes and may be kept for a year; everything else (index.html above all, which
// names the current assets) is revalidated on every use.
const (
	cacheImmutable  = "public, max-age=31536000, immutable"
	cacheRevalidate = "no-cache"
	hashedAssetsDir = "assets/"
)

// handleConsole serves the console's files, and answers any other path outside /api/ with
// index.html, so that a deep link into the single-page app (/config/virtualservices/...)
// opens it at that page. A missing file under assets/ is a 404 rather than index.html: it is
// a stale page asking for a script that a newer build replaced, and HTML in its place would
// only fail as a script. Text files are sent gzipped to clients that accept it.
func handleConsole(files fs.FS) http.Handler {
	cache := &consoleCache{files: files}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, "/api/") {
			writeProblem(w, http.StatusNotFound, "no API endpoint at "+r.URL.Path+": see /api/v1/openapi.json for the API", nil, nil)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			writeProblem(w, http.StatusMethodNotAllowed, "the console's pages are read with GET", nil, nil)
			return
		}
		h := w.Header()
		h.Set("Content-Security-Policy", consoleCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")

		name := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
		if name != "" && name != "index.html" && servable(name) {
			f, err := cache.get(name)
			switch {
			case err == nil:
				if strings.HasPrefix(name, hashedAssetsDir) {
					h.Set("Cache-Control", cacheImmutable)
				} else {
					h.Set("Cache-Control", cacheRevalidate)
				}
				f.serve(w, r)
				return
			case !errors.Is(err, fs.ErrNotExist):
				writeProblem(w, http.StatusInternalServerError, "reading the console's file "+name+" failed: the build embedded in this server is damaged", nil, nil)
				return
			}
		}
		if strings.HasPrefix(name+"/", hashedAssetsDir) {
			h.Set("Cache-Control", "no-store")
			http.Error(w, "no such console asset: reload the page to get the current console", http.StatusNotFound)
			return
		}
		index, err := cache.get("index.html")
		if err != nil {
			writeProblem(w, http.StatusInternalServerError, "this server was built without its console's index.html", nil, nil)
			return
		}
		h.Set("Cache-Control", cacheRevalidate)
		index.serve(w, r)
	})
}

// servable reports whether a cleaned path names a file the console may serve: not a hidden
// file such as web/dist/.keep.
func servable(name string) bool {
	for _, seg := range strings.Split(name, "/") {
		if strings.HasPrefix(seg, ".") {
			return false
		}
	}
	return true
}

// consoleCache keeps each file read once, with its ETag and gzipped form: the files are
// embedded in the binary and never change while it runs.
type consoleCache struct {
	files fs.FS
	mu    sync.Mutex
	byKey map[string]*consoleFile
}

type consoleFile struct {
	name        string
	contentType string
	body        []byte
	etag        string
	gz          []byte // nil when the file is not worth compressing
}

func (c *consoleCache) get(name string) (*consoleFile, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if f, ok := c.byKey[name]; ok {
		return f, nil
	}
	st, err := fs.Stat(c.files, name)
	if err != nil {
		return nil, err
	}
	if st.IsDir() {
		return nil, fs.ErrNotExist
	}
	body, err := fs.ReadFile(c.files, name)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(body)
	f := &consoleFile{name: name, body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`}
	f.contentType = mime.TypeByExtension(path.Ext(name))
	if f.contentType == "" {
		f.contentType = http.DetectContentType(body)
	}
	if compressible(f.contentType) && len(body) > 512 {
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		_, _ = zw.Write(body)
		_ = zw.Close()
		if buf.Len() < len(body) {
			f.gz = buf.Bytes()
		}
	}
	if c.byKey == nil {
		c.byKey = map[string]*consoleFile{}
	}
	c.byKey[name] = f
	return f, nil
}

func compressible(contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	return strings.HasPrefix(mt, "text/") || mt == "application/javascript" || mt == "application/json" ||
		mt == "image/svg+xml" || strings.HasSuffix(mt, "+json")
}

// serve answers with the file, gzipped when the client accepts it; http.ServeContent handles
// HEAD, If-None-Match and ranges.
func (f *consoleFile) serve(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", f.contentType)
	body, etag := f.body, f.etag
	if f.gz != nil {
		h.Add("Vary", "Accept-Encoding")
		if acceptsGzip(r.Header.Get("Accept-Encoding")) {
			h.Set("Content-Encoding", "gzip")
			body, etag = f.gz, strings.TrimSuffix(f.etag, `"`)+`-gz"`
		}
	}
	h.Set("ETag", etag)
	http.ServeContent(w, r, f.name, time.Time{}, bytes.NewReader(body))
}

// acceptsGzip reports whether an Accept-Encoding header allows gzip: named, or covered by
// "*", and not refused with q=0.
func acceptsGzip(header string) bool {
	star := false
	for _, part := range strings.Split(header, ",") {
		coding, params, _ := strings.Cut(part, ";")
		coding = strings.ToLower(strings.TrimSpace(coding))
		refused := false
		if k, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.TrimSpace(k) == "q" {
			q, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			refused = err == nil && q == 0
		}
		switch coding {
		case "gzip":
			return !refused
		case "*":
			star = !refused
		}
	}
	return star
}
