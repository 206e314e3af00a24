package changes

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/store"
)

// stampExperiments gives every FaultExperiment written without a start the time it is
// applied, in the committed spec, so that its revision and history say when it ran. A
// FaultExperiment stored with a start keeps that start when it is written again without one:
// applying the same file twice changes nothing, and does not restart a running experiment.
// (To run one again, delete it and apply it, or give it a new start.) A start finer than a
// microsecond is cut to the microsecond.
func (s *Service) stampExperiments(ctx context.Context, muts []store.Mutation, parsed []*config.Resource) error {
	byKey := map[string]*config.Resource{}
	for _, r := range parsed {
		byKey[r.Key()] = r
	}
	var now time.Time
	for _, m := range muts {
		o := m.Object
		if o == nil || o.Kind != config.KindFaultExperiment {
			continue
		}
		var spec *config.FaultExperimentSpec
		r := byKey[config.KindFaultExperiment+"/"+o.Metadata.Namespace+"/"+o.Metadata.Name]
		if r != nil {
			spec, _ = r.Spec.(*config.FaultExperimentSpec)
		}
		if spec == nil {
			decoded, err := config.DecodeSpec(o.Kind, o.Spec)
			if err != nil {
				return err
			}
			spec = decoded.(*config.FaultExperimentSpec)
		}
		start := spec.Start
		switch {
		case start != nil && start.Equal(start.Truncate(time.Microsecond)):
			continue
		case start != nil:
			// PostgreSQL keeps microseconds: a finer start would not name its run exactly.
			t := start.Truncate(time.Microsecond)
			start = &t
		default:
			stored, err := s.storedStart(ctx, o.Key())
			if err != nil {
				return err
			}
			start = stored
		}
		if start == nil {
			if now.IsZero() {
				// Whole seconds read better in history, and one second early changes nothing.
				now = s.now().UTC().Truncate(time.Second)
			}
			start = &now
		}
		spec.Start = start
		b, err := config.EncodeSpec(spec)
		if err != nil {
			return fmt.Errorf("stamp start of %s: %w", o.Key(), err)
		}
		o.Spec = b
		if r != nil {
			r.SpecJSON = b
		}
	}
	return nil
}

// storedStart returns the start of the stored FaultExperiment k, or nil when there is none.
func (s *Service) storedStart(ctx context.Context, k store.Key) (*time.Time, error) {
	old, err := s.store.Get(ctx, k)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stamp start of %s: %w", k, err)
	}
	spec, err := config.DecodeSpec(old.Kind, old.Spec)
	if err != nil {
		// A stored spec that no longer decodes is replaced as if new.
		return nil, nil
	}
	return spec.(*config.FaultExperimentSpec).Start, nil
}
