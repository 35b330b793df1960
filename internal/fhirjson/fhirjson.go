// Package fhirjson edits FHIR resources as decoded JSON objects: the
// services change the few elements they own and keep every other element
// as it came, whatever the FHIR version's extensions.
package fhirjson

import (
	"encoding/json"
	"time"
)

// Obj is a FHIR resource or element as decoded JSON.
type Obj = map[string]any

// Decode decodes a JSON object.
func Decode(b []byte) (Obj, error) {
	var m Obj
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	return m, nil
}

// MustJSON encodes v, which must encode.
func MustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// Str follows keys through nested objects to a string ("" when any step
// is missing).
func Str(m Obj, keys ...string) string {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[k]
	}
	s, _ := cur.(string)
	return s
}

// Get is Str that also steps into the first element of a list on the way
// (Task.code.coding.display).
func Get(m Obj, keys ...string) string {
	var v any = m
	for _, k := range keys {
		if l, ok := v.([]any); ok {
			if len(l) == 0 {
				return ""
			}
			v = l[0]
		}
		o, ok := v.(map[string]any)
		if !ok {
			return ""
		}
		v = o[k]
	}
	s, _ := v.(string)
	return s
}

// List is v as a list (nil otherwise).
func List(v any) []any { l, _ := v.([]any); return l }

// AsObj is v as an object (nil otherwise).
func AsObj(v any) Obj { m, _ := v.(map[string]any); return m }

// Ref is a Reference to r ("Type/id").
func Ref(r string) Obj { return Obj{"reference": r} }

// FirstCode returns the first coding's code of a CodeableConcept, or of the
// first of a list of them, with a given system ("" for any).
func FirstCode(cc any, system string) string {
	if l, ok := cc.([]any); ok {
		for _, c := range l {
			if code := FirstCode(c, system); code != "" {
				return code
			}
		}
		return ""
	}
	for _, c := range List(AsObj(cc)["coding"]) {
		co := AsObj(c)
		if system == "" || co["system"] == system {
			if code, _ := co["code"].(string); code != "" {
				return code
			}
		}
	}
	return ""
}

// HasCoding tells whether a CodeableConcept carries system|code (any
// system when system is "").
func HasCoding(cc any, system, code string) bool {
	for _, c := range List(AsObj(cc)["coding"]) {
		co := AsObj(c)
		if co["code"] == code && (system == "" || co["system"] == system) {
			return true
		}
	}
	return false
}

// Codeable is a CodeableConcept with one coding.
func Codeable(system, code, display string) Obj {
	c := Obj{"system": system, "code": code}
	if display != "" {
		c["display"] = display
	}
	return Obj{"coding": []any{c}}
}

// Extension finds the first extension with url.
func Extension(m Obj, url string) Obj {
	for _, e := range List(m["extension"]) {
		if eo := AsObj(e); eo["url"] == url {
			return eo
		}
	}
	return nil
}

// SetExtension replaces (or adds) the extension with ext's url.
func SetExtension(m Obj, ext Obj) {
	exts := List(m["extension"])
	for i, e := range exts {
		if AsObj(e)["url"] == ext["url"] {
			exts[i] = ext
			m["extension"] = exts
			return
		}
	}
	m["extension"] = append(exts, ext)
}

// ParseTime reads a FHIR instant, dateTime or date.
func ParseTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	for _, f := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.Parse(f, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
