package telemetry

import (
	"encoding/binary"
	"hash/maphash"
	"maps"
	"math"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	dto "github.com/prometheus/client_model/go"
)

// Defaults for Options.
const (
	// DefaultMaxSeries is the number of distinct label sets a Recorder holds when
	// Options.MaxSeries is zero. A series costs about 1.3 KB (its counters, its map entries
	// and its rendered labels), so the cap bounds the memory at about 13 MB, far above what
	// a sidecar normally needs: its peers times their versions times the response codes
	// and flags in use.
	DefaultMaxSeries = 10000
	// DefaultSuccessLogsPerSecond is how many successful requests per second are sampled into
	// the access log when Options.SuccessLogsPerSecond is zero.
	DefaultSuccessLogsPerSecond = 50
	// DefaultLogQueue is the number of access-log entries waiting for the Pusher when
	// Options.LogQueue is zero. An entry takes 352 bytes and the queue has two buffers, so
	// about 360 KB once both were filled.
	DefaultLogQueue = 512
)

// Options configures a Recorder. The zero value is ready to use.
type Options struct {
	// MaxSeries caps the distinct label sets kept. A request with a new label set beyond it
	// is counted in the one overflow series, whose labels all read "other", and its label set
	// in sluice_telemetry_dropped_label_sets_total. Zero means DefaultMaxSeries.
	MaxSeries int
	// SuccessLogsPerSecond caps the successful requests copied into the access log: the first
	// ones of every second (by the time each request ended) are taken. Errors (a 5xx, any
	// response flag, a gRPC status that HTTP maps to a 5xx) are always taken. Zero means
	// DefaultSuccessLogsPerSecond; a negative value logs errors only.
	SuccessLogsPerSecond int
	// LogQueue is how many access-log entries wait for the Pusher. When it is full the
	// oldest entry is dropped and counted. Zero means DefaultLogQueue.
	LogQueue int
}

// Recorder holds the request metrics of one proxy. Create it with NewRecorder; all its
// methods are safe for concurrent use.
//
// Series are found through a map that Record reads without a lock: an immutable map from a
// label set's 64-bit hash to its series, behind an atomic pointer. (One maphash call over
// the label values costs half of what a Go map spends hashing a struct of nine strings; the
// series' full label set is compared after the lookup, so a collision costs speed, never
// correctness.) A new label set goes first into a list of pending series under a mutex;
// after as many lookups have missed the immutable map as there are series, the pending ones
// are merged into a new immutable map (as sync.Map promotes its dirty map), so a request pays
// for the lock only while its label set is new, and the copies cost O(1) per miss overall.
// Once MaxSeries label sets are held the map is published as full and never changes again:
// an unknown label set then goes to the overflow series without taking the lock either.
type Recorder struct {
	max        int
	successCap uint64
	seed       maphash.Seed

	read     atomic.Pointer[readOnly]
	overflow *series
	// overflowUsed is set once the overflow series counted a request; it is listed from
	// then on.
	overflowUsed atomic.Bool
	// dropped is a bitmap of the hashes of the refused label sets, from which
	// DroppedLabelSets estimates their number (linear counting), in fixed memory and without
	// a lock.
	dropped   [dropWords]atomic.Uint64
	successes window
	logs      logQueue

	mu      sync.Mutex
	byHash  map[uint64][]*series // every series, by hash; more than one only on a collision
	all     []*series            // every series but the overflow one, in creation order
	pending []*series            // series not yet in read
	misses  int                  // lookups that missed read since it was published
	// view is every series in exposition order, rendered; rebuilt when one is added.
	view  []*series
	pairs map[[2]string]*dto.LabelPair // interned label pairs for the Pusher's messages
}

type readOnly struct {
	m map[uint64]*series
	// full says MaxSeries label sets are held: any label set not found is refused, unless
	// collided says some series lost its slot in m to another with the same hash.
	full, collided bool
}

// labelKey is a request's label set: fixed in size and comparable, so building one
// allocates nothing.
type labelKey struct {
	srcWorkload, srcNamespace, srcVersion, srcApp     string
	dstService, dstWorkload, dstNamespace, dstVersion string
	dstApp                                            string
	grpcStatus                                        uint32 // 0 unless protocol is gRPC
	flags                                             Flags
	code                                              uint16
	reporter                                          Reporter
	protocol                                          Protocol
	security                                          Security
}

// series is the counters of one label set. Only atomics change after creation.
type series struct {
	key      labelKey
	hash     uint64
	overflow bool
	// created is when the series began counting: Prometheus's created timestamp, which
	// tells a reader a restart (new counters) from growth.
	created time.Time

	// Histograms keep per-bucket counts (see observe); istio_requests_total is the count
	// of the duration histogram, so it always agrees with it.
	duration [numDuration]atomic.Uint64
	durSum   atomic.Uint64 // nanoseconds
	reqSize  [numSize]atomic.Uint64
	reqSum   atomic.Uint64
	respSize [numSize]atomic.Uint64
	respSum  atomic.Uint64

	// text is the rendered label list (`reporter="source",...`) and pairs the same as proto
	// label pairs. Both are set once under Recorder.mu, before the series is first listed
	// in a view, and only read afterwards.
	text  string
	pairs []*dto.LabelPair
}

// NewRecorder returns an empty Recorder.
func NewRecorder(o Options) *Recorder {
	// Defaults: a cap is always needed so memory is bounded; logging some successes makes the
	// tap view useful on a quiet mesh; the queue absorbs a second of a moderate error burst.
	if o.MaxSeries <= 0 {
		o.MaxSeries = DefaultMaxSeries
	}
	if o.SuccessLogsPerSecond == 0 {
		o.SuccessLogsPerSecond = DefaultSuccessLogsPerSecond
	}
	if o.LogQueue <= 0 {
		o.LogQueue = DefaultLogQueue
	}
	r := &Recorder{
		max:      o.MaxSeries,
		seed:     maphash.MakeSeed(),
		overflow: &series{overflow: true, created: time.Now()},
		byHash:   map[uint64][]*series{},
		pairs:    map[[2]string]*dto.LabelPair{},
		logs:     logQueue{size: o.LogQueue, ready: make(chan struct{}, 1)},
	}
	if o.SuccessLogsPerSecond > 0 {
		r.successCap = min(uint64(o.SuccessLogsPerSecond), maxPerSecond)
	}
	r.read.Store(&readOnly{m: map[uint64]*series{}})
	return r
}

// Record counts one finished request. It never blocks on I/O and, for a label set seen
// before, takes no lock and allocates nothing. Call it once per request, after the response
// ended (or failed).
func (r *Recorder) Record(q Request) {
	k := labelKey{
		srcWorkload:  orUnknown(q.SourceWorkload),
		srcNamespace: orUnknown(q.SourceNamespace),
		srcVersion:   orUnknown(q.SourceVersion),
		srcApp:       orUnknown(q.SourceApp),
		dstService:   orUnknown(q.DestinationService),
		dstWorkload:  orUnknown(q.DestinationWorkload),
		dstNamespace: orUnknown(q.DestinationNamespace),
		dstVersion:   orUnknown(q.DestinationVersion),
		dstApp:       orUnknown(q.DestinationApp),
		flags:        q.Flags,
		reporter:     q.Reporter,
		protocol:     q.Protocol,
		security:     q.Security,
	}
	if q.ResponseCode > 0 && q.ResponseCode < 1000 {
		k.code = uint16(q.ResponseCode)
	}
	if q.Protocol == ProtocolGRPC {
		k.grpcStatus = q.GRPCStatus
	}

	h := k.sum(r.seed)
	ro := r.read.Load()
	s := ro.m[h]
	if s == nil || s.key != k {
		if ro.full && !ro.collided {
			s = r.refuse(&k)
		} else {
			s = r.miss(&k, h)
		}
	}
	d := max(q.Duration, 0)
	reqB, respB := max(q.RequestBytes, 0), max(q.ResponseBytes, 0)
	observe(s.duration[:], &s.durSum, durationBucket(d), uint64(d))
	observe(s.reqSize[:], &s.reqSum, sizeBucket(reqB), uint64(reqB))
	observe(s.respSize[:], &s.respSum, sizeBucket(respB), uint64(respB))

	if isError(&q) {
		r.logs.push(&q)
	} else if r.successCap > 0 && r.successes.take(endSecond(&q), r.successCap) {
		r.logs.push(&q)
	}
}

// endSecond returns the Unix second in which q ended.
func endSecond(q *Request) int64 {
	if q.Start.IsZero() {
		return time.Now().Unix()
	}
	return q.Start.Add(q.Duration).Unix()
}

// sum hashes the label set: its values, each followed by a byte no UTF-8 string holds, are
// gathered on the stack and hashed in one call.
func (k *labelKey) sum(seed maphash.Seed) uint64 {
	var buf [320]byte
	b := buf[:0]
	for _, s := range [...]string{k.srcWorkload, k.srcNamespace, k.srcVersion, k.srcApp,
		k.dstService, k.dstWorkload, k.dstNamespace, k.dstVersion, k.dstApp} {
		if len(b)+len(s) >= len(buf)-16 {
			return k.sumLong(seed)
		}
		b = append(b, s...)
		b = append(b, 0xff)
	}
	b = binary.LittleEndian.AppendUint32(b, k.grpcStatus)
	b = binary.LittleEndian.AppendUint32(b, uint32(k.flags))
	b = binary.LittleEndian.AppendUint16(b, k.code)
	b = append(b, byte(k.reporter), byte(k.protocol), byte(k.security))
	return maphash.Bytes(seed, b)
}

// sumLong is sum for label sets too long for its buffer: the same bytes, streamed.
func (k *labelKey) sumLong(seed maphash.Seed) uint64 {
	var h maphash.Hash
	h.SetSeed(seed)
	for _, s := range [...]string{k.srcWorkload, k.srcNamespace, k.srcVersion, k.srcApp,
		k.dstService, k.dstWorkload, k.dstNamespace, k.dstVersion, k.dstApp} {
		h.WriteString(s)
		h.WriteByte(0xff)
	}
	var b [13]byte
	binary.LittleEndian.PutUint32(b[0:], k.grpcStatus)
	binary.LittleEndian.PutUint32(b[4:], uint32(k.flags))
	binary.LittleEndian.PutUint16(b[8:], k.code)
	b[10], b[11], b[12] = byte(k.reporter), byte(k.protocol), byte(k.security)
	h.Write(b[:])
	return h.Sum64()
}

// miss finds or creates the series of a label set that the published map did not give.
func (r *Recorder) miss(k *labelKey, h uint64) *series {
	r.mu.Lock()
	defer r.mu.Unlock()
	var s *series
	for _, c := range r.byHash[h] {
		if c.key == *k {
			s = c
			break
		}
	}
	if s == nil {
		if len(r.all) >= r.max {
			return r.refuse(k)
		}
		s = &series{key: *k, hash: h, created: time.Now()}
		r.byHash[h] = append(r.byHash[h], s)
		r.all = append(r.all, s)
		r.pending = append(r.pending, s)
	} else if ro := r.read.Load(); ro.m[h] == s {
		return s // published meanwhile
	}
	r.misses++
	if r.misses >= len(r.all) || (len(r.all) >= r.max && len(r.pending) > 0) {
		r.publishLocked()
	}
	return s
}

// publishLocked merges the pending series into a new published map.
func (r *Recorder) publishLocked() {
	ro := r.read.Load()
	m := make(map[uint64]*series, len(ro.m)+len(r.pending))
	maps.Copy(m, ro.m)
	collided := ro.collided
	for _, s := range r.pending {
		if _, taken := m[s.hash]; taken {
			collided = true // s stays reachable through byHash, under the lock
			continue
		}
		m[s.hash] = s
	}
	r.read.Store(&readOnly{m: m, full: len(r.all) >= r.max, collided: collided})
	clear(r.pending)
	r.pending = r.pending[:0]
	r.misses = 0
}

// dropWords sizes the refused-label-set bitmap: 2^16 bits (8 KB) estimate up to several
// hundred thousand distinct label sets, within about 1%.
const (
	dropBits  = 1 << 16
	dropWords = dropBits / 64
)

// refuse returns the overflow series for a label set over the cap, and marks the label set
// in the bitmap of refused ones.
func (r *Recorder) refuse(k *labelKey) *series {
	h := k.fnv() % dropBits
	w, bit := &r.dropped[h/64], uint64(1)<<(h%64)
	if w.Load()&bit == 0 {
		w.Or(bit)
	}
	if !r.overflowUsed.Load() {
		r.overflowUsed.Store(true)
	}
	return r.overflow
}

// droppedLabelSets estimates how many distinct label sets were refused: n = -m·ln(z/m) for m
// bits of which z are still zero. For tens of label sets it is exact unless two share a bit
// (FNV-1a is deterministic, so a test either always or never sees that); for hundreds of
// thousands it is within about 1%.
func (r *Recorder) droppedLabelSets() uint64 {
	set := 0
	for i := range r.dropped {
		set += bits.OnesCount64(r.dropped[i].Load())
	}
	if set == 0 {
		return 0
	}
	zero := dropBits - set
	if zero == 0 {
		zero = 1 // saturated: report the estimate's ceiling
	}
	return uint64(math.Round(-dropBits * math.Log(float64(zero)/dropBits)))
}

// fnv is FNV-1a over the label set. Only refused label sets are hashed, so plain bytewise
// hashing is fast enough; being deterministic keeps the tests' estimates exact.
func (k *labelKey) fnv() uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for _, s := range [...]string{k.srcWorkload, k.srcNamespace, k.srcVersion, k.srcApp,
		k.dstService, k.dstWorkload, k.dstNamespace, k.dstVersion, k.dstApp} {
		for i := 0; i < len(s); i++ {
			h = (h ^ uint64(s[i])) * prime
		}
		h = (h ^ 0xff) * prime // a byte no UTF-8 string holds, so ("ab","c") ≠ ("a","bc")
	}
	for _, v := range [...]uint64{uint64(k.grpcStatus), uint64(k.flags), uint64(k.code),
		uint64(k.reporter), uint64(k.protocol), uint64(k.security)} {
		for range 8 {
			h = (h ^ (v & 0xff)) * prime
			v >>= 8
		}
	}
	return h
}

// labelNames are the labels of every Istio metric, in the order they are printed.
var labelNames = [...]string{"reporter", "source_workload", "source_workload_namespace",
	"source_app", "source_version", "destination_service", "destination_workload",
	"destination_workload_namespace", "destination_app", "destination_version",
	"request_protocol", "response_code", "grpc_response_status", "response_flags",
	"connection_security_policy"}

const numLabels = len(labelNames)

// other is every label's value in the overflow series.
const other = "other"

// values returns the label values of s, in the order of labelNames.
func (s *series) values() [numLabels]string {
	if s.overflow {
		var v [numLabels]string
		for i := range v {
			v[i] = other
		}
		return v
	}
	k := &s.key
	grpc := ""
	if k.protocol == ProtocolGRPC {
		grpc = strconv.FormatUint(uint64(k.grpcStatus), 10)
	}
	return [numLabels]string{k.reporter.String(), k.srcWorkload, k.srcNamespace, k.srcApp,
		k.srcVersion, k.dstService, k.dstWorkload, k.dstNamespace, k.dstApp, k.dstVersion,
		k.protocol.String(), strconv.Itoa(int(k.code)), grpc, k.flags.String(), k.security.String()}
}

// snapshot returns every series that counted a request, sorted by labels, each rendered.
// The slice is shared and must not be modified.
func (r *Recorder) snapshot() []*series {
	withOverflow := r.overflowUsed.Load()
	r.mu.Lock()
	defer r.mu.Unlock()
	n := len(r.all)
	if withOverflow {
		n++
	}
	if len(r.view) == n {
		return r.view
	}
	v := make([]*series, 0, n)
	v = append(v, r.all...)
	if withOverflow {
		v = append(v, r.overflow)
	}
	for _, s := range v {
		if s.text == "" {
			r.renderLocked(s)
		}
	}
	slices.SortFunc(v, func(a, b *series) int { return strings.Compare(a.text, b.text) })
	r.view = v
	return v
}

// renderLocked sets s.text and s.pairs.
func (r *Recorder) renderLocked(s *series) {
	vals := s.values()
	var b []byte
	s.pairs = make([]*dto.LabelPair, numLabels)
	for i, name := range labelNames {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, name...)
		b = append(b, '=', '"')
		b = appendEscaped(b, vals[i])
		b = append(b, '"')

		p := r.pairs[[2]string{name, vals[i]}]
		if p == nil {
			p = &dto.LabelPair{Name: &labelNames[i], Value: new(validUTF8(vals[i]))}
			r.pairs[[2]string{name, vals[i]}] = p
		}
		s.pairs[i] = p
	}
	s.text = string(b)
}

// Stats is what a Recorder holds and dropped.
type Stats struct {
	// Series is the number of distinct label sets held, the overflow series not included.
	Series int
	// OverflowRequests counts the requests folded into the overflow series.
	OverflowRequests uint64
	// DroppedLabelSets estimates the distinct label sets refused because of the cap.
	DroppedLabelSets uint64
	// LogsQueued is the number of access-log entries waiting for the Pusher.
	LogsQueued int
	// LogsDropped counts access-log entries dropped because the queue was full.
	LogsDropped uint64
}

// Stats returns the Recorder's own counters.
func (r *Recorder) Stats() Stats {
	r.mu.Lock()
	n := len(r.all)
	r.mu.Unlock()
	return Stats{
		Series:           n,
		OverflowRequests: count(r.overflow.duration[:]),
		DroppedLabelSets: r.droppedLabelSets(),
		LogsQueued:       r.logs.len(),
		LogsDropped:      r.logs.dropped.Load(),
	}
}
