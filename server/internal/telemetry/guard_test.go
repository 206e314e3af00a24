package telemetry_test

import (
	"testing"
	"time"

	"github.com/sluicemesh/sluice/server/internal/telemetry"
)

func TestDestinationErrors(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0).UTC()
	clk := &clock{t: t0}
	a := newAggregator(t, openStore(t), clk)
	const ratings = "ratings.default.svc.cluster.local"
	series := func(reporter, code, flags, dest string) telemetry.Series {
		return telemetry.Series{
			Reporter: reporter, SourceWorkload: "reviews-v1", SourceNamespace: "default", SourceVersion: "v1",
			DestinationService: dest, DestinationWorkload: "ratings-v1", DestinationVersion: "v1",
			ResponseCode: code, ResponseFlags: flags, Protocol: "http",
		}
	}
	rec := func(s telemetry.Series, n int64) {
		a.Record(telemetry.Origin{NodeID: "n"}, []telemetry.Sample{{Series: s, Stats: telemetry.Stats{Requests: n}}})
	}
	// Old traffic, outside the window asked for below.
	rec(series(telemetry.ReporterDestination, "500", "-", ratings), 1000)
	clk.Set(t0.Add(30 * time.Second))
	rec(series(telemetry.ReporterDestination, "200", "-", ratings), 80)
	rec(series(telemetry.ReporterDestination, "503", "-", ratings), 20)
	// The callee reported these too: the caller's copies are not counted again.
	rec(series(telemetry.ReporterSource, "200", "-", ratings), 80)
	// Injected aborts never reach the callee and are left out.
	rec(series(telemetry.ReporterSource, "503", "FI", ratings), 50)
	// A connection failure only the caller saw counts.
	rec(series(telemetry.ReporterSource, "503", "UF", ratings), 5)
	// Another service.
	rec(series(telemetry.ReporterDestination, "500", "-", "details.default.svc.cluster.local"), 7)
	clk.Set(t0.Add(31 * time.Second))

	tests := []struct {
		name                 string
		host                 string
		window               time.Duration
		wantReqs, wantErrors int64
	}{
		{"last 10s", ratings, 10 * time.Second, 105, 25},
		{"window too short is a second", ratings, 0, 0, 0},
		{"whole minute includes the old errors", ratings, time.Minute, 1105, 1025},
		{"another host", "details.default.svc.cluster.local", 10 * time.Second, 7, 7},
		{"unknown host", "nope.default.svc.cluster.local", 10 * time.Second, 0, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			reqs, errs := a.DestinationErrors(tc.host, tc.window)
			if reqs != tc.wantReqs || errs != tc.wantErrors {
				t.Errorf("DestinationErrors = %d requests, %d errors; want %d, %d", reqs, errs, tc.wantReqs, tc.wantErrors)
			}
		})
	}
}
