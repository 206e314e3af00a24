package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// outLines is tap's -o for one line of text per request.
const outLines = "lines"

// tapStatuses are the values of tap's --status.
var tapStatuses = []string{"2xx", "3xx", "4xx", "5xx", "error"}

var tapCommand = command{
	name:    "tap",
	args:    "SERVICE",
	summary: "stream a service's requests live, one line each",
	about: `
Prints a line for each request to SERVICE as the proxies log it: time, method, path,
status, latency, caller → service and version, and Envoy's response flags ("-" for none).
SERVICE is a host (reviews.default.svc.cluster.local) or a short name (reviews,
reviews.default). --method, --path (a prefix) and --status (2xx, 3xx, 4xx, 5xx, or error
for 5xx and no response) narrow it. The server sends at most 100 requests a second; a line
says how many it left out. -o json prints each request as a JSON line. It runs until
interrupted, or until --max lines.`,
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		var method, path, status string
		var maxLines int64
		out := outLines
		fs.add(stringValue{&method}, "method", "", "METHOD", "", "only requests with this HTTP method")
		fs.add(stringValue{&path}, "path", "", "PREFIX", "", "only requests whose path starts with PREFIX")
		fs.add(stringValue{&status}, "status", "", "CLASS", "", "only responses of a class: "+strings.Join(tapStatuses, ", "))
		fs.add(intValue{p: &maxLines}, "max", "", "N", "", "exit after N requests")
		fs.add(stringValue{&out}, "output", "o", "FORMAT", "lines", "lines or json (one JSON object per line)")
		return func(ctx context.Context, args []string) error {
			if err := wantArgs("tap", "SERVICE", args, 1, 1); err != nil {
				return err
			}
			if err := checkOutput("tap", out, outLines, outJSON); err != nil {
				return err
			}
			switch {
			case status != "" && !slices.Contains(tapStatuses, status):
				return &UsageError{fmt.Sprintf("tap: --status %q must be one of %s", status, strings.Join(tapStatuses, ", "))}
			case path != "" && !strings.HasPrefix(path, "/"):
				return &UsageError{fmt.Sprintf("tap: --path %q must start with /", path)}
			case maxLines < 0:
				return &UsageError{"tap: --max must be 1 or more"}
			}
			service := args[0]
			cl, err := c.apiClient()
			if err != nil {
				return err
			}
			if err := checkService(ctx, cl, service); err != nil {
				return err
			}
			ls, err := cl.openLive(ctx)
			if err != nil {
				return err
			}
			defer ls.close()
			params := map[string]string{"service": service, "method": method, "pathPrefix": path, "status": status}
			if err := ls.subscribe("tap", "tap", params); err != nil {
				return err
			}
			var printed int64
			for {
				m, err := ls.next()
				if err != nil {
					return err
				}
				if m.Type != "tap" {
					continue
				}
				if m.Dropped > 0 && out != outJSON {
					fmt.Fprintf(c.stdout, "(%d requests left out: over 100 a second)\n", m.Dropped)
				}
				var raws []json.RawMessage
				if err := json.Unmarshal(orEmpty(m.Entries), &raws); err != nil {
					return fmt.Errorf("the tap from the server is not what sluicectl expects: %w", err)
				}
				for _, raw := range raws {
					line, err := tapLine(raw, out)
					if err != nil {
						return err
					}
					if _, err := fmt.Fprintln(c.stdout, line); err != nil {
						return err
					}
					printed++
					if maxLines > 0 && printed >= maxLines {
						return nil
					}
				}
			}
		}
	},
}

// accessEntry is the part of the server's access-log entry that tap shows.
type accessEntry struct {
	Time                time.Time `json:"time"`
	SourceWorkload      string    `json:"sourceWorkload"`
	SourceNamespace     string    `json:"sourceNamespace"`
	DestinationService  string    `json:"destinationService"`
	DestinationVersion  string    `json:"destinationVersion"`
	Method              string    `json:"method"`
	Path                string    `json:"path"`
	ResponseCode        int       `json:"responseCode"`
	ResponseFlags       string    `json:"responseFlags"`
	DurationMs          float64   `json:"durationMs"`
	DestinationWorkload string    `json:"destinationWorkload"`
}

// tapLine formats one entry: the server's JSON, compacted, for -o json; otherwise
// "TIME METHOD PATH STATUS LATENCY SOURCE → SERVICE VERSION FLAGS".
func tapLine(raw json.RawMessage, out string) (string, error) {
	if out == outJSON {
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			return "", fmt.Errorf("a tap entry from the server is not JSON: %w", err)
		}
		b, err := json.Marshal(v)
		return string(b), err
	}
	var e accessEntry
	if err := json.Unmarshal(raw, &e); err != nil {
		return "", fmt.Errorf("a tap entry from the server is not what sluicectl expects: %w", err)
	}
	source := "unknown"
	if e.SourceWorkload != "" && e.SourceWorkload != "unknown" {
		source = e.SourceWorkload
		if e.SourceNamespace != "" && e.SourceNamespace != "unknown" {
			source = e.SourceNamespace + "/" + source
		}
	}
	version := e.DestinationVersion
	if version == "" || version == "unknown" {
		version = "-"
	}
	status := "-"
	if e.ResponseCode != 0 {
		status = fmt.Sprint(e.ResponseCode)
	}
	flags := e.ResponseFlags
	if flags == "" {
		flags = "-"
	}
	path := truncate(oneLine(e.Path), 200)
	if path == "" {
		path = "-"
	}
	ms := e.DurationMs
	return fmt.Sprintf("%s %s %s %s %s %s → %s %s %s",
		e.Time.UTC().Format("2006-01-02T15:04:05.000Z"), orDash(oneLine(e.Method)), path, status, millis(&ms),
		oneLine(source), oneLine(shortHost(e.DestinationService)), oneLine(version), oneLine(flags)), nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
