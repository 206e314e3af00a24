package cluster

import (
	"fmt"
	"math"
	"testing"

	"github.com/sluicemesh/sluice/proxy/internal/xxhash"
)

func hashCluster(policy Policy, n int) *Cluster {
	cfg := &Config{Name: "c", Discovery: Static, Policy: policy, Limits: DefaultLimits,
		MinRingSize: DefaultMinRingSize, MaxRingSize: DefaultMaxRingSize, MaglevTableSize: DefaultMaglevTableSize,
		Static: &Assignment{}}
	for i := range n {
		cfg.Static.Endpoints = append(cfg.Static.Endpoints, EndpointSpec{Address: fmt.Sprintf("10.1.%d.%d:8080", i/250, i%250+1), Weight: 1})
	}
	var pools Pools
	return New(cfg, nil, nil, &pools)
}

func keyOf(i int) Key { return Key{Hash: xxhash.Sum64(fmt.Sprintf("user-%d", i)), Set: true} }

// TestHashIsStableWhenAnEndpointJoins is consistent hashing's promise: when an eleventh
// endpoint joins ten, about one key in eleven moves, and (for a ring) only to the newcomer.
func TestHashIsStableWhenAnEndpointJoins(t *testing.T) {
	const keys = 20_000
	for _, policy := range []Policy{RingHash, Maglev} {
		t.Run(policy.String(), func(t *testing.T) {
			before, after := hashCluster(policy, 10), hashCluster(policy, 11)
			newcomer := after.Endpoints[10].Address
			moved, toNewcomer := 0, 0
			for i := range keys {
				a, b := before.PickKey(keyOf(i)).Address, after.PickKey(keyOf(i)).Address
				if a != b {
					moved++
					if b == newcomer {
						toNewcomer++
					}
				}
			}
			share := float64(moved) / keys
			// Ideal 1/11 = 9.1%; a 1024-point ring is within a few points of it.
			if share < 0.5/11 || share > 1.6/11 {
				t.Errorf("%.1f%% of keys moved, want about %.1f%%", share*100, 100.0/11)
			}
			if policy == RingHash && toNewcomer != moved {
				t.Errorf("%d keys moved between old endpoints; on a ring they only move to the newcomer", moved-toNewcomer)
			}
			if policy == Maglev && float64(toNewcomer) < 0.9*float64(moved) {
				t.Errorf("only %d of %d moved keys went to the newcomer", toNewcomer, moved)
			}
			t.Logf("%s: %.2f%% of %d keys moved, %d to the newcomer", policy, share*100, keys, toNewcomer)
		})
	}
}

func TestHashSpreadsAndFollowsWeights(t *testing.T) {
	const keys = 40_000
	for _, policy := range []Policy{RingHash, Maglev} {
		t.Run(policy.String(), func(t *testing.T) {
			c := hashCluster(policy, 4)
			counts := map[string]int{}
			for i := range keys {
				counts[c.PickKey(keyOf(i)).Address]++
			}
			for a, n := range counts {
				if share := float64(n) / keys; math.Abs(share-0.25) > 0.06 {
					t.Errorf("%s got %.1f%% of keys, want about 25%%", a, share*100)
				}
			}
			// Weights 1:3.
			cfg := *c.Config
			cfg.Static = &Assignment{Endpoints: []EndpointSpec{{"10.2.0.1:80", 1}, {"10.2.0.2:80", 3}}}
			var pools Pools
			w := New(&cfg, nil, nil, &pools)
			heavy := 0
			for i := range keys {
				if w.PickKey(keyOf(i)).Address == "10.2.0.2:80" {
					heavy++
				}
			}
			if share := float64(heavy) / keys; math.Abs(share-0.75) > 0.06 {
				t.Errorf("weight 3 of 4 got %.1f%%, want about 75%%", share*100)
			}
		})
	}
}

func TestHashIsDeterministic(t *testing.T) {
	for _, policy := range []Policy{RingHash, Maglev} {
		a, b := hashCluster(policy, 5), hashCluster(policy, 5)
		// The same endpoints listed in another order build the same mapping.
		rev := *b.Config
		rev.Static = &Assignment{}
		for i := len(b.Config.Static.Endpoints) - 1; i >= 0; i-- {
			rev.Static.Endpoints = append(rev.Static.Endpoints, b.Config.Static.Endpoints[i])
		}
		var pools Pools
		r := New(&rev, nil, nil, &pools)
		for i := range 2000 {
			k := keyOf(i)
			if x, y, z := a.PickKey(k).Address, b.PickKey(k).Address, r.PickKey(k).Address; x != y || x != z {
				t.Fatalf("%s: key %d maps to %s, %s and %s", policy, i, x, y, z)
			}
		}
		// A retry avoiding its endpoint gets another one, from the same key.
		k := keyOf(1)
		first := a.PickKey(k)
		if alt := a.PickAvoiding(k, []*Endpoint{first}, 5); alt == first {
			t.Errorf("%s: the retry got the same endpoint", policy)
		}
		// Without a key, a hash balancer spreads requests at random.
		seen := map[*Endpoint]bool{}
		for range 200 {
			seen[a.PickKey(NoKey)] = true
		}
		if len(seen) != 5 {
			t.Errorf("%s without a key reached %d of 5 endpoints", policy, len(seen))
		}
	}
}

func TestRingSize(t *testing.T) {
	// The heaviest endpoint gets minimum_ring_size points, the others in proportion to
	// their weights, all scaled down only to fit maximum_ring_size.
	eps := func(weights ...uint32) []*Endpoint {
		var out []*Endpoint
		for i, w := range weights {
			out = append(out, &Endpoint{Address: fmt.Sprintf("10.0.0.%d:80", i+1), Weight: w, load: &load{}})
		}
		return out
	}
	for _, tt := range []struct {
		eps      []*Endpoint
		min, max uint64
		want     int
	}{
		{eps(1, 1, 1), 1024, DefaultMaxRingSize, 3 * 1024},
		{eps(1, 3), 1024, DefaultMaxRingSize, 341 + 1024},
		{eps(1, 1, 1), 1024, 600, 600},
		{eps(5), 16, DefaultMaxRingSize, 16},
	} {
		if got := len(newRing(tt.eps, tt.min, tt.max).hashes); got != tt.want {
			t.Errorf("%d endpoints, min %d max %d: %d points, want %d", len(tt.eps), tt.min, tt.max, got, tt.want)
		}
	}
}

func BenchmarkPickKey(b *testing.B) {
	for _, policy := range []Policy{RingHash, Maglev} {
		b.Run(policy.String(), func(b *testing.B) {
			c := hashCluster(policy, 16)
			k := keyOf(42)
			b.ReportAllocs()
			for b.Loop() {
				c.PickKey(k)
			}
		})
	}
}
