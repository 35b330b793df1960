// Package intake defines the one internal form of a hospital notification.
// A FHIR message and an HL7 v2 ADT message are each turned into an Event;
// after that there is a single pipeline that matches the patient, records
// the stay and announces it to the pathway service.
package intake

import (
	"errors"
	"time"
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
	// Document is the lettre de liaison, as a FHIR DocumentReference.
	Document []byte `json:"document,omitempty"`
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
