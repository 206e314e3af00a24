package ctl

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// flagSet is a flag.FlagSet that takes flags anywhere on the line, kubectl style
// ("get vs reviews -n prod"), gives a flag an optional one-letter alias, and describes itself
// for help. Its values never reset what they point to when registered, so the global flags
// can be registered again on each command's set without losing what was parsed before the
// command's name.
type flagSet struct {
	name  string
	fs    *flag.FlagSet
	specs []flagSpec
}

// flagSpec documents one flag for help.
type flagSpec struct {
	long, short string
	// arg names the value in help ("NS"); empty for a boolean flag.
	arg string
	// def is the documented default; empty when there is none worth saying.
	def    string
	usage  string
	global bool
}

func newFlagSet(name string) *flagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	// Errors are returned and shown once, by main; help is printed by the caller.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return &flagSet{name: name, fs: fs}
}

func (f *flagSet) add(v flag.Value, long, short, arg, def, usage string) {
	f.fs.Var(v, long, usage)
	if short != "" {
		f.fs.Var(v, short, usage)
	}
	f.specs = append(f.specs, flagSpec{long: long, short: short, arg: arg, def: def, usage: usage})
}

func (f *flagSet) addGlobal(v flag.Value, long, arg, def, usage string) {
	f.add(v, long, "", arg, def, usage)
	f.specs[len(f.specs)-1].global = true
}

// parse parses args, taking flags before, between and after the positional arguments, and
// returns the positional ones. Everything after "--" is positional. A wrong flag is a
// *UsageError; -h and --help return flag.ErrHelp.
func (f *flagSet) parse(args []string) ([]string, error) {
	var pos []string
	for {
		if err := f.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &UsageError{fmt.Sprintf("%s: %v; run \"sluicectl help %s\"", f.name, err, f.name)}
		}
		rest := f.fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if used := len(args) - len(rest); used > 0 && args[used-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// describe writes the flags for help: the command's own, then the global ones.
func (f *flagSet) describe(w io.Writer) {
	for _, global := range []bool{false, true} {
		var specs []flagSpec
		for _, s := range f.specs {
			if s.global == global {
				specs = append(specs, s)
			}
		}
		if len(specs) == 0 {
			continue
		}
		if global {
			fmt.Fprintln(w, "\nGlobal flags:")
		} else {
			fmt.Fprintln(w, "\nFlags:")
		}
		tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
		for _, s := range specs {
			name := "--" + s.long
			if s.short != "" {
				name = "-" + s.short + ", " + name
			}
			if s.arg != "" {
				name += " " + s.arg
			}
			usage := s.usage
			if s.def != "" {
				usage += " (default " + s.def + ")"
			}
			fmt.Fprintf(tw, "  %s\t%s\n", name, usage)
		}
		tw.Flush()
	}
}

// The flag values below write through to a variable without resetting it.

type stringValue struct{ p *string }

func (v stringValue) String() string {
	if v.p == nil {
		return ""
	}
	return *v.p
}

func (v stringValue) Set(s string) error { *v.p = s; return nil }

type boolValue struct{ p *bool }

func (v boolValue) String() string {
	if v.p == nil {
		return "false"
	}
	return strconv.FormatBool(*v.p)
}

func (v boolValue) Set(s string) error {
	b, err := strconv.ParseBool(s)
	if err != nil {
		return errors.New("want true or false")
	}
	*v.p = b
	return nil
}

func (v boolValue) IsBoolFlag() bool { return true }

// intValue is a whole number; set records that the flag was given, for flags where 0 is a
// meaningful value (a revision number).
type intValue struct {
	p   *int64
	set *bool
}

func (v intValue) String() string {
	if v.p == nil {
		return "0"
	}
	return strconv.FormatInt(*v.p, 10)
}

func (v intValue) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return errors.New("want a whole number")
	}
	*v.p = n
	if v.set != nil {
		*v.set = true
	}
	return nil
}

type durationValue struct{ p *time.Duration }

func (v durationValue) String() string {
	if v.p == nil {
		return "0s"
	}
	return v.p.String()
}

func (v durationValue) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return errors.New("want a positive duration such as 30s or 2m")
	}
	*v.p = d
	return nil
}

// listValue collects a repeatable flag's values.
type listValue struct{ p *[]string }

func (v listValue) String() string {
	if v.p == nil {
		return ""
	}
	return strings.Join(*v.p, ",")
}

func (v listValue) Set(s string) error { *v.p = append(*v.p, s); return nil }
