package search

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/fhir/search/internal/fhirpath"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Limits on one query, so that a request cannot make the store build an
// unbounded SQL statement.
const (
	// MaxCount is the largest accepted _count (store.Query's limit).
	MaxCount = 1000
	// MaxParams is the number of search criteria a query may carry,
	// repetitions included.
	MaxParams = 32
	// MaxValues is the number of comma-separated values of one criterion.
	MaxValues = 100
)

// Control parameters: the query parameters that steer the search rather
// than filter it.
const (
	// ParamCount sets the page size, 1 to MaxCount.
	ParamCount = "_count"
	// ParamCursor continues a search from the Page.Next of the previous
	// page. Passerelle's paging links carry it; clients treat it as opaque.
	ParamCursor = "_cursor"
	// ParamTotal asks for the number of matches when "accurate"; "none" and
	// "estimate" leave it out.
	ParamTotal = "_total"
	// ParamFormat is accepted for the JSON formats only, which are the only
	// ones Passerelle answers in; the HTTP layer handles it.
	ParamFormat = "_format"
)

// controlParams names the FHIR control parameters Passerelle does not
// support, with the reason given to the client. FHIR lets a server ignore
// them, but a client that asked for a sort or an include and silently got
// none would draw wrong conclusions, so they are refused.
var controlParams = map[string]string{
	"_sort":          "results come in a fixed order; _sort is not supported",
	"_include":       "_include is not supported",
	"_revinclude":    "_revinclude is not supported",
	"_summary":       "_summary is not supported",
	"_elements":      "_elements is not supported",
	"_contained":     "_contained is not supported",
	"_containedType": "_containedType is not supported",
	"_has":           "reverse chaining (_has) is not supported",
	"_list":          "_list is not supported",
	"_query":         "named queries (_query) are not supported",
	"_filter":        "_filter is not supported",
	"_text":          "_text is not supported",
	"_content":       "_content is not supported",
	"_type":          "_type is not supported",
	"_pretty":        "_pretty is not supported",
	"_page_token":    "use _cursor, from the response's next link",
}

// Parsed is a search request decoded from a query string.
type Parsed struct {
	// Type is the resource type searched.
	Type string
	// Params are the criteria, ANDed, sorted by parameter name; one query
	// string always gives the same list.
	Params []store.Param
	// Count is _count, or 0 when absent (the store's default page size).
	Count int
	// Cursor is _cursor, empty on a first page.
	Cursor string
	// Total is true for _total=accurate.
	Total bool
}

// Query returns the store query for tenant.
func (p Parsed) Query(tenant string) store.Query {
	return store.Query{
		Tenant: tenant,
		Type:   p.Type,
		Params: p.Params,
		Count:  p.Count,
		Cursor: p.Cursor,
		Total:  p.Total,
	}
}

// Error is a search parameter that cannot be honoured. It wraps
// store.ErrInvalid, so the FHIR API answers 400 with an OperationOutcome
// whose expression is Param.
type Error struct {
	// Param is the parameter as written in the query, modifier included
	// ("birthdate", "name:contains"); empty when the error is about the
	// resource type.
	Param string
	// Value is the offending value, if one is at fault.
	Value string
	// Msg says what is wrong.
	Msg string
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("search")
	if e.Param != "" {
		fmt.Fprintf(&b, " parameter %q", e.Param)
	}
	if e.Value != "" {
		fmt.Fprintf(&b, " value %q", e.Value)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns store.ErrInvalid.
func (e *Error) Unwrap() error { return store.ErrInvalid }

// ParseQuery decodes the query string of a search on resourceType.
//
// Handling is strict: FHIR allows a server to ignore parameters it does not
// know, but Passerelle refuses them (an *Error naming the parameter), as it
// refuses modifiers and control parameters it does not support, because a
// criterion silently dropped returns more patients' data than was asked for.
// Supported: the parameters of Params(resourceType); modifiers :exact on
// string parameters and :<Type> on reference parameters; _count, _cursor,
// _total and _format. Values: comma-separated for OR (escape a literal comma
// as \,); a parameter repeated is ANDed. A type the registry does not know
// cannot be searched.
func (r *Registry) ParseQuery(resourceType string, q url.Values) (Parsed, error) {
	out := Parsed{Type: resourceType}
	keys := slices.Sorted(maps.Keys(q))
	r.mu.RLock()
	defer r.mu.RUnlock()
	if _, known := r.byType[resourceType]; !known || resourceType == AllTypes {
		return Parsed{}, &Error{Msg: fmt.Sprintf("search on %q is not supported", resourceType)}
	}
	n := 0
	for _, key := range keys {
		values := q[key]
		if len(values) == 0 {
			return Parsed{}, &Error{Param: key, Msg: "no value"}
		}
		name, mod, hasMod := strings.Cut(key, ":")
		if strings.HasPrefix(name, "_") {
			handled, err := out.control(name, key, hasMod, values)
			if err != nil {
				return Parsed{}, err
			}
			if handled {
				continue
			}
		}
		if strings.Contains(name, ".") {
			return Parsed{}, &Error{Param: key, Msg: "chained parameters are not supported"}
		}
		p, ok := r.lookup(resourceType, name)
		if !ok {
			return Parsed{}, &Error{Param: key, Msg: fmt.Sprintf("unknown search parameter for %s", resourceType)}
		}
		if hasMod && mod == "missing" {
			return Parsed{}, &Error{Param: key, Msg: "the :missing modifier is not supported"}
		}
		for _, raw := range values {
			if n++; n > MaxParams {
				return Parsed{}, &Error{Param: key, Msg: fmt.Sprintf("more than %d search criteria", MaxParams)}
			}
			sp, err := parseParam(p.def, key, mod, hasMod, raw)
			if err != nil {
				return Parsed{}, err
			}
			out.Params = append(out.Params, sp)
		}
	}
	// Keys sort with their modifiers ("a-b" < "a:exact"); order by name so
	// that equal queries give equal parameter lists.
	slices.SortStableFunc(out.Params, func(a, b store.Param) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// control handles a control parameter; it returns false for a name that is
// not one (a search parameter starting with "_", such as _id).
func (p *Parsed) control(name, key string, hasMod bool, values []string) (bool, error) {
	switch name {
	case ParamCount, ParamCursor, ParamTotal, ParamFormat:
	default:
		if msg, ok := controlParams[name]; ok {
			return true, &Error{Param: key, Msg: msg}
		}
		return false, nil
	}
	if hasMod {
		return true, &Error{Param: key, Msg: "modifiers are not allowed on " + name}
	}
	if len(values) != 1 {
		return true, &Error{Param: key, Msg: name + " must be given once"}
	}
	v := values[0]
	switch name {
	case ParamCount:
		c, err := strconv.Atoi(v)
		if err != nil || c < 1 || c > MaxCount {
			return true, &Error{Param: key, Value: v, Msg: fmt.Sprintf("_count must be an integer from 1 to %d", MaxCount)}
		}
		p.Count = c
	case ParamCursor:
		if v == "" {
			return true, &Error{Param: key, Msg: "empty cursor"}
		}
		p.Cursor = v
	case ParamTotal:
		switch v {
		case "accurate":
			p.Total = true
		case "none", "estimate":
			p.Total = false
		default:
			return true, &Error{Param: key, Value: v, Msg: "_total must be none, estimate or accurate"}
		}
	case ParamFormat:
		switch v {
		case "json", "application/json", "application/fhir+json":
		default:
			return true, &Error{Param: key, Value: v, Msg: "only JSON is supported"}
		}
	}
	return true, nil
}

func parseParam(d Def, key, mod string, hasMod bool, raw string) (store.Param, error) {
	fail := func(value, msg string) error { return &Error{Param: key, Value: value, Msg: msg} }
	if hasMod {
		switch {
		case d.Kind == store.KindString && mod == "exact":
		case d.Kind == store.KindReference && fhirpath.IsTypeName(mod):
			if len(d.Targets) > 0 && !slices.Contains(d.Targets, mod) {
				return store.Param{}, fail("", fmt.Sprintf("%s is not a target type of %s", mod, d.Name))
			}
		case d.Kind == store.KindString && mod == "contains":
			return store.Param{}, fail("", "the :contains modifier is not supported; string search matches values that start with the given text")
		default:
			return store.Param{}, fail("", fmt.Sprintf("modifier :%s is not supported on %s parameters", mod, d.Kind))
		}
	}
	parts := splitEscaped(raw, ',')
	if len(parts) > MaxValues {
		return store.Param{}, fail("", fmt.Sprintf("more than %d values", MaxValues))
	}
	p := store.Param{Name: d.Name, Kind: d.Kind, Values: make([]store.Value, 0, len(parts))}
	for _, part := range parts {
		if part == "" {
			return store.Param{}, fail(raw, "empty value")
		}
		var v store.Value
		var err error
		switch d.Kind {
		case store.KindToken:
			v, err = tokenValue(part)
		case store.KindReference:
			v, err = referenceValue(d, mod, part)
		case store.KindString:
			v, err = stringValue(mod == "exact", part)
		case store.KindURI:
			v = store.Value{Text: unescape(part)}
		case store.KindDate:
			v, err = dateValue(part)
		default:
			err = fmt.Errorf("parameter type %s is not supported", d.Kind)
		}
		if err != nil {
			return store.Param{}, fail(unescape(part), err.Error())
		}
		p.Values = append(p.Values, v)
	}
	return p, nil
}

// tokenValue reads code, system|code, |code (no system) or system| (any code
// of the system).
func tokenValue(s string) (store.Value, error) {
	parts := splitEscaped(s, '|')
	switch len(parts) {
	case 1:
		return store.Value{Code: unescape(parts[0])}, nil
	case 2:
		system, code := unescape(parts[0]), unescape(parts[1])
		if system == "" && code == "" {
			return store.Value{}, fmt.Errorf("give a code, system|code, |code or system|")
		}
		return store.Value{System: &system, Code: code}, nil
	}
	return store.Value{}, fmt.Errorf("more than one unescaped \"|\"")
}

// referenceValue reads Type/id, a bare id (allowed when the parameter has a
// single target type or the :Type modifier names one) or an absolute URL
// ending in Type/id.
func referenceValue(d Def, mod, s string) (store.Value, error) {
	s = unescape(s)
	var typ, id string
	if strings.Contains(s, "/") {
		var ok bool
		typ, id, ok = fhirpath.ParseReference(s)
		if !ok {
			return store.Value{}, fmt.Errorf("not a reference: use Type/id")
		}
		if mod != "" && typ != mod {
			return store.Value{}, fmt.Errorf("reference to %s under the :%s modifier", typ, mod)
		}
	} else {
		if !fhirpath.IsID(s) {
			return store.Value{}, fmt.Errorf("not a valid id")
		}
		id = s
		switch {
		case mod != "":
			typ = mod
		case len(d.Targets) == 1:
			typ = d.Targets[0]
		default:
			return store.Value{}, fmt.Errorf("%s may point to several types: use Type/id", d.Name)
		}
	}
	if len(d.Targets) > 0 && !slices.Contains(d.Targets, typ) {
		return store.Value{}, fmt.Errorf("%s is not a target type of %s", typ, d.Name)
	}
	return store.Value{Ref: typ + "/" + id}, nil
}

func stringValue(exact bool, s string) (store.Value, error) {
	s = unescape(s)
	if exact {
		return store.Value{Text: s, Exact: true}, nil
	}
	t := Normalize(s)
	if t == "" {
		return store.Value{}, fmt.Errorf("empty value")
	}
	return store.Value{Text: t}, nil
}

// datePrefixes are FHIR's comparison prefixes (R4 3.1.1.4.1.1).
var datePrefixes = map[string]bool{
	"eq": true, "ne": true, "lt": true, "gt": true, "le": true, "ge": true,
	"sa": true, "eb": true, "ap": true,
}

// apMin is the smallest tolerance of the ap prefix, see apTolerance.
const apMin = 24 * time.Hour

// dateValue reads [prefix]date. For ap the interval is widened by the
// tolerance here, so that stores only test overlap.
func dateValue(s string) (store.Value, error) {
	s = unescape(s)
	prefix := "eq"
	if len(s) >= 2 && datePrefixes[s[:2]] {
		prefix, s = s[:2], s[2:]
	}
	// A "+" in a query string decodes to a space: a client that did not
	// escape "+01:00" still means it.
	if i := strings.LastIndexByte(s, ' '); i > 0 && strings.Contains(s, "T") {
		s = s[:i] + "+" + s[i+1:]
	}
	lo, hi, err := parseDate(s)
	if err != nil {
		return store.Value{}, fmt.Errorf("%v (use YYYY, YYYY-MM, YYYY-MM-DD or YYYY-MM-DDThh:mm[:ss][Z|±hh:mm], after an optional prefix eq, ne, lt, gt, le, ge, sa, eb or ap)", err)
	}
	if prefix == "ap" {
		d := apTolerance(lo, hi)
		lo, hi = lo.Add(-d), hi.Add(d)
	}
	return store.Value{Prefix: prefix, Lo: lo, Hi: hi}, nil
}

// apTolerance is the margin of "approximately": a tenth of the interval the
// value covers (about five weeks for a year, three days for a month), and at
// least a day. FHIR suggests 10 % of the distance to now; that would make a
// query's meaning depend on the clock and forbid comparing implementations,
// so Passerelle anchors it on the value's own precision.
func apTolerance(lo, hi time.Time) time.Duration {
	return max(hi.Sub(lo)/10, apMin)
}

// splitEscaped splits s at the separators not preceded by a backslash; the
// parts keep their escapes.
func splitEscaped(s string, sep byte) []string {
	var parts []string
	start := 0
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '\\':
			i++
		case sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// unescape removes FHIR's search escapes: \, \| \$ and \\ (R4 3.1.1.5.7).
// Other backslashes are kept as written.
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			switch s[i+1] {
			case ',', '|', '$', '\\':
				i++
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}
