package intake

import (
	"errors"

	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/hl7v2"
	"github.com/passerelle-sante/passerelle/pkg/intake"
)

// ackRule is how the MLLP edge answers an error of one kind: the
// acknowledgment code of MSA-1, and the HL7 error code (table 0357) of an
// ERR whose error names no more precise one.
type ackRule struct {
	code string
	cond int
}

// acks is the one table from an error's kind to its HL7 v2 acknowledgment
// (docs/architecture.md, "Errors"), the MLLP twin of fhirapi.Status. AE
// asks the sender to correct the message and send it again; AR says that
// the message cannot be taken as it is (its header, type, version or
// sender), or that the server failed and the sender should retry (HL7 v2.5
// chapter 2, original acknowledgment rules).
var acks = map[fhir.Kind]ackRule{
	fhir.Invalid:         {hl7v2.AckApplicationError, hl7v2.CodeDataType},
	fhir.Unprocessable:   {hl7v2.AckApplicationError, hl7v2.CodeTableValue},
	fhir.Unauthenticated: {hl7v2.AckReject, hl7v2.CodeUnknownKey},
	fhir.Forbidden:       {hl7v2.AckReject, hl7v2.CodeUnknownKey},
	fhir.NotFound:        {hl7v2.AckApplicationError, hl7v2.CodeUnknownKey},
	fhir.Gone:            {hl7v2.AckApplicationError, hl7v2.CodeUnknownKey},
	fhir.Conflict:        {hl7v2.AckApplicationError, hl7v2.CodeDuplicateKey},
	fhir.Stale:           {hl7v2.AckApplicationError, hl7v2.CodeRecordLocked},
	fhir.TooLarge:        {hl7v2.AckReject, hl7v2.CodeInternal},
	fhir.Unsupported:     {hl7v2.AckReject, hl7v2.CodeUnsupportedMessageType},
	fhir.Unavailable:     {hl7v2.AckReject, hl7v2.CodeInternal},
	fhir.Internal:        {hl7v2.AckReject, hl7v2.CodeInternal},
}

// ackOf is the rule for kind k; a kind outside the table is internal.
func ackOf(k fhir.Kind) ackRule {
	if r, ok := acks[k]; ok {
		return r
	}
	return acks[fhir.Internal]
}

// errTestINS: a test or demonstration INS sent to a production instance.
var errTestINS = errors.New("test or demo INS refused in production")

// errKind is the kind of an error of intake's domain, whichever channel the
// message came by, so that it answers the same status over FHIR and the
// same ACK over MLLP; each channel adds its own texts and location.
func errKind(err error) fhir.Kind {
	var le *intake.LimitError
	var fi *foreignIdentifier
	switch {
	case errors.Is(err, errTestINS):
		return fhir.Unprocessable
	case errors.As(err, &le), errors.As(err, &fi), errors.Is(err, intake.ErrNoDischargeTime), errors.Is(err, intake.ErrNoDeathTime):
		return fhir.Invalid
	}
	return fhir.FromError(err).Kind
}

// hl7Reject is a message refused: the kind of error, which decides the
// ACK code (acks), and its ERR segments.
type hl7Reject struct {
	kind fhir.Kind
	errs []hl7v2.AckError
}

// code is the ACK code the refusal is answered with: AE or AR.
func (r *hl7Reject) code() string { return ackOf(r.kind).code }

// reject is a refusal of kind k with one ERR: at loc, HL7 error code cond
// (0: the kind's), msg its French then English text.
func reject(k fhir.Kind, loc hl7v2.Location, cond int, msg string) *hl7Reject {
	if cond == 0 {
		cond = ackOf(k).cond
	}
	return &hl7Reject{kind: k, errs: []hl7v2.AckError{{Location: loc, Code: cond, Severity: hl7v2.SeverityError, Message: msg}}}
}

// rejectError is the refusal of err: a parse error keeps its own ERR
// entries (location and code) and is invalid, or unsupported when it is in
// the header; a *fhir.Error (a refusal written for the FHIR channel) keeps
// its kind and texts, with its kind's HL7 code; anything else is of its
// kind (errKind) with hl7v2's generic ERR.
func rejectError(err error) *hl7Reject {
	var pe *hl7v2.ParseError
	if errors.As(err, &pe) {
		k := fhir.Invalid
		if pe.InHeader() {
			k = fhir.Unsupported
		}
		return &hl7Reject{kind: k, errs: hl7v2.AckErrors(err)}
	}
	var fe *fhir.Error
	if errors.As(err, &fe) {
		r := &hl7Reject{kind: fe.Kind}
		for _, is := range fe.Issues {
			text := is.FR
			if is.EN != "" && is.EN != is.FR {
				text += " / " + is.EN
			}
			r.errs = append(r.errs, hl7v2.AckError{Code: ackOf(fe.Kind).cond, Severity: hl7v2.SeverityError, Message: text})
		}
		return r
	}
	return &hl7Reject{kind: errKind(err), errs: hl7v2.AckErrors(err)}
}

// temporary is the refusal of a message the server could not take for a
// failure of its own: AR, nothing kept, so that the sender sends it again.
func temporary() *hl7Reject {
	return reject(fhir.Internal, hl7v2.Location{}, 0, "Erreur temporaire, renvoyez le message / Temporary error, send again")
}
