package intake

import (
	"errors"
	"fmt"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/hl7v2"
	"github.com/passerelle-sante/passerelle/pkg/intake"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// TestAcks: every kind has its acknowledgment and default HL7 error code.
func TestAcks(t *testing.T) {
	const ae, ar = hl7v2.AckApplicationError, hl7v2.AckReject
	want := map[fhir.Kind]ackRule{
		fhir.Invalid:         {ae, hl7v2.CodeDataType},
		fhir.Unprocessable:   {ae, hl7v2.CodeTableValue},
		fhir.Unauthenticated: {ar, hl7v2.CodeUnknownKey},
		fhir.Forbidden:       {ar, hl7v2.CodeUnknownKey},
		fhir.NotFound:        {ae, hl7v2.CodeUnknownKey},
		fhir.Gone:            {ae, hl7v2.CodeUnknownKey},
		fhir.Conflict:        {ae, hl7v2.CodeDuplicateKey},
		fhir.Stale:           {ae, hl7v2.CodeRecordLocked},
		fhir.TooLarge:        {ar, hl7v2.CodeInternal},
		fhir.Unsupported:     {ar, hl7v2.CodeUnsupportedMessageType},
		fhir.Unavailable:     {ar, hl7v2.CodeInternal},
		fhir.Internal:        {ar, hl7v2.CodeInternal},
	}
	for _, k := range fhir.Kinds {
		t.Run(string(k), func(t *testing.T) {
			if _, ok := acks[k]; !ok {
				t.Fatalf("kind %s has no acknowledgment in the table", k)
			}
			if got := ackOf(k); got != want[k] {
				t.Errorf("ackOf(%s) = %+v, want %+v", k, got, want[k])
			}
		})
	}
	if len(acks) != len(fhir.Kinds) {
		t.Errorf("the table has %d kinds, fhir.Kinds %d", len(acks), len(fhir.Kinds))
	}
	if got := ackOf(""); got != want[fhir.Internal] {
		t.Errorf("a refusal without a kind: %+v, want the internal one", got)
	}
}

// TestSameAnswerBothChannels: an error of intake's domain has one kind, so
// that its FHIR status and its ACK agree with each other.
func TestSameAnswerBothChannels(t *testing.T) {
	cases := []struct {
		name   string
		err    error
		status int
		ack    string
	}{
		{"field too long", fmt.Errorf("check: %w", &intake.LimitError{Field: "patient.family", Len: 300, Max: 100}), 400, "AE"},
		{"foreign namespace", &foreignIdentifier{Visit: true, System: "urn:oid:1.2.3"}, 400, "AE"},
		{"no discharge time", intake.ErrNoDischargeTime, 400, "AE"},
		{"no death time", intake.ErrNoDeathTime, 400, "AE"},
		{"test INS in production", errTestINS, 422, "AE"},
		{"event too large", fmt.Errorf("put: %w", store.ErrTooLarge), 413, "AR"},
		{"storage failure", errors.New("connection reset"), 500, "AR"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			k := errKind(c.err)
			if got := fhirapi.Status(k); got != c.status {
				t.Errorf("%s: status %d, want %d", k, got, c.status)
			}
			if got := rejectError(c.err).code(); got != c.ack {
				t.Errorf("%s: ACK %s, want %s", k, got, c.ack)
			}
		})
	}
	// The refusals the HL7 path writes itself are of the same kinds.
	if r := eventTooLarge(); r.kind != fhir.TooLarge || r.code() != "AR" {
		t.Errorf("event too large: %s %s", r.kind, r.code())
	}
	if r := hl7Limits(&intake.Event{Patient: intake.Patient{Family: string(make([]byte, 10000))}}); r == nil || r.kind != fhir.Invalid || r.code() != "AE" {
		t.Errorf("limits: %+v", r)
	}
}

// TestRejectError: a refusal written for the FHIR channel keeps its kind
// and texts over MLLP, with its kind's HL7 code; a parse error keeps its
// own ERR, AE in the body and AR in the header.
func TestRejectError(t *testing.T) {
	fe := fhir.Errorf(fhir.Conflict, "duplicate", "Déjà reçu", "Already received", "Bundle.identifier")
	r := rejectError(fmt.Errorf("process: %w", fe))
	if r.code() != "AE" || len(r.errs) != 1 || r.errs[0].Code != hl7v2.CodeDuplicateKey || r.errs[0].Message != "Déjà reçu / Already received" {
		t.Errorf("from a FHIR error: %s %+v", r.code(), r.errs)
	}
	cases := []struct {
		name string
		err  error
		kind fhir.Kind
		ack  string
	}{
		{"body", &hl7v2.ParseError{Segment: "PID", Code: hl7v2.CodeDataType, Msg: "bad date"}, fhir.Invalid, "AE"},
		{"header", &hl7v2.ParseError{Segment: "MSH", Code: hl7v2.CodeRequiredFieldMissing, Msg: "MSH-9 missing"}, fhir.Unsupported, "AR"},
		{"joined, body first", errors.Join(&hl7v2.ParseError{Segment: "PV1", Msg: "bad"}, &hl7v2.ParseError{Segment: "PID", Msg: "bad"}), fhir.Invalid, "AE"},
	}
	for _, c := range cases {
		r := rejectError(c.err)
		if r.kind != c.kind || r.code() != c.ack || len(r.errs) == 0 || r.errs[0].Location.Segment == "" {
			t.Errorf("%s: %s %s %+v, want %s %s", c.name, r.kind, r.code(), r.errs, c.kind, c.ack)
		}
	}
}
