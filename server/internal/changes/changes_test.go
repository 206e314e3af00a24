package changes_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/sluicemesh/sluice/internal/pgtest"
	"github.com/sluicemesh/sluice/server/internal/changes"
	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/store"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

var migrated = pgtest.Template{Name: "migrated", Setup: store.Migrate}

type logWriter struct{ t *testing.T }

func (w logWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

// newService returns a Service on a store of its own, and the store.
func newService(t *testing.T) (*changes.Service, *store.Store) {
	t.Helper()
	st, err := store.Open(context.Background(), pgtest.New(t, migrated), slog.New(slog.NewTextHandler(logWriter{t}, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return changes.New(st), st
}

var alice = changes.Actor{Name: "alice", ClientAddr: "192.0.2.1"}

func dr(ns, name, host string, subsets ...string) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: %s\n  namespace: %s\nspec:\n  host: %s\n  subsets:\n", name, ns, host)
	for _, s := range subsets {
		fmt.Fprintf(&sb, "  - name: %s\n    labels: {version: %s}\n", s, s)
	}
	return sb.String()
}

// vs routes host to one subset.
func vs(ns, name, host, subset string) string {
	return fmt.Sprintf(`apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: %s
  namespace: %s
spec:
  hosts: [%s]
  http:
  - route:
    - destination: {host: %s, subset: %s}
`, name, ns, host, host, subset)
}

func join(docs ...string) []byte { return []byte(strings.Join(docs, "---\n")) }

func apply(t *testing.T, svc *changes.Service, input []byte) *changes.Outcome {
	t.Helper()
	out, err := svc.Apply(context.Background(), alice, input, "", false)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	return out
}

func fieldErrors(t *testing.T, err error) config.Errors {
	t.Helper()
	var errs config.Errors
	if !errors.As(err, &errs) {
		t.Fatalf("error is %T %v, want config.Errors", err, err)
	}
	return errs
}

func paths(errs config.Errors) []string {
	var out []string
	for _, e := range errs {
		out = append(out, e.Path)
	}
	return out
}

// TestApplyErrorPaths: every path of an apply's errors starts with the document's index, one
// document or many, from parsing or from validation; only problems with the input as a whole
// have no path.
func TestApplyErrorPaths(t *testing.T) {
	t.Parallel()
	svc, st := newService(t)
	apply(t, svc, []byte(dr("default", "reviews", "reviews", "v1", "v2")))

	list := "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(strings.TrimSuffix(vs("default", "ratings", "ratings", "v1"), "\n"), "\n", "\n  ") + "\n"
	tests := []struct {
		name  string
		input []byte
		want  []string
	}{
		{"schema error in one document", []byte(strings.Replace(vs("default", "x", "reviews", "v1"), "subset:", "subst:", 1)),
			[]string{"documents[0].spec.http[0].route[0].destination.subst"}},
		{"validation error in one document", []byte(vs("default", "x", "reviews", "v7")),
			[]string{"documents[0].spec.http[0].route[0].destination.subset"}},
		{"metadata error in one document", []byte(dr("default", "Bad_Name", "ratings", "v1")),
			[]string{"documents[0].metadata.name"}},
		// A one-document input's document is the input as a whole.
		{"not an object", []byte("- a\n- b\n"), []string{""}},
		{"not an object, second of two", join(dr("default", "ratings", "ratings", "v1"), "- a\n"), []string{"documents[1]"}},
		{"validation error in a List", []byte(list), []string{"documents[0].items[0].spec.http[0].route[0].destination.subset"}},
		{"second of two", join(dr("default", "ratings", "ratings", "v1"), vs("default", "ratings", "ratings", "v2")),
			[]string{"documents[1].spec.http[0].route[0].destination.subset"}},
		{"duplicate in one request", join(dr("default", "ratings", "ratings", "v1"), dr("default", "ratings", "ratings", "v2")),
			[]string{"documents[1].metadata.name"}},
		{"nothing at all", []byte("# just a comment\n"), []string{""}},
		{"too large", []byte(strings.Repeat("#", config.MaxInputBytes+1)), []string{""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := svc.Apply(context.Background(), alice, tt.input, "", false)
			errs := fieldErrors(t, err)
			if got := paths(errs); !slices.Equal(got, tt.want) {
				t.Errorf("paths %q, want %q\n%v", got, tt.want, errs)
			}
		})
	}
	if rev, _ := st.CurrentRevision(context.Background()); rev != 1 {
		t.Errorf("refused applies moved the revision to %d", rev)
	}

	// The duplicate's message points at the other document by its index too.
	_, err := svc.Apply(context.Background(), alice, []byte("apiVersion: v1\nkind: List\nitems:\n- "+
		strings.ReplaceAll(strings.TrimSuffix(dr("default", "ratings", "ratings", "v1"), "\n"), "\n", "\n  ")+"\n- "+
		strings.ReplaceAll(strings.TrimSuffix(dr("default", "ratings", "ratings", "v1"), "\n"), "\n", "\n  ")+"\n"), "", false)
	if errs := fieldErrors(t, err); len(errs) != 1 || errs[0].Path != "documents[0].items[1].metadata.name" || !strings.Contains(errs[0].Message, "also at documents[0].items[0]") {
		t.Errorf("duplicate in a List: %v", errs)
	}

	// PUT's body is one resource by definition: its paths carry no index.
	_, err = svc.Put(context.Background(), alice, store.Key{Kind: "VirtualService", Namespace: "default", Name: "x"},
		[]byte(vs("default", "x", "reviews", "v7")), 0, false, false)
	if got := paths(fieldErrors(t, err)); !slices.Equal(got, []string{"spec.http[0].route[0].destination.subset"}) {
		t.Errorf("PUT paths %q", got)
	}
}

// TestPutNamespace: a body without a namespace goes where the URL says; a body that names
// another namespace is refused, and so is a List, whose items are not filled in.
func TestPutNamespace(t *testing.T) {
	t.Parallel()
	svc, st := newService(t)
	ctx := context.Background()
	key := store.Key{Kind: "DestinationRule", Namespace: "prod", Name: "ratings"}

	noNamespace := strings.Replace(dr("x", "ratings", "ratings", "v1"), "  namespace: x\n", "", 1)
	out, err := svc.Put(ctx, alice, key, []byte(noNamespace), 0, false, false)
	if err != nil {
		t.Fatal(err)
	}
	if r := out.Results[0]; r.Namespace != "prod" || r.Action != "created" {
		t.Errorf("put: %+v", r)
	}
	o, err := st.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	// It is in prod only.
	if _, err := st.Get(ctx, store.Key{Kind: "DestinationRule", Namespace: "default", Name: "ratings"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the rule is in default too: %v", err)
	}
	if o.Metadata.Namespace != "prod" {
		t.Errorf("stored in %s", o.Metadata.Namespace)
	}
	// JSON without a namespace, and a create (no name in the key).
	_, err = svc.Put(ctx, alice, store.Key{Kind: "DestinationRule", Namespace: "prod"},
		[]byte(`{"apiVersion":"networking.istio.io/v1","kind":"DestinationRule","metadata":{"name":"details"},"spec":{"host":"details"}}`), 0, true, false)
	if err != nil {
		t.Fatalf("create from JSON without a namespace: %v", err)
	}

	for _, tt := range []struct{ name, body string }{
		{"another namespace", dr("staging", "ratings", "ratings", "v1")},
		{"the default namespace, named", dr("default", "ratings", "ratings", "v1")},
		{"a List", "apiVersion: v1\nkind: List\nitems:\n- " + strings.ReplaceAll(strings.TrimSuffix(noNamespace, "\n"), "\n", "\n  ") + "\n"},
	} {
		_, err := svc.Put(ctx, alice, key, []byte(tt.body), 0, false, false)
		if errs := fieldErrors(t, err); !slices.Equal(paths(errs), []string{"metadata.namespace"}) {
			t.Errorf("%s: %v", tt.name, errs)
		}
	}
	_, err = svc.Put(ctx, alice, key, []byte(strings.Replace(noNamespace, "kind: DestinationRule", "kind: Gateway", 1)), 0, false, false)
	if err == nil {
		t.Error("a Gateway was put at a DestinationRule's URL")
	}
}

// TestConcurrentChanges: validation runs inside the commit, after every other writer, so two
// changes that are each valid alone but not together never both succeed.
func TestConcurrentChanges(t *testing.T) {
	t.Parallel()
	svc, st := newService(t)
	ctx := context.Background()

	race := func(fs ...func() error) []error {
		var wg sync.WaitGroup
		start := make(chan struct{})
		errs := make([]error, len(fs))
		for i, f := range fs {
			wg.Go(func() {
				<-start
				errs[i] = f()
			})
		}
		close(start)
		wg.Wait()
		return errs
	}
	failures := func(errs []error) int {
		n := 0
		for _, err := range errs {
			if err != nil {
				n++
				fieldErrors(t, err) // refused as invalid, not failed
			}
		}
		return n
	}

	for i := range 8 {
		host := fmt.Sprintf("svc%d", i)
		apply(t, svc, []byte(dr("default", host, host, "v1")))

		// Two VirtualServices for one host.
		errs := race(
			func() error {
				_, err := svc.Apply(ctx, alice, []byte(vs("default", host+"-a", host, "v1")), "", false)
				return err
			},
			func() error {
				_, err := svc.Apply(ctx, alice, []byte(vs("default", host+"-b", host, "v1")), "", false)
				return err
			},
		)
		if n := failures(errs); n != 1 {
			t.Errorf("round %d: two VirtualServices for one host: %d failed, want 1: %v", i, n, errs)
		}

		// Deleting a rule while a route to its subset is created.
		other := fmt.Sprintf("other%d", i)
		apply(t, svc, []byte(dr("default", other, other, "v1")))
		errs = race(
			func() error {
				_, err := svc.Delete(ctx, alice, store.Key{Kind: "DestinationRule", Namespace: "default", Name: other}, 0)
				return err
			},
			func() error {
				_, err := svc.Apply(ctx, alice, []byte(vs("default", other, other, "v1")), "", false)
				return err
			},
		)
		if n := failures(errs); n != 1 {
			t.Errorf("round %d: delete and route: %d failed, want 1: %v", i, n, errs)
		}
	}
	// Whatever won, what is stored is valid.
	objs, err := st.List(ctx, "", "")
	if err != nil {
		t.Fatal(err)
	}
	var catalog []*config.Resource
	for _, o := range objs {
		r, err := changes.FromObject(o)
		if err != nil {
			t.Fatal(err)
		}
		catalog = append(catalog, r)
	}
	if errs := config.Validate(catalog, catalog); len(errs) > 0 {
		t.Errorf("the stored configuration is invalid:\n%v", errs)
	}
}

// TestRollback covers what the API tests do not reach: rolling back to revision 0, to the
// current revision, and the record a rollback leaves.
func TestRollback(t *testing.T) {
	t.Parallel()
	svc, st := newService(t)
	ctx := context.Background()
	apply(t, svc, join(dr("default", "reviews", "reviews", "v1", "v2"), vs("default", "reviews", "reviews", "v1"))) // 1
	apply(t, svc, []byte(vs("default", "reviews", "reviews", "v2")))                                                // 2

	// To the current revision: nothing to do, no revision.
	out, err := svc.RollbackMesh(ctx, alice, 2)
	if err != nil || out.Revision != 0 || len(out.Results) != 0 {
		t.Errorf("rollback to the current revision: %+v %v", out, err)
	}
	out, err = svc.RollbackResource(ctx, alice, store.Key{Kind: "VirtualService", Namespace: "default", Name: "reviews"}, 1)
	if err != nil || out.Revision != 3 || out.Results[0].Action != "updated" || !strings.Contains(out.Results[0].Diff, "-        subset: v2") {
		t.Fatalf("rollback of one resource: %+v %v", out, err)
	}
	revs, err := st.Revisions(ctx, store.RevisionFilter{Limit: 1})
	if err != nil || revs[0].RolledBackTo != 1 || revs[0].Actor != "alice" {
		t.Errorf("revision 3: %+v %v", revs, err)
	}
	entries, err := st.ListAudit(ctx, store.AuditFilter{Action: "resource.update"})
	if err != nil || len(entries) != 2 || entries[0].ClientAddr != "192.0.2.1" || !strings.Contains(entries[0].Detail, "roll back") {
		t.Errorf("audit: %+v %v", entries, err)
	}

	// Revision 0 is the empty mesh: rolling back to it deletes everything, in one revision.
	out, err = svc.RollbackMesh(ctx, alice, 0)
	if err != nil || out.Revision != 4 || len(out.Results) != 2 {
		t.Fatalf("rollback to revision 0: %+v %v", out, err)
	}
	if objs, _ := st.List(ctx, "", ""); len(objs) != 0 {
		t.Errorf("after rolling back to 0: %d resources", len(objs))
	}
	// And forward again, to revision 2.
	out, err = svc.RollbackMesh(ctx, alice, 2)
	if err != nil || out.Revision != 5 {
		t.Fatalf("rollback to revision 2: %+v %v", out, err)
	}
	got, err := st.Get(ctx, store.Key{Kind: "VirtualService", Namespace: "default", Name: "reviews"})
	if err != nil || !strings.Contains(string(got.Spec), `"v2"`) {
		t.Errorf("after rolling forward: %+v %v", got, err)
	}

	for _, rev := range []int64{-1, 6} {
		if _, err := svc.RollbackMesh(ctx, alice, rev); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("rollback to %d: %v, want not found", rev, err)
		}
	}
}

// TestApplyUnchangedAndDryRun: an apply that changes nothing writes no revision; a dry run
// answers with diffs and writes nothing.
func TestApplyUnchangedAndDryRun(t *testing.T) {
	t.Parallel()
	svc, st := newService(t)
	ctx := context.Background()
	input := join(dr("default", "reviews", "reviews", "v1", "v2"), vs("default", "reviews", "reviews", "v1"))
	apply(t, svc, input)

	out := apply(t, svc, input)
	if out.Revision != 0 || out.Results[0].Action != "unchanged" || out.Results[1].Action != "unchanged" || out.Results[0].ResourceVersion != "1" {
		t.Errorf("unchanged apply: %+v", out)
	}

	out, err := svc.Apply(ctx, alice, join(vs("default", "reviews", "reviews", "v2"), dr("default", "ratings", "ratings", "v1")), "", true)
	if err != nil {
		t.Fatal(err)
	}
	if out.Revision != 0 || out.Results[0].Action != "updated" || out.Results[1].Action != "created" {
		t.Errorf("dry run: %+v", out)
	}
	if d := out.Results[0].Diff; !strings.Contains(d, "-        subset: v1") || !strings.Contains(d, "+        subset: v2") {
		t.Errorf("dry run diff:\n%s", d)
	}
	if rev, _ := st.CurrentRevision(ctx); rev != 1 {
		t.Errorf("revision %d after a dry run", rev)
	}
	if _, err := st.Get(ctx, store.Key{Kind: "DestinationRule", Namespace: "default", Name: "ratings"}); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the dry run created the rule: %v", err)
	}
}

// TestUnifiedDiff checks the diff by what matters to its readers: the hunks it has, where they
// are, and that applying them to the old text gives the new one.
func TestUnifiedDiff(t *testing.T) {
	t.Parallel()
	lines := func(n int, change map[int]string) string {
		var sb strings.Builder
		for i := 1; i <= n; i++ {
			if s, ok := change[i]; ok {
				if s != "" {
					sb.WriteString(s + "\n")
				}
				continue
			}
			fmt.Fprintf(&sb, "line %d\n", i)
		}
		return sb.String()
	}
	tests := []struct {
		name  string
		a, b  string
		hunks []string
	}{
		{"one change", lines(10, nil), lines(10, map[int]string{5: "five"}), []string{"@@ -2,7 +2,7 @@"}},
		{"changes far apart", lines(20, nil), lines(20, map[int]string{2: "two", 18: ""}), []string{"@@ -1,5 +1,5 @@", "@@ -15,6 +15,5 @@"}},
		{"changes close together", lines(12, nil), lines(12, map[int]string{3: "three", 8: "eight"}), []string{"@@ -1,11 +1,11 @@"}},
		{"an added line at the end", lines(5, nil), lines(5, nil) + "six\n", []string{"@@ -3,3 +3,4 @@"}},
		// The hunk headers of an empty side are not checked: diff(1) writes -0,0 where
		// UnifiedDiff writes -1,0. patch(1) takes both.
		{"everything new", "", lines(2, nil), nil},
		{"everything gone", lines(2, nil), "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := changes.UnifiedDiff("x", tt.a, tt.b)
			if !strings.HasPrefix(d, "--- x (before)\n+++ x (after)\n") {
				t.Fatalf("header:\n%s", d)
			}
			var hunks []string
			for _, l := range strings.Split(d, "\n") {
				if strings.HasPrefix(l, "@@") {
					hunks = append(hunks, l)
				}
			}
			if tt.hunks == nil && len(hunks) != 1 || tt.hunks != nil && !slices.Equal(hunks, tt.hunks) {
				t.Errorf("hunks %q, want %q\n%s", hunks, tt.hunks, d)
			}
			if got := patch(t, tt.a, d); got != tt.b {
				t.Errorf("the diff turns the old text into:\n%s\nwant:\n%s\ndiff:\n%s", got, tt.b, d)
			}
		})
	}
	if d := changes.Diff(nil, nil); d != "" {
		t.Errorf("Diff(nil, nil) = %q", d)
	}
}

// patch applies a unified diff to a, checking each hunk's context and removed lines against a
// and its line counts against its header.
func patch(t *testing.T, a, diff string) string {
	t.Helper()
	var old []string
	if a != "" {
		old = strings.Split(strings.TrimSuffix(a, "\n"), "\n")
	}
	lines := strings.Split(strings.TrimSuffix(diff, "\n"), "\n")[2:]
	var out []string
	pos := 0 // the next line of old not yet copied
	for i := 0; i < len(lines); {
		var aStart, aLen, bStart, bLen int
		if _, err := fmt.Sscanf(lines[i], "@@ -%d,%d +%d,%d @@", &aStart, &aLen, &bStart, &bLen); err != nil {
			t.Fatalf("hunk header %q: %v", lines[i], err)
		}
		i++
		// An empty side's start is the line before it: 0 for diff(1), 1 for UnifiedDiff.
		if aLen == 0 && aStart == 0 {
			aStart = 1
		}
		if bLen == 0 && bStart == 0 {
			bStart = 1
		}
		if aStart-1 < pos || aStart-1 > len(old) {
			t.Fatalf("hunk %q starts outside the text", lines[i-1])
		}
		out = append(out, old[pos:aStart-1]...)
		pos = aStart - 1
		if len(out)+1 != bStart {
			t.Errorf("hunk %q: the new text's line there is %d", lines[i-1], len(out)+1)
		}
		gotA, gotB := 0, 0
		for ; i < len(lines) && !strings.HasPrefix(lines[i], "@@"); i++ {
			op, text := lines[i][0], lines[i][1:]
			switch op {
			case ' ', '-':
				if pos >= len(old) || old[pos] != text {
					t.Fatalf("diff line %q does not match the old text", lines[i])
				}
				pos++
				gotA++
				if op == ' ' {
					out = append(out, text)
					gotB++
				}
			case '+':
				out = append(out, text)
				gotB++
			default:
				t.Fatalf("diff line %q", lines[i])
			}
		}
		if gotA != aLen || gotB != bLen {
			t.Errorf("a hunk has %d old and %d new lines, its header says %d and %d", gotA, gotB, aLen, bLen)
		}
	}
	out = append(out, old[pos:]...)
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "\n") + "\n"
}
