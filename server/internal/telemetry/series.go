package telemetry

import (
	"maps"
	"slices"
	"time"
)

// GroupBy says how a time-series query splits its traffic into series.
type GroupBy string

// Groupings of a time-series query.
const (
	// GroupNone sums everything selected into one series.
	GroupNone GroupBy = ""
	// GroupService gives a series per destination service.
	GroupService GroupBy = "service"
	// GroupVersion gives a series per destination service and version.
	GroupVersion GroupBy = "version"
	// GroupSource gives a series per caller ("<namespace>/<workload>", or "unknown").
	GroupSource GroupBy = "source"
)

// Valid reports whether g is one of the groupings.
func (g GroupBy) Valid() bool {
	switch g {
	case GroupNone, GroupService, GroupVersion, GroupSource:
		return true
	}
	return false
}

// Point is a time series' value over [T, T+step).
type Point struct {
	T time.Time `json:"t"`
	Summary
}

// TimeSeries is the traffic of one group over time.
type TimeSeries struct {
	// Labels name the group: "service", "version", "source"; empty for GroupNone.
	Labels map[string]string `json:"labels"`
	Points []Point           `json:"points"`
}

// labels returns the group of s under g.
func (g GroupBy) labels(s *Series) map[string]string {
	switch g {
	case GroupService:
		return map[string]string{"service": s.DestinationService}
	case GroupVersion:
		return map[string]string{"service": s.DestinationService, "version": s.DestinationVersion}
	case GroupSource:
		if isUnknown(s.SourceWorkload) {
			return map[string]string{"source": Unknown}
		}
		return map[string]string{"source": s.SourceNamespace + "/" + s.SourceWorkload}
	}
	return map[string]string{}
}

type groupKey struct{ a, b string }

func (g GroupBy) key(s *Series) groupKey {
	switch g {
	case GroupService:
		return groupKey{s.DestinationService, ""}
	case GroupVersion:
		return groupKey{s.DestinationService, s.DestinationVersion}
	case GroupSource:
		if isUnknown(s.SourceWorkload) {
			return groupKey{Unknown, ""}
		}
		return groupKey{s.SourceNamespace, s.SourceWorkload}
	}
	return groupKey{}
}

// AlignDown returns t rounded down to a multiple of step since the Unix epoch.
func AlignDown(t time.Time, step time.Duration) time.Time {
	s := int64(step / time.Second)
	if s <= 0 {
		return t
	}
	u := t.Unix()
	u -= ((u % s) + s) % s
	return time.Unix(u, 0).UTC()
}

// BuildTimeSeries sums rows (as reported: Select runs first) into one point per step from
// from to to, per group. from and to must be multiples of step (see AlignDown); a row counts
// in the step holding its Bucket. Every series has every point, zero where there was no
// traffic, so that charts line up. With GroupNone there is always exactly one series.
func BuildTimeSeries(rows []Row, from, to time.Time, step time.Duration, by GroupBy) []TimeSeries {
	n := 0
	if step > 0 && to.After(from) {
		n = int(to.Sub(from) / step)
	}
	type group struct {
		labels map[string]string
		stats  []Stats
	}
	groups := map[groupKey]*group{}
	get := func(s *Series) *group {
		k := by.key(s)
		g := groups[k]
		if g == nil {
			g = &group{labels: by.labels(s), stats: make([]Stats, n)}
			groups[k] = g
		}
		return g
	}
	if by == GroupNone {
		get(&Series{})
	}
	for _, r := range Select(rows) {
		if r.Bucket.Before(from) || !r.Bucket.Before(to) || r.Stats.IsZero() {
			continue
		}
		i := int(r.Bucket.Sub(from) / step)
		get(&r.Series).stats[i].Add(&r.Stats)
	}

	out := make([]TimeSeries, 0, len(groups))
	for _, g := range groups {
		ts := TimeSeries{Labels: g.labels, Points: make([]Point, n)}
		for i := range g.stats {
			ts.Points[i] = Point{T: from.Add(time.Duration(i) * step), Summary: Summarize(&g.stats[i], step.Seconds())}
		}
		out = append(out, ts)
	}
	slices.SortFunc(out, func(a, b TimeSeries) int {
		return slices.Compare(sortedValues(a.Labels), sortedValues(b.Labels))
	})
	return out
}

// sortedValues lists a label set's values in the order of its sorted names.
func sortedValues(m map[string]string) []string {
	keys := slices.Sorted(maps.Keys(m))
	out := make([]string, len(keys))
	for i, k := range keys {
		out[i] = m[k]
	}
	return out
}
