package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/proxy/internal/identity"
)

func TestCerts(t *testing.T) {
	nb := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		status func() identity.Status
		check  func(v certsView) bool
	}{
		{name: "no identity", check: func(v certsView) bool {
			return v.SPIFFEID == "" && !v.Issued && v.Reason != ""
		}},
		{name: "before the first certificate",
			status: func() identity.Status {
				return identity.Status{SPIFFEID: "spiffe://cluster.local/ns/default/sa/reviews", Roots: 1, LastError: "refused"}
			},
			check: func(v certsView) bool {
				return v.SPIFFEID == "spiffe://cluster.local/ns/default/sa/reviews" && !v.Issued && v.NotAfter == nil &&
					v.Roots == 1 && v.LastError == "refused" && v.ExpiresInSeconds == 0
			}},
		{name: "issued and expired",
			status: func() identity.Status {
				return identity.Status{SPIFFEID: "spiffe://cluster.local/ns/default/sa/reviews", Issued: true, Serial: "1f",
					NotBefore: nb, NotAfter: nb.Add(time.Hour), Issuer: "CN=root", Roots: 2, Rotations: 3}
			},
			check: func(v certsView) bool {
				return v.Issued && v.Serial == "1f" && v.NotBefore.Equal(nb) && v.NotAfter.Equal(nb.Add(time.Hour)) &&
					v.Issuer == "CN=root" && v.Roots == 2 && v.Rotations == 3 && v.ExpiresInSeconds == 0
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			handleCerts(tt.status).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/certs", nil))
			var v certsView
			if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || rec.Code != http.StatusOK ||
				rec.Header().Get("Content-Type") != "application/json" {
				t.Fatalf("%d %q: %v", rec.Code, rec.Body, err)
			}
			if !tt.check(v) {
				t.Errorf("/certs answered %s", rec.Body)
			}
		})
	}
}
