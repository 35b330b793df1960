package pathway_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	pathwaydef "github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/services/pathway"
)

// lateNotices returns the late-inclusion Communications.
func (r *rig) lateNotices() []map[string]any {
	r.t.Helper()
	var out []map[string]any
	for _, c := range r.search("Communication") {
		if strings.Contains(string(mustJSON(c["category"])), `"`+pathway.CodeLateInclusion+`"`) {
			out = append(out, c)
		}
	}
	return out
}

func businessStatus(t map[string]any) string {
	bs, _ := t["businessStatus"].(map[string]any)
	if bs == nil {
		return ""
	}
	return bs["coding"].([]any)[0].(map[string]any)["code"].(string)
}

// withElapsed is the shipped heart-failure template with the action code's
// extension elapsed-occurrence set to rule.
func withElapsed(t *testing.T, action, rule string) map[string]any {
	tpl := shippedHF(t)
	for _, a := range tpl["action"].([]any) {
		am := a.(map[string]any)
		if am["code"].([]any)[0].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] != action {
			continue
		}
		ext, _ := am["extension"].([]any)
		am["extension"] = append(ext, map[string]any{"url": pathwaydef.ExtElapsed, "valueCode": rule})
	}
	delete(tpl, "id")
	return tpl
}

// TestLateDischarge: a discharge the hospital notifies 20 days after the
// patient left sets off no alert storm. The occurrences already past
// follow the template's rule — recorded missed (the template's default),
// or skipped (the lab test, in this CPTS's version) —, the one whose
// window is still open is due at its end, nothing is due in the past,
// and the referent coordinating nurse gets one notice, whatever replays.
func TestLateDischarge(t *testing.T) {
	r := newRig(t)
	if status, _ := post(t, r.api("coord.cpts").URL, withElapsed(t, "lab-potassium-creatinine", "skip")); status != http.StatusOK {
		t.Fatalf("upload with a skip rule: %d", status)
	}
	now := r.clk.Now() // Friday 14 March 2025, 15:30
	p := r.patient("1948-03-15")
	enc := uuid.NewString()
	// Saturday 22 February: D+20 is today.
	st := hfDischarge(p, enc, paris("2025-02-22T10:00"))
	r.encounter(st)
	v := r.only(p)
	if v.ep["status"] != "active" {
		t.Fatalf("episode %v", v.ep["status"])
	}

	// The first contact, the medication review, the GP visit and the first
	// weekly nurse visit were due by 8 March: recorded missed. The lab
	// test (by 4 March) is skipped: no task.
	if n := len(byCode(v.tasks, "lab-potassium-creatinine")); n != 0 {
		t.Errorf("lab tasks: %d, want none (skip)", n)
	}
	missed := map[string]int{}
	for _, tk := range v.tasks {
		end, err := time.Parse(time.RFC3339, due(tk))
		if err != nil {
			t.Fatal(err)
		}
		if tk["status"] == "cancelled" {
			if businessStatus(tk) != pathway.CodeMissed || !strings.Contains(s(tk, "statusReason", "text"), "notifiée") || tk["owner"] != nil {
				t.Errorf("missed %s: %v %v %v", code(tk), tk["businessStatus"], tk["statusReason"], tk["owner"])
			}
			if !end.Before(now) {
				t.Errorf("%s recorded missed with a window still open (%s)", code(tk), due(tk))
			}
			if r.pendingTimer(tk["id"].(string)) {
				t.Errorf("missed %s has a due-date timer", code(tk))
			}
			missed[code(tk)]++
			continue
		}
		if tk["status"] != "requested" || end.Before(now) {
			t.Errorf("open task %s %v due %s, in the past", code(tk), tk["status"], due(tk))
		}
		if !r.pendingTimer(tk["id"].(string)) {
			t.Errorf("%s has no due-date timer", code(tk))
		}
	}
	want := map[string]int{"first-contact": 1, "medication-review": 1, "gp-visit": 1, "nurse-follow-up": 1}
	if len(missed) != len(want) {
		t.Errorf("missed %v, want %v", missed, want)
	}
	for c, n := range want {
		if missed[c] != n {
			t.Errorf("missed %s: %d, want %d", c, missed[c], n)
		}
	}
	if got := statuses(v.tasks); got["requested"] != 8 || got["cancelled"] != 4 || len(v.tasks) != 12 {
		t.Errorf("tasks %v (%d), want 8 requested, 4 missed", got, len(v.tasks))
	}
	// The second weekly visit (9 … 15 March) started in the past and is
	// still open: created as usual, due at its window's end.
	nurse := byCode(v.tasks, "nurse-follow-up")
	if got := windows(nurse[1:2]); nurse[1]["status"] != "requested" || got[0] != (window{"2025-03-09T00:00:00+01:00", "2025-03-15T23:59:59+01:00"}) {
		t.Errorf("second nurse visit %v %v", nurse[1]["status"], got)
	}
	// No timer of any kind in the past: no check at D+3, no reminder.
	if at, ok, err := r.s.Timers().NextDue(r.ctx); err != nil || !ok || at.Before(now) {
		t.Errorf("next timer %s (%v, %v), want none before now", at, ok, err)
	}
	if r.pending(pathway.TimerCheck + ":" + tenant + ":" + v.ep["id"].(string) + ":first-contact-done") {
		t.Error("the D+3 check is scheduled, 17 days after D+3")
	}
	// The episode records when Passerelle learnt of the discharge.
	if at, ok := pathwaydef.LateNotified(v.ep); !ok || !at.Equal(now) {
		t.Errorf("late-inclusion notified %s %v, want %s", at, ok, now)
	}

	// One notice to the referent, naming no patient.
	notices := r.lateNotices()
	if len(notices) != 1 {
		t.Fatalf("late-inclusion notices: %d, want 1", len(notices))
	}
	n := notices[0]
	text := s(n["payload"].([]any)[0].(map[string]any), "contentString")
	for _, w := range []string{"22/02/2025", "20 jour(s) de retard", "4 enregistrée(s) manquée(s), 1 non créée(s)", "Vérifiez le suivi"} {
		if !strings.Contains(text, w) {
			t.Errorf("notice %q does not say %q", text, w)
		}
	}
	if strings.Contains(text, p) || strings.Contains(text, "1948") {
		t.Errorf("notice names the patient: %q", text)
	}
	if got := s(n["recipient"].([]any)[0].(map[string]any), "reference"); got != "PractitionerRole/pr-idec-moreau" {
		t.Errorf("notice to %s, want the referent coordinating nurse", got)
	}
	if got := s(n["about"].([]any)[0].(map[string]any), "reference"); got != "EpisodeOfCare/"+v.ep["id"].(string) {
		t.Errorf("notice about %s", got)
	}
	comms := 0
	for _, row := range r.outbox() {
		if row.Event.Subject == bus.ResourceSubject(tenant, "Communication", bus.OpCreated) {
			comms++
		}
	}
	if comms != 1 {
		t.Errorf("Communication.created events: %d, want 1", comms)
	}

	// The timers due up to tomorrow morning: nothing overdue, no reminder.
	r.fireUntil(paris("2025-03-15T09:00"))
	for _, tk := range r.only(p).tasks {
		if businessStatus(tk) == "overdue" {
			t.Errorf("%s overdue the day after the notification", code(tk))
		}
	}
	if n := len(r.reminders()); n != 0 {
		t.Errorf("reminders: %d", n)
	}

	// The archived message replayed: the episode exists, nothing more.
	events := len(r.outbox())
	r.encounter(st)
	if n := len(r.lateNotices()); n != 1 || len(r.outbox()) != events || len(r.only(p).tasks) != 12 {
		t.Errorf("replay: %d notices, %d→%d events", n, events, len(r.outbox()))
	}
}

// TestOnTimeDischargeHasNoLateInclusion: a discharge notified the day it
// happens is not late: every task open, no notice, no mark.
func TestOnTimeDischargeHasNoLateInclusion(t *testing.T) {
	r := newRig(t)
	p := r.patient("1948-03-15")
	// Notified the next morning: the first contact's window (from D+1) is
	// open.
	r.clk.Set(paris("2025-03-15T08:00"))
	r.encounter(hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00")))
	v := r.only(p)
	if got := statuses(v.tasks); got["requested"] != 13 {
		t.Errorf("tasks %v, want 13 requested", got)
	}
	if _, late := pathwaydef.LateNotified(v.ep); late {
		t.Error("an on-time episode is marked late")
	}
	if n := len(r.lateNotices()); n != 0 {
		t.Errorf("late-inclusion notices: %d", n)
	}
	if !r.pending(pathway.TimerCheck + ":" + tenant + ":" + v.ep["id"].(string) + ":first-contact-done") {
		t.Error("no D+3 check")
	}
}

// TestLateInclusionToConfirm: a discharge to confirm, notified late: the
// referent's confirmation is due when it can still be settled; the notice
// goes once the tasks exist, at the confirmation.
func TestLateInclusionToConfirm(t *testing.T) {
	r := newRig(t)
	p := r.patient("1948-03-15")
	st := hfDischarge(p, uuid.NewString(), paris("2025-02-22T10:00"))
	st.diagnoses = nil
	r.encounter(st)
	v := r.only(p)
	if v.ep["status"] != "planned" || len(v.tasks) != 1 {
		t.Fatalf("episode %v, %d tasks", v.ep["status"], len(v.tasks))
	}
	// Friday 14 March: due at the end of Saturday 15.
	if got := due(v.tasks[0]); got != "2025-03-15T23:59:59+01:00" {
		t.Errorf("confirmation due %s, want the end of the next working day", got)
	}
	if n := len(r.lateNotices()); n != 0 {
		t.Errorf("notices before the confirmation: %d", n)
	}
	r.clk.Set(paris("2025-03-15T09:00"))
	r.updateTask(v.tasks[0], func(m map[string]any) {
		m["status"] = "completed"
		m["businessStatus"] = map[string]any{"coding": []any{map[string]any{"system": pathway.SystemBusinessStatus, "code": "include"}}}
	})
	v = r.only(p)
	if v.ep["status"] != "active" {
		t.Fatalf("episode %v", v.ep["status"])
	}
	if got := statuses(v.tasks); got["cancelled"] != 5 {
		t.Errorf("tasks %v, want 5 missed (first contact, medication review, GP visit, lab test, first nurse visit)", got)
	}
	notices := r.lateNotices()
	if len(notices) != 1 || !strings.Contains(s(notices[0]["payload"].([]any)[0].(map[string]any), "contentString"), "5 enregistrée(s) manquée(s)") {
		t.Errorf("notices %v", notices)
	}
	if at, ok, err := r.s.Timers().NextDue(r.ctx); err != nil || !ok || at.Before(r.clk.Now()) {
		t.Errorf("next timer %s (%v, %v), want none before now", at, ok, err)
	}
}

// TestUploadRefusesUnknownElapsedRule: a rule for occurrences already past
// that Passerelle does not know is refused at upload, the issue naming the
// action in French and English, and nothing is stored.
func TestUploadRefusesUnknownElapsedRule(t *testing.T) {
	r := newRig(t)
	status, oo := post(t, r.api("coord.cpts").URL, withElapsed(t, "gp-visit", "postpone"))
	if status != http.StatusBadRequest || oo["resourceType"] != "OperationOutcome" {
		t.Fatalf("upload: %d %v", status, oo)
	}
	found := false
	for _, is := range oo["issue"].([]any) {
		im := is.(map[string]any)
		text, _ := im["details"].(map[string]any)["text"].(string)
		for _, e := range im["expression"].([]any) {
			if strings.HasPrefix(e.(string), "PlanDefinition.action[2].extension[") && strings.Contains(text, "Action « gp-visit »") &&
				strings.Contains(text, `Action "gp-visit"`) && strings.Contains(text, "postpone") {
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no issue naming the action gp-visit: %v", oo["issue"])
	}
	if res, err := r.s.Read(r.ctx, "PlanDefinition", "hf-post-discharge"); err != nil || res.Version != 1 {
		t.Errorf("template version %d (%v)", res.Version, err)
	}
}
