package ctl

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"sigs.k8s.io/yaml"
)

var getCommand = command{
	name:    "get",
	args:    "KIND [NAME]",
	summary: "list resources of a kind, or show one",
	about: `
KIND is plural, singular or short: virtualservices, virtualservice or vs. The table shows
NAMESPACE (with -A), NAME, REVISION (the resourceVersion), UPDATED BY and AGE.
-o yaml prints each object as a YAML document, ready to edit and apply again; -o json
prints the server's JSON.`,
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		var (
			namespace, selector string
			all                 bool
			out                 = outTable
		)
		fs.add(stringValue{&namespace}, "namespace", "n", "NS", defaultNamespace, "the namespace")
		fs.add(boolValue{&all}, "all-namespaces", "A", "", "", "list the kind in every namespace")
		fs.add(stringValue{&selector}, "selector", "l", "K=V,...", "", "only resources with all of these labels")
		fs.add(stringValue{&out}, "output", "o", "FORMAT", outTable, "table, yaml or json")
		return func(ctx context.Context, args []string) error {
			if err := wantArgs("get", "KIND [NAME]", args, 1, 2); err != nil {
				return err
			}
			if err := checkOutput("get", out, outTable, outYAML, outJSON); err != nil {
				return err
			}
			k, err := parseKind(args[0])
			if err != nil {
				return err
			}
			name := ""
			if len(args) == 2 {
				name = args[1]
			}
			switch {
			case all && namespace != "":
				return &UsageError{"get: -n and -A cannot go together: name one namespace, or all of them"}
			case all && name != "":
				return &UsageError{"get: a NAME needs its namespace: use -n NS instead of -A"}
			case name != "" && selector != "":
				return &UsageError{"get: -l selects among many resources: drop it, or drop the NAME"}
			}
			if namespace == "" {
				namespace = defaultNamespace
			}
			return c.get(ctx, k, namespace, name, all, selector, out)
		}
	},
}

var deleteCommand = command{
	name:    "delete",
	args:    "KIND NAME",
	summary: "delete a resource",
	about: `
The server refuses a delete that would leave the rest of the mesh invalid, such as
deleting a DestinationRule whose subsets a VirtualService still routes to.`,
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		namespace := defaultNamespace
		out := outTable
		fs.add(stringValue{&namespace}, "namespace", "n", "NS", defaultNamespace, "the namespace")
		fs.add(stringValue{&out}, "output", "o", "FORMAT", outTable, "table, json or yaml")
		return func(ctx context.Context, args []string) error {
			if err := wantArgs("delete", "KIND NAME", args, 2, 2); err != nil {
				return err
			}
			if err := checkOutput("delete", out, outTable, outJSON, outYAML); err != nil {
				return err
			}
			k, err := parseKind(args[0])
			if err != nil {
				return err
			}
			cl, err := c.apiClient()
			if err != nil {
				return err
			}
			raw, err := cl.do(ctx, request{method: http.MethodDelete, path: resourcePath(k, namespace, args[1])})
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
			return c.printResults(ans, false)
		}
	},
}

// object is the part of a stored resource the table shows.
type object struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Name              string     `json:"name"`
		Namespace         string     `json:"namespace"`
		ResourceVersion   string     `json:"resourceVersion"`
		CreationTimestamp *time.Time `json:"creationTimestamp"`
		UpdatedBy         string     `json:"updatedBy"`
	} `json:"metadata"`
}

func (c *cli) get(ctx context.Context, k kindInfo, namespace, name string, all bool, selector, out string) error {
	cl, err := c.apiClient()
	if err != nil {
		return err
	}
	var items []json.RawMessage
	var raw []byte
	if name != "" {
		if raw, err = cl.getJSON(ctx, resourcePath(k, namespace, name), nil, nil); err != nil {
			return err
		}
		items = []json.RawMessage{raw}
	} else {
		q := url.Values{}
		if selector != "" {
			q.Set("labelSelector", selector)
		}
		path := resourcePath(k, namespace, "")
		if all {
			path = "/api/v1/" + k.plural
		}
		var list struct {
			Items []json.RawMessage `json:"items"`
		}
		if raw, err = cl.getJSON(ctx, path, q, &list); err != nil {
			return err
		}
		items = list.Items
	}
	switch out {
	case outJSON:
		return printJSON(c.stdout, raw)
	case outYAML:
		return printObjectsYAML(c.stdout, items)
	}
	if len(items) == 0 {
		where := "in the " + namespace + " namespace"
		if all {
			where = "in any namespace"
		}
		if selector != "" {
			where += " with labels " + selector
		}
		_, err := fmt.Fprintf(c.stderr, "No %s found %s.\n", k.plural, where)
		return err
	}
	header := []string{"NAME", "REVISION", "UPDATED BY", "AGE"}
	if all {
		header = append([]string{"NAMESPACE"}, header...)
	}
	now := c.now()
	rows := make([][]string, 0, len(items))
	for _, it := range items {
		var o object
		if err := json.Unmarshal(it, &o); err != nil {
			return fmt.Errorf("the answer from %s is not the JSON sluicectl expects (%v): is it a sluice-server of this version?", cl.base, err)
		}
		row := []string{o.Metadata.Name, o.Metadata.ResourceVersion, o.Metadata.UpdatedBy, age(timeOf(o.Metadata.CreationTimestamp), now)}
		if all {
			row = append([]string{o.Metadata.Namespace}, row...)
		}
		rows = append(rows, row)
	}
	return writeTable(c.stdout, header, rows)
}

// bookkeeping are metadata fields the server adds that it does not take back in an apply.
// -o yaml leaves them out, so that its output can be edited and applied as it is; -o json
// keeps the server's answer whole, and the table shows them.
var bookkeeping = []string{"updatedAt", "updatedBy"}

// printObjectsYAML writes objects as YAML documents separated by "---".
func printObjectsYAML(w io.Writer, items []json.RawMessage) error {
	var b bytes.Buffer
	for i, it := range items {
		var obj map[string]any
		dec := json.NewDecoder(bytes.NewReader(it))
		dec.UseNumber() // keep numbers exactly as the server sent them
		if err := dec.Decode(&obj); err != nil {
			return fmt.Errorf("the server's answer holds an object that is not JSON: %w", err)
		}
		if md, ok := obj["metadata"].(map[string]any); ok {
			for _, f := range bookkeeping {
				delete(md, f)
			}
		}
		j, err := json.Marshal(obj)
		if err != nil {
			return fmt.Errorf("encode an object: %w", err)
		}
		y, err := yaml.JSONToYAML(j)
		if err != nil {
			return fmt.Errorf("convert an object to YAML: %w", err)
		}
		if i > 0 {
			b.WriteString("---\n")
		}
		b.Write(y)
	}
	_, err := w.Write(b.Bytes())
	return err
}
