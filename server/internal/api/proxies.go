package api

import (
	"net/http"
	"time"

	"github.com/sluicemesh/sluice/server/internal/xds"
)

// ProxyLister lists the mesh's proxies with their sync state.
type ProxyLister interface {
	Proxies() []xds.ProxyInfo
	// Revision is the configuration revision being served.
	Revision() int64
	// Problems lists the configuration the last push could not translate as written.
	Problems() []xds.Problem
}

// proxyView is one proxy in GET /api/v1/proxies.
type proxyView struct {
	NodeID         string            `json:"nodeId"`
	Namespace      string            `json:"namespace"`
	Service        string            `json:"service"`
	Workload       string            `json:"workload"`
	Mode           string            `json:"mode"`
	Address        string            `json:"address"`
	Labels         map[string]string `json:"labels"`
	ServiceAccount string            `json:"serviceAccount"`
	Connected      bool              `json:"connected"`
	Draining       bool              `json:"draining"`
	ConnectedAt    time.Time         `json:"connectedAt"`
	DisconnectedAt *time.Time        `json:"disconnectedAt,omitempty"`
	Acked          map[string]string `json:"acked"`
	Sent           map[string]string `json:"sent"`
	Nacks          map[string]string `json:"nacks"`
	LastSync       *time.Time        `json:"lastSync,omitempty"`
	// SyncedRevision is the newest configuration revision the proxy has applied in full;
	// the proxy is in sync when it equals the answer's revision.
	SyncedRevision int64      `json:"syncedRevision"`
	SyncedAt       *time.Time `json:"syncedAt,omitempty"`
	InSync         bool       `json:"inSync"`
	// Health is the application's readiness as the proxy's probe sees it.
	Health healthView `json:"health"`
}

// healthView is a proxy's application health in the API.
type healthView struct {
	Ready  bool       `json:"ready"`
	Reason string     `json:"reason,omitempty"`
	Since  *time.Time `json:"since,omitempty"`
}

// handleListProxies answers GET /api/v1/proxies: every registered proxy, the versions it has
// acknowledged per xDS type, and any NACK with its message.
func handleListProxies(pl ProxyLister) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rev := pl.Revision()
		ps := pl.Proxies()
		out := make([]proxyView, 0, len(ps))
		for _, p := range ps {
			out = append(out, viewOfProxy(p, rev))
		}
		problems := []map[string]string{}
		for _, p := range pl.Problems() {
			problems = append(problems, map[string]string{"resource": p.Resource, "message": p.Message})
		}
		writeJSON(w, http.StatusOK, map[string]any{"revision": rev, "proxies": out, "problems": problems})
	}
}

// viewOfProxy is p as GET /api/v1/proxies and the live config topic show it, while the
// server serves revision rev.
func viewOfProxy(p xds.ProxyInfo, rev int64) proxyView {
	v := proxyView{
		NodeID: p.NodeID, Namespace: p.Namespace, Service: p.Service, Workload: p.Name,
		Mode: p.Mode, Address: p.Address.String(), Labels: p.Labels,
		ServiceAccount: p.ServiceAccount, Connected: p.Connected, Draining: p.Draining,
		ConnectedAt: p.ConnectedAt, Acked: p.Acked, Sent: p.Sent, Nacks: p.Nack,
	}
	if !p.DisconnectedAt.IsZero() {
		v.DisconnectedAt = &p.DisconnectedAt
	}
	if !p.LastSync.IsZero() {
		v.LastSync = &p.LastSync
	}
	v.Health = healthView{Ready: !p.Health.NotReady, Reason: p.Health.Reason}
	if !p.Health.Since.IsZero() {
		v.Health.Since = &p.Health.Since
	}
	v.SyncedRevision = p.SyncedRevision
	v.InSync = p.Connected && p.SyncedRevision >= rev
	if !p.SyncedAt.IsZero() {
		v.SyncedAt = &p.SyncedAt
	}
	return v
}
