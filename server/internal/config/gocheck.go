package config

import (
	"encoding/json"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"
)

var (
	durationType = reflect.TypeFor[Duration]()
	timeType     = reflect.TypeFor[time.Time]()
)

// goValue checks v, a generic JSON tree, against the Go type t of a sluice.dev spec, the way
// checker does against proto descriptors: every unknown field and type mismatch is reported
// with its path. Fields are named by their json tags only (camelCase).
func (c *checker) goValue(path string, v any, t reflect.Type) {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch {
	case t == durationType:
		s, ok := v.(string)
		if !ok {
			c.errs.add(path, "expected a duration such as \"5s\" or \"1m30s\", got "+describe(v))
		} else if _, err := time.ParseDuration(s); err != nil {
			c.errs.add(path, fmt.Sprintf("invalid duration %q: use a number and a unit, such as 500ms, 5s or 1m30s", s))
		}
		return
	case t == timeType:
		s, ok := v.(string)
		if !ok {
			c.errs.add(path, "expected a time such as \"2026-01-02T15:04:05Z\", got "+describe(v))
		} else if _, err := time.Parse(time.RFC3339Nano, s); err != nil {
			c.errs.add(path, fmt.Sprintf("invalid time %q: use RFC 3339, such as \"2026-01-02T15:04:05Z\"", s))
		}
		return
	}
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			c.errs.add(path, "expected an object, got "+describe(v))
			return
		}
		fields := jsonFields(t)
		for _, k := range sortedKeys(obj) {
			p := field(path, k)
			f, ok := fields[k]
			if !ok {
				names := make([]string, 0, len(fields))
				for i := 0; i < t.NumField(); i++ {
					names = append(names, jsonName(t.Field(i)))
				}
				c.errs.add(p, fmt.Sprintf("unknown field %q%s", k, suggest(k, names)))
				continue
			}
			if obj[k] == nil {
				continue // null means unset
			}
			c.goValue(p, obj[k], f.Type)
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			c.errs.add(path, "expected an object (a map), got "+describe(v))
			return
		}
		for _, k := range sortedKeys(obj) {
			if obj[k] == nil {
				c.errs.add(mapKey(path, k), "a value is required")
				continue
			}
			c.goValue(mapKey(path, k), obj[k], t.Elem())
		}
	case reflect.Slice:
		list, ok := v.([]any)
		if !ok {
			c.errs.add(path, "expected a list, got "+describe(v))
			return
		}
		for i, item := range list {
			if item == nil {
				c.errs.add(index(path, i), "a list item cannot be empty (null)")
				continue
			}
			c.goValue(index(path, i), item, t.Elem())
		}
	case reflect.String:
		if _, ok := v.(string); !ok {
			c.errs.add(path, "expected a string, got "+describe(v)+quoteHint(v))
		}
	case reflect.Bool:
		if _, ok := v.(bool); !ok {
			c.errs.add(path, "expected true or false, got "+describe(v))
		}
	case reflect.Int32:
		c.report(path, checkIntegerNumber(v, math.MinInt32, math.MaxInt32))
	case reflect.Int64:
		c.report(path, checkIntegerNumber(v, math.MinInt64, math.MaxInt64))
	case reflect.Float64:
		c.report(path, checkFloatNumber(v))
	default:
		c.errs.add(path, fmt.Sprintf("internal: no schema for Go type %s", t))
	}
}

func (c *checker) report(path, msg string) {
	if msg != "" {
		c.errs.add(path, msg)
	}
}

// The sluice.dev kinds take plain JSON numbers: a number in a string is refused, because
// encoding/json, which decodes them, refuses it too.

func checkIntegerNumber(v any, lo, hi int64) string {
	n, ok := v.(json.Number)
	if !ok {
		return "expected an integer, got " + describe(v)
	}
	if strings.ContainsAny(string(n), ".eE") {
		return "expected an integer, got " + string(n)
	}
	return checkInteger(v, lo, hi)
}

func checkFloatNumber(v any) string {
	if _, ok := v.(string); ok {
		return "expected a number, got " + describe(v)
	}
	return checkFloat(v, 64)
}

func jsonFields(t reflect.Type) map[string]reflect.StructField {
	out := make(map[string]reflect.StructField, t.NumField())
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		out[jsonName(f)] = f
	}
	return out
}

func jsonName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
	if name == "" {
		return f.Name
	}
	return name
}
