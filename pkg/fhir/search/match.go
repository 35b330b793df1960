package search

import (
	"strings"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Match reports whether index entry e satisfies search value v of a
// parameter of the given kind. It is the reference for store backends: the
// package documentation spells the same rules out as SQL-friendly
// comparisons, and the store conformance suite can check a backend against
// it. The caller matches parameter names; an entry of another kind never
// matches.
func Match(v store.Value, kind store.ParamKind, e Entry) bool {
	if e.Kind != kind {
		return false
	}
	switch kind {
	case store.KindToken:
		if v.System != nil && e.System != *v.System {
			return false
		}
		// system| matches any code of the system.
		return e.Code == v.Code || v.System != nil && *v.System != "" && v.Code == ""
	case store.KindReference:
		return e.Ref == v.Ref
	case store.KindString:
		if v.Exact {
			return e.Raw == v.Text
		}
		return strings.HasPrefix(e.Text, v.Text)
	case store.KindURI:
		return e.Text == v.Text
	case store.KindDate:
		return matchDate(v, e)
	}
	return false
}

// matchDate compares the entry interval [e.Lo, e.Hi) with the value
// interval [v.Lo, v.Hi), both half-open.
func matchDate(v store.Value, e Entry) bool {
	contained := !e.Lo.Before(v.Lo) && !e.Hi.After(v.Hi)
	switch v.Prefix {
	case "", "eq":
		return contained
	case "ne":
		return !contained
	case "gt":
		return e.Hi.After(v.Hi)
	case "lt":
		return e.Lo.Before(v.Lo)
	case "ge":
		return e.Hi.After(v.Lo)
	case "le":
		return e.Lo.Before(v.Hi)
	case "sa":
		return !e.Lo.Before(v.Hi)
	case "eb":
		return !e.Hi.After(v.Lo)
	case "ap":
		return e.Lo.Before(v.Hi) && e.Hi.After(v.Lo)
	}
	return false
}
