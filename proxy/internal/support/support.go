// Package support decides whether an xDS resource uses only the fields sluice-proxy implements.
//
// Envoy's protos are large, and a proxy that silently ignores a field it does not implement
// routes traffic differently from what the control plane meant. So each compiler in the proxy
// describes, per message type, the fields it implements, and Check rejects a resource that sets
// any other field, naming it by its path in the resource ("virtual_hosts[0].routes[2].route.
// retry_policy"). The proxy NACKs the update with that message.
package support

import (
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Fields lists, per message full name, the names of the fields that may be set. A message type
// that is not listed is opaque: once its field is allowed, everything inside it is accepted
// (metadata structs, durations, wrappers, messages whose compiler checks them itself).
type Fields map[protoreflect.FullName][]protoreflect.Name

// Check returns an error naming the first field set in m that f does not allow, or nil. A
// wrapper message (google.protobuf.BoolValue and kin) holding its zero value counts as unset,
// so "validate_clusters: false" is accepted where validate_clusters is not.
func Check(m proto.Message, f Fields) error {
	var path []string
	return check(m.ProtoReflect(), f, &path)
}

func check(m protoreflect.Message, f Fields, path *[]string) error {
	allowed, listed := f[m.Descriptor().FullName()]
	if !listed {
		return nil
	}
	var err error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		push(path, string(fd.Name()))
		defer pop(path)
		if !contains(allowed, fd.Name()) {
			if isZeroWrapper(fd, v) {
				return true
			}
			err = fmt.Errorf("%s: not supported by sluice-proxy", strings.Join(*path, ""))
			return false
		}
		if fd.Message() == nil {
			return true
		}
		switch {
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len() && err == nil; i++ {
				push(path, "["+strconv.Itoa(i)+"]")
				err = check(l.Get(i).Message(), f, path)
				pop(path)
			}
		case fd.IsMap():
			if fd.MapValue().Message() == nil {
				return true
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				push(path, "["+strconv.Quote(k.String())+"]")
				err = check(mv.Message(), f, path)
				pop(path)
				return err == nil
			})
		default:
			err = check(v.Message(), f, path)
		}
		return err == nil
	})
	return err
}

// push appends a path element; a field name after another element gets a dot.
func push(path *[]string, s string) {
	if len(*path) > 0 && !strings.HasPrefix(s, "[") {
		s = "." + s
	}
	*path = append(*path, s)
}

func pop(path *[]string) { *path = (*path)[:len(*path)-1] }

func contains(names []protoreflect.Name, n protoreflect.Name) bool {
	for _, x := range names {
		if x == n {
			return true
		}
	}
	return false
}

func isZeroWrapper(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
	md := fd.Message()
	if md == nil || fd.IsList() || fd.IsMap() || md.ParentFile().Package() != "google.protobuf" ||
		!strings.HasSuffix(string(md.Name()), "Value") || md.Fields().Len() != 1 {
		return false
	}
	inner := v.Message()
	return !inner.Has(md.Fields().Get(0))
}
