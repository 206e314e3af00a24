package xxhash

import (
	"strings"
	"testing"
)

// The expected values are those of the reference implementation (xxhsum, and the
// cespare/xxhash Go port), with seeds 0 and 1 (the seed Envoy's Maglev uses for skips).
func TestSum64(t *testing.T) {
	tests := []struct {
		in           string
		seed0, seed1 uint64
	}{
		{"", 0xef46db3751d8e999, 0xd5afba1336a3be4b},
		{"a", 0xd24ec4f1a98c6e5b, 0xdec2bc81c3cd46c6},
		{"abc", 0x44bc2cf5ad770999, 0xbea9ca8199328908},
		{"10.0.0.1:80_0", 0x75041381e7371a08, 0x886565a2d161b779},
		{"httpbin.default.svc.cluster.local", 0x84cdd2601ec0bb0, 0x282a7a535c00ec1},
		{strings.Repeat("sluice", 20), 0xf33992319eb1de86, 0x58287603308a3b40},
	}
	for _, tt := range tests {
		if got := Sum64(tt.in); got != tt.seed0 {
			t.Errorf("Sum64(%q) = %#x, want %#x", tt.in, got, tt.seed0)
		}
		if got := Seeded(tt.in, 1); got != tt.seed1 {
			t.Errorf("Seeded(%q, 1) = %#x, want %#x", tt.in, got, tt.seed1)
		}
	}
	if n := testing.AllocsPerRun(100, func() { Sum64("10.0.0.1:80_0") }); n != 0 {
		t.Errorf("Sum64 allocates %v times", n)
	}
}
