package ctl

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
)

// configSections are the parts of a config dump proxy-config can show, with the @type of
// the dump entry each comes from.
var configSections = map[string]string{
	"listeners": "type.googleapis.com/envoy.admin.v3.ListenersConfigDump",
	"routes":    "type.googleapis.com/envoy.admin.v3.RoutesConfigDump",
	"clusters":  "type.googleapis.com/envoy.admin.v3.ClustersConfigDump",
	"endpoints": "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump",
}

var sectionOrder = []string{"listeners", "routes", "clusters", "endpoints"}

var proxyConfigCommand = command{
	name:    "proxy-config",
	args:    "PROXY [all|listeners|routes|clusters|endpoints]",
	summary: "show the listeners, routes, clusters and endpoints in effect on one proxy",
	about: `
Reads the configuration PROXY has applied — its /config_dump, relayed by the server from the
proxy's admin port — and prints one table per section: listeners (name, address), routes
(route configuration, virtual host, domains, routes), clusters (name, discovery, load
balancing) and endpoints (cluster, address, health; outlier-ejected endpoints show
UNHEALTHY). Name one section to see only it.

PROXY is a nodeId or workload name from proxy-status, or any part of only one nodeId
(such as reviews-v2, or the proxy's address).
With -o json or -o yaml the dump itself is printed (only the named section's entry when
one is named), shaped like Envoy's /config_dump.`,
	setup: func(c *cli, fs *flagSet) func(context.Context, []string) error {
		out := outTable
		fs.add(stringValue{&out}, "output", "o", "FORMAT", outTable, "table, json or yaml")
		return func(ctx context.Context, args []string) error {
			const synopsis = "PROXY [all|listeners|routes|clusters|endpoints]"
			if err := wantArgs("proxy-config", synopsis, args, 1, 2); err != nil {
				return err
			}
			section := "all"
			if len(args) == 2 {
				section = strings.ToLower(args[1])
				if _, ok := configSections[section]; !ok && section != "all" {
					return &UsageError{fmt.Sprintf("proxy-config: unknown section %q: want all, listeners, routes, clusters or endpoints", args[1])}
				}
			}
			if err := checkOutput("proxy-config", out, outTable, outJSON, outYAML); err != nil {
				return err
			}
			cl, err := c.apiClient()
			if err != nil {
				return err
			}
			node, err := resolveProxy(ctx, cl, args[0])
			if err != nil {
				return err
			}
			var dump configDump
			raw, err := cl.getJSON(ctx, "/api/v1/proxies/"+url.PathEscape(node)+"/config_dump", nil, &dump)
			if err != nil {
				return err
			}
			if out != outTable {
				if section != "all" {
					entry := dump.section(configSections[section])
					if entry == nil {
						entry = json.RawMessage(`{}`)
					}
					raw = entry
				}
				return printAnswer(c.stdout, out, raw)
			}
			sections := sectionOrder
			if section != "all" {
				sections = []string{section}
			}
			for i, s := range sections {
				if i > 0 {
					fmt.Fprintln(c.stdout)
				}
				header, rows, err := sectionTable(s, dump.section(configSections[s]))
				if err != nil {
					return fmt.Errorf("proxy-config: the %s of %s: %w", s, node, err)
				}
				if len(sections) > 1 {
					fmt.Fprintf(c.stdout, "%s:\n", strings.ToUpper(s))
				}
				if len(rows) == 0 {
					fmt.Fprintf(c.stdout, "(no %s)\n", s)
					continue
				}
				if err := writeTable(c.stdout, header, rows); err != nil {
					return err
				}
			}
			return nil
		}
	},
}

// resolveProxy finds the nodeId that arg names: a nodeId or workload name itself, or a part of
// only one nodeId (nodeIds read sidecar~ADDRESS~WORKLOAD.NAMESPACE~DOMAIN, so a workload's
// version or address is usually enough).
func resolveProxy(ctx context.Context, cl *client, arg string) (string, error) {
	var ans struct {
		Proxies []struct {
			NodeID   string `json:"nodeId"`
			Workload string `json:"workload"`
		} `json:"proxies"`
	}
	if _, err := cl.getJSON(ctx, "/api/v1/proxies", nil, &ans); err != nil {
		return "", err
	}
	var matches []string
	for _, p := range ans.Proxies {
		if p.NodeID == arg || p.Workload == arg {
			return p.NodeID, nil
		}
		if strings.Contains(p.NodeID, arg) {
			matches = append(matches, p.NodeID)
		}
	}
	slices.Sort(matches)
	switch len(matches) {
	case 0:
		return "", fmt.Errorf("no proxy is called %q: sluicectl proxy-status lists them", arg)
	case 1:
		return matches[0], nil
	}
	return "", fmt.Errorf("%q names %d proxies (%s): give more of the nodeId", arg, len(matches), strings.Join(matches, ", "))
}

// configDump is the part of a /config_dump that proxy-config reads.
type configDump struct {
	Configs []json.RawMessage `json:"configs"`
}

// section returns the dump entry of the given @type, or nil.
func (d configDump) section(typ string) json.RawMessage {
	for _, c := range d.Configs {
		var head struct {
			Type string `json:"@type"`
		}
		if json.Unmarshal(c, &head) == nil && head.Type == typ {
			return c
		}
	}
	return nil
}

// Dump entries, as far as the tables need them (proto field names, as Envoy dumps them).
type (
	socketAddress struct {
		SocketAddress struct {
			Address   string `json:"address"`
			PortValue uint32 `json:"port_value"`
		} `json:"socket_address"`
	}
	listenerDump struct {
		DynamicListeners []struct {
			Name        string `json:"name"`
			ActiveState *struct {
				Version  string `json:"version_info"`
				Listener struct {
					Address socketAddress `json:"address"`
				} `json:"listener"`
			} `json:"active_state"`
			WarmingState *struct {
				Version string `json:"version_info"`
			} `json:"warming_state"`
		} `json:"dynamic_listeners"`
	}
	routeDump struct {
		DynamicRouteConfigs []struct {
			RouteConfig struct {
				Name         string `json:"name"`
				VirtualHosts []struct {
					Name    string            `json:"name"`
					Domains []string          `json:"domains"`
					Routes  []json.RawMessage `json:"routes"`
				} `json:"virtual_hosts"`
			} `json:"route_config"`
		} `json:"dynamic_route_configs"`
	}
	clusterEntry struct {
		Version string `json:"version_info"`
		Cluster struct {
			Name     string `json:"name"`
			Type     string `json:"type"`
			LbPolicy string `json:"lb_policy"`
		} `json:"cluster"`
	}
	clusterDump struct {
		Active  []clusterEntry `json:"dynamic_active_clusters"`
		Warming []clusterEntry `json:"dynamic_warming_clusters"`
	}
	endpointDump struct {
		DynamicEndpointConfigs []struct {
			EndpointConfig struct {
				ClusterName string `json:"cluster_name"`
				Endpoints   []struct {
					LbEndpoints []struct {
						Endpoint struct {
							Address socketAddress `json:"address"`
						} `json:"endpoint"`
						HealthStatus string `json:"health_status"`
					} `json:"lb_endpoints"`
				} `json:"endpoints"`
			} `json:"endpoint_config"`
		} `json:"dynamic_endpoint_configs"`
	}
)

func (a socketAddress) String() string {
	if a.SocketAddress.Address == "" {
		return "-"
	}
	return a.SocketAddress.Address + ":" + strconv.FormatUint(uint64(a.SocketAddress.PortValue), 10)
}

// sectionTable renders one section of a dump as a table; a nil entry has no rows.
func sectionTable(section string, entry json.RawMessage) (header []string, rows [][]string, err error) {
	if entry == nil {
		entry = json.RawMessage(`{}`)
	}
	switch section {
	case "listeners":
		var d listenerDump
		if err := json.Unmarshal(entry, &d); err != nil {
			return nil, nil, err
		}
		for _, l := range d.DynamicListeners {
			switch {
			case l.ActiveState != nil:
				rows = append(rows, []string{l.Name, l.ActiveState.Listener.Address.String(), "active", l.ActiveState.Version})
			case l.WarmingState != nil:
				rows = append(rows, []string{l.Name, "-", "warming", l.WarmingState.Version})
			}
		}
		return []string{"NAME", "ADDRESS", "STATE", "VERSION"}, rows, nil
	case "routes":
		var d routeDump
		if err := json.Unmarshal(entry, &d); err != nil {
			return nil, nil, err
		}
		for _, rc := range d.DynamicRouteConfigs {
			for _, vh := range rc.RouteConfig.VirtualHosts {
				rows = append(rows, []string{rc.RouteConfig.Name, vh.Name, truncate(strings.Join(vh.Domains, ","), 60), strconv.Itoa(len(vh.Routes))})
			}
		}
		return []string{"ROUTE CONFIG", "VIRTUAL HOST", "DOMAINS", "ROUTES"}, rows, nil
	case "clusters":
		var d clusterDump
		if err := json.Unmarshal(entry, &d); err != nil {
			return nil, nil, err
		}
		add := func(cs []clusterEntry, state string) {
			for _, c := range cs {
				typ := c.Cluster.Type
				if typ == "" {
					typ = "EDS"
				}
				lb := c.Cluster.LbPolicy
				if lb == "" {
					lb = "ROUND_ROBIN" // proto3 omits the zero value, Envoy's default
				}
				rows = append(rows, []string{c.Cluster.Name, typ, lb, state, c.Version})
			}
		}
		add(d.Active, "active")
		add(d.Warming, "warming")
		return []string{"NAME", "DISCOVERY", "LB POLICY", "STATE", "VERSION"}, rows, nil
	case "endpoints":
		var d endpointDump
		if err := json.Unmarshal(entry, &d); err != nil {
			return nil, nil, err
		}
		for _, ec := range d.DynamicEndpointConfigs {
			n := 0
			for _, loc := range ec.EndpointConfig.Endpoints {
				for _, e := range loc.LbEndpoints {
					health := e.HealthStatus
					if health == "" {
						health = "HEALTHY" // UNKNOWN, the proto default, is served as healthy
					}
					rows = append(rows, []string{ec.EndpointConfig.ClusterName, e.Endpoint.Address.String(), health})
					n++
				}
			}
			if n == 0 {
				rows = append(rows, []string{ec.EndpointConfig.ClusterName, "(none)", "-"})
			}
		}
		return []string{"CLUSTER", "ENDPOINT", "HEALTH"}, rows, nil
	}
	return nil, nil, fmt.Errorf("unknown section %q", section)
}
