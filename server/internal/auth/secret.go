package auth

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// TokenPrefix starts every API token, so that secret scanners and people recognise one.
const TokenPrefix = "slc_"

// secretBytes is the entropy of a session cookie, CSRF token and API token.
const secretBytes = 32

// secretLen is the length of secretBytes in unpadded base64url.
var secretLen = base64.RawURLEncoding.EncodedLen(secretBytes)

// newSecret returns 32 random bytes in unpadded base64url.
func newSecret() string {
	b := make([]byte, secretBytes)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (it crashes the program instead)
	return base64.RawURLEncoding.EncodeToString(b)
}

// newID returns a public identifier: 8 random bytes in hex. It names a session or token in
// lists, logs and the audit log, and proves nothing.
func newID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// hashSecret is what the store keeps of a session cookie or API token.
func hashSecret(secret string) []byte {
	sum := sha256.Sum256([]byte(secret))
	return sum[:]
}

// wellFormedSecret reports whether s looks like newSecret's output, so that garbage is turned
// away before it reaches the database.
func wellFormedSecret(s string) bool {
	if len(s) != secretLen {
		return false
	}
	_, err := base64.RawURLEncoding.Strict().DecodeString(s)
	return err == nil
}

// wellFormedToken reports whether s is TokenPrefix followed by a secret.
func wellFormedToken(s string) bool {
	rest, ok := strings.CutPrefix(s, TokenPrefix)
	return ok && wellFormedSecret(rest)
}
