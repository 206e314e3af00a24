package bookinfo

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestRatings(t *testing.T) {
	h := NewRatings(testLogger(t))
	tests := []struct {
		name       string
		path       string
		wantStatus int
		wantJSON   string
	}{
		{
			name: "product 0", path: "/ratings/0", wantStatus: http.StatusOK,
			wantJSON: `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`,
		},
		{
			name: "other product", path: "/ratings/7", wantStatus: http.StatusOK,
			wantJSON: `{"id":7,"ratings":{"Reviewer1":5,"Reviewer2":4}}`,
		},
		{
			// Istio's ratings says "ID" where details says "id".
			name: "non-numeric id", path: "/ratings/abc", wantStatus: http.StatusBadRequest,
			wantJSON: `{"error":"please provide numeric product ID"}`,
		},
		{
			name: "health", path: "/health", wantStatus: http.StatusOK,
			wantJSON: `{"status":"Ratings is healthy"}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, header, body := do(t, h, httptest.NewRequest(http.MethodGet, tt.path, nil))
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

func TestRatingsExactBytes(t *testing.T) {
	_, _, body := do(t, NewRatings(nil), httptest.NewRequest(http.MethodGet, "/ratings/0", nil))
	if want := `{"id":0,"ratings":{"Reviewer1":5,"Reviewer2":4}}`; string(body) != want {
		t.Errorf("body = %s, want %s", body, want)
	}
}
