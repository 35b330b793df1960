// Package fhirpath parses and evaluates the small part of FHIRPath that the
// FHIR R4 search parameter expressions of Passerelle's resource types use:
// paths (Task.owner), unions (a | b), parentheses, type casts (x as T,
// x.as(T), x.ofType(T)) on choice elements, and two forms of where():
// where(resolve() is T) and where(field = 'literal').
//
// Anything else is a parse error, so that the registry generator drops the
// search parameter instead of indexing it wrongly.
package fhirpath

import (
	"fmt"
	"slices"
	"strings"
)

// maxDepth bounds parenthesis nesting: expressions come from configuration,
// but a fuzzer (or a broken profile) must not exhaust the stack.
const maxDepth = 32

// maxLen bounds the source length for the same reason.
const maxLen = 4096

// Item is one node of an evaluation result: a value decoded from JSON
// (map[string]any, []any elements, string, bool, float64) and its FHIR type
// name when known. The type is known for choice elements (effectiveDateTime
// is a "dateTime") and after a cast; it is empty otherwise.
type Item struct {
	Value any
	Type  string
}

// Expr is a parsed expression.
type Expr struct {
	root node
}

// Parse parses src. It fails on any construct outside the supported subset.
func Parse(src string) (*Expr, error) {
	if len(src) > maxLen {
		return nil, fmt.Errorf("expression longer than %d bytes", maxLen)
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks}
	n, err := p.union(0)
	if err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, fmt.Errorf("unexpected %s at offset %d", t, t.pos)
	}
	return &Expr{root: n}, nil
}

// String prints the expression in a canonical form that Parse accepts and
// that prints again identically.
func (e *Expr) String() string {
	var b strings.Builder
	e.root.write(&b)
	return b.String()
}

// Roots returns the type names the expression's paths start from
// (Observation, Resource…), sorted and without duplicates.
func (e *Expr) Roots() []string {
	var out []string
	e.root.roots(&out)
	slices.Sort(out)
	return slices.Compact(out)
}

// Eval evaluates the expression on a resource of the given type. Paths rooted
// at another type yield nothing, so one expression may serve several types as
// the multi-resource FHIR definitions do; Resource and DomainResource match
// every type.
func (e *Expr) Eval(resourceType string, resource map[string]any) []Item {
	c := &evalCtx{typ: resourceType, res: resource}
	return e.root.eval(c)
}

type evalCtx struct {
	typ string
	res map[string]any
}

// node is an expression producing a collection from the resource.
type node interface {
	eval(c *evalCtx) []Item
	write(b *strings.Builder)
	roots(out *[]string)
}

type union struct{ parts []node }

func (u *union) eval(c *evalCtx) []Item {
	var out []Item
	for _, p := range u.parts {
		out = append(out, p.eval(c)...)
	}
	return out
}

func (u *union) write(b *strings.Builder) {
	for i, p := range u.parts {
		if i > 0 {
			b.WriteString(" | ")
		}
		p.write(b)
	}
}

func (u *union) roots(out *[]string) {
	for _, p := range u.parts {
		p.roots(out)
	}
}

// term is a root (a type name or a parenthesised expression), steps, and
// trailing "as T" casts.
type term struct {
	rootType string // set when the term starts with a type name
	inner    node   // set when it starts with "("
	steps    []step
	casts    []string
}

func (t *term) eval(c *evalCtx) []Item {
	var cur []Item
	if t.inner != nil {
		cur = t.inner.eval(c)
	} else {
		if t.rootType != c.typ && t.rootType != "Resource" && t.rootType != "DomainResource" {
			return nil
		}
		cur = []Item{{Value: c.res, Type: c.typ}}
	}
	for _, s := range t.steps {
		if len(cur) == 0 {
			return nil
		}
		cur = s.apply(cur)
	}
	for _, typ := range t.casts {
		cur = ofType(cur, typ)
	}
	return cur
}

func (t *term) write(b *strings.Builder) {
	if t.inner != nil {
		b.WriteByte('(')
		t.inner.write(b)
		b.WriteByte(')')
	} else {
		b.WriteString(t.rootType)
	}
	for _, s := range t.steps {
		s.write(b)
	}
	for _, typ := range t.casts {
		b.WriteString(" as ")
		b.WriteString(typ)
	}
}

func (t *term) roots(out *[]string) {
	if t.inner != nil {
		t.inner.roots(out)
		return
	}
	*out = append(*out, t.rootType)
}

// step transforms a collection.
type step interface {
	apply(in []Item) []Item
	write(b *strings.Builder)
}

// field navigates to a child element.
type field string

func (f field) apply(in []Item) []Item {
	var out []Item
	for _, it := range in {
		out = child(out, it, string(f))
	}
	return out
}

func (f field) write(b *strings.Builder) {
	b.WriteByte('.')
	b.WriteString(string(f))
}

// cast is .as(T) or .ofType(T); both keep the items of type T. FHIRPath's
// as() fails on a collection of several items where ofType() filters, but
// search indexing wants every value, so both filter.
type cast struct {
	fn  string // "as" or "ofType"
	typ string
}

func (s cast) apply(in []Item) []Item { return ofType(in, s.typ) }

func (s cast) write(b *strings.Builder) {
	b.WriteByte('.')
	b.WriteString(s.fn)
	b.WriteByte('(')
	b.WriteString(s.typ)
	b.WriteByte(')')
}

// whereResolveIs keeps the References whose target is of the given type,
// read from the reference string: Passerelle does not resolve references
// while indexing, and R4 definitions use resolve() only for that test.
type whereResolveIs string

func (w whereResolveIs) apply(in []Item) []Item {
	var out []Item
	for _, it := range in {
		m, ok := it.Value.(map[string]any)
		if !ok {
			continue
		}
		s, ok := m["reference"].(string)
		if !ok {
			continue
		}
		if typ, _, ok := ParseReference(s); ok && typ == string(w) {
			out = append(out, it)
		}
	}
	return out
}

func (w whereResolveIs) write(b *strings.Builder) {
	b.WriteString(".where(resolve() is ")
	b.WriteString(string(w))
	b.WriteString(")")
}

// whereEq keeps the items whose sub-path holds a string equal to lit
// (telecom.where(system='email')).
type whereEq struct {
	path []string
	lit  string
}

func (w whereEq) apply(in []Item) []Item {
	var out []Item
	for _, it := range in {
		cur := []Item{it}
		for _, f := range w.path {
			var next []Item
			for _, c := range cur {
				next = child(next, c, f)
			}
			cur = next
		}
		for _, c := range cur {
			if s, ok := c.Value.(string); ok && s == w.lit {
				out = append(out, it)
				break
			}
		}
	}
	return out
}

func (w whereEq) write(b *strings.Builder) {
	b.WriteString(".where(")
	b.WriteString(strings.Join(w.path, "."))
	b.WriteString(" = ")
	writeString(b, w.lit)
	b.WriteString(")")
}

func writeString(b *strings.Builder, s string) {
	b.WriteByte('\'')
	for _, r := range s {
		switch r {
		case '\'', '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '\n':
			b.WriteString(`\n`)
		case '\r':
			b.WriteString(`\r`)
		case '\t':
			b.WriteString(`\t`)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('\'')
}

// child appends to out the values of element name of it. FHIR JSON names a
// choice element after its type (effective[x] is effectiveDateTime or
// effectivePeriod…), so when name itself is absent the keys name+Type are
// taken, with Type recorded on the item. Valid FHIR JSON never holds both
// name and a name+Type variant of the same choice.
func child(out []Item, it Item, name string) []Item {
	m, ok := it.Value.(map[string]any)
	if !ok {
		return out
	}
	if v, ok := m[name]; ok {
		return appendValues(out, v, "")
	}
	var keys []string
	for k := range m {
		if len(k) > len(name) && strings.HasPrefix(k, name) {
			if _, ok := choiceTypes[k[len(name):]]; ok {
				keys = append(keys, k)
			}
		}
	}
	// Map order is random; keep results deterministic when a malformed
	// resource carries several variants.
	slices.Sort(keys)
	for _, k := range keys {
		out = appendValues(out, m[k], choiceTypes[k[len(name):]])
	}
	return out
}

func appendValues(out []Item, v any, typ string) []Item {
	switch v := v.(type) {
	case nil:
		return out
	case []any:
		for _, e := range v {
			// FHIR JSON pads primitive arrays with null where only an
			// extension is present.
			if e != nil {
				out = append(out, Item{Value: e, Type: typ})
			}
		}
		return out
	default:
		return append(out, Item{Value: v, Type: typ})
	}
}

// ofType keeps the items of type typ. Items of unknown type (elements that
// are not choices) are kept when their JSON shape fits: an object for a
// complex type, a scalar for a primitive one.
func ofType(in []Item, typ string) []Item {
	var out []Item
	for _, it := range in {
		if it.Type != "" {
			if it.Type == typ {
				out = append(out, it)
			}
			continue
		}
		_, isObj := it.Value.(map[string]any)
		if isObj == isComplex(typ) {
			out = append(out, Item{Value: it.Value, Type: typ})
		}
	}
	return out
}

func isComplex(typ string) bool {
	return typ != "" && typ[0] >= 'A' && typ[0] <= 'Z'
}

// choiceTypes maps the JSON suffix of a choice element to its FHIR type: the
// types that occur in R4 [x] elements.
var choiceTypes = func() map[string]string {
	names := []string{
		"base64Binary", "boolean", "canonical", "code", "date", "dateTime",
		"decimal", "id", "instant", "integer", "markdown", "oid", "positiveInt",
		"string", "time", "unsignedInt", "uri", "url", "uuid",
		"Address", "Age", "Annotation", "Attachment", "CodeableConcept",
		"Coding", "ContactDetail", "ContactPoint", "Contributor", "Count",
		"DataRequirement", "Distance", "Dosage", "Duration", "Expression",
		"HumanName", "Identifier", "Meta", "Money", "ParameterDefinition",
		"Period", "Quantity", "Range", "Ratio", "Reference", "RelatedArtifact",
		"SampledData", "Signature", "Timing", "TriggerDefinition",
		"UsageContext",
	}
	m := make(map[string]string, len(names))
	for _, n := range names {
		m[strings.ToUpper(n[:1])+n[1:]] = n
	}
	return m
}()

// ParseReference reads the target of a FHIR reference or canonical:
// "Patient/123", "Patient/123/_history/2", "https://host/fhir/Patient/123" and
// "https://host/Questionnaire/q|1.0" give their type and id. Contained ("#x"),
// URN and other references give ok == false.
func ParseReference(s string) (typ, id string, ok bool) {
	if i := strings.IndexByte(s, '|'); i >= 0 {
		s = s[:i]
	}
	if i := strings.IndexByte(s, '#'); i >= 0 {
		s = s[:i]
	}
	s = strings.TrimRight(s, "/")
	segs := strings.Split(s, "/")
	if n := len(segs); n >= 4 && segs[n-2] == "_history" {
		segs = segs[:n-2]
	}
	n := len(segs)
	if n < 2 {
		return "", "", false
	}
	typ, id = segs[n-2], segs[n-1]
	if !IsTypeName(typ) || !IsID(id) {
		return "", "", false
	}
	return typ, id, true
}

// IsTypeName reports whether s looks like a FHIR resource type name.
func IsTypeName(s string) bool {
	if s == "" || len(s) > 64 || s[0] < 'A' || s[0] > 'Z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// IsID reports whether s is a valid FHIR id: [A-Za-z0-9\-\.]{1,64}.
func IsID(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '.') {
			return false
		}
	}
	return true
}

// ParseFor parses the parts of a union expression that apply to resourceType:
// those whose path starts with resourceType, Resource or DomainResource. FHIR
// shares one definition among many types ("AllergyIntolerance.code |
// Condition.code | …"); keeping only the relevant parts keeps the stored
// expression short and lets a part for another type use syntax this package
// does not support. It returns an error when no part applies or a relevant
// part does not parse.
func ParseFor(src, resourceType string) (*Expr, error) {
	var parts []node
	for _, part := range SplitUnion(src) {
		root := rootName(part)
		if root != resourceType && root != "Resource" && root != "DomainResource" {
			continue
		}
		e, err := Parse(part)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", part, err)
		}
		parts = append(parts, e.root)
	}
	switch len(parts) {
	case 0:
		return nil, fmt.Errorf("no part of the expression applies to %s", resourceType)
	case 1:
		return &Expr{root: parts[0]}, nil
	}
	return &Expr{root: &union{parts: parts}}, nil
}

// SplitUnion splits src at the "|" operators outside parentheses and string
// literals and trims the parts.
func SplitUnion(src string) []string {
	var parts []string
	depth, start := 0, 0
	for i := 0; i < len(src); i++ {
		switch src[i] {
		case '\'':
			// Skip the literal, honouring backslash escapes.
			for i++; i < len(src) && src[i] != '\''; i++ {
				if src[i] == '\\' {
					i++
				}
			}
		case '(':
			depth++
		case ')':
			depth--
		case '|':
			if depth == 0 {
				parts = append(parts, strings.TrimSpace(src[start:i]))
				start = i + 1
			}
		}
	}
	return append(parts, strings.TrimSpace(src[start:]))
}

// rootName returns the identifier a union part starts with, after any
// opening parentheses.
func rootName(part string) string {
	part = strings.TrimLeft(part, "( \t\r\n")
	i := 0
	for i < len(part) && isIdentPart(part[i]) {
		i++
	}
	return part[:i]
}
