package admin

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/sluicemesh/sluice/proxy/internal/identity"
)

// certsView is the JSON of /certs.
type certsView struct {
	// SPIFFEID is the workload's identity; empty without one.
	SPIFFEID string `json:"spiffe_id"`
	// Issued reports that a certificate is held; the fields up to Roots describe it.
	Issued    bool       `json:"issued"`
	Serial    string     `json:"serial,omitempty"`
	NotBefore *time.Time `json:"not_before,omitempty"`
	NotAfter  *time.Time `json:"not_after,omitempty"`
	// ExpiresInSeconds is the time left, 0 once expired.
	ExpiresInSeconds int64  `json:"expires_in_seconds"`
	Issuer           string `json:"issuer,omitempty"`
	Roots            int    `json:"roots"`
	Rotations        uint64 `json:"rotations"`
	LastError        string `json:"last_error,omitempty"`
	// Reason says why there is no identity at all.
	Reason string `json:"reason,omitempty"`
}

// handleCerts answers the workload's identity and its certificate's serial, validity and
// issuer, the size of the trust bundle and how many times the certificate was rotated.
func handleCerts(status func() identity.Status) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v certsView
		if status == nil {
			v.Reason = "no workload identity: the proxy runs without --token-file, against a plaintext control plane"
		} else {
			s := status()
			v = certsView{SPIFFEID: s.SPIFFEID, Issued: s.Issued, Serial: s.Serial, Issuer: s.Issuer,
				Roots: s.Roots, Rotations: s.Rotations, LastError: s.LastError}
			if s.Issued {
				nb, na := s.NotBefore.UTC(), s.NotAfter.UTC()
				v.NotBefore, v.NotAfter = &nb, &na
				v.ExpiresInSeconds = max(int64(time.Until(na).Seconds()), 0)
			}
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(v)
	})
}
