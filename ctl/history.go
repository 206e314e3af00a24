package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

var historyCommand = command{
	name:    "history",
	args:    "[KIND NAME]",
	summary: "list the mesh's revisions, or those of one resource, newest first",
	about: `
Without KIND NAME, lists the mesh-wide revision log: REVISION, AGE, ACTOR, MESSAGE and
CHANGES. With them, the revisions that changed that resource. Revision numbers are what
diff and rollback take.`,
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		var (
			namespace = defaultNamespace
			limit     int64
			out       = outTable
		)
		fs.add(stringValue{&namespace}, "namespace", "n", "NS", defaultNamespace, "the resource's namespace")
		fs.add(intValue{p: &limit}, "limit", "", "N", "the server's, 100", "show at most N revisions (1 to 1000)")
		fs.add(stringValue{&out}, "output", "o", "FORMAT", outTable, "table, json or yaml")
		return func(ctx context.Context, args []string) error {
			if len(args) == 1 {
				return &UsageError{"history: a KIND needs a NAME: sluicectl history " + args[0] + " NAME, or no arguments for the whole mesh"}
			}
			if err := wantArgs("history", "[KIND NAME]", args, 0, 2); err != nil {
				return err
			}
			if err := checkOutput("history", out, outTable, outJSON, outYAML); err != nil {
				return err
			}
			if limit < 0 || limit > 1000 {
				return &UsageError{fmt.Sprintf("history: --limit %d: use a number from 1 to 1000", limit)}
			}
			q := url.Values{}
			if limit > 0 {
				q.Set("limit", strconv.FormatInt(limit, 10))
			}
			path := "/api/v1/revisions"
			if len(args) == 2 {
				k, err := parseKind(args[0])
				if err != nil {
					return err
				}
				path = resourcePath(k, namespace, args[1]) + "/history"
			}
			cl, err := c.apiClient()
			if err != nil {
				return err
			}
			var ans struct {
				Revisions []revision `json:"revisions"`
			}
			raw, err := cl.getJSON(ctx, path, q, &ans)
			if err != nil {
				return err
			}
			if out != outTable {
				return printAnswer(c.stdout, out, raw)
			}
			if len(ans.Revisions) == 0 {
				_, err := fmt.Fprintln(c.stderr, "No revisions yet.")
				return err
			}
			return writeTable(c.stdout, []string{"REVISION", "AGE", "ACTOR", "MESSAGE", "CHANGES"}, revisionRows(ans.Revisions, c.now()))
		}
	},
}

// revision is one entry of the revision log.
type revision struct {
	Revision int64     `json:"revision"`
	At       time.Time `json:"at"`
	Actor    string    `json:"actor"`
	Message  string    `json:"message"`
	Changes  []struct {
		Kind      string `json:"kind"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
		Action    string `json:"action"`
	} `json:"changes"`
}

// maxListedChanges is how many changes a history row names before it counts the rest.
const maxListedChanges = 3

func revisionRows(revs []revision, now time.Time) [][]string {
	rows := make([][]string, 0, len(revs))
	for _, r := range revs {
		var changes []string
		for i, ch := range r.Changes {
			if i == maxListedChanges {
				changes = append(changes, fmt.Sprintf("and %d more", len(r.Changes)-i))
				break
			}
			changes = append(changes, ch.Action+" "+resourceRef(ch.Kind, ch.Namespace, ch.Name))
		}
		rows = append(rows, []string{strconv.FormatInt(r.Revision, 10), age(r.At, now), r.Actor, truncate(oneLine(r.Message), 60), strings.Join(changes, ", ")})
	}
	return rows
}

var diffCommand = command{
	name:    "diff",
	args:    "--from A [--to B] [KIND NAME]",
	summary: "show how the configuration changed between two revisions",
	about: `
Prints a unified diff for every resource that differs between revisions A and B (B is
the newest revision when left out), or for one resource with KIND NAME.`,
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		var (
			namespace      = defaultNamespace
			from, to       int64
			fromSet, toSet bool
			out            = outTable
		)
		fs.add(intValue{&from, &fromSet}, "from", "", "REV", "", "the revision to compare from (required)")
		fs.add(intValue{&to, &toSet}, "to", "", "REV", "the newest revision", "the revision to compare to")
		fs.add(stringValue{&namespace}, "namespace", "n", "NS", defaultNamespace, "the resource's namespace")
		fs.add(stringValue{&out}, "output", "o", "FORMAT", outTable, "table (the diffs), json or yaml")
		return func(ctx context.Context, args []string) error {
			if len(args) == 1 {
				return &UsageError{"diff: a KIND needs a NAME: sluicectl diff --from A " + args[0] + " NAME"}
			}
			if err := wantArgs("diff", "--from A [--to B] [KIND NAME]", args, 0, 2); err != nil {
				return err
			}
			if !fromSet {
				return &UsageError{"diff needs --from REV: list revisions with sluicectl history"}
			}
			if from < 0 || (toSet && to < 0) {
				return &UsageError{"diff: revisions are numbers from 0"}
			}
			if err := checkOutput("diff", out, outTable, outJSON, outYAML); err != nil {
				return err
			}
			q := url.Values{"from": {strconv.FormatInt(from, 10)}}
			if len(args) == 2 {
				k, err := parseKind(args[0])
				if err != nil {
					return err
				}
				q.Set("kind", k.plural)
				q.Set("namespace", namespace)
				q.Set("name", args[1])
			}
			cl, err := c.apiClient()
			if err != nil {
				return err
			}
			if !toSet {
				if to, err = currentRevision(ctx, cl); err != nil {
					return err
				}
			}
			q.Set("to", strconv.FormatInt(to, 10))
			var ans struct {
				Resources []struct {
					Diff string `json:"diff"`
				} `json:"resources"`
			}
			raw, err := cl.getJSON(ctx, "/api/v1/diff", q, &ans)
			if err != nil {
				return err
			}
			if out != outTable {
				return printAnswer(c.stdout, out, raw)
			}
			if len(ans.Resources) == 0 {
				_, err := fmt.Fprintf(c.stderr, "No differences between revisions %d and %d.\n", from, to)
				return err
			}
			var b strings.Builder
			for _, r := range ans.Resources {
				b.WriteString(r.Diff)
				if !strings.HasSuffix(r.Diff, "\n") {
					b.WriteByte('\n')
				}
			}
			_, err = io.WriteString(c.stdout, b.String())
			return err
		}
	},
}

// currentRevision asks the server for the newest revision.
func currentRevision(ctx context.Context, cl *client) (int64, error) {
	var ans struct {
		Current int64 `json:"current"`
	}
	if _, err := cl.getJSON(ctx, "/api/v1/revisions", url.Values{"limit": {"1"}}, &ans); err != nil {
		return 0, err
	}
	return ans.Current, nil
}

var rollbackCommand = command{
	name:    "rollback",
	args:    "(KIND NAME | --mesh) --to REV",
	summary: "restore a resource, or the whole mesh, to what it was at a revision",
	about: `
"rollback KIND NAME --to REV" restores one resource to its state right after revision
REV (deleting it if it did not exist then). "rollback --mesh --to REV" restores every
resource changed since REV. Either way the rollback is a new revision, so it can itself be
rolled back. It needs the operator role.`,
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		var (
			namespace = defaultNamespace
			to        int64
			toSet     bool
			mesh      bool
			out       = outTable
		)
		fs.add(intValue{&to, &toSet}, "to", "", "REV", "", "the revision to restore (required)")
		fs.add(boolValue{&mesh}, "mesh", "", "", "", "roll back every resource, not one")
		fs.add(stringValue{&namespace}, "namespace", "n", "NS", defaultNamespace, "the resource's namespace")
		fs.add(stringValue{&out}, "output", "o", "FORMAT", outTable, "table, json or yaml")
		return func(ctx context.Context, args []string) error {
			switch {
			case mesh && len(args) > 0:
				return &UsageError{"rollback: --mesh rolls back every resource: drop " + strings.Join(args, " ") + ", or drop --mesh"}
			case !mesh && len(args) != 2:
				return &UsageError{"rollback needs KIND NAME, or --mesh for every resource: sluicectl rollback vs reviews --to REV"}
			case !toSet:
				return &UsageError{"rollback needs --to REV: list revisions with sluicectl history"}
			case to < 0:
				return &UsageError{"rollback: revisions are numbers from 0"}
			}
			if err := checkOutput("rollback", out, outTable, outJSON, outYAML); err != nil {
				return err
			}
			var path string
			var body any
			if mesh {
				path = "/api/v1/revisions/" + strconv.FormatInt(to, 10) + "/rollback"
			} else {
				k, err := parseKind(args[0])
				if err != nil {
					return err
				}
				path = resourcePath(k, namespace, args[1]) + "/rollback"
				body = map[string]int64{"revision": to}
			}
			cl, err := c.apiClient()
			if err != nil {
				return err
			}
			raw, err := cl.sendJSON(ctx, http.MethodPost, path, body, nil)
			if err != nil {
				return err
			}
			if out != outTable {
				return printAnswer(c.stdout, out, raw)
			}
			var ans applyAnswer
			if err := json.Unmarshal(raw, &ans); err != nil {
				return fmt.Errorf("the answer from %s is not the JSON sluicectl expects (%v): is it a sluice-server of this version?", cl.base, err)
			}
			if ans.Revision == 0 {
				_, err := fmt.Fprintf(c.stdout, "Nothing to roll back: already as at revision %d.\n", to)
				return err
			}
			if err := c.printResults(ans, false); err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.stdout, "Revision %d restores revision %d.\n", ans.Revision, to)
			return err
		}
	},
}
