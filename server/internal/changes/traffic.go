package changes

import (
	"context"
	"fmt"
	"slices"
	"strings"

	networking "istio.io/api/networking/v1alpha3"

	"github.com/sluicemesh/sluice/server/internal/config"
	"github.com/sluicemesh/sluice/server/internal/store"
)

// Split is how a service's catch-all traffic is divided between its versions.
type Split struct {
	// VirtualService names the VirtualService that routes the service ("" when none does), and
	// ResourceVersion is its version, for a later SetTraffic's precondition.
	VirtualService  string           `json:"virtualService,omitempty"`
	ResourceVersion string           `json:"resourceVersion,omitempty"`
	Weights         map[string]int32 `json:"weights"`
	// OtherRules counts the VirtualService's rules besides the catch-all one (header matches
	// and such), which a traffic change keeps as they are.
	OtherRules int `json:"otherRules"`
}

// Traffic reads the split of a service's catch-all route: by subset name, from the
// VirtualService bound to the mesh for the service's host. A service without one has no
// weights (its traffic is balanced over every endpoint).
func (s *Service) Traffic(ctx context.Context, namespace, service string) (*Split, error) {
	vs, err := s.meshVirtualService(ctx, namespace, service)
	if err != nil || vs == nil {
		return &Split{Weights: map[string]int32{}}, err
	}
	spec := vs.res.Spec.(*networking.VirtualService)
	split := &Split{VirtualService: vs.res.Name, ResourceVersion: vs.obj.Metadata.ResourceVersion, Weights: map[string]int32{}}
	i := catchAllRule(spec)
	split.OtherRules = len(spec.GetHttp())
	if i >= 0 {
		split.OtherRules--
		routes := spec.GetHttp()[i].GetRoute()
		for _, d := range routes {
			w := d.GetWeight()
			if len(routes) == 1 {
				w = 100
			}
			split.Weights[d.GetDestination().GetSubset()] += w
		}
	}
	return split, nil
}

type storedVS struct {
	obj *store.Object
	res *config.Resource
}

// meshVirtualService finds the VirtualService that routes a service for the mesh.
func (s *Service) meshVirtualService(ctx context.Context, namespace, service string) (*storedVS, error) {
	host := config.ResolveHost(service, namespace)
	objs, err := s.store.List(ctx, config.KindVirtualService, "")
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		r, err := FromObject(o)
		if err != nil {
			continue
		}
		spec := r.Spec.(*networking.VirtualService)
		if gws := spec.GetGateways(); len(gws) > 0 && !slices.Contains(gws, "mesh") {
			continue
		}
		for _, h := range spec.GetHosts() {
			if config.ResolveHost(h, o.Metadata.Namespace) == host {
				return &storedVS{obj: o, res: r}, nil
			}
		}
	}
	return nil, nil
}

// catchAllRule returns the index of the rule that takes every request the rules before it
// did not (no match, or only empty matches), or -1.
func catchAllRule(vs *networking.VirtualService) int {
	for i, rule := range vs.GetHttp() {
		if rule.GetRedirect() != nil || rule.GetDirectResponse() != nil {
			continue
		}
		all := len(rule.GetMatch()) == 0
		for _, m := range rule.GetMatch() {
			if isEmptyMatch(m) {
				all = true
			}
		}
		if all {
			return i
		}
	}
	return -1
}

func isEmptyMatch(m *networking.HTTPMatchRequest) bool {
	return m.GetUri() == nil && m.GetScheme() == nil && m.GetMethod() == nil && m.GetAuthority() == nil &&
		len(m.GetHeaders()) == 0 && m.GetPort() == 0 && len(m.GetSourceLabels()) == 0 && len(m.GetGateways()) == 0 &&
		len(m.GetQueryParams()) == 0 && len(m.GetWithoutHeaders()) == 0 && m.GetSourceNamespace() == ""
}

// SetTraffic sets the split of a service's catch-all route between its versions — the
// canary slider's change. It edits the weights of that one rule of the VirtualService and
// keeps every other rule (header matches, faults, timeouts) as the user wrote it; with no
// VirtualService it creates one. Subsets the DestinationRule lacks are added (labels
// version=<name>), creating the DestinationRule if needed. ifVersion, when not zero, is the
// VirtualService's resourceVersion the caller saw: a concurrent edit then fails with a
// conflict that names who made it. Both resources change in one revision.
func (s *Service) SetTraffic(ctx context.Context, who Actor, namespace, service string, weights map[string]int32, ifVersion int64) (*Outcome, error) {
	var errs config.Errors
	total := int32(0)
	for _, v := range sortedNames(weights) {
		if weights[v] < 0 || weights[v] > 100 {
			errs = append(errs, config.FieldError{Path: "weights." + v, Message: fmt.Sprintf("weight %d must be from 0 to 100", weights[v])})
		}
		total += weights[v]
	}
	if len(weights) == 0 || total == 0 {
		errs = append(errs, config.FieldError{Path: "weights", Message: "give at least one version a weight above 0, such as {\"v1\": 90, \"v2\": 10}"})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	vs, err := s.meshVirtualService(ctx, namespace, service)
	if err != nil {
		return nil, err
	}
	var route []*networking.HTTPRouteDestination
	for _, v := range sortedNames(weights) {
		if weights[v] == 0 {
			continue // a zero weight would only clutter the route; leaving it out is the same
		}
		route = append(route, &networking.HTTPRouteDestination{
			Destination: &networking.Destination{Host: service, Subset: v},
			Weight:      weights[v],
		})
	}
	if len(route) == 1 {
		route[0].Weight = 0 // one destination takes everything; Istio writes no weight then
	}

	var muts []store.Mutation
	var vsRes *config.Resource
	if vs == nil {
		vsRes = &config.Resource{
			APIVersion: "networking.istio.io/v1", Kind: config.KindVirtualService, Namespace: namespace, Name: service,
			Spec: &networking.VirtualService{Hosts: []string{service}, Http: []*networking.HTTPRoute{{Route: route}}},
		}
		if ifVersion != 0 {
			return nil, &store.ConflictError{Key: store.Key{Kind: config.KindVirtualService, Namespace: namespace, Name: service}, Expected: ifVersion}
		}
	} else {
		vsRes = vs.res
		spec := vsRes.Spec.(*networking.VirtualService)
		if vs.obj.Metadata.Namespace != namespace {
			for _, d := range route {
				d.Destination.Host = config.ResolveHost(service, namespace)
			}
		}
		if i := catchAllRule(spec); i >= 0 {
			spec.Http[i].Route = route
		} else {
			spec.Http = append(spec.Http, &networking.HTTPRoute{Route: route})
		}
	}
	o, err := objectOf(vsRes)
	if err != nil {
		return nil, err
	}
	muts = append(muts, store.Mutation{Key: o.Key(), Object: o, IfVersion: ifVersion})

	drMut, err := s.ensureSubsets(ctx, namespace, service, weights)
	if err != nil {
		return nil, err
	}
	if drMut != nil {
		muts = append(muts, *drMut)
	}
	parts := make([]string, 0, len(weights))
	for _, v := range sortedNames(weights) {
		parts = append(parts, fmt.Sprintf("%s=%d", v, weights[v]))
	}
	return s.commit(ctx, who, fmt.Sprintf("traffic of %s/%s: %s", namespace, service, strings.Join(parts, " ")), 0, false, muts, nil)
}

// ensureSubsets adds the subsets that weights name and the service's DestinationRule lacks.
func (s *Service) ensureSubsets(ctx context.Context, namespace, service string, weights map[string]int32) (*store.Mutation, error) {
	host := config.ResolveHost(service, namespace)
	objs, err := s.store.List(ctx, config.KindDestinationRule, "")
	if err != nil {
		return nil, err
	}
	var dr *config.Resource
	for _, o := range objs {
		r, err := FromObject(o)
		if err != nil {
			continue
		}
		if config.ResolveHost(r.Spec.(*networking.DestinationRule).GetHost(), o.Metadata.Namespace) == host {
			if dr == nil || o.Metadata.Namespace == namespace {
				dr = r
			}
		}
	}
	if dr == nil {
		dr = &config.Resource{
			APIVersion: "networking.istio.io/v1", Kind: config.KindDestinationRule, Namespace: namespace, Name: service,
			Spec: &networking.DestinationRule{Host: service},
		}
	}
	spec := dr.Spec.(*networking.DestinationRule)
	added := false
	for _, v := range sortedNames(weights) {
		if !slices.ContainsFunc(spec.GetSubsets(), func(s *networking.Subset) bool { return s.GetName() == v }) {
			spec.Subsets = append(spec.Subsets, &networking.Subset{Name: v, Labels: map[string]string{"version": v}})
			added = true
		}
	}
	if !added {
		return nil, nil
	}
	o, err := objectOf(dr)
	if err != nil {
		return nil, err
	}
	return &store.Mutation{Key: o.Key(), Object: o}, nil
}

func objectOf(r *config.Resource) (*store.Object, error) {
	b, err := config.EncodeSpec(r.Spec)
	if err != nil {
		return nil, err
	}
	r.SpecJSON = b
	return ToObject(r), nil
}

func sortedNames(m map[string]int32) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
