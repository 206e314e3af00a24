package config

import (
	"fmt"
	"slices"

	networking "istio.io/api/networking/v1alpha3"
)

// Rules for DestinationRule.

func (v *view) destinationRule(e errorSink, r *Resource, dr *networking.DestinationRule) {
	if dr.Host != "" {
		checkHost(e, "spec.host", dr.Host, true)
	}
	checkTrafficPolicy(e, "spec.trafficPolicy", dr.TrafficPolicy)
	names := map[string]int{}
	for i, s := range dr.Subsets {
		p := index("spec.subsets", i)
		if s.Name != "" {
			if !isDNS1123Label(s.Name) {
				e.addf(field(p, "name"), "subset name %q is not valid: use lower-case letters, digits and '-', such as v1", s.Name)
			}
			if j, dup := names[s.Name]; dup {
				e.addf(field(p, "name"), "subset %s is defined twice (also subsets[%d]): rename or remove one", s.Name, j)
			} else {
				names[s.Name] = i
			}
		}
		if len(s.Labels) == 0 {
			example := s.Name
			if example == "" {
				example = "v1"
			}
			e.addf(field(p, "labels"), "subset %s has no labels: add the labels that select its workloads, such as version: %s", s.Name, example)
		}
		checkLabels(e, field(p, "labels"), s.Labels)
		checkTrafficPolicy(e, field(p, "trafficPolicy"), s.TrafficPolicy)
	}
	checkExportTo(e, "spec.exportTo", dr.ExportTo)
	if dr.WorkloadSelector != nil {
		checkLabels(e, "spec.workloadSelector.matchLabels", dr.WorkloadSelector.MatchLabels)
		return // a per-workload rule may share its host with others
	}
	if dr.Host == "" {
		return
	}
	for _, other := range v.drExact[ResolveHost(dr.Host, r.Namespace)] {
		odr := other.Spec.(*networking.DestinationRule)
		if other.Key() == r.Key() || other.Namespace != r.Namespace || odr.WorkloadSelector != nil {
			continue
		}
		e.addf("spec.host", "host %s already has DestinationRule %s/%s: put these settings and subsets in that one (Istio would use only one of them)", dr.Host, other.Namespace, other.Name)
		break
	}
	v.subsetsStillUsed(e, r, dr)
}

// subsetsStillUsed refuses to drop a subset that a stored VirtualService still routes to: its
// traffic would fail with 503. Change the routes first, then the DestinationRule.
func (v *view) subsetsStillUsed(e errorSink, r *Resource, dr *networking.DestinationRule) {
	full := ResolveHost(dr.Host, r.Namespace)
	drs := v.destinationRulesFor(full)
	if !slices.Contains(drs, r) {
		return // a more specific rule decides this host's subsets
	}
	defined := map[string]bool{}
	for _, d := range drs {
		for _, s := range d.Spec.(*networking.DestinationRule).Subsets {
			defined[s.Name] = true
		}
	}
	// Routes in the batch are checked against this rule already; storedUses holds the others.
	for _, u := range v.storedUses[full] {
		if !defined[u.use.dest.Subset] {
			e.addf("spec.subsets", "subset %s is still used by VirtualService %s/%s (%s): route that traffic elsewhere first, then remove the subset", u.use.dest.Subset, u.vs.Namespace, u.vs.Name, u.use.path)
			return
		}
	}
}

type subsetUse struct {
	path string
	dest *networking.Destination
}

func subsetUses(vs *networking.VirtualService) []subsetUse {
	var out []subsetUse
	for i, rt := range vs.Http {
		for j, d := range rt.Route {
			out = append(out, subsetUse{fmt.Sprintf("spec.http[%d].route[%d].destination", i, j), d.Destination})
		}
		if rt.Mirror != nil {
			out = append(out, subsetUse{fmt.Sprintf("spec.http[%d].mirror", i), rt.Mirror})
		}
		for j, m := range rt.Mirrors {
			out = append(out, subsetUse{fmt.Sprintf("spec.http[%d].mirrors[%d].destination", i, j), m.Destination})
		}
	}
	for i, rt := range vs.Tcp {
		for j, d := range rt.Route {
			out = append(out, subsetUse{fmt.Sprintf("spec.tcp[%d].route[%d].destination", i, j), d.Destination})
		}
	}
	for i, rt := range vs.Tls {
		for j, d := range rt.Route {
			out = append(out, subsetUse{fmt.Sprintf("spec.tls[%d].route[%d].destination", i, j), d.Destination})
		}
	}
	return slices.DeleteFunc(out, func(u subsetUse) bool { return u.dest == nil })
}

func checkTrafficPolicy(e errorSink, path string, tp *networking.TrafficPolicy) {
	if tp == nil {
		return
	}
	checkPolicyParts(e, path, tp.LoadBalancer, tp.ConnectionPool, tp.OutlierDetection, tp.Tls)
	ports := map[uint32]int{}
	for i, pl := range tp.PortLevelSettings {
		p := index(field(path, "portLevelSettings"), i)
		switch {
		case pl.Port == nil:
			e.add(field(p, "port"), "port is required: set port.number to the port these settings apply to")
		case pl.Port.Number != 0:
			checkPort(e, field(p, "port.number"), pl.Port.Number)
			if j, dup := ports[pl.Port.Number]; dup {
				e.addf(field(p, "port.number"), "port %d has settings twice (also portLevelSettings[%d]): merge them", pl.Port.Number, j)
			}
			ports[pl.Port.Number] = i
		}
		checkPolicyParts(e, p, pl.LoadBalancer, pl.ConnectionPool, pl.OutlierDetection, pl.Tls)
	}
}

func checkPolicyParts(e errorSink, path string, lb *networking.LoadBalancerSettings, pool *networking.ConnectionPoolSettings, od *networking.OutlierDetection, tls *networking.ClientTLSSettings) {
	if lb != nil {
		p := field(path, "loadBalancer")
		if ch := lb.GetConsistentHash(); ch != nil {
			if name, ok := ch.HashKey.(*networking.LoadBalancerSettings_ConsistentHashLB_HttpHeaderName); ok {
				checkHeaderName(e, field(p, "consistentHash.httpHeaderName"), name.HttpHeaderName, false)
			}
		}
		if l := lb.LocalityLbSetting; l != nil && len(l.Distribute) > 0 && len(l.Failover) > 0 {
			e.add(field(p, "localityLbSetting"), "distribute and failover cannot both be set: keep one")
		}
		if w := lb.Warmup; w != nil && w.MinimumPercent != nil {
			checkPercentage(e, field(p, "warmup.minimumPercent"), w.MinimumPercent.Value)
		}
	}
	if pool != nil {
		p := field(path, "connectionPool")
		if t := pool.Tcp; t != nil {
			checkNotNegative(e, field(p, "tcp.maxConnections"), t.MaxConnections)
			checkPositiveDuration(e, field(p, "tcp.connectTimeout"), t.ConnectTimeout)
		}
		if h := pool.Http; h != nil {
			checkNotNegative(e, field(p, "http.http1MaxPendingRequests"), h.Http1MaxPendingRequests)
			checkNotNegative(e, field(p, "http.http2MaxRequests"), h.Http2MaxRequests)
			checkNotNegative(e, field(p, "http.maxRequestsPerConnection"), h.MaxRequestsPerConnection)
			checkNotNegative(e, field(p, "http.maxRetries"), h.MaxRetries)
			checkNotNegative(e, field(p, "http.maxConcurrentStreams"), h.MaxConcurrentStreams)
		}
	}
	if od != nil {
		p := field(path, "outlierDetection")
		checkNotNegative(e, field(p, "consecutiveErrors"), od.ConsecutiveErrors)
		checkPositiveDuration(e, field(p, "interval"), od.Interval)
		checkPositiveDuration(e, field(p, "baseEjectionTime"), od.BaseEjectionTime)
		checkPercentage(e, field(p, "maxEjectionPercent"), float64(od.MaxEjectionPercent))
		checkPercentage(e, field(p, "minHealthPercent"), float64(od.MinHealthPercent))
	}
	if tls != nil && tls.Mode == networking.ClientTLSSettings_MUTUAL && tls.CredentialName == "" &&
		(tls.ClientCertificate == "" || tls.PrivateKey == "") {
		e.add(field(path, "tls"), "mode MUTUAL needs clientCertificate and privateKey, or credentialName")
	}
}
