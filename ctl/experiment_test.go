package ctl

import (
	"errors"
	"strings"
	"testing"
)

func TestExperimentUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no subcommand", []string{"experiment"}, "experiment needs start, list, get or stop"},
		{"unknown subcommand", []string{"experiment", "pause", "x"}, `unknown subcommand "pause"`},
		{"start without -f", []string{"experiment", "start"}, "experiment start needs -f FILE"},
		{"start with a bare file", []string{"experiment", "start", "x.yaml"}, `reads files given with -f, not "x.yaml"`},
		{"-f on another subcommand", []string{"experiment", "list", "-f", "x.yaml"}, "experiment list takes no -f"},
		{"list with arguments", []string{"experiment", "list", "x"}, `experiment list takes no arguments`},
		{"get without a name", []string{"experiment", "get"}, "experiment get: missing arguments: usage: sluicectl experiment get [NS/]NAME"},
		{"stop with two names", []string{"experiment", "stop", "a", "b"}, "experiment stop: too many arguments"},
		{"a name with two slashes", []string{"experiment", "stop", "a/b/c"}, `"a/b/c" is not NAME or NS/NAME`},
		{"an empty namespace", []string{"experiment", "get", "/x"}, `"/x" is not NAME or NS/NAME`},
		{"unknown output format", []string{"experiment", "list", "-o", "wide"}, `-o "wide" is not an output format here`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := runCLI(t, map[string]string{"SLUICE_SERVER": "http://127.0.0.1:1"}, "", nil, tc.args...)
			var ue *UsageError
			if !errors.As(res.err, &ue) {
				t.Fatalf("err %v (%T), want a *UsageError", res.err, res.err)
			}
			if !strings.Contains(ue.Msg, tc.want) {
				t.Errorf("usage error %q, want it to contain %q", ue.Msg, tc.want)
			}
		})
	}
}
