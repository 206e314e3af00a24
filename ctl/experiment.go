package ctl

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

var experimentCommand = command{
	name:    "experiment",
	args:    "(start -f FILE | list | get [NS/]NAME | stop [NS/]NAME)",
	summary: "start, list, show and stop time-boxed fault experiments",
	about: `
"experiment start -f chaos.yaml" applies FaultExperiment resources (the same as apply):
one without spec.start starts at once, and lasts its spec.duration. "experiment list"
shows every experiment with the state of its current run (scheduled, running,
stopped_early, finished, stopped, deleted) and the latest ended runs. "experiment get
chaos" (or default/chaos, or -n default chaos) shows one experiment and all its runs.
"experiment stop chaos" ends the current run now and lifts its fault from every sidecar;
the resource stays, as history (needs the operator role).`,
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		var (
			namespace = defaultNamespace
			out       = outTable
			files     []string
			message   string
		)
		fs.add(stringValue{&namespace}, "namespace", "n", "NS", defaultNamespace, "the experiment's namespace (get, stop)")
		fs.add(listValue{&files}, "filename", "f", "PATH", "", "start: a YAML or JSON file of FaultExperiments, a directory of them, or -; repeatable")
		fs.add(stringValue{&message}, "message", "m", "TEXT", "", "start: why, kept with the revision")
		fs.add(stringValue{&out}, "output", "o", "FORMAT", outTable, "table, json or yaml")
		return func(ctx context.Context, args []string) error {
			if len(args) == 0 {
				return &UsageError{"experiment needs start, list, get or stop: sluicectl experiment list"}
			}
			if err := checkOutput("experiment", out, outTable, outJSON, outYAML); err != nil {
				return err
			}
			sub, rest := args[0], args[1:]
			if sub != "start" && len(files) > 0 {
				return &UsageError{fmt.Sprintf("experiment %s takes no -f: only start reads files", sub)}
			}
			switch sub {
			case "start":
				if len(rest) > 0 {
					return &UsageError{fmt.Sprintf("experiment start reads files given with -f, not %q", strings.Join(rest, " "))}
				}
				if len(files) == 0 {
					return &UsageError{"experiment start needs -f FILE (a FaultExperiment): sluicectl experiment start -f chaos.yaml"}
				}
				docs, err := c.readDocuments(files, false)
				if err != nil {
					return err
				}
				return c.apply(ctx, docs, message, false, out)
			case "list":
				if err := wantArgs("experiment list", "", rest, 0, 0); err != nil {
					return err
				}
				return c.listExperiments(ctx, out)
			case "get", "stop":
				if err := wantArgs("experiment "+sub, "[NS/]NAME", rest, 1, 1); err != nil {
					return err
				}
				ns, name := namespace, rest[0]
				if before, after, ok := strings.Cut(name, "/"); ok {
					ns, name = before, after
				}
				if ns == "" || name == "" || strings.Contains(name, "/") {
					return &UsageError{fmt.Sprintf("experiment %s: %q is not NAME or NS/NAME", sub, rest[0])}
				}
				path := "/api/v1/namespaces/" + url.PathEscape(ns) + "/experiments/" + url.PathEscape(name)
				if sub == "get" {
					return c.getExperiment(ctx, path, out)
				}
				return c.stopExperiment(ctx, path, ns+"/"+name, out)
			}
			return &UsageError{fmt.Sprintf("experiment: unknown subcommand %q: use start, list, get or stop", sub)}
		}
	},
}

// experimentStatus is an experiment in the answers of /api/v1/experiments.
type experimentStatus struct {
	Namespace string     `json:"namespace"`
	Name      string     `json:"name"`
	Host      string     `json:"host"`
	Start     *time.Time `json:"start"`
	End       *time.Time `json:"end"`
	Duration  string     `json:"duration"`
	State     string     `json:"state"`
	Reason    string     `json:"reason"`
}

// experimentRun is one run in those answers.
type experimentRun struct {
	Namespace string     `json:"namespace"`
	Name      string     `json:"name"`
	Host      string     `json:"host"`
	Start     time.Time  `json:"start"`
	End       time.Time  `json:"end"`
	Revision  int64      `json:"revision"`
	State     string     `json:"state"`
	Reason    string     `json:"reason"`
	StartedAt *time.Time `json:"startedAt"`
	EndedAt   *time.Time `json:"endedAt"`
}

// when shows a time as the local clock does, without the date when it is today.
func (c *cli) when(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	lt, now := t.Local(), c.now().Local()
	if lt.Year() == now.Year() && lt.YearDay() == now.YearDay() {
		return lt.Format("15:04:05")
	}
	return lt.Format("2006-01-02 15:04:05")
}

func (c *cli) listExperiments(ctx context.Context, out string) error {
	cl, err := c.apiClient()
	if err != nil {
		return err
	}
	var ans struct {
		Items   []experimentStatus `json:"items"`
		History []experimentRun    `json:"history"`
	}
	raw, err := cl.getJSON(ctx, "/api/v1/experiments", nil, &ans)
	if err != nil {
		return err
	}
	if out != outTable {
		return printAnswer(c.stdout, out, raw)
	}
	if len(ans.Items) == 0 && len(ans.History) == 0 {
		_, err := fmt.Fprintln(c.stderr, "No fault experiments: start one with sluicectl experiment start -f FILE.")
		return err
	}
	rows := make([][]string, 0, len(ans.Items))
	for _, e := range ans.Items {
		rows = append(rows, []string{e.Namespace, e.Name, e.Host, e.State, c.when(e.Start), e.Duration, truncate(oneLine(e.Reason), 80)})
	}
	if err := writeTable(c.stdout, []string{"NAMESPACE", "NAME", "HOST", "STATE", "START", "DURATION", "REASON"}, rows); err != nil {
		return err
	}
	if len(ans.History) == 0 {
		return nil
	}
	if _, err := fmt.Fprintln(c.stdout, "\nRecent runs:"); err != nil {
		return err
	}
	return c.writeRuns(ans.History, true)
}

func (c *cli) writeRuns(runs []experimentRun, withName bool) error {
	header := []string{"START", "END", "STATE", "REVISION", "REASON"}
	if withName {
		header = append([]string{"NAMESPACE", "NAME"}, header...)
	}
	rows := make([][]string, 0, len(runs))
	for _, r := range runs {
		row := []string{c.when(&r.Start), c.when(&r.End), r.State, fmt.Sprint(r.Revision), truncate(oneLine(r.Reason), 80)}
		if withName {
			row = append([]string{r.Namespace, r.Name}, row...)
		}
		rows = append(rows, row)
	}
	return writeTable(c.stdout, header, rows)
}

func (c *cli) getExperiment(ctx context.Context, path, out string) error {
	cl, err := c.apiClient()
	if err != nil {
		return err
	}
	var ans struct {
		Experiment *experimentStatus `json:"experiment"`
		Runs       []experimentRun   `json:"runs"`
	}
	raw, err := cl.getJSON(ctx, path, nil, &ans)
	if err != nil {
		return err
	}
	if out != outTable {
		return printAnswer(c.stdout, out, raw)
	}
	var b strings.Builder
	if e := ans.Experiment; e != nil {
		fmt.Fprintf(&b, "Name:      %s/%s\nHost:      %s\nState:     %s\n", e.Namespace, e.Name, e.Host, e.State)
		if e.Reason != "" {
			fmt.Fprintf(&b, "Reason:    %s\n", e.Reason)
		}
		fmt.Fprintf(&b, "Start:     %s\nEnd:       %s\nDuration:  %s\n", c.when(e.Start), c.when(e.End), e.Duration)
	} else {
		b.WriteString("The FaultExperiment was deleted; its runs remain.\n")
	}
	b.WriteString("\nRuns:\n")
	if _, err := fmt.Fprint(c.stdout, b.String()); err != nil {
		return err
	}
	return c.writeRuns(ans.Runs, false)
}

func (c *cli) stopExperiment(ctx context.Context, path, ref, out string) error {
	cl, err := c.apiClient()
	if err != nil {
		return err
	}
	var ans struct {
		Run experimentRun `json:"run"`
	}
	raw, err := cl.sendJSON(ctx, http.MethodPost, path+"/stop", nil, &ans)
	if err != nil {
		return err
	}
	if out != outTable {
		return printAnswer(c.stdout, out, raw)
	}
	_, err = fmt.Fprintf(c.stdout, "Experiment %s stopped: its fault is lifted (run started %s, %s).\n", ref, c.when(&ans.Run.Start), ans.Run.Reason)
	return err
}
