package xds

import (
	"fmt"
	"hash/fnv"
	"slices"

	"github.com/envoyproxy/go-control-plane/pkg/cache/types"
	cachev3 "github.com/envoyproxy/go-control-plane/pkg/cache/v3"
	resourcev3 "github.com/envoyproxy/go-control-plane/pkg/resource/v3"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
)

// marshaled is an xDS resource encoded once and sent to many proxies.
//
// go-control-plane encodes a snapshot's resources anew for every stream it answers, so a
// cluster list or route table shared by a thousand sidecars would be encoded a thousand times
// per push; that was most of the control plane's CPU. A marshaled resource is an empty
// message whose unknown fields hold the resource's encoding: encoding it again copies those
// bytes and nothing else, and the proxy receives exactly the resource. GetName gives the
// cache the resource's name. The wrapper keeps no reference to the decoded resource, so a
// snapshot holds bytes rather than object trees.
type marshaled struct {
	*emptypb.Empty
	name string
}

// GetName is the name of the resource inside (types.ResourceWithName).
func (m *marshaled) GetName() string { return m.name }

// encoded returns r's deterministic encoding.
func encoded(r types.Resource) ([]byte, error) {
	if m, ok := r.(*marshaled); ok {
		return m.ProtoReflect().GetUnknown(), nil
	}
	return proto.MarshalOptions{Deterministic: true}.Marshal(r)
}

// marshalAll encodes resources once, for every proxy they are sent to, and returns the
// wrapped resources with the hash of their encodings (the same as hashResources').
func marshalAll(rs []types.Resource) ([]types.Resource, uint64, error) {
	out := make([]types.Resource, len(rs))
	h := fnv.New64a()
	for i, r := range rs {
		b, err := encoded(r)
		if err != nil {
			return nil, 0, fmt.Errorf("encode %s: %w", cachev3.GetResourceName(r), err)
		}
		h.Write(b)
		h.Write([]byte{0})
		if m, ok := r.(*marshaled); ok {
			out[i] = m
			continue
		}
		e := &emptypb.Empty{}
		e.ProtoReflect().SetUnknown(b)
		out[i] = &marshaled{Empty: e, name: cachev3.GetResourceName(r)}
	}
	return out, h.Sum64(), nil
}

// hashResources hashes the encodings of rs.
func hashResources(rs []types.Resource) uint64 {
	h := fnv.New64a()
	opts := proto.MarshalOptions{Deterministic: true}
	var buf []byte
	for _, r := range rs {
		if m, ok := r.(*marshaled); ok {
			h.Write(m.ProtoReflect().GetUnknown())
		} else {
			buf, _ = opts.MarshalAppend(buf[:0], r)
			h.Write(buf)
		}
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// The consistency go-control-plane's Snapshot.Consistent checks, computed on the decoded
// resources (a marshaled resource hides its references) and once per push for the parts
// every sidecar shares: the route tables a proxy's listeners name are exactly its route
// tables, and the endpoint sets its clusters name exactly the endpoint sets it gets.

// references returns the route and endpoint names rs refer to, by type URL.
func references(rs []types.Resource) map[string]map[string]bool {
	return cachev3.GetResourceReferences(index(rs))
}

// index maps rs by name, as a snapshot holds them.
func index(rs []types.Resource) map[string]types.ResourceWithTTL {
	out := make(map[string]types.ResourceWithTTL, len(rs))
	for _, r := range rs {
		out[cachev3.GetResourceName(r)] = types.ResourceWithTTL{Resource: r}
	}
	return out
}

// resourceNames is the set of rs's names.
func resourceNames(rs []types.Resource) map[string]bool {
	out := make(map[string]bool, len(rs))
	for _, r := range rs {
		out[cachev3.GetResourceName(r)] = true
	}
	return out
}

// sameNames checks that the names of typ referenced are exactly have.
func sameNames(typ string, refs map[string]map[string]bool, have map[string]bool) error {
	want := refs[typ]
	if len(want) != len(have) {
		return fmt.Errorf("%s: %d referenced, %d present", shortType(typ), len(want), len(have))
	}
	for name := range want {
		if !have[name] {
			return fmt.Errorf("%s: %q is referenced but not present", shortType(typ), name)
		}
	}
	return nil
}

// ownSet is what belongs to one proxy alone, encoded: its listeners and the clusters of its
// application's ports, with what they reference and the problems met building them.
type ownSet struct {
	listeners, clusters       []types.Resource
	listenerHash, clusterHash uint64
	refs                      map[string]map[string]bool
	problems                  []Problem
	// inputs is the configuration's listenerInputs the set was built from.
	inputs uint64
}

func newOwnSet(listeners, clusters []types.Resource, problems []Problem, inputs uint64) (*ownSet, error) {
	o := &ownSet{refs: references(append(slices.Clip(listeners), clusters...)), problems: problems, inputs: inputs}
	var err error
	if o.listeners, o.listenerHash, err = marshalAll(listeners); err != nil {
		return nil, err
	}
	if o.clusters, o.clusterHash, err = marshalAll(clusters); err != nil {
		return nil, err
	}
	return o, nil
}

// consistent checks a proxy's own resources against the shared ones: its listeners name
// exactly its route tables, and its own clusters name only endpoint sets that exist (the
// shared clusters were checked against them once).
func (o *ownSet) consistent(routes, endpoints map[string]bool) error {
	if err := sameNames(resourcev3.RouteType, o.refs, routes); err != nil {
		return err
	}
	for name := range o.refs[resourcev3.EndpointType] {
		if !endpoints[name] {
			return fmt.Errorf("EDS: %q is referenced but not present", name)
		}
	}
	return nil
}
