package store_test

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sluicemesh/sluice/server/internal/store"
)

func TestAuditInsertAndList(t *testing.T) {
	t.Parallel()
	st, _ := open(t)
	ctx := context.Background()
	t0 := time.Date(2025, 5, 1, 12, 0, 0, 0, time.UTC)
	for i := range 10 {
		actor := "alice"
		if i%2 == 1 {
			actor = "bob"
		}
		e := store.AuditEntry{
			At: t0.Add(time.Duration(i) * time.Minute), Actor: actor, Action: "user.update",
			Target: fmt.Sprintf("users/u%d", i%3), Outcome: store.AuditSuccess, Detail: fmt.Sprint(i),
			ClientAddr: "192.0.2.1",
		}
		if i == 0 {
			e.Before = json.RawMessage(`{"role":"viewer"}`)
			e.After = json.RawMessage(`{"role":"operator"}`)
		}
		if err := st.RecordAudit(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.RecordAudit(ctx, store.AuditEntry{Actor: "carol", Action: "login", Outcome: store.AuditFailure}); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordAudit(ctx, store.AuditEntry{Actor: "carol"}); err == nil {
		t.Error("an entry without action and outcome was recorded")
	}

	details := func(f store.AuditFilter) []string {
		t.Helper()
		es, err := st.ListAudit(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range es {
			out = append(out, e.Detail)
		}
		return out
	}
	tests := []struct {
		name string
		f    store.AuditFilter
		want string
	}{
		{"all, newest first", store.AuditFilter{}, "[ 9 8 7 6 5 4 3 2 1 0]"},
		{"actor", store.AuditFilter{Actor: "bob"}, "[9 7 5 3 1]"},
		{"action", store.AuditFilter{Action: "user.update", Limit: 2}, "[9 8]"},
		{"target", store.AuditFilter{Target: "users/u1"}, "[7 4 1]"},
		{"since and until", store.AuditFilter{Since: t0.Add(2 * time.Minute), Until: t0.Add(5 * time.Minute)}, "[4 3 2]"},
		{"limit", store.AuditFilter{Limit: 3}, "[ 9 8]"},
		{"cursor", store.AuditFilter{Actor: "alice", Limit: 2}, "[8 6]"},
		{"nothing", store.AuditFilter{Actor: "nobody"}, "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := fmt.Sprint(details(tt.f)); got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}

	// Paging with the cursor walks every entry once.
	var seen []string
	var before int64
	for {
		es, err := st.ListAudit(ctx, store.AuditFilter{Limit: 4, Before: before})
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			break
		}
		for _, e := range es {
			seen = append(seen, e.Detail)
		}
		before = es[len(es)-1].ID
	}
	if len(seen) != 11 {
		t.Errorf("paging saw %d entries, want 11", len(seen))
	}

	es, _ := st.ListAudit(ctx, store.AuditFilter{Target: "users/u0", Actor: "alice", Limit: 10})
	first := es[len(es)-1]
	if first.Detail != "0" || string(first.Before) != `{"role": "viewer"}` || string(first.After) != `{"role": "operator"}` ||
		!first.At.Equal(t0) || first.ClientAddr != "192.0.2.1" || first.Outcome != store.AuditSuccess {
		t.Errorf("first entry %+v", first)
	}
	if es[0].Before != nil || es[0].After != nil {
		t.Errorf("entry without states has before %q after %q, want nil", es[0].Before, es[0].After)
	}
	login, _ := st.ListAudit(ctx, store.AuditFilter{Actor: "carol"})
	if len(login) != 1 || time.Since(login[0].At) > time.Minute {
		t.Errorf("entry without a time: %+v, want stamped now", login)
	}
}

// InsertAudit writes through a transaction it is given, so an audit entry commits or rolls back
// with the change it records.
func TestInsertAuditInTransaction(t *testing.T) {
	t.Parallel()
	st, url := open(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	for _, commit := range []bool{false, true} {
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if err := st.InsertAudit(ctx, tx, store.AuditEntry{Actor: "alice", Action: "resource.put", Target: fmt.Sprint(commit), Outcome: store.AuditSuccess}); err != nil {
			t.Fatal(err)
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	es, err := st.ListAudit(ctx, store.AuditFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 1 || es[0].Target != "true" {
		t.Errorf("entries %+v, want only the committed one", es)
	}
}
