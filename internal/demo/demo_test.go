package demo

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir/ident"
	"github.com/passerelle-sante/passerelle/pkg/hl7v2"
	"github.com/passerelle-sante/passerelle/pkg/outcome"
)

var (
	testStart = time.Date(2025, 8, 1, 7, 0, 0, 0, clock.Paris)
	testEnd   = time.Date(2026, 11, 1, 7, 0, 0, 0, clock.Paris)
)

// The plan is a function of the seed and the dates, and another seed gives
// another population.
func TestPlanIsReproducible(t *testing.T) {
	a, b := NewPlan(42, testStart, testEnd), NewPlan(42, testStart, testEnd)
	if sig(a) != sig(b) {
		t.Fatal("the same seed gave two plans")
	}
	if sig(a) == sig(NewPlan(43, testStart, testEnd)) {
		t.Fatal("two seeds gave the same plan")
	}
}

func sig(p *Plan) string {
	var b strings.Builder
	for _, pt := range p.Patients {
		b.WriteString(pt.INS + pt.Family + pt.Given)
		for _, s := range pt.Stays {
			b.WriteString(s.Admit.String() + s.Discharge.String() + s.Diagnosis)
		}
		if pt.Death != nil {
			b.WriteString(pt.Death.At.String() + pt.Death.Source)
		}
	}
	return b.String()
}

// The population has the size and rates the demo promises: about 200
// heart-failure patients over 15 months, some falls, readmissions, deaths
// of every source, stays of both hospitals; every identifier valid; stays
// in order and none after the death.
func TestPlanRates(t *testing.T) {
	p := NewPlan(1, testStart, testEnd)
	count := map[string]int{}
	ins := map[string]bool{}
	for _, pt := range p.Patients {
		count[pt.Pathway]++
		if err := ident.CheckINS(pt.INS); err != nil {
			t.Errorf("patient %d: INS %s: %v", pt.N, pt.INS, err)
		}
		if ins[pt.INS] {
			t.Errorf("INS %s twice", pt.INS)
		}
		ins[pt.INS] = true
		if pt.INS[5:10] != pt.BirthPlace {
			t.Errorf("patient %d: INS %s does not carry the birth place %s", pt.N, pt.INS, pt.BirthPlace)
		}
		if len(pt.Stays) == 0 {
			t.Fatalf("patient %d has no stay", pt.N)
		}
		idx := pt.Stays[0]
		if !idx.Discharge.After(p.Start) || !idx.Discharge.Before(p.End) || !idx.Admit.Before(idx.Discharge) {
			t.Errorf("patient %d: index stay %v – %v outside the simulation", pt.N, idx.Admit, idx.Discharge)
		}
		for i, s := range pt.Stays {
			if s.N != i+1 || !s.Admit.Before(s.Discharge) || (i > 0 && !s.Admit.After(pt.Stays[i-1].Discharge)) {
				t.Errorf("patient %d: stay %d out of order", pt.N, i+1)
			}
			if i > 0 && !s.Elective && !s.Dies {
				count["readmission"]++
				if s.Admit.Sub(idx.Discharge) <= 30*24*time.Hour {
					count["readmission-30d"]++
				}
			}
			if s.Dies {
				count["died-in-hospital"]++
				if pt.Death == nil || !pt.Death.At.Equal(s.Discharge) || i != len(pt.Stays)-1 {
					t.Errorf("patient %d: death in hospital not at the end of the last stay", pt.N)
				}
			}
			if pt.Death != nil && s.Admit.After(pt.Death.At) {
				t.Errorf("patient %d: stay after the death", pt.N)
			}
			count["hospital-"+s.H.ID]++
			if s.Diagnosis == "" {
				count["no-diagnosis"]++
			}
		}
		if pt.Death != nil {
			count["death-"+pt.Death.Source]++
		}
	}
	t.Logf("%v", count)
	n := count[HeartFailure]
	if n < 180 || n > 230 || count[Fall] < 15 {
		t.Errorf("%d heart-failure and %d fall patients", n, count[Fall])
	}
	for _, k := range []string{"readmission", "readmission-30d", "died-in-hospital", "death-team", "death-register",
		"hospital-" + Forez.ID, "no-diagnosis"} {
		if count[k] == 0 {
			t.Errorf("no %s in the plan", k)
		}
	}
	if r := float64(count["readmission"]) / float64(len(p.Patients)); r < 0.1 || r > 0.4 {
		t.Errorf("readmissions per patient %.2f", r)
	}
}

// Every message parses as IHE PAM France ADT with the patient's traits,
// a valid demo INS and the stay's dates.
func TestMessages(t *testing.T) {
	p := NewPlan(1, testStart, testEnd)
	for _, pt := range p.Patients[:40] {
		for _, s := range pt.Stays {
			for _, trig := range []string{triggerAdmit, triggerDischarge} {
				raw := adt(s, trig, "X1", s.Discharge)
				msg, err := hl7v2.Parse(raw)
				if err != nil {
					t.Fatalf("patient %d %s: %v\n%s", pt.N, trig, err, bytes.ReplaceAll(raw, []byte("\r"), []byte("\n")))
				}
				mh, _ := msg.MSH()
				if mh.Type.Trigger != trig || mh.SendingFacility.UniversalID != s.H.FINESS {
					t.Errorf("MSH %+v", mh)
				}
				pid, err := msg.PID()
				if err != nil {
					t.Fatal(err)
				}
				var insOK bool
				for _, id := range pid.Identifiers {
					if id.TypeCode == "INS" && id.ID == pt.INS && id.AssigningAuthority.UniversalID == insDemoOID {
						insOK = true
					}
				}
				if !insOK || pid.Sex != pt.Sex || pid.BirthDate.Time.Format("20060102") != pt.Birth.Format("20060102") {
					t.Errorf("patient %d: PID %+v", pt.N, pid)
				}
				pv1, err := msg.PV1()
				if err != nil {
					t.Fatal(err)
				}
				if !pv1.AdmitTime.Time.Equal(s.Admit.Truncate(time.Second)) || pv1.VisitNumber.ID == "" {
					t.Errorf("patient %d: PV1 admit %v, want %v", pt.N, pv1.AdmitTime.Time, s.Admit)
				}
				if trig == triggerDischarge && !pv1.DischargeTime.Time.Equal(s.Discharge) {
					t.Errorf("patient %d: PV1 discharge %v, want %v", pt.N, pv1.DischargeTime.Time, s.Discharge)
				}
				if trig == triggerDischarge && s.Dies && pid.DeathIndicator != "Y" {
					t.Errorf("patient %d: death not in PID-30", pt.N)
				}
			}
		}
	}
}

// The member file goes through the directory's own parser without an
// error, with valid RPPS and FINESS numbers and unique logins.
func TestMembersCSV(t *testing.T) {
	rows, errs := directory.ParseCSV(bytes.NewReader(MembersCSV()))
	if len(errs) > 0 {
		t.Fatalf("member file: %v", errs)
	}
	logins := map[string]bool{}
	for _, l := range Logins() {
		if logins[l] {
			t.Errorf("login %s twice", l)
		}
		logins[l] = true
	}
	if len(rows) != len(members) || len(Logins()) < 38 {
		t.Errorf("%d rows, %d accounts", len(rows), len(Logins()))
	}
	roles := map[string]int{}
	for _, r := range rows {
		roles[r.Role]++
	}
	for _, role := range []string{directory.RoleNurse, directory.RoleGP, directory.RolePharmacist, directory.RoleCardiologist} {
		if roles[role] < 2 {
			t.Errorf("%d members of role %s", roles[role], role)
		}
	}
	for _, h := range []Hospital{CHDemo, Forez} {
		if err := ident.CheckFINESS(h.FINESS); err != nil {
			t.Errorf("%s: %v", h.Name, err)
		}
	}
	for _, ph := range pharmacies {
		if err := ident.CheckFINESS(ph.FINESS); err != nil {
			t.Errorf("%s: %v", ph.Name, err)
		}
	}
}

// A register line written for a patient reads back with the patient's
// traits and matches them.
func TestDeathLineMatchesThePatient(t *testing.T) {
	pt := NewPlan(1, testStart, testEnd).Patients[3]
	died := time.Date(2026, 3, 14, 10, 0, 0, 0, clock.Paris)
	line := deathLine(pt.Family, pt.Given, pt.Sex, pt.Birth, pt.BirthPlace, died, 7)
	d, err := outcome.ParseDeathLine(line)
	if err != nil {
		t.Fatal(err)
	}
	rec := &outcome.Record{Sex: pt.Sex, Family: pt.Family, Given: []string{pt.Given}, BirthPlace: pt.BirthPlace,
		BirthDate: outcome.DayOf(pt.Birth)}
	if !outcome.MatchTraits(rec, d) || d.DeathDate != "20260314" {
		t.Fatalf("line %q read as %+v, not matching %+v", line, d, rec)
	}
}
