package main

import (
	"bufio"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// median returns the median of xs (the mean of the middle two for an even count), or NaN for
// none.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// percentile returns the nearest-rank q-th percentile (0 < q ≤ 100) of xs, or NaN for none.
func percentile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	rank := int(math.Ceil(q / 100 * float64(len(s))))
	rank = min(max(rank, 1), len(s))
	return s[rank-1]
}

// round rounds x to digits decimals, so that results.json holds no false precision.
func round(x float64, digits int) float64 {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return x
	}
	p := math.Pow(10, float64(digits))
	return math.Round(x*p) / p
}

// parseBenchMetrics reads the metrics of the benchmark named name from `go test -bench`
// output: unit → value, such as "rows/s" → 2333. With -count above 1 the median of the runs
// is returned.
func parseBenchMetrics(out, name string) (map[string]float64, error) {
	runs := map[string][]float64{}
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 {
			continue
		}
		bench, _, _ := strings.Cut(f[0], "-") // BenchmarkIntake-2
		if bench != name {
			continue
		}
		if _, err := strconv.Atoi(f[1]); err != nil {
			continue // not a result line
		}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				return nil, fmt.Errorf("parse %s result: value %q of %s: %w", name, f[i], f[i+1], err)
			}
			runs[f[i+1]] = append(runs[f[i+1]], v)
		}
	}
	if len(runs) == 0 {
		return nil, fmt.Errorf("parse benchmark output: no result line for %s", name)
	}
	m := map[string]float64{}
	for unit, vs := range runs {
		m[unit] = median(vs)
	}
	return m, nil
}

// ProfileEntry is one row of `go tool pprof -top`.
type ProfileEntry struct {
	Function string  `json:"function"`
	FlatPct  float64 `json:"flat_percent"`
	CumPct   float64 `json:"cum_percent"`
}

// parsePprofTop reads the rows of `go tool pprof -top` output:
//
//	flat  flat%   sum%        cum   cum%
//	1.20s 12.00% 12.00%      2.50s 25.00%  runtime.mallocgc
func parsePprofTop(out string) []ProfileEntry {
	var rows []ProfileEntry
	inTable := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) >= 5 && f[0] == "flat" && f[1] == "flat%" {
			inTable = true
			continue
		}
		if !inTable || len(f) < 6 {
			continue
		}
		flat, err1 := strconv.ParseFloat(strings.TrimSuffix(f[1], "%"), 64)
		cum, err2 := strconv.ParseFloat(strings.TrimSuffix(f[4], "%"), 64)
		if err1 != nil || err2 != nil {
			continue
		}
		rows = append(rows, ProfileEntry{Function: strings.Join(f[5:], " "), FlatPct: flat, CumPct: cum})
	}
	return rows
}
