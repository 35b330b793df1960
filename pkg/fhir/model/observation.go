package model

// Observation is a FHIR R4 Observation.
type Observation struct {
	ResourceType         string                 `json:"resourceType"`
	ID                   string                 `json:"id"`
	Meta                 *Meta                  `json:"meta"`
	Extension            []Extension            `json:"extension"`
	Identifier           []Identifier           `json:"identifier"`
	BasedOn              []Reference            `json:"basedOn"`
	PartOf               []Reference            `json:"partOf"`
	Status               string                 `json:"status"`
	Category             []CodeableConcept      `json:"category"`
	Code                 *CodeableConcept       `json:"code"`
	Subject              *Reference             `json:"subject"`
	Focus                []Reference            `json:"focus"`
	Encounter            *Reference             `json:"encounter"`
	EffectiveDateTime    string                 `json:"effectiveDateTime"`
	EffectivePeriod      *Period                `json:"effectivePeriod"`
	EffectiveInstant     string                 `json:"effectiveInstant"`
	Issued               string                 `json:"issued"`
	Performer            []Reference            `json:"performer"`
	ValueQuantity        *Quantity              `json:"valueQuantity"`
	ValueCodeableConcept *CodeableConcept       `json:"valueCodeableConcept"`
	ValueString          *string                `json:"valueString"`
	ValueBoolean         *bool                  `json:"valueBoolean"`
	ValueInteger         *int64                 `json:"valueInteger"`
	ValueDateTime        *string                `json:"valueDateTime"`
	ValuePeriod          *Period                `json:"valuePeriod"`
	DataAbsentReason     *CodeableConcept       `json:"dataAbsentReason"`
	Interpretation       []CodeableConcept      `json:"interpretation"`
	Note                 []Annotation           `json:"note"`
	BodySite             *CodeableConcept       `json:"bodySite"`
	Method               *CodeableConcept       `json:"method"`
	Device               *Reference             `json:"device"`
	HasMember            []Reference            `json:"hasMember"`
	DerivedFrom          []Reference            `json:"derivedFrom"`
	Component            []ObservationComponent `json:"component"`
	rest                 rest
}

// UnmarshalJSON decodes an Observation, keeping what it does not name.
func (o *Observation) UnmarshalJSON(b []byte) (err error) { o.rest, err = decodeObject(b, o); return }

// MarshalJSON encodes an Observation with what it did not name.
func (o Observation) MarshalJSON() ([]byte, error) { return encodeObject(&o, o.rest) }

// GetExtension returns the observation's first extension with url, nil
// when none.
func (o *Observation) GetExtension(url string) *Extension { return findExtension(o.Extension, url) }

// SetExtension replaces the observation's extension with e's url, or adds
// e.
func (o *Observation) SetExtension(e Extension) { setExtension(&o.Extension, e) }

// Effective is when the observation holds: effectiveDateTime, else
// effectiveInstant, else the period's start.
func (o *Observation) Effective() string {
	switch {
	case o.EffectiveDateTime != "":
		return o.EffectiveDateTime
	case o.EffectiveInstant != "":
		return o.EffectiveInstant
	case o.EffectivePeriod != nil:
		return o.EffectivePeriod.Start
	}
	return ""
}

// ComponentOf returns the first component coded system|code, nil when
// none.
func (o *Observation) ComponentOf(system, code string) *ObservationComponent {
	for i := range o.Component {
		if o.Component[i].Code.Has(system, code) {
			return &o.Component[i]
		}
	}
	return nil
}

// ObservationComponent is Observation.component.
type ObservationComponent struct {
	Code                 *CodeableConcept  `json:"code"`
	ValueQuantity        *Quantity         `json:"valueQuantity"`
	ValueCodeableConcept *CodeableConcept  `json:"valueCodeableConcept"`
	ValueString          *string           `json:"valueString"`
	ValueBoolean         *bool             `json:"valueBoolean"`
	ValueInteger         *int64            `json:"valueInteger"`
	ValueDateTime        *string           `json:"valueDateTime"`
	DataAbsentReason     *CodeableConcept  `json:"dataAbsentReason"`
	Interpretation       []CodeableConcept `json:"interpretation"`
	rest                 rest
}

// UnmarshalJSON decodes a component, keeping what it does not name.
func (c *ObservationComponent) UnmarshalJSON(b []byte) (err error) {
	c.rest, err = decodeObject(b, c)
	return
}

// MarshalJSON encodes a component with what it did not name.
func (c ObservationComponent) MarshalJSON() ([]byte, error) { return encodeObject(&c, c.rest) }
