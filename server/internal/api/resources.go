package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"
	"sigs.k8s.io/yaml"

	"github.com/sluicemesh/sluice/server/internal/changes"
	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/store"
)

// ConfigReader reads stored configuration and its history.
type ConfigReader interface {
	Get(ctx context.Context, k store.Key) (*store.Object, error)
	List(ctx context.Context, kind, namespace string) ([]*store.Object, error)
	Revisions(ctx context.Context, f store.RevisionFilter) ([]store.Revision, error)
	GetRevision(ctx context.Context, rev int64) (*store.Revision, error)
	StateAt(ctx context.Context, k store.Key, rev int64) (*store.Object, error)
	CurrentRevision(ctx context.Context) (int64, error)
}

// maxApplyBytes bounds an apply's body; it matches config.MaxInputBytes.
const maxApplyBytes = config.MaxInputBytes

// resourceKey reads the resource addressed by the URL. Its kind comes from the plural.
func resourceKey(r *http.Request) (store.Key, error) {
	plural := chi.URLParam(r, "kind")
	kind := config.KindFromPlural(plural)
	if kind == "" {
		return store.Key{}, &Error{Status: http.StatusNotFound, Message: fmt.Sprintf("%q is not a resource kind: use one of %s", plural, pluralList())}
	}
	return store.Key{Kind: kind, Namespace: chi.URLParam(r, "namespace"), Name: chi.URLParam(r, "name")}, nil
}

func pluralList() string {
	var ps []string
	for _, k := range config.SupportedKinds() {
		ps = append(ps, config.KindPlural(k))
	}
	return strings.Join(ps, ", ")
}

// handleListResources answers GET /api/v1/namespaces/{namespace}/{kind} and GET
// /api/v1/{kind} (every namespace), with ?labelSelector=k=v,k2=v2.
func handleListResources(cr ConfigReader, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		key, err := resourceKey(r)
		if err != nil {
			return err
		}
		sel, err := parseSelector(r.URL.Query().Get("labelSelector"))
		if err != nil {
			return err
		}
		objs, err := cr.List(r.Context(), key.Kind, key.Namespace)
		if err != nil {
			return err
		}
		items := make([]*store.Object, 0, len(objs))
		for _, o := range objs {
			if sel.matches(o.Metadata.Labels) {
				items = append(items, o)
			}
		}
		rev, err := cr.CurrentRevision(r.Context())
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"items": items, "revision": rev})
		return nil
	})
}

type selector map[string]string

func parseSelector(s string) (selector, error) {
	sel := selector{}
	if s == "" {
		return sel, nil
	}
	for _, part := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(part, "=")
		if !ok || k == "" {
			return nil, &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("labelSelector %q: want key=value pairs joined by commas, such as app=reviews,version=v2", s)}
		}
		sel[strings.TrimSpace(k)] = strings.TrimSpace(v)
	}
	return sel, nil
}

func (s selector) matches(labels map[string]string) bool {
	for k, v := range s {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// handleGetResource answers one resource, with its resourceVersion as the ETag.
func handleGetResource(cr ConfigReader, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		key, err := resourceKey(r)
		if err != nil {
			return err
		}
		o, err := cr.Get(r.Context(), key)
		if err != nil {
			return err
		}
		w.Header().Set("ETag", strconv.Quote(o.Metadata.ResourceVersion))
		if wantsYAML(r) {
			w.Header().Set("Content-Type", "application/yaml")
			_, _ = io.WriteString(w, changes.YAML(o))
			return nil
		}
		writeJSON(w, http.StatusOK, o)
		return nil
	})
}

func wantsYAML(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "yaml") || r.URL.Query().Get("format") == "yaml"
}

// ifMatch reads the precondition of a write: If-Match, or else the body's
// metadata.resourceVersion (read by the caller). "*" and absence mean none.
func ifMatch(r *http.Request) (int64, error) {
	h := strings.TrimSpace(r.Header.Get("If-Match"))
	if h == "" || h == "*" {
		return 0, nil
	}
	h = strings.TrimPrefix(h, "W/")
	v, err := strconv.ParseInt(strings.Trim(h, `"`), 10, 64)
	if err != nil || v <= 0 {
		return 0, &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("If-Match %q is not a resourceVersion: send the ETag you read", h)}
	}
	return v, nil
}

// bodyVersion reads metadata.resourceVersion from a write's body, when it has one.
func bodyVersion(body []byte) int64 {
	var probe struct {
		Metadata struct {
			ResourceVersion string `json:"resourceVersion"`
		} `json:"metadata"`
	}
	if err := yaml.Unmarshal(body, &probe); err != nil {
		return 0
	}
	v, _ := strconv.ParseInt(probe.Metadata.ResourceVersion, 10, 64)
	return v
}

func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return nil, &Error{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("the body is over the limit of %d bytes: split it into several requests", limit)}
	}
	if err != nil {
		return nil, &Error{Status: http.StatusBadRequest, Message: "reading the body failed: " + err.Error()}
	}
	return b, nil
}

// handlePutResource answers PUT (create or replace) and POST (create) of one resource.
func handlePutResource(svc *changes.Service, log *slog.Logger, create bool) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		key, err := resourceKey(r)
		if err != nil {
			return err
		}
		body, err := readBody(w, r, maxApplyBytes)
		if err != nil {
			return err
		}
		ifv, err := ifMatch(r)
		if err != nil {
			return err
		}
		if ifv == 0 {
			ifv = bodyVersion(body)
		}
		out, err := svc.Put(r.Context(), actor(r), key, body, ifv, create, dryRun(r))
		if err != nil {
			return err
		}
		status := http.StatusOK
		if out.Results[0].Action == "created" && !dryRun(r) {
			status = http.StatusCreated
		}
		if v := out.Results[0].ResourceVersion; v != "" {
			w.Header().Set("ETag", strconv.Quote(v))
		}
		writeJSON(w, status, outcomeView(out, dryRun(r)))
		return nil
	})
}

// handleDeleteResource deletes one resource.
func handleDeleteResource(svc *changes.Service, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		key, err := resourceKey(r)
		if err != nil {
			return err
		}
		ifv, err := ifMatch(r)
		if err != nil {
			return err
		}
		out, err := svc.Delete(r.Context(), actor(r), key, ifv)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, outcomeView(out, false))
		return nil
	})
}

// handleApply answers POST /api/v1/apply: multi-document YAML, all or nothing.
func handleApply(svc *changes.Service, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		body, err := readBody(w, r, maxApplyBytes)
		if err != nil {
			return err
		}
		out, err := svc.Apply(r.Context(), actor(r), body, r.URL.Query().Get("message"), dryRun(r))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, outcomeView(out, dryRun(r)))
		return nil
	})
}

func dryRun(r *http.Request) bool {
	v := r.URL.Query().Get("dryRun")
	return v == "true" || v == "1" || v == "All"
}

// resultView is one resource in a write's answer.
type resultView struct {
	Kind            string `json:"kind"`
	Namespace       string `json:"namespace"`
	Name            string `json:"name"`
	Action          string `json:"action"`
	ResourceVersion string `json:"resourceVersion,omitempty"`
	Diff            string `json:"diff,omitempty"`
}

func outcomeView(out *changes.Outcome, dry bool) map[string]any {
	results := make([]resultView, 0, len(out.Results))
	for _, r := range out.Results {
		v := resultView{Kind: r.Kind, Namespace: r.Namespace, Name: r.Name, Action: r.Action, ResourceVersion: r.ResourceVersion}
		if dry {
			v.Diff = r.Diff
			v.ResourceVersion = ""
		}
		results = append(results, v)
	}
	m := map[string]any{"results": results, "dryRun": dry}
	if out.Revision > 0 {
		m["revision"] = out.Revision
	}
	return m
}

// handleResourceHistory answers the revisions that changed one resource, newest first.
func handleResourceHistory(cr ConfigReader, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		key, err := resourceKey(r)
		if err != nil {
			return err
		}
		f, err := revisionFilter(r)
		if err != nil {
			return err
		}
		f.Key = &key
		revs, err := cr.Revisions(r.Context(), f)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"revisions": revs})
		return nil
	})
}

func revisionFilter(r *http.Request) (store.RevisionFilter, error) {
	var f store.RevisionFilter
	q := r.URL.Query()
	for name, dst := range map[string]*int64{"before": &f.Before, "after": &f.After} {
		if s := q.Get(name); s != "" {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || v < 0 {
				return f, &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("%s=%q is not a revision number", name, s)}
			}
			*dst = v
		}
	}
	if s := q.Get("limit"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > 1000 {
			return f, &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("limit=%q must be a number from 1 to 1000", s)}
		}
		f.Limit = v
	}
	return f, nil
}

// handleListRevisions answers the mesh-wide revision log, newest first.
func handleListRevisions(cr ConfigReader, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		f, err := revisionFilter(r)
		if err != nil {
			return err
		}
		revs, err := cr.Revisions(r.Context(), f)
		if err != nil {
			return err
		}
		cur, err := cr.CurrentRevision(r.Context())
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, map[string]any{"revisions": revs, "current": cur})
		return nil
	})
}

func revisionParam(r *http.Request, name string) (int64, error) {
	s := chi.URLParam(r, name)
	if s == "" {
		s = r.URL.Query().Get(name)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil || v < 0 {
		return 0, &Error{Status: http.StatusBadRequest, Message: fmt.Sprintf("%s %q is not a revision number", name, s)}
	}
	return v, nil
}

// handleGetRevision answers one revision with its changes.
func handleGetRevision(cr ConfigReader, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		rev, err := revisionParam(r, "revision")
		if err != nil {
			return err
		}
		out, err := cr.GetRevision(r.Context(), rev)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	})
}

// handleDiff answers GET /api/v1/diff?from=A&to=B: for every resource that differs between
// the two revisions, its state at each and a unified diff. With kind, namespace and name it
// compares that resource only.
func handleDiff(cr ConfigReader, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		from, err := revisionParam(r, "from")
		if err != nil {
			return err
		}
		to, err := revisionParam(r, "to")
		if err != nil {
			return err
		}
		cur, err := cr.CurrentRevision(r.Context())
		if err != nil {
			return err
		}
		if from > cur || to > cur {
			return &Error{Status: http.StatusNotFound, Message: fmt.Sprintf("the newest revision is %d", cur)}
		}
		lo, hi := min(from, to), max(from, to)
		keys := map[store.Key]bool{}
		if q := r.URL.Query(); q.Get("name") != "" {
			kind := config.KindFromPlural(q.Get("kind"))
			if kind == "" {
				kind = q.Get("kind")
			}
			keys[store.Key{Kind: kind, Namespace: q.Get("namespace"), Name: q.Get("name")}] = true
		} else {
			revs, err := cr.Revisions(r.Context(), store.RevisionFilter{After: lo, Before: hi + 1, Limit: 1000, Ascending: true})
			if err != nil {
				return err
			}
			for _, rv := range revs {
				for _, c := range rv.Changes {
					keys[c.Key] = true
				}
			}
		}
		type entry struct {
			store.Key
			From *store.Object `json:"from"`
			To   *store.Object `json:"to"`
			Diff string        `json:"diff"`
		}
		out := []entry{}
		for k := range keys {
			a, err := cr.StateAt(r.Context(), k, from)
			if err != nil {
				return err
			}
			b, err := cr.StateAt(r.Context(), k, to)
			if err != nil {
				return err
			}
			if d := changes.Diff(a, b); d != "" {
				out = append(out, entry{Key: k, From: a, To: b, Diff: d})
			}
		}
		slices.SortFunc(out, func(a, b entry) int {
			return strings.Compare(a.Kind+"/"+a.Namespace+"/"+a.Name, b.Kind+"/"+b.Namespace+"/"+b.Name)
		})
		writeJSON(w, http.StatusOK, map[string]any{"from": from, "to": to, "resources": out})
		return nil
	})
}

// rollbackRequest is the body of a rollback.
type rollbackRequest struct {
	Revision int64 `json:"revision"`
}

// handleRollbackResource restores one resource to its state at a revision.
func handleRollbackResource(svc *changes.Service, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		key, err := resourceKey(r)
		if err != nil {
			return err
		}
		var req rollbackRequest
		if err := decodeJSON(w, r, &req); err != nil {
			return err
		}
		out, err := svc.RollbackResource(r.Context(), actor(r), key, req.Revision)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, outcomeView(out, false))
		return nil
	})
}

// handleRollbackMesh restores every resource to its state at a revision.
func handleRollbackMesh(svc *changes.Service, log *slog.Logger) http.HandlerFunc {
	return handle(log, func(w http.ResponseWriter, r *http.Request) error {
		rev, err := revisionParam(r, "revision")
		if err != nil {
			return err
		}
		out, err := svc.RollbackMesh(r.Context(), actor(r), rev)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, outcomeView(out, false))
		return nil
	})
}

// decodeJSON reads a small JSON body strictly.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := readBody(w, r, 64<<10)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return &Error{Status: http.StatusBadRequest, Message: "the body is not the expected JSON: " + err.Error()}
	}
	return nil
}

// clientAddr is the request's peer address, without the port.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// actor names the signed-in principal and the client address, for revisions and the audit.
func actor(r *http.Request) changes.Actor {
	return changes.Actor{Name: principal(r).Username, ClientAddr: clientAddr(r)}
}
