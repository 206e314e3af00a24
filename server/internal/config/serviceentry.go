package config

import (
	"net/netip"
	"strings"

	networking "istio.io/api/networking/v1alpha3"
)

// Rules for ServiceEntry.

var resolutionNames = map[networking.ServiceEntry_Resolution]string{
	networking.ServiceEntry_NONE:            "NONE",
	networking.ServiceEntry_STATIC:          "STATIC",
	networking.ServiceEntry_DNS:             "DNS",
	networking.ServiceEntry_DNS_ROUND_ROBIN: "DNS_ROUND_ROBIN",
}

func checkServiceEntry(e errorSink, se *networking.ServiceEntry) {
	for i, h := range se.Hosts {
		p := index("spec.hosts", i)
		if h == "*" {
			e.add(p, `host "*" is not allowed: name the external hosts, such as api.example.com or *.example.com`)
			continue
		}
		checkHost(e, p, h, true)
	}
	for i, a := range se.Addresses {
		checkAddressOrCIDR(e, index("spec.addresses", i), a)
	}
	if len(se.Ports) == 0 {
		e.add("spec.ports", "ports is required: list the service's ports, such as {number: 443, name: https, protocol: HTTPS}")
	}
	numbers := map[uint32]int{}
	portNames := map[string]int{}
	for i, port := range se.Ports {
		p := index("spec.ports", i)
		if port.Number != 0 {
			checkPort(e, field(p, "number"), port.Number)
			if j, dup := numbers[port.Number]; dup {
				e.addf(field(p, "number"), "port %d is defined twice (also ports[%d]): list each port once", port.Number, j)
			}
			numbers[port.Number] = i
		}
		if port.Name != "" {
			if j, dup := portNames[port.Name]; dup {
				e.addf(field(p, "name"), "port name %s is used twice (also ports[%d]): port names must be unique", port.Name, j)
			}
			portNames[port.Name] = i
		}
		checkProtocol(e, field(p, "protocol"), port.Protocol)
		if port.TargetPort != 0 {
			checkPort(e, field(p, "targetPort"), port.TargetPort)
		}
	}
	if se.WorkloadSelector != nil {
		checkLabels(e, "spec.workloadSelector.labels", se.WorkloadSelector.Labels)
		if len(se.Endpoints) > 0 {
			e.add("spec.workloadSelector", "workloadSelector and endpoints cannot both be set: keep one")
		}
	}
	resolution := resolutionNames[se.Resolution]
	switch se.Resolution {
	case networking.ServiceEntry_STATIC:
		if len(se.Endpoints) == 0 && se.WorkloadSelector == nil {
			e.add("spec.endpoints", "resolution STATIC needs endpoints: add endpoints with an IP address each, or use resolution DNS")
		}
	case networking.ServiceEntry_NONE:
		if len(se.Endpoints) > 0 {
			e.add("spec.endpoints", "endpoints are not used with resolution NONE: remove them, or use resolution STATIC or DNS")
		}
	case networking.ServiceEntry_DNS, networking.ServiceEntry_DNS_ROUND_ROBIN:
		if len(se.Endpoints) == 0 {
			for i, h := range se.Hosts {
				if strings.HasPrefix(h, "*") {
					e.addf(index("spec.hosts", i), "host %s cannot be resolved with resolution %s: wildcards need resolution NONE, or add endpoints", h, resolution)
				}
			}
		}
		if se.Resolution == networking.ServiceEntry_DNS_ROUND_ROBIN && len(se.Endpoints) > 1 {
			e.add("spec.endpoints", "resolution DNS_ROUND_ROBIN takes at most one endpoint: use resolution DNS for several")
		}
	}
	for i, ep := range se.Endpoints {
		p := index("spec.endpoints", i)
		ap := field(p, "address")
		switch {
		case ep.Address == "":
			if se.Resolution == networking.ServiceEntry_STATIC || se.Resolution == networking.ServiceEntry_DNS || se.Resolution == networking.ServiceEntry_DNS_ROUND_ROBIN {
				e.addf(ap, "address is required with resolution %s", resolution)
			}
		case strings.HasPrefix(ep.Address, "unix://"):
		case se.Resolution == networking.ServiceEntry_STATIC:
			if _, err := netip.ParseAddr(ep.Address); err != nil {
				e.addf(ap, "address %q is not an IP address: with resolution STATIC each endpoint needs one (use resolution DNS for host names)", ep.Address)
			}
		default:
			checkHost(e, ap, ep.Address, false)
		}
		for _, name := range sortedStringKeys(ep.Ports) {
			pp := mapKey(field(p, "ports"), name)
			if _, ok := portNames[name]; !ok {
				e.addf(pp, "%s is not the name of one of this ServiceEntry's ports: use one of the names under ports", name)
			}
			checkPort(e, pp, ep.Ports[name])
		}
		checkLabels(e, field(p, "labels"), ep.Labels)
	}
	checkExportTo(e, "spec.exportTo", se.ExportTo)
}
