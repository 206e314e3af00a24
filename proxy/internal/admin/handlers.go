package admin

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpointv3 "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	"google.golang.org/protobuf/proto"

	"github.com/sluicemesh/sluice/proxy/internal/cluster"
	"github.com/sluicemesh/sluice/proxy/internal/listener"
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
	secretsDump   = "type.googleapis.com/envoy.admin.v3.SecretsConfigDump"
)

// dumped is one resource with its version, as Envoy's dynamic_* entries hold them. The
// resource goes under the key its kind uses ("listener", "cluster", "route_config",
// "endpoint_config").
type dumped map[string]any

// handleConfigDump answers every xDS resource the proxy holds, shaped like Envoy's
// /config_dump.
//
// As in Envoy's dump, an endpoint that outlier detection has ejected shows health_status
// UNHEALTHY in its cluster load assignment.
func handleConfigDump(xds func() xdsclient.Status, warming func() (listeners, clusters []string), node *corev3.Node, clusters func() cluster.Set) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		st := xds()
		warmL, warmC := warming()
		ejected := ejectedByAssignment(clusters)
		configs := []any{map[string]any{
			"@type":     bootstrapDump,
			"bootstrap": map[string]any{"node": rawJSON(node, false)},
		}}
		for _, ts := range st.Types {
			if ts.Type == xdsclient.SecretType && len(ts.Subscribed) == 0 && len(ts.Resources) == 0 && ts.LastError == "" {
				// A sidecar never asks for SDS secrets: its dump has no section for them.
				continue
			}
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
					e["endpoint_config"] = rawJSON(markEjected(res.Message, ejected[res.Name]), true)
				case xdsclient.SecretType:
					e["name"] = res.Name
					e["secret"] = rawJSON(redactSecret(res.Message), true)
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
			case xdsclient.SecretType:
				dump["@type"], dump["dynamic_active_secrets"] = secretsDump, entries
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
	return marshalDump(m, typed)
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
		line("http.no_route", s.Flagged(listener.FlagNoRoute))
		line("http.no_cluster", s.Flagged(listener.FlagNoCluster))
		line("cluster.upstream_rq_total", s.UpstreamRequests.Load())
		line("cluster.upstream_rq_error", s.UpstreamErrors.Load())
		line("cluster.upstream_cx_connect_fail", s.Flagged(listener.FlagConnectFailure))
		line("cluster.upstream_rq_timeout", s.Flagged(listener.FlagUpstreamTimeout))
		line("cluster.upstream_rq_reset", s.Flagged(listener.FlagUpstreamReset)+s.Flagged(listener.FlagUpstreamTermination))
		line("cluster.upstream_rq_reset_after_headers", s.UpstreamResetAfterHeaders.Load())
		line("cluster.no_healthy_upstream", s.Flagged(listener.FlagNoHealthyUpstream))
		line("cluster.upstream_rq_overflow", s.Flagged(listener.FlagUpstreamOverflow))
		line("cluster.upstream_rq_retry", s.Retries.Load())
		line("cluster.upstream_rq_retry_success", s.RetrySuccess.Load())
		line("cluster.upstream_rq_retry_overflow", s.RetryOverflow.Load())
		line("cluster.upstream_rq_retry_limit_exceeded", s.Flagged(listener.FlagRetryLimitExceeded))
		line("http.downstream_cx_closed_early", s.Flagged(listener.FlagDownstreamTermination))
		line("http.fault.delays_injected", s.Flagged(listener.FlagDelayInjected))
		line("http.fault.aborts_injected", s.Flagged(listener.FlagFaultInjected))
		line("http.rbac.denied", s.RBACDenied.Load())
		line("http.rbac.logged", s.RBACLogged.Load())
		line("listener.downstream_cx_tls", s.DownstreamTLS.Load())
		line("listener.downstream_cx_plaintext_refused", s.PlaintextRefused.Load())
		line("http.cors.preflights", s.CORSPreflights.Load())
		line("http.cors.origin_valid", s.CORSOriginValid.Load())
		line("http.cors.origin_invalid", s.CORSOriginInvalid.Load())
		line("http.mirror.sent", s.Mirrors.Load())
		line("http.mirror.dropped", s.MirrorsDropped.Load())
		line("http.mirror.skipped", s.MirrorsSkipped.Load())
		line("http.mirror.failed", s.MirrorsFailed.Load())
		for f := listener.FlagNone + 1; f < listener.NumFlags; f++ {
			line("http.response_flags."+f.String(), s.Flagged(f))
		}
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
		if d.Recorder != nil {
			rs := d.Recorder.Stats()
			line("telemetry.series", rs.Series)
			line("telemetry.overflow_requests", rs.OverflowRequests)
			line("telemetry.access_logs_queued", rs.LogsQueued)
			line("telemetry.access_logs_dropped", rs.LogsDropped)
		}
		if d.Telemetry != nil {
			ps := d.Telemetry()
			line("telemetry.metrics_connected", boolInt(ps.MetricsConnected))
			line("telemetry.metrics_streams_opened", ps.MetricsStreams)
			line("telemetry.metrics_messages_sent", ps.MetricsMessages)
			line("telemetry.access_log_connected", boolInt(ps.LogsConnected))
			line("telemetry.access_log_streams_opened", ps.LogStreams)
			line("telemetry.access_log_entries_sent", ps.LogEntriesSent)
			line("telemetry.access_log_entries_lost", ps.LogEntriesLost)
		}
		if st.Refusal != "" {
			line("xds.refused", fmt.Sprintf("%q", st.Refusal))
		}
		if d.Identity != nil {
			is := d.Identity()
			expiry := 0
			if is.Issued {
				expiry = max(int(time.Until(is.NotAfter).Seconds()), 0)
			}
			line("identity.cert_issued", boolInt(is.Issued))
			line("identity.cert_expiry_seconds", expiry)
			line("identity.rotations", is.Rotations)
		}
		clusterStats(d.Clusters, line)
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

// clusterStats writes each cluster's circuit-breaker lines, named as Envoy names them.
func clusterStats(clusters func() cluster.Set, line func(string, any)) {
	if clusters == nil {
		return
	}
	set := clusters()
	names := make([]string, 0, len(set))
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		c := set[n]
		p := "cluster." + n + "."
		b := c.Breakers()
		cb := p + "circuit_breakers.default."
		line(cb+"remaining_cx", max(0, b.Limits.MaxConnections-b.Connections))
		line(cb+"remaining_pending", max(0, b.Limits.MaxPendingRequests-b.Pending))
		line(cb+"remaining_rq", max(0, b.Limits.MaxRequests-b.Requests))
		line(cb+"remaining_retries", max(0, b.Limits.MaxRetries-b.Retries))
		line(p+"upstream_cx_overflow", b.ConnectionOverflow)
		line(p+"upstream_rq_pending_overflow", b.PendingOverflow)
		line(p+"upstream_rq_overflow", b.RequestOverflow)
		line(p+"upstream_rq_retry_overflow", b.RetryOverflow)
		line(p+"lb_healthy_panic", c.PanicPicks())
		if o := c.Outliers(); o.Enabled {
			od := p + "outlier_detection."
			line(od+"ejections_active", o.Active)
			line(od+"ejections_enforced_total", o.Enforced5xx+o.EnforcedGateway)
			line(od+"ejections_enforced_consecutive_5xx", o.Enforced5xx)
			line(od+"ejections_enforced_consecutive_gateway_failure", o.EnforcedGateway)
			line(od+"ejections_detected_consecutive_5xx", o.Detected5xx)
			line(od+"ejections_detected_consecutive_gateway_failure", o.DetectedGateway)
			line(od+"ejections_overflow", o.Overflow)
		}
	}
}

// ejectedByAssignment returns the ejected endpoints' addresses by the name of the load
// assignment they came from.
func ejectedByAssignment(clusters func() cluster.Set) map[string]map[string]bool {
	out := map[string]map[string]bool{}
	if clusters == nil {
		return out
	}
	for _, c := range clusters() {
		for _, h := range c.Hosts() {
			if h.Ejected {
				if out[c.EDSName] == nil {
					out[c.EDSName] = map[string]bool{}
				}
				out[c.EDSName][h.Address] = true
			}
		}
	}
	return out
}

// markEjected returns m, a ClusterLoadAssignment, with the endpoints at the ejected
// addresses marked UNHEALTHY; m itself is not changed.
func markEjected(m proto.Message, ejected map[string]bool) proto.Message {
	cla, ok := m.(*endpointv3.ClusterLoadAssignment)
	if !ok || len(ejected) == 0 {
		return m
	}
	cla = proto.Clone(cla).(*endpointv3.ClusterLoadAssignment)
	for _, loc := range cla.GetEndpoints() {
		for _, lbe := range loc.GetLbEndpoints() {
			sa := lbe.GetEndpoint().GetAddress().GetSocketAddress()
			if ejected[net.JoinHostPort(sa.GetAddress(), strconv.FormatUint(uint64(sa.GetPortValue()), 10))] {
				lbe.HealthStatus = corev3.HealthStatus_UNHEALTHY
			}
		}
	}
	return cla
}

// handleClusters answers each cluster's endpoints with their health, as Envoy's /clusters
// does: "<cluster>::<address>::health_flags::healthy", or "/failed_outlier_check" for an
// ejected endpoint and "/failed_eds_health" for one EDS calls unhealthy.
func handleClusters(clusters func() cluster.Set) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var b strings.Builder
		set := clusters()
		names := make([]string, 0, len(set))
		for n := range set {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names {
			c := set[n]
			o := c.Outliers()
			if o.Enabled {
				fmt.Fprintf(&b, "%s::outlier::ejections_active::%d\n", n, o.Active)
			}
			for _, h := range c.Hosts() {
				flags := ""
				if h.Ejected {
					flags += "/failed_outlier_check"
				}
				if !h.EDSHealthy {
					flags += "/failed_eds_health"
				}
				if flags == "" {
					flags = "healthy"
				}
				fmt.Fprintf(&b, "%s::%s::health_flags::%s\n", n, h.Address, flags)
				fmt.Fprintf(&b, "%s::%s::rq_active::%d\n", n, h.Address, h.Active)
			}
		}
		w.Header().Set("Content-Type", "text/plain")
		_, _ = w.Write([]byte(b.String()))
	})
}
