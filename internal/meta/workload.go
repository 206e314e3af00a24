package meta

// DefaultInstanceName is the name a proxy registers with (KeyWorkloadName) when none is
// given: "<service>-<version>-<address>", the version being "v1" when the workload has no
// version label.
func DefaultInstanceName(service, version, address string) string {
	if version == "" {
		version = "v1"
	}
	return service + "-" + version + "-" + address
}

// PeerHeader is the request header a sidecar (or gateway) adds to every request it sends to
// a mesh workload (an endpoint whose EDS metadata names one), naming its own workload, so that the destination's sidecar can label the request
// with its source: "workload=reviews-v2;namespace=default;version=v2;app=reviews" (Istio
// exchanges the same through its peer metadata headers). The sidecar that receives it removes
// it before the application sees it, and uses it only for telemetry labels, never to decide
// anything: a caller outside the mesh could send it too.
const PeerHeader = "X-Sluice-Peer"

// TelemetryWorkload returns the workload name telemetry reports for a proxy instance: the
// source_workload of the requests it sends and the destination_workload of those it
// answers. It is the one place that rule lives; the proxy applies it to itself and the
// control plane to every endpoint it sends over EDS (metadata "workload"), and both must
// agree for the two reports of a request to be recognised as one.
//
// The rule: the instance's name (KeyWorkloadName, sluice-proxy's --name) when the operator
// chose one; when it is empty or DefaultInstanceName's, "<service>-<version>" (just
// "<service>" without a version label), Istio's Deployment naming as in Bookinfo's
// reviews-v2. So every instance of a version is one workload, as a Kubernetes Deployment is.
func TelemetryWorkload(name, service, version, address string) string {
	if name != "" && name != DefaultInstanceName(service, version, address) {
		return name
	}
	if version == "" {
		return service
	}
	return service + "-" + version
}
