package config

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"google.golang.org/genproto/googleapis/api/annotations"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	networking "istio.io/api/networking/v1alpha3"
	security "istio.io/api/security/v1beta1"
)

// Catalog is the resources already stored, which a batch is validated against. A resource in
// the batch replaces the catalog entry with the same Key. A nil Catalog is an empty mesh.
type Catalog []*Resource

// Validate checks the meaning of a batch of resources about to be applied together, in the
// context of each other and of the stored ones: ranges, formats, references between resources
// (a route's subset needs a DestinationRule that defines it, a VirtualService's gateways must
// exist), conflicts (two VirtualServices for one mesh host), and features Sluice does not
// support. It returns every problem found, each path prefixed with its resource's Origin; nil
// means the batch can be applied. Order within the batch does not matter.
func Validate(resources []*Resource, existing Catalog) Errors {
	v := newView(resources, existing)
	var errs Errors
	first := map[string]*Resource{}
	for _, r := range resources {
		e := errorSink{errs: &errs, prefix: r.Origin}
		if prev, dup := first[r.Key()]; dup {
			where := "earlier in this request"
			if prev.Origin != "" {
				where = "at " + prev.Origin
			}
			e.add("metadata.name", fmt.Sprintf("%s %s/%s is defined twice (also %s): keep one of them", r.Kind, r.Namespace, r.Name, where))
			continue
		}
		first[r.Key()] = r
		checkMetadata(e, r, true)
		v.check(e, r)
	}
	return errs
}

// errorSink adds errors under a path prefix: the Origin of the resource being checked.
type errorSink struct {
	errs   *Errors
	prefix string
}

func (e errorSink) add(path, message string) {
	e.errs.add(field(e.prefix, path), message)
}

func (e errorSink) addf(path, format string, args ...any) {
	e.add(path, fmt.Sprintf(format, args...))
}

// checkMetadata checks names and labels as Kubernetes would. checkName is false when the
// name has already been reported as malformed.
func checkMetadata(e errorSink, r *Resource, checkName bool) {
	switch {
	case !checkName:
	case r.Name == "":
		e.add("metadata.name", "name is required")
	case !isDNS1123Subdomain(r.Name):
		e.addf("metadata.name", "name %q is not valid: use lower-case letters, digits, '-' and '.', starting and ending with a letter or digit (at most 253 characters)", r.Name)
	}
	if !isDNS1123Label(r.Namespace) {
		e.addf("metadata.namespace", "namespace %q is not valid: use lower-case letters, digits and '-', starting and ending with a letter or digit (at most 63 characters)", r.Namespace)
	}
	checkLabels(e, "metadata.labels", r.Labels)
	for _, k := range sortedStringKeys(r.Annotations) {
		if !isQualifiedName(k) {
			e.addf(mapKey("metadata.annotations", k), "annotation key %q is not valid: use a name such as example.com/owner", k)
		}
	}
}

func checkLabels(e errorSink, path string, labels map[string]string) {
	for _, k := range sortedStringKeys(labels) {
		if !isQualifiedName(k) {
			e.addf(mapKey(path, k), "label key %q is not valid: use letters, digits, '-', '_' and '.', with an optional DNS prefix such as app.kubernetes.io/name", k)
		}
		if !isLabelValue(labels[k]) {
			e.addf(mapKey(path, k), "label value %q is not valid: use at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit", labels[k])
		}
	}
}

// view is the mesh as it will be once the batch is applied: stored resources, minus those the
// batch replaces, plus the batch. Its indexes keep Validate linear in the size of the mesh.
type view struct {
	all   []*Resource
	batch map[string]bool
	byKey map[string]*Resource
	// drExact maps a fully qualified host to the DestinationRules naming it; drWild holds
	// those with a wildcard host.
	drExact map[string][]*Resource
	drWild  []*Resource
	// meshRoutes maps a fully qualified host to the VirtualServices routing it for the mesh.
	meshRoutes map[string][]*Resource
	// storedUses maps a fully qualified host to the subsets that stored (not replaced)
	// VirtualServices route to.
	storedUses map[string][]storedUse
}

type storedUse struct {
	vs  *Resource
	use subsetUse
}

func newView(batch []*Resource, existing Catalog) *view {
	v := &view{
		batch:      make(map[string]bool, len(batch)),
		byKey:      map[string]*Resource{},
		drExact:    map[string][]*Resource{},
		meshRoutes: map[string][]*Resource{},
		storedUses: map[string][]storedUse{},
	}
	for _, r := range batch {
		v.batch[r.Key()] = true
	}
	for _, r := range existing {
		if r != nil && !v.batch[r.Key()] {
			v.all = append(v.all, r)
		}
	}
	v.all = append(v.all, batch...)
	for _, r := range v.all {
		if _, dup := v.byKey[r.Key()]; !dup {
			v.byKey[r.Key()] = r
		}
		switch s := r.Spec.(type) {
		case *networking.DestinationRule:
			if r.Kind != KindDestinationRule || s == nil {
				continue
			}
			if host := ResolveHost(s.Host, r.Namespace); strings.HasPrefix(host, "*") {
				v.drWild = append(v.drWild, r)
			} else {
				v.drExact[host] = append(v.drExact[host], r)
			}
		case *networking.VirtualService:
			if r.Kind != KindVirtualService || s == nil {
				continue
			}
			if appliesToMesh(s.Gateways) {
				seen := map[string]bool{}
				for _, h := range s.Hosts {
					if full := ResolveHost(h, r.Namespace); !seen[full] {
						seen[full] = true
						v.meshRoutes[full] = append(v.meshRoutes[full], r)
					}
				}
			}
			if !v.batch[r.Key()] {
				for _, u := range subsetUses(s) {
					if u.dest.Subset != "" {
						full := ResolveHost(u.dest.Host, r.Namespace)
						v.storedUses[full] = append(v.storedUses[full], storedUse{r, u})
					}
				}
			}
		}
	}
	return v
}

func (v *view) find(kind, ns, name string) *Resource {
	return v.byKey[kind+"/"+ns+"/"+name]
}

func (v *view) check(e errorSink, r *Resource) {
	info := lookupKind(r.Kind)
	if info == nil {
		e.addf("kind", "kind %s is not supported by Sluice (supported: %s)", r.Kind, supportedKindList())
		return
	}
	if isNil(r.Spec) {
		e.add("spec", "spec is required")
		return
	}
	if want := reflect.TypeOf(info.newSpec()); reflect.TypeOf(r.Spec) != want {
		e.addf("spec", "a %s spec must be a %s, not a %T", r.Kind, want, r.Spec)
		return
	}
	if m, ok := r.Spec.(proto.Message); ok {
		checkProtoFields(e, "spec", m.ProtoReflect())
	}
	switch s := r.Spec.(type) {
	case *networking.VirtualService:
		v.virtualService(e, r, s)
	case *networking.DestinationRule:
		v.destinationRule(e, r, s)
	case *networking.Gateway:
		checkGateway(e, s)
	case *networking.ServiceEntry:
		checkServiceEntry(e, s)
	case *security.PeerAuthentication:
		v.peerAuthentication(e, r, s)
	case *security.AuthorizationPolicy:
		checkAuthorizationPolicy(e, s)
	case *FaultExperimentSpec:
		checkFaultExperiment(e, s)
	case *RateLimitSpec:
		checkRateLimit(e, s)
	}
}

func isNil(v any) bool {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Invalid:
		return true
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Interface:
		return rv.IsNil()
	}
	return false
}

// requiredHints say what to write for some of the fields Istio marks as required.
var requiredHints = map[protoreflect.FullName]string{
	"istio.networking.v1alpha3.Server.port":               "set port with a number, a name and a protocol, such as {number: 80, name: http, protocol: HTTP}",
	"istio.networking.v1alpha3.Server.hosts":              `list the hosts this server exposes, such as "*" or bookinfo.example.com`,
	"istio.networking.v1alpha3.Port.name":                 "name the port, such as http",
	"istio.networking.v1alpha3.Port.protocol":             "set the protocol, such as HTTP",
	"istio.networking.v1alpha3.Port.number":               "set the port number, 1 to 65535",
	"istio.networking.v1alpha3.ServicePort.number":        "set the port number, 1 to 65535",
	"istio.networking.v1alpha3.ServicePort.name":          "name the port, such as http",
	"istio.networking.v1alpha3.ServiceEntry.hosts":        "list the hosts of the service, such as api.example.com",
	"istio.networking.v1alpha3.Destination.host":          "name the destination service, such as reviews",
	"istio.networking.v1alpha3.DestinationRule.host":      "name the service this rule applies to, such as reviews",
	"istio.networking.v1alpha3.HTTPDirectResponse.status": "set the status to answer, 200 to 599",
	"istio.networking.v1alpha3.Subset.name":               "name the subset, such as v1",
	"istio.type.v1beta1.PortSelector.number":              "set the port number, 1 to 65535",
}

// checkProtoFields walks a decoded Istio spec and checks what holds for every field of a type:
// fields Istio marks as required (google.api.field_behavior) are set, durations are not
// negative, and Istio's Percent values are within 0 to 100.
func checkProtoFields(e errorSink, path string, m protoreflect.Message) {
	md := m.Descriptor()
	switch md.FullName() {
	case "google.protobuf.Duration":
		secs := m.Get(md.Fields().ByName("seconds")).Int()
		nanos := m.Get(md.Fields().ByName("nanos")).Int()
		if secs < 0 || nanos < 0 {
			e.addf(path, "duration %s is negative: use 0s or more", protoDuration(durationOf(m)))
		}
		return
	case "istio.networking.v1alpha3.Percent":
		checkPercentage(e, field(path, "value"), m.Get(md.Fields().ByName("value")).Float())
		return
	}
	if strings.HasPrefix(string(md.FullName()), "google.protobuf.") {
		return // wrappers and Struct hold no further rules
	}
	fields := md.Fields()
	for i := 0; i < fields.Len(); i++ {
		fd := fields.Get(i)
		p := field(path, fd.JSONName())
		if !m.Has(fd) {
			if isRequired(fd) {
				msg := fd.JSONName() + " is required"
				if hint := requiredHints[fd.FullName()]; hint != "" {
					msg += ": " + hint
				}
				e.add(p, msg)
			}
			continue
		}
		switch {
		case fd.IsList() && fd.Message() != nil:
			list := m.Get(fd).List()
			for j := 0; j < list.Len(); j++ {
				checkProtoFields(e, index(p, j), list.Get(j).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			mp := m.Get(fd).Map()
			var keys []protoreflect.MapKey
			mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			sort.Slice(keys, func(a, b int) bool { return keys[a].String() < keys[b].String() })
			for _, k := range keys {
				checkProtoFields(e, mapKey(p, k.String()), mp.Get(k).Message())
			}
		case !fd.IsList() && !fd.IsMap() && fd.Message() != nil:
			checkProtoFields(e, p, m.Get(fd).Message())
		}
	}
}

func isRequired(fd protoreflect.FieldDescriptor) bool {
	behaviors, _ := proto.GetExtension(fd.Options(), annotations.E_FieldBehavior).([]annotations.FieldBehavior)
	for _, b := range behaviors {
		if b == annotations.FieldBehavior_REQUIRED {
			return true
		}
	}
	return false
}

func sortedStringKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
