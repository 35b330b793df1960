package outcomes

import (
	"context"
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/outcome"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// The hand-counted cohort. Evaluation on 2025-04-15 12:00 in Paris: the
// last day over is 2025-04-14. The register of deaths is tracked. Period:
// discharges from 2024-01-01 to 2025-03-31. Days are calendar days in
// Europe/Paris counted from the discharge day D0.
//
//	q1, q2, q3  discharged 2024-03-02 10:00 (winter time). Summer time
//	            begins on 2024-03-31, day 29. q1 dies on 2024-03-31 23:30
//	            (21:30 UTC): day 29. q2 on 2024-04-01 00:30 (still
//	            2024-03-31 in UTC): day 30. q3 on 2024-04-02 01:00
//	            (2024-04-01 in UTC): day 31.
//	q4          discharged 2024-06-10 10:00; admitted again the same day at
//	            18:00 (day 0: continues the index stay, never a
//	            readmission), then an unplanned heart-failure stay on
//	            2024-07-20: day 40.
//	q5          lost to follow-up: discharged 2025-03-20, nothing known
//	            since: stays observed to 2025-04-14 (day 25), deaths to the
//	            register's end, 2025-03-31 (day 11).
//	q6          discharged 2024-09-05; died on 2024-10-20 (day 45), known
//	            only from the INSEE file of October 2024, imported later.
//	q7          discharged 2024-05-01; two unplanned stays on 2024-05-13
//	            (day 12), one without diagnosis at 08:00, one for heart
//	            failure at 16:00 in another hospital: one readmission.
//	q8          discharged 2024-02-01; readmitted on day 5 for pneumonia
//	            (not heart failure).
//	q9          discharged 2024-02-01; nothing happens.
//
// Windows (last day D0+N; complete when over by 2025-04-14 and, for
// mortality, in a month the register covers):
//
//	      D0          +30         +180        +365
//	q1-3  2024-03-02  2024-04-01  2024-08-29  2025-03-02
//	q4    2024-06-10  2024-07-10  2024-12-07  2025-06-10 (open)
//	q5    2025-03-20  (open)      (open)      (open)
//	q6    2024-09-05  2024-10-05  2025-03-04  2025-09-05 (open)
//	q7    2024-05-01  2024-05-31  2024-10-28  2025-05-01 (open)
//	q8,9  2024-02-01  2024-03-02  2024-07-30  2025-01-31
func (r *rig) handCountedCohort() {
	dead := func(p map[string]any, at string) {
		p["deceasedDateTime"] = iso(at)
		r.deliver(DurablePatient, r.svc.HandlePatient, nil, p)
	}
	q := map[string]map[string]any{}
	for _, x := range []struct{ id, family, given, sex, birth string }{
		{"q1", "Vingtneuf", "Alice", "female", "1940-01-01"}, {"q2", "Trente", "Bruno", "male", "1941-02-02"},
		{"q3", "Trenteun", "Chloe", "female", "1942-03-03"}, {"q4", "Memejour", "Denis", "male", "1943-04-04"},
		{"q5", "Perdu", "Emma", "female", "1944-05-05"}, {"q6", "Registre", "Lucie", "female", "1941-04-02"},
		{"q7", "Deuxsejours", "Gilles", "male", "1945-07-07"}, {"q8", "Pneumonie", "Hugo", "male", "1946-08-08"},
		{"q9", "Tranquille", "Ines", "female", "1947-09-09"},
	} {
		q[x.id] = patient(x.id, x.family, x.given, x.sex, x.birth, "42187")
	}
	index := func(id, admit, discharge string) {
		r.stay("discharge", q[id], "i-"+id, "h1", admit, discharge, false, "I50.9")
		r.episode("ep-"+id, id, "i-"+id, discharge, "active")
	}
	for _, id := range []string{"q1", "q2", "q3"} {
		index(id, "2024-02-25 09:00", "2024-03-02 10:00")
	}
	dead(q["q1"], "2024-03-31 23:30")
	dead(q["q2"], "2024-04-01 00:30")
	dead(q["q3"], "2024-04-02 01:00")
	index("q4", "2024-06-01 09:00", "2024-06-10 10:00")
	r.stay("admit", q["q4"], "a-q4-d0", "h2", "2024-06-10 18:00", "", false, "I50.9")
	r.stay("admit", q["q4"], "a-q4", "h1", "2024-07-20 09:00", "", false, "I50.9")
	index("q5", "2025-03-15 09:00", "2025-03-20 10:00")
	index("q6", "2024-09-01 09:00", "2024-09-05 10:00")
	index("q7", "2024-04-25 09:00", "2024-05-01 10:00")
	r.stay("admit", q["q7"], "a-q7-1", "h1", "2024-05-13 08:00", "", false, "")
	r.stay("admit", q["q7"], "a-q7-2", "h2", "2024-05-13 16:00", "", false, "I50.1")
	index("q8", "2024-01-25 09:00", "2024-02-01 10:00")
	r.stay("admit", q["q8"], "a-q8", "h1", "2024-02-06 10:00", "", false, "J18.9")
	index("q9", "2024-01-25 09:00", "2024-02-01 10:00")
}

// kmSimple is a second Kaplan–Meier, written from the textbook formula
// and independent of pkg/outcome: at each distinct event time t ≤ horizon,
// n = subjects with time ≥ t, d = events at t; S ×= 1 − d/n; Greenwood
// sums d / (n (n − d)); the 95 % interval of S is S^exp(±1.96 √G / |ln S|)
// (log-log). It returns 1 − S and the interval of 1 − S, and the number
// with time ≥ horizon.
func kmSimple(obs []outcome.Obs, horizon int) (est, lo, hi float64, atRisk int) {
	var times []int
	seen := map[int]bool{}
	for _, o := range obs {
		if o.Event && o.Time <= horizon && !seen[o.Time] {
			seen[o.Time] = true
			times = append(times, o.Time)
		}
		if o.Time >= horizon {
			atRisk++
		}
	}
	sort.Ints(times)
	s, g := 1.0, 0.0
	for _, t := range times {
		n, d := 0, 0
		for _, o := range obs {
			if o.Time >= t {
				n++
			}
			if o.Time == t && o.Event {
				d++
			}
		}
		s *= 1 - float64(d)/float64(n)
		if n > d {
			g += float64(d) / float64(n*(n-d))
		}
	}
	sLo, sHi := s, s
	if s > 0 && s < 1 && g > 0 {
		se := math.Sqrt(g) / math.Abs(math.Log(s))
		sLo, sHi = math.Pow(s, math.Exp(1.96*se)), math.Pow(s, math.Exp(-1.96*se))
	}
	return 1 - s, 1 - sHi, 1 - sLo, atRisk
}

func TestHandCountedCohort(t *testing.T) {
	ev := func(day int) outcome.Obs { return outcome.Obs{Time: day, Event: true} }
	cens := func(day int) outcome.Obs { return outcome.Obs{Time: day} }
	type want struct {
		counts outcome.Counts
		// obs are each patient's Kaplan–Meier observation, q1 … q9,
		// worked out by hand; km is 1 − S(N), also by hand.
		obs    []outcome.Obs
		km     float64
		atRisk int
	}
	// After every register month from January 2024 to March 2025 is in
	// (deaths known to 2025-03-31).
	wants := map[string]want{
		// Complete: all but q5. q1 (day 29) and q2 (day 30) died before
		// any readmission: excluded, the competing event. q3 died on day
		// 31, outside: counted, no event. q4's day-0 stay is no
		// readmission, day 40 is outside. Events q7 (12), q8 (5): 2/6.
		// KM: events at 5 (9 at risk) and 12 (8): S = 8/9 × 7/8 = 7/9,
		// 1 − S = 2/9 = 0.2222; Greenwood 1/72 + 1/56 = 0.0317; q5 is
		// censored at 25, q1 at 29 (its death); at risk at 30: q2, q3,
		// q4, q6, q9. Interval [0.0607, 0.6353].
		outcome.Readmission30: {outcome.Counts{Initial: 9, Denominator: 6, Numerator: 2, Exclusions: 2, ExcludedDeath: 2, Censored: 1},
			[]outcome.Obs{cens(29), cens(30), cens(30), cens(30), cens(25), cens(30), ev(12), ev(5), cens(30)}, 2.0 / 9, 5},
		// q1, q2, q3 and q6 (day 45) died before any readmission:
		// excluded. Events q4 (40), q7 (12), q8 (5); q9 none: 3/4.
		// KM: S = 8/9 × 7/8 × 2/3 (3 at risk at day 40: q4, q6, q9) =
		// 14/27; 1 − S = 13/27 = 0.4815; at risk at 180: q9.
		outcome.Readmission180: {outcome.Counts{Initial: 9, Denominator: 4, Numerator: 3, Exclusions: 4, ExcludedDeath: 4, Censored: 1},
			[]outcome.Obs{cens(29), cens(30), cens(31), ev(40), cens(25), cens(45), ev(12), ev(5), cens(180)}, 13.0 / 27, 1},
		// Heart failure: q7's first stay of day 12 has no diagnosis, the
		// second is heart failure: event on day 12. q4 (40) event; q8's
		// pneumonia is not: 2/4. KM: S = 8/9 × 3/4 (4 at risk at 40: q4,
		// q6, q8, q9) = 2/3; 1 − S = 1/3; at risk at 180: q8, q9.
		outcome.HFReadmission: {outcome.Counts{Initial: 9, Denominator: 4, Numerator: 2, Exclusions: 4, ExcludedDeath: 4, Censored: 1},
			[]outcome.Obs{cens(29), cens(30), cens(31), ev(40), cens(25), cens(45), ev(12), cens(180), cens(180)}, 1.0 / 3, 2},
		// Complete: all but q5 (window running). Deaths q1, q2, q3 and q6
		// (register): 4/8. KM: q5 censored at 11 (register's end), then
		// 29: 7/8, 30: 6/7, 31: 5/6, 45: 4/5 → S = 4/8; 1 − S = 0.5;
		// Greenwood 1/56 + 1/42 + 1/30 + 1/20 = 0.125; interval
		// [0.2251, 0.8480]; at risk at 180: q4, q7, q8, q9.
		outcome.Mortality180: {outcome.Counts{Initial: 9, Denominator: 8, Numerator: 4, Censored: 1},
			[]outcome.Obs{ev(29), ev(30), ev(31), cens(180), cens(11), ev(45), cens(180), cens(180), cens(180)}, 0.5, 4},
		// Complete: q1, q2, q3 (deaths) and q8, q9: 3/5. q4, q6, q7 and q5
		// are still in follow-up, q6's death on day 45 with them: it is
		// on the KM curve (0.5, as at 180 days: nobody dies after day 45;
		// q4 censored at 294, q7 at 334, the register's end), not in the
		// rate. At risk at 365: q8, q9.
		outcome.Mortality365: {outcome.Counts{Initial: 9, Denominator: 5, Numerator: 3, Censored: 4},
			[]outcome.Obs{ev(29), ev(30), ev(31), cens(294), cens(11), ev(45), cens(334), cens(365), cens(365)}, 0.5, 2},
		// No visit task: every window of 7 days is over, none with a
		// contact, nobody died within 7 days.
		outcome.FirstContact7: {counts: outcome.Counts{Initial: 9, Denominator: 9}},
		outcome.TasksOnTime:   {},
	}
	bodies := map[string]string{}
	for name, open := range map[string]func(*testing.T) store.Store{"sqlite": openSQLite, "postgres": openPostgres} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, open(t))
			r.clk.Set(paris("2025-04-15 12:00"))
			r.handCountedCohort()
			h := serve(r.svc, coordinator)
			report := func(id string) []byte {
				w := get(t, h, "/fhir/Measure/"+id+"/$evaluate-measure?periodStart=2024-01-01&periodEnd=2025-03-31")
				if w.Code != 200 {
					t.Fatalf("%s: %d %s", id, w.Code, w.Body)
				}
				return w.Body.Bytes()
			}
			// Before October's file: the register covers January to
			// September 2024, q6's death is unknown. Readmission at 180
			// days counts q6 without event; mortality at 180 days has
			// q4 (Dec 7), q6 (Mar 4) and q7 (Oct 28) waiting for the
			// register, q5 for its window: deaths q1, q2, q3 of q1, q2,
			// q3, q8, q9.
			coverMonths(r, 202401, 202402, 202403, 202404, 202405, 202406, 202407, 202408, 202409)
			for id, w := range map[string]outcome.Counts{
				outcome.Readmission180: {Initial: 9, Denominator: 5, Numerator: 3, Exclusions: 3, ExcludedDeath: 3, Censored: 1},
				outcome.Mortality180:   {Initial: 9, Denominator: 5, Numerator: 3, Censored: 4, CensoredRegister: 3},
			} {
				if got, _ := CountsOf(report(id)); got != w {
					t.Errorf("%s before the October file = %+v, want %+v", id, got, w)
				}
			}
			// October's file, a month later, brings q6's death.
			rep, err := r.svc.ImportRegister(context.Background(), tenant, strings.NewReader(register(
				inseeLine("REGISTRE*LUCIE/", "2", "19410402", "42187", "20241020"))), 202410, "System/test")
			if err != nil || len(rep.Matched) != 1 {
				t.Fatalf("October file: %+v %v", rep, err)
			}
			coverMonths(r, 202411, 202412, 202501, 202502, 202503)
			var all strings.Builder
			for _, d := range outcome.Definitions {
				w := wants[d.ID]
				body := report(d.ID)
				all.Write(body)
				if got, _ := CountsOf(body); got != w.counts {
					t.Errorf("%s = %+v, want %+v", d.ID, got, w.counts)
				}
				km, ok, err := KaplanMeierOf(body)
				if err != nil {
					t.Fatal(err)
				}
				if ok != d.FixedHorizon() {
					t.Errorf("%s: Kaplan–Meier extension present %v", d.ID, ok)
				}
				if !ok {
					continue
				}
				est, lo, hi, atRisk := kmSimple(w.obs, d.Window)
				if math.Abs(est-w.km) > 1e-12 || atRisk != w.atRisk {
					t.Fatalf("%s: the hand count and the second implementation disagree: %v/%d, %v/%d", d.ID, w.km, w.atRisk, est, atRisk)
				}
				if km.Estimate != round4(est) || km.Low != round4(lo) || km.High != round4(hi) || km.AtRisk != atRisk {
					t.Errorf("%s: Kaplan–Meier %.4f [%.4f, %.4f] at risk %d, want %.4f [%.4f, %.4f] at risk %d",
						d.ID, km.Estimate, km.Low, km.High, km.AtRisk, est, lo, hi, atRisk)
				}
			}
			bodies[name] = all.String()
		})
	}
	if a, b := bodies["sqlite"], bodies["postgres"]; a != "" && b != "" && a != b {
		t.Errorf("SQLite and PostgreSQL reports differ:\n%s\n%s", a, b)
	}
}
