package filter

import (
	"errors"
	"fmt"
	"net/http"
	"net/textproto"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
)

// HeaderOps is one level's compiled header mutations: Envoy's request_headers_to_add and
// request_headers_to_remove (or the response pair) of a route configuration, virtual host,
// route or weighted cluster. It is immutable; a nil *HeaderOps changes nothing.
//
// Apply follows Envoy's HeaderParser::evaluateHeaders: first every header to remove is
// removed; then each header to add is decided against the headers as they are at that point
// (ADD_IF_ABSENT adds only when the header is absent, OVERWRITE_IF_EXISTS overwrites only when
// it is present); then the overwrites are applied, then the appends, each in configured order.
type HeaderOps struct {
	remove []string // canonical keys
	add    []headerEntry
}

type headerEntry struct {
	key    string   // canonical
	value  string   // literal, with %% unescaped
	values []string // []string{value}, len == cap so an append never writes into it
	action corev3.HeaderValueOption_HeaderAppendAction
}

// CompileHeaderOps compiles a level's headers to add and to remove; nil when both are empty.
// field names the add list in errors ("request_headers_to_add"), removeField the remove list.
func CompileHeaderOps(add []*corev3.HeaderValueOption, remove []string, field, removeField string) (*HeaderOps, error) {
	if len(add) == 0 && len(remove) == 0 {
		return nil, nil
	}
	o := &HeaderOps{}
	for i, name := range remove {
		if err := modifiable(name); err != nil {
			return nil, fmt.Errorf("%s[%d]: %w", removeField, i, err)
		}
		o.remove = append(o.remove, textproto.CanonicalMIMEHeaderKey(name))
	}
	for i, hvo := range add {
		e, keep, err := compileHeaderEntry(hvo)
		if err != nil {
			return nil, fmt.Errorf("%s[%d]%w", field, i, err)
		}
		if keep {
			o.add = append(o.add, e)
		}
	}
	return o, nil
}

// compileHeaderEntry's errors start with "." so the caller can prefix the field. keep is false
// for an empty value without keep_empty_value: Envoy never adds those.
func compileHeaderEntry(hvo *corev3.HeaderValueOption) (headerEntry, bool, error) {
	var e headerEntry
	key := hvo.GetHeader().GetKey()
	if err := modifiable(key); err != nil {
		return e, false, fmt.Errorf(".header.key: %w", err)
	}
	raw := hvo.GetHeader().GetValue()
	if rv := hvo.GetHeader().GetRawValue(); len(rv) > 0 {
		if raw != "" {
			return e, false, errors.New(".header: only one of value and raw_value may be set")
		}
		raw = string(rv)
	}
	value, err := literal(raw)
	if err != nil {
		return e, false, fmt.Errorf(".header.value: %w", err)
	}
	if strings.ContainsAny(value, "\r\n\x00") {
		return e, false, errors.New(".header.value: CR, LF and NUL are not allowed in a header value")
	}
	e.action = hvo.GetAppendAction()
	if a := hvo.GetAppend(); a != nil { //nolint:staticcheck // deprecated, still sent by older control planes
		if e.action != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD {
			return e, false, errors.New(": both append and append_action are set (Envoy rejects this too)")
		}
		if !a.GetValue() {
			e.action = corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD
		}
	}
	switch e.action {
	case corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD, corev3.HeaderValueOption_ADD_IF_ABSENT,
		corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD, corev3.HeaderValueOption_OVERWRITE_IF_EXISTS:
	default:
		return e, false, fmt.Errorf(".append_action: %v is not an append action sluice-proxy knows", e.action)
	}
	e.key = textproto.CanonicalMIMEHeaderKey(key)
	e.value = value
	e.values = []string{value}[:1:1]
	return e, value != "" || hvo.GetKeepEmptyValue(), nil
}

// modifiable applies Envoy's rule: pseudo-headers and Host may be neither added nor removed
// (the route's rewrites own them), and a name must be an HTTP token.
func modifiable(name string) error {
	switch {
	case name == "":
		return errors.New("a header name is required")
	case strings.HasPrefix(name, ":") || strings.EqualFold(name, "host"):
		return fmt.Errorf("%q: :-prefixed or host headers may not be modified (Envoy rejects this too)", name)
	}
	for i := 0; i < len(name); i++ {
		if !isTokenChar(name[i]) {
			return fmt.Errorf("%q is not a valid header name", name)
		}
	}
	return nil
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

// literal returns a header value format as its text. Envoy reads "%" as the start of a
// substitution command (%DOWNSTREAM_REMOTE_ADDRESS% and so on) and "%%" as a literal "%";
// sluice-proxy implements no commands, so one is rejected rather than sent verbatim.
func literal(format string) (string, error) {
	if !strings.Contains(format, "%") {
		return format, nil
	}
	var b strings.Builder
	for i := 0; i < len(format); i++ {
		c := format[i]
		if c != '%' {
			b.WriteByte(c)
			continue
		}
		if i+1 < len(format) && format[i+1] == '%' {
			b.WriteByte('%')
			i++
			continue
		}
		cmd := format[i:]
		if j := strings.IndexByte(format[i+1:], '%'); j >= 0 {
			cmd = format[i : i+j+2]
		}
		return "", fmt.Errorf("substitution command %s is not supported by sluice-proxy (write %%%% for a literal %%)", cmd)
	}
	return b.String(), nil
}

// Apply mutates h. Value slices already in h may be shared with other maps: Apply replaces
// them, never writes into them.
func (o *HeaderOps) Apply(h http.Header) {
	if o == nil {
		return
	}
	for _, k := range o.remove {
		delete(h, k)
	}
	if len(o.add) == 0 {
		return
	}
	// Decide every entry before changing anything, as Envoy does. skip marks entries whose
	// condition failed; more than 64 entries at one level is rare enough to allocate for.
	var small uint64
	var large []bool
	if len(o.add) > 64 {
		large = make([]bool, len(o.add))
	}
	skipped := func(i int) bool {
		if large != nil {
			return large[i]
		}
		return small&(1<<i) != 0
	}
	for i := range o.add {
		e := &o.add[i]
		_, present := h[e.key]
		skip := (e.action == corev3.HeaderValueOption_ADD_IF_ABSENT && present) ||
			(e.action == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS && !present)
		if skip {
			if large != nil {
				large[i] = true
			} else {
				small |= 1 << i
			}
		}
	}
	for i := range o.add {
		e := &o.add[i]
		if !skipped(i) && (e.action == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD || e.action == corev3.HeaderValueOption_OVERWRITE_IF_EXISTS) {
			h[e.key] = e.values
		}
	}
	for i := range o.add {
		e := &o.add[i]
		if skipped(i) || (e.action != corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD && e.action != corev3.HeaderValueOption_ADD_IF_ABSENT) {
			continue
		}
		if old := h[e.key]; len(old) > 0 {
			h[e.key] = append(old[:len(old):len(old)], e.value)
		} else {
			h[e.key] = e.values
		}
	}
}

// ApplyAll applies each level in turn.
func ApplyAll(levels []*HeaderOps, h http.Header) {
	for _, o := range levels {
		o.Apply(h)
	}
}
