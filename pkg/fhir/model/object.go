package model

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
)

// rest is the elements of a JSON object that its Go type does not name, as
// they came.
type rest = map[string]json.RawMessage

// field is a named element of a type: its JSON name and its Go field.
type field struct {
	name  string
	index int
}

// fieldsByType caches the named elements of each type, computed once from
// its json tags.
var fieldsByType sync.Map // reflect.Type → []field

func fieldsOf(t reflect.Type) []field {
	if f, ok := fieldsByType.Load(t); ok {
		return f.([]field)
	}
	var out []field
	for i := range t.NumField() {
		sf := t.Field(i)
		if !sf.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(sf.Tag.Get("json"), ",")
		if name == "" || name == "-" {
			continue
		}
		out = append(out, field{name: name, index: i})
	}
	f, _ := fieldsByType.LoadOrStore(t, out)
	return f.([]field)
}

// decodeObject decodes the JSON object b into the struct v points to and
// returns the elements v's type does not name. Names match exactly: FHIR
// names are case-sensitive, where encoding/json would also take "Status"
// for "status".
func decodeObject(b []byte, v any) (rest, error) {
	var m rest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	if m == nil { // null: nothing to set, as encoding/json does
		return nil, nil
	}
	rv := reflect.ValueOf(v).Elem()
	for _, f := range fieldsOf(rv.Type()) {
		raw, ok := m[f.name]
		if !ok {
			continue
		}
		if err := json.Unmarshal(raw, rv.Field(f.index).Addr().Interface()); err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		delete(m, f.name)
	}
	if len(m) == 0 {
		return nil, nil
	}
	for k, raw := range m {
		var buf bytes.Buffer
		if err := json.Compact(&buf, raw); err == nil {
			m[k] = buf.Bytes()
		}
	}
	return m, nil
}

// encodeObject encodes the struct v (a value or a pointer) and the elements
// its type does not name: named elements in the type's order, left out when
// nil or empty strings, then the others by name. An empty but non-nil slice
// encodes as [], as it came.
func encodeObject(v any, r rest) ([]byte, error) {
	rv := reflect.Indirect(reflect.ValueOf(v))
	buf := []byte{'{'}
	for _, f := range fieldsOf(rv.Type()) {
		fv := rv.Field(f.index)
		if absent(fv) {
			continue
		}
		b, err := json.Marshal(fv.Interface())
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f.name, err)
		}
		buf = appendMember(buf, f.name, b)
	}
	keys := make([]string, 0, len(r))
	for k := range r {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		buf = appendMember(buf, k, r[k])
	}
	return append(buf, '}'), nil
}

func appendMember(buf []byte, name string, value []byte) []byte {
	if len(buf) > 1 {
		buf = append(buf, ',')
	}
	key, _ := json.Marshal(name)
	buf = append(buf, key...)
	buf = append(buf, ':')
	return append(buf, value...)
}

func absent(v reflect.Value) bool {
	switch v.Kind() {
	case reflect.Pointer, reflect.Interface, reflect.Slice, reflect.Map:
		return v.IsNil()
	case reflect.String:
		return v.Len() == 0
	case reflect.Bool:
		return !v.Bool()
	case reflect.Int, reflect.Int64, reflect.Int32:
		return v.Int() == 0
	}
	return false
}

// FromMap decodes a resource given as decoded JSON (an event's, another
// service's) into its Go type T.
func FromMap[T any](m map[string]any) (*T, error) {
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, err
	}
	return &v, nil
}
