package ctl

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"sigs.k8s.io/yaml"
)

// Output formats of -o.
const (
	outTable = "table"
	outJSON  = "json"
	outYAML  = "yaml"
)

// checkOutput refuses an -o the command does not offer.
func checkOutput(cmd, format string, allowed ...string) error {
	for _, a := range allowed {
		if format == a {
			return nil
		}
	}
	return &UsageError{fmt.Sprintf("%s: -o %q is not an output format here: use %s", cmd, format, strings.Join(allowed, ", "))}
}

// writeTable writes rows under a header, in columns, kubectl style. Cells are made one line
// of printable text, so that a message from the server cannot break the table or send
// escape sequences to the terminal.
func writeTable(w io.Writer, header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	line := func(cells []string) {
		for i, c := range cells {
			if i > 0 {
				io.WriteString(tw, "\t")
			}
			c = oneLine(c)
			if c == "" {
				c = "-"
			}
			io.WriteString(tw, c)
		}
		io.WriteString(tw, "\n")
	}
	line(header)
	for _, r := range rows {
		line(r)
	}
	return tw.Flush()
}

// oneLine makes s a single line of printable text: control characters (newlines, tabs,
// escapes) become spaces, and runs of spaces one space.
func oneLine(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// truncate shortens s to at most n runes, marking the cut.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// age is how long ago t was, in kubectl's short style ("45s", "3m20s", "5h", "12d"): finer
// while it is recent, coarser as it grows. The zero time has no age.
func age(t time.Time, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	d := now.Sub(t)
	if d < 0 {
		d = 0 // clocks disagree by a little: it happened just now
	}
	const day = 24 * time.Hour
	s, m, h, dd := int(d/time.Second), int(d/time.Minute), int(d/time.Hour), int(d/day)
	switch {
	case d < 2*time.Minute:
		return fmt.Sprintf("%ds", s)
	case d < 10*time.Minute:
		if s%60 == 0 {
			return fmt.Sprintf("%dm", m)
		}
		return fmt.Sprintf("%dm%ds", m, s%60)
	case d < 3*time.Hour:
		return fmt.Sprintf("%dm", m)
	case d < 8*time.Hour:
		if m%60 == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh%dm", h, m%60)
	case d < 2*day:
		return fmt.Sprintf("%dh", h)
	case d < 8*day:
		if h%24 == 0 {
			return fmt.Sprintf("%dd", dd)
		}
		return fmt.Sprintf("%dd%dh", dd, h%24)
	case d < 2*365*day:
		return fmt.Sprintf("%dd", dd)
	default:
		return fmt.Sprintf("%dy", int(d/(365*day)))
	}
}

// printJSON writes the server's JSON answer, indented.
func printJSON(w io.Writer, raw []byte) error {
	var buf bytes.Buffer
	if err := json.Indent(&buf, bytes.TrimSpace(raw), "", "  "); err != nil {
		buf.Reset()
		buf.Write(bytes.TrimSpace(raw))
	}
	buf.WriteByte('\n')
	_, err := w.Write(buf.Bytes())
	return err
}

// printYAML writes a JSON answer as YAML.
func printYAML(w io.Writer, raw []byte) error {
	y, err := yaml.JSONToYAML(raw)
	if err != nil {
		return fmt.Errorf("convert the answer to YAML: %w", err)
	}
	_, err = w.Write(y)
	return err
}

// printAnswer writes a raw answer as JSON or YAML, for -o json and -o yaml.
func printAnswer(w io.Writer, format string, raw []byte) error {
	if format == outYAML {
		return printYAML(w, raw)
	}
	return printJSON(w, raw)
}

// timeOf dereferences an optional time.
func timeOf(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return *t
}
