package ctl

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestSplitDocuments(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string // each document's text, trimmed
	}{
		{"one document", "kind: A\n", []string{"kind: A"}},
		{"separators", "kind: A\n---\nkind: B\n---\nkind: C", []string{"kind: A", "kind: B", "kind: C"}},
		{"leading separator and empty documents", "---\n---\n\n---\nkind: A\n---\n", []string{"kind: A"}},
		{"comments, directives and end markers only", "# a\n%YAML 1.2\n...\n---\nkind: A\n", []string{"kind: A"}},
		{"null documents", "~\n---\nkind: A\n---\nnull\n", []string{"kind: A"}},
		{"content on the separator line", "--- {kind: A}\n---\tkind: B\n", []string{"{kind: A}", "kind: B"}},
		{"a separator needs a space or the line's end", "kind: A\n----\nx: ---b\n", []string{"kind: A\n----\nx: ---b"}},
		{"CRLF line endings", "kind: A\r\n---\r\nkind: B\r\n", []string{"kind: A", "kind: B"}},
		{"byte order mark", "\xef\xbb\xbfkind: A\n", []string{"kind: A"}},
		{"JSON stream", `{"kind":"A"} {"kind":"B"}` + "\nnull\n", []string{"kind: A", "kind: B"}},
		{"YAML flow mapping that is not JSON", "{kind: A}\n", []string{"{kind: A}"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			docs, err := splitDocuments("f.yaml", []byte(tc.in))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for i, d := range docs {
				got = append(got, strings.TrimSpace(string(d.text)))
				if d.index != i+1 || d.source != "f.yaml" {
					t.Errorf("document %d: index %d source %q", i, d.index, d.source)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("documents %q, want %q", got, tc.want)
			}
		})
	}
}

func TestSplitDocumentsBadJSON(t *testing.T) {
	_, err := splitDocuments("x.json", []byte(`{"kind":"A"} {"kind":`))
	if err == nil || !strings.Contains(err.Error(), "x.json: invalid JSON after document 1") {
		t.Fatalf("err %v", err)
	}
}

// The bundle must split, by the server's rules, into exactly the documents sluicectl
// counted, so that the server's document indexes point at the right file.
func TestBundleKeepsDocumentBoundaries(t *testing.T) {
	var docs []document
	for _, in := range []struct{ name, text string }{
		{"a.yaml", "kind: A\n---\n# nothing\n---\nkind: B"},
		{"b.json", `{"kind":"C"}`},
		{"c.yaml", "--- {kind: D}\n--- # comment\nkind: E\n"},
	} {
		d, err := splitDocuments(in.name, []byte(in.text))
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, d...)
	}
	body := bundle(docs)
	if !strings.HasPrefix(string(body), "---\n") {
		t.Errorf("the bundle does not open with a separator:\n%s", body)
	}
	again, err := splitDocuments("bundle", body)
	if err != nil {
		t.Fatal(err)
	}
	if len(again) != len(docs) {
		t.Fatalf("bundle splits into %d documents, want %d:\n%s", len(again), len(docs), body)
	}
	for i := range docs {
		if strings.TrimSpace(string(again[i].text)) != strings.TrimSpace(string(docs[i].text)) {
			t.Errorf("document %d is %q, want %q", i, again[i].text, docs[i].text)
		}
	}
}

func TestLocate(t *testing.T) {
	docs := []document{{source: "a.yaml", index: 1}, {source: "a.yaml", index: 2}, {source: "b.yaml", index: 1}}
	fields := []fieldError{
		{Path: "documents[1].spec.http[0].route", Message: "bad"},
		{Path: "documents[2].metadata.name", Message: "missing"},
		{Path: "documents[9].spec", Message: "out of range"},
		{Path: "", Message: "no path"},
	}
	locate(fields, docs)
	want := []string{"bad (a.yaml, document 2)", "missing (b.yaml, document 1)", "out of range", "no path"}
	for i, f := range fields {
		if f.Message != want[i] {
			t.Errorf("field %d: %q, want %q", i, f.Message, want[i])
		}
	}

	// With one document, the server's paths have no index: they all point into it.
	one := []fieldError{{Path: "spec.hosts", Message: "required"}}
	locate(one, docs[:1])
	if one[0].Message != "required (a.yaml, document 1)" {
		t.Errorf("one document: %q", one[0].Message)
	}
}

func TestManifestFiles(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"b.yaml", "a.yml", "c.JSON", "notes.txt", "sub/d.yaml", "sub/deeper/e.yml"} {
		p := filepath.Join(dir, f)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("kind: X\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	rel := func(ps []string) []string {
		var out []string
		for _, p := range ps {
			r, _ := filepath.Rel(dir, p)
			out = append(out, filepath.ToSlash(r))
		}
		return out
	}
	tests := []struct {
		name      string
		path      string
		recursive bool
		want      []string
		wantErr   string
	}{
		{"directory: manifests in name order, not subdirectories", dir, false, []string{"a.yml", "b.yaml", "c.JSON"}, ""},
		{"directory with -R", dir, true, []string{"a.yml", "b.yaml", "c.JSON", "sub/d.yaml", "sub/deeper/e.yml"}, ""},
		{"a file is itself, whatever its name", filepath.Join(dir, "notes.txt"), false, []string{"notes.txt"}, ""},
		{"empty directory", filepath.Join(dir, "empty"), false, nil, "holds no .yaml, .yml or .json files (-R reads its subdirectories too)"},
		{"missing path", filepath.Join(dir, "nope.yaml"), false, nil, "no such file or directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := manifestFiles(tc.path, tc.recursive)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(rel(got), tc.want) {
				t.Errorf("files %q, want %q", rel(got), tc.want)
			}
		})
	}
}
