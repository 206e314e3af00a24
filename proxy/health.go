package proxy

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/proxy/internal/health"
	"github.com/sluicemesh/sluice/proxy/internal/xdsclient"
)

// healthOptions configures the probe of the application behind a sidecar.
type healthOptions struct {
	// port is the application port probed; 0 means no probing (a gateway, a sidecar with
	// no inbound ports, or --health-interval 0).
	port uint32
	// path is the readiness path of an HTTP GET; empty means a TCP connect.
	path     string
	interval time.Duration
}

// parseHealthOptions reads --health-path, --health-port and --health-interval. The probed
// port defaults to the first inbound mapping's application port.
func parseHealthOptions(o *options, path, port, interval string) (healthOptions, error) {
	var h healthOptions
	d, err := time.ParseDuration(interval)
	if err != nil || d < 0 {
		return h, fmt.Errorf("--health-interval %q is not a duration (such as 500ms, or 0 to stop probing)", interval)
	}
	if path != "" && !strings.HasPrefix(path, "/") {
		return h, fmt.Errorf("--health-path %q must start with / (such as /healthz), or be empty for a TCP connect", path)
	}
	if o.mode != meta.ModeSidecar || d == 0 {
		return h, nil
	}
	h.path, h.interval = path, d
	if port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return h, fmt.Errorf("--health-port %q is not a port number (use the application's port, such as 19080)", port)
		}
		h.port = uint32(n)
		return h, nil
	}
	if len(o.inbound) > 0 {
		h.port = o.inbound[0].AppPort
	}
	return h, nil
}

// newHealth builds the prober of the application, which tells the control plane each change
// through the xDS client's node metadata.
func newHealth(p *proxy, h healthOptions, xc *xdsclient.Client) (*health.Prober, error) {
	addr := net.JoinHostPort(p.o.address.String(), strconv.FormatUint(uint64(h.port), 10))
	return health.New(health.Config{Address: addr, Path: h.path, Interval: h.interval}, func(s health.Status) {
		v := meta.AppReady
		if !s.Ready {
			v = meta.AppNotReady + s.Reason
			p.log.Warn("application not ready", "probe", addr+h.path, "reason", s.Reason)
		} else {
			p.log.Info("application ready", "probe", addr+h.path)
		}
		// Without a stream the next one carries the value from its first request.
		if err := xc.SetAppHealth(v); err != nil && !errors.Is(err, xdsclient.ErrNotConnected) {
			p.log.Debug("report application health", "error", err)
		}
	})
}
