package telemetry

import (
	"errors"
	"strconv"
	"testing"
	"time"
)

func entry(service string, i int) AccessEntry {
	return AccessEntry{Time: time.Unix(1_800_000_000, int64(i)).UTC(), DestinationService: service, Path: "/" + strconv.Itoa(i), ResponseCode: 200}
}

func TestTapKeepsTheLastEntriesPerService(t *testing.T) {
	tap := NewTap(TapOptions{PerService: 100})
	for i := range 250 {
		tap.Publish([]AccessEntry{entry(reviews, i)})
		if i%10 == 0 {
			tap.Publish([]AccessEntry{entry(ratings, i)})
		}
	}
	got := tap.Recent(TapFilter{Service: "reviews"}, 0)
	if len(got) != 100 {
		t.Fatalf("%d reviews entries kept, want the last 100", len(got))
	}
	for i, e := range got {
		if want := "/" + strconv.Itoa(150+i); e.Path != want || e.DestinationService != reviews {
			t.Fatalf("entry %d is %s of %s, want %s (oldest first)", i, e.Path, e.DestinationService, want)
		}
	}
	if got := tap.Recent(TapFilter{Service: ratings}, 3); len(got) != 3 || got[2].Path != "/240" {
		t.Errorf("ratings' last 3: %+v", got)
	}
	if got := tap.Recent(TapFilter{}, 0); len(got) != 125 {
		t.Errorf("%d entries of all services, want 100 + 25", len(got))
	}
	if got := tap.Recent(TapFilter{Service: "review"}, 0); len(got) != 0 {
		t.Errorf("a prefix that is not a name part matched %d entries", len(got))
	}
}

// TestTapDropsSlowSubscribers publishes more than a subscriber's buffer holds: the subscriber
// that reads keeps everything; the one that does not is dropped, and publishing never waits
// for it.
func TestTapDropsSlowSubscribers(t *testing.T) {
	tap := NewTap(TapOptions{SubscriberBuffer: 8})
	fast := tap.Subscribe(TapFilter{Service: "reviews"})
	slow := tap.Subscribe(TapFilter{})
	other := tap.Subscribe(TapFilter{Service: "ratings"})
	defer other.Close()

	const n = 1000
	for i := range n {
		// Publish returns whatever the slow subscriber does: this loop would hang otherwise.
		tap.Publish([]AccessEntry{entry(reviews, i)})
		// The fast subscriber reads each entry as it comes.
		select {
		case e, ok := <-fast.C:
			if !ok || e.Path != "/"+strconv.Itoa(i) {
				t.Fatalf("fast subscriber: entry %d is %q (open %v)", i, e.Path, ok)
			}
		default:
			t.Fatalf("fast subscriber: entry %d was not delivered", i)
		}
	}

	// The slow one was dropped once its buffer was full: its channel holds what fitted,
	// then is closed.
	got := 0
	for range slow.C {
		got++
	}
	if got != 8 {
		t.Errorf("slow subscriber got %d entries before being dropped, want its buffer's 8", got)
	}
	if !errors.Is(slow.Err(), ErrSlowSubscriber) {
		t.Errorf("slow subscriber's Err = %v, want ErrSlowSubscriber", slow.Err())
	}
	slow.Close() // after being dropped: a no-op

	fast.Close()
	if _, open := <-fast.C; open {
		t.Error("fast subscriber's channel is open after Close")
	}
	if fast.Err() != nil {
		t.Errorf("a closed subscriber's Err = %v, want nil", fast.Err())
	}
	if len(other.C) != 0 || other.Err() != nil {
		t.Errorf("a subscriber to another service got %d entries (err %v)", len(other.C), other.Err())
	}
	if n := tap.Subscribers(); n != 1 {
		t.Errorf("%d subscribers left, want 1", n)
	}
}
