package xds

import (
	"slices"
	"testing"
)

// TestProxyEventsCoalesce holds the subscription to its promise: the server never waits for
// a reader, and a reader learns every proxy that changed, once, in the order they first did.
func TestProxyEventsCoalesce(t *testing.T) {
	s := &Server{}
	a, b := s.SubscribeProxies(), s.SubscribeProxies()
	// Far more changes than anyone reads: none of them may block.
	for range 1000 {
		for _, id := range []string{"reviews-v1", "ratings-v1", "reviews-v1", "details-v1"} {
			s.events.notify(id)
		}
	}
	select {
	case <-a.C:
	default:
		t.Fatal("no wake-up after changes")
	}
	if got, want := a.Next(), []string{"reviews-v1", "ratings-v1", "details-v1"}; !slices.Equal(got, want) {
		t.Errorf("Next() = %v, want %v", got, want)
	}
	if got := a.Next(); len(got) != 0 {
		t.Errorf("Next() again = %v, want nothing new", got)
	}
	s.events.notify("ratings-v1")
	<-a.C
	if got := a.Next(); !slices.Equal(got, []string{"ratings-v1"}) {
		t.Errorf("after one more change, Next() = %v", got)
	}

	// b read nothing meanwhile: it holds each proxy once.
	if got := b.Next(); !slices.Equal(got, []string{"reviews-v1", "ratings-v1", "details-v1"}) {
		t.Errorf("the other subscription's Next() = %v", got)
	}
	b.Close()
	b.Close()
	s.events.notify("productpage-v1")
	if got := b.Next(); len(got) != 0 {
		t.Errorf("after Close, Next() = %v", got)
	}
	if got := a.Next(); !slices.Equal(got, []string{"productpage-v1"}) {
		t.Errorf("the open subscription's Next() = %v", got)
	}
}
