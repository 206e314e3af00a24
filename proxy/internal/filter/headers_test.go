package filter

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func hv(key, value string, action corev3.HeaderValueOption_HeaderAppendAction) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: key, Value: value}, AppendAction: action}
}

const (
	appendOrAdd      = corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD
	addIfAbsent      = corev3.HeaderValueOption_ADD_IF_ABSENT
	overwriteOrAdd   = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
	overwriteIfThere = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS
)

func TestHeaderOpsApply(t *testing.T) {
	legacy := func(key, value string, appendValue bool) *corev3.HeaderValueOption {
		return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: key, Value: value}, Append: wrapperspb.Bool(appendValue)}
	}
	tests := []struct {
		name   string
		add    []*corev3.HeaderValueOption
		remove []string
		in     http.Header
		want   string // fmt of the resulting header, sorted by key
	}{
		{"append to an existing header", []*corev3.HeaderValueOption{hv("x-a", "2", appendOrAdd)}, nil,
			http.Header{"X-A": {"1"}}, "X-A=[1 2]"},
		{"append adds a missing header", []*corev3.HeaderValueOption{hv("x-a", "2", appendOrAdd)}, nil,
			http.Header{}, "X-A=[2]"},
		{"overwrite replaces", []*corev3.HeaderValueOption{hv("X-A", "2", overwriteOrAdd)}, nil,
			http.Header{"X-A": {"1", "1b"}}, "X-A=[2]"},
		{"add if absent keeps an existing value", []*corev3.HeaderValueOption{hv("x-a", "2", addIfAbsent)}, nil,
			http.Header{"X-A": {"1"}}, "X-A=[1]"},
		{"add if absent adds", []*corev3.HeaderValueOption{hv("x-a", "2", addIfAbsent)}, nil,
			http.Header{}, "X-A=[2]"},
		{"overwrite if exists skips a missing header", []*corev3.HeaderValueOption{hv("x-a", "2", overwriteIfThere)}, nil,
			http.Header{}, ""},
		{"overwrite if exists overwrites", []*corev3.HeaderValueOption{hv("x-a", "2", overwriteIfThere)}, nil,
			http.Header{"X-A": {"1"}}, "X-A=[2]"},
		{"remove before add", []*corev3.HeaderValueOption{hv("x-a", "2", appendOrAdd)}, []string{"x-a", "x-gone"},
			http.Header{"X-A": {"1"}, "X-Gone": {"g"}, "X-Kept": {"k"}}, "X-A=[2] X-Kept=[k]"},
		{"decisions see the headers before this level's changes", []*corev3.HeaderValueOption{
			hv("x-a", "set", overwriteOrAdd), hv("x-a", "absent", addIfAbsent)}, nil,
			http.Header{}, "X-A=[set absent]"},
		{"overwrites go before appends", []*corev3.HeaderValueOption{
			hv("x-a", "appended", appendOrAdd), hv("x-a", "set", overwriteOrAdd)}, nil,
			http.Header{"X-A": {"old"}}, "X-A=[set appended]"},
		{"an empty value is not added", []*corev3.HeaderValueOption{hv("x-a", "", appendOrAdd)}, nil,
			http.Header{}, ""},
		{"keep_empty_value adds an empty value", []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-a"}, KeepEmptyValue: true}}, nil,
			http.Header{}, "X-A=[]"},
		{"deprecated append true", []*corev3.HeaderValueOption{legacy("x-a", "2", true)}, nil,
			http.Header{"X-A": {"1"}}, "X-A=[1 2]"},
		{"deprecated append false overwrites", []*corev3.HeaderValueOption{legacy("x-a", "2", false)}, nil,
			http.Header{"X-A": {"1"}}, "X-A=[2]"},
		{"%% is a literal percent", []*corev3.HeaderValueOption{hv("x-a", "100%%", appendOrAdd)}, nil,
			http.Header{}, "X-A=[100%]"},
		{"raw_value", []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x-a", RawValue: []byte("raw")}}}, nil,
			http.Header{}, "X-A=[raw]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o, err := CompileHeaderOps(tt.add, tt.remove, "request_headers_to_add", "request_headers_to_remove")
			if err != nil {
				t.Fatal(err)
			}
			o.Apply(tt.in)
			if got := render(tt.in); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func render(h http.Header) string {
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(h)) {
		parts = append(parts, fmt.Sprintf("%s=%v", k, h[k]))
	}
	return strings.Join(parts, " ")
}

func TestHeaderOpsNeverWriteIntoSharedValues(t *testing.T) {
	o, err := CompileHeaderOps([]*corev3.HeaderValueOption{hv("x-a", "mine", appendOrAdd)}, nil, "f", "g")
	if err != nil {
		t.Fatal(err)
	}
	backing := make([]string, 1, 4) // spare capacity an append could write into
	backing[0] = "theirs"
	src := http.Header{"X-A": backing}
	dst := http.Header{"X-A": src["X-A"]} // shared, as copyHeaders shares value slices
	o.Apply(dst)
	o.Apply(dst)
	if got := backing[:2][1]; got != "" {
		t.Errorf("Apply wrote %q into the shared slice's spare capacity", got)
	}
	if got := dst["X-A"]; len(got) != 3 {
		t.Errorf("dst = %v", got)
	}
}

func TestCompileHeaderOpsRejects(t *testing.T) {
	tests := []struct {
		name   string
		add    []*corev3.HeaderValueOption
		remove []string
		want   string
	}{
		{"pseudo-header", []*corev3.HeaderValueOption{hv(":path", "/x", appendOrAdd)}, nil, `add[0].header.key: ":path": :-prefixed or host headers may not be modified`},
		{"host", []*corev3.HeaderValueOption{hv("Host", "x", appendOrAdd)}, nil, "may not be modified"},
		{"remove host", nil, []string{"host"}, "remove[0]: \"host\""},
		{"bad name", []*corev3.HeaderValueOption{hv("x a", "v", appendOrAdd)}, nil, `"x a" is not a valid header name`},
		{"substitution command", []*corev3.HeaderValueOption{hv("x-a", "%DOWNSTREAM_REMOTE_ADDRESS%", appendOrAdd)}, nil,
			"substitution command %DOWNSTREAM_REMOTE_ADDRESS% is not supported"},
		{"lone percent", []*corev3.HeaderValueOption{hv("x-a", "50%", appendOrAdd)}, nil, "substitution command %"},
		{"newline", []*corev3.HeaderValueOption{hv("x-a", "a\nb", appendOrAdd)}, nil, "CR, LF and NUL"},
		{"append and append_action", []*corev3.HeaderValueOption{{Header: &corev3.HeaderValue{Key: "x", Value: "v"},
			Append: wrapperspb.Bool(true), AppendAction: overwriteOrAdd}}, nil, "both append and append_action"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := CompileHeaderOps(tt.add, tt.remove, "add", "remove")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %v, want %q", err, tt.want)
			}
		})
	}
}

func TestHeaderOpsApplyDoesNotAllocateWhenOverwriting(t *testing.T) {
	o, _ := CompileHeaderOps([]*corev3.HeaderValueOption{hv("x-a", "1", overwriteOrAdd), hv("x-b", "2", addIfAbsent)}, []string{"x-c"}, "f", "g")
	h := http.Header{"X-A": {"0"}, "X-B": {"0"}}
	if n := testing.AllocsPerRun(100, func() { o.Apply(h) }); n != 0 {
		t.Errorf("Apply allocates %v times", n)
	}
}
