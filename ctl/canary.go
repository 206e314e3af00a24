package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
)

var canaryCommand = command{
	name:    "canary",
	args:    "(get SERVICE | set SERVICE VERSION=WEIGHT...)",
	summary: "show or set how a service's traffic is split between its versions",
	about: `
"canary set reviews v1=70 v3=30" sets the weights of the catch-all rule of the service's
VirtualService — the console's slider — and keeps every other rule (header matches, faults,
timeouts) as written. It creates the VirtualService, and the DestinationRule subsets
(labels version=NAME), when they are missing. Weights are proportional; a version left out
gets none. "canary get reviews" shows the versions, their endpoints and the current split.
Setting needs the operator role.`,
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		namespace := defaultNamespace
		out := outTable
		fs.add(stringValue{&namespace}, "namespace", "n", "NS", defaultNamespace, "the service's namespace")
		fs.add(stringValue{&out}, "output", "o", "FORMAT", outTable, "table, json or yaml")
		return func(ctx context.Context, args []string) error {
			if len(args) < 2 || (args[0] != "get" && args[0] != "set") || (args[0] == "set" && len(args) < 3) {
				return &UsageError{"canary needs get SERVICE, or set SERVICE VERSION=WEIGHT...: sluicectl canary set reviews v1=70 v3=30"}
			}
			if err := checkOutput("canary", out, outTable, outJSON, outYAML); err != nil {
				return err
			}
			cl, err := c.apiClient()
			if err != nil {
				return err
			}
			path := "/api/v1/namespaces/" + namespace + "/services/" + args[1]
			if args[0] == "get" {
				raw, err := cl.sendJSON(ctx, http.MethodGet, path, nil, nil)
				if err != nil {
					return err
				}
				if out != outTable {
					return printAnswer(c.stdout, out, raw)
				}
				return printService(c, raw)
			}
			weights := map[string]int{}
			for _, a := range args[2:] {
				v, w, ok := strings.Cut(a, "=")
				n, err := strconv.Atoi(w)
				if !ok || v == "" || err != nil {
					return &UsageError{fmt.Sprintf("canary set: %q is not VERSION=WEIGHT, such as v2=10", a)}
				}
				weights[v] = n
			}
			raw, err := cl.sendJSON(ctx, http.MethodPut, path+"/traffic", map[string]any{"weights": weights}, nil)
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
				_, err := fmt.Fprintln(c.stdout, "Nothing changed: the split is already so.")
				return err
			}
			if err := c.printResults(ans, false); err != nil {
				return err
			}
			_, err = fmt.Fprintf(c.stdout, "Revision %d: traffic of %s is now %s.\n", ans.Revision, args[1], strings.Join(args[2:], " "))
			return err
		}
	},
}

// printService shows a service's versions and split as a table.
func printService(c *cli, raw []byte) error {
	var s struct {
		Name     string `json:"name"`
		Versions []struct {
			Version   string `json:"version"`
			Endpoints []struct {
				Connected bool `json:"connected"`
			} `json:"endpoints"`
		} `json:"versions"`
		Traffic struct {
			VirtualService string         `json:"virtualService"`
			Weights        map[string]int `json:"weights"`
			OtherRules     int            `json:"otherRules"`
		} `json:"traffic"`
	}
	if err := json.Unmarshal(raw, &s); err != nil {
		return fmt.Errorf("the answer is not the JSON sluicectl expects: %v", err)
	}
	total := 0
	for _, w := range s.Traffic.Weights {
		total += w
	}
	rows := [][]string{{"VERSION", "ENDPOINTS", "WEIGHT"}}
	seen := map[string]bool{}
	for _, v := range s.Versions {
		seen[v.Version] = true
		rows = append(rows, []string{v.Version, strconv.Itoa(len(v.Endpoints)), share(s.Traffic.Weights, v.Version, total)})
	}
	var extra []string
	for v := range s.Traffic.Weights {
		if !seen[v] {
			extra = append(extra, v)
		}
	}
	sort.Strings(extra)
	for _, v := range extra {
		rows = append(rows, []string{v, "0", share(s.Traffic.Weights, v, total)})
	}
	for _, r := range rows {
		if _, err := fmt.Fprintf(c.stdout, "%-10s %-10s %s\n", r[0], r[1], r[2]); err != nil {
			return err
		}
	}
	switch {
	case s.Traffic.VirtualService == "":
		_, err := fmt.Fprintln(c.stdout, "No VirtualService routes it: requests are balanced over every endpoint.")
		return err
	case s.Traffic.OtherRules > 0:
		_, err := fmt.Fprintf(c.stdout, "VirtualService %s has %d more rule(s) before the split, which a canary change keeps.\n", s.Traffic.VirtualService, s.Traffic.OtherRules)
		return err
	}
	return nil
}

func share(weights map[string]int, v string, total int) string {
	if total == 0 {
		return "-"
	}
	return fmt.Sprintf("%d%%", weights[v]*100/total)
}
