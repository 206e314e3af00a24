package ctl

import (
	"errors"
	"flag"
	"slices"
	"testing"
	"time"
)

func TestFlagSetParse(t *testing.T) {
	type parsed struct {
		pos       []string
		namespace string
		all       bool
		files     []string
		timeout   time.Duration
		limit     int64
		limitSet  bool
	}
	tests := []struct {
		name    string
		args    []string
		want    parsed
		wantErr string // "" for none, "help" for flag.ErrHelp, else a *UsageError's text
	}{
		{"flags after arguments", []string{"vs", "reviews", "-n", "prod"},
			parsed{pos: []string{"vs", "reviews"}, namespace: "prod"}, ""},
		{"flags between arguments", []string{"vs", "--namespace=prod", "reviews", "-A"},
			parsed{pos: []string{"vs", "reviews"}, namespace: "prod", all: true}, ""},
		{"long and short alias write one value", []string{"-n", "a", "--namespace", "b"},
			parsed{namespace: "b"}, ""},
		{"repeatable flag keeps every value in order", []string{"-f", "a.yaml", "--filename", "dir", "-f", "-"},
			parsed{files: []string{"a.yaml", "dir", "-"}}, ""},
		{"double dash ends flags", []string{"vs", "--", "-n", "x"},
			parsed{pos: []string{"vs", "-n", "x"}}, ""},
		{"a lone dash is an argument", []string{"-"},
			parsed{pos: []string{"-"}}, ""},
		{"duration", []string{"--timeout", "2m"},
			parsed{timeout: 2 * time.Minute}, ""},
		{"zero is a value that counts", []string{"--limit", "0"},
			parsed{limit: 0, limitSet: true}, ""},
		{"unknown flag", []string{"vs", "--bogus"}, parsed{},
			`get: flag provided but not defined: -bogus; run "sluicectl help get"`},
		{"missing value", []string{"vs", "-n"}, parsed{},
			`get: flag needs an argument: -n; run "sluicectl help get"`},
		{"bad duration", []string{"--timeout", "soon"}, parsed{},
			`get: invalid value "soon" for flag -timeout: want a positive duration such as 30s or 2m; run "sluicectl help get"`},
		{"bad number", []string{"--limit", "ten"}, parsed{},
			`get: invalid value "ten" for flag -limit: want a whole number; run "sluicectl help get"`},
		{"help", []string{"vs", "-h"}, parsed{}, "help"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got parsed
			fs := newFlagSet("get")
			fs.add(stringValue{&got.namespace}, "namespace", "n", "NS", "", "")
			fs.add(boolValue{&got.all}, "all-namespaces", "A", "", "", "")
			fs.add(listValue{&got.files}, "filename", "f", "PATH", "", "")
			fs.add(durationValue{&got.timeout}, "timeout", "", "D", "", "")
			fs.add(intValue{&got.limit, &got.limitSet}, "limit", "", "N", "", "")
			pos, err := fs.parse(tc.args)
			switch {
			case tc.wantErr == "help":
				if !errors.Is(err, flag.ErrHelp) {
					t.Fatalf("err %v, want flag.ErrHelp", err)
				}
				return
			case tc.wantErr != "":
				var ue *UsageError
				if !errors.As(err, &ue) || ue.Msg != tc.wantErr {
					t.Fatalf("err %#v, want usage error %q", err, tc.wantErr)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			got.pos = pos
			if !slices.Equal(got.pos, tc.want.pos) || !slices.Equal(got.files, tc.want.files) ||
				got.namespace != tc.want.namespace || got.all != tc.want.all ||
				got.timeout != tc.want.timeout || got.limit != tc.want.limit || got.limitSet != tc.want.limitSet {
				t.Errorf("parsed %+v, want %+v", got, tc.want)
			}
		})
	}
}

// The global flags are registered twice, before and after the command's name; the second
// registration must keep what the first parse set.
func TestGlobalFlagsSurviveReregistration(t *testing.T) {
	c := newCLI(mapEnv(nil), nil, nil, nil)
	top := newFlagSet("sluicectl")
	c.globalFlags(top)
	if err := top.fs.Parse([]string{"--server", "http://a:1", "--timeout", "5s", "get", "vs"}); err != nil {
		t.Fatal(err)
	}
	fs := newFlagSet("get")
	c.globalFlags(fs)
	if _, err := fs.parse([]string{"vs", "--token", "t"}); err != nil {
		t.Fatal(err)
	}
	if c.serverFlag != "http://a:1" || c.timeout != 5*time.Second || c.tokenFlag != "t" {
		t.Errorf("server %q timeout %v token %q", c.serverFlag, c.timeout, c.tokenFlag)
	}
}
