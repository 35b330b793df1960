package search

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/fhir/search/internal/fhirpath"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Entry is one index entry of a resource: a value of one search parameter.
// A store keeps a resource's entries beside its current version and matches
// a store.Value against them with the rules of Match. Which fields are set
// depends on Kind:
//
//   - token: System and Code. System is "" when the value has none (a code,
//     boolean or id primitive, a Coding without system).
//   - reference: Ref, "Type/id".
//   - string: Text, normalised (see Normalize), and Raw, the value as
//     written, for :exact.
//   - uri: Text and Raw, both the value as written.
//   - date: Lo and Hi, in UTC, the interval the value covers at its
//     precision, Hi exclusive; Lo < Hi always. Bounds are whole
//     microseconds, so a backend may store them as such.
type Entry struct {
	Param  string
	Kind   store.ParamKind
	System string
	Code   string
	Ref    string
	Text   string
	Raw    string
	Lo, Hi time.Time
}

// Extract returns the index entries of a resource of type resourceType, for
// every parameter that applies to the type, ordered by parameter name and
// without duplicates. The body must be a JSON object whose resourceType is
// resourceType (an error wrapping store.ErrInvalid otherwise). Values that
// cannot be indexed — a malformed date, a contained or URN reference, a
// Timing — are left out rather than failing the write: validating resources
// is the profile layer's job.
func (r *Registry) Extract(resourceType string, body []byte) ([]Entry, error) {
	var res map[string]any
	if err := json.Unmarshal(body, &res); err != nil {
		return nil, fmt.Errorf("index %s: %w: %w", resourceType, store.ErrInvalid, err)
	}
	if rt, _ := res["resourceType"].(string); rt == "" || rt != resourceType {
		return nil, fmt.Errorf("index %s: %w: resourceType is %q", resourceType, store.ErrInvalid, rt)
	}
	r.mu.RLock()
	params := r.params(resourceType)
	r.mu.RUnlock()

	var out []Entry
	seen := map[Entry]struct{}{}
	add := func(e Entry) {
		if _, dup := seen[e]; dup {
			return
		}
		seen[e] = struct{}{}
		out = append(out, e)
	}
	for _, p := range params {
		for _, it := range p.expr.Eval(resourceType, res) {
			entries(p.def.Name, p.def.Kind, it, add)
		}
	}
	return out, nil
}

// entries turns one value found by an expression into entries of a
// parameter of the given kind, following the FHIR R4 tables of which data
// types each search type indexes.
func entries(name string, kind store.ParamKind, it fhirpath.Item, add func(Entry)) {
	switch kind {
	case store.KindToken:
		tokens(it.Value, func(system, code string) {
			add(Entry{Param: name, Kind: kind, System: system, Code: code})
		})
	case store.KindReference:
		if ref, ok := reference(it.Value); ok {
			add(Entry{Param: name, Kind: kind, Ref: ref})
		}
	case store.KindString:
		texts(it.Value, func(s string) {
			if t := Normalize(s); t != "" {
				add(Entry{Param: name, Kind: kind, Text: t, Raw: s})
			}
		})
	case store.KindURI:
		if s, ok := it.Value.(string); ok && s != "" {
			add(Entry{Param: name, Kind: kind, Text: s, Raw: s})
		}
	case store.KindDate:
		if lo, hi, ok := interval(it.Value); ok {
			add(Entry{Param: name, Kind: kind, Lo: lo, Hi: hi})
		}
	}
}

// tokens reads the (system, code) pairs of a token value: a code, id, string
// or boolean primitive (no system), a Coding, each Coding of a
// CodeableConcept, an Identifier (system, value) or a ContactPoint (system,
// value). CodeableConcept.text is not a token: FHIR searches it with :text,
// which Passerelle does not support.
func tokens(v any, emit func(system, code string)) {
	switch v := v.(type) {
	case string:
		if v != "" {
			emit("", v)
		}
	case bool:
		if v {
			emit("", "true")
		} else {
			emit("", "false")
		}
	case map[string]any:
		if codings, ok := v["coding"].([]any); ok {
			for _, c := range codings {
				if m, ok := c.(map[string]any); ok {
					coding(m, "code", emit)
				}
			}
			return
		}
		if _, ok := v["code"]; ok {
			coding(v, "code", emit)
			return
		}
		// Identifier and ContactPoint both carry system and value.
		coding(v, "value", emit)
	}
}

func coding(m map[string]any, codeKey string, emit func(system, code string)) {
	code, _ := m[codeKey].(string)
	if code == "" {
		return
	}
	system, _ := m["system"].(string)
	emit(system, code)
}

// reference reads the "Type/id" a Reference (its reference element) or a
// canonical or uri string points to.
func reference(v any) (string, bool) {
	var s string
	switch v := v.(type) {
	case string:
		s = v
	case map[string]any:
		s, _ = v["reference"].(string)
	}
	typ, id, ok := fhirpath.ParseReference(s)
	if !ok {
		return "", false
	}
	return typ + "/" + id, true
}

// stringParts lists the elements of HumanName and Address that string search
// covers (FHIR R4 3.1.1.4.3 names "any of the string elements").
var stringParts = []string{
	"text", "family", "given", "prefix", "suffix",
	"line", "city", "district", "state", "postalCode", "country",
}

// texts reads the strings of a string value: a primitive, or the parts of a
// HumanName or Address.
func texts(v any, emit func(string)) {
	switch v := v.(type) {
	case string:
		emit(v)
	case map[string]any:
		for _, k := range stringParts {
			switch x := v[k].(type) {
			case string:
				emit(x)
			case []any:
				for _, e := range x {
					if s, ok := e.(string); ok {
						emit(s)
					}
				}
			}
		}
	}
}

// interval reads the time interval of a date, dateTime or instant, or of a
// Period (an open end reaching FarPast or FarFuture). Timing is not indexed.
func interval(v any) (lo, hi time.Time, ok bool) {
	switch v := v.(type) {
	case string:
		lo, hi, err := parseDate(v)
		return lo, hi, err == nil && lo.Before(hi)
	case map[string]any:
		start, hasStart := v["start"].(string)
		end, hasEnd := v["end"].(string)
		if !hasStart && !hasEnd {
			return lo, hi, false
		}
		lo, hi = FarPast, FarFuture
		if hasStart {
			l, _, err := parseDate(start)
			if err != nil {
				return lo, hi, false
			}
			lo = l
		}
		if hasEnd {
			_, h, err := parseDate(end)
			if err != nil {
				return lo, hi, false
			}
			hi = h
		}
		return lo, hi, lo.Before(hi)
	}
	return lo, hi, false
}
