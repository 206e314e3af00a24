package xds

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/registry"
)

// endpointWorkload is the workload name telemetry reports for w's endpoints: the same rule
// the proxy applies to itself (meta.TelemetryWorkload), so that the caller's report of a
// request (reporter "source", destination from this metadata) and the callee's own (reporter
// "destination") name the same destination.
func endpointWorkload(w registry.Workload) string {
	return meta.TelemetryWorkload(w.Name, w.Service, w.Version(), w.Address.String())
}

// endpointMetadata is an endpoint's identity under filter_metadata "istio": "workload",
// "namespace", and the "version" and "app" labels when set. Proxies label the requests they
// send to the endpoint with it (destination_workload, destination_workload_namespace,
// destination_version, destination_app).
func endpointMetadata(e Endpoint) *corev3.Metadata {
	fields := map[string]*structpb.Value{"workload": structpb.NewStringValue(e.Workload)}
	if e.Namespace != "" {
		fields["namespace"] = structpb.NewStringValue(e.Namespace)
	}
	for _, k := range []string{"version", "app"} {
		if v := e.Labels[k]; v != "" {
			fields[k] = structpb.NewStringValue(v)
		}
	}
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"istio": {Fields: fields}}}
}
