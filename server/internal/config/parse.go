package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"sigs.k8s.io/yaml"
)

// Input bounds of ParseYAML. They keep one request from holding the server's memory: a real
// mesh applies a few dozen resources at a time.
const (
	MaxInputBytes = 4 << 20
	MaxDocuments  = 1000
)

// ParseYAML parses mesh resources from YAML: one document or several separated by "---" lines
// (empty documents are skipped), a JSON object or a stream of them, or a "kind: List" whose
// items are resources. It checks each document against its kind's schema (unknown fields, type
// mismatches, enum values, metadata) and provisions defaults, but does not check meaning: that
// is Validate's job.
//
// On any problem ParseYAML returns no resources and an Errors holding every problem found; an
// input without any document is a problem too.
//
// When the input holds more than one document, paths start with the document's index among
// the non-empty documents, e.g. "documents[2].spec.http[0].route[1].weigth"; the items of a
// List add ".items[3]".
func ParseYAML(data []byte) ([]*Resource, error) {
	if len(data) > MaxInputBytes {
		return nil, Errors{{Message: fmt.Sprintf("the input is %d bytes, over the limit of %d (4 MiB): split it into several requests", len(data), MaxInputBytes)}}
	}
	docs, errs := splitDocuments(data)
	if len(errs) > 0 {
		return nil, errs
	}
	if len(docs) == 0 {
		return nil, Errors{{Message: "the input holds no resources"}}
	}
	p := parser{}
	for i, d := range docs {
		origin := ""
		if len(docs) > 1 {
			origin = index("documents", i)
		}
		if d.err != "" {
			p.errs.add(origin, d.err)
			continue
		}
		p.document(origin, d.tree, true)
	}
	if len(p.resources) > MaxDocuments {
		return nil, Errors{{Message: fmt.Sprintf("the input holds %d resources, over the limit of %d: split it into several requests", len(p.resources), MaxDocuments)}}
	}
	if len(p.errs) > 0 {
		return nil, p.errs
	}
	return p.resources, nil
}

// rawDocument is one non-empty document as a generic JSON tree (maps, slices, strings,
// json.Number, bools, nil), or the reason it could not be read.
type rawDocument struct {
	tree any
	err  string
}

func splitDocuments(data []byte) ([]rawDocument, Errors) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
	trimmed := bytes.TrimLeft(data, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		if docs, ok, errs := jsonDocuments(trimmed); ok {
			return docs, errs
		}
		// Not JSON after all (a YAML flow mapping such as "{a: b}"): read it as YAML.
	}
	return yamlDocuments(data)
}

// jsonDocuments reads a stream of JSON values. ok is false when the first value is not valid
// JSON, so that the input can be read as YAML instead.
func jsonDocuments(data []byte) (docs []rawDocument, ok bool, errs Errors) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	for {
		var v any
		err := dec.Decode(&v)
		if errors.Is(err, io.EOF) {
			return docs, true, nil
		}
		if err != nil {
			if len(docs) == 0 {
				return nil, false, nil
			}
			docs = append(docs, rawDocument{err: "invalid JSON: " + err.Error()})
			return docs, true, nil
		}
		if v == nil {
			continue
		}
		if len(docs) == MaxDocuments {
			return nil, true, tooManyDocuments()
		}
		docs = append(docs, rawDocument{tree: v})
	}
}

func tooManyDocuments() Errors {
	return Errors{{Message: fmt.Sprintf("the input holds more than %d documents: split it into several requests", MaxDocuments)}}
}

// yamlDocuments splits data at "---" lines, like kubectl, and converts each document to a
// JSON tree. Duplicate keys are errors, since YAML would otherwise silently keep the last.
func yamlDocuments(data []byte) ([]rawDocument, Errors) {
	var docs []rawDocument
	for _, chunk := range splitYAML(data) {
		if !hasContent(chunk.text) {
			continue
		}
		if len(docs) == MaxDocuments {
			return nil, tooManyDocuments()
		}
		j, err := yaml.YAMLToJSONStrict(chunk.text)
		if err != nil {
			docs = append(docs, rawDocument{err: "invalid YAML: " + yamlMessage(err, chunk.line)})
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(j))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			docs = append(docs, rawDocument{err: "invalid YAML: " + err.Error()})
			continue
		}
		if v == nil {
			continue // a document holding only "~" or "null"
		}
		docs = append(docs, rawDocument{tree: v})
	}
	return docs, nil
}

type yamlChunk struct {
	text []byte
	line int // line number of the chunk's first line in the whole input, from 1
}

func splitYAML(data []byte) []yamlChunk {
	var chunks []yamlChunk
	start, startLine, line := 0, 1, 1
	for pos := 0; pos <= len(data); {
		end := bytes.IndexByte(data[pos:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += pos
		}
		text := bytes.TrimRight(data[pos:end], "\r")
		if rest, ok := bytes.CutPrefix(text, []byte("---")); ok && (len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t') {
			chunks = append(chunks, yamlChunk{text: data[start:pos], line: startLine})
			// "--- {a: b}" starts the next document on the separator's own line.
			start, startLine = pos+3, line
		}
		pos = end + 1
		line++
	}
	if start < len(data) {
		chunks = append(chunks, yamlChunk{text: data[start:], line: startLine})
	}
	return chunks
}

// hasContent reports whether a YAML chunk holds more than blank lines, comments and
// directives.
func hasContent(text []byte) bool {
	for len(text) > 0 {
		var line []byte
		line, text, _ = bytes.Cut(text, []byte("\n"))
		line = bytes.TrimSpace(line)
		if len(line) > 0 && line[0] != '#' && line[0] != '%' && string(line) != "..." {
			return true
		}
	}
	return false
}

var yamlLine = regexp.MustCompile(`line (\d+)`)

// yamlMessage strips the converter's prefixes from a YAML error and makes its line numbers
// count from the start of the whole input rather than of the document.
func yamlMessage(err error, firstLine int) string {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "error converting YAML to JSON: ")
	msg = strings.TrimPrefix(msg, "yaml: ")
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 300 { // a document with thousands of duplicate keys has as many complaints
		msg = msg[:300] + "…"
	}
	return yamlLine.ReplaceAllStringFunc(msg, func(s string) string {
		n, err := strconv.Atoi(s[len("line "):])
		if err != nil {
			return s
		}
		return "line " + strconv.Itoa(n+firstLine-1)
	})
}

type parser struct {
	resources []*Resource
	errs      Errors
}

var topLevelFields = []string{"apiVersion", "kind", "metadata", "spec", "status"}

func (p *parser) document(origin string, tree any, listAllowed bool) {
	obj, ok := tree.(map[string]any)
	if !ok {
		p.errs.add(origin, "a document must be an object with apiVersion, kind, metadata and spec, not "+describe(tree)+
			": separate several documents with --- lines, or use kind: List")
		return
	}
	kind, okKind := p.stringField(origin, obj, "kind")
	if kind == "List" { // apiVersion v1 by convention, not checked
		if !listAllowed {
			p.errs.add(field(origin, "kind"), "a List cannot hold another List: put its items in the outer one")
			return
		}
		p.list(origin, obj)
		return
	}
	apiVersion, okVersion := p.stringField(origin, obj, "apiVersion")
	if !okKind {
		return
	}
	info := lookupKind(kind)
	if info == nil {
		p.errs.add(field(origin, "kind"), fmt.Sprintf("kind %s is not supported by Sluice (supported: %s)", kind, supportedKindList()))
		return
	}
	if okVersion && !info.serves(apiVersion) {
		p.errs.add(field(origin, "apiVersion"), fmt.Sprintf("apiVersion %s is not accepted for kind %s: use %s", apiVersion, kind, strings.Join(info.versions, " or ")))
		okVersion = false
	}
	for _, k := range sortedKeys(obj) {
		if !slices.Contains(topLevelFields, k) {
			p.errs.add(field(origin, k), fmt.Sprintf("unknown field %q%s", k, suggest(k, topLevelFields)))
		}
	}
	r := &Resource{APIVersion: apiVersion, Kind: kind, Origin: origin}
	p.metadata(origin, obj["metadata"], r)
	specPath := field(origin, "spec")
	rawSpec, present := obj["spec"]
	if !present || rawSpec == nil {
		p.errs.add(specPath, "spec is required (write spec: {} for an empty one)")
		return
	}
	before := len(p.errs)
	spec, canonical := decodeSpec(specPath, rawSpec, info, &p.errs)
	if len(p.errs) > before || !okVersion {
		return
	}
	r.Spec, r.SpecJSON = spec, canonical
	p.resources = append(p.resources, r)
}

func (p *parser) list(origin string, obj map[string]any) {
	for _, k := range sortedKeys(obj) {
		if k != "apiVersion" && k != "kind" && k != "metadata" && k != "items" {
			p.errs.add(field(origin, k), fmt.Sprintf("unknown field %q in a List (known fields: apiVersion, kind, metadata, items)", k))
		}
	}
	items, ok := obj["items"].([]any)
	if !ok {
		if obj["items"] != nil {
			p.errs.add(field(origin, "items"), "expected a list of resources, got "+describe(obj["items"]))
		}
		return
	}
	for i, item := range items {
		if len(p.resources) > MaxDocuments {
			return // ParseYAML reports the overflow
		}
		p.document(index(field(origin, "items"), i), item, false)
	}
}

func (p *parser) stringField(origin string, obj map[string]any, name string) (string, bool) {
	v, present := obj[name]
	if !present || v == nil || v == "" {
		p.errs.add(field(origin, name), name+" is required")
		return "", false
	}
	s, ok := v.(string)
	if !ok {
		p.errs.add(field(origin, name), "expected a string, got "+describe(v))
		return "", false
	}
	return s, true
}

// serverMetadata are the metadata fields a Kubernetes API server, or Sluice's own store
// (updatedAt, updatedBy), fills in. They are accepted and ignored, so that what a GET or
// kubectl get -o yaml answered can be applied as it is.
var serverMetadata = []string{
	"creationTimestamp", "deletionGracePeriodSeconds", "deletionTimestamp", "finalizers",
	"generation", "managedFields", "ownerReferences", "resourceVersion", "selfLink", "uid",
	"updatedAt", "updatedBy",
}

var metadataFields = []string{"name", "namespace", "labels", "annotations"}

func (p *parser) metadata(origin string, v any, r *Resource) {
	path := field(origin, "metadata")
	obj, ok := v.(map[string]any)
	if !ok {
		if v == nil {
			p.errs.add(field(path, "name"), "name is required")
		} else {
			p.errs.add(path, "expected an object with name and namespace, got "+describe(v))
		}
		return
	}
	for _, k := range sortedKeys(obj) {
		switch {
		case slices.Contains(metadataFields, k), slices.Contains(serverMetadata, k):
		case k == "generateName":
			p.errs.add(field(path, k), "generateName is not supported: set name")
		default:
			p.errs.add(field(path, k), fmt.Sprintf("unknown field %q%s", k, suggest(k, metadataFields)))
		}
	}
	nameOK := true
	switch name := obj["name"].(type) {
	case nil:
	case string:
		r.Name = name
	default:
		p.errs.add(field(path, "name"), "expected a string, got "+describe(name))
		nameOK = false
	}
	switch ns := obj["namespace"].(type) {
	case nil:
		r.Namespace = DefaultNamespace
	case string:
		r.Namespace = ns
		if ns == "" {
			r.Namespace = DefaultNamespace
		}
	default:
		p.errs.add(field(path, "namespace"), "expected a string, got "+describe(ns))
	}
	r.Labels = p.stringMap(field(path, "labels"), obj["labels"])
	r.Annotations = p.stringMap(field(path, "annotations"), obj["annotations"])
	checkMetadata(errorSink{errs: &p.errs, prefix: origin}, r, nameOK)
}

func (p *parser) stringMap(path string, v any) map[string]string {
	if v == nil {
		return nil
	}
	obj, ok := v.(map[string]any)
	if !ok {
		p.errs.add(path, "expected an object of strings, got "+describe(v))
		return nil
	}
	out := make(map[string]string, len(obj))
	for _, k := range sortedKeys(obj) {
		s, ok := obj[k].(string)
		if !ok {
			p.errs.add(mapKey(path, k), "expected a string, got "+describe(obj[k])+quoteHint(obj[k]))
			continue
		}
		out[k] = s
	}
	return out
}

// decodeSpec checks a spec tree against its kind's schema and, if it is sound, decodes it and
// returns the typed spec and its canonical JSON. Problems are added to errs.
func decodeSpec(path string, tree any, info *kindInfo, errs *Errors) (any, []byte) {
	c := checker{errs: errs}
	before := len(*errs)
	spec := info.newSpec()
	switch s := spec.(type) {
	case proto.Message:
		tree = c.message(path, tree, s.ProtoReflect().Descriptor())
	default:
		c.goValue(path, tree, reflect.TypeOf(spec))
	}
	if len(*errs) > before {
		return nil, nil
	}
	b, err := json.Marshal(tree)
	if err != nil {
		errs.add(path, "cannot read spec: "+err.Error())
		return nil, nil
	}
	switch s := spec.(type) {
	case proto.Message:
		// The checker accepts what protojson accepts; if they ever disagree, protojson's
		// word is final, reported without a finer path.
		if err := (protojson.UnmarshalOptions{}).Unmarshal(b, s); err != nil {
			errs.add(path, err.Error())
			return nil, nil
		}
	case *FaultExperimentSpec:
		if !decodeStrict(path, b, s, errs) {
			return nil, nil
		}
		s.provision()
	case *RateLimitSpec:
		if !decodeStrict(path, b, s, errs) {
			return nil, nil
		}
		s.provision()
	}
	canonical, err := EncodeSpec(spec)
	if err != nil {
		errs.add(path, "cannot encode spec: "+err.Error())
		return nil, nil
	}
	return spec, canonical
}

func decodeStrict(path string, b []byte, v any, errs *Errors) bool {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		errs.add(path, err.Error())
		return false
	}
	return true
}

// DecodeSpec decodes a spec of kind from JSON, such as a stored Resource.SpecJSON, checking it
// as ParseYAML does and provisioning the same defaults. Error paths start with "spec".
func DecodeSpec(kind string, data []byte) (any, error) {
	info := lookupKind(kind)
	if info == nil {
		return nil, Errors{{Path: "kind", Message: fmt.Sprintf("kind %s is not supported by Sluice (supported: %s)", kind, supportedKindList())}}
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var tree any
	if err := dec.Decode(&tree); err != nil {
		return nil, Errors{{Path: "spec", Message: "invalid JSON: " + err.Error()}}
	}
	var errs Errors
	spec, _ := decodeSpec("spec", tree, info, &errs)
	if len(errs) > 0 {
		return nil, errs
	}
	return spec, nil
}

// EncodeSpec returns the canonical JSON of a spec: protojson's output for the Istio kinds
// (camelCase names, unset fields omitted), encoding/json's for the sluice.dev kinds, compact in
// both cases. The same spec always gives the same bytes.
func EncodeSpec(spec any) ([]byte, error) {
	var b []byte
	var err error
	if m, ok := spec.(proto.Message); ok {
		b, err = protojson.Marshal(m)
	} else {
		b, err = json.Marshal(spec)
	}
	if err != nil {
		return nil, fmt.Errorf("encode spec: %w", err)
	}
	// protojson varies its whitespace on purpose; compacting removes it.
	var out bytes.Buffer
	if err := json.Compact(&out, b); err != nil {
		return nil, fmt.Errorf("encode spec: %w", err)
	}
	return out.Bytes(), nil
}
