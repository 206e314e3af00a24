package bookinfo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxPeerBody bounds what a service reads from a peer's answer. Bookinfo's
// payloads are well under a kilobyte; a larger one is a fault, not data.
const maxPeerBody = 1 << 20

// NewClient returns the HTTP client the services use to call their peers.
//
// It honours HTTP_PROXY and NO_PROXY: in the mesh every app runs with
// HTTP_PROXY pointing at its sidecar's outbound listener, and calls its peers
// by service name ("http://details:9080"), which is not loopback, so Go sends
// the call through the proxy. Connections are pooled and kept alive, with
// enough idle connections per host for the load tests' concurrency.
// Redirects are not followed: a peer's status is passed through as it is.
func NewClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			Proxy: http.ProxyFromEnvironment,
			DialContext: (&net.Dialer{
				Timeout:   5 * time.Second,
				KeepAlive: 30 * time.Second,
			}).DialContext,
			MaxIdleConns:          512,
			MaxIdleConnsPerHost:   128,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// peer is one Bookinfo service as its callers see it.
type peer struct {
	client *http.Client
	// baseURL is scheme, host and port, e.g. "http://details:9080".
	baseURL string
	// resource is the first path segment of the service's API, e.g. "details".
	resource string
	// timeout bounds one try, from dialling to reading the whole body.
	timeout time.Duration
}

// errPeerStatus reports a peer answer other than 200.
var errPeerStatus = errors.New("unexpected status")

// get fetches /{resource}/{id} from the peer with the given headers. It
// returns the peer's status (0 when there was no answer) and, for a 200, the
// body. Any status but 200 is an error, as in Istio's services.
func (p peer) get(ctx context.Context, id string, h http.Header) (int, []byte, error) {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()

	target := strings.TrimSuffix(p.baseURL, "/") + "/" + p.resource + "/" + url.PathEscape(id)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return 0, nil, fmt.Errorf("build request to %s: %w", p.resource, err)
	}
	req.Header = h.Clone()
	req.Header.Set("Accept", "application/json")

	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, fmt.Errorf("call %s: %w", p.resource, err)
	}
	defer resp.Body.Close()

	if resp.StatusCode != http.StatusOK {
		// Drain a little so that the connection can go back to the pool.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		return resp.StatusCode, nil, fmt.Errorf("call %s: %w %d", p.resource, errPeerStatus, resp.StatusCode)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxPeerBody+1))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read %s answer: %w", p.resource, err)
	}
	if len(body) > maxPeerBody {
		return resp.StatusCode, nil, fmt.Errorf("read %s answer: larger than %d bytes", p.resource, maxPeerBody)
	}
	return resp.StatusCode, body, nil
}
