package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/xds"
)

// maxConfigDump bounds the config dump relayed from a proxy. A sidecar of a 1,000-service
// mesh dumps about 5 MB; the bound leaves room for that many more and stops a misbehaving
// address from making the server buffer without end.
const maxConfigDump = 64 << 20

// configDumpTimeout bounds the whole fetch from a proxy's admin port.
const configDumpTimeout = 10 * time.Second

// handleProxyConfigDump answers GET /api/v1/proxies/{node}/config_dump: the configuration in
// effect on one proxy, read from its admin port (<address>:15000/config_dump) and passed on
// unchanged, so that it shows what the proxy applied rather than what the server sent.
//
// The address is the one the proxy registered; the port and path are fixed, so the relay
// cannot be pointed anywhere but at a proxy's admin endpoint.
func handleProxyConfigDump(pl ProxyLister, log *slog.Logger) http.HandlerFunc {
	client := &http.Client{
		Timeout: configDumpTimeout,
		// A proxy's admin endpoint answers directly; a redirect is not one of ours.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Transport:     &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 3 * time.Second}).DialContext},
	}
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		node := chi.URLParam(r, "node")
		p, ok := findProxy(pl.Proxies(), node)
		if !ok {
			return &Error{Status: http.StatusNotFound,
				Message: fmt.Sprintf("no proxy %q is registered: GET /api/v1/proxies lists them by nodeId", node)}
		}
		if err := dumpable(p); err != nil {
			return err
		}
		admin := net.JoinHostPort(p.Address.String(), strconv.Itoa(meta.AdminPort))
		body, err := fetchConfigDump(r.Context(), client, admin)
		if err != nil {
			return &Error{Status: http.StatusBadGateway,
				Message: fmt.Sprintf("could not read the config dump of proxy %s from its admin port %s: %v (is sluice-proxy running there?)", node, admin, err)}
		}
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		_, _ = w.Write(body) // the client went away; nothing to tell it
		return nil
	})
}

func findProxy(ps []xds.ProxyInfo, node string) (xds.ProxyInfo, bool) {
	for _, p := range ps {
		if p.NodeID == node {
			return p, true
		}
	}
	return xds.ProxyInfo{}, false
}

// dumpable says why a registered proxy has no config dump to read, or nil.
func dumpable(p xds.ProxyInfo) error {
	switch {
	case p.Mode == meta.ModeProxyless:
		return &Error{Status: http.StatusConflict,
			Message: fmt.Sprintf("proxy %s is a proxyless gRPC client: it has no admin port to read a config dump from (its xDS state is in GET /api/v1/proxies)", p.NodeID)}
	case !p.Connected:
		return &Error{Status: http.StatusConflict,
			Message: fmt.Sprintf("proxy %s is not connected to the control plane, so its config dump cannot be read through it; if it still runs, read http://%s/config_dump on its host", p.NodeID, net.JoinHostPort(p.Address.String(), strconv.Itoa(meta.AdminPort)))}
	case !p.Address.IsValid():
		return &Error{Status: http.StatusConflict, Message: fmt.Sprintf("proxy %s registered no address", p.NodeID)}
	}
	return nil
}

func fetchConfigDump(ctx context.Context, client *http.Client, admin string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+admin+"/config_dump", nil)
	if err != nil {
		return nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		var ue interface{ Unwrap() error }
		if errors.As(err, &ue) && ue.Unwrap() != nil {
			err = ue.Unwrap()
		}
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("it answered %s", resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxConfigDump+1))
	if err != nil {
		return nil, err
	}
	if len(body) > maxConfigDump {
		return nil, fmt.Errorf("the dump is larger than %d MB", maxConfigDump>>20)
	}
	return body, nil
}
