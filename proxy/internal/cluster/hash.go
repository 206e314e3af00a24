package cluster

import (
	"math"
	"math/rand/v2"
	"slices"
	"sort"
	"strconv"

	"github.com/sluicemesh/sluice/proxy/internal/xxhash"
)

// Envoy's consistent-hash defaults.
const (
	DefaultMinRingSize     = 1024
	DefaultMaxRingSize     = 8 << 20
	DefaultMaglevTableSize = 65537
)

// Key is a request's hash key for consistent-hash balancing (RING_HASH, MAGLEV), computed
// from the route's hash_policy. Without one (Set false) a hash balancer picks at random, as
// Envoy's does.
type Key struct {
	Hash uint64
	Set  bool
}

// NoKey is the key of a request without a hash.
var NoKey = Key{}

// hashSelector is a Selector that can also pick by hash. attempt, from 0, asks for the
// attempt-th alternative to the endpoint the hash maps to, for a retry that avoids the
// endpoints it tried.
type hashSelector interface {
	Selector
	selectHash(h uint64, attempt int) *Endpoint
}

var (
	_ hashSelector = (*ring)(nil)
	_ hashSelector = (*maglev[uint16])(nil)
)

// normalized returns the endpoints' weights divided by their sum, and the smallest and
// largest of them.
func normalized(eps []*Endpoint) (ws []float64, lo, hi float64) {
	var sum float64
	for _, e := range eps {
		sum += float64(e.Weight)
	}
	lo = math.Inf(1)
	ws = make([]float64, len(eps))
	for i, e := range eps {
		ws[i] = float64(e.Weight) / sum
		lo, hi = min(lo, ws[i]), max(hi, ws[i])
	}
	return ws, lo, hi
}

// ring is a ring hash (Ketama): each endpoint owns points of a 64-bit ring, the hashes of
// "<address>_<i>", and a key goes to the first point at or after its hash.
//
// Unlike Envoy's ring, an endpoint's number of points depends only on its weight relative to
// the heaviest endpoint's, which gets minimum_ring_size points: the ring is at least that
// big, and when an endpoint joins or leaves it only adds or removes its own points. So only
// the keys of the arcs it takes or frees move, about 1/N of them, and never between other
// endpoints. Envoy scales every endpoint's points to the ring's size instead, so a join
// also moves keys between endpoints that stayed (envoyproxy/envoy#22558). Only when the
// ring would pass maximum_ring_size are all counts scaled down to fit.
type ring struct {
	eps    []*Endpoint
	hashes []uint64 // sorted
	owners []uint32 // owners[i] is the index in eps of the point hashes[i]
}

func newRing(eps []*Endpoint, minSize, maxSize uint64) *ring {
	r := &ring{eps: eps}
	if len(eps) == 0 {
		return r
	}
	var heaviest, sum float64
	for _, e := range eps {
		heaviest = max(heaviest, float64(e.Weight))
		sum += float64(e.Weight)
	}
	perWeight := float64(minSize) / heaviest
	if total := perWeight * sum; total > float64(maxSize) {
		perWeight *= float64(maxSize) / total
	}
	type point struct {
		hash  uint64
		owner uint32
	}
	var points []point
	buf := make([]byte, 0, 64)
	for i, e := range eps {
		n := max(1, int(math.Round(perWeight*float64(e.Weight))))
		for j := range n {
			buf = append(append(append(buf[:0], e.Address...), '_'), strconv.Itoa(j)...)
			points = append(points, point{xxhash.Sum64(string(buf)), uint32(i)})
		}
	}
	sort.Slice(points, func(i, j int) bool {
		if points[i].hash != points[j].hash {
			return points[i].hash < points[j].hash
		}
		return eps[points[i].owner].Address < eps[points[j].owner].Address
	})
	r.hashes = make([]uint64, len(points))
	r.owners = make([]uint32, len(points))
	for i, p := range points {
		r.hashes[i], r.owners[i] = p.hash, p.owner
	}
	return r
}

// Select implements Selector: without a key, a random point.
func (r *ring) Select() *Endpoint { return r.selectHash(rand.Uint64(), 0) }

func (r *ring) selectHash(h uint64, attempt int) *Endpoint {
	if len(r.hashes) == 0 {
		return nil
	}
	// The first point at or after h, wrapping around.
	i, _ := slices.BinarySearch(r.hashes, h)
	if i == len(r.hashes) {
		i = 0
	}
	if attempt > 0 {
		// As Envoy does for a retry avoiding its previous endpoints: step along the ring.
		i = (i + attempt) % len(r.hashes)
	}
	return r.eps[r.owners[i]]
}

// maglev is Envoy's Maglev table: a prime-sized table filled by each endpoint's permutation of
// the slots (offset and skip from its address's hash), in turns proportional to its weight.
// A key goes to the slot of its hash. Lookups are one division; when an endpoint joins, about
// 1/N of the slots change hands. Slots hold endpoint indexes of the smallest type that fits.
type maglev[T uint16 | uint32] struct {
	eps   []*Endpoint
	table []T
}

func newMaglev(eps []*Endpoint, size uint64) Selector {
	if len(eps) <= math.MaxUint16 {
		return buildMaglev[uint16](eps, size)
	}
	return buildMaglev[uint32](eps, size)
}

func buildMaglev[T uint16 | uint32](eps []*Endpoint, size uint64) *maglev[T] {
	m := &maglev[T]{eps: eps}
	if len(eps) == 0 {
		return m
	}
	ws, _, hi := normalized(eps)
	// Envoy fills in the order of the endpoints' addresses, so that every proxy builds the
	// same table whatever order EDS lists them in.
	order := make([]int, len(eps))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		switch {
		case eps[a].Address < eps[b].Address:
			return -1
		case eps[a].Address > eps[b].Address:
			return 1
		}
		return 0
	})
	type entry struct {
		index              int
		offset, skip, next uint64
		weight, target     float64
	}
	entries := make([]entry, len(order))
	for i, idx := range order {
		a := eps[idx].Address
		entries[i] = entry{index: idx, offset: xxhash.Sum64(a) % size, skip: xxhash.Seeded(a, 1)%(size-1) + 1, weight: ws[idx]}
	}
	taken := make([]bool, size)
	m.table = make([]T, size)
	filled := uint64(0)
	for iteration := 1.0; filled < size; iteration++ {
		for i := range entries {
			if filled == size {
				break
			}
			e := &entries[i]
			// An endpoint of the largest weight takes a slot every turn; one of a third of
			// it, every third turn.
			if iteration*e.weight < e.target {
				continue
			}
			e.target += hi
			c := (e.offset + e.skip*e.next) % size
			for taken[c] {
				e.next++
				c = (e.offset + e.skip*e.next) % size
			}
			taken[c] = true
			m.table[c] = T(e.index)
			e.next++
			filled++
		}
	}
	return m
}

// Select implements Selector: without a key, a random slot.
func (m *maglev[T]) Select() *Endpoint { return m.selectHash(rand.Uint64(), 0) }

func (m *maglev[T]) selectHash(h uint64, attempt int) *Endpoint {
	if len(m.table) == 0 {
		return nil
	}
	if attempt > 0 {
		// As Envoy does for a retry avoiding its previous endpoints: a hash with most bits
		// changed.
		h ^= ^uint64(0) - uint64(attempt) + 1
	}
	return m.eps[m.table[h%uint64(len(m.table))]]
}

// isPrime reports whether n is prime (Maglev's table size must be).
func isPrime(n uint64) bool {
	if n < 2 {
		return false
	}
	for d := uint64(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}
