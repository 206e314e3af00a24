package api

import (
	"net/http"
	"strconv"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/ca"
	"github.com/sluicemesh/sluice/server/internal/ca/cagrpc"
	"github.com/sluicemesh/sluice/server/internal/registry"
	"github.com/sluicemesh/sluice/server/internal/xds"
)

// MTLSModer tells the PeerAuthentication mode in effect on each inbound port of a workload;
// *xds.Server implements it.
type MTLSModer interface {
	MTLSModes(w registry.Workload) map[uint32]string
}

var _ MTLSModer = (*xds.Server)(nil)

// IssuedCertificates remembers the last certificate issued to each SPIFFE ID;
// *cagrpc.CertificateService implements it.
type IssuedCertificates interface {
	LastIssued(identity string) (cagrpc.IssuedCertificate, bool)
}

var _ IssuedCertificates = (*cagrpc.CertificateService)(nil)

// ProxySecurity is what the proxy views show of identity and mutual TLS. The zero value shows
// none of it; each nil or zero field leaves its part out.
type ProxySecurity struct {
	// TrustDomain makes each proxy's SPIFFE identity.
	TrustDomain spiffeid.TrustDomain
	// MTLS gives the mTLS mode per inbound port of a sidecar.
	MTLS MTLSModer
	// Certificates gives the certificate last issued to a proxy's identity.
	Certificates IssuedCertificates
}

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
	// Identity is the proxy's SPIFFE ID, spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>.
	Identity string `json:"identity,omitempty"`
	// MTLS is the PeerAuthentication mode in effect per inbound port (the port number as a
	// string); absent for gateways, proxyless clients and when mutual TLS is not enforced.
	MTLS map[string]string `json:"mtls,omitempty"`
	// Certificate is the certificate last issued to Identity; proxies sharing an identity
	// show the same, latest one.
	Certificate *certificateView `json:"certificate,omitempty"`
}

// certificateView is a workload certificate in the API.
type certificateView struct {
	Serial   string    `json:"serial"`
	NotAfter time.Time `json:"notAfter"`
}

// healthView is a proxy's application health in the API.
type healthView struct {
	Ready  bool       `json:"ready"`
	Reason string     `json:"reason,omitempty"`
	Since  *time.Time `json:"since,omitempty"`
}

// handleListProxies answers GET /api/v1/proxies: every registered proxy, the versions it has
// acknowledged per xDS type, and any NACK with its message.
func handleListProxies(pl ProxyLister, sec ProxySecurity) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		rev := pl.Revision()
		ps := pl.Proxies()
		out := make([]proxyView, 0, len(ps))
		for _, p := range ps {
			out = append(out, viewOfProxy(p, rev, sec))
		}
		problems := []map[string]string{}
		for _, p := range pl.Problems() {
			problems = append(problems, map[string]string{"resource": p.Resource, "message": p.Message})
		}
		writeJSON(w, http.StatusOK, map[string]any{"revision": rev, "proxies": out, "problems": problems})
	}
}

// viewOfProxy is p as GET /api/v1/proxies and the live config topic show it, while the
// server serves revision rev, with what sec tells of its identity and mutual TLS.
func viewOfProxy(p xds.ProxyInfo, rev int64, sec ProxySecurity) proxyView {
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
	addSecurity(&v, p.Workload, sec)
	return v
}

// addSecurity fills v's identity, mTLS modes and certificate from sec.
func addSecurity(v *proxyView, w registry.Workload, sec ProxySecurity) {
	if sec.TrustDomain.IsZero() || w.Namespace == "" || w.ServiceAccount == "" {
		return
	}
	id, err := ca.WorkloadID(sec.TrustDomain, w.Namespace, w.ServiceAccount)
	if err != nil {
		// The registry admits only names the xDS server validated, and those make valid IDs;
		// a name that does not is shown without an identity rather than failing the list.
		return
	}
	v.Identity = id.String()
	if sec.MTLS != nil && w.Mode == meta.ModeSidecar {
		if modes := sec.MTLS.MTLSModes(w); len(modes) > 0 {
			v.MTLS = make(map[string]string, len(modes))
			for port, mode := range modes {
				v.MTLS[strconv.FormatUint(uint64(port), 10)] = mode
			}
		}
	}
	if sec.Certificates != nil {
		if c, ok := sec.Certificates.LastIssued(v.Identity); ok {
			v.Certificate = &certificateView{Serial: c.Serial, NotAfter: c.NotAfter}
		}
	}
}
