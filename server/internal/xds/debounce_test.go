package xds

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"
)

// The debounce waits longer when pushes are costly, within its bounds.
func TestMaxDelay(t *testing.T) {
	for built, want := range map[time.Duration]time.Duration{
		0:                      debounceMaxDelay,
		5 * time.Millisecond:   debounceMaxDelay,
		50 * time.Millisecond:  200 * time.Millisecond,
		300 * time.Millisecond: debounceMaxDelayCap,
	} {
		if got := maxDelay(built); got != want {
			t.Errorf("maxDelay(%v) = %v, want %v", built, got, want)
		}
	}
}

// formatCount counts how often it is formatted.
type formatCount struct{ n *int }

func (f formatCount) String() string { *f.n++; return "resource" }

// The cache's chatter is formatted only when debug logging is on; its errors always are.
func TestCacheLoggerFormatsOnlyWhatItLogs(t *testing.T) {
	var buf bytes.Buffer
	var n int
	quiet := cacheLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelWarn}))}
	quiet.Debugf("respond %v", formatCount{&n})
	quiet.Warnf("stale %v", formatCount{&n})
	if n != 0 || buf.Len() != 0 {
		t.Errorf("at warn level: formatted %d times, logged %q", n, buf.String())
	}
	quiet.Errorf("broken %v", formatCount{&n})
	if n != 1 || !strings.Contains(buf.String(), "broken resource") {
		t.Errorf("an error: formatted %d times, logged %q", n, buf.String())
	}
	buf.Reset()
	loud := cacheLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	loud.Debugf("respond %v", formatCount{&n})
	if !strings.Contains(buf.String(), "level=DEBUG") || !strings.Contains(buf.String(), "respond resource") {
		t.Errorf("at debug level, logged %q", buf.String())
	}
}
