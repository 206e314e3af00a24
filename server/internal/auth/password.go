package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/argon2"
)

// Params are the costs of an argon2id password hash (RFC 9106). Each hash records the
// parameters it was made with, so changing them keeps old hashes valid; a user's hash is
// upgraded to the current parameters at their next successful sign-in.
type Params struct {
	// Memory is in KiB.
	Memory uint32
	// Time is the number of passes over the memory.
	Time uint32
	// Threads is the degree of parallelism.
	Threads uint8
	// SaltLen and KeyLen are in bytes.
	SaltLen uint32
	KeyLen  uint32
}

// DefaultParams cost 64 MiB and one pass on two lanes, about 50 ms on one core of a current
// server. That is above OWASP's argon2id minimum (46 MiB, t=1, p=1) and within RFC 9106's
// memory-constrained recommendation (64 MiB). The memory is what makes guessing on GPUs
// expensive; Service bounds how many hashes run at once, so a burst of sign-ins cannot exhaust
// the server's memory.
var DefaultParams = Params{Memory: 64 * 1024, Time: 1, Threads: 2, SaltLen: 16, KeyLen: 32}

// Bounds on the parameters a stored hash may claim, so a corrupted or tampered row cannot make
// one verification allocate gigabytes or loop for minutes.
const (
	maxMemory  = 1 << 20 // KiB, 1 GiB
	maxTime    = 64
	minSaltLen = 8
	maxSaltLen = 64
	minKeyLen  = 16
	maxKeyLen  = 64
)

// Password lengths accepted for new passwords. The upper bound keeps request handling cheap;
// argon2 itself does not care.
const (
	MinPasswordLength = 12
	MaxPasswordLength = 1024
)

// ErrMalformedHash means a stored password hash is not an argon2id PHC string within bounds.
var ErrMalformedHash = errors.New("password hash is not a valid argon2id PHC string")

// hashPrefix starts every hash this package writes: the algorithm and argon2 version 1.3.
const hashPrefix = "$argon2id$v=19$"

var b64 = base64.RawStdEncoding

// HashPassword hashes password with a new random salt and returns the PHC string
// "$argon2id$v=19$m=65536,t=1,p=2$<salt>$<key>" (salt and key in unpadded standard base64).
func HashPassword(password string, p Params) (string, error) {
	if err := p.check(); err != nil {
		return "", err
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("%sm=%d,t=%d,p=%d$%s$%s", hashPrefix, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(key)), nil
}

// VerifyPassword reports whether password matches the hash encoded. The comparison takes the
// same time wherever the keys differ. It fails with ErrMalformedHash, and no match, when
// encoded cannot be parsed or claims parameters out of bounds.
func VerifyPassword(password, encoded string) (bool, error) {
	p, salt, key, err := decodeHash(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return subtle.ConstantTimeCompare(got, key) == 1, nil
}

// NeedsRehash reports whether encoded was made with parameters other than p (or cannot be
// parsed), so that it should be replaced after the next successful verification.
func NeedsRehash(encoded string, p Params) bool {
	got, _, _, err := decodeHash(encoded)
	return err != nil || got != p
}

func (p Params) check() error {
	if p.Memory < 8*uint32(p.Threads) || p.Memory > maxMemory || p.Time < 1 || p.Time > maxTime ||
		p.Threads < 1 || p.SaltLen < minSaltLen || p.SaltLen > maxSaltLen ||
		p.KeyLen < minKeyLen || p.KeyLen > maxKeyLen {
		return fmt.Errorf("argon2id parameters %+v are out of bounds", p)
	}
	return nil
}

func decodeHash(encoded string) (p Params, salt, key []byte, err error) {
	rest, ok := strings.CutPrefix(encoded, hashPrefix)
	if !ok {
		return p, nil, nil, ErrMalformedHash
	}
	parts := strings.Split(rest, "$")
	if len(parts) != 3 {
		return p, nil, nil, ErrMalformedHash
	}
	var m, t, threads uint64
	for i, kv := range strings.Split(parts[0], ",") {
		name, val, ok := strings.Cut(kv, "=")
		want := [...]string{"m", "t", "p"}
		if !ok || i >= len(want) || name != want[i] {
			return p, nil, nil, ErrMalformedHash
		}
		n, err := strconv.ParseUint(val, 10, 32)
		if err != nil {
			return p, nil, nil, ErrMalformedHash
		}
		switch i {
		case 0:
			m = n
		case 1:
			t = n
		case 2:
			threads = n
		}
	}
	if salt, err = b64.Strict().DecodeString(parts[1]); err != nil {
		return p, nil, nil, ErrMalformedHash
	}
	if key, err = b64.Strict().DecodeString(parts[2]); err != nil {
		return p, nil, nil, ErrMalformedHash
	}
	if threads > 255 {
		return p, nil, nil, ErrMalformedHash
	}
	p = Params{Memory: uint32(m), Time: uint32(t), Threads: uint8(threads),
		SaltLen: uint32(len(salt)), KeyLen: uint32(len(key))}
	if p.check() != nil {
		return p, nil, nil, ErrMalformedHash
	}
	return p, salt, key, nil
}

// checkNewPassword enforces the length policy on a password being set.
func checkNewPassword(password string) error {
	n := len([]rune(password))
	switch {
	case n < MinPasswordLength:
		return fieldError("password", "password is too short: use at least %d characters (a passphrase of several words is easiest)", MinPasswordLength)
	case len(password) > MaxPasswordLength:
		return fieldError("password", "password is longer than %d bytes: use a shorter one", MaxPasswordLength)
	}
	return nil
}
