// Package changes is the one way mesh configuration changes: every create, update, delete,
// apply and rollback — from the REST API, the console's slider, or sluicectl — goes through
// Service, which parses, validates the configuration as it would be after the change, and
// commits it as one revision. Validation runs inside the commit's transaction, after every
// other writer is done, so no two concurrent changes can together produce a configuration
// that neither would have been allowed to.
package changes

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/store"
)

// Store is the configuration store.
type Store interface {
	Commit(ctx context.Context, meta store.CommitMeta, muts []store.Mutation, check store.Checker) (*store.CommitResult, error)
	Get(ctx context.Context, k store.Key) (*store.Object, error)
	List(ctx context.Context, kind, namespace string) ([]*store.Object, error)
	StateAt(ctx context.Context, k store.Key, rev int64) (*store.Object, error)
	ChangedSince(ctx context.Context, rev int64) ([]store.Key, error)
	CurrentRevision(ctx context.Context) (int64, error)
}

// Actor is who makes a change, for the revision and the audit log.
type Actor struct {
	Name       string
	ClientAddr string
}

// Outcome is what a change did (or, for a dry run, would do).
type Outcome struct {
	// Revision is the new revision, or 0 when nothing changed or on a dry run.
	Revision int64
	Results  []Result
}

// Result is one resource's part of an outcome.
type Result struct {
	store.Result
	// Diff is a unified diff of the resource's YAML, before and after.
	Diff string `json:"diff,omitempty"`
}

// Service applies changes.
type Service struct {
	store Store
	// now is the clock that stamps a FaultExperiment's start.
	now func() time.Time
}

// New returns a Service on st.
func New(st Store) *Service { return &Service{store: st, now: time.Now} }

// ErrEmpty reports an apply with no documents.
var ErrEmpty = errors.New("the request holds no resources")

// Apply creates or updates every resource of a multi-document YAML (or JSON) input, all in one
// revision: if any document is invalid, nothing is written. Error paths start with the
// document's index, as "documents[2].spec.http[0]...".
func (s *Service) Apply(ctx context.Context, who Actor, input []byte, message string, dryRun bool) (*Outcome, error) {
	rs, err := config.ParseYAML(input)
	if err != nil {
		return nil, inFirstDocument(err)
	}
	if len(rs) == 0 {
		return nil, ErrEmpty
	}
	for _, r := range rs {
		// Validate prefixes its paths with the Origin.
		r.Origin = firstDocumentPath(r.Origin)
	}
	muts := make([]store.Mutation, 0, len(rs))
	for _, r := range rs {
		o := ToObject(r)
		muts = append(muts, store.Mutation{Key: o.Key(), Object: o})
	}
	return s.commit(ctx, who, message, 0, dryRun, muts, rs)
}

// firstDocument is the path of a one-document input's document. ParseYAML leaves the index
// out of such an input's paths ("spec.hosts[0]"); an apply promises it is always there
// ("documents[0].spec.hosts[0]"), so a client need not count the documents it sent to read
// the errors.
const firstDocument = "documents[0]"

// firstDocumentPath puts a path of a one-document input under firstDocument; a path that has
// a document index already is returned as it is.
func firstDocumentPath(path string) string {
	switch {
	case strings.HasPrefix(path, "documents["):
		return path
	case path == "":
		return firstDocument
	}
	return firstDocument + "." + path
}

// inFirstDocument gives ParseYAML's errors the document index they lack. An error without a
// path concerns the input as a whole (too large, no documents at all) and keeps none.
func inFirstDocument(err error) error {
	var errs config.Errors
	if !errors.As(err, &errs) {
		return err
	}
	out := make(config.Errors, len(errs))
	for i, e := range errs {
		if e.Path != "" {
			e.Path = firstDocumentPath(e.Path)
		}
		out[i] = e
	}
	return out
}

// Put creates or replaces one resource. key says where the request addressed it; the body's
// kind, namespace and name must agree with it, except that a body without a namespace takes
// key's, and a key without a name (a create) takes the body's. ifVersion, when not zero, is
// the resourceVersion the caller last read; create=true refuses to replace.
func (s *Service) Put(ctx context.Context, who Actor, key store.Key, body []byte, ifVersion int64, create bool, dryRun bool) (*Outcome, error) {
	rs, err := config.ParseYAML(body)
	if err != nil {
		return nil, err
	}
	if len(rs) != 1 {
		return nil, config.Errors{{Message: fmt.Sprintf("the body holds %d resources; send exactly one here, or use POST /api/v1/apply for several", len(rs))}}
	}
	r := rs[0]
	if r.Namespace != key.Namespace && !setsNamespace(body, r) {
		// ParseYAML put the resource in the default namespace; the URL says where it goes.
		r.Namespace = key.Namespace
	}
	var errs config.Errors
	if r.Kind != key.Kind {
		errs = append(errs, config.FieldError{Path: "kind", Message: fmt.Sprintf("kind %s does not match the URL, which addresses a %s", r.Kind, key.Kind)})
	}
	if key.Name != "" && r.Name != key.Name {
		errs = append(errs, config.FieldError{Path: "metadata.name", Message: fmt.Sprintf("name %q does not match the URL's %q", r.Name, key.Name)})
	}
	if r.Namespace != key.Namespace {
		errs = append(errs, config.FieldError{Path: "metadata.namespace", Message: fmt.Sprintf("namespace %q does not match the URL's %q", r.Namespace, key.Namespace)})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	o := ToObject(r)
	return s.commit(ctx, who, "", 0, dryRun, []store.Mutation{{Key: o.Key(), Object: o, IfVersion: ifVersion, Create: create}}, rs)
}

// setsNamespace reports whether body, which parsed as the one resource r, says which namespace
// r is in. When in doubt (a List, empty documents before r's) it says so, which leaves the URL
// and the body to agree.
func setsNamespace(body []byte, r *config.Resource) bool {
	var probe struct {
		Kind     string `json:"kind"`
		Metadata struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(body, &probe); err != nil || probe.Kind != r.Kind || probe.Metadata.Name != r.Name {
		return true
	}
	return probe.Metadata.Namespace != ""
}

// Delete removes one resource; ifVersion as for Put.
func (s *Service) Delete(ctx context.Context, who Actor, key store.Key, ifVersion int64) (*Outcome, error) {
	return s.commit(ctx, who, "", 0, false, []store.Mutation{{Key: key, IfVersion: ifVersion}}, nil)
}

// RollbackResource restores one resource to what it was right after revision rev (deleting
// it if it did not exist then), as a new revision.
func (s *Service) RollbackResource(ctx context.Context, who Actor, key store.Key, rev int64) (*Outcome, error) {
	if err := s.checkRevision(ctx, rev); err != nil {
		return nil, err
	}
	old, err := s.store.StateAt(ctx, key, rev)
	if err != nil {
		return nil, err
	}
	if old == nil {
		if _, err := s.store.Get(ctx, key); err != nil {
			return nil, &store.NotFoundError{What: fmt.Sprintf("%s at revision %d or now", key, rev)}
		}
	}
	msg := fmt.Sprintf("roll back %s to revision %d", key, rev)
	return s.commit(ctx, who, msg, rev, false, []store.Mutation{{Key: key, Object: old}}, nil)
}

// RollbackMesh restores every resource changed after revision rev to its state right after
// rev, as one new revision.
func (s *Service) RollbackMesh(ctx context.Context, who Actor, rev int64) (*Outcome, error) {
	if err := s.checkRevision(ctx, rev); err != nil {
		return nil, err
	}
	keys, err := s.store.ChangedSince(ctx, rev)
	if err != nil {
		return nil, err
	}
	var muts []store.Mutation
	for _, k := range keys {
		old, err := s.store.StateAt(ctx, k, rev)
		if err != nil {
			return nil, err
		}
		if old == nil {
			if _, err := s.store.Get(ctx, k); errors.Is(err, store.ErrNotFound) {
				continue // created after rev and deleted since: nothing to do
			}
		}
		muts = append(muts, store.Mutation{Key: k, Object: old})
	}
	msg := fmt.Sprintf("roll back the mesh to revision %d", rev)
	return s.commit(ctx, who, msg, rev, false, muts, nil)
}

func (s *Service) checkRevision(ctx context.Context, rev int64) error {
	cur, err := s.store.CurrentRevision(ctx)
	if err != nil {
		return err
	}
	if rev < 0 || rev > cur {
		return &store.NotFoundError{What: fmt.Sprintf("revision %d (the newest is %d)", rev, cur)}
	}
	return nil
}

func (s *Service) commit(ctx context.Context, who Actor, message string, rolledBackTo int64, dryRun bool, muts []store.Mutation, parsed []*config.Resource) (*Outcome, error) {
	meta := store.CommitMeta{Actor: who.Name, ClientAddr: who.ClientAddr, Message: message, RolledBackTo: rolledBackTo, DryRun: dryRun}
	if err := s.stampExperiments(ctx, muts, parsed); err != nil {
		return nil, err
	}
	res, err := s.store.Commit(ctx, meta, muts, func(world []*store.Object, changed []store.Result) error {
		return check(world, changed, parsed)
	})
	if err != nil {
		return nil, err
	}
	out := &Outcome{Revision: res.Revision}
	for _, r := range res.Results {
		out.Results = append(out.Results, Result{Result: r, Diff: Diff(r.Before, r.After)})
	}
	return out, nil
}

// check validates the configuration after a change. The changed resources are validated
// against everything else; when resources are deleted, the ones that may refer to them are
// validated again, so that deleting a DestinationRule a route still needs is refused.
func check(world []*store.Object, changed []store.Result, parsed []*config.Resource) error {
	catalog := make(config.Catalog, 0, len(world))
	byKey := map[store.Key]*config.Resource{}
	for _, o := range world {
		r, err := FromObject(o)
		if err != nil {
			return fmt.Errorf("stored %s no longer decodes: %w", o.Key(), err)
		}
		catalog = append(catalog, r)
		byKey[o.Key()] = r
	}
	// Validate what changes: the parsed documents when there are some (their paths carry each
	// document's origin), else the changed resources as stored. An unchanged document is not
	// validated again, against rules that may have tightened since it was stored.
	written := map[string]bool{}
	var batch []*config.Resource
	for _, c := range changed {
		if c.After != nil {
			written[keyString(c.Key)] = true
			if parsed == nil {
				batch = append(batch, byKey[c.Key])
			}
		}
	}
	for _, r := range parsed {
		if written[r.Key()] {
			batch = append(batch, r)
		}
	}
	errs := config.Validate(batch, catalog)

	deleted := map[string]bool{}
	for _, c := range changed {
		if c.After == nil {
			deleted[c.Kind] = true
		}
	}
	if deleted["DestinationRule"] || deleted["Gateway"] || deleted["ServiceEntry"] {
		var dependents []*config.Resource
		for _, r := range catalog {
			if r.Kind == "VirtualService" {
				dependents = append(dependents, r)
			}
		}
		for _, e := range config.Validate(dependents, catalog) {
			errs = append(errs, config.FieldError{Path: e.Path, Message: "after this change: " + e.Message})
		}
	}
	return errs.Err()
}

func keyString(k store.Key) string { return k.Kind + "/" + k.Namespace + "/" + k.Name }

// ToObject converts a parsed resource into the stored shape.
func ToObject(r *config.Resource) *store.Object {
	return &store.Object{
		APIVersion: r.APIVersion, Kind: r.Kind, Spec: r.SpecJSON,
		Metadata: store.ObjectMeta{Name: r.Name, Namespace: r.Namespace, Labels: r.Labels, Annotations: r.Annotations},
	}
}

// FromObject decodes a stored object. Validation errors name the resource as their origin.
func FromObject(o *store.Object) (*config.Resource, error) {
	spec, err := config.DecodeSpec(o.Kind, o.Spec)
	if err != nil {
		return nil, err
	}
	return &config.Resource{
		APIVersion: o.APIVersion, Kind: o.Kind, Namespace: o.Metadata.Namespace, Name: o.Metadata.Name,
		Labels: o.Metadata.Labels, Annotations: o.Metadata.Annotations, Spec: spec, SpecJSON: o.Spec,
		Origin: strings.ToLower(o.Kind) + "/" + o.Metadata.Namespace + "/" + o.Metadata.Name,
	}, nil
}

// YAML renders an object as users write it, so that it can be edited and applied again. Of
// the store's bookkeeping it keeps resourceVersion and creationTimestamp, which an apply
// accepts (a PUT takes the resourceVersion as its precondition), and leaves out updatedAt and
// updatedBy, which an apply refuses as unknown fields.
func YAML(o *store.Object) string {
	if o == nil {
		return ""
	}
	c := *o
	c.Metadata.UpdatedAt, c.Metadata.UpdatedBy = nil, ""
	b, err := yaml.Marshal(&c)
	if err != nil {
		return ""
	}
	return string(b)
}
