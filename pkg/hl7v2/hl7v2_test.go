package hl7v2

import (
	"bytes"
	"errors"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustParseFile(t testing.TB, name string) *Message {
	t.Helper()
	data, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := Parse(data)
	if err != nil {
		t.Fatalf("Parse(%s): %v", name, err)
	}
	return m
}

const a03 = "adt-a03-cardiology-discharge.hl7"

func TestEscapedAmpersandInStreet(t *testing.T) {
	m := mustParseFile(t, a03)
	pid, err := m.PID()
	if err != nil {
		t.Fatal(err)
	}
	home, ok := pid.Address("H")
	if !ok {
		t.Fatal("no home address")
	}
	if want := "Lotissement Les Prés & Bois"; home.Street != want {
		t.Errorf("street = %q, want %q", home.Street, want)
	}
	if got := m.Get("PID-11.1"); got != home.Street {
		t.Errorf(`Get("PID-11.1") = %q`, got)
	}
	enc := m.Encode()
	if !bytes.Contains(enc, []byte(`Lotissement Les Prés \T\ Bois^^ROANNE`)) {
		t.Errorf("encoded street lost its \\T\\ escape: %q", enc)
	}
}

// TestByteIdenticalReencode checks that messages needing no escape changes
// come back byte for byte, whatever their character set.
func TestByteIdenticalReencode(t *testing.T) {
	for _, name := range []string{a03, "adt-a03-in-hospital-death.hl7", "adt-a13-cancel-discharge.hl7",
		"adt-a01-admission-odrp.hl7", "adt-a03-several-dg1.hl7", "adt-z99-update.hl7", "adt-a03-latin9.hl7"} {
		t.Run(name, func(t *testing.T) {
			data, _ := os.ReadFile("testdata/" + name)
			m, err := Parse(data)
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Encode(); !bytes.Equal(got, data) {
				t.Errorf("Encode differs from the input:\n got %q\nwant %q", got, data)
			}
		})
	}
}

func TestSeparatorsLFandCRLFParseAsCR(t *testing.T) {
	cr := mustParseFile(t, a03)
	crlf := mustParseFile(t, "adt-a03-crlf-separators.hl7")
	if !reflect.DeepEqual(cr, crlf) {
		t.Error("CRLF-separated message differs from the CR one")
	}
	lf := mustParseFile(t, "adt-a03-lf-separators.hl7")
	// The LF sample is the same message under another control id.
	if got := lf.Get("MSH-10"); got != "MSG000300" {
		t.Fatalf("LF MSH-10 = %q", got)
	}
	lf.Segment("MSH").SetField(10, NewField("MSG000123"))
	if !reflect.DeepEqual(cr, lf) {
		t.Error("LF-separated message differs from the CR one")
	}
	if !bytes.Equal(cr.Encode(), lf.Encode()) {
		t.Error("LF-separated message does not encode as the CR one")
	}
}

func TestTypedA03(t *testing.T) {
	m := mustParseFile(t, a03)
	msh, err := m.MSH()
	if err != nil {
		t.Fatal(err)
	}
	if msh.SendingFacility != (HD{"CHX_CARDIO", "420000002", "FINESS"}) {
		t.Errorf("MSH-4 = %+v", msh.SendingFacility)
	}
	if msh.Type != (MessageType{"ADT", "A03", "ADT_A03"}) || msh.ControlID != "MSG000123" {
		t.Errorf("MSH-9/10 = %+v %q", msh.Type, msh.ControlID)
	}
	if msh.Version != (VID{"2.5", "FRA", "2.11"}) || msh.Charset != "UNICODE UTF-8" {
		t.Errorf("MSH-12/18 = %+v %q", msh.Version, msh.Charset)
	}

	pid, err := m.PID()
	if err != nil {
		t.Fatal(err)
	}
	ins, ok := pid.INS()
	if !ok || ins.ID != "248034218701255" || ins.AssigningAuthority.UniversalID != OIDINSNIRTest || ins.TypeCode != "INS" {
		t.Errorf("INS = %+v, %v", ins, ok)
	}
	if ins.AssigningAuthority.Namespace != "ASIP-SANTE-INS-NIR-TEST" || ins.AssigningAuthority.UniversalIDType != "ISO" {
		t.Errorf("INS authority = %+v", ins.AssigningAuthority)
	}
	if ipp, _ := pid.Identifier("PI"); ipp.ID != "000123456" {
		t.Errorf("IPP = %+v", ipp)
	}
	if !pid.HasReliability("VALI") || !reflect.DeepEqual(pid.IdentityReliability, []string{"VALI"}) {
		t.Errorf("PID-32 = %v", pid.IdentityReliability)
	}
	if n, _ := pid.Name("L"); n.Family != "TESTDURAND" || n.Given != "MARIE" || n.OtherGiven != "MARIE CLAIRE" {
		t.Errorf("birth name = %+v", n)
	}
	if pid.BirthPlace() != "42187" || pid.Sex != "F" || pid.BirthDate.String() != "19480315" {
		t.Errorf("birth place %q, sex %q, birth date %q", pid.BirthPlace(), pid.Sex, pid.BirthDate)
	}
	if pid.AccountNumber.ID != "NDA000789" || pid.AccountNumber.TypeCode != "AN" {
		t.Errorf("PID-18 = %+v", pid.AccountNumber)
	}

	rols := m.ROL()
	if len(rols) != 1 || rols[0].Role.Code != RoleODRP || len(rols[0].Persons) != 1 {
		t.Fatalf("ROL = %+v", rols)
	}
	// The shared sample carries idNat_PS 810000000009 (8 + an RPPS with a
	// valid Luhn key).
	if p := rols[0].Persons[0]; p.ID != "810000000009" || p.TypeCode != "IDNPS" || p.RPPS() != "10000000009" ||
		p.AssigningAuthority.UniversalID != OIDIdNatPS || p.Family != "GENERALISTE" || p.Given != "ANNE" {
		t.Errorf("ROL-4 = %+v", p)
	}

	pv1, err := m.PV1()
	if err != nil {
		t.Fatal(err)
	}
	if pv1.PatientClass != "I" || pv1.Location.PointOfCare != "6000" || pv1.VisitNumber.ID != "V0004567" ||
		pv1.DischargeDisposition != "3" {
		t.Errorf("PV1 = %+v", pv1)
	}
	wantDischarge := time.Date(2026, 10, 3, 15, 0, 0, 0, Paris)
	if !pv1.DischargeTime.Time.Equal(wantDischarge) || pv1.DischargeTime.Time.Location() != Paris ||
		pv1.DischargeTime.Precision != PrecisionSecond {
		t.Errorf("PV1-45 = %v (%v)", pv1.DischargeTime.Time, pv1.DischargeTime.Precision)
	}
	if _, off := pv1.DischargeTime.Time.Zone(); off != 2*3600 {
		t.Errorf("PV1-45 offset = %d, want CEST", off)
	}

	zbe, err := m.ZBE()
	if err != nil {
		t.Fatal(err)
	}
	if zbe.MovementID.ID != "MVT000042" || zbe.Action != "INSERT" || zbe.UF() != "6000" || zbe.MedicalUnit.TypeCode != "UF" {
		t.Errorf("ZBE = %+v", zbe)
	}
	if z := m.ZFM(); z == nil || z.DischargeMode != "8" || z.EntryMode != "8" {
		t.Errorf("ZFM = %+v", z)
	}
	dg, err := m.DG1()
	if err != nil || len(dg) != 1 || dg[0].Code != (CE{"I50.1", "Insuffisance ventriculaire gauche", "I10"}) || dg[0].Type != "F" {
		t.Errorf("DG1 = %+v, %v", dg, err)
	}
	evn, err := m.EVN()
	if err != nil || !evn.Occurred.Time.Equal(wantDischarge) || evn.Recorded.String() != "20261003153000" {
		t.Errorf("EVN = %+v, %v", evn, err)
	}
}

func TestTypedOtherMessages(t *testing.T) {
	a01 := mustParseFile(t, "adt-a01-admission-odrp.hl7")
	rol := a01.ROL()
	if len(rol) != 1 || rol[0].Role.Code != "ODRP" || rol[0].Persons[0].ID != "810000000017" || rol[0].Persons[0].RPPS() != "10000000017" {
		t.Errorf("A01 ROL = %+v", rol)
	}
	if msh, _ := a01.MSH(); !msh.Time.Offset || msh.Time.Time.Format(time.RFC3339) != "2026-10-12T08:15:00+02:00" {
		t.Errorf("A01 MSH-7 = %+v", msh.Time)
	}
	pid, _ := a01.PID()
	if n, _ := pid.Name("D"); n.Family != "TESTMOREAU" {
		t.Errorf("used name = %+v", n)
	}

	death := mustParseFile(t, "adt-a03-in-hospital-death-corrected.hl7")
	pid, _ = death.PID()
	if pid.DeathIndicator != "Y" || pid.DeathTime.String() != "20261003143000" || death.ZFM().DischargeMode != "9" {
		t.Errorf("death = %q %q %q", pid.DeathIndicator, pid.DeathTime, death.ZFM().DischargeMode)
	}
	// The shared sample of an in-hospital death puts the death date and
	// indicator three fields early (PID-26/27) and the discharge mode in
	// ZFM-1: read by HL7 numbering, it carries no death at all.
	shared := mustParseFile(t, "adt-a03-in-hospital-death.hl7")
	pid, _ = shared.PID()
	if pid.DeathIndicator != "" || !pid.DeathTime.IsZero() || shared.Get("PID-26") != "20261003143000" ||
		shared.Get("PID-27") != "Y" || shared.ZFM().EntryMode != "9" || shared.ZFM().DischargeMode != "8" {
		t.Errorf("shared death sample = %q %q %+v", pid.DeathIndicator, pid.DeathTime, shared.ZFM())
	}

	a13 := mustParseFile(t, "adt-a13-cancel-discharge.hl7")
	if zbe, _ := a13.ZBE(); zbe.Action != "CANCEL" || a13.Get("MSH-9.2") != "A13" || a13.Get("MSH-9.3") != "ADT_A01" {
		t.Errorf("A13 ZBE = %+v", zbe)
	}

	dg1 := mustParseFile(t, "adt-a03-several-dg1.hl7")
	dgs, err := dg1.DG1()
	if err != nil || len(dgs) != 3 {
		t.Fatalf("DG1 = %+v, %v", dgs, err)
	}
	var principal []string
	for _, d := range dgs {
		if d.Principal() {
			principal = append(principal, d.Code.Code)
		}
	}
	if !reflect.DeepEqual(principal, []string{"I50.1"}) || dgs[2].Code.Text != "Diabète sucré de type 2, sans complication" {
		t.Errorf("principal = %v, %+v", principal, dgs)
	}
	pv1, _ := dg1.PV1()
	if pv1.DischargedTo.Location != "420000101" || dg1.ZFM().DischargeMode != "7" || dg1.ZFM().Destination != "2" {
		t.Errorf("transfer: %+v %+v", pv1.DischargedTo, dg1.ZFM())
	}

	z99 := mustParseFile(t, "adt-z99-update.hl7")
	if zbe, _ := z99.ZBE(); zbe.Action != "UPDATE" || zbe.OriginalTrigger != "A03" {
		t.Errorf("Z99 ZBE = %+v", zbe)
	}
}

func TestLatin9(t *testing.T) {
	data, _ := os.ReadFile("testdata/adt-a03-latin9.hl7")
	if !bytes.Contains(data, []byte{'L', 0xBC, 'U'}) {
		t.Fatal("test file is not ISO 8859-15")
	}
	m, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := m.PID()
	if n, _ := pid.Name("L"); n.Family != "TESTLŒUVRE" || n.Given != "HÉLÈNE" {
		t.Errorf("name = %+v", n)
	}
	if a, _ := pid.Address("H"); a.OtherDesignation != "Bâtiment Cœur, caution 50 €" {
		t.Errorf("address = %+v", a)
	}
	// Under 8859/1 the same byte is ¼, not Œ.
	m1, err := Parse(bytes.Replace(data, []byte("8859/15"), []byte("8859/1"), 1))
	if err != nil {
		t.Fatal(err)
	}
	if got := m1.Get("PID-5.1"); got != "TESTL¼UVRE" {
		t.Errorf("8859/1 name = %q", got)
	}
	// An ACK to a Latin-9 message is Latin-9 too.
	ack := Ack(m, AckAccept, []AckError{{Message: "reçu €"}}, time.Now(), "A1").Encode()
	if !bytes.Contains(ack, []byte("|8859/15")) || !bytes.Contains(ack, []byte{'r', 'e', 0xE7, 'u', ' ', 0xA4}) {
		t.Errorf("ACK not in 8859/15: %q", ack)
	}
	// A character Latin-9 cannot hold becomes '?'.
	m.Segment("PID").SetField(5, NewField("TESTŁ"))
	if enc := m.Encode(); !bytes.Contains(enc, []byte("|TEST?|")) {
		t.Errorf("unrepresentable rune: %q", enc)
	}
}

func TestGet(t *testing.T) {
	m := mustParseFile(t, "adt-a03-several-dg1.hl7")
	esc := mustParseFile(t, "adt-a03-escapes.hl7")
	tests := []struct {
		m    *Message
		path string
		want string
	}{
		{m, "MSH-1", "|"},
		{m, "MSH-2", `^~\&`},
		{m, "MSH-4.2", "420000002"},
		{m, "MSH-9.2", "A03"},
		{m, "PID-3.4.2", "2.999.250.1.1"},
		{esc, "PID-3[2].1", "265054218712316"},
		{esc, "PID-3[2].4.2", OIDINSNIRTest},
		{esc, "PID-3[3].5", "NH"},
		{esc, "PID-3[4].1", ""},
		{esc, "PID-5[2].1", "TESTO'BRIEN-DURAND"},
		{esc, "PID-5.1", "TESTO^BRIEN"},
		{esc, "ZBE-7.1", "CARDIO | USIC"},
		{esc, "ROL[2]-3", "ATND"},
		{esc, "NTE-3", `Texte avec \Zcustom\ séquence et A hexadécimal`},
		{m, "DG1[2]-3.1", "I10"},
		{m, "DG1[3]-3.2", "Diabète sucré de type 2, sans complication"},
		{m, "DG1[4]-3.1", ""},
		{m, "ZZZ-1", ""},
		{m, "PV1-99", ""},
		{m, "pid-3", ""},
		{m, "PID-3.", ""},
		{m, "PID-0", ""},
		{m, "PID-3[x]", ""},
	}
	for _, tt := range tests {
		if got := tt.m.Get(tt.path); got != tt.want {
			t.Errorf("Get(%q) = %q, want %q", tt.path, got, tt.want)
		}
	}
	if got := esc.Value("PID", 1, 3, 2, 4, 1); got != "ASIP-SANTE-INS-NIR-TEST" {
		t.Errorf("Value = %q", got)
	}
	p, err := ParsePath("DG1[2]-3[2].4.5")
	if err != nil || p != (Path{"DG1", 2, 3, 2, 4, 5}) || p.String() != "DG1[2]-3[2].4.5" {
		t.Errorf("ParsePath = %+v, %v", p, err)
	}
	if _, err := ParsePath("PID-3.1.2.3"); err == nil {
		t.Error("ParsePath accepted a fourth level")
	}
}

func TestEscapes(t *testing.T) {
	tests := []struct {
		name, wire, value string
		reencoded         string // when Encode writes another form than wire
	}{
		{"delimiters", `a\F\b\S\c\T\d\R\e\E\f`, `a|b^c&d~e\f`, ""},
		{"hex CR", `x\X0D\y`, "x\ry", ""},
		{"line break", `x\.br\y`, "x\ny", ""},
		{"hex UTF-8", `\XC3A9\t\XC3A9\`, "été", "été"},
		{"hex lower-case digits", `\Xc3a9\`, "é", "é"},
		{"hex invalid UTF-8 kept", `\XFF\`, `\XFF\`, ""},
		{"hex odd length kept", `\X0\`, `\X0\`, ""},
		{"hex not hex kept", `\XZZ\`, `\XZZ\`, ""},
		{"highlight kept", `\H\bold\N\`, `\H\bold\N\`, ""},
		{"custom kept", `\Zabc\`, `\Zabc\`, ""},
		{"charset escape kept", `\C2842\x\C2842\`, `\C2842\x\C2842\`, ""},
		{"empty sequence kept", `a\\b`, `a\\b`, ""},
		{"lone escape", `C:\dir`, `C:\dir`, `C:\E\dir`},
		{"windows path", `C:\dir\file`, `C:\dir\file`, ""},
		{"literal known sequence", `\E\F\E\`, `\F\`, ""},
		{"MLLP block chars", `\X0B\\X1C\`, "\x0b\x1c", ""},
		{"unicode", "Œuvre €", "Œuvre €", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5\rNTE|1||" + tt.wire + "\r"
			m, err := Parse([]byte(raw))
			if err != nil {
				t.Fatal(err)
			}
			if got := m.Get("NTE-3"); got != tt.value {
				t.Errorf("value = %q, want %q", got, tt.value)
			}
			want := tt.wire
			if tt.reencoded != "" {
				want = tt.reencoded
			}
			enc := string(m.Encode())
			if got := enc[strings.Index(enc, "NTE|1||")+7 : len(enc)-1]; got != want {
				t.Errorf("encoded = %q, want %q", got, want)
			}
			checkRoundTrip(t, m)
		})
	}
}

func TestEncodeEscapesProgrammaticValues(t *testing.T) {
	m := &Message{Segments: []Segment{{ID: "MSH"}, {ID: "NTE"}}}
	msh := &m.Segments[0]
	msh.SetField(1, NewField("|"))
	msh.SetField(2, NewField(`^~\&`))
	msh.SetField(9, NewField("ADT", "A01"))
	msh.SetField(10, NewField("1"))
	msh.SetField(12, NewField("2.5"))
	m.Segments[1].SetField(3, NewField("a|b^c~d&e\\f\rg\nh\x0bi\x1cj"))
	got := string(m.Encode())
	want := "MSH|^~\\&|||||||ADT^A01|1||2.5\rNTE|||a\\F\\b\\S\\c\\R\\d\\T\\e\\E\\f\\X0D\\g\\.br\\h\\X0B\\i\\X1C\\j\r"
	if got != want {
		t.Errorf("Encode =\n%q\nwant\n%q", got, want)
	}
	checkRoundTrip(t, m)
}

func TestDelimiters(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		wantErr string // substring; "" = parses
		field   int
	}{
		{"standard", "MSH|^~\\&|A|B|C|D|2026||ADT^A01|1|P|2.5\rPID|1", "", 0},
		{"other characters", "MSH#$*!@#A#B#C#D#2026##ADT$A01#1#P#2.5\rPID#1$2*3$4", "", 0},
		{"truncation character", "MSH|^~\\&#|A|B|C|D|2026||ADT^A01|1|P|2.5\rPID|1#", "", 0},
		{"short prefix", "MSH|^~\\|A|B|C|D|2026||ADT^A01|1|P|2.5\rPID|a&b", "", 0},
		{"two characters", "MSH|^~|A|B|C|D|2026||ADT^A01|1|P|2.5\rPID|a&b\\F\\", "", 0},
		{"short ambiguous", "MSH|^~&|A|B|C|D|2026||ADT^A01|1|P|2.5", "incomplete", 2},
		{"missing", "MSH||A|B|C|D|2026||ADT^A01|1|P|2.5", "missing", 2},
		{"duplicate", "MSH|^^\\&|A|B|C|D|2026||ADT^A01|1|P|2.5", "distinct", 2},
		{"field separator in MSH-2", "MSH|^|\\&|A|B", "", 0},
		{"letter separator", "MSHX^~\\&XA", "punctuation", 1},
		{"digit in MSH-2", "MSH|^~1&|A", "punctuation", 2},
		{"too long", "MSH|^~\\&#X|A", "more than five", 2},
		{"only MSH", "MSH", "MSH-1", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := Parse([]byte(tt.raw))
			if tt.name == "field separator in MSH-2" {
				// MSH-2 is "^" (a valid prefix) and the rest is fields; MSH-9
				// is then missing.
				var pe *ParseError
				if !errors.As(err, &pe) || pe.Field != 9 {
					t.Fatalf("error = %v", err)
				}
				return
			}
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Parse(%q): %v", tt.raw, err)
				}
				if m.Get("MSH-10") != "1" || m.Get("MSH-9.2") != "A01" {
					t.Errorf("MSH-9/10 = %q %q", m.Get("MSH-9"), m.Get("MSH-10"))
				}
				checkRoundTrip(t, m)
				return
			}
			var pe *ParseError
			if !errors.As(err, &pe) || !strings.Contains(pe.Msg, tt.wantErr) || pe.Field != tt.field || pe.Segment != "MSH" {
				t.Fatalf("Parse(%q) error = %#v, want %q at MSH-%d", tt.raw, err, tt.wantErr, tt.field)
			}
			if pe.AckCode() != AckReject {
				t.Errorf("AckCode = %s, want AR", pe.AckCode())
			}
		})
	}
	m, _ := Parse([]byte("MSH#$*!@#A#B#C#D#2026##ADT$A01#1#P#2.5\rPID#1$2*3$4@x!F!"))
	if got := m.Value("PID", 1, 1, 2, 2, 2); got != "x#" {
		t.Errorf("custom delimiters: PID-1[2].2.2 = %q", got)
	}
}

func TestShortEncodingCharacters(t *testing.T) {
	// With MSH-2 "^~\" there is no sub-component separator: & is data.
	m, err := Parse([]byte("MSH|^~\\|A|B|||20260101||ADT^A01|1|P|2.5\rPID|||X^^^NS&1.2&ISO^PI\r"))
	if err != nil {
		t.Fatal(err)
	}
	if got := m.Get("PID-3.4"); got != "NS&1.2&ISO" {
		t.Errorf("PID-3.4 = %q", got)
	}
	if d := m.Delimiters(); d.SubComponent != 0 || d.Escape != '\\' {
		t.Errorf("delimiters = %+v", d)
	}
	checkRoundTrip(t, m)
}

func TestParseErrors(t *testing.T) {
	const msh = "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5"
	tests := []struct {
		name                        string
		raw                         string
		seg                         string
		segIndex, field, comp, line int
		code                        int
		ack                         string
	}{
		{"empty", "", "", 0, 0, 0, 1, CodeSegmentSequence, "AR"},
		{"blank lines", "\r\n\r\n", "", 0, 0, 0, 3, CodeSegmentSequence, "AR"},
		{"no MSH", "EVN||2026\rPID|1", "EVN", 1, 0, 0, 1, CodeSegmentSequence, "AR"},
		{"batch", "FHS|^~\\&\r" + msh, "FHS", 1, 0, 0, 1, CodeSegmentSequence, "AR"},
		{"lower-case id", msh + "\rpid|1", "", 0, 0, 0, 2, CodeSegmentSequence, "AE"},
		{"long id", msh + "\rPIDX|1", "", 0, 0, 0, 2, CodeSegmentSequence, "AE"},
		{"short id", msh + "\n\nPI", "", 0, 0, 0, 3, CodeSegmentSequence, "AE"},
		{"second MSH", msh + "\r" + msh, "MSH", 2, 0, 0, 2, CodeSegmentSequence, "AR"},
		{"charset", "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P|2.5|||||FRA|UNICODE UTF-16", "MSH", 1, 18, 0, 1, CodeTableValue, "AR"},
		{"invalid UTF-8", msh + "\rEVN||2026\rPID|1||X||A^B\xe9", "PID", 1, 5, 2, 3, CodeDataType, "AE"},
		{"invalid UTF-8 in MSH", "MSH|^~\\&|A\xff|B|C|D|20260101||ADT^A01|1|P|2.5", "MSH", 1, 3, 1, 1, CodeDataType, "AR"},
		{"no MSH-9", "MSH|^~\\&|A|B|C|D|20260101|||1|P|2.5", "MSH", 1, 9, 0, 0, CodeRequiredFieldMissing, "AR"},
		{"no MSH-10", "MSH|^~\\&|A|B|C|D|20260101||ADT^A01||P|2.5", "MSH", 1, 10, 0, 0, CodeRequiredFieldMissing, "AR"},
		{"no MSH-12", "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|1|P", "MSH", 1, 12, 0, 0, CodeRequiredFieldMissing, "AR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse([]byte(tt.raw))
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("error = %v, want a *ParseError", err)
			}
			got := []int{pe.SegmentIndex, pe.Field, pe.Component, pe.Line, pe.Code}
			want := []int{tt.segIndex, tt.field, tt.comp, tt.line, tt.code}
			if pe.Segment != tt.seg || !reflect.DeepEqual(got, want) {
				t.Errorf("error %q at %s %v, want %s %v", pe.Msg, pe.Segment, got, tt.seg, want)
			}
			if pe.AckCode() != tt.ack {
				t.Errorf("AckCode = %s, want %s", pe.AckCode(), tt.ack)
			}
		})
	}
}

func TestTolerance(t *testing.T) {
	want := mustParseFile(t, a03)
	data, _ := os.ReadFile("testdata/" + a03)
	variants := map[string][]byte{
		"BOM":                append([]byte("\xEF\xBB\xBF"), data...),
		"leading blank line": append([]byte("\r\n"), data...),
		"no trailing CR":     bytes.TrimSuffix(data, []byte("\r")),
		"blank lines":        bytes.ReplaceAll(data, []byte("\r"), []byte("\r\r \r")),
		"mixed":              bytes.Replace(bytes.Replace(data, []byte("\r"), []byte("\n"), 2), []byte("\r"), []byte("\r\n"), 2),
	}
	for name, v := range variants {
		m, err := Parse(v)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !reflect.DeepEqual(m, want) {
			t.Errorf("%s: parses differently", name)
		}
	}
}

func TestParseHeader(t *testing.T) {
	data, _ := os.ReadFile("testdata/" + a03)
	for _, n := range []int{len(data), 120, 60} {
		m, err := ParseHeader(data[:n])
		if err != nil {
			t.Fatalf("ParseHeader(%d bytes): %v", n, err)
		}
		if len(m.Segments) != 1 || m.Get("MSH-3") != "GAM_CHX" {
			t.Errorf("ParseHeader(%d bytes) = %+v", n, m)
		}
		if n >= 120 && m.Get("MSH-10") != "MSG000123" {
			t.Errorf("ParseHeader(%d bytes): MSH-10 = %q", n, m.Get("MSH-10"))
		}
	}
	// Unusable MSH-2 and a bad charset: still readable with defaults.
	m, err := ParseHeader([]byte("MSH|^^|APP|FAC|||2026||ADT^A03|X1|P|2.5|||||FRA|EBCDIC\rPID"))
	if err != nil || m.Get("MSH-10") != "X1" {
		t.Errorf("ParseHeader with bad MSH-2 = %v, %v", m, err)
	}
	if _, err := ParseHeader([]byte("PID|1")); err == nil {
		t.Error("ParseHeader without MSH succeeded")
	}
}

func TestParseTS(t *testing.T) {
	tests := []struct {
		in      string
		want    string // RFC 3339
		prec    Precision
		wantErr bool
	}{
		{"", "", PrecisionNone, false},
		{"2026", "2026-01-01T00:00:00+01:00", PrecisionYear, false},
		{"202610", "2026-10-01T00:00:00+02:00", PrecisionMonth, false},
		{"20261003", "2026-10-03T00:00:00+02:00", PrecisionDay, false},
		{"2026100315", "2026-10-03T15:00:00+02:00", PrecisionHour, false},
		{"202610031530", "2026-10-03T15:30:00+02:00", PrecisionMinute, false},
		{"20261003153000", "2026-10-03T15:30:00+02:00", PrecisionSecond, false},
		{"20260115153000", "2026-01-15T15:30:00+01:00", PrecisionSecond, false},
		{"20261003153000.1", "2026-10-03T15:30:00.1+02:00", PrecisionDecisecond, false},
		{"20261003153000.1234", "2026-10-03T15:30:00.1234+02:00", PrecisionTenthMillisecond, false},
		{"20261003153000+0000", "2026-10-03T15:30:00Z", PrecisionSecond, false},
		{"20261003153000-0500", "2026-10-03T15:30:00-05:00", PrecisionSecond, false},
		{"20261003+0200", "2026-10-03T00:00:00+02:00", PrecisionDay, false},
		{" 20261003 ", "2026-10-03T00:00:00+02:00", PrecisionDay, false},
		{"20240229", "2024-02-29T00:00:00+01:00", PrecisionDay, false},
		{"20250229", "", 0, true},
		{"20261301", "", 0, true},
		{"20261003250000", "", 0, true},
		{"2026100315300", "", 0, true},
		{"2026-10-03", "", 0, true},
		{"20261003.5", "", 0, true},
		{"20261003153000.12345", "", 0, true},
		{"20261003153000+02", "", 0, true},
		{"20261003153000+2400", "", 0, true},
		{"X", "", 0, true},
	}
	for _, tt := range tests {
		ts, err := ParseTS(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseTS(%q) error = %v", tt.in, err)
			continue
		}
		if err != nil {
			continue
		}
		got := ""
		if !ts.IsZero() {
			got = ts.Time.Format(time.RFC3339Nano)
		}
		if got != tt.want || ts.Precision != tt.prec {
			t.Errorf("ParseTS(%q) = %s %v, want %s %v", tt.in, got, ts.Precision, tt.want, tt.prec)
		}
		if tt.in != "" && strings.TrimSpace(tt.in) != ts.String() {
			t.Errorf("ParseTS(%q).String() = %q", tt.in, ts.String())
		}
	}
}

func TestAckAccept(t *testing.T) {
	m := mustParseFile(t, a03)
	now := time.Date(2026, 10, 3, 13, 30, 5, 0, time.UTC)
	ack := Ack(m, AckAccept, nil, now, "ACK42")
	got := string(ack.Encode())
	want := "MSH|^~\\&|PASSERELLE|CPTS_EXEMPLE|GAM_CHX|CHX_CARDIO^420000002^FINESS|20261003153005+0200||ACK^A03^ACK|ACK42|P|2.5^FRA^2.11|||||FRA|UNICODE UTF-8\r" +
		"MSA|AA|MSG000123\r"
	if got != want {
		t.Errorf("ACK =\n%q\nwant\n%q", got, want)
	}
	checkRoundTrip(t, ack)
}

func TestAckErrors(t *testing.T) {
	m := mustParseFile(t, a03)
	now := time.Date(2026, 10, 3, 13, 30, 5, 0, time.UTC)
	errs := []AckError{
		{Location: Location{Segment: "PID", Sequence: 1, Field: 3}, Code: CodeRequiredFieldMissing, Message: "PID-3 INS or IPP required"},
		{Location: Location{Segment: "PID", Sequence: 1, Field: 3, Repetition: 2, Component: 4, SubComponent: 2}, Code: CodeTableValue, Severity: SeverityWarning, Message: "unknown OID"},
		{Code: CodeInternal},
	}
	lines := strings.Split(strings.TrimSuffix(string(Ack(m, AckApplicationError, errs, now, "ACK43").Encode()), "\r"), "\r")
	want := []string{
		"MSA|AE|MSG000123|PID-3 INS or IPP required",
		"ERR||PID^1^3|101^Required field missing^HL70357|E||||PID-3 INS or IPP required",
		"ERR||PID^1^3^2^4^2|103^Table value not found^HL70357|W||||unknown OID",
		"ERR|||207^Application internal error^HL70357|E",
	}
	if !reflect.DeepEqual(lines[1:], want) {
		t.Errorf("ACK segments =\n%q\nwant\n%q", lines[1:], want)
	}

	// From a *ParseError.
	_, err := Parse([]byte("MSH|^~\\&|A|B|C|D|2026||ADT^A01|M1|P|2.5\rPID|1||X||A^B\xe9"))
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Fatal(err)
	}
	hdr, _ := ParseHeader([]byte("MSH|^~\\&|A|B|C|D|2026||ADT^A01|M1|P|2.5\rPID|1||X||A^B\xe9"))
	got := string(Ack(hdr, pe.AckCode(), []AckError{pe.AckError()}, now, "A2").Encode())
	if !strings.Contains(got, "\rMSA|AE|M1|") || !strings.Contains(got, "\rERR||PID^1^5^1^2|102^Data type error^HL70357|E||||invalid UTF-8") {
		t.Errorf("ACK from ParseError = %q", got)
	}
	if ae := AckErrors(errors.Join(pe, errors.New("disk full"))); len(ae) != 2 || ae[1].Code != CodeInternal || strings.Contains(ae[1].Message, "disk") {
		t.Errorf("AckErrors = %+v", ae)
	}
}

func TestAckWithoutMessage(t *testing.T) {
	now := time.Date(2026, 10, 3, 13, 30, 5, 0, time.UTC)
	got := string(Ack(nil, AckReject, []AckError{{Code: CodeUnsupportedMessageType, Message: "not HL7"}}, now, "A3").Encode())
	want := "MSH|^~\\&|||||20261003153005+0200||ACK|A3|P|2.5\rMSA|AR||not HL7\rERR|||200^Unsupported message type^HL70357|E||||not HL7\r"
	if got != want {
		t.Errorf("ACK =\n%q\nwant\n%q", got, want)
	}
}

func TestLocationString(t *testing.T) {
	tests := []struct {
		l    Location
		want string
	}{
		{Location{}, ""},
		{Location{Segment: "PID"}, "PID"},
		{Location{Segment: "PID", Field: 3}, "PID^1^3"},
		{Location{Segment: "PID", Sequence: 1, Field: 3, Repetition: 1}, "PID^1^3^1"},
		{Location{Segment: "PID", Sequence: 2, Field: 3, Component: 4}, "PID^2^3^^4"},
	}
	for _, tt := range tests {
		if got := tt.l.String(); got != tt.want {
			t.Errorf("%+v.String() = %q, want %q", tt.l, got, tt.want)
		}
	}
}
