package api

import (
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/sluicemesh/sluice/server/internal/auth"
)

// Names the console and scripts rely on (see DESIGN.md, "Interfaces others rely on").
const (
	sessionCookieName = "sluice_session"
	csrfHeaderName    = "X-CSRF-Token"
)

// defaultBodyLimit bounds request bodies on /api/v1 unless a route allows more with its own
// limitBody.
const defaultBodyLimit = 1 << 20

type csrfKey struct{}

// authenticate establishes who sent the request and puts the auth.Principal in its context;
// mount it on every /api/v1 route except the public ones (login, openapi.json).
//
//   - "Authorization: Bearer slc_…" is checked as an API token. If an Authorization header is
//     present it alone counts, even when a session cookie is sent too.
//   - Otherwise the sluice_session cookie is checked as a session. A request with an unsafe
//     method (anything but GET, HEAD, OPTIONS, TRACE) must also carry the session's CSRF
//     token in X-CSRF-Token, or it is refused with 403: a cookie is sent by the browser on its
//     own, the header only by our console's script.
//
// Missing, malformed, unknown, expired or revoked credentials get 401 with
// "WWW-Authenticate: Bearer"; a dead session cookie is also cleared.
func authenticate(svc *auth.Service, log *slog.Logger) func(http.Handler) http.Handler {
	if svc == nil {
		panic("api: Deps.Auth is nil: every /api/v1 route needs the auth service")
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, csrf, usedCookie, err := credentials(r, svc)
			if err != nil {
				if usedCookie && auth.ErrorKind(err) == auth.KindUnauthenticated {
					clearSessionCookie(w, r)
				}
				writeAuthError(w, r, log, err)
				return
			}
			if p.Method == auth.MethodSession && !safeMethod(r.Method) {
				got := r.Header.Get(csrfHeaderName)
				switch {
				case got == "":
					writeError(w, r, log, &Error{Status: http.StatusForbidden, Message: "missing X-CSRF-Token header: a write signed in with the session cookie must send the csrfToken from POST /api/v1/login or GET /api/v1/whoami in X-CSRF-Token"})
					return
				case subtle.ConstantTimeCompare([]byte(got), []byte(csrf)) != 1:
					writeError(w, r, log, &Error{Status: http.StatusForbidden, Message: "X-CSRF-Token does not match this session: fetch the current csrfToken from GET /api/v1/whoami and send it in X-CSRF-Token"})
					return
				}
			}
			ctx := auth.WithPrincipal(r.Context(), p)
			if csrf != "" {
				ctx = context.WithValue(ctx, csrfKey{}, csrf)
			}
			next.ServeHTTP(w, r.WithContext(ctx))
		})
	}
}

// credentials checks the request's token or session cookie. csrf is the session's CSRF token,
// empty for a token.
func credentials(r *http.Request, svc *auth.Service) (p auth.Principal, csrf string, usedCookie bool, err error) {
	if h := r.Header.Get("Authorization"); h != "" {
		scheme, token, _ := strings.Cut(h, " ")
		if !strings.EqualFold(scheme, "Bearer") {
			return p, "", false, &auth.Error{Kind: auth.KindUnauthenticated, Message: `Authorization must be "Bearer <token>" with an API token from POST /api/v1/tokens`}
		}
		p, err = svc.AuthenticateToken(r.Context(), strings.TrimSpace(token))
		return p, "", false, err
	}
	c, err := r.Cookie(sessionCookieName)
	if err != nil {
		return p, "", false, &auth.Error{Kind: auth.KindUnauthenticated, Message: `not signed in: sign in with POST /api/v1/login, or send an API token as "Authorization: Bearer <token>"`}
	}
	p, sess, err := svc.AuthenticateSession(r.Context(), c.Value)
	return p, sess.CSRFToken, true, err
}

func safeMethod(m string) bool {
	switch m {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodTrace:
		return true
	}
	return false
}

// requireRole lets through requests whose principal has at least the role min, and answers
// 403 naming the role needed and the caller's role otherwise. Mount it after authenticate; a
// request without a principal is refused with 401, so a route that forgot authenticate fails
// closed.
func requireRole(min auth.Role) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, ok := auth.FromContext(r.Context())
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="sluice"`)
				writeProblem(w, http.StatusUnauthorized, "not signed in: sign in with POST /api/v1/login, or send an API token", nil, nil)
				return
			}
			if !p.Role.AtLeast(min) {
				writeProblem(w, http.StatusForbidden, fmt.Sprintf("this needs the %s role, and %s has the %s role: ask an admin for access", min, p.Username, p.Role), nil,
					map[string]any{"requiredRole": min, "role": p.Role})
				return
			}
			next.ServeHTTP(w, r)
		})
	}
}

// principal returns the request's principal; the zero Principal if authenticate did not run.
func principal(r *http.Request) auth.Principal {
	p, _ := auth.FromContext(r.Context())
	return p
}

// limitBody bounds request bodies to n bytes. A body whose Content-Length is larger is refused
// at once with 413; one that turns out larger while being read fails the read with
// *http.MaxBytesError, which readBody and decodeJSON answer with 413. An inner limitBody
// replaces an outer one, so one route can allow more than its group:
//
//	r.With(limitBody(4 << 20)).Post("/apply", ...)
func limitBody(n int64) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.ContentLength > n {
				writeProblem(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body of %d bytes is over this endpoint's limit of %d bytes: send less (split a large apply into several requests)", r.ContentLength, n), nil, nil)
				return
			}
			if r.Body != nil && r.Body != http.NoBody {
				orig := r.Body
				if b, ok := orig.(*boundedBody); ok {
					orig = b.orig
				}
				r.Body = &boundedBody{ReadCloser: http.MaxBytesReader(w, orig, n), orig: orig}
			}
			next.ServeHTTP(w, r)
		})
	}
}

// boundedBody is a body limited by limitBody, remembering the body it limits so that an
// inner limitBody can replace the limit rather than nest inside it.
type boundedBody struct {
	io.ReadCloser
	orig io.ReadCloser
}

// setSessionCookie gives the browser its session. HttpOnly keeps it from scripts,
// SameSite=Strict from other sites' requests; Secure is set when the request came over TLS
// (a proxy terminating TLS in front of the server is not trusted to say so).
func setSessionCookie(w http.ResponseWriter, r *http.Request, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: sessionCookieName, Value: value, Path: "/", MaxAge: maxAge,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
}

func clearSessionCookie(w http.ResponseWriter, r *http.Request) {
	setSessionCookie(w, r, "", -1)
}
