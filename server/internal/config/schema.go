package config

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"
)

// protojson reports the first problem it meets, without a path. checker walks the generic
// JSON tree of a spec alongside the message descriptors instead, accepting what protojson
// accepts (JSON and proto field names, numbers in strings, enum names or numbers, null as
// unset) and reporting every unknown field and type mismatch with its path. It also rewrites
// durations from Go syntax ("3m", which Istio's own decoder accepts) into protojson's ("180s"),
// so that protojson can decode the tree once checker has found nothing wrong.
type checker struct {
	errs *Errors
}

// message checks v against md and returns v, possibly rewritten.
func (c *checker) message(path string, v any, md protoreflect.MessageDescriptor) any {
	switch md.FullName() {
	case "google.protobuf.Duration":
		return c.duration(path, v)
	case "google.protobuf.Timestamp":
		s, ok := v.(string)
		if !ok {
			c.errs.add(path, "expected a time such as \"2026-01-02T15:04:05Z\", got "+describe(v))
		} else if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			c.errs.add(path, fmt.Sprintf("invalid time %q: use RFC 3339, such as \"2026-01-02T15:04:05Z\"", s))
		}
		return v
	case "google.protobuf.Value":
		return v
	case "google.protobuf.Struct":
		if _, ok := v.(map[string]any); !ok {
			c.errs.add(path, "expected an object, got "+describe(v))
		}
		return v
	case "google.protobuf.ListValue":
		if _, ok := v.([]any); !ok {
			c.errs.add(path, "expected a list, got "+describe(v))
		}
		return v
	case "google.protobuf.BoolValue", "google.protobuf.StringValue", "google.protobuf.BytesValue",
		"google.protobuf.Int32Value", "google.protobuf.Int64Value", "google.protobuf.UInt32Value",
		"google.protobuf.UInt64Value", "google.protobuf.FloatValue", "google.protobuf.DoubleValue":
		// Wrappers are written as the bare value they wrap.
		c.scalar(path, v, md.Fields().ByName("value"))
		return v
	}

	obj, ok := v.(map[string]any)
	if !ok {
		c.errs.add(path, "expected an object, got "+describe(v))
		return v
	}
	fields := md.Fields()
	seen := map[protoreflect.FieldNumber]string{}
	oneofs := map[protoreflect.FullName]string{}
	for _, k := range sortedKeys(obj) {
		p := field(path, k)
		fd := fields.ByJSONName(k)
		if fd == nil {
			fd = fields.ByTextName(k)
		}
		if fd == nil {
			c.errs.add(p, fmt.Sprintf("unknown field %q%s", k, suggestField(k, md)))
			continue
		}
		if other, dup := seen[fd.Number()]; dup {
			c.errs.add(p, fmt.Sprintf("%s and %s are the same field: keep one", other, k))
			continue
		}
		seen[fd.Number()] = k
		val := obj[k]
		if val == nil && !acceptsNull(fd) {
			continue // null means unset, as in protojson
		}
		if od := fd.ContainingOneof(); od != nil && !od.IsSynthetic() {
			if other, set := oneofs[od.FullName()]; set {
				c.errs.add(p, fmt.Sprintf("%s and %s cannot both be set: keep one", other, k))
				continue
			}
			oneofs[od.FullName()] = k
		}
		obj[k] = c.fieldValue(p, val, fd)
	}
	return obj
}

func acceptsNull(fd protoreflect.FieldDescriptor) bool {
	if md := fd.Message(); md != nil {
		return md.FullName() == "google.protobuf.Value"
	}
	if ed := fd.Enum(); ed != nil {
		return ed.FullName() == "google.protobuf.NullValue"
	}
	return false
}

func (c *checker) fieldValue(path string, v any, fd protoreflect.FieldDescriptor) any {
	switch {
	case fd.IsMap():
		obj, ok := v.(map[string]any)
		if !ok {
			c.errs.add(path, "expected an object (a map), got "+describe(v))
			return v
		}
		for _, k := range sortedKeys(obj) {
			p := mapKey(path, k)
			c.mapKey(p, k, fd.MapKey())
			val := obj[k]
			if val == nil && !acceptsNull(fd.MapValue()) {
				c.errs.add(p, "a value is required")
				continue
			}
			obj[k] = c.single(p, val, fd.MapValue())
		}
		return obj
	case fd.IsList():
		list, ok := v.([]any)
		if !ok {
			msg := "expected a list, got " + describe(v)
			if _, isObj := v.(map[string]any); !isObj {
				msg += ": write a single item as a list of one, such as [x] or an indented \"- x\""
			}
			c.errs.add(path, msg)
			return v
		}
		for i, item := range list {
			p := index(path, i)
			if item == nil && !acceptsNull(fd) {
				c.errs.add(p, "a list item cannot be empty (null)")
				continue
			}
			list[i] = c.single(p, item, fd)
		}
		return list
	default:
		return c.single(path, v, fd)
	}
}

func (c *checker) single(path string, v any, fd protoreflect.FieldDescriptor) any {
	if fd.Kind() == protoreflect.MessageKind || fd.Kind() == protoreflect.GroupKind {
		return c.message(path, v, fd.Message())
	}
	c.scalar(path, v, fd)
	return v
}

func (c *checker) mapKey(path, k string, fd protoreflect.FieldDescriptor) {
	var err error
	switch fd.Kind() {
	case protoreflect.BoolKind:
		if k != "true" && k != "false" {
			err = fmt.Errorf("key %q is not true or false", k)
		}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		_, err = strconv.ParseInt(k, 10, 32)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		_, err = strconv.ParseInt(k, 10, 64)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		_, err = strconv.ParseUint(k, 10, 32)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		_, err = strconv.ParseUint(k, 10, 64)
	}
	if err != nil {
		c.errs.add(path, fmt.Sprintf("key %q must be %s", k, kindName(fd)))
	}
}

func (c *checker) scalar(path string, v any, fd protoreflect.FieldDescriptor) {
	if msg := checkScalar(v, fd); msg != "" {
		c.errs.add(path, msg)
	}
}

// checkScalar returns what is wrong with v as a value of the scalar field fd, or "".
func checkScalar(v any, fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		if _, ok := v.(bool); !ok {
			return "expected true or false, got " + describe(v)
		}
	case protoreflect.Int32Kind, protoreflect.Sint32Kind, protoreflect.Sfixed32Kind:
		return checkInteger(v, math.MinInt32, math.MaxInt32)
	case protoreflect.Int64Kind, protoreflect.Sint64Kind, protoreflect.Sfixed64Kind:
		return checkInteger(v, math.MinInt64, math.MaxInt64)
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind:
		return checkInteger(v, 0, math.MaxUint32)
	case protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return checkUnsigned64(v)
	case protoreflect.FloatKind:
		return checkFloat(v, 32)
	case protoreflect.DoubleKind:
		return checkFloat(v, 64)
	case protoreflect.StringKind:
		if _, ok := v.(string); !ok {
			return "expected a string, got " + describe(v) + quoteHint(v)
		}
	case protoreflect.BytesKind:
		s, ok := v.(string)
		if !ok {
			return "expected base64-encoded bytes, got " + describe(v)
		}
		if !isBase64(s) {
			return "invalid base64 data"
		}
	case protoreflect.EnumKind:
		return checkEnum(v, fd.Enum())
	}
	return ""
}

var jsonNumber = regexp.MustCompile(`^-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?$`)

// numberText returns the text of a JSON number, or of a string holding one (protojson accepts
// both for numeric fields).
func numberText(v any) (string, bool) {
	switch n := v.(type) {
	case json.Number:
		return string(n), true
	case string:
		if jsonNumber.MatchString(n) {
			return n, true
		}
	}
	return "", false
}

// maxNumberText bounds the digits parsed from a number: no field holds a number with more
// digits than this, and parsing millions of digits would take seconds.
const maxNumberText = 64

// shortNumber returns s, shortened for a message.
func shortNumber(s string) string {
	if len(s) > 20 {
		return s[:20] + "…"
	}
	return s
}

// integerValue parses s, a JSON number, as an integer. Like protojson it accepts an exponent
// or a zero fraction ("1e3", "2.0").
func integerValue(s string) (*big.Int, bool) {
	if len(s) > maxNumberText {
		return nil, false
	}
	if n, ok := new(big.Int).SetString(s, 10); ok {
		return n, true
	}
	// Guard big.Rat against absurd exponents such as 1e999999999: no integer field holds more
	// than 20 digits.
	if i := strings.IndexAny(s, "eE"); i >= 0 {
		exp, err := strconv.Atoi(s[i+1:])
		if err != nil || exp > 40 || exp < -40 {
			return nil, false
		}
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok || !r.IsInt() {
		return nil, false
	}
	return r.Num(), true
}

func checkInteger(v any, lo, hi int64) string {
	return checkIntegerRange(v, big.NewInt(lo), big.NewInt(hi))
}

func checkUnsigned64(v any) string {
	return checkIntegerRange(v, new(big.Int), new(big.Int).SetUint64(math.MaxUint64))
}

func checkIntegerRange(v any, lo, hi *big.Int) string {
	s, ok := numberText(v)
	if !ok {
		return "expected an integer, got " + describe(v)
	}
	if len(s) > maxNumberText {
		return fmt.Sprintf("%s is out of range: use %s to %s", shortNumber(s), lo, hi)
	}
	n, ok := integerValue(s)
	if !ok {
		return fmt.Sprintf("expected an integer, got %s", s)
	}
	if n.Cmp(lo) < 0 || n.Cmp(hi) > 0 {
		return fmt.Sprintf("%s is out of range: use %s to %s", s, lo, hi)
	}
	return ""
}

func checkFloat(v any, bits int) string {
	if s, ok := v.(string); ok && (s == "NaN" || s == "Infinity" || s == "-Infinity") {
		return ""
	}
	s, ok := numberText(v)
	if !ok {
		return "expected a number, got " + describe(v)
	}
	if _, err := strconv.ParseFloat(s, bits); err != nil {
		return fmt.Sprintf("%s is out of range for a number", shortNumber(s))
	}
	return ""
}

func checkEnum(v any, ed protoreflect.EnumDescriptor) string {
	values := ed.Values()
	switch x := v.(type) {
	case string:
		if values.ByName(protoreflect.Name(x)) != nil {
			return ""
		}
		hint := ""
		for i := 0; i < values.Len(); i++ {
			if name := string(values.Get(i).Name()); strings.EqualFold(name, x) {
				hint = fmt.Sprintf(" (did you mean %q? names are case-sensitive)", name)
				break
			}
		}
		return fmt.Sprintf("unknown value %q%s: use one of %s", x, hint, enumNames(ed))
	case json.Number:
		if n, ok := integerValue(string(x)); ok && n.IsInt64() && n.Int64() >= math.MinInt32 && n.Int64() <= math.MaxInt32 {
			if values.ByNumber(protoreflect.EnumNumber(n.Int64())) != nil {
				return ""
			}
		}
		return fmt.Sprintf("unknown value %s: use one of %s", x, enumNames(ed))
	}
	return fmt.Sprintf("expected one of %s, got %s", enumNames(ed), describe(v))
}

func enumNames(ed protoreflect.EnumDescriptor) string {
	values := ed.Values()
	names := make([]string, values.Len())
	for i := range names {
		names[i] = string(values.Get(i).Name())
	}
	return strings.Join(names, ", ")
}

func isBase64(s string) bool {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if _, err := enc.DecodeString(s); err == nil {
			return true
		}
	}
	return false
}

// duration accepts Go's duration syntax ("1m30s", "500ms"), as Istio does, and returns the
// form protojson decodes: seconds with up to nine decimals and an "s".
func (c *checker) duration(path string, v any) any {
	s, ok := v.(string)
	if !ok {
		c.errs.add(path, "expected a duration such as \"5s\" or \"1m30s\", got "+describe(v))
		return v
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		c.errs.add(path, fmt.Sprintf("invalid duration %q: use a number and a unit, such as 500ms, 5s or 1m30s", s))
		return v
	}
	return protoDuration(d)
}

func protoDuration(d time.Duration) string {
	sign := ""
	if d < 0 {
		sign = "-"
	}
	sec := int64(d / time.Second)
	nanos := int64(d % time.Second)
	if sec < 0 {
		sec = -sec
	}
	if nanos < 0 {
		nanos = -nanos
	}
	if nanos == 0 {
		return fmt.Sprintf("%s%ds", sign, sec)
	}
	return fmt.Sprintf("%s%d.%09ds", sign, sec, nanos)
}

// describe names a JSON value for a message: `string "abc"`, `number 5`, `a list`.
func describe(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean " + strconv.FormatBool(x)
	case json.Number:
		return "number " + shortNumber(string(x))
	case string:
		if len(x) > 40 {
			x = x[:40] + "…"
		}
		return "string " + strconv.Quote(x)
	case []any:
		return "a list"
	case map[string]any:
		return "an object"
	}
	return fmt.Sprintf("%T", v)
}

// quoteHint helps with YAML's habit of reading 1.10, yes or on as numbers and booleans.
func quoteHint(v any) string {
	switch x := v.(type) {
	case bool:
		return fmt.Sprintf(" (quote it in YAML: \"%t\")", x)
	case json.Number:
		return fmt.Sprintf(" (quote it in YAML: \"%s\")", shortNumber(string(x)))
	}
	return ""
}

func kindName(fd protoreflect.FieldDescriptor) string {
	switch fd.Kind() {
	case protoreflect.BoolKind:
		return "true or false"
	case protoreflect.StringKind:
		return "a string"
	case protoreflect.Uint32Kind, protoreflect.Fixed32Kind, protoreflect.Uint64Kind, protoreflect.Fixed64Kind:
		return "a non-negative integer"
	}
	return "an integer"
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// suggestField offers the closest field name of md to a misspelled one, or lists the fields
// of a small message.
func suggestField(name string, md protoreflect.MessageDescriptor) string {
	fields := md.Fields()
	names := make([]string, 0, fields.Len())
	for i := 0; i < fields.Len(); i++ {
		names = append(names, fields.Get(i).JSONName())
	}
	return suggest(name, names)
}

func suggest(name string, names []string) string {
	best, bestDist := "", 3
	for _, n := range names {
		if d := editDistance(strings.ToLower(name), strings.ToLower(n)); d < bestDist {
			best, bestDist = n, d
		}
	}
	if best != "" {
		return fmt.Sprintf(" (did you mean %q?)", best)
	}
	if len(names) > 0 && len(names) <= 12 {
		return " (known fields: " + strings.Join(names, ", ") + ")"
	}
	return ""
}

// editDistance is the Levenshtein distance, counting a transposition of neighbours as one
// edit ("weigth" is one edit from "weight").
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 64
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
