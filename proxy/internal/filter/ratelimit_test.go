package filter

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	localrlv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/local_ratelimit/v3"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/sluicemesh/sluice/proxy/internal/match"
)

func compileRateLimitJSON(t testing.TB, js string) *RateLimit {
	t.Helper()
	var c localrlv3.LocalRateLimit
	if err := protojson.Unmarshal([]byte(js), &c); err != nil {
		t.Fatalf("config: %v", err)
	}
	l, err := CompileRateLimit(&c)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return l
}

const always = `"filterEnabled": {"defaultValue": {"numerator": 100}}, "filterEnforced": {"defaultValue": {"numerator": 100}}`

// perUser is what the control plane sends for a RateLimit on /api/ per x-user value: 2
// requests a second, a bucket per user, at most 3 users' buckets.
const perUser = `{"statPrefix": "ratelimit_default_api", ` + always + `, "enableRetryAfterHeader": true,
  "maxDynamicDescriptors": 3,
  "rateLimits": [{"actions": [
    {"headerValueMatch": {"descriptorKey": "ratelimit", "descriptorValue": "default/api", "expectMatch": true,
      "headers": [{"name": ":path", "stringMatch": {"prefix": "/api/"}}]}},
    {"requestHeaders": {"headerName": "x-user", "descriptorKey": "header", "skipIfAbsent": true}}]}],
  "descriptors": [
    {"entries": [{"key": "ratelimit", "value": "default/api"}, {"key": "header"}], "tokenBucket": {"maxTokens": 2, "tokensPerFill": 2, "fillInterval": "1s"}},
    {"entries": [{"key": "ratelimit", "value": "default/api"}], "tokenBucket": {"maxTokens": 2, "tokensPerFill": 2, "fillInterval": "1s"}}]}`

func rlReq(path, user string) *match.Request {
	h := http.Header{}
	if user != "" {
		h.Set("X-User", user)
	}
	return &match.Request{Authority: "productpage", Method: "GET", Path: path, Header: h}
}

// admitted counts how many of n requests at now pass.
func admitted(l *RateLimit, r *match.Request, n int, now time.Time) int {
	ok := 0
	for range n {
		if limited, _ := l.Check(r, now); !limited {
			ok++
		}
	}
	return ok
}

func TestRateLimitBucket(t *testing.T) {
	l := compileRateLimitJSON(t, `{"statPrefix": "ratelimit_default_all", `+always+`, "enableRetryAfterHeader": true,
		"tokenBucket": {"maxTokens": 5, "tokensPerFill": 10, "fillInterval": "60s"}}`)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := rlReq("/", "")
	if got := admitted(l, r, 8, t0); got != 5 {
		t.Fatalf("a burst of 8 admitted %d, want the bucket's 5", got)
	}
	limited, wait := l.Check(r, t0)
	if !limited || wait != 6*time.Second {
		t.Errorf("over the limit: limited %v, wait %v; want true, 6s (10 tokens a minute)", limited, wait)
	}
	if s := RetryAfterSeconds(wait); s != 6 {
		t.Errorf("Retry-After %d, want 6", s)
	}
	if got := admitted(l, r, 3, t0.Add(12*time.Second)); got != 2 {
		t.Errorf("12 s later %d admitted, want 2", got)
	}
	if got := admitted(l, r, 10, t0.Add(time.Hour)); got != 5 {
		t.Errorf("after an hour %d admitted, want a full bucket of 5", got)
	}
	if l.Describe() != "rate limited by local_ratelimit ratelimit_default_all" || !l.RetryAfterEnabled() {
		t.Errorf("Describe %q, RetryAfterEnabled %v", l.Describe(), l.RetryAfterEnabled())
	}
}

func TestRateLimitDescriptors(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := compileRateLimitJSON(t, perUser)
	if got := admitted(l, rlReq("/productpage", "jason"), 10, t0); got != 10 {
		t.Errorf("outside the route: %d of 10 admitted, want all", got)
	}
	if got := admitted(l, rlReq("/api/v1/products", "jason"), 5, t0); got != 2 {
		t.Errorf("jason: %d admitted, want 2", got)
	}
	if got := admitted(l, rlReq("/api/v1/products", "alice"), 5, t0); got != 2 {
		t.Errorf("alice has her own bucket: %d admitted, want 2", got)
	}
	if got := admitted(l, rlReq("/api/v1/products", ""), 5, t0); got != 2 {
		t.Errorf("requests without x-user share a bucket: %d admitted, want 2", got)
	}
	// Two more users push jason's bucket out (3 kept): he starts again with a full one.
	admitted(l, rlReq("/api/", "bob"), 1, t0)
	admitted(l, rlReq("/api/", "carol"), 1, t0)
	if n := l.descriptors[0].dyn.Len(); n != 3 {
		t.Errorf("%d buckets kept, want the bound of 3", n)
	}
	if got := admitted(l, rlReq("/api/v1/products", "jason"), 5, t0); got != 2 {
		t.Errorf("jason after eviction: %d admitted, want a fresh 2", got)
	}
}

func TestRateLimitEnforcement(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	shadow := compileRateLimitJSON(t, `{"statPrefix": "s", "filterEnabled": {"defaultValue": {"numerator": 100}},
		"tokenBucket": {"maxTokens": 1, "tokensPerFill": 1, "fillInterval": "1s"}}`)
	if got := admitted(shadow, rlReq("/", ""), 5, t0); got != 5 {
		t.Errorf("filter_enforced unset (0%%): %d admitted, want all", got)
	}
	off := compileRateLimitJSON(t, `{"statPrefix": "s", "tokenBucket": {"maxTokens": 1, "tokensPerFill": 1, "fillInterval": "1s"}}`)
	if got := admitted(off, rlReq("/", ""), 5, t0); got != 5 {
		t.Errorf("filter_enabled unset (0%%): %d admitted, want all", got)
	}
	closed := compileRateLimitJSON(t, `{"statPrefix": "s", `+always+`, "tokenBucket": {"maxTokens": 0, "tokensPerFill": 1, "fillInterval": "1s"}}`)
	limited, wait := closed.Check(rlReq("/", ""), t0)
	if !limited || RetryAfterSeconds(wait) < 1 {
		t.Errorf("max_tokens 0: limited %v, Retry-After %d", limited, RetryAfterSeconds(wait))
	}
}

func TestRateLimitCompileErrors(t *testing.T) {
	tests := []struct{ name, js, want string }{
		{"no bucket", `{"statPrefix": "s"}`, "token_bucket: required when there are no descriptors"},
		{"no prefix", `{"tokenBucket": {"maxTokens": 1, "fillInterval": "1s"}}`, "stat_prefix: required"},
		{"no interval", `{"statPrefix": "s", "tokenBucket": {"maxTokens": 1}}`, "token_bucket.fill_interval: required"},
		{"per connection", `{"statPrefix": "s", "localRateLimitPerDownstreamConnection": true, "tokenBucket": {"maxTokens": 1, "fillInterval": "1s"}}`, "local_rate_limit_per_downstream_connection: not supported by sluice-proxy"},
		{"unsupported action", `{"statPrefix": "s", "rateLimits": [{"actions": [{"remoteAddress": {}}]}], "descriptors": [{"entries": [{"key": "remote_address"}], "tokenBucket": {"maxTokens": 1, "fillInterval": "1s"}}]}`, "rate_limits[0].actions[0].remote_address: not supported by sluice-proxy"},
		{"descriptor without bucket", `{"statPrefix": "s", "descriptors": [{"entries": [{"key": "k", "value": "v"}]}]}`, "descriptors[0].token_bucket: required"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var c localrlv3.LocalRateLimit
			if err := protojson.Unmarshal([]byte(tc.js), &c); err != nil {
				t.Fatal(err)
			}
			_, err := CompileRateLimit(&c)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestRetryAfterSeconds(t *testing.T) {
	for d, want := range map[time.Duration]int64{0: 1, 300 * time.Millisecond: 1, time.Second: 1, 1500 * time.Millisecond: 2, time.Minute: 60} {
		if got := RetryAfterSeconds(d); got != want {
			t.Errorf("RetryAfterSeconds(%v) = %s, want %d", d, strconv.FormatInt(got, 10), want)
		}
	}
}
