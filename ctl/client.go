package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"syscall"
	"time"
)

// maxResponseBytes bounds every answer read from the server: a listing of a large mesh is a
// few MiB, and a misdirected --server must not fill the memory.
const maxResponseBytes = 32 << 20

// client speaks to sluice-server's REST API.
type client struct {
	// base is the server's URL without a trailing slash: "http://127.0.0.1:8080".
	base string
	// token is sent as "Authorization: Bearer"; empty sends none.
	token string
	// tokenSource says where the token came from, for the hint on a 401: "--token",
	// "SLUICE_TOKEN", the config file's path, or "" for no token.
	tokenSource string
	// noToken explains, on a 401, why no token was sent; empty for the usual reason (no one
	// signed in).
	noToken string
	// csrf is a signed-in session's CSRF token, sent on writes (login only).
	csrf string
	hc   *http.Client
	// timeout is hc's, for messages.
	timeout time.Duration
}

// request is one call to the API.
type request struct {
	method string
	// path starts with "/api/v1/"; its variable parts are already escaped.
	path        string
	query       url.Values
	body        []byte
	contentType string
	// signingIn marks the login call, whose 401 means a wrong password, not a lost token.
	signingIn bool
}

// fieldError is one entry of a problem's "errors".
type fieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

// apiError is an error answer from the server: an RFC 9457 problem, or whatever else the
// server sent. Its message is the server's detail, what sluicectl adds to it, and each field
// error on a line of its own.
type apiError struct {
	Status  int
	Message string
	Fields  []fieldError
}

func (e *apiError) Error() string {
	var sb strings.Builder
	sb.WriteString(e.Message)
	for _, f := range e.Fields {
		sb.WriteString("\n  ")
		if f.Path != "" {
			sb.WriteString(f.Path)
			sb.WriteString(": ")
		}
		sb.WriteString(oneLine(f.Message))
	}
	return sb.String()
}

// do sends req and returns the answer's body for a 2xx status, or an error that says what
// went wrong and what to do.
func (cl *client) do(ctx context.Context, req request) ([]byte, error) {
	u := cl.base + req.path
	if len(req.query) > 0 {
		u += "?" + req.query.Encode()
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u, body)
	if err != nil {
		return nil, fmt.Errorf("build the request to %s: %w", cl.base, err)
	}
	hr.Header.Set("Accept", "application/json, application/problem+json")
	hr.Header.Set("User-Agent", "sluicectl")
	if req.contentType != "" {
		hr.Header.Set("Content-Type", req.contentType)
	}
	if cl.token != "" {
		hr.Header.Set("Authorization", "Bearer "+cl.token)
	}
	if cl.csrf != "" && req.method != http.MethodGet {
		hr.Header.Set("X-CSRF-Token", cl.csrf)
	}
	resp, err := cl.hc.Do(hr)
	if err != nil {
		return nil, cl.transportError(ctx, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes+1))
	if err != nil {
		return nil, cl.transportError(ctx, err)
	}
	if len(b) > maxResponseBytes {
		return nil, fmt.Errorf("the answer from %s is over %d MiB, more than sluicectl reads: ask for less (a namespace, a label selector, a --limit)", cl.base, maxResponseBytes>>20)
	}
	if resp.StatusCode/100 == 2 {
		return b, nil
	}
	return nil, cl.statusError(resp, b, req)
}

// transportError explains a request that got no answer.
func (cl *client) transportError(ctx context.Context, err error) error {
	var (
		ne  net.Error
		dns *net.DNSError
	)
	switch {
	case errors.Is(ctx.Err(), context.Canceled):
		return errors.New("interrupted")
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("cannot reach sluice-server at %s: connection refused; is it running? set --server or SLUICE_SERVER", cl.base)
	case errors.As(err, &dns):
		return fmt.Errorf("cannot reach sluice-server at %s: no such host %q; check --server or SLUICE_SERVER", cl.base, dns.Name)
	case errors.As(err, &ne) && ne.Timeout(), errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("sluice-server at %s did not answer within %s: check that it is healthy, or raise --timeout", cl.base, cl.timeout)
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err // its text repeats the method and URL
	}
	return fmt.Errorf("cannot reach sluice-server at %s: %v; is it running? set --server or SLUICE_SERVER", cl.base, err)
}

// statusError turns an error answer into an *apiError.
func (cl *client) statusError(resp *http.Response, body []byte, req request) error {
	e := &apiError{Status: resp.StatusCode}
	detail := ""
	if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); strings.HasSuffix(mt, "json") {
		var p struct {
			Detail string       `json:"detail"`
			Title  string       `json:"title"`
			Errors []fieldError `json:"errors"`
		}
		if json.Unmarshal(body, &p) == nil {
			detail = oneLine(p.Detail)
			if detail == "" {
				detail = oneLine(p.Title)
			}
			e.Fields = p.Errors
		}
	}
	if detail == "" {
		// Not a problem document: a proxy's error page, or not sluice-server at all.
		detail = fmt.Sprintf("%s answered %s", cl.base, resp.Status)
		if s := oneLine(string(body)); s != "" {
			detail += ": " + truncate(s, 200)
		}
	}
	switch {
	case resp.StatusCode == http.StatusUnauthorized && req.signingIn:
		e.Message = "sign-in failed: " + detail
	case resp.StatusCode == http.StatusUnauthorized && cl.token == "":
		e.Message = fmt.Sprintf("not signed in to %s: run sluicectl login, or set SLUICE_TOKEN", cl.base)
		if cl.noToken != "" {
			e.Message += " (" + cl.noToken + ")"
		}
	case resp.StatusCode == http.StatusUnauthorized:
		hint := "run sluicectl login"
		switch cl.tokenSource {
		case "--token":
			hint = "pass a valid --token, or run sluicectl login"
		case "SLUICE_TOKEN":
			hint = "set SLUICE_TOKEN to a valid token, or unset it and run sluicectl login"
		}
		e.Message = fmt.Sprintf("not signed in or token expired: %s (server: %s)", hint, detail)
	default:
		e.Message = detail
	}
	return e
}

// getJSON GETs path and decodes the answer into v, returning the raw answer too.
func (cl *client) getJSON(ctx context.Context, path string, query url.Values, v any) ([]byte, error) {
	b, err := cl.do(ctx, request{method: http.MethodGet, path: path, query: query})
	if err != nil {
		return nil, err
	}
	if v != nil {
		if err := json.Unmarshal(b, v); err != nil {
			return nil, fmt.Errorf("the answer from %s%s is not the JSON sluicectl expects (%v): is %s a sluice-server of this version?", cl.base, path, err, cl.base)
		}
	}
	return b, nil
}

// sendJSON sends v as a JSON body and decodes the answer into out when out is not nil.
func (cl *client) sendJSON(ctx context.Context, method, path string, v, out any) ([]byte, error) {
	var body []byte
	if v != nil {
		var err error
		if body, err = json.Marshal(v); err != nil {
			return nil, fmt.Errorf("encode the request: %w", err)
		}
	}
	b, err := cl.do(ctx, request{method: method, path: path, body: body, contentType: "application/json"})
	if err != nil {
		return nil, err
	}
	if out != nil && len(b) > 0 {
		if err := json.Unmarshal(b, out); err != nil {
			return nil, fmt.Errorf("the answer from %s%s is not the JSON sluicectl expects (%v): is %s a sluice-server of this version?", cl.base, path, err, cl.base)
		}
	}
	return b, nil
}

// resourcePath is the REST path of a kind's collection in a namespace, or of one resource
// when name is set.
func resourcePath(k kindInfo, namespace, name string) string {
	p := "/api/v1/namespaces/" + url.PathEscape(namespace) + "/" + k.plural
	if name != "" {
		p += "/" + url.PathEscape(name)
	}
	return p
}

// normalizeServer checks a server URL and drops its trailing slash.
func normalizeServer(s string) (string, error) {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", &UsageError{fmt.Sprintf("server %q is not an http:// or https:// URL: set --server or SLUICE_SERVER to one such as %s", s, defaultServer)}
	}
	return strings.TrimRight(u.String(), "/"), nil
}
