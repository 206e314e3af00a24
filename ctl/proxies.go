package ctl

import (
	"context"
	"fmt"
	"strings"
)

// xdsTypes are the columns of proxy-status, in the order Envoy applies them.
var xdsTypes = []string{"LDS", "RDS", "CDS", "EDS"}

var proxyStatusCommand = command{
	name:    "proxy-status",
	summary: "list the proxies and the configuration version each has acknowledged",
	about: `
Shows every registered proxy: NAME (its node id), SERVICE, ADDRESS, CONNECTED, the
version it last acknowledged for each xDS type (LDS, RDS, CDS, EDS; "3 (sent 4)" while a
newer one is on its way), and its last NACK, if any. A proxy whose versions lag or that
NACKs is not running the configuration you applied.`,
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		out := outTable
		fs.add(stringValue{&out}, "output", "o", "FORMAT", outTable, "table, json or yaml")
		return func(ctx context.Context, args []string) error {
			if err := wantArgs("proxy-status", "", args, 0, 0); err != nil {
				return err
			}
			if err := checkOutput("proxy-status", out, outTable, outJSON, outYAML); err != nil {
				return err
			}
			cl, err := c.apiClient()
			if err != nil {
				return err
			}
			var ans struct {
				Proxies []proxy `json:"proxies"`
			}
			raw, err := cl.getJSON(ctx, "/api/v1/proxies", nil, &ans)
			if err != nil {
				return err
			}
			if out != outTable {
				return printAnswer(c.stdout, out, raw)
			}
			if len(ans.Proxies) == 0 {
				_, err := fmt.Fprintln(c.stderr, "No proxies are registered.")
				return err
			}
			header := append(append([]string{"NAME", "SERVICE", "ADDRESS", "CONNECTED"}, xdsTypes...), "NACK")
			rows := make([][]string, 0, len(ans.Proxies))
			for _, p := range ans.Proxies {
				rows = append(rows, p.row())
			}
			return writeTable(c.stdout, header, rows)
		}
	},
}

// proxy is one entry of GET /api/v1/proxies.
type proxy struct {
	NodeID    string            `json:"nodeId"`
	Namespace string            `json:"namespace"`
	Service   string            `json:"service"`
	Address   string            `json:"address"`
	Connected bool              `json:"connected"`
	Draining  bool              `json:"draining"`
	Acked     map[string]string `json:"acked"`
	Sent      map[string]string `json:"sent"`
	Nacks     map[string]string `json:"nacks"`
}

func (p proxy) row() []string {
	connected := "no"
	switch {
	case p.Draining:
		connected = "draining"
	case p.Connected:
		connected = "yes"
	}
	service := p.Service
	if p.Namespace != "" {
		service = p.Namespace + "/" + p.Service
	}
	row := []string{p.NodeID, service, p.Address, connected}
	for _, t := range xdsTypes {
		v := p.Acked[t]
		if s := p.Sent[t]; s != "" && s != v {
			if v == "" {
				v = "-"
			}
			v += " (sent " + s + ")"
		}
		row = append(row, v)
	}
	var nacks []string
	for _, t := range sortedKeys(p.Nacks) {
		if m := p.Nacks[t]; m != "" {
			nacks = append(nacks, t+": "+truncate(oneLine(m), 80))
		}
	}
	return append(row, strings.Join(nacks, "; "))
}
