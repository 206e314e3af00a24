package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// RevisionChannel is the PostgreSQL NOTIFY channel that carries each committed revision's
// number. It only wakes subscribers; they read what changed from the revisions table.
const RevisionChannel = "sluice_revisions"

// Key names a resource.
type Key struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
}

func (k Key) String() string { return k.Kind + " " + k.Namespace + "/" + k.Name }

// Object is a stored resource in the shape users write it: apiVersion, kind, metadata, spec.
type Object struct {
	APIVersion string          `json:"apiVersion"`
	Kind       string          `json:"kind"`
	Metadata   ObjectMeta      `json:"metadata"`
	Spec       json.RawMessage `json:"spec"`
}

// ObjectMeta is an object's metadata. ResourceVersion, CreationTimestamp, UpdatedAt and
// UpdatedBy are the store's bookkeeping; a write ignores them except ResourceVersion as a
// precondition.
type ObjectMeta struct {
	Name              string            `json:"name"`
	Namespace         string            `json:"namespace"`
	Labels            map[string]string `json:"labels,omitempty"`
	Annotations       map[string]string `json:"annotations,omitempty"`
	ResourceVersion   string            `json:"resourceVersion,omitempty"`
	CreationTimestamp *time.Time        `json:"creationTimestamp,omitempty"`
	UpdatedAt         *time.Time        `json:"updatedAt,omitempty"`
	UpdatedBy         string            `json:"updatedBy,omitempty"`
}

// Key returns the object's key.
func (o *Object) Key() Key { return Key{o.Kind, o.Metadata.Namespace, o.Metadata.Name} }

// Version returns the object's resourceVersion as a number (0 when unset).
func (o *Object) Version() int64 {
	v, _ := strconv.ParseInt(o.Metadata.ResourceVersion, 10, 64)
	return v
}

// content is the part of an object that a change can alter; revisions store it.
func (o *Object) content() *Object {
	if o == nil {
		return nil
	}
	return &Object{
		APIVersion: o.APIVersion, Kind: o.Kind, Spec: o.Spec,
		Metadata: ObjectMeta{
			Name: o.Metadata.Name, Namespace: o.Metadata.Namespace,
			Labels: o.Metadata.Labels, Annotations: o.Metadata.Annotations,
		},
	}
}

// sameContent reports whether a write of b over a would change nothing.
func sameContent(a, b *Object) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.APIVersion == b.APIVersion && maps.Equal(a.Metadata.Labels, b.Metadata.Labels) &&
		maps.Equal(a.Metadata.Annotations, b.Metadata.Annotations) && jsonEqual(a.Spec, b.Spec)
}

// jsonEqual compares two JSON documents by value: JSONB normalises key order and spacing, so
// bytes would differ for the same content.
func jsonEqual(a, b json.RawMessage) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(va, vb)
}

// Mutation is one change in a commit.
type Mutation struct {
	Key Key
	// Object is the new content; nil deletes the resource.
	Object *Object
	// IfVersion, when non-zero, requires the stored resourceVersion to equal it.
	IfVersion int64
	// Create requires that the resource not exist yet.
	Create bool
}

// CommitMeta says who changes what and why.
type CommitMeta struct {
	Actor      string
	Message    string
	ClientAddr string
	// RolledBackTo marks a rollback to that revision.
	RolledBackTo int64
	// DryRun runs every check and reports what would change, then writes nothing.
	DryRun bool
}

// Result says what a commit did to one resource.
type Result struct {
	Key
	// Action is "created", "updated", "deleted" or "unchanged".
	Action          string  `json:"action"`
	ResourceVersion string  `json:"resourceVersion,omitempty"`
	Before          *Object `json:"-"`
	After           *Object `json:"-"`
}

// CommitResult is what Commit did. Revision is 0 when nothing changed.
type CommitResult struct {
	Revision int64
	Results  []Result
}

// ErrNotFound reports a resource or revision that does not exist.
var ErrNotFound = errors.New("not found")

// NotFoundError names what was not found.
type NotFoundError struct{ What string }

func (e *NotFoundError) Error() string        { return e.What + " not found" }
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// ConflictError reports a write whose precondition failed: the resource changed since the
// writer read it (or exists already, for a create).
type ConflictError struct {
	Key       Key
	Expected  int64
	Current   int64
	UpdatedBy string
	UpdatedAt time.Time
	// Exists is set for a create of a resource that exists.
	Exists bool
}

func (e *ConflictError) Error() string {
	if e.Exists {
		return fmt.Sprintf("%s already exists (resourceVersion %d, changed by %s at %s)", e.Key, e.Current, e.UpdatedBy, e.UpdatedAt.Format(time.RFC3339))
	}
	return fmt.Sprintf("%s was changed by %s at %s (resourceVersion %d, you sent %d): read it again, review the change, and retry",
		e.Key, e.UpdatedBy, e.UpdatedAt.Format(time.RFC3339), e.Current, e.Expected)
}

// Checker validates the whole configuration as it would be after a commit. It runs inside the
// commit's transaction, after every other writer has finished, so what it sees is exactly what
// the commit produces.
type Checker func(world []*Object, changed []Result) error

// Commit applies muts in one transaction as one revision: the resource rows, a revision row
// with a change row per resource, the audit entry, and a NOTIFY. Writers are serialised on
// the revision counter, so check sees the configuration no other commit can change meanwhile.
// Mutations that change nothing are reported as "unchanged"; when all are, no revision is
// written.
func (s *Store) Commit(ctx context.Context, meta CommitMeta, muts []Mutation, check Checker) (*CommitResult, error) {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit

	var current int64
	if err := tx.QueryRow(ctx, `SELECT value FROM mesh_revision FOR UPDATE`).Scan(&current); err != nil {
		return nil, fmt.Errorf("commit: lock revision counter: %w", err)
	}
	world, err := listObjects(ctx, tx, "", "")
	if err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	byKey := make(map[Key]*Object, len(world))
	for _, o := range world {
		byKey[o.Key()] = o
	}

	res := &CommitResult{}
	var changed []Result
	for _, m := range muts {
		old := byKey[m.Key]
		if old == nil && m.Object == nil {
			return nil, &NotFoundError{What: m.Key.String()}
		}
		if old != nil && m.Create {
			return nil, &ConflictError{Key: m.Key, Current: old.Version(), UpdatedBy: old.Metadata.UpdatedBy, UpdatedAt: deref(old.Metadata.UpdatedAt), Exists: true}
		}
		if m.IfVersion != 0 && (old == nil || old.Version() != m.IfVersion) {
			ce := &ConflictError{Key: m.Key, Expected: m.IfVersion}
			if old != nil {
				ce.Current, ce.UpdatedBy, ce.UpdatedAt = old.Version(), old.Metadata.UpdatedBy, deref(old.Metadata.UpdatedAt)
			}
			return nil, ce
		}
		r := Result{Key: m.Key, Before: old.content(), After: m.Object.content()}
		switch {
		case old == nil:
			r.Action = "created"
		case m.Object == nil:
			r.Action = "deleted"
		case sameContent(old, m.Object):
			r.Action = "unchanged"
			r.ResourceVersion = old.Metadata.ResourceVersion
		default:
			r.Action = "updated"
		}
		if r.Action != "unchanged" {
			if m.Object == nil {
				delete(byKey, m.Key)
			} else {
				byKey[m.Key] = m.Object
			}
			changed = append(changed, r)
		}
		res.Results = append(res.Results, r)
	}

	if check != nil {
		after := slices.Collect(maps.Values(byKey))
		slices.SortFunc(after, func(a, b *Object) int { return compareKeys(a.Key(), b.Key()) })
		if err := check(after, changed); err != nil {
			return nil, err
		}
	}
	if len(changed) == 0 || meta.DryRun {
		return res, nil
	}

	rev := current + 1
	if _, err := tx.Exec(ctx, `UPDATE mesh_revision SET value = $1`, rev); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	var rolledBack *int64
	if meta.RolledBackTo > 0 {
		rolledBack = &meta.RolledBackTo
	}
	if _, err := tx.Exec(ctx, `INSERT INTO revisions (revision, actor, message, rolled_back_to) VALUES ($1, $2, $3, $4)`,
		rev, meta.Actor, meta.Message, rolledBack); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	version := strconv.FormatInt(rev, 10)
	for i := range res.Results {
		r := &res.Results[i]
		if r.Action == "unchanged" {
			continue
		}
		r.ResourceVersion = version
		if err := writeChange(ctx, tx, rev, meta.Actor, r); err != nil {
			return nil, fmt.Errorf("commit: %s: %w", r.Key, err)
		}
		// The audit row commits with the change it records, or not at all.
		before, _ := jsonOrNil(r.Before)
		after, _ := jsonOrNil(r.After)
		detail := "revision " + version
		if meta.Message != "" {
			detail += ": " + meta.Message
		}
		if err := s.InsertAudit(ctx, tx, AuditEntry{
			Actor: meta.Actor, Action: "resource." + strings.TrimSuffix(r.Action, "d"),
			Target: r.Kind + "/" + r.Namespace + "/" + r.Name, Outcome: AuditSuccess, Detail: detail,
			ClientAddr: meta.ClientAddr, Before: before, After: after,
		}); err != nil {
			return nil, fmt.Errorf("commit: audit %s: %w", r.Key, err)
		}
	}
	if _, err := tx.Exec(ctx, `SELECT pg_notify($1, $2)`, RevisionChannel, version); err != nil {
		return nil, fmt.Errorf("commit: notify: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("commit: %w", err)
	}
	res.Revision = rev
	return res, nil
}

func writeChange(ctx context.Context, tx pgx.Tx, rev int64, actor string, r *Result) error {
	action := map[string]string{"created": "create", "updated": "update", "deleted": "delete"}[r.Action]
	before, err := jsonOrNil(r.Before)
	if err != nil {
		return err
	}
	after, err := jsonOrNil(r.After)
	if err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, `INSERT INTO revision_changes (revision, kind, namespace, name, action, before, after)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, rev, r.Kind, r.Namespace, r.Name, action, before, after); err != nil {
		return err
	}
	if r.After == nil {
		_, err := tx.Exec(ctx, `DELETE FROM resources WHERE kind = $1 AND namespace = $2 AND name = $3`, r.Kind, r.Namespace, r.Name)
		return err
	}
	labels, _ := json.Marshal(nonNil(r.After.Metadata.Labels))
	annotations, _ := json.Marshal(nonNil(r.After.Metadata.Annotations))
	_, err = tx.Exec(ctx, `
		INSERT INTO resources (kind, namespace, name, api_version, labels, annotations, spec, resource_version, updated_by)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
		ON CONFLICT (kind, namespace, name) DO UPDATE SET
			api_version = EXCLUDED.api_version, labels = EXCLUDED.labels, annotations = EXCLUDED.annotations,
			spec = EXCLUDED.spec, resource_version = EXCLUDED.resource_version,
			updated_at = now(), updated_by = EXCLUDED.updated_by`,
		r.Kind, r.Namespace, r.Name, r.After.APIVersion, labels, annotations, []byte(r.After.Spec), rev, actor)
	return err
}

func jsonOrNil(o *Object) ([]byte, error) {
	if o == nil {
		return nil, nil
	}
	return json.Marshal(o)
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

func deref(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}

func compareKeys(a, b Key) int {
	return cmp.Or(strings.Compare(a.Kind, b.Kind), strings.Compare(a.Namespace, b.Namespace), strings.Compare(a.Name, b.Name))
}

// Get returns one resource.
func (s *Store) Get(ctx context.Context, k Key) (*Object, error) {
	objs, err := queryObjects(ctx, s.pool, `WHERE kind = $1 AND namespace = $2 AND name = $3`, k.Kind, k.Namespace, k.Name)
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", k, err)
	}
	if len(objs) == 0 {
		return nil, &NotFoundError{What: k.String()}
	}
	return objs[0], nil
}

// List returns the resources of a kind (every kind when empty) in a namespace (every
// namespace when empty), sorted by kind, namespace and name.
func (s *Store) List(ctx context.Context, kind, namespace string) ([]*Object, error) {
	return listObjects(ctx, s.pool, kind, namespace)
}

func listObjects(ctx context.Context, q querier, kind, namespace string) ([]*Object, error) {
	objs, err := queryObjects(ctx, q, `WHERE ($1 = '' OR kind = $1) AND ($2 = '' OR namespace = $2) ORDER BY kind, namespace, name`, kind, namespace)
	if err != nil {
		return nil, fmt.Errorf("list resources: %w", err)
	}
	return objs, nil
}

func queryObjects(ctx context.Context, q querier, where string, args ...any) ([]*Object, error) {
	rows, err := q.Query(ctx, `SELECT kind, namespace, name, api_version, labels, annotations, spec,
		resource_version, created_at, updated_at, updated_by FROM resources `+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []*Object
	for rows.Next() {
		var (
			o                    Object
			labels, annots, spec []byte
			rv                   int64
			createdAt, updatedAt time.Time
		)
		if err := rows.Scan(&o.Kind, &o.Metadata.Namespace, &o.Metadata.Name, &o.APIVersion, &labels, &annots,
			&spec, &rv, &createdAt, &updatedAt, &o.Metadata.UpdatedBy); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(labels, &o.Metadata.Labels); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(annots, &o.Metadata.Annotations); err != nil {
			return nil, err
		}
		if len(o.Metadata.Labels) == 0 {
			o.Metadata.Labels = nil
		}
		if len(o.Metadata.Annotations) == 0 {
			o.Metadata.Annotations = nil
		}
		o.Spec = spec
		o.Metadata.ResourceVersion = strconv.FormatInt(rv, 10)
		o.Metadata.CreationTimestamp, o.Metadata.UpdatedAt = &createdAt, &updatedAt
		out = append(out, &o)
	}
	return out, rows.Err()
}

// CurrentRevision returns the newest committed revision (0 before the first).
func (s *Store) CurrentRevision(ctx context.Context) (int64, error) {
	var v int64
	if err := s.pool.QueryRow(ctx, `SELECT value FROM mesh_revision`).Scan(&v); err != nil {
		return 0, fmt.Errorf("current revision: %w", err)
	}
	return v, nil
}
