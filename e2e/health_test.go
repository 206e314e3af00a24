package e2e

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/internal/pgtest"
)

// A sidecar probes its application; when the application stops answering, the control plane
// marks its endpoint UNHEALTHY on every other proxy, which stop sending it traffic, and puts
// it back when the application returns.
func TestHealthProbesMoveEndpoints(t *testing.T) {
	cp := startServer(t, pgtest.New(t, pgtest.Template{}))
	caller := startWorkload(t, cp, "caller", "v1")
	a := startWorkload(t, cp, "backend", "v1")
	b := startWorkload(t, cp, "backend", "v1")
	instA, instB := instanceName(a, "backend", "v1"), instanceName(b, "backend", "v1")
	url := "http://backend:8080/"
	waitServes(t, caller, url, instA)
	waitServes(t, caller, url, instB)

	healthOf := func(addr string) (ready bool, reason string, err error) {
		for _, p := range cp.proxies(t).Proxies {
			if p.Address == addr {
				return p.Health.Ready, p.Health.Reason, nil
			}
		}
		return false, "", errors.New("no proxy at " + addr)
	}
	endpointHealth := func(addr string) (string, error) {
		for _, e := range cp.endpointsOf(t, caller.addr) {
			if e.address == addr && strings.HasSuffix(e.cluster, "|backend.default.svc.cluster.local") {
				return e.health, nil
			}
		}
		return "", fmt.Errorf("%s is not in the caller's backend endpoints", addr)
	}

	// b's application goes away; its sidecar keeps running.
	b.app.stop(syscall.SIGTERM, 10*time.Second)
	eventually(t, 20*time.Second, "b reported not ready", func() error {
		ready, reason, err := healthOf(b.addr)
		if err != nil {
			return err
		}
		if ready || !strings.Contains(reason, "refused") {
			return fmt.Errorf("ready %v, reason %q", ready, reason)
		}
		return nil
	})
	eventually(t, 20*time.Second, "b UNHEALTHY in the caller's endpoints", func() error {
		h, err := endpointHealth(b.addr)
		if err == nil && h != "UNHEALTHY" {
			err = errors.New("b is " + h)
		}
		return err
	})
	// Every request now goes to a, and none fails.
	if seen := collect(t, caller, url, 30); seen[instA] != 30 {
		t.Errorf("with b's application down, 30 calls reached %v, want all on %s", seen, instA)
	}

	// The application comes back on the same address.
	instance := instB
	b.app = start(t, instance, "echo", []string{"--service", "backend", "--instance", instance,
		"--http-addr", b.addr + ":18080", "--grpc-addr", b.addr + ":19090"})
	eventually(t, 20*time.Second, "b ready again", func() error {
		if ready, reason, err := healthOf(b.addr); err != nil || !ready {
			return fmt.Errorf("ready %v (%q) %v", ready, reason, err)
		}
		return nil
	})
	waitServes(t, caller, url, instB)
}

// dumpedEndpoint is one endpoint in a proxy's config dump.
type dumpedEndpoint struct{ cluster, address, health string }

// endpointsOf reads the endpoints in effect on the proxy at addr, through the server's relay
// of its /config_dump.
func (cp *controlPlane) endpointsOf(t testing.TB, addr string) []dumpedEndpoint {
	t.Helper()
	node := ""
	for _, p := range cp.proxies(t).Proxies {
		if p.Address == addr {
			node = p.NodeID
		}
	}
	var dump struct {
		Configs []struct {
			Type      string `json:"@type"`
			Endpoints []struct {
				Config struct {
					Cluster   string `json:"cluster_name"`
					Endpoints []struct {
						LbEndpoints []struct {
							Endpoint struct {
								Address struct {
									Socket struct {
										Address string `json:"address"`
									} `json:"socket_address"`
								} `json:"address"`
							} `json:"endpoint"`
							Health string `json:"health_status"`
						} `json:"lb_endpoints"`
					} `json:"endpoints"`
				} `json:"endpoint_config"`
			} `json:"dynamic_endpoint_configs"`
		} `json:"configs"`
	}
	if code, err := getJSONWith(cp.api, "http://"+cp.httpAddr+"/api/v1/proxies/"+url.PathEscape(node)+"/config_dump", &dump); err != nil || code != http.StatusOK {
		t.Fatalf("config dump of %s (%s): %d %v", addr, node, code, err)
	}
	var out []dumpedEndpoint
	for _, c := range dump.Configs {
		for _, ec := range c.Endpoints {
			for _, loc := range ec.Config.Endpoints {
				for _, e := range loc.LbEndpoints {
					out = append(out, dumpedEndpoint{ec.Config.Cluster, e.Endpoint.Address.Socket.Address, e.Health})
				}
			}
		}
	}
	return out
}
