package worklist_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/fhir/validate"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/services/worklist"
)

// followed opens a heart-failure episode for a new patient whose first
// contact is ide.martin's: she may record for the patient.
func (r *rig) followed() string {
	r.t.Helper()
	p := r.patient()
	r.discharge(p)
	r.assign(r.task(p, "first-contact")["id"].(string), "pr-ide-martin")
	return p
}

// record posts one measurement at the fake clock's time and delivers its
// events.
func (r *rig) record(p string, o map[string]any) string {
	r.t.Helper()
	o["resourceType"] = "Observation"
	o["subject"] = map[string]any{"reference": "Patient/" + p}
	o["effectiveDateTime"] = r.clk.Now().Format(time.RFC3339)
	res, err := r.svc.RecordObservation(r.ctx, r.actor("ide.martin"), mustJSON(o), "")
	if err != nil {
		r.t.Fatalf("record %v: %v", o["code"], err)
	}
	r.flush()
	return res.ID
}

func loinc(code string) map[string]any {
	return map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": code}}}
}

func (r *rig) weigh(p string, kg float64) string {
	return r.record(p, map[string]any{"code": loinc("29463-7"), "valueQuantity": map[string]any{"value": kg, "unit": "kg"}})
}

func (r *rig) bp(p string, sys, dia float64) string {
	return r.record(p, map[string]any{"code": loinc("85354-9"), "component": []any{
		map[string]any{"code": loinc("8480-6"), "valueQuantity": map[string]any{"value": sys}},
		map[string]any{"code": loinc("8462-4"), "valueQuantity": map[string]any{"value": dia}}}})
}

func (r *rig) heartRate(p string, v float64) string {
	return r.record(p, map[string]any{"code": loinc("8867-4"), "valueQuantity": map[string]any{"value": v}})
}

var nyhaSNOMED = map[string]string{"I": "420300004", "II": "421704003", "III": "420913000", "IV": "422293003"}

func (r *rig) nyha(p, class string) string {
	return r.record(p, map[string]any{"code": loinc("88020-3"), "valueCodeableConcept": map[string]any{"coding": []any{
		map[string]any{"system": "http://snomed.info/sct", "code": nyhaSNOMED[class], "display": "NYHA " + class}}}})
}

// flags returns the patient's alerts, by rule code.
func (r *rig) flags(p string) map[string][]map[string]any {
	r.t.Helper()
	out := map[string][]map[string]any{}
	for _, f := range r.search("Flag", refParam("patient", "Patient/"+p)) {
		code := f["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string)
		out[code] = append(out[code], f)
	}
	return out
}

// reviewTasks returns the review tasks of an alert, by team role.
func (r *rig) reviewTasks(flagID string) map[string]map[string]any {
	r.t.Helper()
	out := map[string]map[string]any{}
	for _, t := range r.search("Task", refParam("focus", "Flag/"+flagID)) {
		role := t["performerType"].([]any)[0].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string)
		out[role] = t
	}
	return out
}

func TestMeasurementRules(t *testing.T) {
	day := 24 * time.Hour
	cases := []struct {
		name string
		rule string
		run  func(r *rig, p string)
		want bool
	}{
		{"weight +2 kg in 2 days fires", "weight-gain", func(r *rig, p string) {
			r.weigh(p, 72.4)
			r.clk.Advance(2 * day)
			r.weigh(p, 74.4)
		}, true},
		{"weight +1.9 kg in 2 days does not", "weight-gain", func(r *rig, p string) {
			r.weigh(p, 72.5)
			r.clk.Advance(2 * day)
			r.weigh(p, 74.4)
		}, false},
		{"weight +2 kg in 3 days exactly fires", "weight-gain", func(r *rig, p string) {
			r.weigh(p, 70)
			r.clk.Advance(3 * day)
			r.weigh(p, 72)
		}, true},
		{"weight +3 kg over 4 days does not", "weight-gain", func(r *rig, p string) {
			r.weigh(p, 70)
			r.clk.Advance(4 * day)
			r.weigh(p, 73)
		}, false},
		{"systolic 89 fires", "systolic-low", func(r *rig, p string) { r.bp(p, 89, 60) }, true},
		{"systolic 90 does not", "systolic-low", func(r *rig, p string) { r.bp(p, 90, 60) }, false},
		{"heart rate 49 fires", "heart-rate", func(r *rig, p string) { r.heartRate(p, 49) }, true},
		{"heart rate 50 does not", "heart-rate", func(r *rig, p string) { r.heartRate(p, 50) }, false},
		{"heart rate 110 does not", "heart-rate", func(r *rig, p string) { r.heartRate(p, 110) }, false},
		{"heart rate 111 fires", "heart-rate", func(r *rig, p string) { r.heartRate(p, 111) }, true},
		{"NYHA II to III fires", "nyha-worsening", func(r *rig, p string) {
			r.nyha(p, "II")
			r.clk.Advance(7 * day)
			r.nyha(p, "III")
		}, true},
		{"NYHA III to III does not", "nyha-worsening", func(r *rig, p string) {
			r.nyha(p, "III")
			r.clk.Advance(7 * day)
			r.nyha(p, "III")
		}, false},
		{"NYHA III to II does not", "nyha-worsening", func(r *rig, p string) {
			r.nyha(p, "III")
			r.clk.Advance(7 * day)
			r.nyha(p, "II")
		}, false},
		{"first NYHA does not", "nyha-worsening", func(r *rig, p string) { r.nyha(p, "IV") }, false},
	}
	r := newRig(t, "sqlite")
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r.t = t
			p := r.followed()
			c.run(r, p)
			got := r.flags(p)
			if fired := len(got[c.rule]) > 0; fired != c.want {
				t.Fatalf("%s fired: %v, want %v (%v)", c.rule, fired, c.want, got)
			}
			for code := range got {
				if code != c.rule {
					t.Errorf("another rule fired: %s", code)
				}
			}
		})
	}
}

// An alert is a Flag and review tasks for the roles the rule names,
// announced at once for the teams service to assign.
func TestAlertShape(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			r := newRig(t, backend)
			p := r.followed()
			ep := r.search("EpisodeOfCare", refParam("patient", "Patient/"+p))[0]
			obs := r.bp(p, 85, 55)
			fl := r.flags(p)["systolic-low"]
			if len(fl) != 1 {
				t.Fatalf("flags %v", r.flags(p))
			}
			f := fl[0]
			if f["status"] != "active" || s(f, "subject", "reference") != "Patient/"+p || s(f, "period", "start") == "" {
				t.Errorf("flag %v", f)
			}
			if text := s(f, "code", "text"); !strings.Contains(text, "85") || !strings.Contains(text, "90") {
				t.Errorf("flag text %q does not give the value and the threshold", text)
			}
			if !strings.Contains(string(mustJSON(f)), "Observation/"+obs) {
				t.Errorf("flag does not point to the observation")
			}
			tasks := r.reviewTasks(f["id"].(string))
			if len(tasks) != 2 || tasks["gp"] == nil || tasks["cardiologist"] == nil {
				t.Fatalf("review tasks %v, want gp and cardiologist (severe)", tasks)
			}
			cp := ""
			for _, x := range ep["extension"].([]any) {
				if x.(map[string]any)["url"] == "https://passerelle.health/fhir/StructureDefinition/episode-careplan" {
					cp = s(x.(map[string]any), "valueReference", "reference")
				}
			}
			end := time.Date(2025, 3, 14, 23, 59, 59, 0, clock.Paris)
			for role, tk := range tasks {
				if tk["status"] != "requested" || tk["intent"] != "order" || tk["owner"] != nil || s(tk, "for", "reference") != "Patient/"+p ||
					s(tk, "focus", "reference") != "Flag/"+f["id"].(string) || s(tk["basedOn"].([]any)[0].(map[string]any), "reference") != cp {
					t.Errorf("%s task %v", role, tk)
				}
				if got, _ := time.Parse(time.RFC3339, s(tk, "restriction", "period", "end")); !got.Equal(end) {
					t.Errorf("%s task due %v, want the same day %v", role, got, end)
				}
			}
			// Announced: the flag and both tasks were in the outbox.
			recs, err := r.s.AuditLog().List(r.ctx, 0, 100000)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, rec := range recs {
				if rec.Agent == "System/worklist" && rec.Action == "C" {
					n++
				}
			}
			if n != 3 {
				t.Errorf("audit records of the alert: %d, want 3", n)
			}
		})
	}
}

func TestAlertEvents(t *testing.T) {
	r := newRig(t, "sqlite")
	p := r.followed()
	r.flush()
	o := map[string]any{"resourceType": "Observation", "code": loinc("8867-4"), "valueQuantity": map[string]any{"value": 130.0},
		"subject": map[string]any{"reference": "Patient/" + p}, "effectiveDateTime": r.clk.Now().Format(time.RFC3339)}
	res, err := r.svc.RecordObservation(r.ctx, r.actor("ide.martin"), mustJSON(o), "")
	if err != nil {
		t.Fatal(err)
	}
	rows := r.pending()
	if len(rows) != 1 || rows[0].Event.Subject != "fhir.demo.Observation.created" {
		t.Fatalf("events of the record: %v", rows)
	}
	m := msgOf(rows[0].Event)
	r.deliver(m)
	// Handling it announced the alert: the Flag and the GP's task.
	subjects := map[string]int{}
	for _, row := range r.pending() {
		subjects[row.Event.Subject]++
	}
	if subjects["fhir.demo.Flag.created"] != 1 || subjects["fhir.demo.Task.created"] != 1 {
		t.Errorf("alert events %v", subjects)
	}
	r.flush()
	if len(r.flags(p)["heart-rate"]) != 1 {
		t.Fatalf("flags %v", r.flags(p))
	}
	// Redelivered: nothing changes. Replayed with a new event id: still
	// one alert.
	r.deliver(m)
	m2 := m
	m2.Header = map[string]string{}
	for k, v := range m.Header {
		m2.Header[k] = v
	}
	m2.Header[bus.HeaderEventID] = "replay-" + res.ID
	r.deliver(m2)
	if got := len(r.pending()); got != 0 {
		t.Errorf("redelivery wrote %d events", got)
	}
	if n := len(r.flags(p)["heart-rate"]); n != 1 {
		t.Errorf("flags after redelivery: %d, want 1", n)
	}
}

func TestAcknowledge(t *testing.T) {
	r := newRig(t, "sqlite")
	srv := r.server()
	p := r.followed()
	r.heartRate(p, 130)
	f := r.flags(p)["heart-rate"][0]
	id := f["id"].(string)
	gpTask := r.reviewTasks(id)["gp"]["id"].(string)
	// Nobody in the team yet but the nurse: the GP gets the task.
	if res := srv.do(t, "dr.bernard", http.MethodPost, "/fhir/Flag/"+id+"/$acknowledge", nil); res.status != http.StatusForbidden {
		t.Errorf("GP without the task: %d %v", res.status, res.body)
	}
	r.assign(gpTask, "pr-dr-bernard")
	r.clk.Advance(time.Hour)
	res := srv.do(t, "dr.bernard", http.MethodPost, "/fhir/Flag/"+id+"/$acknowledge", nil)
	if res.status != http.StatusOK || res.body["status"] != "inactive" {
		t.Fatalf("acknowledge: %d %v", res.status, res.body)
	}
	ack := ""
	for _, x := range res.body["extension"].([]any) {
		if x.(map[string]any)["url"] == worklist.ExtAcknowledgement {
			ack = string(mustJSON(x))
		}
	}
	if !strings.Contains(ack, "PractitionerRole/pr-dr-bernard") || !strings.Contains(ack, "2025-03-14T16:30:00+01:00") {
		t.Errorf("acknowledgement %s, want who and when", ack)
	}
	if res := srv.do(t, "dr.bernard", http.MethodPost, "/fhir/Flag/"+id+"/$acknowledge", nil); res.status != http.StatusConflict {
		t.Errorf("twice: %d", res.status)
	}
	if res := srv.do(t, "", http.MethodPost, "/fhir/Flag/"+id+"/$acknowledge", nil); res.status != http.StatusUnauthorized {
		t.Errorf("no token: %d", res.status)
	}

	// Completing a review task acknowledges the alert.
	r.heartRate(p, 40)
	f2 := r.flags(p)["heart-rate"]
	var id2 string
	for _, x := range f2 {
		if x["status"] == "active" {
			id2 = x["id"].(string)
		}
	}
	tk := r.reviewTasks(id2)["gp"]["id"].(string)
	r.assign(tk, "pr-dr-bernard")
	gp := r.actor("dr.bernard")
	for _, a := range []string{"accept", "start", "complete"} {
		if _, err := r.svc.Transition(r.ctx, gp, tk, 0, a, ""); err != nil {
			t.Fatal(err)
		}
	}
	got, _ := r.read("Flag", id2)
	if got["status"] != "inactive" {
		t.Errorf("flag after its review: %v", got["status"])
	}
}

// A missed visit: the pathway marks the first contact overdue at its due
// date; the worklist raises one alert for the GP, however often the task
// is announced again.
func TestMissedVisit(t *testing.T) {
	r := newRig(t, "sqlite")
	p := r.followed()
	first := r.task(p, "first-contact")
	due, _ := time.Parse(time.RFC3339, s(first, "restriction", "period", "end"))
	r.clk.Set(due.Add(-time.Minute))
	r.advance(0)
	if n := len(r.flags(p)["missed-visit"]); n != 0 {
		t.Fatalf("alert before the due date: %d", n)
	}
	r.advance(2 * time.Minute)
	fl := r.flags(p)["missed-visit"]
	if len(fl) != 1 {
		t.Fatalf("missed-visit alerts: %d, want 1 (%v)", len(fl), r.flags(p))
	}
	if tasks := r.reviewTasks(fl[0]["id"].(string)); len(tasks) != 1 || tasks["gp"] == nil {
		t.Errorf("review tasks %v", tasks)
	}
	// Reassigned (a new version, announced again): no new alert.
	r.assign(first["id"].(string), "pr-ide-leroy")
	if n := len(r.flags(p)["missed-visit"]); n != 1 {
		t.Errorf("alerts after the task's next version: %d", n)
	}
	// A GP visit overdue is not a missed visit of the rule.
	gp := r.task(p, "gp-visit")
	gdue, _ := time.Parse(time.RFC3339, s(gp, "restriction", "period", "end"))
	r.clk.Set(gdue.Add(time.Minute))
	r.advance(0)
	gpNow, _ := r.read("Task", gp["id"].(string))
	if !strings.Contains(string(mustJSON(gpNow["businessStatus"])), "overdue") {
		t.Fatalf("gp visit not overdue: %v", gpNow["businessStatus"])
	}
	for _, f := range r.flags(p)["missed-visit"] {
		if strings.Contains(string(mustJSON(f)), gp["id"].(string)) {
			t.Errorf("the GP visit raised a missed-visit alert")
		}
	}
}

func TestMissingWeight(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			r := newRig(t, backend)
			start := r.clk.Now()
			p := r.followed()
			// Weighed at day 5: the wait starts again.
			r.advance(5 * 24 * time.Hour)
			r.weigh(p, 71)
			r.clk.Set(start.Add(8*24*time.Hour + time.Hour))
			r.advance(0)
			if n := len(r.flags(p)["weight-missing"]); n != 0 {
				t.Fatalf("alert 3 days after a weight: %d", n)
			}
			// A restart between now and the due time loses nothing.
			r.reopen()
			weighed := start.Add(5 * 24 * time.Hour)
			r.clk.Set(weighed.Add(8*24*time.Hour - time.Minute))
			r.advance(0)
			if n := len(r.flags(p)["weight-missing"]); n != 0 {
				t.Fatalf("alert a minute before 8 days: %d", n)
			}
			r.advance(2 * time.Minute)
			fl := r.flags(p)["weight-missing"]
			if len(fl) != 1 {
				t.Fatalf("weight-missing alerts: %d, want 1", len(fl))
			}
			if text := s(fl[0], "code", "text"); !strings.Contains(text, "8 jours") {
				t.Errorf("text %q", text)
			}
			// Still nothing 8 days later: one more alert, not one per tick.
			r.advance(time.Hour)
			if n := len(r.flags(p)["weight-missing"]); n != 1 {
				t.Errorf("alerts an hour later: %d", n)
			}
			r.advance(8 * 24 * time.Hour)
			if n := len(r.flags(p)["weight-missing"]); n != 2 {
				t.Errorf("alerts after another window: %d, want 2", n)
			}
		})
	}
}

// The episode ends: its missing-data timer goes.
func TestMissingTimerFollowsEpisode(t *testing.T) {
	r := newRig(t, "sqlite")
	p := r.followed()
	ep := r.search("EpisodeOfCare", refParam("patient", "Patient/"+p))[0]
	key := worklist.TimerMissing + ":" + tenant + ":" + ep["id"].(string) + ":weight-missing"
	if _, err := r.s.Timers().Pending(r.ctx, key); err != nil {
		t.Fatalf("timer of an active episode: %v", err)
	}
	first := r.task(p, "first-contact")["id"].(string)
	nurse := r.actor("ide.martin")
	for _, a := range []string{"accept", "start"} {
		if _, err := r.svc.Transition(r.ctx, nurse, first, 0, a, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.svc.Move(r.ctx, nurse, first, 0, worklist.Move{Action: "complete", BusinessStatus: "refused"}); err != nil {
		t.Fatal(err)
	}
	r.flush()
	if _, err := r.s.Timers().Pending(r.ctx, key); err == nil {
		t.Error("timer still pending after the episode ended")
	}
}

// A coordinator uploads the template with a new threshold: the next
// measurement follows it, with no change to the code.
func TestTemplateThresholdUpload(t *testing.T) {
	r := newRig(t, "sqlite")
	srv := r.server()
	p := r.followed()
	r.weigh(p, 70)
	r.clk.Advance(24 * time.Hour)
	r.weigh(p, 71.5)
	if n := len(r.flags(p)["weight-gain"]); n != 0 {
		t.Fatalf("+1.5 kg fired with the shipped 2 kg: %d", n)
	}
	b, err := os.ReadFile("../../fhir-profiles/PlanDefinition/hf-post-discharge.json")
	if err != nil {
		t.Fatal(err)
	}
	var pd map[string]any
	if err := json.Unmarshal(b, &pd); err != nil {
		t.Fatal(err)
	}
	changed := false
	for _, x := range pd["extension"].([]any) {
		xm := x.(map[string]any)
		if xm["url"] != worklist.ExtAlertRule || !strings.Contains(string(mustJSON(xm)), `"weight-gain"`) {
			continue
		}
		for _, sub := range xm["extension"].([]any) {
			sm := sub.(map[string]any)
			if sm["url"] == "delta" {
				sm["valueQuantity"].(map[string]any)["value"] = 1
				changed = true
			}
		}
	}
	if !changed {
		t.Fatal("no weight-gain delta in the shipped template")
	}
	delete(pd, "id")
	if res := srv.do(t, "ide.martin", http.MethodPost, "/fhir/PlanDefinition", pd); res.status != http.StatusForbidden {
		t.Errorf("nurse uploads a template: %d", res.status)
	}
	res := srv.do(t, "coord.cpts", http.MethodPost, "/fhir/PlanDefinition", pd)
	if res.status != http.StatusOK && res.status != http.StatusCreated {
		t.Fatalf("upload: %d %v", res.status, res.body)
	}
	r.clk.Advance(time.Hour)
	r.weigh(p, 71.6)
	fl := r.flags(p)["weight-gain"]
	if len(fl) != 1 {
		t.Fatalf("+1.6 kg with a 1 kg threshold: %d alerts", len(fl))
	}
	if !strings.Contains(string(mustJSON(fl[0])), fmt.Sprintf("|%s", res.body["version"])) {
		t.Errorf("flag does not name the template version %v", res.body["version"])
	}
}

// A template whose rule is broken is refused at upload by the profile.
func TestTemplateRuleProfile(t *testing.T) {
	b, err := os.ReadFile("../../fhir-profiles/PlanDefinition/hf-post-discharge.json")
	if err != nil {
		t.Fatal(err)
	}
	tpl, issues := pathway.Parse(b)
	if len(issues) > 0 || len(tpl.AlertRules) != 6 {
		t.Fatalf("shipped template: %v, issues %v", tpl, issues)
	}
	if is := validator.ValidateResource("https://passerelle.health/fhir/StructureDefinition/passerelle-plandefinition", b); hasError(is) {
		t.Fatalf("shipped template invalid: %v", is)
	}
	bad := strings.Replace(string(b), `"url": "severity",
          "valueCode": "moderate"`, `"url": "severity",
          "valueString": "moderate"`, 1)
	if bad == string(b) {
		t.Fatal("test edit did not apply")
	}
	if is := validator.ValidateResource("https://passerelle.health/fhir/StructureDefinition/passerelle-plandefinition", []byte(bad)); !hasError(is) {
		t.Error("a severity typed string passed the profile")
	}
	if _, issues := pathway.Parse([]byte(bad)); len(issues) == 0 {
		t.Error("pathway.Parse read a mistyped severity")
	}
	for _, c := range []struct{ name, from, to string }{
		{"unknown kind", `"valueCode": "rise"`, `"valueCode": "jump"`},
		{"unknown severity", `"valueCode": "moderate"`, `"valueCode": "urgent"`},
		{"unknown role", `"url": "role",
          "valueCode": "gp"`, `"url": "role",
          "valueCode": "surgeon"`},
	} {
		bad := strings.Replace(string(b), c.from, c.to, 1)
		if bad == string(b) {
			t.Fatalf("%s: test edit did not apply", c.name)
		}
		if is := validator.ValidateResource("https://passerelle.health/fhir/StructureDefinition/passerelle-plandefinition", []byte(bad)); !hasError(is) {
			t.Errorf("%s passed the profile", c.name)
		}
	}
}

func hasError(is []validate.Issue) bool {
	for _, i := range is {
		if i.Severity == "error" || i.Severity == "fatal" {
			return true
		}
	}
	return false
}

// A discharge notified 20 days late: the missing-data timers count from
// when Passerelle learnt of it, not from the discharge, so none is due
// already and no alert is raised for the days nobody could weigh.
func TestMissingDataOfALateDischarge(t *testing.T) {
	r := newRig(t, "sqlite")
	now := r.clk.Now()
	p := r.patient()
	r.dischargeMsgAt(p, now.AddDate(0, 0, -20))
	r.flush()
	eps := r.search("EpisodeOfCare", refParam("patient", "Patient/"+p))
	if len(eps) != 1 || eps[0]["status"] != "active" {
		t.Fatalf("episodes: %v", eps)
	}
	key := worklist.TimerMissing + ":" + tenant + ":" + eps[0]["id"].(string) + ":weight-missing"
	tm, err := r.s.Timers().Pending(r.ctx, key)
	if err != nil {
		t.Fatalf("timer of the late episode: %v", err)
	}
	if want := now.Add(8 * 24 * time.Hour); !tm.Due.Equal(want) {
		t.Errorf("weight-missing due %s, want 8 days after the notification (%s)", tm.Due, want)
	}
	r.advance(time.Minute)
	if n := len(r.flags(p)["weight-missing"]); n != 0 {
		t.Fatalf("weight-missing alerts at the notification: %d", n)
	}
	// The wait is the template's, from the notification on.
	r.clk.Set(now.Add(8*24*time.Hour - time.Minute))
	r.advance(0)
	if n := len(r.flags(p)["weight-missing"]); n != 0 {
		t.Fatalf("alert a minute before 8 days after the notification: %d", n)
	}
	r.advance(2 * time.Minute)
	if n := len(r.flags(p)["weight-missing"]); n != 1 {
		t.Errorf("weight-missing alerts 8 days after the notification: %d, want 1", n)
	}
}
