package telemetry

import (
	"context"
	"testing"
	"time"
)

// Flush sends the current counts at once, without waiting for the interval, and reports
// false while no stream is open.
func TestFlushSendsNow(t *testing.T) {
	addr := freeAddr(t)
	rec := NewRecorder(Options{SuccessLogsPerSecond: -1})
	// The interval is far longer than the test: only the stream's first message and Flush
	// send anything.
	slow := func(p *Pusher) { p.interval = time.Hour }

	unreachable := startPusher(t, rec, freeAddr(t), slow)
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if unreachable.Flush(ctx) {
		t.Error("Flush reported a report sent with no server")
	}

	cp, _ := serve(t, addr)
	p := startPusher(t, rec, addr, slow)
	waitFor(t, "the metrics stream", func() bool { return p.Stats().MetricsConnected && cp.numMetricStreams() == 1 })
	recordN(rec, 3, "v1", 200)
	if !p.Flush(context.Background()) {
		t.Fatal("Flush reported nothing sent while connected")
	}
	waitFor(t, "the flushed report", func() bool {
		return equalCounts(cp.requests(0), map[string]float64{"v1/200": 3})
	})
}
