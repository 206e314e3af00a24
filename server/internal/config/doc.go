// Package config turns mesh configuration written as Istio YAML into checked Go values, and
// knows what the mesh's resources mean together. It does no I/O and reads no clock.
//
// Three steps, as for any configuration:
//
//  1. Decode. ParseYAML reads one or more documents and checks each against its kind's schema:
//     the istio.io/api protobuf types for the Istio kinds (decoded with protojson, so an unknown
//     field is an error), this package's FaultExperimentSpec and RateLimitSpec for the
//     sluice.dev kinds. Every problem carries the path of the field, such as
//     documents[2].spec.http[0].route[1].weigth.
//  2. Provision. Defaults a spec leaves implicit are filled in (the namespace "default", a
//     fault's percentage, a rate limit's burst), so that the stored spec says what will happen.
//  3. Validate. Validate checks meaning, in the context of the other resources being applied
//     and of those already stored: ranges and formats, references between resources, conflicts,
//     and features Sluice does not support yet.
//
// docs/validation.md lists every rule with an example of its message.
package config
