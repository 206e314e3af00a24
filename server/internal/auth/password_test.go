package auth_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/sluicemesh/sluice/server/internal/auth"
)

// fast are argon2id costs small enough for tests; the format and checks are the same.
var fast = auth.Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashPasswordVerifies(t *testing.T) {
	h, err := auth.HashPassword("correct horse battery staple", fast)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("hash %q is not an argon2id PHC string with its parameters", h)
	}
	if ok, err := auth.VerifyPassword("correct horse battery staple", h); err != nil || !ok {
		t.Errorf("right password: ok=%v err=%v, want true", ok, err)
	}
	if ok, err := auth.VerifyPassword("correct horse battery stapler", h); err != nil || ok {
		t.Errorf("wrong password: ok=%v err=%v, want false", ok, err)
	}
	h2, _ := auth.HashPassword("correct horse battery staple", fast)
	if h == h2 {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
}

func TestDefaultParamsVerify(t *testing.T) {
	if testing.Short() {
		t.Skip("64 MiB hash")
	}
	h, err := auth.HashPassword("pw", auth.DefaultParams)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=65536,t=1,p=2$") {
		t.Errorf("hash %q does not record the default parameters", h)
	}
	if ok, _ := auth.VerifyPassword("pw", h); !ok {
		t.Error("default parameters do not verify")
	}
}

func TestVerifyTamperedHash(t *testing.T) {
	h, err := auth.HashPassword("secret password", fast)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(h, "$") // "", argon2id, v=19, m=..., salt, key
	flip := func(s string) string {
		b := []byte(s)
		if b[0] == 'A' {
			b[0] = 'B'
		} else {
			b[0] = 'A'
		}
		return string(b)
	}
	join := func(p ...string) string { return strings.Join(p, "$") }
	tests := []struct {
		name      string
		encoded   string
		malformed bool // else: parses, but must not match
	}{
		{"key changed", join(parts[0], parts[1], parts[2], parts[3], parts[4], flip(parts[5])), false},
		{"salt changed", join(parts[0], parts[1], parts[2], parts[3], flip(parts[4]), parts[5]), false},
		{"time changed", strings.Replace(h, ",t=1,", ",t=2,", 1), false},
		{"argon2i", strings.Replace(h, "$argon2id$", "$argon2i$", 1), true},
		{"old version", strings.Replace(h, "$v=19$", "$v=16$", 1), true},
		{"params reordered", strings.Replace(h, "m=64,t=1,p=1", "t=1,m=64,p=1", 1), true},
		{"memory huge", strings.Replace(h, "m=64,", "m=4000000000,", 1), true},
		{"memory not a number", strings.Replace(h, "m=64,", "m=x,", 1), true},
		{"zero threads", strings.Replace(h, ",p=1$", ",p=0$", 1), true},
		{"key truncated", join(parts[0], parts[1], parts[2], parts[3], parts[4], parts[5][:8]), true},
		{"salt not base64", join(parts[0], parts[1], parts[2], parts[3], "!!!!", parts[5]), true},
		{"missing key", join(parts[0], parts[1], parts[2], parts[3], parts[4]), true},
		{"empty", "", true},
		{"plain text", "secret password", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ok, err := auth.VerifyPassword("secret password", tt.encoded)
			if ok {
				t.Fatalf("VerifyPassword(%q) matched", tt.encoded)
			}
			if tt.malformed != errors.Is(err, auth.ErrMalformedHash) {
				t.Errorf("err = %v, want malformed=%v", err, tt.malformed)
			}
		})
	}
}

func TestNeedsRehash(t *testing.T) {
	h, _ := auth.HashPassword("pw", fast)
	if auth.NeedsRehash(h, fast) {
		t.Error("a hash with the current parameters needs no rehash")
	}
	stronger := fast
	stronger.Time = 2
	if !auth.NeedsRehash(h, stronger) {
		t.Error("a hash with older parameters needs a rehash")
	}
	if !auth.NeedsRehash("garbage", fast) {
		t.Error("an unparsable hash needs a rehash")
	}
}

func TestRoleAtLeast(t *testing.T) {
	tests := []struct {
		r, min auth.Role
		want   bool
	}{
		{auth.RoleAdmin, auth.RoleViewer, true},
		{auth.RoleAdmin, auth.RoleAdmin, true},
		{auth.RoleOperator, auth.RoleViewer, true},
		{auth.RoleOperator, auth.RoleAdmin, false},
		{auth.RoleViewer, auth.RoleOperator, false},
		{"", auth.RoleViewer, false},
		{"root", auth.RoleViewer, false},
		{auth.RoleAdmin, "root", false},
	}
	for _, tt := range tests {
		if got := tt.r.AtLeast(tt.min); got != tt.want {
			t.Errorf("%q.AtLeast(%q) = %v, want %v", tt.r, tt.min, got, tt.want)
		}
	}
}
