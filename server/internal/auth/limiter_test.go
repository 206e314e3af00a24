package auth

import (
	"fmt"
	"testing"
	"time"
)

func TestLoginLimiterPerUser(t *testing.T) {
	l := newLoginLimiter(LoginLimits{})
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 5 {
		if _, ok := l.admit("alice", fmt.Sprintf("10.0.0.%d", i), now); !ok {
			t.Fatalf("attempt %d refused, want the first 5 admitted", i+1)
		}
	}
	wait, ok := l.admit("alice", "10.0.0.99", now)
	if ok || wait <= 0 || wait > 12*time.Second {
		t.Fatalf("6th attempt: ok=%v wait=%v, want refused with a wait of about 12s (5 per minute)", ok, wait)
	}
	// Refused attempts take nothing, so waiting as told is enough.
	for range 10 {
		l.admit("alice", "10.0.0.99", now)
	}
	if _, ok := l.admit("alice", "10.0.0.99", now.Add(wait)); !ok {
		t.Errorf("attempt after waiting %v refused", wait)
	}
	if _, ok := l.admit("bob", "10.0.0.1", now); !ok {
		t.Error("another user is limited by alice's attempts")
	}
}

func TestLoginLimiterPerAddr(t *testing.T) {
	l := newLoginLimiter(LoginLimits{})
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 20 {
		if _, ok := l.admit(fmt.Sprintf("user%d", i), "192.0.2.7", now); !ok {
			t.Fatalf("attempt %d from one address refused, want 20 admitted", i+1)
		}
	}
	if _, ok := l.admit("fresh", "192.0.2.7", now); ok {
		t.Error("21st attempt from one address admitted")
	}
	// The refusal took nothing from the fresh user's allowance.
	for i := range 5 {
		if _, ok := l.admit("fresh", fmt.Sprintf("192.0.2.%d", 100+i), now); !ok {
			t.Fatalf("fresh user's attempt %d from another address refused", i+1)
		}
	}
}

func TestAddrKeyGroupsIPv6(t *testing.T) {
	tests := map[string]string{
		"192.0.2.1":            "192.0.2.1",
		"::ffff:192.0.2.1":     "192.0.2.1",
		"2001:db8:1:2:3:4:5:6": "2001:db8:1:2::/64",
		"2001:db8:1:2:ffff::1": "2001:db8:1:2::/64",
		"not an address":       "not an address",
	}
	for in, want := range tests {
		if got := addrKey(in); got != want {
			t.Errorf("addrKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestKeyedLimiterEviction(t *testing.T) {
	k := newKeyedLimiter(1, 2, 3) // 1/s, burst 2, at most 3 keys
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	k.get("a", t0).AllowN(t0, 2) // a is drained
	k.get("b", t0.Add(time.Millisecond))
	k.get("c", t0.Add(2*time.Millisecond))

	// b and c are full, so adding d drops them and keeps a's state.
	k.get("d", t0.Add(3*time.Millisecond))
	if n := k.len(); n != 2 {
		t.Fatalf("after evicting full buckets: %d keys, want 2 (a and d)", n)
	}
	if got := k.get("a", t0.Add(4*time.Millisecond)).TokensAt(t0.Add(4 * time.Millisecond)); got >= 1 {
		t.Errorf("a's drained bucket was forgotten: %v tokens", got)
	}

	// With every bucket partly used, the least recently used goes.
	t1 := t0.Add(5 * time.Millisecond)
	k.get("d", t1).AllowN(t1, 2)
	k.get("e", t1).AllowN(t1, 2)
	k.get("a", t1.Add(time.Millisecond))
	k.get("f", t1.Add(2*time.Millisecond)) // evicts d or e, both last seen before a
	if n := k.len(); n != 3 {
		t.Errorf("%d keys, want the bound of 3", n)
	}
	k.mu.Lock()
	_, hasA := k.m["a"]
	_, hasF := k.m["f"]
	k.mu.Unlock()
	if !hasA || !hasF {
		t.Errorf("recently used a and new f must stay: a=%v f=%v", hasA, hasF)
	}
}
