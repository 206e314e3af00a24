package filter

import (
	"container/list"
	"errors"
	"fmt"
	"math"
	"net/textproto"
	"strings"
	"sync"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"golang.org/x/time/rate"

	"github.com/sluicemesh/sluice/proxy/internal/match"
	"github.com/sluicemesh/sluice/proxy/internal/support"
)

// RateLimitName is the name of Envoy's local rate limit filter.
const RateLimitName = "envoy.filters.http.local_ratelimit"

// DefaultMaxDynamicDescriptors is Envoy's bound on the buckets of one wildcard descriptor
// when max_dynamic_descriptors is unset.
const DefaultMaxDynamicDescriptors = 20

// maxActions bounds the rate_limits actions of one entry, so that describing a request fits
// in a fixed array and does not allocate.
const maxActions = 8

// RateLimitSupported lists the fields of the local rate limit filter's config that
// sluice-proxy implements.
var RateLimitSupported = support.Fields{
	"envoy.extensions.filters.http.local_ratelimit.v3.LocalRateLimit": {"stat_prefix", "token_bucket",
		"filter_enabled", "filter_enforced", "response_headers_to_add", "descriptors", "rate_limits",
		"max_dynamic_descriptors", "enable_retry_after_header"},
	"envoy.type.v3.TokenBucket":                                      {"max_tokens", "tokens_per_fill", "fill_interval"},
	"envoy.config.core.v3.RuntimeFractionalPercent":                  {"default_value", "runtime_key"},
	"envoy.config.core.v3.HeaderValueOption":                         {"header", "append_action", "append"},
	"envoy.config.core.v3.HeaderValue":                               {"key", "value"},
	"envoy.extensions.common.ratelimit.v3.LocalRateLimitDescriptor":  {"entries", "token_bucket"},
	"envoy.extensions.common.ratelimit.v3.RateLimitDescriptor.Entry": {"key", "value"},
	"envoy.config.route.v3.RateLimit":                                {"actions"},
	"envoy.config.route.v3.RateLimit.Action":                         {"generic_key", "header_value_match", "request_headers"},
	"envoy.config.route.v3.RateLimit.Action.GenericKey":              {"descriptor_value", "descriptor_key"},
	"envoy.config.route.v3.RateLimit.Action.HeaderValueMatch":        {"descriptor_key", "descriptor_value", "expect_match", "headers"},
	"envoy.config.route.v3.RateLimit.Action.RequestHeaders":          {"header_name", "descriptor_key", "skip_if_absent"},
}

// RateLimit is a compiled LocalRateLimit: token buckets in this proxy, shared by every
// request the filter sees. Its buckets live as long as the config: a new config starts
// with full buckets.
//
// Buckets refill continuously at tokens_per_fill per fill_interval rather than in Envoy's
// discrete fills, so the long-run rate is the same and a burst is bounded by max_tokens.
// Without rate_limits actions every request draws from token_bucket. With them, each entry
// of rate_limits describes the request (an action that cannot describe it, such as
// header_value_match that does not match or a missing header without skip_if_absent, drops
// that entry), the first descriptor whose entries equal the description gives the bucket,
// and a request no descriptor matches draws from token_bucket, or is not limited when there
// is none. A descriptor entry without a value matches any value, with a bucket per distinct
// value, at most max_dynamic_descriptors of them (least recently used dropped first).
type RateLimit struct {
	name        string
	enabled     Percent
	enforced    Percent
	bucket      *rate.Limiter
	entries     [][]rlAction
	descriptors []*rlDescriptor
	retryAfter  bool
	// Headers are added to every answer the filter limits.
	Headers []HeaderValue
}

// HeaderValue is one header to add.
type HeaderValue struct{ Key, Value string }

type rlActionKind uint8

const (
	actGenericKey rlActionKind = iota
	actHeaderValueMatch
	actRequestHeaders
)

type rlAction struct {
	kind        rlActionKind
	key, value  string
	headers     []match.Header
	expectMatch bool
	header      string // canonical name, request_headers
	skipAbsent  bool
}

type rlEntry struct{ key, value string }

type rlDescriptor struct {
	entries []rlEntry
	// wild is true when an entry has no value: buckets are per value, in dyn.
	wild  bool
	limit rate.Limit
	burst int
	fixed *rate.Limiter
	dyn   *bucketLRU
}

// CompileRateLimit compiles c. The error names the offending field relative to c.
func CompileRateLimit(c *localrlv3.LocalRateLimit) (*RateLimit, error) {
	if err := support.Check(c, RateLimitSupported); err != nil {
		return nil, err
	}
	if c.GetStatPrefix() == "" {
		return nil, errors.New("stat_prefix: required")
	}
	rl := &RateLimit{name: c.GetStatPrefix(), retryAfter: c.GetEnableRetryAfterHeader()}
	var err error
	// Envoy reads an unset filter_enabled or filter_enforced as 0%: the filter does nothing.
	if rl.enabled, err = CompilePercent(c.GetFilterEnabled().GetDefaultValue()); err != nil {
		return nil, fmt.Errorf("filter_enabled.default_value.%w", err)
	}
	if rl.enforced, err = CompilePercent(c.GetFilterEnforced().GetDefaultValue()); err != nil {
		return nil, fmt.Errorf("filter_enforced.default_value.%w", err)
	}
	if tb := c.GetTokenBucket(); tb != nil {
		lim, burst, err := compileBucket(tb)
		if err != nil {
			return nil, fmt.Errorf("token_bucket.%w", err)
		}
		rl.bucket = rate.NewLimiter(lim, burst)
	}
	for i, h := range c.GetResponseHeadersToAdd() {
		if h.GetHeader().GetKey() == "" {
			return nil, fmt.Errorf("response_headers_to_add[%d].header.key: required", i)
		}
		rl.Headers = append(rl.Headers, HeaderValue{h.GetHeader().GetKey(), h.GetHeader().GetValue()})
	}
	maxDyn := DefaultMaxDynamicDescriptors
	if m := c.GetMaxDynamicDescriptors(); m != nil {
		if m.GetValue() < 1 {
			return nil, errors.New("max_dynamic_descriptors: must be 1 or more")
		}
		maxDyn = int(m.GetValue())
	}
	for i, r := range c.GetRateLimits() {
		if n := len(r.GetActions()); n == 0 || n > maxActions {
			return nil, fmt.Errorf("rate_limits[%d].actions: sluice-proxy takes 1 to %d actions, got %d", i, maxActions, n)
		}
		var acts []rlAction
		for j, a := range r.GetActions() {
			ca, err := compileAction(a)
			if err != nil {
				return nil, fmt.Errorf("rate_limits[%d].actions[%d]%w", i, j, err)
			}
			acts = append(acts, ca)
		}
		rl.entries = append(rl.entries, acts)
	}
	for i, d := range c.GetDescriptors() {
		cd := &rlDescriptor{}
		if len(d.GetEntries()) == 0 {
			return nil, fmt.Errorf("descriptors[%d].entries: required", i)
		}
		for j, e := range d.GetEntries() {
			if e.GetKey() == "" {
				return nil, fmt.Errorf("descriptors[%d].entries[%d].key: required", i, j)
			}
			cd.entries = append(cd.entries, rlEntry{e.GetKey(), e.GetValue()})
			cd.wild = cd.wild || e.GetValue() == ""
		}
		if d.GetTokenBucket() == nil {
			return nil, fmt.Errorf("descriptors[%d].token_bucket: required", i)
		}
		if cd.limit, cd.burst, err = compileBucket(d.GetTokenBucket()); err != nil {
			return nil, fmt.Errorf("descriptors[%d].token_bucket.%w", i, err)
		}
		if cd.wild {
			cd.dyn = newBucketLRU(maxDyn)
		} else {
			cd.fixed = rate.NewLimiter(cd.limit, cd.burst)
		}
		rl.descriptors = append(rl.descriptors, cd)
	}
	if rl.bucket == nil && len(rl.descriptors) == 0 {
		return nil, errors.New("token_bucket: required when there are no descriptors")
	}
	return rl, nil
}

// compileBucket reads a TokenBucket as a refill rate and a burst. A max_tokens of 0 admits
// nothing.
func compileBucket(tb *typev3.TokenBucket) (rate.Limit, int, error) {
	fill := tb.GetFillInterval()
	if fill == nil || fill.AsDuration() <= 0 {
		return 0, 0, errors.New("fill_interval: required, more than 0")
	}
	per := uint32(1)
	if tb.GetTokensPerFill() != nil {
		per = tb.GetTokensPerFill().GetValue()
	}
	return rate.Limit(float64(per) / fill.AsDuration().Seconds()), int(tb.GetMaxTokens()), nil
}

func compileAction(a *routev3.RateLimit_Action) (rlAction, error) {
	switch s := a.GetActionSpecifier().(type) {
	case *routev3.RateLimit_Action_GenericKey_:
		key := s.GenericKey.GetDescriptorKey()
		if key == "" {
			key = "generic_key"
		}
		return rlAction{kind: actGenericKey, key: key, value: s.GenericKey.GetDescriptorValue()}, nil
	case *routev3.RateLimit_Action_HeaderValueMatch_:
		hs, err := match.CompileHeaders(s.HeaderValueMatch.GetHeaders())
		if err != nil {
			return rlAction{}, fmt.Errorf(".header_value_match.headers%w", err)
		}
		key := s.HeaderValueMatch.GetDescriptorKey()
		if key == "" {
			key = "header_match"
		}
		expect := s.HeaderValueMatch.GetExpectMatch() == nil || s.HeaderValueMatch.GetExpectMatch().GetValue()
		return rlAction{kind: actHeaderValueMatch, key: key, value: s.HeaderValueMatch.GetDescriptorValue(), headers: hs, expectMatch: expect}, nil
	case *routev3.RateLimit_Action_RequestHeaders_:
		rh := s.RequestHeaders
		if rh.GetHeaderName() == "" || rh.GetDescriptorKey() == "" {
			return rlAction{}, errors.New(".request_headers: header_name and descriptor_key are required")
		}
		return rlAction{kind: actRequestHeaders, key: rh.GetDescriptorKey(),
			header: textproto.CanonicalMIMEHeaderKey(rh.GetHeaderName()), skipAbsent: rh.GetSkipIfAbsent()}, nil
	}
	return rlAction{}, errors.New(": one of generic_key, header_value_match or request_headers is required (others are not supported by sluice-proxy)")
}

// Name is the filter's stat_prefix.
func (l *RateLimit) Name() string { return l.name }

// RetryAfterEnabled reports whether a limited answer carries Retry-After.
func (l *RateLimit) RetryAfterEnabled() bool { return l.retryAfter }

// Check takes a token for req at now. It reports whether the request is over the limit and
// must be refused (limited), and if so how long until its bucket has a token again. A
// request the filter is not enabled for, or over a limit that is not enforced, is not
// limited.
func (l *RateLimit) Check(req *match.Request, now time.Time) (limited bool, retry time.Duration) {
	if !l.enabled.Hit() {
		return false, 0
	}
	lim := l.limiter(req)
	if lim == nil || lim.AllowN(now, 1) {
		return false, 0
	}
	if !l.enforced.Hit() {
		return false, 0
	}
	return true, untilToken(lim, now)
}

// untilToken is how long lim takes to hold one token from now.
func untilToken(lim *rate.Limiter, now time.Time) time.Duration {
	if lim.Burst() < 1 || lim.Limit() <= 0 {
		return time.Duration(math.MaxInt64)
	}
	missing := 1 - lim.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / float64(lim.Limit()) * float64(time.Second))
}

// RetryAfterSeconds is the Retry-After value for a wait of d: whole seconds, rounded up, at
// least 1, as Envoy writes it.
func RetryAfterSeconds(d time.Duration) int64 {
	s := int64(math.Ceil(d.Seconds()))
	if d == time.Duration(math.MaxInt64) {
		s = math.MaxInt32
	}
	return max(s, 1)
}

// limiter returns the bucket req draws from, or nil for none.
func (l *RateLimit) limiter(req *match.Request) *rate.Limiter {
	for _, acts := range l.entries {
		var buf [maxActions]rlEntry
		desc, ok := describe(acts, req, buf[:0])
		if !ok {
			continue
		}
		for _, d := range l.descriptors {
			if lim := d.match(desc); lim != nil {
				return lim
			}
		}
	}
	return l.bucket
}

// describe runs one entry's actions on req; false means the entry produces no descriptor.
func describe(acts []rlAction, req *match.Request, out []rlEntry) ([]rlEntry, bool) {
	for i := range acts {
		a := &acts[i]
		switch a.kind {
		case actGenericKey:
			out = append(out, rlEntry{a.key, a.value})
		case actHeaderValueMatch:
			if match.All(a.headers, req) != a.expectMatch {
				return nil, false
			}
			out = append(out, rlEntry{a.key, a.value})
		case actRequestHeaders:
			vs := req.Header[a.header]
			if len(vs) == 0 {
				if a.skipAbsent {
					continue
				}
				return nil, false
			}
			out = append(out, rlEntry{a.key, vs[0]})
		}
	}
	return out, len(out) > 0
}

// match returns the bucket of desc if d matches it, or nil.
func (d *rlDescriptor) match(desc []rlEntry) *rate.Limiter {
	if len(desc) != len(d.entries) {
		return nil
	}
	var wildValue string
	for i, e := range d.entries {
		if desc[i].key != e.key || (e.value != "" && desc[i].value != e.value) {
			return nil
		}
		if e.value == "" {
			if wildValue != "" {
				wildValue += "\x00"
			}
			wildValue += desc[i].value
		}
	}
	if !d.wild {
		return d.fixed
	}
	return d.dyn.get(wildValue, func() *rate.Limiter { return rate.NewLimiter(d.limit, d.burst) })
}

// bucketLRU holds at most max buckets by key, dropping the least recently used.
type bucketLRU struct {
	mu    sync.Mutex
	max   int
	order *list.List // of *lruItem, most recent first
	items map[string]*list.Element
}

type lruItem struct {
	key string
	lim *rate.Limiter
}

func newBucketLRU(max int) *bucketLRU {
	return &bucketLRU{max: max, order: list.New(), items: map[string]*list.Element{}}
}

func (c *bucketLRU) get(key string, newLimiter func() *rate.Limiter) *rate.Limiter {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.items[key]; ok {
		c.order.MoveToFront(e)
		return e.Value.(*lruItem).lim
	}
	if c.order.Len() >= c.max {
		old := c.order.Back()
		c.order.Remove(old)
		delete(c.items, old.Value.(*lruItem).key)
	}
	key = strings.Clone(key) // the key may point into a request's header
	it := &lruItem{key: key, lim: newLimiter()}
	c.items[key] = c.order.PushFront(it)
	return it.lim
}

// Len returns how many buckets are kept.
func (c *bucketLRU) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.order.Len()
}

// Describe says in words why a request was limited, for x-sluice-reason.
func (l *RateLimit) Describe() string {
	return "rate limited by local_ratelimit " + l.name
}
