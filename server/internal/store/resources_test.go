package store_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sluicemesh/sluice/server/internal/store"
)

func vs(name, spec string) *store.Object {
	return &store.Object{
		APIVersion: "networking.istio.io/v1", Kind: "VirtualService",
		Metadata: store.ObjectMeta{Name: name, Namespace: "default"},
		Spec:     json.RawMessage(spec),
	}
}

func put(o *store.Object, ifVersion int64) store.Mutation {
	return store.Mutation{Key: o.Key(), Object: o, IfVersion: ifVersion}
}

func TestCommitLifecycle(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	meta := store.CommitMeta{Actor: "alice", Message: "first"}

	res, err := st.Commit(ctx, meta, []store.Mutation{put(vs("reviews", `{"hosts":["reviews"]}`), 0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.Revision != 1 || res.Results[0].Action != "created" || res.Results[0].ResourceVersion != "1" {
		t.Fatalf("create: %+v", res)
	}
	// The same content again changes nothing and writes no revision.
	res, err = st.Commit(ctx, meta, []store.Mutation{put(vs("reviews", `{ "hosts": ["reviews"] }`), 0)}, nil)
	if err != nil || res.Revision != 0 || res.Results[0].Action != "unchanged" {
		t.Fatalf("unchanged: %+v %v", res, err)
	}
	res, err = st.Commit(ctx, store.CommitMeta{Actor: "bob"}, []store.Mutation{put(vs("reviews", `{"hosts":["reviews","r2"]}`), 1)}, nil)
	if err != nil || res.Revision != 2 || res.Results[0].Action != "updated" {
		t.Fatalf("update: %+v %v", res, err)
	}
	got, err := st.Get(ctx, vs("reviews", "").Key())
	if err != nil || got.Metadata.ResourceVersion != "2" || got.Metadata.UpdatedBy != "bob" {
		t.Fatalf("get: %+v %v", got, err)
	}

	// A stale version is a conflict that names who changed the resource.
	_, err = st.Commit(ctx, meta, []store.Mutation{put(vs("reviews", `{"hosts":["x"]}`), 1)}, nil)
	var ce *store.ConflictError
	if !errors.As(err, &ce) || ce.Current != 2 || ce.UpdatedBy != "bob" {
		t.Fatalf("stale write: %v", err)
	}

	// A failing check writes nothing.
	_, err = st.Commit(ctx, meta, []store.Mutation{put(vs("ratings", `{}`), 0)}, func([]*store.Object, []store.Result) error {
		return errors.New("refused")
	})
	if err == nil || err.Error() != "refused" {
		t.Fatalf("check: %v", err)
	}
	if _, err := st.Get(ctx, vs("ratings", "").Key()); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("refused commit wrote something: %v", err)
	}

	// Dry run reports without writing.
	res, err = st.Commit(ctx, store.CommitMeta{Actor: "a", DryRun: true}, []store.Mutation{{Key: vs("reviews", "").Key()}}, nil)
	if err != nil || res.Revision != 0 || res.Results[0].Action != "deleted" {
		t.Fatalf("dry-run delete: %+v %v", res, err)
	}
	res, err = st.Commit(ctx, meta, []store.Mutation{{Key: vs("reviews", "").Key()}}, nil)
	if err != nil || res.Revision != 3 {
		t.Fatalf("delete: %+v %v", res, err)
	}
	if _, err := st.Commit(ctx, meta, []store.Mutation{{Key: vs("reviews", "").Key()}}, nil); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete of a missing resource: %v", err)
	}

	// History: state at each revision.
	for rev, want := range map[int64]string{1: `["reviews"]`, 2: `["reviews", "r2"]`, 3: ""} {
		o, err := st.StateAt(ctx, vs("reviews", "").Key(), rev)
		if err != nil {
			t.Fatal(err)
		}
		if want == "" {
			if o != nil {
				t.Errorf("state at %d: %s, want none", rev, o.Spec)
			}
			continue
		}
		var spec struct{ Hosts []string }
		if o == nil || json.Unmarshal(o.Spec, &spec) != nil {
			t.Fatalf("state at %d: %+v", rev, o)
		}
		if got, _ := json.Marshal(spec.Hosts); string(got) != compact(want) {
			t.Errorf("state at %d: %s, want %s", rev, got, want)
		}
	}
	revs, err := st.Revisions(ctx, store.RevisionFilter{Key: &store.Key{Kind: "VirtualService", Namespace: "default", Name: "reviews"}})
	if err != nil || len(revs) != 3 || revs[0].Revision != 3 || revs[2].Actor != "alice" {
		t.Fatalf("history: %+v %v", revs, err)
	}

	// Every committed change is in the audit log, and nothing that was refused or dry-run.
	entries, err := st.ListAudit(ctx, store.AuditFilter{Target: "VirtualService/default/reviews"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Actor+":"+e.Action)
	}
	if got := fmt.Sprint(actions); got != "[alice:resource.delete bob:resource.update alice:resource.create]" {
		t.Fatalf("audit entries %s", got)
	}
}

func compact(s string) string {
	var v any
	_ = json.Unmarshal([]byte(s), &v)
	b, _ := json.Marshal(v)
	return string(b)
}

// 50 concurrent updates of one resource, half with a stale version: each stale one is a
// conflict, no update is lost, and the history holds exactly the successful writes.
func TestConcurrentUpdates(t *testing.T) {
	st, _ := open(t)
	ctx := context.Background()
	res, err := st.Commit(ctx, store.CommitMeta{Actor: "setup"}, []store.Mutation{put(vs("reviews", `{"n":0}`), 0)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// One update makes the first version stale for good: versions only grow.
	stale := res.Revision
	res, err = st.Commit(ctx, store.CommitMeta{Actor: "setup"}, []store.Mutation{put(vs("reviews", `{"n":-1}`), stale)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	base := res.Revision

	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		conflicts int
		okWrites  []int
	)
	for i := 1; i <= 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				_, err := st.Commit(ctx, store.CommitMeta{Actor: "stale"}, []store.Mutation{put(vs("reviews", fmt.Sprintf(`{"n":%d}`, i)), stale)}, nil)
				var ce *store.ConflictError
				mu.Lock()
				defer mu.Unlock()
				if !errors.As(err, &ce) {
					t.Errorf("stale write %d: %v, want a conflict", i, err)
				}
				conflicts++
				return
			}
			// Fresh: read, then write with what was read; retry on conflict like a client.
			for {
				cur, err := st.Get(ctx, vs("reviews", "").Key())
				if err != nil {
					t.Error(err)
					return
				}
				_, err = st.Commit(ctx, store.CommitMeta{Actor: "writer"}, []store.Mutation{put(vs("reviews", fmt.Sprintf(`{"n":%d}`, i)), cur.Version())}, nil)
				var ce *store.ConflictError
				if errors.As(err, &ce) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				okWrites = append(okWrites, i)
				mu.Unlock()
				return
			}
		}()
	}
	wg.Wait()
	if conflicts != 25 || len(okWrites) != 25 {
		t.Fatalf("conflicts %d, successful writes %d; want 25 and 25", conflicts, len(okWrites))
	}
	revs, err := st.Revisions(ctx, store.RevisionFilter{Key: &store.Key{Kind: "VirtualService", Namespace: "default", Name: "reviews"}, After: base})
	if err != nil {
		t.Fatal(err)
	}
	if len(revs) != 25 {
		t.Fatalf("history after the race: %d revisions, want 25", len(revs))
	}
	// Each revision's "before" is the previous one's "after": no write was lost.
	for i := len(revs) - 1; i > 0; i-- {
		older, newer := revs[i], revs[i-1]
		if string(newer.Changes[0].Before.Spec) != string(older.Changes[0].After.Spec) {
			t.Fatalf("revision %d did not start from revision %d's content", newer.Revision, older.Revision)
		}
	}
}

// The feed delivers every committed revision in order exactly once, also to a subscriber
// that resumes from the last revision it saw.
func TestSubscribeDeliversEveryRevision(t *testing.T) {
	st, _ := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	got := make(chan int64, 100)
	sub := func(after int64) (stop func()) {
		sctx, scancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			_ = st.Subscribe(sctx, after, func(r store.Revision) error {
				got <- r.Revision
				return nil
			})
		}()
		return func() { scancel(); <-done }
	}
	commit := func(n int) {
		t.Helper()
		if _, err := st.Commit(ctx, store.CommitMeta{Actor: "t"}, []store.Mutation{put(vs(fmt.Sprintf("vs-%d", n), `{}`), 0)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	receive := func(want int64) {
		t.Helper()
		select {
		case r := <-got:
			if r != want {
				t.Fatalf("received revision %d, want %d", r, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("revision %d never delivered", want)
		}
	}

	stop := sub(0)
	for i := 1; i <= 3; i++ {
		commit(i)
	}
	for i := int64(1); i <= 3; i++ {
		receive(i)
	}
	stop()
	// Commits while no one listens are delivered when the subscriber comes back.
	commit(4)
	commit(5)
	stop = sub(3)
	receive(4)
	receive(5)
	commit(6)
	receive(6)
	stop()
	select {
	case r := <-got:
		t.Fatalf("revision %d delivered twice", r)
	default:
	}
}
