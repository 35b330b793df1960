package intake

import (
	"errors"
	"fmt"
	"strings"

	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/hl7v2"
	"github.com/passerelle-sante/passerelle/pkg/intake"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// maxLetterMeta bounds a DocumentReference without its attachments' content:
// the stay event carries it (the content stays in the store), so it must not
// bring back the size the letter's content was kept out for.
const maxLetterMeta = 32 << 10

// fhirLimits checks ev against the intake limits and names the element at
// fault in the message: patPath and encPath are the Patient's and the
// Encounter's entries (Bundle.entry[n].resource).
func fhirLimits(ev *intake.Event, patPath, encPath string) error {
	var le *intake.LimitError
	if !errors.As(ev.CheckLimits(), &le) {
		return nil
	}
	at := func(p string) string { return fmt.Sprintf("%s[%d]", p, le.Index) }
	var expr string
	switch f := le.Field; {
	case strings.HasPrefix(f, "patient.identifier"):
		expr = at(patPath + ".identifier")
	case strings.HasPrefix(f, "patient.ins"), f == "patient.identityStatus":
		expr = patPath + ".identifier"
	case f == "patient.family", f == "patient.birthFamily":
		expr = patPath + ".name.family"
	case f == "patient.given":
		expr = at(patPath + ".name.given")
	case f == "patient.phone":
		expr = patPath + ".telecom"
	case f == "patient.address.line":
		expr = at(patPath + ".address.line")
	case strings.HasPrefix(f, "patient.address."):
		expr = patPath + ".address." + strings.TrimPrefix(f, "patient.address.")
	case f == "patient.birthDate", f == "patient.gender":
		expr = patPath + "." + strings.TrimPrefix(f, "patient.")
	case f == "patient.birthPlace":
		expr = patPath + ".extension"
	case strings.HasPrefix(f, "encounter.identifier"):
		expr = encPath + ".identifier"
	case f == "encounter.class":
		expr = encPath + ".class"
	case f == "encounter.disposition":
		expr = encPath + ".hospitalization.dischargeDisposition"
	case f == "encounter.diagnoses":
		expr = "Condition"
	case strings.HasPrefix(f, "encounter.diagnoses."):
		expr = "Condition.code"
	case strings.HasPrefix(f, "encounter."):
		expr = encPath + ".extension"
	case strings.HasPrefix(f, "team"):
		expr = "CareTeam.participant"
	case strings.HasPrefix(f, "facility"):
		expr = "Bundle.entry[0].resource.sender"
	default:
		expr = "Bundle"
	}
	return fhir.Errorf(errKind(le), "too-long", le.Error(), le.Error(), expr)
}

// hl7Limits checks ev against the intake limits and names the HL7 v2 field
// at fault, of the same kind as over FHIR (AE: the sender corrects the
// message and sends it again).
func hl7Limits(ev *intake.Event) *hl7Reject {
	var le *intake.LimitError
	if !errors.As(ev.CheckLimits(), &le) {
		return nil
	}
	loc := func(seg string, seq, field int) hl7v2.Location {
		return hl7v2.Location{Segment: seg, Sequence: seq, Field: field}
	}
	var l hl7v2.Location
	switch f := le.Field; {
	case strings.HasPrefix(f, "patient.identifier"), strings.HasPrefix(f, "patient.ins"):
		l = loc("PID", 1, 3)
	case f == "patient.family", f == "patient.birthFamily":
		l = loc("PID", 1, 5)
		l.Component = 1
	case f == "patient.given":
		l = loc("PID", 1, 5)
		l.Component = 2
	case f == "patient.birthDate":
		l = loc("PID", 1, 7)
	case f == "patient.gender":
		l = loc("PID", 1, 8)
	case strings.HasPrefix(f, "patient.address"), f == "patient.birthPlace":
		l = loc("PID", 1, 11)
	case f == "patient.phone":
		l = loc("PID", 1, 13)
	case f == "patient.identityStatus":
		l = loc("PID", 1, 32)
	case strings.HasPrefix(f, "encounter.identifier"):
		l = loc("PV1", 1, 19)
	case f == "encounter.class":
		l = loc("PV1", 1, 2)
	case f == "encounter.unit":
		l = loc("PV1", 1, 3)
	case f == "encounter.disposition", f == "encounter.modeSortie":
		l = loc("PV1", 1, 36)
	case strings.HasPrefix(f, "encounter.diagnoses"):
		l = loc("DG1", le.Index+1, 3)
	case strings.HasPrefix(f, "team"):
		l = loc("ROL", le.Index+1, 4)
	case strings.HasPrefix(f, "facility"):
		l = loc("MSH", 1, 4)
	default:
		l = loc("MSH", 1, 10)
	}
	return reject(errKind(le), l, hl7v2.CodeDataType, le.Error())
}

// eventTooLarge is the HL7 v2 answer to a message whose event is larger than
// the bus takes (store.ErrTooLarge): of its kind (AR, as the same message
// can never be accepted, and 413 over FHIR), with what to do about it.
func eventTooLarge() *hl7Reject {
	return reject(errKind(store.ErrTooLarge), hl7v2.Location{Segment: "MSH", Sequence: 1, Field: 10}, hl7v2.CodeDataType,
		"Message trop volumineux pour être transmis aux services / Message too large to be passed on to the services")
}
