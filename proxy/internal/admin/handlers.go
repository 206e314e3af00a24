package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"

	"github.com/sluicemesh/sluice/proxy/internal/xdsclient"
)

// handleReady answers 200 "LIVE" once the configuration is ready, 503 before and while
// draining, with Envoy's words for the states.
func handleReady(ready, draining func() bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		switch {
		case draining():
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "DRAINING")
		case !ready():
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprintln(w, "INITIALIZING")
		default:
			fmt.Fprintln(w, "LIVE")
		}
	})
}

func handleDrain(drain func()) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		drain()
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintln(w, "draining")
	})
}

// The type URLs of Envoy's admin dump messages; the dump is built from plain structs so the
// proxy need not link envoy.admin.v3.
const (
	bootstrapDump = "type.googleapis.com/envoy.admin.v3.BootstrapConfigDump"
	clustersDump  = "type.googleapis.com/envoy.admin.v3.ClustersConfigDump"
	listenersDump = "type.googleapis.com/envoy.admin.v3.ListenersConfigDump"
	routesDump    = "type.googleapis.com/envoy.admin.v3.RoutesConfigDump"
	endpointsDump = "type.googleapis.com/envoy.admin.v3.EndpointsConfigDump"
)

// dumped is one resource with its version, as Envoy's dynamic_* entries hold them. The
// resource goes under the key its kind uses ("listener", "cluster", "route_config",
// "endpoint_config").
type dumped map[string]any

// handleConfigDump answers every xDS resource the proxy holds, shaped like Envoy's
// /config_dump.
func handleConfigDump(xds func() xdsclient.Status, warming func() (listeners, clusters []string), node *corev3.Node) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := xds()
		warmL, warmC := warming()
		configs := []any{map[string]any{
			"@type":     bootstrapDump,
			"bootstrap": map[string]any{"node": rawJSON(node, false)},
		}}
		for _, ts := range st.Types {
			entries := make([]dumped, 0, len(ts.Resources))
			var warmEntries []dumped
			for _, res := range ts.Resources {
				e := dumped{"version_info": res.Version, "last_updated": res.Updated.UTC().Format(time.RFC3339Nano)}
				switch ts.Type {
				case xdsclient.ListenerType:
					state := dumped{"version_info": res.Version, "listener": rawJSON(res.Message, true),
						"last_updated": res.Updated.UTC().Format(time.RFC3339Nano)}
					key := "active_state"
					if slices.Contains(warmL, res.Name) {
						key = "warming_state"
					}
					e = dumped{"name": res.Name, key: state}
				case xdsclient.ClusterType:
					e["cluster"] = rawJSON(res.Message, true)
					if slices.Contains(warmC, res.Name) {
						warmEntries = append(warmEntries, e)
						continue
					}
				case xdsclient.RouteType:
					e["route_config"] = rawJSON(res.Message, true)
				case xdsclient.EndpointType:
					e["endpoint_config"] = rawJSON(res.Message, true)
				}
				entries = append(entries, e)
			}
			dump := map[string]any{}
			switch ts.Type {
			case xdsclient.ListenerType:
				dump["@type"], dump["version_info"], dump["dynamic_listeners"] = listenersDump, ts.Version, entries
			case xdsclient.ClusterType:
				dump["@type"], dump["version_info"], dump["dynamic_active_clusters"] = clustersDump, ts.Version, entries
				if len(warmEntries) > 0 {
					dump["dynamic_warming_clusters"] = warmEntries
				}
			case xdsclient.RouteType:
				dump["@type"], dump["dynamic_route_configs"] = routesDump, entries
			case xdsclient.EndpointType:
				dump["@type"], dump["dynamic_endpoint_configs"] = endpointsDump, entries
			}
			if ts.LastError != "" {
				// Envoy reports a rejected update per resource; the proxy knows it per type.
				dump["error_state"] = map[string]any{"details": ts.LastError,
					"last_update_attempt": ts.LastErrorAt.UTC().Format(time.RFC3339Nano)}
			}
			configs = append(configs, dump)
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", " ")
		_ = enc.Encode(map[string]any{"configs": configs})
	})
}

// rawJSON renders a proto message as Envoy's dump does: protojson with the proto field
// names, and "@type" first when typed.
func rawJSON(m proto.Message, typed bool) json.RawMessage {
	if typed {
		a, err := anypb.New(m)
		if err != nil {
			return json.RawMessage(`null`)
		}
		m = a
	}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(m)
	if err != nil {
		return json.RawMessage(`null`)
	}
	return b
}

// handleStats answers counters and xDS state as "name: value" lines, like Envoy's /stats.
func handleStats(d Deps) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s := d.Stats
		st := d.XDS()
		var b strings.Builder
		line := func(name string, v any) { fmt.Fprintf(&b, "%s: %v\n", name, v) }
		boolInt := func(v bool) int {
			if v {
				return 1
			}
			return 0
		}
		line("http.downstream_rq_total", s.DownstreamRequests.Load())
		line("http.no_route", s.NoRoute.Load())
		line("http.no_cluster", s.NoCluster.Load())
		line("cluster.upstream_rq_total", s.UpstreamRequests.Load())
		line("cluster.upstream_rq_error", s.UpstreamErrors.Load())
		line("cluster.upstream_cx_connect_fail", s.ConnectFailure.Load())
		line("cluster.upstream_rq_timeout", s.UpstreamTimeout.Load())
		line("cluster.upstream_rq_reset", s.UpstreamReset.Load())
		line("cluster.no_healthy_upstream", s.NoHealthyUpstream.Load())
		line("http.downstream_cx_closed_early", s.DownstreamClosed.Load())
		line("server.ready", boolInt(d.Ready()))
		line("server.draining", boolInt(d.Draining()))
		line("server.uptime_seconds", int(time.Since(d.Started).Seconds()))
		line("xds.connected", boolInt(st.Connected))
		line("xds.streams_opened", st.Streams)
		for _, ts := range st.Types {
			p := "xds." + strings.ToLower(xdsclient.Short(ts.Type))
			line(p+".version", fmt.Sprintf("%q", ts.Version))
			line(p+".resources", len(ts.Resources))
			if ts.LastError != "" {
				line(p+".last_error", fmt.Sprintf("%q", ts.LastError))
			}
		}
		ls := d.Listeners()
		names := make([]string, 0, len(ls))
		for n := range ls {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			line("listener."+n+".address", ls[n])
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(b.String()))
	})
}
