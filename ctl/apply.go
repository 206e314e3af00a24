package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"sigs.k8s.io/yaml"
)

// maxApplyBytes is the server's limit on one apply's body (4 MiB). sluicectl checks it first,
// to name the files rather than send them for nothing.
const maxApplyBytes = 4 << 20

var applyCommand = command{
	name:    "apply",
	args:    "-f FILE|DIR|- [-f ...]",
	summary: "create or update the resources in YAML or JSON files, all or nothing",
	about: `
Reads every document of the files given with -f (a directory: each *.yaml, *.yml and
*.json file in it, in name order, and with -R those of its subdirectories too; "-":
standard input) and sends them to the server as ONE multi-document YAML (POST
/api/v1/apply). Either every resource is written, in one revision, or none is: an
invalid document fails the whole apply, and the error names the file and document.

Prints one line per resource, "virtualservice/reviews created" (or updated, unchanged).
With --dry-run nothing is written; each resource's action is printed with the unified
diff of what would change.`,
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		var (
			files             []string
			recursive, dryRun bool
			message           string
			out               = outTable
		)
		fs.add(listValue{&files}, "filename", "f", "PATH", "", "a YAML or JSON file, a directory of them, or - for standard input; repeatable")
		fs.add(boolValue{&recursive}, "recursive", "R", "", "", "read the directories inside a -f directory too")
		fs.add(boolValue{&dryRun}, "dry-run", "", "", "", "validate and show what would change, without writing anything")
		fs.add(stringValue{&message}, "message", "m", "TEXT", "", "why: kept with the revision, shown by history")
		fs.add(stringValue{&out}, "output", "o", "FORMAT", outTable, "table, json or yaml")
		return func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return &UsageError{fmt.Sprintf("apply reads files given with -f, not %q: sluicectl apply -f %s", strings.Join(args, " "), args[0])}
			}
			if len(files) == 0 {
				return &UsageError{"apply needs -f FILE, -f DIR or -f - (standard input)"}
			}
			if err := checkOutput("apply", out, outTable, outJSON, outYAML); err != nil {
				return err
			}
			docs, err := c.readDocuments(files, recursive)
			if err != nil {
				return err
			}
			return c.apply(ctx, docs, message, dryRun, out)
		}
	},
}

// document is one non-empty YAML document of apply's input.
type document struct {
	// source names the file it came from ("-" is "standard input").
	source string
	// index is its place among its source's documents, from 1.
	index int
	// text is the document. When afterSeparator is set, it starts right after the "---"
	// that opened it (that line's rest, as in "--- {a: b}", belongs to the document);
	// otherwise it is the start of its file.
	text           []byte
	afterSeparator bool
}

// readDocuments reads the documents of every -f argument, in order.
func (c *cli) readDocuments(paths []string, recursive bool) ([]document, error) {
	var docs []document
	stdinRead := false
	for _, p := range paths {
		if p == "-" {
			if stdinRead {
				return nil, &UsageError{"apply: -f - is given twice: standard input can be read once"}
			}
			stdinRead = true
			data, err := io.ReadAll(io.LimitReader(c.lineReader(), maxApplyBytes+1))
			if err != nil {
				return nil, fmt.Errorf("read standard input: %w", err)
			}
			if len(data) > maxApplyBytes {
				return nil, tooBig("standard input")
			}
			d, err := splitDocuments("standard input", data)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
			continue
		}
		files, err := manifestFiles(p, recursive)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			data, err := readBounded(f)
			if err != nil {
				return nil, err
			}
			d, err := splitDocuments(f, data)
			if err != nil {
				return nil, err
			}
			docs = append(docs, d...)
		}
	}
	if len(docs) == 0 {
		return nil, fmt.Errorf("no resources in %s: the input holds only empty documents or comments", strings.Join(paths, ", "))
	}
	return docs, nil
}

func tooBig(what string) error {
	return fmt.Errorf("%s holds more than %d MiB, the server's limit for one apply: apply the resources in several runs", what, maxApplyBytes>>20)
}

// manifestFiles expands one -f path: a file is itself; a directory gives its *.yaml, *.yml
// and *.json files in name order, and with recursive those of its subdirectories too.
func manifestFiles(path string, recursive bool) ([]string, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("apply: cannot read %s: %w", path, unwrapPathError(err))
	}
	if !fi.IsDir() {
		return []string{path}, nil
	}
	var files []string
	if recursive {
		err = filepath.WalkDir(path, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if !d.IsDir() && isManifest(d.Name()) {
				files = append(files, p)
			}
			return nil
		})
	} else {
		var entries []os.DirEntry
		entries, err = os.ReadDir(path) // sorted by name
		for _, e := range entries {
			if !e.IsDir() && isManifest(e.Name()) {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	if err != nil {
		return nil, fmt.Errorf("apply: cannot read the directory %s: %w", path, err)
	}
	if len(files) == 0 {
		hint := ""
		if !recursive {
			hint = " (-R reads its subdirectories too)"
		}
		return nil, fmt.Errorf("apply: the directory %s holds no .yaml, .yml or .json files%s", path, hint)
	}
	return files, nil
}

func isManifest(name string) bool {
	switch strings.ToLower(filepath.Ext(name)) {
	case ".yaml", ".yml", ".json":
		return true
	}
	return false
}

func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// readBounded reads a file of at most maxApplyBytes.
func readBounded(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("apply: cannot read %s: %w", path, unwrapPathError(err))
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxApplyBytes+1))
	if err != nil {
		return nil, fmt.Errorf("apply: cannot read %s: %w", path, unwrapPathError(err))
	}
	if len(data) > maxApplyBytes {
		return nil, tooBig(path)
	}
	return data, nil
}

// splitDocuments splits one source into its non-empty documents, by the server's rules, so
// that the server's document indexes can be traced back to files: YAML splits at "---"
// lines (kubectl's rule) and skips documents of only blank lines, comments, directives or
// null; an input that starts with "{" is a stream of JSON objects, each made a YAML document
// here, since a JSON stream cannot sit inside YAML.
func splitDocuments(source string, data []byte) ([]document, error) {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // UTF-8 byte order mark
	if trimmed := bytes.TrimLeft(data, " \t\r\n"); len(trimmed) > 0 && trimmed[0] == '{' {
		if docs, ok, err := jsonDocuments(source, trimmed); ok {
			return docs, err
		}
		// Not JSON after all, but a YAML flow mapping such as "{a: b}".
	}
	var docs []document
	for _, ch := range splitYAML(data) {
		if !hasContent(ch.text) {
			continue
		}
		if j, err := yaml.YAMLToJSON(ch.text); err == nil && string(bytes.TrimSpace(j)) == "null" {
			continue // "~" or "null": the server skips it too
		}
		docs = append(docs, document{source: source, index: len(docs) + 1, text: ch.text, afterSeparator: ch.afterSeparator})
	}
	return docs, nil
}

// jsonDocuments reads a stream of JSON values as YAML documents. ok is false when the first
// value is not valid JSON.
func jsonDocuments(source string, data []byte) (docs []document, ok bool, err error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if errors.Is(err, io.EOF) {
			return docs, true, nil
		}
		if err != nil {
			if len(docs) == 0 {
				return nil, false, nil
			}
			return nil, true, fmt.Errorf("apply: %s: invalid JSON after document %d: %v", source, len(docs), err)
		}
		if string(raw) == "null" {
			continue
		}
		y, err := yaml.JSONToYAML(raw)
		if err != nil {
			return nil, true, fmt.Errorf("apply: %s: document %d: %v", source, len(docs)+1, err)
		}
		docs = append(docs, document{source: source, index: len(docs) + 1, text: y})
	}
}

type yamlChunk struct {
	text           []byte
	afterSeparator bool
}

// splitYAML splits data at lines that start with "---" followed by nothing, a space or a
// tab.
func splitYAML(data []byte) []yamlChunk {
	var chunks []yamlChunk
	start, after := 0, false
	for pos := 0; pos <= len(data); {
		end := bytes.IndexByte(data[pos:], '\n')
		if end < 0 {
			end = len(data)
		} else {
			end += pos
		}
		line := bytes.TrimRight(data[pos:end], "\r")
		if rest, ok := bytes.CutPrefix(line, []byte("---")); ok && (len(rest) == 0 || rest[0] == ' ' || rest[0] == '\t') {
			chunks = append(chunks, yamlChunk{text: data[start:pos], afterSeparator: after})
			start, after = pos+3, true
		}
		pos = end + 1
	}
	if start < len(data) {
		chunks = append(chunks, yamlChunk{text: data[start:], afterSeparator: after})
	}
	return chunks
}

// hasContent reports whether a chunk holds more than blank lines, comments, directives and
// document end markers.
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

// bundle joins documents into one multi-document YAML. Every document, the first too, is
// opened by a "---" line: the server then splits the body exactly where sluicectl did, and
// never mistakes it for JSON.
func bundle(docs []document) []byte {
	var b bytes.Buffer
	for _, d := range docs {
		b.WriteString("---")
		if !d.afterSeparator {
			b.WriteByte('\n')
		}
		b.Write(d.text)
		if len(d.text) == 0 || d.text[len(d.text)-1] != '\n' {
			b.WriteByte('\n')
		}
	}
	return b.Bytes()
}

var documentPath = regexp.MustCompile(`^documents\[(\d+)\]`)

// locate adds to each field error the file and document its path points into. The server
// numbers the documents of the whole body from 0, and leaves the number out when there is
// only one.
func locate(fields []fieldError, docs []document) {
	for i, f := range fields {
		var d document
		switch m := documentPath.FindStringSubmatch(f.Path); {
		case m != nil:
			n, err := strconv.Atoi(m[1])
			if err != nil || n >= len(docs) {
				continue
			}
			d = docs[n]
		case len(docs) == 1:
			d = docs[0]
		default:
			continue
		}
		fields[i].Message = fmt.Sprintf("%s (%s, document %d)", f.Message, d.source, d.index)
	}
}

// applyAnswer is the server's answer to an apply, a delete or a rollback.
type applyAnswer struct {
	Results []struct {
		Kind      string `json:"kind"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		Action    string `json:"action"`
		Diff      string `json:"diff"`
	} `json:"results"`
	DryRun   bool  `json:"dryRun"`
	Revision int64 `json:"revision"`
}

func (c *cli) apply(ctx context.Context, docs []document, message string, dryRun bool, out string) error {
	body := bundle(docs)
	if len(body) > maxApplyBytes {
		return tooBig("the input")
	}
	cl, err := c.apiClient()
	if err != nil {
		return err
	}
	q := url.Values{}
	if dryRun {
		q.Set("dryRun", "true")
	}
	if message != "" {
		q.Set("message", message)
	}
	raw, err := cl.do(ctx, request{method: http.MethodPost, path: "/api/v1/apply", query: q, body: body, contentType: "application/yaml"})
	if err != nil {
		var ae *apiError
		if errors.As(err, &ae) {
			locate(ae.Fields, docs)
			if dryRun && ae.Status == http.StatusBadRequest {
				ae.Message += " (dry run)"
			}
		}
		return err
	}
	if out != outTable {
		return printAnswer(c.stdout, out, raw)
	}
	var ans applyAnswer
	if err := json.Unmarshal(raw, &ans); err != nil {
		return fmt.Errorf("the answer from %s is not the JSON sluicectl expects (%v): is it a sluice-server of this version?", cl.base, err)
	}
	return c.printResults(ans, dryRun)
}

// printResults writes one line per resource of a write, kubectl style, and with dryRun the
// diff of each change.
func (c *cli) printResults(ans applyAnswer, dryRun bool) error {
	var b strings.Builder
	for _, r := range ans.Results {
		fmt.Fprintf(&b, "%s %s", resourceRef(r.Kind, r.Namespace, r.Name), r.Action)
		if dryRun {
			b.WriteString(" (dry run)")
		}
		b.WriteByte('\n')
		if dryRun && r.Diff != "" {
			b.WriteString(r.Diff)
			if !strings.HasSuffix(r.Diff, "\n") {
				b.WriteByte('\n')
			}
		}
	}
	_, err := io.WriteString(c.stdout, b.String())
	return err
}
