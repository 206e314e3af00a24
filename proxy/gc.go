package proxy

import (
	"fmt"
	"math"
	"runtime/debug"
	"strconv"
	"strings"
)

// defaultGCPercent and defaultMemoryLimit are the garbage collector settings sluice-proxy
// runs with unless told otherwise: Go's own (GOGC=100, no limit).
//
// A sidecar's live heap is small (4 to 5 MB with a small mesh's config) and its request path
// allocates about 6 KB per request, most of it in net/http, so under load the
// collector runs often: about 9 times a second at 5,000 requests a second. A higher GOGC
// under a soft limit halves that (GOGC=800 with 20MiB: 29 collections instead of 59 for the
// same 35,000 requests, GC CPU 0.4 % instead of 1 %), but measured at 5,000 and 8,000 rps
// over 16 connections on one CPU it did not move p99 or p99.9 beyond the run-to-run noise,
// and it costs 3 to 6 MB of RSS, which a sidecar pays once per pod. And a default limit
// would be wrong for a large mesh: once the live heap nears the limit, the collector runs
// back to back. So both are flags, for an operator who knows the mesh's size.
const (
	defaultGCPercent   = 100
	defaultMemoryLimit = math.MaxInt64
)

// gcOptions is how the Go garbage collector runs in this process.
type gcOptions struct {
	// setPercent says whether to set percent; false keeps what the runtime read from GOGC.
	setPercent bool
	// percent is GOGC; negative turns the collector off until the memory limit.
	percent int
	// setLimit says whether to set limit; false keeps what the runtime read from GOMEMLIMIT.
	setLimit bool
	// limit is the soft memory limit in bytes; math.MaxInt64 is none.
	limit int64
}

// parseGCOptions reads --gc-percent and --memory-limit. A flag that was not given (explicit
// says whether it was) leaves the runtime's setting alone when the matching GOGC or
// GOMEMLIMIT environment variable is set, so that the usual Go way of tuning still works.
func parseGCOptions(percent, limit string, explicitPercent, explicitLimit bool, getenv func(string) string) (gcOptions, error) {
	var o gcOptions
	o.setPercent = explicitPercent || getenv("GOGC") == ""
	o.setLimit = explicitLimit || getenv("GOMEMLIMIT") == ""
	switch p := strings.TrimSpace(percent); p {
	case "off":
		o.percent = -1
	default:
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return gcOptions{}, fmt.Errorf("--gc-percent %q is not a positive whole number or off (such as %d)", percent, defaultGCPercent)
		}
		o.percent = n
	}
	switch l := strings.TrimSpace(limit); l {
	case "off", "0":
		o.limit = math.MaxInt64
	default:
		n, err := parseBytes(l)
		if err != nil {
			return gcOptions{}, fmt.Errorf("--memory-limit %q: %v (such as 20MiB, 256MiB or 1GiB, or off)", limit, err)
		}
		o.limit = n
	}
	if o.percent < 0 && o.limit == math.MaxInt64 && o.setPercent && o.setLimit {
		return gcOptions{}, fmt.Errorf("--gc-percent off needs a --memory-limit: without either the heap grows without bound")
	}
	return o, nil
}

// apply sets the collector's settings for the whole process.
func (o gcOptions) apply() {
	if o.setPercent {
		debug.SetGCPercent(o.percent)
	}
	if o.setLimit {
		debug.SetMemoryLimit(o.limit)
	}
}

// byteUnits are the suffixes parseBytes reads, as GOMEMLIMIT does.
var byteUnits = []struct {
	suffix string
	shift  uint
}{{"KiB", 10}, {"MiB", 20}, {"GiB", 30}, {"TiB", 40}, {"B", 0}}

// parseBytes reads a byte count with an optional binary unit: 20MiB, 1GiB, 4096.
func parseBytes(s string) (int64, error) {
	shift := uint(0)
	for _, u := range byteUnits {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			s, shift = num, u.shift
			break
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("not a size in bytes")
	}
	if n > math.MaxInt64>>shift {
		return 0, fmt.Errorf("too large")
	}
	return n << shift, nil
}

// formatBytes writes a byte count in the largest unit that divides it (20MiB), or off for
// no limit.
func formatBytes(n int64) string {
	if n == math.MaxInt64 {
		return "off"
	}
	// byteUnits runs from KiB up, with B last: try the largest unit first.
	for i := len(byteUnits) - 2; i >= 0; i-- {
		u := byteUnits[i]
		if n>>u.shift > 0 && n%(1<<u.shift) == 0 {
			return strconv.FormatInt(n>>u.shift, 10) + u.suffix
		}
	}
	return strconv.FormatInt(n, 10) + "B"
}
