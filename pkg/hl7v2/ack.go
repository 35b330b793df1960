package hl7v2

import (
	"errors"
	"strconv"
	"strings"
	"time"
)

// Condition codes of HL7 table 0357 (message error condition codes), used
// in ERR-3.
const (
	CodeAccepted                = 0
	CodeSegmentSequence         = 100
	CodeRequiredFieldMissing    = 101
	CodeDataType                = 102
	CodeTableValue              = 103
	CodeUnsupportedMessageType  = 200
	CodeUnsupportedEvent        = 201
	CodeUnsupportedProcessingID = 202
	CodeUnsupportedVersion      = 203
	CodeUnknownKey              = 204
	CodeDuplicateKey            = 205
	CodeRecordLocked            = 206
	CodeInternal                = 207
)

var conditionText = map[int]string{
	CodeAccepted:                "Message accepted",
	CodeSegmentSequence:         "Segment sequence error",
	CodeRequiredFieldMissing:    "Required field missing",
	CodeDataType:                "Data type error",
	CodeTableValue:              "Table value not found",
	CodeUnsupportedMessageType:  "Unsupported message type",
	CodeUnsupportedEvent:        "Unsupported event code",
	CodeUnsupportedProcessingID: "Unsupported processing id",
	CodeUnsupportedVersion:      "Unsupported version id",
	CodeUnknownKey:              "Unknown key identifier",
	CodeDuplicateKey:            "Duplicate key identifier",
	CodeRecordLocked:            "Application record locked",
	CodeInternal:                "Application internal error",
}

// ConditionText returns the HL7 table 0357 text of code, or "" when unknown.
func ConditionText(code int) string { return conditionText[code] }

// Severities of HL7 table 0516, used in ERR-4.
const (
	SeverityError       = "E"
	SeverityWarning     = "W"
	SeverityInformation = "I"
)

// Acknowledgment codes of HL7 table 0008 in original mode, used in MSA-1.
const (
	AckAccept           = "AA" // accepted and processed (here: stored)
	AckApplicationError = "AE" // content error; the sender must fix it before resending
	AckReject           = "AR" // rejected: header, version or sender unusable, or a system failure"
)

// Location is where an error is, as ERR-2 (data type ERL) says it: segment
// id, its occurrence (1-based), field, repetition, component, sub-component.
// Zero parts are not known.
type Location struct {
	Segment      string
	Sequence     int
	Field        int
	Repetition   int
	Component    int
	SubComponent int
}

// String returns the location in ERL form without trailing empty parts,
// e.g. "PID^1^3".
func (l Location) String() string {
	return strings.Join(l.parts(), "^")
}

func (l Location) parts() []string {
	if l.Segment == "" {
		return nil
	}
	seq := l.Sequence
	if seq == 0 && l.Field > 0 {
		seq = 1
	}
	nums := []int{seq, l.Field, l.Repetition, l.Component, l.SubComponent}
	last := -1
	for i, n := range nums {
		if n > 0 {
			last = i
		}
	}
	out := []string{l.Segment}
	for _, n := range nums[:last+1] {
		if n > 0 {
			out = append(out, strconv.Itoa(n))
		} else {
			out = append(out, "")
		}
	}
	return out
}

// AckError is one ERR segment of an acknowledgement.
type AckError struct {
	Location Location
	Code     int    // HL7 table 0357 (CodeRequiredFieldMissing…)
	Severity string // E, W or I (HL7 table 0516); empty means E
	Message  string // ERR-8, for the people who read the sender's error queue
}

// AckErrors turns an error from Parse or from the typed accessors into ERR
// entries: one for each *ParseError it holds (errors.Join trees are walked),
// and one CodeInternal entry with a generic text for anything else, whose
// details belong in the receiver's log, not in the sender's.
func AckErrors(err error) []AckError {
	if err == nil {
		return nil
	}
	var out []AckError
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var pe *ParseError
		if errors.As(err, &pe) {
			out = append(out, pe.AckError())
			return
		}
		out = append(out, AckError{Code: CodeInternal, Severity: SeverityError, Message: ConditionText(CodeInternal)})
	}
	walk(err)
	return out
}

// Ack builds the original-mode acknowledgement of msg (HL7 v2.5 chapter 2,
// original acknowledgment rules and the ACK message): MSH with sender and receiver swapped, MSH-9
// ACK^<trigger>^ACK, the incoming version, processing id, country and
// character set; MSA with code (AA, AE or AR), the incoming MSH-10 and, for
// receivers still on v2.3 that only show MSA-3, the first error's text; then
// one ERR per error. controlID is the ACK's own MSH-10; now its MSH-7.
//
// msg may be nil or hold only a partial MSH (see ParseHeader): what is
// missing is left empty, the version defaulting to 2.5. The delimiters are
// the incoming message's when it declared all four, else the recommended ones.
func Ack(msg *Message, code string, errs []AckError, now time.Time, controlID string) *Message {
	var in *Segment
	if msg != nil && len(msg.Segments) > 0 && msg.Segments[0].ID == "MSH" {
		in = &msg.Segments[0]
	}
	d, enc := DefaultDelimiters, DefaultDelimiters.encodingChars()
	if msg != nil {
		if md, menc := msg.delimiters(); md.SubComponent != 0 {
			d, enc = md, menc
		}
	}
	copyField := func(n int) Field {
		f := in.Field(n)
		if f == nil || f.IsEmpty() {
			return NewField()
		}
		return cloneField(f)
	}
	msh := Segment{ID: "MSH"}
	msh.SetField(1, NewField(string(rune(d.Field))))
	msh.SetField(2, NewField(enc))
	msh.SetField(3, copyField(5))
	msh.SetField(4, copyField(6))
	msh.SetField(5, copyField(3))
	msh.SetField(6, copyField(4))
	msh.SetField(7, NewField(FormatTS(now.In(Paris), PrecisionSecond, true)))
	if trigger := in.Get(9, 1, 2, 1); trigger != "" {
		msh.SetField(9, NewField("ACK", trigger, "ACK"))
	} else {
		msh.SetField(9, NewField("ACK"))
	}
	msh.SetField(10, NewField(controlID))
	if pid := in.Field(11); !pid.IsEmpty() {
		msh.SetField(11, cloneField(pid))
	} else {
		msh.SetField(11, NewField("P"))
	}
	if v := in.Field(12); !v.IsEmpty() {
		msh.SetField(12, cloneField(v))
	} else {
		msh.SetField(12, NewField("2.5"))
	}
	if c := in.Field(17); !c.IsEmpty() {
		msh.SetField(17, cloneField(c))
	}
	if cs := in.Field(18); !cs.IsEmpty() {
		msh.SetField(18, cloneField(cs))
	}

	msa := Segment{ID: "MSA"}
	msa.SetField(1, NewField(code))
	msa.SetField(2, NewField(in.Get(10, 1, 1, 1)))
	if len(errs) > 0 && errs[0].Message != "" {
		msa.SetField(3, NewField(errs[0].Message))
	}

	out := &Message{Segments: []Segment{msh, msa}}
	for _, e := range errs {
		err := Segment{ID: "ERR"}
		err.SetField(1, NewField())
		if parts := e.Location.parts(); parts != nil {
			err.SetField(2, NewField(parts...))
		} else {
			err.SetField(2, NewField())
		}
		err.SetField(3, NewField(strconv.Itoa(e.Code), ConditionText(e.Code), "HL70357"))
		sev := e.Severity
		if sev == "" {
			sev = SeverityError
		}
		err.SetField(4, NewField(sev))
		if e.Message != "" {
			err.SetField(8, NewField(e.Message))
		}
		out.Segments = append(out.Segments, err)
	}
	return out
}

func cloneField(f Field) Field {
	out := make(Field, len(f))
	for i, r := range f {
		out[i] = make(Repetition, len(r))
		for j, c := range r {
			out[i][j] = append(Component(nil), c...)
		}
	}
	return out
}
