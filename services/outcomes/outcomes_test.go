package outcomes

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/internal/testenv"
	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/outcome"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/postgres"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
)

const tenant = "demo"

func paris(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02 15:04", s, clock.Paris)
	if err != nil {
		panic(err)
	}
	return t
}

func iso(s string) string { return paris(s).Format(time.RFC3339) }

func openSQLite(t *testing.T) store.Store {
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "p.db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openPostgres(t *testing.T) store.Store {
	s, err := postgres.Open(context.Background(), testenv.PostgresURL(t), postgres.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

type rig struct {
	t   *testing.T
	st  store.Store
	clk *clock.Fake
	svc *Service
	n   int
}

func newRig(t *testing.T, st store.Store) *rig {
	clk := clock.NewFake(paris("2025-12-31 12:00"))
	r := &rig{t: t, st: st, clk: clk}
	r.svc = New(Deps{Store: st, Clock: clk, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Tenant: tenant,
		PseudonymKey: []byte("0123456789abcdef0123456789abcdef"), TrackRegister: true})
	for id, finess := range map[string]string{"h1": "420000002", "h2": "420000003"} {
		r.put(map[string]any{"resourceType": "Organization", "id": id, "identifier": []any{map[string]any{"system": systemFINESS, "value": finess}}})
	}
	return r
}

func (r *rig) put(res map[string]any) {
	b, _ := json.Marshal(res)
	if err := r.st.Tx(context.Background(), func(tx store.Tx) error { _, err := tx.Update(context.Background(), tenant, b, 0); return err }); err != nil {
		r.t.Fatal(err)
	}
}

// deliver hands an event to a consumer through its inbox, twice: the
// second delivery must change nothing.
func (r *rig) deliver(durable string, h event.Handler, headers map[string]string, body any) {
	r.t.Helper()
	r.n++
	b, _ := json.Marshal(body)
	hd := map[string]string{bus.HeaderMsgID: fmt.Sprintf("msg-%d", r.n), bus.HeaderTenant: tenant}
	for k, v := range headers {
		hd[k] = v
	}
	for i := 0; i < 2; i++ {
		if err := event.Inbox(r.st, durable, h)(context.Background(), bus.Msg{Header: hd, Data: b}); err != nil {
			r.t.Fatalf("%s: %v", durable, err)
		}
	}
}

func bundle(res ...map[string]any) map[string]any {
	var entries []any
	for _, x := range res {
		entries = append(entries, map[string]any{"resource": x})
	}
	return map[string]any{"resourceType": "Bundle", "type": "history", "entry": entries}
}

func patient(id, family, given, sex, birth, place string) map[string]any {
	return map[string]any{"resourceType": "Patient", "id": id, "gender": sex, "birthDate": birth,
		"name": []any{map[string]any{"use": "official", "family": family, "given": []any{given}}},
		"extension": []any{map[string]any{"url": extBirthPlace, "valueAddress": map[string]any{"extension": []any{
			map[string]any{"url": "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code", "valueCoding": map[string]any{"code": place}}}}}}}
}

// stay sends intake's event for a stay: kind admit or discharge, start and
// end in Paris time ("" for none), hospital h1 or h2, elective or not, an
// ICD-10 principal diagnosis or none.
func (r *rig) stay(kind string, p map[string]any, enc, hosp, start, end string, elective bool, icd string) {
	e := map[string]any{"resourceType": "Encounter", "id": enc, "status": "in-progress", "subject": map[string]any{"reference": "Patient/" + p["id"].(string)},
		"class": map[string]any{"code": "IMP"}, "serviceProvider": map[string]any{"reference": "Organization/" + hosp}}
	period := map[string]any{"start": iso(start)}
	if end != "" {
		period["end"] = iso(end)
		e["status"] = "finished"
	}
	e["period"] = period
	if elective {
		e["priority"] = map[string]any{"coding": []any{map[string]any{"code": "EL"}}}
	}
	res := []map[string]any{e, p}
	if icd != "" {
		cid := "cond-" + enc
		e["diagnosis"] = []any{map[string]any{"condition": map[string]any{"reference": "Condition/" + cid}, "rank": 1}}
		res = append(res, map[string]any{"resourceType": "Condition", "id": cid, "code": map[string]any{"coding": []any{map[string]any{"system": systemICD10, "code": icd}}}})
	}
	r.deliver(DurableEncounter, r.svc.HandleEncounter, map[string]string{bus.HeaderIntakeEvent: kind}, bundle(res...))
}

func (r *rig) episode(id, pid, enc, discharge, status string, tasks ...map[string]any) {
	ep := map[string]any{"resourceType": "EpisodeOfCare", "id": id, "status": status, "patient": map[string]any{"reference": "Patient/" + pid},
		"managingOrganization": map[string]any{"reference": "Organization/cpts"}, "period": map[string]any{"start": iso(discharge)},
		"extension": []any{
			map[string]any{"url": pathway.ExtEpisodePathway, "valueCanonical": "https://passerelle.health/fhir/PlanDefinition/hf-post-discharge|1"},
			map[string]any{"url": pathway.ExtIndexEncounter, "valueReference": map[string]any{"reference": "Encounter/" + enc}},
		}}
	r.deliver(DurableEpisode, r.svc.HandleEpisode, nil, bundle(append([]map[string]any{ep}, tasks...)...))
}

func task(id, pid, role, status, due, done string) map[string]any {
	t := map[string]any{"resourceType": "Task", "id": id, "status": status, "for": map[string]any{"reference": "Patient/" + pid},
		"code":          map[string]any{"coding": []any{map[string]any{"code": "visit"}}},
		"performerType": []any{map[string]any{"coding": []any{map[string]any{"code": role}}}},
		"restriction":   map[string]any{"period": map[string]any{"end": iso(due)}}}
	if done != "" {
		t["executionPeriod"] = map[string]any{"end": iso(done)}
	}
	return t
}

// scenario feeds the cohort of the service tests (now: 2025-12-31 12:00).
func (r *rig) scenario() {
	p1 := patient("p1", "Martin", "Jeanne", "female", "1944-02-03", "42187")
	p2 := patient("p2", "Bernard", "Paul", "male", "1958-07-14", "42187")
	p3 := patient("p3", "Petit", "Louise", "female", "1939-11-30", "69123")
	p4 := patient("p4", "Durand", "Marc", "male", "1950-01-01", "42187")
	p5 := patient("p5", "Leroy", "Anne", "female", "1960-05-05", "42187")
	p6 := patient("p6", "Testdurand", "Marie", "female", "1948-03-15", "42187")
	// p1: readmitted on D0+30 at 23:30 in Paris, no diagnosis sent; the
	// nurse's first visit done on D+2.
	r.stay("discharge", p1, "e1", "h1", "2025-01-03 09:00", "2025-01-10 10:00", false, "I50.1")
	r.episode("ep1", "p1", "e1", "2025-01-10 10:00", "active", task("t1", "p1", "nurse", "requested", "2025-01-13 23:59", ""))
	r.deliver(DurableTask, r.svc.HandleTask, nil, task("t1", "p1", "nurse", "completed", "2025-01-13 23:59", "2025-01-12 17:00"))
	r.stay("admit", p1, "a1", "h2", "2025-02-09 23:30", "", false, "")
	// p2: readmitted on D0+31 at 00:30 in Paris (23:30 UTC on D0+30),
	// for heart failure.
	r.stay("discharge", p2, "e2", "h1", "2025-01-05 09:00", "2025-01-10 10:00", false, "I50.9")
	r.episode("ep2", "p2", "e2", "2025-01-10 10:00", "active")
	r.stay("admit", p2, "a2", "h1", "2025-02-10 00:30", "", false, "I50.9")
	// p3: a planned stay on D+5 and an admission cancelled.
	r.stay("discharge", p3, "e3", "h2", "2025-02-20 09:00", "2025-03-01 09:00", false, "I50.0")
	r.episode("ep3", "p3", "e3", "2025-03-01 09:00", "active")
	r.stay("admit", p3, "a3", "h2", "2025-03-06 08:00", "", true, "")
	r.stay("admit", p3, "a3b", "h2", "2025-03-11 08:00", "", false, "")
	r.stay("cancel-admit", p3, "a3b", "h2", "2025-03-11 08:00", "", false, "")
	// p4: died at home on D+10 (Patient.deceasedDateTime).
	r.stay("discharge", p4, "e4", "h1", "2025-03-25 09:00", "2025-04-01 12:00", false, "I50.9")
	r.episode("ep4", "p4", "e4", "2025-04-01 12:00", "active")
	dead := patient("p4", "Durand", "Marc", "male", "1950-01-01", "42187")
	dead["deceasedDateTime"] = iso("2025-04-11 08:00")
	r.deliver(DurablePatient, r.svc.HandlePatient, nil, dead)
	// p5: discharged on 2025-12-20: every window but the 7-day one open;
	// a second episode entered in error.
	r.stay("discharge", p5, "e5", "h1", "2025-12-15 09:00", "2025-12-20 10:00", false, "I50.9")
	r.episode("ep5", "p5", "e5", "2025-12-20 10:00", "active")
	r.episode("ep5x", "p5", "e5", "2025-12-20 10:00", "entered-in-error")
	// p6: death known from the INSEE register (imported by the test).
	r.stay("discharge", p6, "e6", "h2", "2025-01-25 09:00", "2025-02-01 10:00", false, "I50.9")
	r.episode("ep6", "p6", "e6", "2025-02-01 10:00", "active")
}

func period2025(r *rig) outcome.Params {
	p, err := r.svc.Params(context.Background(), tenant, outcome.CivilDay(2025, 1, 1), outcome.CivilDay(2025, 12, 31))
	if err != nil {
		r.t.Fatal(err)
	}
	return p
}

func register(line ...string) string {
	var b strings.Builder
	for _, l := range line {
		b.WriteString(l + "\n")
	}
	return b.String()
}

func inseeLine(name, sex, birth, place, death string) string {
	s := fmt.Sprintf("%-80s%s%s%-5s%-30s%-30s%s%-5s%-9s", name, sex, birth, place, "", "", death, "42187", "1")
	return s + strings.Repeat(" ", 198-len(s))
}

func TestProjectionAndMeasures(t *testing.T) {
	for name, open := range map[string]func(*testing.T) store.Store{"sqlite": openSQLite, "postgres": openPostgres} {
		t.Run(name, func(t *testing.T) {
			r := newRig(t, open(t))
			r.scenario()
			ctx := context.Background()
			// Before the register is in, p6's windows ending after the last
			// imported month stay censored: nothing imported yet at all.
			rep, err := r.svc.ImportRegister(ctx, tenant, strings.NewReader(register(
				inseeLine("TESTDURAND*MARIE/", "2", "19480315", "42187", "20250610"),
				inseeLine("LEROY*ANNE/", "2", "19600505", "75056", "20250611"),
				inseeLine("INCONNU*PERSONNE/", "1", "19300101", "42187", "20250612"),
				"ligne illisible",
			)), 202506, "System/test")
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Matched) != 1 || rep.Matched[0].Patient != "Patient/p6" || rep.Matched[0].Death != "2025-06-10" {
				t.Errorf("matched = %+v", rep.Matched)
			}
			if len(rep.Unmatched) != 1 || rep.Unmatched[0].Patient != "Patient/p5" || rep.Unmatched[0].Line != 2 {
				t.Errorf("near misses = %+v", rep.Unmatched)
			}
			if len(rep.Errors) != 1 || rep.Errors[0].Line != 4 || rep.NotConcerned != 1 {
				t.Errorf("errors %+v, not concerned %d", rep.Errors, rep.NotConcerned)
			}
			// Importing it again records nothing twice.
			again, err := r.svc.ImportRegister(ctx, tenant, strings.NewReader(register(inseeLine("TESTDURAND*MARIE/", "2", "19480315", "42187", "20250610"))), 202506, "System/test")
			if err != nil || len(again.Matched) != 0 || again.AlreadyKnown != 1 {
				t.Errorf("second import: %+v %v", again, err)
			}

			results, err := r.svc.Evaluate(ctx, tenant, period2025(r))
			if err != nil {
				t.Fatal(err)
			}
			// Initial population: ep1…ep6 (ep5x entered in error).
			want := map[string]outcome.Counts{
				// p5 censored; p1 readmitted on day 30 (event); p2 day 31; p3
				// planned stay and a cancelled admission; p4 died D+10 before
				// any readmission (excluded); p6 none.
				outcome.Readmission30: {Initial: 6, Denominator: 4, Numerator: 1, Exclusions: 1, ExcludedDeath: 1, Censored: 1},
				// 180 days: p1, p2; p4 (death) and p6 (death on D+129) excluded.
				outcome.Readmission180: {Initial: 6, Denominator: 3, Numerator: 2, Exclusions: 2, ExcludedDeath: 2, Censored: 1},
				// HF: p2 yes; p1's readmission carried no diagnosis: unknown.
				outcome.HFReadmission: {Initial: 6, Denominator: 3, Numerator: 1, Exclusions: 2, ExcludedDeath: 2, Censored: 1, Unknown: 1},
				// 180 days: only June is imported and every window ends
				// after it (p1, p2 July 9, p6 July 31, p3 Aug 28, p4 Sep 28):
				// all wait for the register, deaths p4 and p6 as well; p5's
				// window is still running.
				outcome.Mortality180: {Initial: 6, Censored: 6, CensoredRegister: 5},
				// 365 days: every window ends in 2026.
				outcome.Mortality365: {Initial: 6, Censored: 6},
				// 7 days: only p1 had a visit (D+2); p5's window ended 12-27.
				outcome.FirstContact7: {Initial: 6, Denominator: 6, Numerator: 1},
				// One task, done before its due date.
				outcome.TasksOnTime: {Initial: 1, Denominator: 1, Numerator: 1},
			}
			for _, res := range results {
				if res.Counts != want[res.Measure.ID] {
					t.Errorf("%s = %+v, want %+v", res.Measure.ID, res.Counts, want[res.Measure.ID])
				}
			}
			if c, _ := results[0].Stratum(outcome.StratHospital, "420000002"); c.Initial != 4 || c.Numerator != 1 {
				t.Errorf("hospital 420000002 stratum = %+v", c)
			}
			// Once July to September are in, the 180-day windows of p1,
			// p2, p3, p4 and p6 are complete: two deaths of five.
			coverMonths(r, 202507, 202508, 202509)
			res, err := r.svc.Evaluate(ctx, tenant, period2025(r), outcome.Mortality180)
			if err != nil {
				t.Fatal(err)
			}
			if w := (outcome.Counts{Initial: 6, Denominator: 5, Numerator: 2, Censored: 1}); res[0].Counts != w {
				t.Errorf("mortality-180d with the register to September = %+v, want %+v", res[0].Counts, w)
			}
			if c, _ := results[0].Stratum(outcome.StratSex, "male"); c.Initial != 2 {
				t.Errorf("male stratum = %+v", c)
			}
		})
	}
}

// coverMonths imports empty register files: months with no death of the
// CPTS's patients, now covered.
func coverMonths(r *rig, months ...int) {
	r.t.Helper()
	for _, m := range months {
		if _, err := r.svc.ImportRegister(context.Background(), tenant, strings.NewReader(""), m, "System/test"); err != nil {
			r.t.Fatal(err)
		}
	}
}

// reports renders every measure of the scenario as MeasureReport JSON.
func reports(t *testing.T, st store.Store) []byte {
	r := newRig(t, st)
	r.scenario()
	results, err := r.svc.Evaluate(context.Background(), tenant, period2025(r))
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	for _, res := range results {
		b, _ := json.Marshal(MeasureReport(res, ReportOptions{Now: r.clk.Now()}))
		out.Write(b)
		out.WriteByte('\n')
	}
	return out.Bytes()
}

func TestSQLiteAndPostgresGiveIdenticalReports(t *testing.T) {
	a, b := reports(t, openSQLite(t)), reports(t, openPostgres(t))
	if !bytes.Equal(a, b) {
		t.Errorf("reports differ:\nsqlite   %s\npostgres %s", a, b)
	}
}

// serve runs the routes with act as the authenticated actor.
func serve(svc *Service, act directory.Actor) http.Handler {
	mux := http.NewServeMux()
	svc.Register(mux, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r.WithContext(access.WithActor(r.Context(), act)))
		})
	})
	return mux
}

var coordinator = directory.Actor{Tenant: tenant, Practitioner: "Practitioner/coord", Roles: []directory.Role{{ID: "pr-coord", Code: directory.RoleCoordinator}}}

func get(t *testing.T, h http.Handler, url string) *httptest.ResponseRecorder {
	w := httptest.NewRecorder()
	h.ServeHTTP(w, httptest.NewRequest("GET", url, nil))
	return w
}

func TestHTTPReportAndCSVAgree(t *testing.T) {
	r := newRig(t, openSQLite(t))
	r.scenario()
	h := serve(r.svc, coordinator)
	w := get(t, h, "/fhir/Measure/readmission-30d/$evaluate-measure?periodStart=2025-01-01&periodEnd=2025-12-31")
	if w.Code != 200 {
		t.Fatalf("evaluate: %d %s", w.Code, w.Body)
	}
	counts, err := CountsOf(w.Body.Bytes())
	if err != nil {
		t.Fatal(err)
	}
	var mr map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &mr)
	group := mr["group"].([]any)[0].(map[string]any)
	if score := group["measureScore"].(map[string]any)["value"].(float64); score != 0.25 {
		t.Errorf("score = %v, want 1/4", score)
	}
	ci := group["extension"].([]any)[0].(map[string]any)["valueRange"].(map[string]any)
	lo, hi := outcome.Wilson(1, 4, outcome.Z95)
	if ci["low"].(map[string]any)["value"].(float64) != round4(lo) || ci["high"].(map[string]any)["value"].(float64) != round4(hi) {
		t.Errorf("interval = %v, want [%v, %v]", ci, lo, hi)
	}

	w = get(t, h, "/api/outcomes.csv?periodStart=2025-01-01&periodEnd=2025-12-31")
	if w.Code != 200 {
		t.Fatalf("csv: %d %s", w.Code, w.Body)
	}
	rows, err := csv.NewReader(w.Body).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(rows[0], ",") != "episode,pathway,hospital_finess,discharge_date,follow_up_days,readmission_dates,death_date,first_contact_days" {
		t.Errorf("header %v", rows[0])
	}
	if len(rows)-1 != counts.Initial {
		t.Errorf("%d rows, initial population %d", len(rows)-1, counts.Initial)
	}
	// Recount readmission-30d from the CSV: complete = the day D0+30 is
	// over (yesterday or before); event = a readmission within 30 days;
	// without one, a death within 30 days excludes the episode.
	den, num := 0, 0
	yesterday := outcome.DayOf(r.clk.Now()) - 1
	for _, row := range rows[1:] {
		d0, _ := outcome.ParseDay(row[3])
		if d0+30 > yesterday {
			continue
		}
		died := false
		if row[6] != "" {
			dd, _ := outcome.ParseDay(row[6])
			died = dd-d0 <= 30
		}
		readmitted := false
		for _, rd := range strings.Split(row[5], "|") {
			if rd == "" {
				continue
			}
			if d, _ := outcome.ParseDay(rd); d-d0 >= 1 && d-d0 <= 30 {
				readmitted = true
				break
			}
		}
		if died && !readmitted {
			continue
		}
		den++
		if readmitted {
			num++
		}
		if strings.Contains(row[0], "p1") {
			t.Errorf("the pseudonym shows the patient id: %s", row[0])
		}
	}
	if den != counts.Denominator || num != counts.Numerator {
		t.Errorf("CSV gives %d/%d, MeasureReport %d/%d", num, den, counts.Numerator, counts.Denominator)
	}

	// One patient; the list of subjects.
	w = get(t, h, "/fhir/Measure/readmission-30d/$evaluate-measure?periodStart=2025-01-01&periodEnd=2025-12-31&subject=Patient/p1")
	if c, _ := CountsOf(w.Body.Bytes()); c.Initial != 1 || c.Numerator != 1 || !strings.Contains(w.Body.String(), `"individual"`) {
		t.Errorf("subject p1: %+v %s", c, w.Body)
	}
	w = get(t, h, "/fhir/Measure/readmission-30d/$evaluate-measure?periodStart=2025-01-01&periodEnd=2025-12-31&reportType=subject-list")
	if !strings.Contains(w.Body.String(), `"#list-numerator"`) || !strings.Contains(w.Body.String(), `"EpisodeOfCare/ep1"`) {
		t.Errorf("subject list: %s", w.Body)
	}
	// Masked: every count of this small cohort is below 11.
	w = get(t, h, "/fhir/Measure/readmission-30d/$evaluate-measure?periodStart=2025-01-01&periodEnd=2025-12-31&masked=true")
	if mc, _ := CountsOf(w.Body.Bytes()); mc.Initial != outcome.Masked || mc.Numerator != outcome.Masked || strings.Contains(w.Body.String(), "measureScore") {
		t.Errorf("masked report shows small cells: %+v", mc)
	}
	// Curves and their drawing.
	w = get(t, h, "/api/outcomes/curves.svg?periodStart=2025-01-01&periodEnd=2025-12-31&kind=survival")
	if w.Code != 200 || !strings.HasPrefix(w.Body.String(), "<svg") || w.Header().Get("Content-Type") != "image/svg+xml" {
		t.Errorf("svg: %d %.80s", w.Code, w.Body)
	}
	// Every label in the drawing's language: the single curve's legend,
	// the numbers at risk and the percentages.
	for lang, want := range map[string][]string{
		"fr": {">Toutes les sorties<", ">À risque<", ">50 %<"},
		"en": {">All discharges<", ">At risk<", ">50%<"},
	} {
		body := get(t, h, "/api/outcomes/curves.svg?periodStart=2025-01-01&periodEnd=2025-12-31&kind=survival&lang="+lang).Body.String()
		for _, s := range want {
			if !strings.Contains(body, s) {
				t.Errorf("%s drawing lacks %q", lang, s)
			}
		}
		if strings.Contains(body, ">all<") {
			t.Errorf("%s drawing names its curve \"all\"", lang)
		}
	}
	w = get(t, h, "/api/outcomes/aci.csv?year=2025")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "<11") {
		t.Errorf("ACI export not masked by default: %s", w.Body)
	}
}

func TestHTTPRefusals(t *testing.T) {
	r := newRig(t, openSQLite(t))
	nurse := directory.Actor{Tenant: tenant, Practitioner: "Practitioner/n", Roles: []directory.Role{{ID: "pr-n", Code: directory.RoleNurse}}}
	for _, tc := range []struct {
		name string
		act  directory.Actor
		url  string
		code int
		expr string
	}{
		{"nurse", nurse, "/fhir/Measure/readmission-30d/$evaluate-measure?periodStart=2025-01-01&periodEnd=2025-12-31", 403, ""},
		{"no period", coordinator, "/fhir/Measure/readmission-30d/$evaluate-measure?periodEnd=2025-12-31", 400, "periodStart"},
		{"bad end", coordinator, "/fhir/Measure/readmission-30d/$evaluate-measure?periodStart=2025-01-01&periodEnd=2025-13-01", 400, "periodEnd"},
		{"unknown measure", coordinator, "/fhir/Measure/nope/$evaluate-measure?periodStart=2025-01-01&periodEnd=2025-12-31", 404, ""},
		{"bad report type", coordinator, "/fhir/Measure/readmission-30d/$evaluate-measure?periodStart=2025-01-01&periodEnd=2025-12-31&reportType=x", 400, "reportType"},
	} {
		w := get(t, serve(r.svc, tc.act), tc.url)
		if w.Code != tc.code || !strings.Contains(w.Body.String(), "OperationOutcome") || !strings.Contains(w.Body.String(), tc.expr) {
			t.Errorf("%s: %d %s", tc.name, w.Code, w.Body)
		}
	}
}

func TestTeamMemberRecordsADeath(t *testing.T) {
	r := newRig(t, openSQLite(t))
	r.scenario()
	r.put(patient("p2", "Bernard", "Paul", "male", "1958-07-14", "42187"))
	h := serve(r.svc, coordinator)
	req := httptest.NewRequest("POST", "/api/outcomes/deaths", strings.NewReader(`{"patient":"Patient/p2","deceasedDateTime":"2025-03-01"}`))
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	if w.Code != 201 || !strings.Contains(w.Body.String(), LOINCDeath) {
		t.Fatalf("post death: %d %s", w.Code, w.Body)
	}
	res, err := r.svc.Evaluate(context.Background(), tenant, period2025(r), outcome.Mortality180)
	if err != nil {
		t.Fatal(err)
	}
	// p2 (discharged 2025-01-10) died on D+50. The register is tracked
	// and covers nothing: every window waits for it, deaths included.
	if w := (outcome.Counts{Initial: 6, Censored: 6, CensoredRegister: 5}); res[0].Counts != w {
		t.Errorf("mortality-180d = %+v, want %+v", res[0].Counts, w)
	}
	// With July to September covered (no line for p6: its death stays
	// unknown), p1, p2, p3, p4 and p6 are complete: deaths p2 and p4.
	coverMonths(r, 202507, 202508, 202509)
	if res, err = r.svc.Evaluate(context.Background(), tenant, period2025(r), outcome.Mortality180); err != nil {
		t.Fatal(err)
	}
	if res[0].Numerator != 2 || res[0].Denominator != 5 {
		t.Errorf("mortality-180d = %+v, want 2/5", res[0].Counts)
	}
	// A nurse outside the patient's care team may not.
	nurse := directory.Actor{Tenant: tenant, Practitioner: "Practitioner/n", Roles: []directory.Role{{ID: "pr-n", Code: directory.RoleNurse}}}
	w = httptest.NewRecorder()
	serve(r.svc, nurse).ServeHTTP(w, httptest.NewRequest("POST", "/api/outcomes/deaths", strings.NewReader(`{"patient":"Patient/p1","deceasedDateTime":"2025-03-01"}`)))
	if w.Code != 403 {
		t.Errorf("nurse outside the team: %d %s", w.Code, w.Body)
	}
}

// TestFormerMemberRecordsNoDeath: the nurse whose task for the patient was
// completed yesterday is within the access grace period, which never opens
// a write: RecordDeath refuses her, whichever route calls it.
func TestFormerMemberRecordsNoDeath(t *testing.T) {
	r := newRig(t, openSQLite(t))
	r.scenario()
	r.put(map[string]any{"resourceType": "Task", "id": "t-former", "status": "completed", "intent": "order",
		"for": map[string]any{"reference": "Patient/p1"}, "owner": map[string]any{"reference": "PractitionerRole/pr-former"},
		"lastModified": r.clk.Now().Add(-24 * time.Hour).Format(time.RFC3339)})
	former := directory.Actor{Tenant: tenant, Practitioner: "Practitioner/f", Roles: []directory.Role{{ID: "pr-former", Code: directory.RoleNurse}}}
	count := func() int {
		page, err := r.st.Search(context.Background(), store.Query{Tenant: tenant, Type: "Observation", Total: true,
			Params: []store.Param{{Name: "patient", Kind: store.KindReference, Values: []store.Value{{Ref: "Patient/p1"}}}}})
		if err != nil {
			t.Fatal(err)
		}
		return page.Total
	}
	before := count()
	_, err := r.svc.RecordDeath(context.Background(), former, "p1", r.clk.Now().Add(-time.Hour))
	if fe := fhir.FromError(err); err == nil || fe.Kind != fhir.Forbidden {
		t.Fatalf("former member records a death: %v, want 403", err)
	}
	if n := count(); n != before {
		t.Errorf("observations of the patient: %d, were %d", n, before)
	}
}

func TestSeedMeasures(t *testing.T) {
	st := openSQLite(t)
	pkg := os.DirFS("../../fhir-profiles")
	for i := 0; i < 2; i++ {
		if err := SeedMeasures(context.Background(), st, pkg, tenant); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range outcome.Definitions {
		res, err := st.Read(context.Background(), "Measure", d.ID)
		if err != nil {
			t.Errorf("%s: %v", d.ID, err)
			continue
		}
		if res.Version != 1 || !strings.Contains(string(res.Body), MeasureBase+d.ID) {
			t.Errorf("%s: version %d, url missing", d.ID, res.Version)
		}
	}
}

func TestRoutesBesideTheGenericAPI(t *testing.T) {
	mux := http.NewServeMux()
	id := func(h http.Handler) http.Handler { return h }
	(&fhirapi.API{}).Register(mux, id)
	New(Deps{Store: openSQLite(t)}).Register(mux, id) // panics on a conflicting pattern
	_, pattern := mux.Handler(httptest.NewRequest("GET", "/fhir/Measure/readmission-30d/$evaluate-measure", nil))
	if pattern != "GET /fhir/Measure/{id}/$evaluate-measure" {
		t.Errorf("routed to %q", pattern)
	}
}

func TestRegisterUploadByTheCoordinator(t *testing.T) {
	r := newRig(t, openSQLite(t))
	r.scenario()
	h := serve(r.svc, coordinator)
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	fw, _ := mw.CreateFormFile("file", "deces-2025-m06.txt")
	io.WriteString(fw, register(inseeLine("TESTDURAND*MARIE/", "2", "19480315", "42187", "20250610")))
	mw.Close()
	req := httptest.NewRequest("POST", "/api/outcomes/death-register", &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	var rep ImportReport
	if err := json.Unmarshal(w.Body.Bytes(), &rep); w.Code != 200 || err != nil || rep.Month != 202506 || len(rep.Matched) != 1 {
		t.Fatalf("upload: %d %s", w.Code, w.Body)
	}
	w = get(t, h, "/api/outcomes/death-register")
	if !strings.Contains(w.Body.String(), "202506") {
		t.Errorf("months: %s", w.Body)
	}
	// The referent nurse reads outcomes but does not import the register.
	idec := directory.Actor{Tenant: tenant, Practitioner: "Practitioner/i", Roles: []directory.Role{{ID: "pr-i", Code: directory.RoleCoordinatingNurse}}}
	w = httptest.NewRecorder()
	serve(r.svc, idec).ServeHTTP(w, httptest.NewRequest("POST", "/api/outcomes/death-register?month=202507", strings.NewReader("")))
	if w.Code != 403 {
		t.Errorf("coordinating nurse import: %d", w.Code)
	}
	if w := get(t, serve(r.svc, idec), "/api/outcomes/curves?periodStart=2025-01-01&periodEnd=2025-12-31&by=hospital"); w.Code != 200 || !strings.Contains(w.Body.String(), "420000003") {
		t.Errorf("curves for the coordinating nurse: %d %s", w.Code, w.Body)
	}
}

func TestRegisterAmbiguities(t *testing.T) {
	r := newRig(t, openSQLite(t))
	// Two records with the same traits (a duplicate identity), and one
	// patient named by two lines of the file.
	for _, id := range []string{"d1", "d2"} {
		r.deliver(DurablePatient, r.svc.HandlePatient, nil, patient(id, "Moreau", "Luc", "male", "1941-04-04", "42187"))
	}
	r.deliver(DurablePatient, r.svc.HandlePatient, nil, patient("d3", "Roux", "Eve", "female", "1942-05-05", "42187"))
	rep, err := r.svc.ImportRegister(context.Background(), tenant, strings.NewReader(register(
		inseeLine("MOREAU*LUC/", "1", "19410404", "42187", "20250601"),
		inseeLine("ROUX*EVE/", "2", "19420505", "42187", "20250602"),
		inseeLine("ROUX*EVE MARIE/", "2", "19420505", "42187", "20250603"),
	)), 202506, "System/test")
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Matched) != 0 || len(rep.Ambiguous) != 2 {
		t.Fatalf("report: %+v", rep)
	}
	if a := rep.Ambiguous[0]; a.Line != 1 || strings.Join(a.Patients, " ") != "Patient/d1 Patient/d2" {
		t.Errorf("line matching two patients: %+v", a)
	}
	if a := rep.Ambiguous[1]; a.Line != 2 || a.Patients[0] != "Patient/d3" {
		t.Errorf("patient matched by two lines: %+v", a)
	}
}
