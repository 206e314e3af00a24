package telemetry

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"time"
)

// AccessEntry is one request from a proxy's access log, as the tap shows it.
type AccessEntry struct {
	Time time.Time `json:"time"`
	// NodeID is the proxy that logged it, and Reporter its side of the call.
	NodeID              string  `json:"nodeId"`
	Reporter            string  `json:"reporter"`
	SourceWorkload      string  `json:"sourceWorkload"`
	SourceNamespace     string  `json:"sourceNamespace"`
	DestinationService  string  `json:"destinationService"`
	DestinationWorkload string  `json:"destinationWorkload"`
	DestinationVersion  string  `json:"destinationVersion"`
	Method              string  `json:"method"`
	Authority           string  `json:"authority"`
	Path                string  `json:"path"`
	Protocol            string  `json:"protocol"`
	ResponseCode        int     `json:"responseCode"`
	ResponseFlags       string  `json:"responseFlags"`
	DurationMs          float64 `json:"durationMs"`
	RequestBytes        int64   `json:"requestBytes"`
	ResponseBytes       int64   `json:"responseBytes"`
	RequestID           string  `json:"requestId,omitempty"`
	UpstreamCluster     string  `json:"upstreamCluster,omitempty"`
	UpstreamHost        string  `json:"upstreamHost,omitempty"`
	// Detail says why the proxy answered itself (Envoy's response_code_details).
	Detail string `json:"detail,omitempty"`
}

// ErrSlowSubscriber is a dropped Subscription's Err: it did not keep up with the traffic.
var ErrSlowSubscriber = errors.New("tap subscriber dropped: it fell behind; subscribe again")

// TapOptions configure a Tap. The zero value is usable.
type TapOptions struct {
	// PerService is how many entries are kept per destination service; zero means 1,000.
	PerService int
	// SubscriberBuffer is each subscriber's queue; zero means 256. A subscriber whose queue
	// is full when an entry arrives is dropped.
	SubscriberBuffer int
}

// Tap keeps the latest access-log entries of each destination service, and hands every new
// entry to its live subscribers. Publishing never waits: a subscriber that falls behind is
// dropped (its channel closed, its Err set) rather than allowed to hold up the proxies'
// streams. Memory is bounded by PerService entries per service seen. Safe for concurrent use.
type Tap struct {
	perService int
	buffer     int

	mu    sync.Mutex
	rings map[string]*ring
	subs  map[*Subscription]struct{}
}

// ring is a service's last entries: buf grows to its capacity, then next wraps around.
type ring struct {
	buf  []AccessEntry
	next int
}

// NewTap returns an empty Tap.
func NewTap(o TapOptions) *Tap {
	// A thousand entries is a screenful of scrollback per service, about 0.5 MB.
	if o.PerService <= 0 {
		o.PerService = 1000
	}
	// A second or two of a busy service, enough to ride out a slow WebSocket write.
	if o.SubscriberBuffer <= 0 {
		o.SubscriberBuffer = 256
	}
	return &Tap{perService: o.PerService, buffer: o.SubscriberBuffer, rings: map[string]*ring{}, subs: map[*Subscription]struct{}{}}
}

// TapFilter selects entries. The zero value selects all.
type TapFilter struct {
	// Service selects a destination service (see MatchService); empty means any.
	Service string
}

func (f TapFilter) match(e *AccessEntry) bool {
	return f.Service == "" || MatchService(f.Service, e.DestinationService)
}

// MatchService reports whether a service filter names host: the host itself
// ("reviews.default.svc.cluster.local"), or a prefix of it ending before a dot ("reviews",
// "reviews.default").
func MatchService(filter, host string) bool {
	return host == filter || (strings.HasPrefix(host, filter) && len(host) > len(filter) && host[len(filter)] == '.')
}

// Publish adds entries to the rings of their services and sends them to the subscribers
// they match.
func (t *Tap) Publish(entries []AccessEntry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range entries {
		e := &entries[i]
		key := e.DestinationService
		if key == "" {
			key = Unknown
		}
		r := t.rings[key]
		if r == nil {
			r = &ring{}
			t.rings[key] = r
		}
		if len(r.buf) < t.perService {
			r.buf = append(r.buf, *e)
		} else {
			r.buf[r.next] = *e
			r.next = (r.next + 1) % len(r.buf)
		}
		for s := range t.subs {
			if !s.filter.match(e) {
				continue
			}
			select {
			case s.ch <- *e:
			default:
				t.drop(s, ErrSlowSubscriber)
			}
		}
	}
}

// Recent returns up to n of the latest entries of the services the filter selects, oldest
// first; n <= 0 means all that are kept.
func (t *Tap) Recent(f TapFilter, n int) []AccessEntry {
	t.mu.Lock()
	var out []AccessEntry
	for host, r := range t.rings {
		if f.Service != "" && !MatchService(f.Service, host) {
			continue
		}
		out = append(out, r.buf[r.next:]...)
		out = append(out, r.buf[:r.next]...)
	}
	t.mu.Unlock()
	slices.SortStableFunc(out, func(a, b AccessEntry) int { return a.Time.Compare(b.Time) })
	if n > 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// Subscription is a live feed of the entries a filter selects. Read C until it is closed:
// by Close, or by the Tap when the subscriber fell behind (Err then says so).
type Subscription struct {
	// C delivers the entries, in the order they were published.
	C <-chan AccessEntry

	ch     chan AccessEntry
	filter TapFilter
	tap    *Tap
	err    error // under tap.mu
}

// Subscribe starts a live feed of the entries f selects, from now on.
func (t *Tap) Subscribe(f TapFilter) *Subscription {
	ch := make(chan AccessEntry, t.buffer)
	s := &Subscription{C: ch, ch: ch, filter: f, tap: t}
	t.mu.Lock()
	t.subs[s] = struct{}{}
	t.mu.Unlock()
	return s
}

// Close ends the feed and closes C. It is safe to call more than once, and after the Tap
// dropped the subscription.
func (s *Subscription) Close() {
	s.tap.mu.Lock()
	defer s.tap.mu.Unlock()
	s.tap.drop(s, nil)
}

// Err returns ErrSlowSubscriber once the Tap has dropped the subscription, and nil otherwise.
func (s *Subscription) Err() error {
	s.tap.mu.Lock()
	defer s.tap.mu.Unlock()
	return s.err
}

// Subscribers returns the number of live subscriptions.
func (t *Tap) Subscribers() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.subs)
}

// drop ends s with err, once. The caller holds t.mu, which also orders the close after every
// send.
func (t *Tap) drop(s *Subscription, err error) {
	if _, ok := t.subs[s]; !ok {
		return
	}
	delete(t.subs, s)
	s.err = err
	close(s.ch)
}
