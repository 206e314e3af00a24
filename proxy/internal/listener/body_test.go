package listener

import (
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
)

func TestRequestBody(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"a second try gets the whole body again", func(t *testing.T) {
			b := newRequestBody(io.NopCloser(strings.NewReader("hello")), 5, 16)
			if got, _ := io.ReadAll(b.next()); string(got) != "hello" {
				t.Fatalf("first try read %q", got)
			}
			if !b.replayable() {
				t.Fatal("not replayable")
			}
			if got, _ := io.ReadAll(b.next()); string(got) != "hello" {
				t.Fatalf("second try read %q", got)
			}
		}},
		{"a try abandoned halfway: the next gets the recorded part, then the rest", func(t *testing.T) {
			b := newRequestBody(io.NopCloser(strings.NewReader("abcdef")), -1, 16)
			first := b.next()
			buf := make([]byte, 2)
			if n, _ := first.Read(buf); string(buf[:n]) != "ab" {
				t.Fatalf("first try read %q", buf[:n])
			}
			second := b.next()
			if _, err := first.Read(buf); !errors.Is(err, errRetired) {
				t.Fatalf("a retired try read on: %v", err)
			}
			if got, _ := io.ReadAll(second); string(got) != "abcdef" {
				t.Fatalf("second try read %q", got)
			}
		}},
		{"over the limit: streamed, then not replayable", func(t *testing.T) {
			b := newRequestBody(io.NopCloser(strings.NewReader("0123456789")), -1, 4)
			if got, _ := io.ReadAll(b.next()); string(got) != "0123456789" {
				t.Fatalf("first try read %q", got)
			}
			if b.replayable() {
				t.Fatal("replayable over the limit")
			}
			if _, err := io.ReadAll(b.next()); !errors.Is(err, errNotReplayable) {
				t.Fatalf("second try: %v", err)
			}
		}},
		{"the end of a body within the limit is announced once", func(t *testing.T) {
			b := newRequestBody(io.NopCloser(strings.NewReader("xyz")), 3, 16)
			var calls []string
			b.onComplete = func(buf []byte) { calls = append(calls, string(buf)) }
			_, _ = io.ReadAll(b.next())
			_, _ = io.ReadAll(b.next())
			if len(calls) != 1 || calls[0] != "xyz" {
				t.Fatalf("onComplete calls %q", calls)
			}
			if b.abandon() != 0 {
				t.Error("abandon after completion")
			}
		}},
		{"the end of a body over the limit is not announced", func(t *testing.T) {
			b := newRequestBody(io.NopCloser(strings.NewReader("0123456789")), -1, 4)
			b.onComplete = func([]byte) { t.Error("onComplete over the limit") }
			b.pendingCopies = 2
			_, _ = io.ReadAll(b.next())
			if n := b.abandon(); n != 0 {
				t.Errorf("abandon = %d after the end was read", n)
			}
		}},
		{"a body never read is abandoned", func(t *testing.T) {
			b := newRequestBody(io.NopCloser(strings.NewReader("x")), 1, 16)
			b.onComplete = func([]byte) { t.Error("onComplete for an unread body") }
			b.pendingCopies = 2
			if n := b.abandon(); n != 2 {
				t.Errorf("abandon = %d, want 2", n)
			}
			_, _ = io.ReadAll(b.next())
		}},
		{"a retired try blocked on the client: its bytes reach the next try", func(t *testing.T) {
			pr, pw := io.Pipe()
			b := newRequestBody(pr, -1, 64)
			first := b.next()
			var wg sync.WaitGroup
			wg.Go(func() {
				buf := make([]byte, 8)
				if _, err := first.Read(buf); !errors.Is(err, errRetired) {
					t.Errorf("retired try: %v", err)
				}
			})
			// Let the first try block inside the client's body, then start a second try.
			for {
				if b.srcMu.TryLock() {
					b.srcMu.Unlock()
					continue
				}
				break
			}
			second := b.next()
			go func() {
				_, _ = io.WriteString(pw, "late")
				_, _ = io.WriteString(pw, " bytes")
				pw.Close()
			}()
			got, err := io.ReadAll(second)
			wg.Wait()
			if err != nil || string(got) != "late bytes" {
				t.Fatalf("second try read %q %v", got, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}
