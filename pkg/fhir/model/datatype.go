package model

import (
	"encoding/json"
	"strings"
	"time"
)

// Reference is a FHIR Reference.
type Reference struct {
	Reference  string      `json:"reference"`
	Type       string      `json:"type"`
	Identifier *Identifier `json:"identifier"`
	Display    string      `json:"display"`
	rest       rest
}

// Ref returns a Reference to r ("Type/id").
func Ref(r string) *Reference { return &Reference{Reference: r} }

// parts splits a literal reference into type and id: "Patient/p1",
// "https://x/fhir/Patient/p1" and "Patient/p1/_history/2" give Patient, p1;
// "#contained" and "urn:uuid:..." give nothing.
func (r *Reference) parts() (typ, id string) {
	if r == nil {
		return "", ""
	}
	s := r.Reference
	if i := strings.Index(s, "/_history/"); i >= 0 {
		s = s[:i]
	}
	if strings.HasPrefix(s, "#") || strings.HasPrefix(s, "urn:") {
		return "", ""
	}
	i := strings.LastIndexByte(s, '/')
	if i <= 0 {
		return "", ""
	}
	typ, id = s[:i], s[i+1:]
	if j := strings.LastIndexByte(typ, '/'); j >= 0 {
		typ = typ[j+1:]
	}
	return typ, id
}

// ID is the id the reference points to ("" for a contained, urn: or
// logical reference, or a nil one).
func (r *Reference) ID() string { _, id := r.parts(); return id }

// ResourceType is the resource type the reference points to: the type of
// the literal reference, else its type element. (The method cannot be Type:
// that is the element's name.)
func (r *Reference) ResourceType() string {
	if t, _ := r.parts(); t != "" {
		return t
	}
	if r == nil {
		return ""
	}
	return r.Type
}

// String is the literal reference ("" for a nil one).
func (r *Reference) String() string {
	if r == nil {
		return ""
	}
	return r.Reference
}

// UnmarshalJSON decodes a Reference, keeping what it does not name.
func (r *Reference) UnmarshalJSON(b []byte) (err error) { r.rest, err = decodeObject(b, r); return }

// MarshalJSON encodes a Reference with what it did not name.
func (r Reference) MarshalJSON() ([]byte, error) { return encodeObject(&r, r.rest) }

// Coding is a FHIR Coding.
type Coding struct {
	System  string `json:"system"`
	Version string `json:"version"`
	Code    string `json:"code"`
	Display string `json:"display"`
	rest    rest
}

// UnmarshalJSON decodes a Coding, keeping what it does not name.
func (c *Coding) UnmarshalJSON(b []byte) (err error) { c.rest, err = decodeObject(b, c); return }

// MarshalJSON encodes a Coding with what it did not name.
func (c Coding) MarshalJSON() ([]byte, error) { return encodeObject(&c, c.rest) }

// CodeableConcept is a FHIR CodeableConcept.
type CodeableConcept struct {
	Coding []Coding `json:"coding"`
	Text   string   `json:"text"`
	rest   rest
}

// Codeable returns a CodeableConcept of one coding (display left out when
// empty).
func Codeable(system, code, display string) *CodeableConcept {
	return &CodeableConcept{Coding: []Coding{{System: system, Code: code, Display: display}}}
}

// Code returns the code of the first coding with system that has one (any
// system when system is ""), "" when none.
func (c *CodeableConcept) Code(system string) string {
	if c == nil {
		return ""
	}
	for _, co := range c.Coding {
		if (system == "" || co.System == system) && co.Code != "" {
			return co.Code
		}
	}
	return ""
}

// Has tells whether the concept carries system|code (any system when
// system is "").
func (c *CodeableConcept) Has(system, code string) bool {
	if c == nil {
		return false
	}
	for _, co := range c.Coding {
		if co.Code == code && (system == "" || co.System == system) {
			return true
		}
	}
	return false
}

// Display is the first coding's display ("" when none).
func (c *CodeableConcept) Display() string {
	if c == nil || len(c.Coding) == 0 {
		return ""
	}
	return c.Coding[0].Display
}

// FirstCode returns the first code with system of a list of concepts
// (performerType, category), "" when none.
func FirstCode(ccs []CodeableConcept, system string) string {
	for i := range ccs {
		if c := ccs[i].Code(system); c != "" {
			return c
		}
	}
	return ""
}

// UnmarshalJSON decodes a CodeableConcept, keeping what it does not name.
func (c *CodeableConcept) UnmarshalJSON(b []byte) (err error) {
	c.rest, err = decodeObject(b, c)
	return
}

// MarshalJSON encodes a CodeableConcept with what it did not name.
func (c CodeableConcept) MarshalJSON() ([]byte, error) { return encodeObject(&c, c.rest) }

// Period is a FHIR Period: dateTimes kept as written.
type Period struct {
	Start string `json:"start"`
	End   string `json:"end"`
	rest  rest
}

// StartTime is the parsed start (false when absent or unreadable).
func (p *Period) StartTime() (time.Time, bool) {
	if p == nil {
		return time.Time{}, false
	}
	return ParseDateTime(p.Start)
}

// EndTime is the parsed end (false when absent or unreadable).
func (p *Period) EndTime() (time.Time, bool) {
	if p == nil {
		return time.Time{}, false
	}
	return ParseDateTime(p.End)
}

// Ended tells whether the period has an end.
func (p *Period) Ended() bool { return p != nil && p.End != "" }

// UnmarshalJSON decodes a Period, keeping what it does not name.
func (p *Period) UnmarshalJSON(b []byte) (err error) { p.rest, err = decodeObject(b, p); return }

// MarshalJSON encodes a Period with what it did not name.
func (p Period) MarshalJSON() ([]byte, error) { return encodeObject(&p, p.rest) }

// Identifier is a FHIR Identifier.
type Identifier struct {
	Use    string           `json:"use"`
	Type   *CodeableConcept `json:"type"`
	System string           `json:"system"`
	Value  string           `json:"value"`
	Period *Period          `json:"period"`
	rest   rest
}

// UnmarshalJSON decodes an Identifier, keeping what it does not name.
func (i *Identifier) UnmarshalJSON(b []byte) (err error) { i.rest, err = decodeObject(b, i); return }

// MarshalJSON encodes an Identifier with what it did not name.
func (i Identifier) MarshalJSON() ([]byte, error) { return encodeObject(&i, i.rest) }

// Quantity is a FHIR Quantity; the value keeps its decimal text.
type Quantity struct {
	Value      json.Number `json:"value"`
	Comparator string      `json:"comparator"`
	Unit       string      `json:"unit"`
	System     string      `json:"system"`
	Code       string      `json:"code"`
	rest       rest
}

// Float is the value as a float64 (false when absent).
func (q *Quantity) Float() (float64, bool) {
	if q == nil || q.Value == "" {
		return 0, false
	}
	f, err := q.Value.Float64()
	return f, err == nil
}

// UnmarshalJSON decodes a Quantity, keeping what it does not name.
func (q *Quantity) UnmarshalJSON(b []byte) (err error) { q.rest, err = decodeObject(b, q); return }

// MarshalJSON encodes a Quantity with what it did not name.
func (q Quantity) MarshalJSON() ([]byte, error) { return encodeObject(&q, q.rest) }

// Annotation is a FHIR Annotation.
type Annotation struct {
	AuthorReference *Reference `json:"authorReference"`
	AuthorString    *string    `json:"authorString"`
	Time            string     `json:"time"`
	Text            string     `json:"text"`
	rest            rest
}

// UnmarshalJSON decodes an Annotation, keeping what it does not name.
func (a *Annotation) UnmarshalJSON(b []byte) (err error) { a.rest, err = decodeObject(b, a); return }

// MarshalJSON encodes an Annotation with what it did not name.
func (a Annotation) MarshalJSON() ([]byte, error) { return encodeObject(&a, a.rest) }

// Meta is a resource's meta. Services drop it before a write: the store
// sets versionId and lastUpdated.
type Meta struct {
	VersionID   string   `json:"versionId"`
	LastUpdated string   `json:"lastUpdated"`
	Profile     []string `json:"profile"`
	Security    []Coding `json:"security"`
	Tag         []Coding `json:"tag"`
	rest        rest
}

// UnmarshalJSON decodes a Meta, keeping what it does not name.
func (m *Meta) UnmarshalJSON(b []byte) (err error) { m.rest, err = decodeObject(b, m); return }

// MarshalJSON encodes a Meta with what it did not name.
func (m Meta) MarshalJSON() ([]byte, error) { return encodeObject(&m, m.rest) }

// ParseDateTime reads a FHIR instant, dateTime or date (a date is midnight
// UTC; a year or year-month is read as its first day).
func ParseDateTime(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, false
	}
	for _, f := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02", "2006-01", "2006"} {
		if t, err := time.Parse(f, s); err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}

// FormatDateTime writes t as a FHIR dateTime in t's location, to the
// second.
func FormatDateTime(t time.Time) string { return t.Format(time.RFC3339) }
