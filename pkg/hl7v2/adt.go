package hl7v2

import (
	"errors"
	"fmt"
)

// Typed views of the segments an IHE PAM France 2.11 ADT message carries.
// Component numbers follow the HL7 v2.5 data types; French uses follow the
// PAM France national extension. Accessors that read timestamps return the
// segment together with an error joining one *ParseError (CodeDataType) per
// unreadable field, so a receiver can use the rest and still name each bad
// field in an ERR segment.

// HD is a hierarchic designator: namespace, universal id (an OID for French
// assigning authorities) and its type (ISO).
type HD struct {
	Namespace       string `json:"namespace,omitempty"`
	UniversalID     string `json:"universal_id,omitempty"`
	UniversalIDType string `json:"universal_id_type,omitempty"`
}

// IsZero reports whether every part is empty.
func (h HD) IsZero() bool { return h == HD{} }

// hdComponents reads an HD spread over components (MSH-4: CHDEMO^420000002^FINESS).
func hdComponents(r Repetition) HD {
	return HD{Namespace: r.Get(1, 1), UniversalID: r.Get(2, 1), UniversalIDType: r.Get(3, 1)}
}

// hdSubs reads an HD held in sub-components (CX-4: NS&1.2.250…&ISO).
func hdSubs(c Component) HD {
	return HD{Namespace: c.Sub(1), UniversalID: c.Sub(2), UniversalIDType: c.Sub(3)}
}

// CX is an identifier with its assigning authority and type (PID-3, PID-18,
// PV1-19): id^check digit^scheme^authority^type code^assigning facility.
type CX struct {
	ID                 string `json:"id"`
	AssigningAuthority HD     `json:"assigning_authority,omitzero"`
	TypeCode           string `json:"type_code,omitempty"` // HL7 table 0203: PI, INS, NH, AN, VN…
	AssigningFacility  HD     `json:"assigning_facility,omitzero"`
}

func cx(r Repetition) CX {
	return CX{ID: r.Get(1, 1), AssigningAuthority: hdSubs(r.Component(4)), TypeCode: r.Get(5, 1),
		AssigningFacility: hdSubs(r.Component(6))}
}

// XPN is a person name (PID-5): family^given^second and further given
// names^suffix^prefix^degree^name type.
type XPN struct {
	Family     string `json:"family,omitempty"`
	Given      string `json:"given,omitempty"`
	OtherGiven string `json:"other_given,omitempty"`
	Suffix     string `json:"suffix,omitempty"`
	Prefix     string `json:"prefix,omitempty"`
	Degree     string `json:"degree,omitempty"`
	// TypeCode (HL7 table 0200): IHE PAM France uses L for the birth name
	// (nom de naissance) and D for the used name (nom utilisé).
	TypeCode string `json:"type_code,omitempty"`
}

func xpn(r Repetition) XPN {
	return XPN{Family: r.Get(1, 1), Given: r.Get(2, 1), OtherGiven: r.Get(3, 1), Suffix: r.Get(4, 1),
		Prefix: r.Get(5, 1), Degree: r.Get(6, 1), TypeCode: r.Get(7, 1)}
}

// XAD is an address (PID-11). IHE PAM France carries the birthplace as an
// address of type BDL whose county/parish code (XAD-9) is the INSEE code of
// the commune of birth, an INS trait.
type XAD struct {
	Street           string `json:"street,omitempty"`
	OtherDesignation string `json:"other_designation,omitempty"`
	City             string `json:"city,omitempty"`
	State            string `json:"state,omitempty"`
	PostalCode       string `json:"postal_code,omitempty"`
	Country          string `json:"country,omitempty"`
	Type             string `json:"type,omitempty"` // HL7 table 0190: H home, BDL birthplace…
	OtherGeographic  string `json:"other_geographic,omitempty"`
	CountyCode       string `json:"county_code,omitempty"`
}

func xad(r Repetition) XAD {
	return XAD{Street: r.Get(1, 1), OtherDesignation: r.Get(2, 1), City: r.Get(3, 1), State: r.Get(4, 1),
		PostalCode: r.Get(5, 1), Country: r.Get(6, 1), Type: r.Get(7, 1), OtherGeographic: r.Get(8, 1),
		CountyCode: r.Get(9, 1)}
}

// XCN is a person with an identifier (ROL-4, PV1-7): id^family^given^second
// given^suffix^prefix^degree^source table^assigning authority^name type^…
// ^identifier type code (XCN-13).
type XCN struct {
	ID                 string `json:"id,omitempty"`
	Family             string `json:"family,omitempty"`
	Given              string `json:"given,omitempty"`
	OtherGiven         string `json:"other_given,omitempty"`
	Suffix             string `json:"suffix,omitempty"`
	Prefix             string `json:"prefix,omitempty"`
	AssigningAuthority HD     `json:"assigning_authority,omitzero"`
	NameTypeCode       string `json:"name_type_code,omitempty"`
	// TypeCode is the identifier type: IDNPS for an idNat_PS (8 + RPPS),
	// RPPS, ADELI…
	TypeCode string `json:"type_code,omitempty"`
}

func xcn(r Repetition) XCN {
	return XCN{ID: r.Get(1, 1), Family: r.Get(2, 1), Given: r.Get(3, 1), OtherGiven: r.Get(4, 1),
		Suffix: r.Get(5, 1), Prefix: r.Get(6, 1), AssigningAuthority: hdSubs(r.Component(9)),
		NameTypeCode: r.Get(10, 1), TypeCode: r.Get(13, 1)}
}

// OIDIdNatPS is the OID of idNat_PS, the national identifier of health
// professionals.
const OIDIdNatPS = "1.2.250.1.71.4.2.1"

// RPPS returns the person's RPPS number: the identifier itself when typed
// RPPS, or the idNat_PS without its leading 8 (idNat_PS = "8" + RPPS) when
// typed IDNPS or issued under the idNat_PS OID. It returns "" otherwise
// (ADELI-based idNat_PS start with 0).
func (x XCN) RPPS() string {
	switch {
	case x.TypeCode == "RPPS":
		return x.ID
	case x.TypeCode == "IDNPS" || x.AssigningAuthority.UniversalID == OIDIdNatPS:
		if len(x.ID) == 12 && x.ID[0] == '8' {
			return x.ID[1:]
		}
	}
	return ""
}

// XON is an organisation (ZBE-7): name^type^…^assigning authority (XON-6)
// ^identifier type (XON-7)^…^organisation identifier (XON-10). IHE PAM
// France puts the UF (unité fonctionnelle) code in XON-10 with XON-7 "UF".
type XON struct {
	Name               string `json:"name,omitempty"`
	AssigningAuthority HD     `json:"assigning_authority,omitzero"`
	TypeCode           string `json:"type_code,omitempty"`
	ID                 string `json:"id,omitempty"`
}

func xon(r Repetition) XON {
	return XON{Name: r.Get(1, 1), AssigningAuthority: hdSubs(r.Component(6)), TypeCode: r.Get(7, 1), ID: r.Get(10, 1)}
}

// CE is a coded element: code^text^coding system (DG1-3: I50.1^…^I10).
type CE struct {
	Code   string `json:"code,omitempty"`
	Text   string `json:"text,omitempty"`
	System string `json:"system,omitempty"`
}

func ce(r Repetition) CE { return CE{Code: r.Get(1, 1), Text: r.Get(2, 1), System: r.Get(3, 1)} }

// EI is an entity identifier (ZBE-1): id^namespace^universal id^type.
type EI struct {
	ID              string `json:"id,omitempty"`
	Namespace       string `json:"namespace,omitempty"`
	UniversalID     string `json:"universal_id,omitempty"`
	UniversalIDType string `json:"universal_id_type,omitempty"`
}

func ei(r Repetition) EI {
	return EI{ID: r.Get(1, 1), Namespace: r.Get(2, 1), UniversalID: r.Get(3, 1), UniversalIDType: r.Get(4, 1)}
}

// PL is a patient location (PV1-3): point of care (the UF d'hébergement in
// IHE PAM France)^room^bed^facility.
type PL struct {
	PointOfCare string `json:"point_of_care,omitempty"`
	Room        string `json:"room,omitempty"`
	Bed         string `json:"bed,omitempty"`
	Facility    HD     `json:"facility,omitzero"`
}

func pl(r Repetition) PL {
	return PL{PointOfCare: r.Get(1, 1), Room: r.Get(2, 1), Bed: r.Get(3, 1), Facility: hdSubs(r.Component(4))}
}

// MessageType is MSH-9: message code^trigger event^message structure.
type MessageType struct {
	Code      string `json:"code"`
	Trigger   string `json:"trigger,omitempty"`
	Structure string `json:"structure,omitempty"`
}

// VID is MSH-12: version id^internationalization code^international
// version; IHE PAM France 2.11 sends 2.5^FRA^2.11.
type VID struct {
	ID                   string `json:"id"`
	Country              string `json:"country,omitempty"`
	InternationalVersion string `json:"international_version,omitempty"`
}

// MSH is the message header.
type MSH struct {
	SendingApplication   HD          `json:"sending_application,omitzero"`   // MSH-3
	SendingFacility      HD          `json:"sending_facility,omitzero"`      // MSH-4: CHDEMO^420000002^FINESS
	ReceivingApplication HD          `json:"receiving_application,omitzero"` // MSH-5
	ReceivingFacility    HD          `json:"receiving_facility,omitzero"`    // MSH-6
	Time                 TS          `json:"time"`                           // MSH-7
	Type                 MessageType `json:"type"`                           // MSH-9
	ControlID            string      `json:"control_id"`                     // MSH-10
	ProcessingID         string      `json:"processing_id,omitempty"`        // MSH-11: P, T, D
	Version              VID         `json:"version"`                        // MSH-12
	Country              string      `json:"country,omitempty"`              // MSH-17
	Charset              string      `json:"charset"`                        // MSH-18, normalised
}

// MSH returns the message header, or nil and an error when there is none.
func (m *Message) MSH() (*MSH, error) {
	s := m.Segment("MSH")
	if s == nil {
		return nil, &ParseError{Segment: "MSH", Code: CodeSegmentSequence, Msg: "no MSH segment"}
	}
	r := segReader{seg: s, idx: 1}
	out := &MSH{
		SendingApplication:   hdComponents(s.Field(3).Rep(1)),
		SendingFacility:      hdComponents(s.Field(4).Rep(1)),
		ReceivingApplication: hdComponents(s.Field(5).Rep(1)),
		ReceivingFacility:    hdComponents(s.Field(6).Rep(1)),
		Time:                 r.ts(7),
		Type:                 MessageType{Code: s.Get(9, 1, 1, 1), Trigger: s.Get(9, 1, 2, 1), Structure: s.Get(9, 1, 3, 1)},
		ControlID:            s.Get(10, 1, 1, 1),
		ProcessingID:         s.Get(11, 1, 1, 1),
		Version:              VID{ID: s.Get(12, 1, 1, 1), Country: s.Get(12, 1, 2, 1), InternationalVersion: s.Get(12, 1, 3, 1)},
		Country:              s.Get(17, 1, 1, 1),
		Charset:              m.Charset(),
	}
	return out, r.err()
}

// EVN is the event type segment.
type EVN struct {
	Recorded TS `json:"recorded"` // EVN-2: when the movement was entered
	Planned  TS `json:"planned"`  // EVN-3: planned date (A16 pending discharge)
	Occurred TS `json:"occurred"` // EVN-6: when the event happened
}

// EVN returns the EVN segment, or nil when absent.
func (m *Message) EVN() (*EVN, error) {
	s := m.Segment("EVN")
	if s == nil {
		return nil, nil
	}
	r := segReader{seg: s, idx: 1}
	out := &EVN{Recorded: r.ts(2), Planned: r.ts(3), Occurred: r.ts(6)}
	return out, r.err()
}

// PID is the patient identification segment.
type PID struct {
	Identifiers []CX   `json:"identifiers,omitempty"` // PID-3: IPP (PI), INS…
	Names       []XPN  `json:"names,omitempty"`       // PID-5
	BirthDate   TS     `json:"birth_date"`            // PID-7
	Sex         string `json:"sex,omitempty"`         // PID-8: M, F, U…
	Addresses   []XAD  `json:"addresses,omitempty"`   // PID-11, with the BDL birthplace
	// AccountNumber is PID-18, the NDA (numéro de dossier administratif).
	AccountNumber  CX     `json:"account_number,omitzero"`
	DeathTime      TS     `json:"death_time"`                // PID-29
	DeathIndicator string `json:"death_indicator,omitempty"` // PID-30: Y or N
	// IdentityReliability is PID-32 (HL7 table 0445, national values): VALI
	// for a qualified identity whose INS may be used, PROV, VIDE, DOUB…
	IdentityReliability []string `json:"identity_reliability,omitempty"`
}

// PID returns the PID segment, or nil when absent.
func (m *Message) PID() (*PID, error) {
	s := m.Segment("PID")
	if s == nil {
		return nil, nil
	}
	r := segReader{seg: s, idx: 1}
	out := &PID{
		BirthDate:      r.ts(7),
		Sex:            s.Get(8, 1, 1, 1),
		AccountNumber:  cx(s.Field(18).Rep(1)),
		DeathTime:      r.ts(29),
		DeathIndicator: s.Get(30, 1, 1, 1),
	}
	for _, rep := range nonEmpty(s.Field(3)) {
		out.Identifiers = append(out.Identifiers, cx(rep))
	}
	for _, rep := range nonEmpty(s.Field(5)) {
		out.Names = append(out.Names, xpn(rep))
	}
	for _, rep := range nonEmpty(s.Field(11)) {
		out.Addresses = append(out.Addresses, xad(rep))
	}
	for _, rep := range nonEmpty(s.Field(32)) {
		out.IdentityReliability = append(out.IdentityReliability, rep.Get(1, 1))
	}
	return out, r.err()
}

// INS OIDs: INS-NIR, INS-NIA, and the test and demonstration NIR arcs.
const (
	OIDINSNIR     = "1.2.250.1.213.1.4.8"
	OIDINSNIA     = "1.2.250.1.213.1.4.9"
	OIDINSNIRTest = "1.2.250.1.213.1.4.10"
	OIDINSNIRDemo = "1.2.250.1.213.1.4.11"
)

// INS returns the first PID-3 identifier issued under one of the INS OIDs
// (production, NIA, test or demonstration: which are acceptable is the
// receiver's decision), or, failing that, typed INS. Whether it may be used
// depends on PID-32 (see Qualified).
func (p *PID) INS() (CX, bool) {
	for _, id := range p.Identifiers {
		switch id.AssigningAuthority.UniversalID {
		case OIDINSNIR, OIDINSNIA, OIDINSNIRTest, OIDINSNIRDemo:
			return id, true
		}
	}
	for _, id := range p.Identifiers {
		if id.TypeCode == "INS" {
			return id, true
		}
	}
	return CX{}, false
}

// Identifier returns the first PID-3 identifier of the given type code
// (e.g. PI for the IPP).
func (p *PID) Identifier(typeCode string) (CX, bool) {
	for _, id := range p.Identifiers {
		if id.TypeCode == typeCode {
			return id, true
		}
	}
	return CX{}, false
}

// HasReliability reports whether PID-32 holds code (e.g. VALI).
func (p *PID) HasReliability(code string) bool {
	for _, c := range p.IdentityReliability {
		if c == code {
			return true
		}
	}
	return false
}

// Name returns the first PID-5 name of the given type: L the birth name, D
// the used name.
func (p *PID) Name(typeCode string) (XPN, bool) {
	for _, n := range p.Names {
		if n.TypeCode == typeCode {
			return n, true
		}
	}
	return XPN{}, false
}

// Address returns the first PID-11 address of the given type (H home, BDL
// birthplace).
func (p *PID) Address(typ string) (XAD, bool) {
	for _, a := range p.Addresses {
		if a.Type == typ {
			return a, true
		}
	}
	return XAD{}, false
}

// BirthPlace returns the INSEE code of the commune of birth: XAD-9 of the
// BDL address.
func (p *PID) BirthPlace() string {
	a, _ := p.Address("BDL")
	return a.CountyCode
}

// ROL is a role segment. After PID/PD1, ROL-3 ODRP names the patient's
// médecin traitant (IHE PAM France).
type ROL struct {
	InstanceID EI     `json:"instance_id,omitzero"` // ROL-1
	Action     string `json:"action,omitempty"`     // ROL-2: AD, UC, DE…
	Role       CE     `json:"role"`                 // ROL-3: ODRP, ATND…
	Persons    []XCN  `json:"persons,omitempty"`    // ROL-4
}

// RoleODRP is the ROL-3 code of the médecin traitant.
const RoleODRP = "ODRP"

// ROL returns every ROL segment, in message order.
func (m *Message) ROL() []ROL {
	var out []ROL
	for _, s := range m.All("ROL") {
		r := ROL{InstanceID: ei(s.Field(1).Rep(1)), Action: s.Get(2, 1, 1, 1), Role: ce(s.Field(3).Rep(1))}
		for _, rep := range nonEmpty(s.Field(4)) {
			r.Persons = append(r.Persons, xcn(rep))
		}
		out = append(out, r)
	}
	return out
}

// DLD is a discharge location (PV1-37): location^effective date.
type DLD struct {
	Location string `json:"location,omitempty"`
	Date     TS     `json:"date"`
}

// PV1 is the patient visit segment.
type PV1 struct {
	PatientClass     string `json:"patient_class,omitempty"`     // PV1-2: I, O, E, R (séances), N…
	Location         PL     `json:"location,omitzero"`           // PV1-3
	AdmissionType    string `json:"admission_type,omitempty"`    // PV1-4 (HL7 table 0007)
	AttendingDoctors []XCN  `json:"attending_doctors,omitempty"` // PV1-7
	VisitNumber      CX     `json:"visit_number,omitzero"`       // PV1-19
	// DischargeDisposition is PV1-36, the circonstance de sortie (table
	// 0112 in its French version).
	DischargeDisposition string `json:"discharge_disposition,omitempty"`
	DischargedTo         DLD    `json:"discharged_to,omitzero"` // PV1-37
	AdmitTime            TS     `json:"admit_time"`             // PV1-44
	DischargeTime        TS     `json:"discharge_time"`         // PV1-45
}

// PV1 returns the PV1 segment, or nil when absent.
func (m *Message) PV1() (*PV1, error) {
	s := m.Segment("PV1")
	if s == nil {
		return nil, nil
	}
	r := segReader{seg: s, idx: 1}
	out := &PV1{
		PatientClass:         s.Get(2, 1, 1, 1),
		Location:             pl(s.Field(3).Rep(1)),
		AdmissionType:        s.Get(4, 1, 1, 1),
		VisitNumber:          cx(s.Field(19).Rep(1)),
		DischargeDisposition: s.Get(36, 1, 1, 1),
		DischargedTo:         DLD{Location: s.Get(37, 1, 1, 1), Date: r.tsAt(37, 2)},
		AdmitTime:            r.ts(44),
		DischargeTime:        r.ts(45),
	}
	for _, rep := range nonEmpty(s.Field(7)) {
		out.AttendingDoctors = append(out.AttendingDoctors, xcn(rep))
	}
	return out, r.err()
}

// ZBE is the IHE PAM France movement segment.
type ZBE struct {
	MovementID      EI     `json:"movement_id"`                // ZBE-1
	Time            TS     `json:"time"`                       // ZBE-2: start of the movement
	Action          string `json:"action"`                     // ZBE-4: INSERT, UPDATE, CANCEL
	Historic        string `json:"historic,omitempty"`         // ZBE-5: Y for a movement in the past
	OriginalTrigger string `json:"original_trigger,omitempty"` // ZBE-6: the trigger a Z99 corrects
	MedicalUnit     XON    `json:"medical_unit,omitzero"`      // ZBE-7: UF de responsabilité médicale
	NursingUnit     XON    `json:"nursing_unit,omitzero"`      // ZBE-8: UF de soins
	Nature          string `json:"nature,omitempty"`           // ZBE-9
}

// UF returns the code of the medical unit (ZBE-7.10).
func (z *ZBE) UF() string { return z.MedicalUnit.ID }

// ZBE returns the ZBE segment, or nil when absent.
func (m *Message) ZBE() (*ZBE, error) {
	s := m.Segment("ZBE")
	if s == nil {
		return nil, nil
	}
	r := segReader{seg: s, idx: 1}
	out := &ZBE{
		MovementID:      ei(s.Field(1).Rep(1)),
		Time:            r.ts(2),
		Action:          s.Get(4, 1, 1, 1),
		Historic:        s.Get(5, 1, 1, 1),
		OriginalTrigger: s.Get(6, 1, 1, 1),
		MedicalUnit:     xon(s.Field(7).Rep(1)),
		NursingUnit:     xon(s.Field(8).Rep(1)),
		Nature:          s.Get(9, 1, 1, 1),
	}
	return out, r.err()
}

// ZFM is the IHE PAM France PMSI segment: modes of entry and discharge as
// the PMSI codes them.
type ZFM struct {
	EntryMode     string `json:"entry_mode,omitempty"`     // ZFM-1: mode d'entrée
	DischargeMode string `json:"discharge_mode,omitempty"` // ZFM-2: mode de sortie: 6 mutation, 7 transfert, 8 domicile, 9 décès
	Origin        string `json:"origin,omitempty"`         // ZFM-3: mode de provenance
	Destination   string `json:"destination,omitempty"`    // ZFM-4: mode de destination
}

// ZFM returns the ZFM segment, or nil when absent.
func (m *Message) ZFM() *ZFM {
	s := m.Segment("ZFM")
	if s == nil {
		return nil
	}
	return &ZFM{EntryMode: s.Get(1, 1, 1, 1), DischargeMode: s.Get(2, 1, 1, 1),
		Origin: s.Get(3, 1, 1, 1), Destination: s.Get(4, 1, 1, 1)}
}

// DG1 is a diagnosis.
type DG1 struct {
	SetID    string `json:"set_id,omitempty"`   // DG1-1
	Code     CE     `json:"code"`               // DG1-3: CIM-10 code^text^I10
	Time     TS     `json:"time"`               // DG1-5
	Type     string `json:"type,omitempty"`     // DG1-6: A admitting, W working, F final
	Priority string `json:"priority,omitempty"` // DG1-15: 1 = principal diagnosis
}

// Principal reports whether DG1-15 marks the principal diagnosis.
func (d *DG1) Principal() bool { return d.Priority == "1" }

// DG1 returns every DG1 segment, in message order.
func (m *Message) DG1() ([]DG1, error) {
	var out []DG1
	var errs []error
	for i, s := range m.All("DG1") {
		r := segReader{seg: s, idx: i + 1}
		out = append(out, DG1{SetID: s.Get(1, 1, 1, 1), Code: ce(s.Field(3).Rep(1)), Time: r.ts(5),
			Type: s.Get(6, 1, 1, 1), Priority: s.Get(15, 1, 1, 1)})
		errs = append(errs, r.errs...)
	}
	return out, joinErrs(errs)
}

// nonEmpty drops the empty repetitions of f.
func nonEmpty(f Field) []Repetition {
	out := make([]Repetition, 0, len(f))
	for _, r := range f {
		if !(Field{r}).IsEmpty() {
			out = append(out, r)
		}
	}
	return out
}

// segReader reads typed values from one segment, collecting a *ParseError
// per unreadable field.
type segReader struct {
	seg  *Segment
	idx  int
	errs []error
}

func (r *segReader) ts(field int) TS { return r.tsAt(field, 1) }

func (r *segReader) tsAt(field, comp int) TS {
	v := r.seg.Get(field, 1, comp, 1)
	t, err := ParseTS(v)
	if err != nil {
		e := &ParseError{Segment: r.seg.ID, SegmentIndex: r.idx, Field: field, Code: CodeDataType,
			Msg: fmt.Sprintf("%s-%d: %v", r.seg.ID, field, err)}
		if comp > 1 {
			e.Component = comp
		}
		r.errs = append(r.errs, e)
	}
	return t
}

func (r *segReader) err() error { return joinErrs(r.errs) }

func joinErrs(errs []error) error {
	switch len(errs) {
	case 0:
		return nil
	case 1:
		return errs[0]
	}
	return errors.Join(errs...)
}
