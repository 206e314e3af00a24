package api

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestBodyLimitOnAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	big := `{"username":"admin","password":"` + strings.Repeat("x", 2<<20) + `"}`
	res := e.browser().do("POST", "/api/v1/login", big, nil)
	wantStatus(t, "2 MiB login", res, http.StatusRequestEntityTooLarge, "limit")

	// Without a Content-Length the body is cut off while it is read.
	req, _ := http.NewRequest("POST", e.srv.URL+"/api/v1/login", io.MultiReader(strings.NewReader(big)))
	req.Header.Set("Content-Type", "application/json")
	req.ContentLength = -1
	wantStatus(t, "2 MiB chunked login", e.browser().send(req, nil), http.StatusRequestEntityTooLarge, "")
}

func TestLimitBody(t *testing.T) {
	t.Parallel()
	log := slog.New(slog.NewTextHandler(logWriter{t}, nil))
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, err := readBody(w, r, 1<<30)
		if err != nil {
			writeError(w, r, log, err)
			return
		}
		fmt.Fprint(w, len(b))
	})
	tests := []struct {
		name    string
		h       http.Handler
		size    int
		chunked bool
		status  int
	}{
		{"under", limitBody(1024)(echo), 1024, false, http.StatusOK},
		{"over", limitBody(1024)(echo), 1025, false, http.StatusRequestEntityTooLarge},
		{"over, chunked", limitBody(1024)(echo), 1025, true, http.StatusRequestEntityTooLarge},
		{"inner raises the limit", limitBody(1024)(limitBody(4096)(echo)), 3000, true, http.StatusOK},
		{"inner limit holds", limitBody(1024)(limitBody(4096)(echo)), 5000, true, http.StatusRequestEntityTooLarge},
		{"inner lowers the limit", limitBody(4096)(limitBody(1024)(echo)), 3000, false, http.StatusRequestEntityTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var body io.Reader = bytes.NewReader(bytes.Repeat([]byte("x"), tt.size))
			if tt.chunked {
				body = io.MultiReader(body) // hides the length
			}
			req := httptest.NewRequest("POST", "/", body)
			if tt.chunked {
				req.ContentLength = -1
			}
			rec := httptest.NewRecorder()
			tt.h.ServeHTTP(rec, req)
			if rec.Code != tt.status {
				t.Errorf("status %d (%s), want %d", rec.Code, rec.Body, tt.status)
			}
			if rec.Code == http.StatusRequestEntityTooLarge && rec.Header().Get("Content-Type") != "application/problem+json" {
				t.Errorf("413 is not a problem document: %q", rec.Header().Get("Content-Type"))
			}
		})
	}
}
