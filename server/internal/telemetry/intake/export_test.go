package intake

import (
	dto "github.com/prometheus/client_model/go"

	"github.com/sluicemesh/sluice/server/internal/telemetry"
)

// Converter is the stream's report converter, for the benchmarks.
type Converter = converter

// NewConverter returns a converter with empty buffers.
func NewConverter() *Converter { return &converter{} }

// Convert converts one message's metric families.
func (c *converter) Convert(fams []*dto.MetricFamily) []telemetry.Cumulative { return c.convert(fams) }
