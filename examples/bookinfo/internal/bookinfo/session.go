package bookinfo

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"unicode"
	"unicode/utf8"
)

// sessionCookie names productpage's session cookie.
const sessionCookie = "session"

// maxUserName bounds a user name. It travels in the end-user header of every
// call, so it stays short.
const maxUserName = 128

// sessionMACContext separates this use of the key from any other.
const sessionMACContext = "sluice-bookinfo-session-v1\x00"

// sessions signs and checks productpage's session cookie, which holds the
// signed-in user's name. The signature stops a client from claiming to be
// another user (say "jason", whom routing rules single out) by editing the
// cookie; it does not stop replaying a stolen cookie.
type sessions struct {
	key []byte
}

// errBadUserName reports a user name that cannot travel in a header.
var errBadUserName = errors.New("user name must be 1 to 128 printable characters")

// validUserName reports whether name can be a user: printable, since it is
// sent as the end-user header, and short.
func validUserName(name string) error {
	if name == "" || len(name) > maxUserName || !utf8.ValidString(name) {
		return errBadUserName
	}
	for _, r := range name {
		if !unicode.IsPrint(r) {
			return errBadUserName
		}
	}
	return nil
}

// mac returns the signature of user.
func (s sessions) mac(user string) []byte {
	m := hmac.New(sha256.New, s.key)
	m.Write([]byte(sessionMACContext))
	m.Write([]byte(user))
	return m.Sum(nil)
}

// encode returns the cookie value for user: base64url(user) "." base64url(mac).
func (s sessions) encode(user string) string {
	enc := base64.RawURLEncoding
	return enc.EncodeToString([]byte(user)) + "." + enc.EncodeToString(s.mac(user))
}

// decode returns the user of a cookie value, or "" if the value is malformed
// or its signature does not match.
func (s sessions) decode(value string) string {
	userPart, macPart, ok := strings.Cut(value, ".")
	if !ok {
		return ""
	}
	enc := base64.RawURLEncoding
	user, err := enc.DecodeString(userPart)
	if err != nil {
		return ""
	}
	mac, err := enc.DecodeString(macPart)
	if err != nil || !hmac.Equal(mac, s.mac(string(user))) {
		return ""
	}
	if validUserName(string(user)) != nil {
		return ""
	}
	return string(user)
}

// user returns the signed-in user of r, or "" when nobody is signed in.
func (s sessions) user(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	return s.decode(c.Value)
}

// signIn sets the session cookie for user.
func (s sessions) signIn(w http.ResponseWriter, user string) {
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    s.encode(user),
		Path:     "/",
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}

// signOut clears the session cookie.
func (s sessions) signOut(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name:     sessionCookie,
		Value:    "",
		Path:     "/",
		MaxAge:   -1,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
}
