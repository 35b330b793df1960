package pathway_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/intake"
	"github.com/passerelle-sante/passerelle/pkg/timer"
	"github.com/passerelle-sante/passerelle/services/pathway"
)

type window struct{ start, end string }

func windows(tasks []map[string]any) []window {
	var out []window
	for _, t := range tasks {
		out = append(out, window{s(t, "restriction", "period", "start"), due(t)})
	}
	return out
}

func TestHeartFailureDischarge(t *testing.T) {
	r := newRig(t)
	p := r.patient("1948-03-15")
	// Friday 14 March 2025; the last Sunday of March (30th) falls inside
	// the weekly series.
	r.encounter(hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00")))
	v := r.only(p)
	if v.ep["status"] != "active" || s(v.ep, "managingOrganization", "reference") != "Organization/"+directory.DevCPTS {
		t.Fatalf("episode: %v", v.ep)
	}
	if got := v.cp["instantiatesCanonical"].([]any)[0]; got != "https://passerelle.health/fhir/PlanDefinition/hf-post-discharge|1" {
		t.Errorf("instantiatesCanonical = %v", got)
	}
	if n := len(v.cp["activity"].([]any)); n != 9 {
		t.Errorf("activities = %d, want one per action (9)", n)
	}
	if n := len(v.cp["goal"].([]any)); n != 2 {
		t.Errorf("goals = %d", n)
	}
	if len(v.tasks) != 13 {
		t.Fatalf("tasks = %d, want 13", len(v.tasks))
	}
	for _, tk := range v.tasks {
		if tk["status"] != "requested" || tk["intent"] != "order" || s(tk, "for", "reference") != "Patient/"+p {
			t.Errorf("task %v", tk)
		}
		if !r.pendingTimer(tk["id"].(string)) {
			t.Errorf("task %s has no due-date timer", code(tk))
		}
	}
	want := map[string][]window{
		"first-contact":            {{"2025-03-15T00:00:00+01:00", "2025-03-17T23:59:59+01:00"}},
		"medication-review":        {{"2025-03-14T15:00:00+01:00", "2025-03-21T23:59:59+01:00"}},
		"gp-visit":                 {{"2025-03-14T15:00:00+01:00", "2025-03-21T23:59:59+01:00"}},
		"lab-potassium-creatinine": {{"2025-03-14T15:00:00+01:00", "2025-03-24T23:59:59+01:00"}},
		"nurse-follow-up": {
			{"2025-03-22T00:00:00+01:00", "2025-03-28T23:59:59+01:00"},
			{"2025-03-29T00:00:00+01:00", "2025-04-04T23:59:59+02:00"}, // across the DST change
			{"2025-04-05T00:00:00+02:00", "2025-04-11T23:59:59+02:00"},
			{"2025-04-12T00:00:00+02:00", "2025-04-18T23:59:59+02:00"},
			{"2025-04-19T00:00:00+02:00", "2025-04-25T23:59:59+02:00"},
			{"2025-04-26T00:00:00+02:00", "2025-05-02T23:59:59+02:00"},
			{"2025-05-03T00:00:00+02:00", "2025-05-09T23:59:59+02:00"},
		},
		// D+30 is Sunday 13 April: next working day.
		"education-session":    {{"2025-03-14T15:00:00+01:00", "2025-04-14T23:59:59+02:00"}},
		"cardiology-visit":     {{"2025-03-14T15:00:00+01:00", "2025-05-13T23:59:59+02:00"}},
		"nurse-follow-up-nyha": nil,
	}
	for c, w := range want {
		got := windows(byCode(v.tasks, c))
		if len(got) != len(w) {
			t.Errorf("%s: %d tasks, want %d", c, len(got), len(w))
			continue
		}
		for i := range w {
			if got[i] != w[i] {
				t.Errorf("%s #%d: window %v, want %v", c, i+1, got[i], w[i])
			}
		}
	}
	// One event for the whole discharge, led by the episode.
	rows := r.outbox()
	if len(rows) != 1 || rows[0].Event.Subject != bus.ResourceSubject(tenant, "EpisodeOfCare", "created") {
		t.Fatalf("events: %+v", rows)
	}
	if !strings.Contains(string(rows[0].Event.Data), `"type":"history"`) || !strings.HasPrefix(rows[0].Event.MsgID, "EpisodeOfCare/") {
		t.Errorf("event: %s %s", rows[0].Event.MsgID, rows[0].Event.Data[:200])
	}
}

func TestHolidaysAndDaylightSaving(t *testing.T) {
	cases := []struct {
		name, d0, code, start, end string
	}{
		// D+7 is Monday 14 July: Tuesday 15.
		{"14 July", "2025-07-07T11:00", "gp-visit", "2025-07-07T11:00:00+02:00", "2025-07-15T23:59:59+02:00"},
		// D+7 is Easter Monday 21 April 2025: Tuesday 22.
		{"Easter Monday", "2025-04-14T09:00", "gp-visit", "2025-04-14T09:00:00+02:00", "2025-04-22T23:59:59+02:00"},
		// D+1 … D+3 across the last Sunday of October (26th).
		{"October DST", "2025-10-24T16:00", "first-contact", "2025-10-25T00:00:00+02:00", "2025-10-27T23:59:59+01:00"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			p := r.patient("1950-01-01")
			r.encounter(hfDischarge(p, uuid.NewString(), paris(c.d0)))
			got := windows(byCode(r.only(p).tasks, c.code))
			if len(got) != 1 || got[0] != (window{c.start, c.end}) {
				t.Errorf("%s: %v, want %s … %s", c.code, got, c.start, c.end)
			}
		})
	}
}

func TestRedeliveryChangesNothing(t *testing.T) {
	r := newRig(t)
	p := r.patient("1948-03-15")
	enc := uuid.NewString()
	m := r.encounter(hfDischarge(p, enc, paris("2025-03-14T15:00")))
	before := r.only(p)
	events := len(r.outbox())
	r.deliver(pathway.DurableEncounter, r.svc.HandleEncounter, m)
	// The same discharge sent again under another message id.
	r.encounter(hfDischarge(p, enc, paris("2025-03-14T15:00")))
	after := r.only(p)
	if len(after.tasks) != len(before.tasks) || s(after.ep, "meta", "versionId") != s(before.ep, "meta", "versionId") || len(r.outbox()) != events {
		t.Fatalf("redelivery changed something: %d→%d tasks, %d→%d events", len(before.tasks), len(after.tasks), events, len(r.outbox()))
	}
}

func TestNotEligible(t *testing.T) {
	cases := map[string]func(*stay){
		"no heart-failure code": func(s *stay) { s.diagnoses = []string{"J18.9"} },
		"not home":              func(s *stay) { s.disposition = "other-hcf" },
		"minor":                 func(s *stay) { s.birthDate = "2010-05-01" },
		"séance":                func(s *stay) { s.class = "R" },
		"elective":              func(s *stay) { s.elective = true },
		"transfer":              func(s *stay) { s.modeSortie = "7" },
		"no diagnosis, not cardiology": func(s *stay) {
			s.diagnoses = nil
			s.unit = "9999"
		},
	}
	for name, mut := range cases {
		t.Run(name, func(t *testing.T) {
			r := newRig(t)
			p := r.patient("1948-03-15")
			st := hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00"))
			mut(&st)
			r.encounter(st)
			if eps := r.episodes(p); len(eps) != 0 {
				t.Fatalf("episode opened: %v", eps[0].ep)
			}
		})
	}
}

func TestFallTemplate(t *testing.T) {
	r := newRig(t)
	p := r.patient("1938-06-01")
	st := hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00"))
	st.diagnoses = []string{"S72.0", "W19"}
	r.encounter(st)
	v := r.only(p)
	if got := v.cp["instantiatesCanonical"].([]any)[0]; got != "https://passerelle.health/fhir/PlanDefinition/fall-home-return|1" {
		t.Fatalf("template %v", got)
	}
	// D+14 is Friday 28 March; the home visit's rule is previous-working-day.
	if w := windows(byCode(v.tasks, "home-safety-visit")); len(w) != 1 || w[0].end != "2025-03-28T23:59:59+01:00" {
		t.Errorf("home visit %v", w)
	}
	if n := len(byCode(v.tasks, "nurse-follow-up")); n != 4 {
		t.Errorf("nurse visits %d", n)
	}
}

func TestCancelDischarge(t *testing.T) {
	r := newRig(t)
	p := r.patient("1948-03-15")
	enc := uuid.NewString()
	r.encounter(hfDischarge(p, enc, paris("2025-03-14T15:00")))
	r.clk.Advance(time.Hour)
	r.encounter(stay{patient: p, enc: enc, kind: intake.KindCancelDischarge, start: paris("2025-03-06T10:00")})
	v := r.only(p)
	if v.ep["status"] != "entered-in-error" || v.cp["status"] != "entered-in-error" || endReason(v.ep) != pathway.ReasonDischargeCancelled {
		t.Fatalf("episode %v / care plan %v", v.ep["status"], v.cp["status"])
	}
	if st := statuses(v.tasks); st["cancelled"] != 13 {
		t.Errorf("tasks %v", st)
	}
	for _, tk := range v.tasks {
		if r.pendingTimer(tk["id"].(string)) {
			t.Errorf("timer left for cancelled task %s", code(tk))
		}
	}
	rows := r.outbox()
	if last := rows[len(rows)-1].Event.Subject; last != bus.ResourceSubject(tenant, "EpisodeOfCare", "updated") || len(rows) != 2 {
		t.Errorf("events: %d, last on %s", len(rows), last)
	}
}

func TestDeath(t *testing.T) {
	r := newRig(t)
	p := r.patient("1948-03-15")
	r.encounter(hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00")))
	v := r.only(p)
	r.updateTask(byCode(v.tasks, "first-contact")[0], func(m map[string]any) { m["status"] = "completed" })
	r.clk.Set(paris("2025-03-20T08:00"))
	death := paris("2025-03-20T03:00")
	r.encounter(stay{patient: p, enc: uuid.NewString(), kind: intake.KindDeath, start: paris("2025-03-19T22:00"), end: death, disposition: "exp"})
	v = r.only(p)
	if v.ep["status"] != "finished" || endReason(v.ep) != pathway.ReasonDeath || s(v.ep, "period", "end") != "2025-03-20T03:00:00+01:00" {
		t.Fatalf("episode %v %v %v", v.ep["status"], endReason(v.ep), v.ep["period"])
	}
	if st := statuses(v.tasks); st["cancelled"] != 12 || st["completed"] != 1 {
		t.Errorf("tasks %v", st)
	}
}

func TestReadmissionHoldsThenResumesShifted(t *testing.T) {
	r := newRig(t)
	p := r.patient("1948-03-15")
	r.encounter(hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00")))
	v := r.only(p)
	r.updateTask(byCode(v.tasks, "first-contact")[0], func(m map[string]any) { m["status"] = "completed" })
	r.updateTask(byCode(v.tasks, "gp-visit")[0], func(m map[string]any) { m["status"] = "accepted" })

	// Readmitted on D+5 in another hospital of the region.
	readm := uuid.NewString()
	r.clk.Set(paris("2025-03-19T10:00"))
	r.encounter(stay{patient: p, enc: readm, kind: intake.KindAdmit, start: paris("2025-03-19T10:00")})
	v = r.only(p)
	if v.ep["status"] != "onhold" || v.cp["status"] != "on-hold" {
		t.Fatalf("episode %v, care plan %v", v.ep["status"], v.cp["status"])
	}
	if st := statuses(v.tasks); st["on-hold"] != 12 || st["completed"] != 1 {
		t.Fatalf("tasks %v", st)
	}
	for _, tk := range v.tasks {
		if r.pendingTimer(tk["id"].(string)) {
			t.Errorf("held task %s keeps its timer", code(tk))
		}
	}

	// Discharged five days later: the held tasks move by five days.
	r.clk.Set(paris("2025-03-24T12:00"))
	back := hfDischarge(p, readm, paris("2025-03-24T12:00"))
	r.encounter(back)
	eps := r.episodes(p)
	if len(eps) != 1 {
		t.Fatalf("the readmission's discharge opened another episode: %d", len(eps))
	}
	v = eps[0]
	if v.ep["status"] != "active" || v.cp["status"] != "active" {
		t.Fatalf("episode %v", v.ep["status"])
	}
	st := statuses(v.tasks)
	if st["requested"] != 11 || st["accepted"] != 1 || st["completed"] != 1 {
		t.Fatalf("on-hold must return to the state it left: %v", st)
	}
	want := map[string]string{
		"gp-visit":                 "2025-03-26T23:59:59+01:00", // D+7 → D+12
		"lab-potassium-creatinine": "2025-03-29T23:59:59+01:00", // D+10 → D+15, a Saturday
		"first-contact":            "2025-03-17T23:59:59+01:00", // done before: unchanged
		"cardiology-visit":         "2025-05-19T23:59:59+02:00", // D+60 → D+65
	}
	for c, w := range want {
		if got := due(byCode(v.tasks, c)[0]); got != w {
			t.Errorf("%s due %s, want %s", c, got, w)
		}
	}
	for _, tk := range v.tasks {
		if open := tk["status"] == "requested" || tk["status"] == "accepted"; open != r.pendingTimer(tk["id"].(string)) {
			t.Errorf("task %s (%s): timer pending = %v", code(tk), tk["status"], !open)
		}
	}
}

func TestRefusalAtFirstContactCloses(t *testing.T) {
	r := newRig(t)
	p := r.patient("1948-03-15")
	r.encounter(hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00")))
	r.clk.Set(paris("2025-03-15T10:00"))
	first := byCode(r.only(p).tasks, "first-contact")[0]
	r.updateTask(first, func(m map[string]any) {
		m["status"] = "completed"
		m["businessStatus"] = map[string]any{"coding": []any{map[string]any{"system": pathway.SystemBusinessStatus, "code": "refused"}}}
	})
	v := r.only(p)
	if v.ep["status"] != "finished" || endReason(v.ep) != pathway.ReasonRefused || v.cp["status"] != "completed" {
		t.Fatalf("episode %v %v", v.ep["status"], endReason(v.ep))
	}
	if st := statuses(v.tasks); st["cancelled"] != 12 || st["completed"] != 1 {
		t.Errorf("tasks %v", st)
	}
}

func TestInclusionToConfirm(t *testing.T) {
	for _, answer := range []string{"include", "exclude"} {
		t.Run(answer, func(t *testing.T) {
			r := newRig(t)
			p := r.patient("1948-03-15")
			// An A03 with no DG1 from the cardiology unit 4201.
			st := hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00"))
			st.diagnoses = nil
			r.encounter(st)
			v := r.only(p)
			if v.ep["status"] != "planned" || len(v.tasks) != 1 {
				t.Fatalf("episode %v, %d tasks", v.ep["status"], len(v.tasks))
			}
			confirm := v.tasks[0]
			if code(confirm) != pathway.CodeConfirmInclusion || s(confirm, "owner", "reference") != "PractitionerRole/pr-idec-moreau" {
				t.Fatalf("confirmation task %v", confirm)
			}
			if due(confirm) != "2025-03-17T23:59:59+01:00" {
				t.Errorf("confirmation due %s, want the first contact's", due(confirm))
			}
			r.clk.Set(paris("2025-03-15T09:00"))
			r.updateTask(confirm, func(m map[string]any) {
				m["status"] = "completed"
				m["businessStatus"] = map[string]any{"coding": []any{map[string]any{"system": pathway.SystemBusinessStatus, "code": answer}}}
			})
			v = r.only(p)
			if answer == "exclude" {
				if v.ep["status"] != "cancelled" || endReason(v.ep) != pathway.ReasonExcluded {
					t.Fatalf("episode %v", v.ep["status"])
				}
				return
			}
			if v.ep["status"] != "active" || len(v.tasks) != 14 {
				t.Fatalf("episode %v, %d tasks", v.ep["status"], len(v.tasks))
			}
			// Dates count from the original discharge.
			if got := due(byCode(v.tasks, "gp-visit")[0]); got != "2025-03-21T23:59:59+01:00" {
				t.Errorf("gp due %s", got)
			}
		})
	}
}

func TestNYHADecidesTheFortnightlySeries(t *testing.T) {
	cases := []struct {
		name, snomed string
		want         int
	}{{"NYHA III", "420913000", 8}, {"NYHA IV", "422293003", 8}, {"NYHA II", "421704003", 0}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			p := r.patient("1948-03-15")
			r.encounter(hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00")))
			r.clk.Set(paris("2025-03-16T10:00"))
			r.observe(p, paris("2025-03-16T10:00"), "88020-3", nyha(c.snomed))
			// A later class does not decide again: the first contact's does.
			r.observe(p, paris("2025-04-16T10:00"), "88020-3", nyha("422293003"))
			v := r.only(p)
			series := byCode(v.tasks, "nurse-follow-up-nyha")
			if len(series) != c.want {
				t.Fatalf("series tasks %d, want %d", len(series), c.want)
			}
			if c.want > 0 {
				if first, last := due(series[0]), due(series[len(series)-1]); first != "2025-05-23T23:59:59+02:00" || last != "2025-08-29T23:59:59+02:00" {
					t.Errorf("series due %s … %s", first, last)
				}
			}
		})
	}
}

func TestTimerFiresAfterRestart(t *testing.T) {
	r := newRig(t)
	p := r.patient("1948-03-15")
	r.encounter(hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00")))
	before := len(r.outbox())
	// The process stops after scheduling; a new one starts.
	if err := r.s.Close(); err != nil {
		t.Fatal(err)
	}
	r.open()
	runner := &timer.Runner{Store: r.s, Clock: r.clk, Owner: "after-restart", Handlers: r.svc.TimerHandlers()}
	if n, err := runner.FireDue(r.ctx, nil); err != nil || n != 0 {
		t.Fatalf("fired %d before the due date (%v)", n, err)
	}
	r.clk.Set(paris("2025-03-18T00:00"))
	// The first contact's reminder (D+2) and due date, and the template's
	// D+3 check.
	if n, err := runner.FireDue(r.ctx, nil); err != nil || n != 3 {
		t.Fatalf("fired %d, want the first contact's reminder and due timers and the D+3 check (%v)", n, err)
	}
	v := r.only(p)
	for _, tk := range v.tasks {
		overdue := strings.Contains(string(mustJSON(tk["businessStatus"])), `"overdue"`)
		if overdue != (code(tk) == "first-contact") {
			t.Errorf("%s overdue = %v", code(tk), overdue)
		}
	}
	rows := r.outbox()
	got := map[string]int{}
	for _, row := range rows[before:] {
		got[row.Event.Subject]++
	}
	want := map[string]int{bus.ResourceSubject(tenant, "Task", "updated"): 1, bus.ResourceSubject(tenant, "Communication", "created"): 1,
		bus.ResourceSubject(tenant, "EpisodeOfCare", "updated"): 1}
	if len(got) != len(want) || len(rows) != before+3 {
		t.Errorf("events after %d: %v", before, got)
	}
	for k, n := range want {
		if got[k] != n {
			t.Errorf("events %s: %d, want %d", k, got[k], n)
		}
	}
}

func TestDeathRecordedByTheTeam(t *testing.T) {
	r := newRig(t)
	p := r.patient("1948-03-15")
	r.encounter(hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00")))
	r.clk.Set(paris("2025-04-02T10:00"))
	obs := map[string]any{"resourceType": "Observation", "id": uuid.NewString(), "status": "final",
		"code":          map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": "81956-5"}}},
		"subject":       map[string]any{"reference": "Patient/" + p},
		"valueDateTime": "2025-04-01T23:30:00+02:00"}
	r.deliver(pathway.DurableObservation, r.svc.HandleObservation, bus.Msg{Subject: bus.ResourceSubject(tenant, "Observation", bus.OpCreated),
		Data: mustJSON(obs), Header: map[string]string{bus.HeaderMsgID: "Observation/" + obs["id"].(string), bus.HeaderTenant: tenant}})
	v := r.only(p)
	if v.ep["status"] != "finished" || endReason(v.ep) != pathway.ReasonDeath || s(v.ep, "period", "end") != "2025-04-01T23:30:00+02:00" {
		t.Fatalf("episode %v %v %v", v.ep["status"], endReason(v.ep), v.ep["period"])
	}
	if st := statuses(v.tasks); st["cancelled"] != 13 {
		t.Errorf("tasks %v", st)
	}
}
