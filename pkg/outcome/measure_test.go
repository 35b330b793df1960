package outcome

import (
	"math"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
)

func paris(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, clock.Paris)
	if err != nil {
		panic(err)
	}
	return t
}

const hf = "https://passerelle.health/fhir/PlanDefinition/hf-post-discharge"

// ep builds a patient with one episode discharged at dis from hospital
// 420000002 (index stay "idx-<id>").
func ep(id, dis string) *Record {
	d := paris(dis)
	return &Record{Patient: "p-" + id, Sex: "F", BirthDate: CivilDay(1945, 6, 1),
		Stays:    []Stay{{Encounter: "idx-" + id, Class: "IMP", Start: d.AddDate(0, 0, -5), End: d, FINESS: "420000002", HF: 'y'}},
		Episodes: []Episode{{ID: id, Status: "active", Pathway: hf, CPTS: "Organization/cpts", IndexEncounter: "idx-" + id, Discharge: d}}}
}

func (r *Record) stay(enc, start string, planned bool, hf byte) *Record {
	r.Stays = append(r.Stays, Stay{Encounter: enc, Class: "IMP", Planned: planned, Start: paris(start), FINESS: "420000003", HF: hf})
	return r
}

func (r *Record) died(at string) *Record { r.SetDeath(paris(at), "hospital"); return r }

func (r *Record) task(id, role, status, due, done string) *Record {
	t := Task{ID: id, Role: role, Status: status, Due: paris(due)}
	if done != "" {
		t.Done = paris(done)
	}
	r.Episodes[0].Tasks = append(r.Episodes[0].Tasks, t)
	return r
}

// cohort is the hand-built cohort; now is 2025-12-31 12:00 in Paris.
func cohort() []*Record {
	e9 := ep("e9", "2025-05-01 10:00")
	e9.Episodes[0].Status = "entered-in-error"
	return []*Record{
		// e1: readmitted on D0+30 late in the evening (Paris), for another
		// reason than HF; first nurse visit on D+3; GP visit late.
		ep("e1", "2025-01-10 10:00").stay("r1", "2025-02-09 23:30", false, 'n').
			task("t1", "nurse", "completed", "2025-01-13 23:59", "2025-01-13 18:00").
			task("t2", "gp", "completed", "2025-01-17 23:59", "2025-01-19 10:00"),
		// e2: readmitted on D0+31 half an hour after midnight in Paris
		// (still 2025-02-09 in UTC), for HF; GP visit on D+8; a cancelled task.
		ep("e2", "2025-01-10 10:00").stay("r2", "2025-02-10 00:30", false, 'y').
			task("t3", "gp", "completed", "2025-01-17 23:59", "2025-01-18 09:00").
			task("t4", "nurse", "cancelled", "2025-01-13 23:59", ""),
		// e3: a transfer the same day and a planned stay: no readmission;
		// only the pharmacist came (not a visit for first contact).
		ep("e3", "2025-03-01 09:00").stay("x3", "2025-03-01 15:00", false, 'y').stay("p3", "2025-03-06 08:00", true, 'y').
			task("t5", "pharmacist", "completed", "2025-03-08 23:59", "2025-03-02 10:00"),
		// e4: died on D0 after the discharge.
		ep("e4", "2025-03-01 09:00").died("2025-03-01 20:00"),
		// e5: died on D+10, never readmitted.
		ep("e5", "2025-04-01 12:00").died("2025-04-11 08:00"),
		// e6: readmitted on D+15 (HF status unknown), died on D+20.
		ep("e6", "2025-04-01 12:00").stay("r6", "2025-04-16 12:00", false, '?').died("2025-04-21 08:00"),
		// e7: discharged two weeks ago: windows of 30 days and more still
		// open; the nurse came on D+2; a cardiology visit due in February.
		ep("e7", "2025-12-15 11:00").task("t6", "nurse", "completed", "2025-12-18 23:59", "2025-12-17 10:00").
			task("t7", "cardiologist", "requested", "2026-02-13 23:59", ""),
		// e8: readmitted on D+100 (HF unknown) and D+150 (not HF); a nurse
		// task overdue and not done.
		ep("e8", "2025-05-01 10:00").stay("r8a", "2025-08-09 10:00", false, '?').stay("r8b", "2025-09-28 10:00", false, 'n').
			task("t8", "nurse", "requested", "2025-05-04 23:59", ""),
		// e9: entered in error: in no population.
		e9,
		// e10: discharged in 2024: outside the period.
		ep("e10", "2024-12-20 10:00").stay("r10", "2025-01-05 10:00", false, 'y'),
	}
}

func TestMeasuresOnHandBuiltCohort(t *testing.T) {
	p := Params{Start: CivilDay(2025, 1, 1), End: CivilDay(2025, 12, 31), Now: paris("2025-12-31 12:00")}
	results, err := Evaluate(p, cohort())
	if err != nil {
		t.Fatal(err)
	}
	// Initial population: e1…e8 (e9 entered in error, e10 in 2024).
	want := map[string]Counts{
		// 30 days: e7 censored (window open); e1 readmitted on day 30
		// (event), e2 on day 31 (no event), e3 none (transfer, planned),
		// e4 died D0 and e5 died D+10 before any readmission (excluded:
		// the competing event), e6 readmitted D+15 before its death
		// (event), e8 none in 30 days.
		Readmission30: {Initial: 8, Denominator: 5, Numerator: 2, Exclusions: 2, ExcludedDeath: 2, Censored: 1},
		// 180 days: e7 censored; events e1, e2, e6, e8 (D+100); e3 not;
		// e4, e5 excluded.
		Readmission180: {Initial: 8, Denominator: 5, Numerator: 4, Exclusions: 2, ExcludedDeath: 2, Censored: 1},
		// HF: e2 (y) event; e8 (?, then n) unknown; e1 (n) no; e6's
		// readmission is of unknown status and it died: excluded with
		// e4 and e5.
		HFReadmission: {Initial: 8, Denominator: 4, Numerator: 1, Exclusions: 3, ExcludedDeath: 3, Censored: 1, Unknown: 1},
		// 180 days: deaths e4, e5, e6; e7 censored.
		Mortality180: {Initial: 8, Denominator: 7, Numerator: 3, Censored: 1},
		// 365 days: every window (discharged 2025) is still open on
		// 2025-12-31, the deaths' as well: nothing complete.
		Mortality365: {Initial: 8, Censored: 8},
		// 7 days: e1 (D+3) and e7 (D+2) yes; e2 (D+8), e3 (pharmacist
		// only), e6, e8 (none) no; e4 (died D0) and e5 (died D+10? no: a
		// death after the window) — e5 counts, without a contact.
		FirstContact7: {Initial: 8, Denominator: 7, Numerator: 2, Exclusions: 1},
		// Tasks with a due date, not cancelled: t1 on time, t2 late, t3
		// late, t5 on time, t6 on time, t7 not yet due (censored), t8
		// overdue and not done.
		TasksOnTime: {Initial: 7, Denominator: 6, Numerator: 3, Censored: 1},
	}
	for _, r := range results {
		if got := r.Counts; got != want[r.Measure.ID] {
			t.Errorf("%s: got %+v, want %+v", r.Measure.ID, got, want[r.Measure.ID])
		}
	}
	// Strata: all in one pathway and hospital; sex female; age band from
	// 1945-06-01: 79 at a 2025 discharge.
	r30 := results[0]
	if c, ok := r30.Stratum(StratPathway, "hf-post-discharge"); !ok || c != r30.Counts {
		t.Errorf("pathway stratum = %+v, %v; want the total %+v", c, ok, r30.Counts)
	}
	if c, ok := r30.Stratum(StratAgeBand, "75-84"); !ok || c.Initial != 8 {
		t.Errorf("age band 75-84 = %+v, %v", c, ok)
	}
	if c, ok := r30.Stratum(StratHospital, "420000002"); !ok || c.Numerator != 2 {
		t.Errorf("hospital stratum = %+v, %v", c, ok)
	}
}

func TestReadmissionDay30And31InParis(t *testing.T) {
	now := paris("2025-06-01 12:00")
	p := Params{Start: CivilDay(2025, 1, 1), End: CivilDay(2025, 12, 31), Now: now}
	d, _ := Lookup(Readmission30)
	for _, tc := range []struct {
		name, start string
		event       bool
	}{
		{"day 30, 23:59 Paris", "2025-02-09 23:59", true},
		{"day 31, 00:00 Paris (23:00 UTC the day before)", "2025-02-10 00:00", false},
		{"day 1", "2025-01-11 00:00", true},
		{"day 0 (a transfer)", "2025-01-10 18:00", false},
	} {
		r := ep("x", "2025-01-10 10:00").stay("r", tc.start, false, 'n')
		c := Cases(r, p.Start, p.End)[0]
		if _, _, ev := Classify(d, c, p); ev != tc.event {
			t.Errorf("%s: event = %v, want %v", tc.name, ev, tc.event)
		}
	}
	// Summer time: a discharge on the last Sunday of March is counted in
	// calendar days, not in 24-hour periods.
	r := ep("y", "2025-03-30 01:30").stay("r", "2025-04-29 23:30", false, 'n')
	if _, _, ev := Classify(d, Cases(r, p.Start, p.End)[0], p); !ev {
		t.Error("readmission on D0+30 across the change to summer time not counted")
	}
}

func TestWindowElapsesAtParisMidnight(t *testing.T) {
	d, _ := Lookup(Readmission30)
	r := ep("z", "2025-01-10 10:00")
	for _, tc := range []struct {
		now      string
		censored bool
	}{{"2025-02-09 23:59", true}, {"2025-02-10 00:00", false}} {
		p := Params{Start: CivilDay(2025, 1, 1), End: CivilDay(2025, 12, 31), Now: paris(tc.now)}
		if _, c, _ := Classify(d, Cases(r, p.Start, p.End)[0], p); c != tc.censored {
			t.Errorf("at %s: censored = %v, want %v", tc.now, c, tc.censored)
		}
	}
}

func TestMortalityWaitsForTheRegister(t *testing.T) {
	d, _ := Lookup(Mortality180)
	r := ep("m", "2025-01-10 10:00") // last day D0+180 = 2025-07-09
	p := Params{Start: CivilDay(2025, 1, 1), End: CivilDay(2025, 12, 31), Now: paris("2025-09-01 00:00")}
	covered := map[int]bool{}
	p.RegisterCovers = func(d Day) bool { return covered[d.Month()] }
	if _, c, _ := Classify(d, Cases(r, p.Start, p.End)[0], p); !c {
		t.Error("window closed before the July register was imported")
	}
	covered[202507] = true
	if _, c, _ := Classify(d, Cases(r, p.Start, p.End)[0], p); c {
		t.Error("window still censored once July is covered")
	}
	// A known death inside the window does not close it early: deaths
	// and survivors wait for the same register.
	delete(covered, 202507)
	r.died("2025-05-01 10:00")
	if _, c, _ := Classify(d, Cases(r, p.Start, p.End)[0], p); !c {
		t.Error("known death counted before the register covers its window")
	}
}

func TestWilsonExamplesFromDomain(t *testing.T) {
	for _, tc := range []struct {
		k, n   int
		lo, hi float64
	}{{10, 190, 2.88, 9.42}, {6, 209, 1.32, 6.12}, {34, 200, 12.43, 22.82}} {
		lo, hi := Wilson(tc.k, tc.n, Z95)
		if math.Abs(lo*100-tc.lo) > 0.005 || math.Abs(hi*100-tc.hi) > 0.005 {
			t.Errorf("Wilson(%d/%d) = [%.2f, %.2f], want [%.2f, %.2f]", tc.k, tc.n, lo*100, hi*100, tc.lo, tc.hi)
		}
	}
}

func TestKaplanMeierByHand(t *testing.T) {
	// 6 subjects: events at 2, 2, 5; censored at 3, 6, 8.
	// S(2) = 1 - 2/6 = 4/6; at 3 one censored; S(5) = 4/6 × (1 - 1/3) = 4/9.
	obs := []Obs{{2, true}, {2, true}, {3, false}, {5, true}, {6, false}, {8, false}}
	c := KaplanMeier("x", obs, []int{0, 4, 7})
	if got := c.At(2); math.Abs(got-4.0/6) > 1e-12 {
		t.Errorf("S(2) = %v", got)
	}
	if got := c.At(5); math.Abs(got-4.0/9) > 1e-12 {
		t.Errorf("S(5) = %v", got)
	}
	if got, want := c.AtRisk, []int{6, 3, 1}; len(got) != 3 || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
		t.Errorf("at risk = %v, want %v", got, want)
	}
	if s := c.Steps[2]; s.Day != 5 || s.AtRisk != 3 || s.Lower >= s.Survival || s.Upper <= s.Survival {
		t.Errorf("step at 5 = %+v", s)
	}
}

func TestCurvesOfCohort(t *testing.T) {
	p := Params{Start: CivilDay(2025, 1, 1), End: CivilDay(2025, 12, 31), Now: paris("2025-12-31 12:00")}
	b := NewCurveBuilder(p, CurveSurvival, "", 365)
	for _, r := range cohort() {
		b.Add(r)
	}
	cs := b.Curves(nil)
	if len(cs) != 1 || cs[0].N != 8 {
		t.Fatalf("curves = %+v", cs)
	}
	// Deaths at day 0 (e4), 10 (e5), 20 (e6) among 8 at risk; e7,
	// discharged 16 days ago, is censored at day 16 before e6 dies:
	// S(20) = 7/8 × 6/7 × 4/5 = 0.6.
	if got := cs[0].At(20); math.Abs(got-0.6) > 1e-12 {
		t.Errorf("S(20) = %v, want 0.6", got)
	}
}

func TestRecordRoundTrip(t *testing.T) {
	for _, r := range cohort() {
		r.Family, r.Given, r.BirthPlace = "Dupont|Durand;x", []string{"Marie,Claire", "Anne%"}, "42187"
		got, err := DecodeRecord(r.Encode())
		if err != nil {
			t.Fatal(err)
		}
		if got.Encode() != r.Encode() {
			t.Errorf("round trip:\n%s\n%s", r.Encode(), got.Encode())
		}
		if got.Family != r.Family || len(got.Given) != 2 || got.Given[0] != "Marie,Claire" || got.Given[1] != "Anne%" {
			t.Errorf("traits: %q %q", got.Family, got.Given)
		}
	}
}

func TestMaskSmallCellsWithSecondarySuppression(t *testing.T) {
	r := &Result{Counts: Counts{Initial: 40, Denominator: 30, Exclusions: 0, Numerator: 12, Censored: 10},
		Stratifiers: []Strata{{Code: StratSex, Strata: []Stratum{
			{Value: "female", Counts: Counts{Initial: 25, Denominator: 20, Numerator: 5, Censored: 5}},
			{Value: "male", Counts: Counts{Initial: 15, Denominator: 10, Numerator: 7, Censored: 5}},
		}}}}
	m := Mask(r, DefaultThreshold)
	f, _ := m.Stratum(StratSex, "female")
	ma, _ := m.Stratum(StratSex, "male")
	// Numerators 5 and 7 are small; both hidden: the total 12 cannot
	// reveal either. Censored 5 and 5 small, hidden; total censored 10 is
	// small too. Within female: initial 25 = denominator 20 + 0 + hidden:
	// the denominator must go too.
	if f.Numerator != Masked || ma.Numerator != Masked || m.Censored != Masked {
		t.Errorf("primary: %+v %+v %+v", f, ma, m.Counts)
	}
	if f.Denominator != Masked && f.Initial != Masked {
		t.Errorf("female: the hidden censored count can be recomputed: %+v", f)
	}
	if m.Counts.Initial != 40 || r.Stratifiers[0].Strata[0].Numerator != 5 {
		t.Error("masking changed what it must not")
	}
	if _, _, _, ok := f.Rate(); ok {
		t.Error("a rate with a masked numerator is shown")
	}
	// One small cell among larger ones: the next smallest goes too.
	r2 := &Result{Counts: Counts{Initial: 100}, Stratifiers: []Strata{{Code: StratHospital, Strata: []Stratum{
		{Value: "a", Counts: Counts{Initial: 3}}, {Value: "b", Counts: Counts{Initial: 40}}, {Value: "c", Counts: Counts{Initial: 57}}}}}}
	m2 := Mask(r2, DefaultThreshold)
	if a, _ := m2.Stratum(StratHospital, "a"); a.Initial != Masked {
		t.Error("3 shown")
	}
	if b, _ := m2.Stratum(StratHospital, "b"); b.Initial != Masked {
		t.Error("secondary suppression missed: 100 - 57 - 40 reveals 3")
	}
	if c, _ := m2.Stratum(StratHospital, "c"); c.Initial != 57 {
		t.Error("57 masked without need")
	}
}

func TestKaplanMeierAtTheHorizon(t *testing.T) {
	for _, tc := range []struct {
		name string
		obs  []Obs
		ok   bool
		est  float64
		risk int
	}{
		// Events at 2 and 5 among 4, one censored at 3, one followed to
		// 10: S(10) = 3/4 × 1/2 = 3/8 (2 at risk at 5); at risk at 10: 1.
		{"followed to the horizon", []Obs{{2, true}, {3, false}, {5, true}, {10, false}}, true, 5.0 / 8, 1},
		// Nobody followed to day 10 and the curve above 0: no estimate.
		{"nobody reached the horizon", []Obs{{2, true}, {3, false}, {5, false}}, false, 1.0 / 3, 0},
		// Everybody had the event: 100 %, known.
		{"curve down to 0", []Obs{{2, true}, {5, true}}, true, 1, 0},
	} {
		var h Histogram
		for _, o := range tc.obs {
			h.Add(o)
		}
		km := h.EstimateAt(10)
		if km.OK != tc.ok || math.Abs(km.Estimate-tc.est) > 1e-12 || km.AtRisk != tc.risk {
			t.Errorf("%s: %+v, want ok %v estimate %v at risk %d", tc.name, km, tc.ok, tc.est, tc.risk)
		}
	}
}
