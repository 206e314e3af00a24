package main

import (
	"math"
	"testing"
)

func TestMedianAndPercentile(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median odd = %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median even = %v", got)
	}
	if !math.IsNaN(median(nil)) || !math.IsNaN(percentile(nil, 50)) {
		t.Error("median or percentile of nothing is not NaN")
	}
	xs := []float64{10, 20, 30, 40, 50, 60, 70, 80, 90, 100}
	for q, want := range map[float64]float64{50: 50, 90: 90, 99: 100, 100: 100, 1: 10} {
		if got := percentile(xs, q); got != want {
			t.Errorf("percentile(%v) = %v, want %v", q, got, want)
		}
	}
	in := []float64{3, 1, 2}
	median(in)
	if in[0] != 3 {
		t.Error("median sorted its argument in place")
	}
	if round(1.23456, 2) != 1.23 || !math.IsNaN(round(math.NaN(), 2)) {
		t.Error("round")
	}
}

func TestParseBenchMetrics(t *testing.T) {
	out := `goos: linux
BenchmarkIntake-2   	      20	 712345678 ns/op	       480.0 server-cpu-ms/interval	       220.0 sidecars-cpu-ms/interval	      2000 rows/s
BenchmarkIntake-2   	      20	 712345678 ns/op	       500.0 server-cpu-ms/interval	       230.0 sidecars-cpu-ms/interval	      2200 rows/s
BenchmarkIntakeProcessing-2 	 5	 1 ns/op	 9 heap-MB
PASS
`
	m, err := parseBenchMetrics(out, "BenchmarkIntake")
	if err != nil {
		t.Fatal(err)
	}
	if m["server-cpu-ms/interval"] != 490 || m["rows/s"] != 2100 || m["sidecars-cpu-ms/interval"] != 225 {
		t.Errorf("metrics = %v", m)
	}
	if _, ok := m["heap-MB"]; ok {
		t.Error("another benchmark's metric was read")
	}
	if _, err := parseBenchMetrics("PASS\n", "BenchmarkIntake"); err == nil {
		t.Error("output without the benchmark parsed")
	}
}

func TestParsePprofTop(t *testing.T) {
	out := `File: sluice-proxy
Type: cpu
Showing nodes accounting for 1.50s, 75.00% of 2s total
      flat  flat%   sum%        cum   cum%
     1.07s 53.50% 53.50%      1.07s 53.50%  internal/runtime/syscall/linux.Syscall6
     0.06s  3.00% 56.50%      0.20s 10.00%  net/http.(*conn).serve
         0     0% 56.50%      0.14s  7.00%  context.withCancel (inline)
`
	rows := parsePprofTop(out)
	if len(rows) != 3 {
		t.Fatalf("rows = %+v", rows)
	}
	if rows[0].Function != "internal/runtime/syscall/linux.Syscall6" || rows[0].FlatPct != 53.5 || rows[0].CumPct != 53.5 {
		t.Errorf("row 0 = %+v", rows[0])
	}
	if rows[2].Function != "context.withCancel (inline)" || rows[2].FlatPct != 0 || rows[2].CumPct != 7 {
		t.Errorf("row 2 = %+v", rows[2])
	}
	if len(parsePprofTop("no table here")) != 0 {
		t.Error("rows from output without a table")
	}
}
