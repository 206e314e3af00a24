package cluster

import (
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// IdentityMetadataKey is the filter_metadata key under which EDS names the workload behind an
// endpoint, as Istio's pilot does.
const IdentityMetadataKey = "istio"

// maxIdentityValue bounds each identity value kept; a longer one is dropped, so that a
// misbehaving control plane cannot make every request's telemetry labels arbitrarily long.
const maxIdentityValue = 253

// Identity is the workload behind an endpoint, from its EDS metadata (filter_metadata
// "istio": "workload", "namespace", "version", "app"): what telemetry reports as the
// destination of a request the endpoint answered. Its strings are built once per EDS update
// and shared by every request. An empty field is unknown.
type Identity struct {
	Workload, Namespace, Version, App string
}

// identityOf reads an LbEndpoint's identity; nil when its metadata names none.
func identityOf(md *corev3.Metadata) *Identity {
	f := md.GetFilterMetadata()[IdentityMetadataKey].GetFields()
	if len(f) == 0 {
		return nil
	}
	str := func(k string) string {
		s := f[k].GetStringValue()
		if len(s) > maxIdentityValue {
			return ""
		}
		return s
	}
	id := &Identity{Workload: str("workload"), Namespace: str("namespace"), Version: str("version"), App: str("app")}
	if *id == (Identity{}) {
		return nil
	}
	return id
}

// addIdentity records the identity of the endpoint at addr, if md names one.
func (a *Assignment) addIdentity(addr string, md *corev3.Metadata) {
	id := identityOf(md)
	if id == nil {
		return
	}
	if a.Identities == nil {
		a.Identities = map[string]*Identity{}
	}
	a.Identities[addr] = id
}
