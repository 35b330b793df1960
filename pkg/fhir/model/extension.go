package model

import "encoding/json"

// Extension is a FHIR Extension: nested extensions or one value[x]. The
// value[x] kinds Passerelle uses are named, each a pointer left out when
// nil; any other kind is kept as it came.
type Extension struct {
	URL                  string           `json:"url"`
	Extension            []Extension      `json:"extension"`
	ValueBoolean         *bool            `json:"valueBoolean"`
	ValueInteger         *int64           `json:"valueInteger"`
	ValueDecimal         *json.Number     `json:"valueDecimal"`
	ValueString          *string          `json:"valueString"`
	ValueCode            *string          `json:"valueCode"`
	ValueID              *string          `json:"valueId"`
	ValueURI             *string          `json:"valueUri"`
	ValueCanonical       *string          `json:"valueCanonical"`
	ValueDate            *string          `json:"valueDate"`
	ValueDateTime        *string          `json:"valueDateTime"`
	ValueInstant         *string          `json:"valueInstant"`
	ValueReference       *Reference       `json:"valueReference"`
	ValueCoding          *Coding          `json:"valueCoding"`
	ValueCodeableConcept *CodeableConcept `json:"valueCodeableConcept"`
	ValueIdentifier      *Identifier      `json:"valueIdentifier"`
	ValuePeriod          *Period          `json:"valuePeriod"`
	ValueQuantity        *Quantity        `json:"valueQuantity"`
	rest                 rest
}

// UnmarshalJSON decodes an Extension, keeping what it does not name.
func (e *Extension) UnmarshalJSON(b []byte) (err error) { e.rest, err = decodeObject(b, e); return }

// MarshalJSON encodes an Extension with what it did not name.
func (e Extension) MarshalJSON() ([]byte, error) { return encodeObject(&e, e.rest) }

// Get returns the first nested extension with url, nil when none.
func (e *Extension) Get(url string) *Extension {
	if e == nil {
		return nil
	}
	return findExtension(e.Extension, url)
}

// All returns the nested extensions with url, in order.
func (e *Extension) All(url string) []*Extension {
	if e == nil {
		return nil
	}
	var out []*Extension
	for i := range e.Extension {
		if e.Extension[i].URL == url {
			out = append(out, &e.Extension[i])
		}
	}
	return out
}

// String is the value of a string-like value[x] (string, code, uri,
// canonical, date, dateTime, instant), "" when none.
func (e *Extension) String() string {
	if e == nil {
		return ""
	}
	for _, s := range []*string{e.ValueString, e.ValueCode, e.ValueURI, e.ValueCanonical, e.ValueDate, e.ValueDateTime, e.ValueInstant} {
		if s != nil {
			return *s
		}
	}
	return ""
}

// Bool is valueBoolean (false when absent).
func (e *Extension) Bool() bool { return e != nil && e.ValueBoolean != nil && *e.ValueBoolean }

// Ref is valueReference's literal reference ("" when absent).
func (e *Extension) Ref() string {
	if e == nil {
		return ""
	}
	return e.ValueReference.String()
}

// Ptr returns a pointer to v: for value[x] fields.
func Ptr[T any](v T) *T { return &v }

func findExtension(exts []Extension, url string) *Extension {
	for i := range exts {
		if exts[i].URL == url {
			return &exts[i]
		}
	}
	return nil
}

// setExtension replaces the first extension with e's url, or adds e.
func setExtension(exts *[]Extension, e Extension) {
	if x := findExtension(*exts, e.URL); x != nil {
		*x = e
		return
	}
	*exts = append(*exts, e)
}
