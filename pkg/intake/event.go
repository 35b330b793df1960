// Package intake defines the one internal form of a hospital notification.
// A FHIR message and an HL7 v2 ADT message are each turned into an Event;
// after that there is a single pipeline that matches the patient, records
// the stay and announces it to the pathway service.
package intake

import (
	"errors"
	"fmt"
	"time"
	"unicode/utf8"
)

// Kinds of intake events.
const (
	KindAdmit           = "admit"
	KindDischarge       = "discharge"
	KindCancelDischarge = "cancel-discharge"
	KindCancelAdmit     = "cancel-admit"
	KindDeath           = "death"
	KindUpdate          = "update"
)

// The extensions intake puts on the Encounter, read by the services that
// consume its Encounter changes (pathway). The Kind travels with the change
// as event.Change.IntakeEvent (pkg/bus/event).
const (
	// ExtMedicalUnit is the unité médicale (UF) the patient left.
	ExtMedicalUnit = "https://passerelle.health/fhir/StructureDefinition/medical-unit"
	// ExtModeSortie is the PMSI mode de sortie (valueCode).
	ExtModeSortie = "https://passerelle.health/fhir/StructureDefinition/pmsi-mode-sortie"
)

// Identity statuses (FR Core fr-core-cs-identity-status).
const (
	StatusProvisional = "PROV"
	StatusValidated   = "VALI"
	StatusRecovered   = "RECUP"
	StatusQualified   = "QUAL"
)

// Event is a hospital notification in Passerelle's own terms.
type Event struct {
	Kind    string `json:"kind"`
	Channel string `json:"channel"` // fhir or hl7v2
	// MessageID is the archive id of the message it came from.
	MessageID string    `json:"messageId"`
	Tenant    string    `json:"tenant"`
	Facility  Facility  `json:"facility"`
	Time      time.Time `json:"time"` // when it happened (discharge, death…)
	Patient   Patient   `json:"patient"`
	Encounter Encounter `json:"encounter"`
	// Team is the professionals the hospital declared: the médecin traitant
	// and the proposed care team.
	Team []Professional `json:"team,omitempty"`
	// DocumentEntry, when set, is the index of the Bundle entry of the
	// archived message MessageID that holds the lettre de liaison (a FHIR
	// DocumentReference). The letter is read from the archive, never
	// carried: an event must stay far below the broker's maximum payload
	// (store.MaxEventBytes), and a letter may weigh megabytes.
	DocumentEntry *int `json:"documentEntry,omitempty"`
	// Trace is the W3C traceparent (or the message control id) to carry on.
	Trace string `json:"trace,omitempty"`
}

// Facility is the sending hospital.
type Facility struct {
	FINESS string `json:"finess"`
	Name   string `json:"name,omitempty"`
}

// Identifier is a system and a value, with its v2-0203 type.
type Identifier struct {
	System string `json:"system"`
	Value  string `json:"value"`
	Type   string `json:"type,omitempty"` // INS-NIR, INS-NIA, PI, VN, AN…
}

// Patient is what the hospital says of the patient.
type Patient struct {
	// Identifiers are the facility's own (IPP…). The INS is apart.
	Identifiers []Identifier `json:"identifiers,omitempty"`
	INS         *Identifier  `json:"ins,omitempty"`
	// IdentityStatus as received (FR Core code; an HL7 PID-32 code is
	// mapped by the HL7 path); Qualified says whether the INS may be used
	// as the matching key.
	IdentityStatus string     `json:"identityStatus,omitempty"`
	Qualified      bool       `json:"qualified"`
	Family         string     `json:"family,omitempty"`
	BirthFamily    string     `json:"birthFamily,omitempty"`
	Given          []string   `json:"given,omitempty"`
	BirthDate      string     `json:"birthDate,omitempty"`  // YYYY-MM-DD
	Gender         string     `json:"gender,omitempty"`     // FHIR administrative gender
	BirthPlace     string     `json:"birthPlace,omitempty"` // INSEE commune code
	Address        *Address   `json:"address,omitempty"`
	Phone          string     `json:"phone,omitempty"`
	Deceased       *time.Time `json:"deceased,omitempty"`
}

// Address is a postal address with its INSEE commune code.
type Address struct {
	Lines      []string `json:"lines,omitempty"`
	City       string   `json:"city,omitempty"`
	PostalCode string   `json:"postalCode,omitempty"`
	INSEE      string   `json:"insee,omitempty"`
	Country    string   `json:"country,omitempty"`
}

// Encounter is the hospital stay.
type Encounter struct {
	Identifier Identifier `json:"identifier"`
	// Class: IMP (full hospitalisation), AMB, EMER, SS (séances: never a
	// pathway, never a readmission).
	Class string `json:"class"`
	// Elective is a planned stay (PV1-4, Encounter.priority): not a
	// readmission.
	Elective bool       `json:"elective,omitempty"`
	Start    *time.Time `json:"start,omitempty"`
	End      *time.Time `json:"end,omitempty"`
	// Disposition: FHIR discharge-disposition (home, exp, other-hcf, hosp…).
	Disposition string `json:"disposition,omitempty"`
	// ModeSortie is the PMSI mode de sortie (6 mutation, 7 transfert, 8
	// domicile, 9 décès) when the sender gives it.
	ModeSortie string      `json:"modeSortie,omitempty"`
	Unit       string      `json:"unit,omitempty"` // the medical unit (UF) code
	Diagnoses  []Diagnosis `json:"diagnoses,omitempty"`
}

// Diagnosis is a coded diagnosis of the stay.
type Diagnosis struct {
	System    string `json:"system"`
	Code      string `json:"code"`
	Display   string `json:"display,omitempty"`
	Principal bool   `json:"principal,omitempty"`
}

// Professional is a declared member of the patient's team.
type Professional struct {
	// Role is a team-role code; "gp" for the médecin traitant.
	Role string `json:"role"`
	// Kind is Practitioner or Organization (a pharmacy).
	Kind       string       `json:"kind"`
	Identifier []Identifier `json:"identifier"`
	Name       string       `json:"name,omitempty"`
}

// Errors of Dated.
var (
	ErrNoDischargeTime = errors.New("a discharge must give the end of the stay")
	ErrNoDeathTime     = errors.New("a death must be dated")
)

// Dated sets the event's Time from what it carries: the end of the stay for
// a discharge; the death time (or, lacking it, the end of the stay) for a
// death, which then also dates the patient's death; the start for an
// admission. Other kinds keep the Time the channel gave.
func (ev *Event) Dated() error {
	e, p := &ev.Encounter, &ev.Patient
	switch ev.Kind {
	case KindDischarge:
		if e.End == nil {
			return ErrNoDischargeTime
		}
		ev.Time = *e.End
	case KindDeath:
		switch {
		case p.Deceased != nil:
			ev.Time = *p.Deceased
		case e.End != nil:
			ev.Time = *e.End
		default:
			return ErrNoDeathTime
		}
		if p.Deceased == nil {
			t := ev.Time
			p.Deceased = &t
		}
	case KindAdmit:
		if e.Start != nil {
			ev.Time = *e.Start
		}
	}
	return nil
}

// Limits on what one notification may carry. They keep a message's event far
// below the bus's bound (an event is written only if it fits, and a message
// whose event does not fit is refused), and they answer a sender's mistake
// with the field at fault rather than with a refusal of the whole message.
// The lettre de liaison is not counted: it is stored, not carried.
const (
	// MaxNameLen bounds a family or given name (the INS traits are at most
	// 100 characters).
	MaxNameLen = 100
	// MaxIdentifierLen bounds an identifier's value; its system (a URI or
	// OID) may take MaxTextLen.
	MaxIdentifierLen = 100
	// MaxCodeLen bounds a code (diagnosis, unit, disposition, postal code,
	// INSEE code, phone number).
	MaxCodeLen = 64
	// MaxTextLen bounds a free text: an address line, a city, a label, a
	// professional's or a facility's name.
	MaxTextLen = 500
	// MaxRepeats bounds each repeated element: identifiers, given names,
	// address lines, diagnoses, declared professionals.
	MaxRepeats = 100
)

// LimitError is a field of the event longer, or repeated more often, than
// the limits allow. Field is a channel-neutral path ("patient.family",
// "encounter.diagnoses.display"…) that each channel maps to its own
// location (a FHIRPath expression, an HL7 v2 field).
type LimitError struct {
	Field string
	// Index is the repetition at fault (0 for a field that does not repeat).
	Index int
	// Len is the field's length in characters, or the number of
	// repetitions when Count is set; Max is the limit.
	Len, Max int
	Count    bool
}

func (e *LimitError) Error() string {
	if e.Count {
		return fmt.Sprintf("Trop de répétitions de %s (%d, %d au plus) / Too many repetitions of %s (%d, at most %d)",
			e.Field, e.Len, e.Max, e.Field, e.Len, e.Max)
	}
	return fmt.Sprintf("Champ trop long : %s (%d caractères, %d au plus) / Field too long: %s (%d characters, at most %d)",
		e.Field, e.Len, e.Max, e.Field, e.Len, e.Max)
}

// CheckLimits returns a *LimitError for the first field beyond the limits.
func (ev *Event) CheckLimits() error {
	var err error
	text := func(field string, i int, s string, max int) {
		if n := utf8.RuneCountInString(s); err == nil && n > max {
			err = &LimitError{Field: field, Index: i, Len: n, Max: max}
		}
	}
	count := func(field string, n int) {
		if err == nil && n > MaxRepeats {
			err = &LimitError{Field: field, Len: n, Max: MaxRepeats, Count: true}
		}
	}
	ident := func(field string, i int, id Identifier) {
		text(field+".system", i, id.System, MaxTextLen)
		text(field+".value", i, id.Value, MaxIdentifierLen)
		text(field+".type", i, id.Type, MaxCodeLen)
	}
	text("messageId", 0, ev.MessageID, MaxTextLen)
	text("trace", 0, ev.Trace, MaxTextLen)
	text("facility.finess", 0, ev.Facility.FINESS, MaxCodeLen)
	text("facility.name", 0, ev.Facility.Name, MaxTextLen)

	p := &ev.Patient
	count("patient.identifier", len(p.Identifiers))
	for i, id := range p.Identifiers {
		ident("patient.identifier", i, id)
	}
	if p.INS != nil {
		ident("patient.ins", 0, *p.INS)
	}
	text("patient.identityStatus", 0, p.IdentityStatus, MaxCodeLen)
	text("patient.family", 0, p.Family, MaxNameLen)
	text("patient.birthFamily", 0, p.BirthFamily, MaxNameLen)
	count("patient.given", len(p.Given))
	for i, g := range p.Given {
		text("patient.given", i, g, MaxNameLen)
	}
	text("patient.birthDate", 0, p.BirthDate, MaxCodeLen)
	text("patient.gender", 0, p.Gender, MaxCodeLen)
	text("patient.birthPlace", 0, p.BirthPlace, MaxCodeLen)
	text("patient.phone", 0, p.Phone, MaxCodeLen)
	if a := p.Address; a != nil {
		count("patient.address.line", len(a.Lines))
		for i, l := range a.Lines {
			text("patient.address.line", i, l, MaxTextLen)
		}
		text("patient.address.city", 0, a.City, MaxTextLen)
		text("patient.address.postalCode", 0, a.PostalCode, MaxCodeLen)
		text("patient.address.insee", 0, a.INSEE, MaxCodeLen)
		text("patient.address.country", 0, a.Country, MaxCodeLen)
	}

	e := &ev.Encounter
	ident("encounter.identifier", 0, e.Identifier)
	text("encounter.class", 0, e.Class, MaxCodeLen)
	text("encounter.disposition", 0, e.Disposition, MaxCodeLen)
	text("encounter.modeSortie", 0, e.ModeSortie, MaxCodeLen)
	text("encounter.unit", 0, e.Unit, MaxCodeLen)
	count("encounter.diagnoses", len(e.Diagnoses))
	for i, d := range e.Diagnoses {
		text("encounter.diagnoses.system", i, d.System, MaxTextLen)
		text("encounter.diagnoses.code", i, d.Code, MaxCodeLen)
		text("encounter.diagnoses.display", i, d.Display, MaxTextLen)
	}

	count("team", len(ev.Team))
	for i, t := range ev.Team {
		text("team.role", i, t.Role, MaxCodeLen)
		text("team.kind", i, t.Kind, MaxCodeLen)
		text("team.name", i, t.Name, MaxTextLen)
		if err == nil && len(t.Identifier) > MaxRepeats {
			err = &LimitError{Field: "team.identifier", Index: i, Len: len(t.Identifier), Max: MaxRepeats, Count: true}
		}
		for _, id := range t.Identifier {
			ident("team.identifier", i, id)
		}
	}
	return err
}
