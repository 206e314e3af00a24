package auth

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// LoginLimits bound sign-in attempts, successful or not, per username and per client address.
// The zero value of each field takes the default named beside it.
//
// Limiting per username caps password guessing against one account however many addresses the
// guesser uses; the price is that someone hammering a username can keep its owner out for as
// long as they keep at it (API tokens still work). Limiting per address caps how much argon2
// work one client can make the server do.
type LoginLimits struct {
	// PerUser is the sustained rate per username (default 5 per minute) and UserBurst how many
	// attempts may come at once (default 5).
	PerUser   rate.Limit
	UserBurst int
	// PerAddr is the sustained rate per client address (default 20 per minute) and AddrBurst
	// its burst (default 20). IPv6 clients are grouped by /64, which one host often spans.
	PerAddr   rate.Limit
	AddrBurst int
	// MaxKeys bounds how many usernames, and separately how many addresses, are tracked
	// (default 10000); see keyedLimiter.
	MaxKeys int
}

func (l LoginLimits) withDefaults() LoginLimits {
	if l.PerUser == 0 {
		l.PerUser = rate.Every(time.Minute / 5)
	}
	if l.UserBurst == 0 {
		l.UserBurst = 5
	}
	if l.PerAddr == 0 {
		l.PerAddr = rate.Every(time.Minute / 20)
	}
	if l.AddrBurst == 0 {
		l.AddrBurst = 20
	}
	if l.MaxKeys == 0 {
		l.MaxKeys = 10000
	}
	return l
}

// loginLimiter applies LoginLimits.
type loginLimiter struct {
	users, addrs *keyedLimiter
}

func newLoginLimiter(l LoginLimits) *loginLimiter {
	l = l.withDefaults()
	return &loginLimiter{
		users: newKeyedLimiter(l.PerUser, l.UserBurst, l.MaxKeys),
		addrs: newKeyedLimiter(l.PerAddr, l.AddrBurst, l.MaxKeys),
	}
}

// admit takes one attempt from both the username's and the address's allowance, or, if either
// is used up, takes nothing and returns how long to wait.
func (l *loginLimiter) admit(username, addr string, now time.Time) (wait time.Duration, ok bool) {
	ru := l.users.get(username, now).ReserveN(now, 1)
	ra := l.addrs.get(addr, now).ReserveN(now, 1)
	wait = max(ru.DelayFrom(now), ra.DelayFrom(now))
	if wait > 0 {
		// Cancelling at the moment of reserving gives the tokens back, so refused attempts do
		// not push the next allowed one further out.
		ru.CancelAt(now)
		ra.CancelAt(now)
		return wait, false
	}
	return 0, true
}

// keyedLimiter holds one token bucket per key, at most max of them. When it is full it first
// forgets the buckets that have refilled, which is lossless (a full bucket is what a new key
// gets), and only then the one least recently used.
type keyedLimiter struct {
	limit rate.Limit
	burst int
	max   int

	mu sync.Mutex
	m  map[string]*keyedEntry
}

type keyedEntry struct {
	lim  *rate.Limiter
	seen time.Time
}

func newKeyedLimiter(limit rate.Limit, burst, maxKeys int) *keyedLimiter {
	return &keyedLimiter{limit: limit, burst: burst, max: maxKeys, m: make(map[string]*keyedEntry)}
}

func (k *keyedLimiter) get(key string, now time.Time) *rate.Limiter {
	k.mu.Lock()
	defer k.mu.Unlock()
	e := k.m[key]
	if e == nil {
		if len(k.m) >= k.max {
			k.evict(now)
		}
		e = &keyedEntry{lim: rate.NewLimiter(k.limit, k.burst)}
		k.m[key] = e
	}
	e.seen = now
	return e.lim
}

func (k *keyedLimiter) evict(now time.Time) {
	full := float64(k.burst)
	for key, e := range k.m {
		if e.lim.TokensAt(now) >= full {
			delete(k.m, key)
		}
	}
	if len(k.m) < k.max {
		return
	}
	var (
		oldest string
		at     time.Time
		found  bool
	)
	for key, e := range k.m {
		if !found || e.seen.Before(at) {
			oldest, at, found = key, e.seen, true
		}
	}
	delete(k.m, oldest)
}

func (k *keyedLimiter) len() int {
	k.mu.Lock()
	defer k.mu.Unlock()
	return len(k.m)
}
