package worklist_test

import (
	"errors"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/services/worklist"
)

var now = time.Date(2025, 3, 14, 10, 0, 0, 0, time.UTC)

func TestParseObservation(t *testing.T) {
	weight := func(v string) string {
		return `{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"subject":{"reference":"Patient/p1"},"valueQuantity":{"value":` + v + `,"unit":"kg"}}`
	}
	bp := func(sys, dia string) string {
		return `{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"85354-9"}]},"subject":{"reference":"Patient/p1"},"component":[` +
			`{"code":{"coding":[{"system":"http://loinc.org","code":"8480-6"}]},"valueQuantity":{"value":` + sys + `}},` +
			`{"code":{"coding":[{"system":"http://loinc.org","code":"8462-4"}]},"valueQuantity":{"value":` + dia + `}}]}`
	}
	cases := []struct {
		name, body, expr string
	}{
		{"weight ok", weight("74.6"), ""},
		{"weight 900 kg", weight("900"), "Observation.valueQuantity.value"},
		{"weight negative", weight("-3"), "Observation.valueQuantity.value"},
		{"weight as text", weight(`"74"`), "Observation.valueQuantity.value"},
		{"weight in pounds", strings.Replace(weight("160"), `"unit":"kg"`, `"code":"[lb_av]"`, 1), "Observation.valueQuantity.code"},
		{"bp ok", bp("125", "78"), ""},
		{"diastolic above systolic", bp("110", "120"), "Observation.component[1].valueQuantity.value"},
		{"systolic implausible", bp("400", "80"), "Observation.component[0].valueQuantity.value"},
		{"bp without diastolic", strings.Replace(bp("120", "80"), "8462-4", "0000-0", 1), "Observation.component"},
		{"no subject", strings.Replace(weight("70"), `"subject":{"reference":"Patient/p1"},`, "", 1), "Observation.subject"},
		{"subject not a patient", strings.Replace(weight("70"), "Patient/p1", "Group/g", 1), "Observation.subject"},
		{"unknown code", strings.Replace(weight("70"), "29463-7", "1234-5", 1), "Observation.code"},
		{"future", strings.Replace(weight("70"), `"subject"`, `"effectiveDateTime":"2025-03-15T10:00:00Z","subject"`, 1), "Observation.effectiveDateTime"},
		{"bad status", strings.Replace(weight("70"), `"code"`, `"status":"cancelled","code"`, 1), "Observation.status"},
		{"nyha unknown class", `{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"88020-3"}]},"subject":{"reference":"Patient/p1"},"valueCodeableConcept":{"coding":[{"system":"http://snomed.info/sct","code":"1"}]}}`, "Observation.valueCodeableConcept"},
		{"not an observation", `{"resourceType":"Patient"}`, "resourceType"},
		{"note not a list", strings.Replace(weight("70"), `"subject"`, `"note":"à jeun","subject"`, 1), "Observation.note"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m, err := worklist.ParseObservation([]byte(c.body), now)
			if c.expr == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if m["status"] != "final" {
					t.Errorf("status %v", m["status"])
				}
				return
			}
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Kind != fhir.Invalid {
				t.Fatalf("err %v, want a 400", err)
			}
			if got := fe.Issues[0].Expression; len(got) == 0 || got[0] != c.expr {
				t.Errorf("expression %v, want %s", got, c.expr)
			}
			if fe.Issues[0].FR == "" || fe.Issues[0].EN == "" {
				t.Error("message missing in a language")
			}
		})
	}
}

func FuzzParseObservation(f *testing.F) {
	files, _ := filepath.Glob("testdata/observation/*.json")
	for _, fn := range files {
		b, err := os.ReadFile(fn)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		m, err := worklist.ParseObservation(body, now)
		if err != nil {
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Kind != fhir.Invalid || len(fe.Issues) == 0 {
				t.Fatalf("error is not a 400 OperationOutcome: %v", err)
			}
			return
		}
		if !strings.HasPrefix(m["subject"].(map[string]any)["reference"].(string), "Patient/") {
			t.Fatalf("accepted without a patient: %v", m["subject"])
		}
		// Normalised input is accepted again, unchanged.
		b := mustJSON(m)
		m2, err := worklist.ParseObservation(b, now)
		if err != nil {
			t.Fatalf("normalised observation refused: %v\n%s", err, b)
		}
		if !reflect.DeepEqual(mustJSON(m2), b) {
			t.Fatalf("not stable:\n%s\n%s", b, mustJSON(m2))
		}
	})
}

func TestRecordObservationHTTP(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			r := newRig(t, backend)
			srv := r.server()
			p := r.patient()
			r.discharge(p)
			first := r.task(p, "first-contact")["id"].(string)
			r.assign(first, "pr-ide-martin")
			body := func(v string) string {
				return `{"resourceType":"Observation","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},"subject":{"reference":"Patient/` + p +
					`"},"valueQuantity":{"value":` + v + `,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`
			}
			if res := srv.do(t, "", http.MethodPost, "/fhir/Observation", body("74")); res.status != http.StatusUnauthorized {
				t.Errorf("no token: %d", res.status)
			}
			if res := srv.do(t, "ide.leroy", http.MethodPost, "/fhir/Observation", body("74")); res.status != http.StatusForbidden {
				t.Errorf("outside the care relationship: %d %v", res.status, res.body)
			}
			res := srv.do(t, "ide.martin", http.MethodPost, "/fhir/Observation", body("900"))
			if res.status != http.StatusBadRequest || expressions(res.body)[0] != "Observation.valueQuantity.value" {
				t.Errorf("900 kg: %d %v", res.status, res.body)
			}
			// Linked to the task only while it is under way.
			if res := srv.do(t, "ide.martin", http.MethodPost, "/fhir/Observation?task="+first, body("74")); res.status != http.StatusConflict {
				t.Errorf("requested task: %d %v", res.status, res.body)
			}
			if _, err := r.svc.Transition(r.ctx, r.actor("ide.martin"), first, 0, "accept", ""); err != nil {
				t.Fatal(err)
			}
			res = srv.do(t, "ide.martin", http.MethodPost, "/fhir/Observation?task="+first, body("74.6"))
			if res.status != http.StatusCreated {
				t.Fatalf("record: %d %v", res.status, res.body)
			}
			if got := res.body["performer"].([]any)[0].(map[string]any)["reference"]; got != "PractitionerRole/pr-ide-martin" {
				t.Errorf("performer %v", got)
			}
			task, _ := r.read("Task", first)
			out := task["output"].([]any)
			if len(out) != 1 || s(out[0].(map[string]any), "valueReference", "reference") != "Observation/"+res.body["id"].(string) {
				t.Errorf("task output %v", out)
			}
			subjects := map[string]int{}
			for _, row := range r.pending() {
				subjects[row.Event.Subject]++
			}
			if subjects["fhir.demo.Observation.created"] != 1 {
				t.Errorf("events %v", subjects)
			}
		})
	}
}

func TestRecordVisit(t *testing.T) {
	r := newRig(t, "sqlite")
	p := r.patient()
	r.discharge(p)
	first := r.task(p, "first-contact")["id"].(string)
	r.assign(first, "pr-ide-martin")
	nurse := r.actor("ide.martin")
	for _, a := range []string{"accept", "start"} {
		if _, err := r.svc.Transition(r.ctx, nurse, first, 0, a, ""); err != nil {
			t.Fatal(err)
		}
	}
	bad := []struct {
		name  string
		v     worklist.Visit
		exprs []string
	}{
		{"weight 900", worklist.Visit{WeightKg: ptr(900)}, []string{"weight-kg", "Observation.valueQuantity.value"}},
		{"diastolic above systolic", worklist.Visit{Systolic: ptr(100), Diastolic: ptr(110)}, []string{"diastolic", "Observation.component[1].valueQuantity.value"}},
		{"systolic implausible", worklist.Visit{Systolic: ptr(20), Diastolic: ptr(10)}, []string{"systolic", "Observation.component[0].valueQuantity.value"}},
		{"heart rate", worklist.Visit{HeartRate: ptr(400)}, []string{"heart-rate", "Observation.valueQuantity.value"}},
		{"nyha", worklist.Visit{NYHA: "V"}, []string{"nyha", "Observation.valueCodeableConcept"}},
		{"nothing", worklist.Visit{}, []string{"weight-kg"}},
		{"weight not a number", worklist.Visit{WeightKg: ptr(math.NaN()), Systolic: ptr(120), Diastolic: ptr(80)}, []string{"weight-kg"}},
		{"heart rate infinite", worklist.Visit{HeartRate: ptr(math.Inf(1))}, []string{"heart-rate"}},
	}
	for _, c := range bad {
		t.Run(c.name, func(t *testing.T) {
			c.v.TaskID = first
			_, err := r.svc.RecordVisit(r.ctx, nurse, c.v)
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Kind != fhir.Invalid {
				t.Fatalf("err %v, want 400", err)
			}
			if !reflect.DeepEqual(fe.Issues[0].Expression, c.exprs) {
				t.Errorf("expressions %v, want %v", fe.Issues[0].Expression, c.exprs)
			}
		})
	}
	res, err := r.svc.RecordVisit(r.ctx, nurse, worklist.Visit{TaskID: first, WeightKg: ptr(74.6), Systolic: ptr(125), Diastolic: ptr(78),
		HeartRate: ptr(72), NYHA: "III", Oedema: "mild", Breathlessness: "absent", Symptoms: "Fatigue", Note: "Patient vu à domicile"})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, x := range res {
		types = append(types, x.Type)
	}
	want := []string{"Observation", "Observation", "Observation", "Observation", "Observation", "Observation", "QuestionnaireResponse", "Task"}
	if !reflect.DeepEqual(types, want) {
		t.Fatalf("written %v, want %v", types, want)
	}
	task, _ := r.read("Task", first)
	if n := len(task["output"].([]any)); n != 7 {
		t.Errorf("task outputs: %d, want 7", n)
	}
	if _, err := r.svc.Transition(r.ctx, nurse, first, res[len(res)-1].Version, "complete", ""); err != nil {
		t.Errorf("complete after the visit: %v", err)
	}
	// The pathway took the NYHA class recorded at the first contact.
	r.flush()
	ep := r.search("EpisodeOfCare", refParam("patient", "Patient/"+p))[0]
	if !strings.Contains(string(mustJSON(ep)), "420913000") {
		t.Errorf("the pathway did not record the NYHA class: %v", ep["extension"])
	}
	// Someone outside the care relationship records nothing.
	if _, err := r.svc.RecordVisit(r.ctx, r.actor("ide.leroy"), worklist.Visit{Patient: p, WeightKg: ptr(70)}); err == nil {
		t.Error("ide.leroy recorded a visit for a patient not hers")
	}
}
