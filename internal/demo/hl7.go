package demo

import (
	"fmt"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
)

// The demo hospitals speak HL7 v2.5 (IHE PAM France 2.11), as their
// patient administration systems would.

const insDemoOID = "1.2.250.1.213.1.4.11"

func hl7TS(t time.Time) string { return t.In(clock.Paris).Format("20060102150405") }

// segment writes a segment from its numbered fields.
func segment(name string, fields map[int]string) string {
	n := 0
	for i := range fields {
		n = max(n, i)
	}
	parts := make([]string, n+1)
	parts[0] = name
	for i, v := range fields {
		parts[i] = v
	}
	return strings.Join(parts, "|")
}

// ADT kinds the demo sends.
const (
	triggerAdmit     = "A01"
	triggerDischarge = "A03"
)

// adt writes the A01 (admission) or A03 (discharge) of a stay, sent at
// sent with control id ctrl.
func adt(s *Stay, trigger, ctrl string, sent time.Time) []byte {
	h, p := s.H, s.P
	assigner := func(kind string) string { return fmt.Sprintf("^^^%s&%s&ISO^%s", h.Namespace, h.OID, kind) }
	event := s.Admit
	if trigger == triggerDischarge {
		event = s.Discharge
	}
	var segs []string
	segs = append(segs,
		fmt.Sprintf("MSH|^~\\&|GAM_%s|%s^%s^FINESS|PASSERELLE|CPTS_DEMO|%s||ADT^%s^ADT_%s|%s|P|2.5^FRA^2.11|||||FRA|UNICODE UTF-8",
			h.Namespace, h.Namespace, h.FINESS, hl7TS(sent), trigger, trigger, ctrl),
		segment("EVN", map[int]string{2: hl7TS(sent), 6: hl7TS(event)}))
	ipp := fmt.Sprintf("%s%06d", h.Namespace[:2], p.N)
	pid := map[int]string{
		1:  "1",
		3:  ipp + assigner("PI") + "~" + p.INS + "^^^ASIP-SANTE-INS-NIR-DEMO&" + insDemoOID + "&ISO^INS",
		5:  p.Family + "^" + p.Given + "^" + p.Given + "^^^^L",
		7:  p.Birth.Format("20060102"),
		8:  p.Sex,
		11: fmt.Sprintf("%s^^%s^^%s^FRA^H~^^^^^FRA^BDL^^%s", p.Street, p.Commune.Name, p.Commune.Postal, p.BirthPlace),
		18: fmt.Sprintf("NDA%s%06d%02d", h.Namespace[:2], p.N, s.N) + assigner("AN"),
		32: "VALI",
	}
	if s.Dies && trigger == triggerDischarge {
		pid[29], pid[30] = hl7TS(s.Discharge), "Y"
	}
	segs = append(segs, segment("PID", pid))
	if p.GP >= 0 {
		g := members[p.GP]
		segs = append(segs, fmt.Sprintf("ROL|1|UC|ODRP|8%s^%s^%s^^^DR^^^ASIP-SANTE-PS&1.2.250.1.71.4.2.1&ISO^D^^^IDNPS",
			rppsOf(p.GP), g.family, g.given))
	}
	pv1 := map[int]string{1: "1", 2: "I", 3: s.Unit, 19: fmt.Sprintf("V%s%06d%02d", h.Namespace[:2], p.N, s.N) + assigner("VN"), 44: hl7TS(s.Admit)}
	if s.Elective {
		pv1[4] = "C"
	}
	if trigger == triggerDischarge {
		pv1[36], pv1[41], pv1[45] = "3", "D", hl7TS(s.Discharge)
	}
	segs = append(segs, segment("PV1", pv1))
	unitName := "CARDIOLOGIE"
	if s.Unit == h.Geriatrics {
		unitName = "GERIATRIE"
	}
	segs = append(segs, fmt.Sprintf("ZBE|MVT%s%06d%02d%s^%s^%s^ISO|%s||INSERT|N||%s^^^^^%s&%s&ISO^UF^^^%s",
		h.Namespace[:2], p.N, s.N, trigger, h.Namespace, h.OID, hl7TS(event), unitName, h.Namespace, h.OID, s.Unit))
	if trigger == triggerDischarge {
		mode := "8" // home
		if s.Dies {
			mode = "9"
		}
		segs = append(segs, "ZFM|8|"+mode+"|||")
	}
	if s.Diagnosis != "" {
		segs = append(segs, fmt.Sprintf("DG1|1||%s^%s^I10|||F", s.Diagnosis, s.DxText))
	}
	return []byte(strings.Join(segs, "\r") + "\r")
}
