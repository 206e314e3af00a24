package changes_test

import (
	"context"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/store"
)

const experimentYAML = `apiVersion: sluice.dev/v1alpha1
kind: FaultExperiment
metadata: {name: chaos, namespace: default}
spec:
  host: ratings
  abort: {httpStatus: 503}
  duration: 10s
`

func storedExperiment(t *testing.T, st *store.Store) *config.FaultExperimentSpec {
	t.Helper()
	o, err := st.Get(context.Background(), store.Key{Kind: config.KindFaultExperiment, Namespace: "default", Name: "chaos"})
	if err != nil {
		t.Fatal(err)
	}
	spec, err := config.DecodeSpec(o.Kind, o.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return spec.(*config.FaultExperimentSpec)
}

// A FaultExperiment applied without a start gets the time of the apply, in the committed
// spec and its revision; applying it again keeps that start, and an explicit start is kept.
func TestExperimentStartIsStampedAtApply(t *testing.T) {
	t.Parallel()
	svc, st := newService(t)
	ctx := context.Background()
	before := time.Now().Truncate(time.Second)
	out := apply(t, svc, []byte(experimentYAML))
	after := time.Now()
	spec := storedExperiment(t, st)
	if spec.Start == nil || spec.Start.Before(before) || spec.Start.After(after) {
		t.Fatalf("start = %v, want the time of the apply (between %v and %v)", spec.Start, before, after)
	}
	rev, err := st.GetRevision(ctx, out.Revision)
	if err != nil {
		t.Fatal(err)
	}
	got, err := config.DecodeSpec(config.KindFaultExperiment, rev.Changes[0].After.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if s := got.(*config.FaultExperimentSpec).Start; s == nil || !s.Equal(*spec.Start) {
		t.Errorf("revision %d records start %v, want %v", out.Revision, s, spec.Start)
	}

	again := apply(t, svc, []byte(experimentYAML))
	if again.Revision != 0 || again.Results[0].Action != "unchanged" {
		t.Errorf("applying the same experiment again: revision %d, action %s; want nothing changed", again.Revision, again.Results[0].Action)
	}

	explicit := experimentYAML + "  start: 2030-01-02T03:04:05Z\n"
	apply(t, svc, []byte(explicit))
	if s := storedExperiment(t, st).Start; s == nil || !s.Equal(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)) {
		t.Errorf("explicit start stored as %v", s)
	}
}

// A start finer than PostgreSQL keeps is cut to the microsecond, so that it names its run.
func TestExperimentStartIsCutToMicroseconds(t *testing.T) {
	t.Parallel()
	svc, st := newService(t)
	apply(t, svc, []byte(experimentYAML+"  start: 2030-01-02T03:04:05.123456789Z\n"))
	if s := storedExperiment(t, st).Start; s == nil || !s.Equal(time.Date(2030, 1, 2, 3, 4, 5, 123456000, time.UTC)) {
		t.Errorf("start stored as %v", s)
	}
}
