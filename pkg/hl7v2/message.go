package hl7v2

import (
	"fmt"
	"strconv"
	"strings"
)

// Message is an HL7 v2 message.
type Message struct {
	Segments []Segment
}

// Segment is one segment: its id (MSH, PID, ZBE…) and its fields.
// Fields[n-1] is field n.
type Segment struct {
	ID     string
	Fields []Field
}

// Field is a field's repetitions (HL7 v2.5 chapter 2). An empty field
// is nil.
type Field []Repetition

// Repetition is one occurrence of a field: its components.
type Repetition []Component

// Component is one component: its sub-components, unescaped.
type Component []string

// Delimiters are the separators and escape character of a message, read from
// MSH-1 and MSH-2. A zero byte means the message declares no such character.
type Delimiters struct {
	Field, Component, Repetition, Escape, SubComponent byte
}

// DefaultDelimiters are the delimiters HL7 v2.5 recommends: |^~\&.
var DefaultDelimiters = Delimiters{Field: '|', Component: '^', Repetition: '~', Escape: '\\', SubComponent: '&'}

// encodingChars returns MSH-2 for d.
func (d Delimiters) encodingChars() string {
	b := make([]byte, 0, 4)
	for _, c := range []byte{d.Component, d.Repetition, d.Escape, d.SubComponent} {
		if c == 0 {
			break
		}
		b = append(b, c)
	}
	return string(b)
}

// NewField returns a field of one repetition whose components hold the given
// values, each as a single sub-component. When every value is empty it
// returns nil, the empty field, as Parse does.
func NewField(components ...string) Field {
	empty := true
	for _, c := range components {
		if c != "" {
			empty = false
			break
		}
	}
	if empty {
		return nil
	}
	r := make(Repetition, len(components))
	for i, c := range components {
		r[i] = Component{c}
	}
	return Field{r}
}

// Sub returns sub-component i (1-based), or "" when absent.
func (c Component) Sub(i int) string {
	if i < 1 {
		i = 1
	}
	if i > len(c) {
		return ""
	}
	return c[i-1]
}

// Component returns component i (1-based), or nil when absent.
func (r Repetition) Component(i int) Component {
	if i < 1 {
		i = 1
	}
	if i > len(r) {
		return nil
	}
	return r[i-1]
}

// Get returns sub-component sub of component comp (both 1-based; 0 means 1).
func (r Repetition) Get(comp, sub int) string { return r.Component(comp).Sub(sub) }

// Rep returns repetition i (1-based), or nil when absent.
func (f Field) Rep(i int) Repetition {
	if i < 1 {
		i = 1
	}
	if i > len(f) {
		return nil
	}
	return f[i-1]
}

// Get returns the value at repetition rep, component comp, sub-component sub
// (all 1-based; 0 means 1).
func (f Field) Get(rep, comp, sub int) string { return f.Rep(rep).Component(comp).Sub(sub) }

// Value returns the first sub-component of the first component of the first
// repetition: the whole value of a simple field.
func (f Field) Value() string { return f.Get(1, 1, 1) }

// IsEmpty reports whether every leaf of f is empty.
func (f Field) IsEmpty() bool {
	for _, r := range f {
		for _, c := range r {
			for _, s := range c {
				if s != "" {
					return false
				}
			}
		}
	}
	return true
}

// Field returns field n (HL7 numbering, 1-based), or nil when absent.
func (s *Segment) Field(n int) Field {
	if s == nil || n < 1 || n > len(s.Fields) {
		return nil
	}
	return s.Fields[n-1]
}

// Get returns the value of field, repetition, component and sub-component
// (1-based; 0 means 1 for the last three).
func (s *Segment) Get(field, rep, comp, sub int) string {
	return s.Field(field).Get(rep, comp, sub)
}

// SetField sets field n (1-based), adding empty fields before it as needed.
func (s *Segment) SetField(n int, f Field) {
	if n < 1 {
		return
	}
	for len(s.Fields) < n {
		s.Fields = append(s.Fields, NewField())
	}
	s.Fields[n-1] = f
}

// Segment returns the first segment with the given id, or nil.
func (m *Message) Segment(id string) *Segment {
	for i := range m.Segments {
		if m.Segments[i].ID == id {
			return &m.Segments[i]
		}
	}
	return nil
}

// All returns every segment with the given id, in message order. The
// pointers refer to m's own segments.
func (m *Message) All(id string) []*Segment {
	var out []*Segment
	for i := range m.Segments {
		if m.Segments[i].ID == id {
			out = append(out, &m.Segments[i])
		}
	}
	return out
}

// Nth returns occurrence n (1-based) of the segments with the given id, or nil.
func (m *Message) Nth(id string, n int) *Segment {
	if n < 1 {
		n = 1
	}
	for i := range m.Segments {
		if m.Segments[i].ID == id {
			n--
			if n == 0 {
				return &m.Segments[i]
			}
		}
	}
	return nil
}

// Value returns the unescaped value at occurrence segIndex of segment seg,
// field, repetition rep, component comp and sub-component sub, all 1-based (0
// means 1), or "" when absent.
func (m *Message) Value(seg string, segIndex, field, rep, comp, sub int) string {
	return m.Nth(seg, segIndex).Get(field, rep, comp, sub)
}

// Path addresses one value of a message; see ParsePath.
type Path struct {
	Segment      string
	SegmentIndex int // occurrence of the segment, 1-based
	Field        int
	Repetition   int
	Component    int
	SubComponent int
}

// ParsePath parses a path of the form SEG[n]-F[r].C.S, where everything after
// the field number is optional and the bracketed numbers are 1-based
// occurrences: "PID-3[2].4.2" is the second sub-component of the fourth
// component of the second repetition of PID-3, "DG1[2]-3.1" the code of the
// second DG1.
func ParsePath(s string) (Path, error) {
	p := Path{SegmentIndex: 1, Repetition: 1, Component: 1, SubComponent: 1}
	bad := func(why string) (Path, error) { return Path{}, fmt.Errorf("hl7v2: path %q: %s", s, why) }
	if len(s) < 3 || !isSegmentID(s[:3]) {
		return bad("want a three-character segment id")
	}
	p.Segment, s = s[:3], s[3:]
	var ok bool
	if p.SegmentIndex, s, ok = bracket(s, 1); !ok {
		return bad("bad segment occurrence")
	}
	if s == "" {
		return bad("missing field number")
	}
	if s[0] != '-' && s[0] != '.' {
		return bad("want '-' after the segment")
	}
	if p.Field, s, ok = number(s[1:]); !ok {
		return bad("bad field number")
	}
	if p.Repetition, s, ok = bracket(s, 1); !ok {
		return bad("bad repetition")
	}
	if s != "" {
		if s[0] != '.' {
			return bad("want '.' before the component")
		}
		if p.Component, s, ok = number(s[1:]); !ok {
			return bad("bad component")
		}
	}
	if s != "" {
		if s[0] != '.' {
			return bad("want '.' before the sub-component")
		}
		if p.SubComponent, s, ok = number(s[1:]); !ok {
			return bad("bad sub-component")
		}
	}
	if s != "" {
		return bad("trailing text")
	}
	return p, nil
}

func number(s string) (int, string, bool) {
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	if i == 0 || i > 6 {
		return 0, s, false
	}
	n, _ := strconv.Atoi(s[:i])
	return n, s[i:], n >= 1
}

func bracket(s string, def int) (int, string, bool) {
	if s == "" || s[0] != '[' {
		return def, s, true
	}
	n, rest, ok := number(s[1:])
	if !ok || rest == "" || rest[0] != ']' {
		return 0, s, false
	}
	return n, rest[1:], true
}

// String returns p in the form ParsePath reads.
func (p Path) String() string {
	var b strings.Builder
	b.WriteString(p.Segment)
	if p.SegmentIndex > 1 {
		fmt.Fprintf(&b, "[%d]", p.SegmentIndex)
	}
	fmt.Fprintf(&b, "-%d", p.Field)
	if p.Repetition > 1 {
		fmt.Fprintf(&b, "[%d]", p.Repetition)
	}
	fmt.Fprintf(&b, ".%d.%d", max(p.Component, 1), max(p.SubComponent, 1))
	return b.String()
}

// At returns the value p addresses, or "" when absent.
func (m *Message) At(p Path) string {
	return m.Value(p.Segment, p.SegmentIndex, p.Field, p.Repetition, p.Component, p.SubComponent)
}

// Get returns the unescaped value at path (see ParsePath), or "" when the
// value is absent. A malformed path also yields ""; check paths that do not
// come from code with ParsePath.
func (m *Message) Get(path string) string {
	p, err := ParsePath(path)
	if err != nil {
		return ""
	}
	return m.At(p)
}

// Delimiters returns the delimiters that MSH-1 and MSH-2 declare, or
// DefaultDelimiters when the message has no usable MSH.
func (m *Message) Delimiters() Delimiters {
	d, _ := m.delimiters()
	return d
}

// delimiters also returns the MSH-2 text to write back: the sender's own,
// which may carry a fifth (truncation) character.
func (m *Message) delimiters() (Delimiters, string) {
	if len(m.Segments) == 0 || m.Segments[0].ID != "MSH" {
		return DefaultDelimiters, DefaultDelimiters.encodingChars()
	}
	msh := &m.Segments[0]
	sep := msh.Field(1).Value()
	if len(sep) != 1 {
		return DefaultDelimiters, DefaultDelimiters.encodingChars()
	}
	enc := msh.Field(2).Value()
	d, err := delimitersFrom(sep[0], enc)
	if err != "" {
		return DefaultDelimiters, DefaultDelimiters.encodingChars()
	}
	return d, enc
}

// Charset returns the character set MSH-18 names, normalised ("UNICODE
// UTF-8", "8859/1", "8859/15", "ASCII"); "UNICODE UTF-8" when MSH-18 is empty
// or names a set this package does not support.
func (m *Message) Charset() string {
	cs, _ := charsetNamed(m.Segment("MSH").Get(18, 1, 1, 1))
	return cs.name()
}

func (m *Message) charset() charset {
	if len(m.Segments) == 0 || m.Segments[0].ID != "MSH" {
		return csUTF8
	}
	cs, _ := charsetNamed(m.Segments[0].Get(18, 1, 1, 1))
	return cs
}

// isSegmentID reports whether s is three upper-case ASCII letters or digits
// (HL7 v2.5 chapter 2, segment definitions).
func isSegmentID(s string) bool {
	if len(s) != 3 {
		return false
	}
	for i := 0; i < 3; i++ {
		c := s[i]
		if (c < 'A' || c > 'Z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// delimitersFrom validates MSH-1 and MSH-2. The encoding characters are
// accepted in full (four, or five with the truncation character of HL7 v2.7,
// which v2.5 does not use and which is therefore data here), or as a prefix of
// the recommended "^~\&": only then is a short MSH-2 unambiguous, the missing
// characters being unused. It returns a reason when invalid.
func delimitersFrom(sep byte, enc string) (Delimiters, string) {
	if !isDelimiterChar(sep) {
		return Delimiters{}, "MSH-1 field separator must be a punctuation character"
	}
	switch {
	case len(enc) == 0:
		return Delimiters{}, "MSH-2 encoding characters missing"
	case len(enc) > 5:
		return Delimiters{}, "MSH-2 encoding characters: more than five characters"
	case len(enc) < 4 && !strings.HasPrefix(`^~\&`, enc):
		return Delimiters{}, "MSH-2 encoding characters incomplete and not the recommended ^~\\&"
	}
	var seen [256]bool
	seen[sep] = true
	for i := 0; i < len(enc); i++ {
		c := enc[i]
		if !isDelimiterChar(c) {
			return Delimiters{}, "MSH-2 encoding characters must be punctuation characters"
		}
		if seen[c] {
			return Delimiters{}, "MSH-1 and MSH-2 delimiters must be distinct"
		}
		seen[c] = true
	}
	d := Delimiters{Field: sep}
	dst := []*byte{&d.Component, &d.Repetition, &d.Escape, &d.SubComponent}
	for i := 0; i < len(enc) && i < 4; i++ {
		*dst[i] = enc[i]
	}
	return d, ""
}

// isDelimiterChar reports whether c may serve as a delimiter: printable ASCII
// punctuation, so that it can never be confused with data letters, digits,
// spaces or segment terminators.
func isDelimiterChar(c byte) bool {
	return c > ' ' && c < 0x7f &&
		!(c >= '0' && c <= '9') && !(c >= 'A' && c <= 'Z') && !(c >= 'a' && c <= 'z')
}
