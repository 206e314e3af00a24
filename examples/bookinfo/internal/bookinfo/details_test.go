package bookinfo

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestDetails(t *testing.T) {
	h := NewDetails(testLogger(t))
	tests := []struct {
		name       string
		method     string
		path       string
		wantStatus int
		wantJSON   string
	}{
		{
			name: "product 0", method: http.MethodGet, path: "/details/0", wantStatus: http.StatusOK,
			wantJSON: `{"id":0,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,` +
				`"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}`,
		},
		{
			name: "any numeric id describes the same book", method: http.MethodGet, path: "/details/42", wantStatus: http.StatusOK,
			wantJSON: `{"id":42,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,` +
				`"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}`,
		},
		{
			name: "non-numeric id", method: http.MethodGet, path: "/details/abc", wantStatus: http.StatusBadRequest,
			wantJSON: `{"error":"please provide numeric product id"}`,
		},
		{
			name: "fractional id", method: http.MethodGet, path: "/details/1.5", wantStatus: http.StatusBadRequest,
			wantJSON: `{"error":"please provide numeric product id"}`,
		},
		{
			name: "id too large for an int", method: http.MethodGet, path: "/details/99999999999999999999999", wantStatus: http.StatusBadRequest,
			wantJSON: `{"error":"please provide numeric product id"}`,
		},
		{
			name: "health", method: http.MethodGet, path: "/health", wantStatus: http.StatusOK,
			wantJSON: `{"status":"Details is healthy"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, header, body := do(t, h, httptest.NewRequest(tt.method, tt.path, nil))
			if status != tt.wantStatus {
				t.Errorf("status = %d, want %d", status, tt.wantStatus)
			}
			if ct := header.Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q, want application/json", ct)
			}
			assertJSON(t, body, tt.wantJSON)
		})
	}
}

func TestDetailsExactBytes(t *testing.T) {
	// Istio's details writes compact JSON in this field order; a test that
	// greps the raw body must find the same text.
	_, _, body := do(t, NewDetails(nil), httptest.NewRequest(http.MethodGet, "/details/0", nil))
	want := `{"id":0,"author":"William Shakespeare","year":1595,"type":"paperback","pages":200,` +
		`"publisher":"PublisherA","language":"English","ISBN-10":"1234567890","ISBN-13":"123-1234567890"}`
	if string(body) != want {
		t.Errorf("body = %s\nwant   %s", body, want)
	}
}

func TestDetailsRejectsOtherMethodsAndPaths(t *testing.T) {
	h := NewDetails(nil)
	tests := []struct {
		name, method, path string
		want               int
	}{
		{"POST", http.MethodPost, "/details/0", http.StatusMethodNotAllowed},
		{"no id", http.MethodGet, "/details/", http.StatusNotFound},
		{"unknown path", http.MethodGet, "/reviews/0", http.StatusNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if status, _, _ := do(t, h, httptest.NewRequest(tt.method, tt.path, nil)); status != tt.want {
				t.Errorf("status = %d, want %d", status, tt.want)
			}
		})
	}
}
