package filter

import (
	"fmt"
	"math/rand/v2"

	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// Percent is a compiled envoy.type.v3.FractionalPercent: numerator out of denominator. The
// zero value is 0%.
type Percent struct {
	num, den uint32
}

// Always is 100%.
var Always = Percent{num: 1, den: 1}

// CompilePercent compiles fp; nil is 0%, as Envoy reads an unset percentage.
func CompilePercent(fp *typev3.FractionalPercent) (Percent, error) {
	if fp == nil {
		return Percent{}, nil
	}
	var den uint32
	switch fp.GetDenominator() {
	case typev3.FractionalPercent_HUNDRED:
		den = 100
	case typev3.FractionalPercent_TEN_THOUSAND:
		den = 10_000
	case typev3.FractionalPercent_MILLION:
		den = 1_000_000
	default:
		return Percent{}, fmt.Errorf("denominator: %v is not HUNDRED, TEN_THOUSAND or MILLION", fp.GetDenominator())
	}
	// Envoy caps the numerator at the denominator.
	return Percent{num: min(fp.GetNumerator(), den), den: den}, nil
}

// Never reports whether p is 0%: a caller can skip all work.
func (p Percent) Never() bool { return p.num == 0 }

// Hit draws whether this request is in the fraction. 0% and 100% draw nothing.
func (p Percent) Hit() bool {
	switch {
	case p.num == 0:
		return false
	case p.num >= p.den:
		return true
	}
	return rand.Uint32N(p.den) < p.num
}

// String formats p as a percentage, such as "12.5%".
func (p Percent) String() string {
	if p.den == 0 {
		return "0%"
	}
	return fmt.Sprintf("%g%%", float64(p.num)*100/float64(p.den))
}
