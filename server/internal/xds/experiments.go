package xds

import (
	"slices"
	"strings"
	"time"

	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	faultcommonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/common/fault/v3"
	faultv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/fault/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/sluicemesh/sluice/internal/meta"
	"github.com/sluicemesh/sluice/server/internal/config"
)

// FaultExperiments are overlaid on the sidecars' outbound routes while they are active, and
// exist only in the generated configuration: the VirtualServices they touch are never
// rewritten. A route gets an experiment's fault when one of its destination clusters is the
// experiment's host, so requests routed elsewhere by a VirtualService are left alone; a host
// without a VirtualService gets it on its default route. An experiment with match.headers
// gets a copy of each such route, placed just before it, that also requires those headers
// and carries the fault, so other requests keep the route as it was. match.sourceLabels
// selects the sidecars that get the overlay at all, as a VirtualService's sourceLabels do.
// Gateways' routes are left alone.
//
// Precedence: while it is active, an experiment's fault replaces a VirtualService fault on
// the same route (for the requests it matches); when several active experiments target one
// host, those with match.headers come first, in namespace/name order, and the first one
// without headers takes the route itself.

// RunKey identifies one run of a FaultExperiment: the experiment and its start. A run that
// was ended early (stopped by an operator, or by its guard) is overlaid no more, while the
// same experiment given a new start runs again.
type RunKey struct {
	Namespace, Name string
	// StartMicros is the run's start in microseconds since the Unix epoch, the precision
	// PostgreSQL keeps.
	StartMicros int64
}

// NewRunKey returns the key of the run of experiment namespace/name that starts at start.
func NewRunKey(namespace, name string, start time.Time) RunKey {
	return RunKey{Namespace: namespace, Name: name, StartMicros: start.UnixMicro()}
}

// experiment is a FaultExperiment as the overlay reads it.
type experiment struct {
	res  *config.Resource
	spec *config.FaultExperimentSpec
	// host is the target, fully qualified.
	host string
}

// Active reports whether a FaultExperiment runs at now: its start has come, its duration has
// not passed, and it was not ended early. A spec without a start (stored before the server
// stamped one) never runs.
func Active(spec *config.FaultExperimentSpec, now time.Time) bool {
	if spec == nil || spec.Start == nil || now.IsZero() {
		return false
	}
	start := *spec.Start
	return !now.Before(start) && now.Before(start.Add(time.Duration(spec.Duration)))
}

// indexExperiments collects the FaultExperiments of rs, in key order.
func indexExperiments(rs []*config.Resource) []*experiment {
	var out []*experiment
	for _, r := range rs {
		if s, ok := r.Spec.(*config.FaultExperimentSpec); ok {
			out = append(out, &experiment{res: r, spec: s, host: config.ResolveHost(s.Host, r.Namespace)})
		}
	}
	slices.SortFunc(out, func(a, b *experiment) int { return strings.Compare(a.res.Key(), b.res.Key()) })
	return out
}

// activeExperiments returns the experiments a sidecar gets now.
func (sh *shared) activeExperiments(labels map[string]string) []*experiment {
	m := sh.mesh
	if m.Config == nil {
		return nil
	}
	var out []*experiment
	for _, e := range m.Config.experiments {
		if !Active(e.spec, m.Now) || m.Halted[NewRunKey(e.res.Namespace, e.res.Name, *e.spec.Start)] {
			continue
		}
		if e.spec.Match != nil && !labelsMatch(e.spec.Match.SourceLabels, labels) {
			continue
		}
		if !m.Features.Fault {
			sh.problems = append(sh.problems, Problem{
				Resource: e.res.Kind + "/" + e.res.Namespace + "/" + e.res.Name,
				Message:  "fault is not enforced by this version of sluice-proxy; the experiment has no effect",
			})
			continue
		}
		out = append(out, e)
	}
	return out
}

// overlayExperiments puts the active experiments' faults on a sidecar's outbound routes.
func (sh *shared) overlayExperiments(labels map[string]string, rc *routev3.RouteConfiguration) {
	exps := sh.activeExperiments(labels)
	if len(exps) == 0 {
		return
	}
	for _, vh := range rc.VirtualHosts {
		var out []*routev3.Route
		for _, r := range vh.Routes {
			hosts := routeHosts(r)
			taken := false
			for _, e := range exps {
				if !slices.Contains(hosts, e.host) {
					continue
				}
				fault := mustAny(experimentFault(e.spec))
				if e.spec.Match != nil && len(e.spec.Match.Headers) > 0 {
					c := proto.Clone(r).(*routev3.Route)
					c.Name = r.Name + "/experiment/" + e.res.Namespace + "/" + e.res.Name
					c.Match.Headers = append(c.Match.Headers, experimentHeaders(e.spec.Match.Headers)...)
					setFilterConfig(c, faultFilterName, fault)
					out = append(out, c)
					continue
				}
				if !taken {
					r = proto.Clone(r).(*routev3.Route)
					setFilterConfig(r, faultFilterName, fault)
					taken = true
				}
			}
			out = append(out, r)
		}
		vh.Routes = out
	}
}

// routeHosts returns the hosts of the clusters a route sends requests to.
func routeHosts(r *routev3.Route) []string {
	ra := r.GetRoute()
	if ra == nil {
		return nil
	}
	var names []string
	if c := ra.GetCluster(); c != "" {
		names = append(names, c)
	}
	for _, cw := range ra.GetWeightedClusters().GetClusters() {
		names = append(names, cw.GetName())
	}
	var out []string
	for _, n := range names {
		if dir, _, _, host, err := meta.ParseCluster(n); err == nil && dir == "outbound" {
			out = append(out, host)
		}
	}
	return out
}

// experimentHeaders turns match.headers into route header matchers, sorted by name.
func experimentHeaders(hs map[string]config.StringMatch) []*routev3.HeaderMatcher {
	var out []*routev3.HeaderMatcher
	for _, name := range sortedKeys(hs) {
		m := hs[name]
		sm := &matcherv3.StringMatcher{}
		switch {
		case m.Exact != "":
			sm.MatchPattern = &matcherv3.StringMatcher_Exact{Exact: m.Exact}
		case m.Prefix != "":
			sm.MatchPattern = &matcherv3.StringMatcher_Prefix{Prefix: m.Prefix}
		default:
			sm.MatchPattern = &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: m.Regex}}
		}
		out = append(out, &routev3.HeaderMatcher{
			Name:                 strings.ToLower(name),
			HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm},
		})
	}
	return out
}

// experimentFault is an experiment's delay and abort in Envoy's form.
func experimentFault(s *config.FaultExperimentSpec) *faultv3.HTTPFault {
	out := &faultv3.HTTPFault{}
	pct := func(p *float64) float64 {
		if p == nil {
			return 100
		}
		return *p
	}
	if d := s.Delay; d != nil {
		out.Delay = &faultcommonv3.FaultDelay{
			FaultDelaySecifier: &faultcommonv3.FaultDelay_FixedDelay{FixedDelay: durationpb.New(time.Duration(d.FixedDelay))},
			Percentage:         fractionalPercent(pct(d.Percentage)),
		}
	}
	if a := s.Abort; a != nil {
		abort := &faultv3.FaultAbort{Percentage: fractionalPercent(pct(a.Percentage))}
		if a.GRPCStatus != "" {
			abort.ErrorType = &faultv3.FaultAbort_GrpcStatus{GrpcStatus: grpcCode(a.GRPCStatus)}
		} else {
			abort.ErrorType = &faultv3.FaultAbort_HttpStatus{HttpStatus: uint32(a.HTTPStatus)}
		}
		out.Abort = abort
	}
	return out
}

// SetHaltedExperiments replaces the set of experiment runs ended before their time, and
// pushes the change. Until it is first called, no run is halted.
func (s *Server) SetHaltedExperiments(runs []RunKey) {
	m := make(map[RunKey]bool, len(runs))
	for _, r := range runs {
		m[r] = true
	}
	s.halted.Store(&m)
	s.Kick()
}

func (s *Server) haltedExperiments() map[RunKey]bool {
	if p := s.halted.Load(); p != nil {
		return *p
	}
	return nil
}
