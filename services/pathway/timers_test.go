package pathway_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/intake"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/timer"
	"github.com/passerelle-sante/passerelle/services/pathway"
)

func (r *rig) runner() *timer.Runner {
	return &timer.Runner{Store: r.s, Clock: r.clk, Owner: "test-" + uuid.NewString(), Handlers: r.svc.TimerHandlers()}
}

// fireUntil moves the clock to at and fires every timer due by then.
func (r *rig) fireUntil(at time.Time) {
	r.t.Helper()
	r.clk.Set(at)
	run := r.runner()
	for {
		n, err := run.FireDue(r.ctx, nil)
		if err != nil {
			r.t.Fatal(err)
		}
		if n == 0 {
			return
		}
	}
}

func (r *rig) pending(key string) bool {
	r.t.Helper()
	_, err := r.s.Timers().Pending(r.ctx, key)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		r.t.Fatal(err)
	}
	return err == nil
}

func (r *rig) reminders() []map[string]any {
	r.t.Helper()
	var out []map[string]any
	for _, c := range r.search("Communication") {
		if strings.Contains(string(mustJSON(c["category"])), `"`+pathway.CodeReminder+`"`) {
			out = append(out, c)
		}
	}
	return out
}

func reminderKey(taskID string) string {
	return pathway.TimerTaskReminder + ":" + tenant + ":" + taskID
}

func TestReminderFiresAfterRestart(t *testing.T) {
	r := newRig(t)
	p := r.patient("1948-03-15")
	// Friday 14 March: the first contact is due Monday 17, its reminder
	// (1 d in the template) at the start of Sunday 16; the GP visit is due
	// Friday 21, its reminder (2 d) on Wednesday 19. Other actions have
	// none.
	r.encounter(hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00")))
	v := r.only(p)
	for _, tk := range v.tasks {
		want := code(tk) == "first-contact" || code(tk) == "gp-visit"
		if got := r.pending(reminderKey(tk["id"].(string))); got != want {
			t.Errorf("%s: reminder pending %v, want %v", code(tk), got, want)
		}
	}
	first := byCode(v.tasks, "first-contact")[0]
	tm, err := r.s.Timers().Pending(r.ctx, reminderKey(first["id"].(string)))
	if err != nil || !tm.Due.Equal(paris("2025-03-16T00:00")) {
		t.Fatalf("first contact reminder %v (%v)", tm.Due, err)
	}
	r.updateTask(first, func(m map[string]any) {
		m["owner"] = map[string]any{"reference": "PractitionerRole/pr-ide-test"}
	})
	// The process stops; a new one, with a new runner, fires the reminder.
	if err := r.s.Close(); err != nil {
		t.Fatal(err)
	}
	r.open()
	before := len(r.outbox())
	r.fireUntil(paris("2025-03-15T23:59"))
	if n := len(r.reminders()); n != 0 {
		t.Fatalf("%d reminders before their time", n)
	}
	r.fireUntil(paris("2025-03-16T00:00"))
	rems := r.reminders()
	if len(rems) != 1 {
		t.Fatalf("reminders %d, want 1", len(rems))
	}
	c := rems[0]
	if c["status"] != "completed" || s(c, "subject", "reference") != "Patient/"+p {
		t.Errorf("communication %v", c)
	}
	if about := c["about"].([]any)[0].(map[string]any)["reference"]; about != "Task/"+first["id"].(string) {
		t.Errorf("about %v", about)
	}
	if rec := c["recipient"].([]any)[0].(map[string]any)["reference"]; rec != "PractitionerRole/pr-ide-test" {
		t.Errorf("recipient %v", rec)
	}
	if text := c["payload"].([]any)[0].(map[string]any)["contentString"]; text != "Rappel : Premier contact, accord et bilan initial à faire avant le 17/03/2025" {
		t.Errorf("payload %q", text)
	}
	rows := r.outbox()
	if len(rows) != before+1 || rows[len(rows)-1].Event.Subject != bus.ResourceSubject(tenant, "Communication", "created") {
		t.Errorf("events %d→%d", before, len(rows))
	}
	// The GP visit's reminder, without an owner: no recipient.
	r.fireUntil(paris("2025-03-19T00:00"))
	rems = r.reminders()
	if len(rems) != 2 {
		t.Fatalf("reminders %d, want 2", len(rems))
	}
	for _, c := range rems {
		if strings.Contains(string(mustJSON(c["payload"])), "médecin traitant") {
			if _, ok := c["recipient"]; ok {
				t.Errorf("GP reminder has a recipient: %v", c["recipient"])
			}
			if !strings.Contains(string(mustJSON(c["payload"])), "avant le 21/03/2025") {
				t.Errorf("GP reminder %v", c["payload"])
			}
		}
	}
}

func TestNoReminderForATaskDone(t *testing.T) {
	r := newRig(t)
	p := r.patient("1948-03-15")
	r.encounter(hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00")))
	v := r.only(p)
	first := byCode(v.tasks, "first-contact")[0]
	gp := byCode(v.tasks, "gp-visit")[0]
	r.clk.Set(paris("2025-03-15T10:00"))
	// Completed through the worklist: the pathway service removes the
	// reminder with the due-date timer.
	r.updateTask(first, func(m map[string]any) { m["status"] = "completed" })
	if r.pending(reminderKey(first["id"].(string))) {
		t.Error("a completed task keeps its reminder")
	}
	// Completed, its event not yet handled: the reminder finds it done.
	res, err := r.s.Read(r.ctx, "Task", gp["id"].(string))
	if err != nil {
		t.Fatal(err)
	}
	gp["status"] = "completed"
	delete(gp, "meta")
	r.tx(func(tx store.Tx) error {
		_, err := tx.Update(r.ctx, tenant, mustJSON(gp), res.Version)
		return err
	})
	r.fireUntil(paris("2025-03-20T00:00"))
	if n := len(r.reminders()); n != 0 {
		t.Errorf("%d reminders for tasks done", n)
	}
}

func TestNoReminderAfterTheEpisodeEnds(t *testing.T) {
	r := newRig(t)
	p := r.patient("1948-03-15")
	enc := uuid.NewString()
	st := hfDischarge(p, enc, paris("2025-03-14T15:00"))
	r.encounter(st)
	ep := r.only(p).ep["id"].(string)
	r.clk.Set(paris("2025-03-15T08:00"))
	st.kind = intake.KindCancelDischarge
	r.encounter(st)
	v := r.only(p)
	if v.ep["status"] != "entered-in-error" {
		t.Fatalf("episode %v", v.ep["status"])
	}
	for _, tk := range v.tasks {
		if r.pending(reminderKey(tk["id"].(string))) {
			t.Errorf("%s keeps its reminder", code(tk))
		}
	}
	if r.pending(pathway.TimerCheck + ":" + tenant + ":" + ep + ":first-contact-done") {
		t.Error("the ended episode keeps its check")
	}
	r.fireUntil(paris("2025-03-25T00:00"))
	if n := len(r.reminders()); n != 0 {
		t.Errorf("%d reminders after the episode ended", n)
	}
	if n := len(byCode(r.only(p).tasks, pathway.CodeFollowUpCheck)); n != 0 {
		t.Errorf("%d check tasks after the episode ended", n)
	}
}

func TestFirstContactCheckAtD3(t *testing.T) {
	for _, done := range []bool{false, true} {
		name := "first contact not done"
		if done {
			name = "first contact done"
		}
		t.Run(name, func(t *testing.T) {
			r := newRig(t)
			p := r.patient("1948-03-15")
			r.encounter(hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00")))
			if done {
				r.clk.Set(paris("2025-03-16T10:00"))
				r.updateTask(byCode(r.only(p).tasks, "first-contact")[0], func(m map[string]any) { m["status"] = "completed" })
			}
			// D+3 is Monday 17 March: the check runs at its end.
			r.fireUntil(paris("2025-03-17T23:59"))
			if n := len(byCode(r.only(p).tasks, pathway.CodeFollowUpCheck)); n != 0 {
				t.Fatalf("%d check tasks before D+3 ends", n)
			}
			r.fireUntil(paris("2025-03-18T00:00"))
			checks := byCode(r.only(p).tasks, pathway.CodeFollowUpCheck)
			if done {
				if len(checks) != 0 {
					t.Fatalf("%d check tasks, want none", len(checks))
				}
				return
			}
			if len(checks) != 1 {
				t.Fatalf("%d check tasks, want 1", len(checks))
			}
			c := checks[0]
			if s(c, "owner", "reference") != "PractitionerRole/pr-idec-moreau" || c["status"] != "requested" || s(c, "for", "reference") != "Patient/"+p {
				t.Errorf("check task %v", c)
			}
			if d, _ := c["description"].(string); !strings.Contains(d, "premier contact non réalisé à J+3") {
				t.Errorf("description %q", d)
			}
			// Due at the end of the next working day, Tuesday 18.
			if due(c) != "2025-03-18T23:59:59+01:00" {
				t.Errorf("due %s", due(c))
			}
		})
	}
}

func (r *rig) goals(v view) []map[string]any {
	r.t.Helper()
	var out []map[string]any
	for _, g := range v.cp["goal"].([]any) {
		id := strings.TrimPrefix(g.(map[string]any)["reference"].(string), "Goal/")
		res, err := r.s.Read(r.ctx, "Goal", id)
		if err != nil {
			r.t.Fatal(err)
		}
		var m map[string]any
		_ = json.Unmarshal(res.Body, &m)
		out = append(out, m)
	}
	return out
}

func TestGoalsFollowTheEpisodeEnd(t *testing.T) {
	cases := []struct {
		name, episode, goal string
		end                 func(r *rig, p string, st stay)
	}{
		{"refused: finished", "finished", "completed", func(r *rig, p string, _ stay) {
			r.updateTask(byCode(r.only(p).tasks, "first-contact")[0], func(m map[string]any) {
				m["status"] = "completed"
				m["businessStatus"] = map[string]any{"coding": []any{map[string]any{"system": pathway.SystemBusinessStatus, "code": "refused"}}}
			})
		}},
		{"discharge cancelled: entered-in-error", "entered-in-error", "cancelled", func(r *rig, _ string, st stay) {
			st.kind = intake.KindCancelDischarge
			r.encounter(st)
		}},
		{"inclusion declined: cancelled", "cancelled", "cancelled", func(r *rig, p string, _ stay) {
			r.updateTask(r.only(p).tasks[0], func(m map[string]any) {
				m["status"] = "completed"
				m["businessStatus"] = map[string]any{"coding": []any{map[string]any{"system": pathway.SystemBusinessStatus, "code": "exclude"}}}
			})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRig(t)
			p := r.patient("1948-03-15")
			st := hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00"))
			if c.episode == "cancelled" {
				st.diagnoses = nil // an inclusion to confirm
			}
			r.encounter(st)
			r.clk.Set(paris("2025-03-15T10:00"))
			c.end(r, p, st)
			v := r.only(p)
			if v.ep["status"] != c.episode {
				t.Fatalf("episode %v, want %s", v.ep["status"], c.episode)
			}
			gs := r.goals(v)
			if len(gs) != 2 {
				t.Fatalf("goals %d", len(gs))
			}
			for _, g := range gs {
				if g["lifecycleStatus"] != c.goal {
					t.Errorf("goal %v: %v, want %s", s(g, "description", "text"), g["lifecycleStatus"], c.goal)
				}
			}
			// The goals travel with the episode's event.
			rows := r.outbox()
			if last := string(rows[len(rows)-1].Event.Data); !strings.Contains(last, `"lifecycleStatus":"`+c.goal+`"`) {
				t.Error("the closing event does not carry the goals")
			}
		})
	}
}

func TestEpisodeFinishesAtTheEndOfFollowUp(t *testing.T) {
	r := newRig(t)
	p := r.patient("1948-03-15")
	r.encounter(hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00")))
	v := r.only(p)
	r.updateTask(byCode(v.tasks, "first-contact")[0], func(m map[string]any) { m["status"] = "completed" })

	// Readmitted for three days in May: the follow-up moves by three days.
	readm := uuid.NewString()
	r.fireUntil(paris("2025-05-05T10:00"))
	r.encounter(stay{patient: p, enc: readm, kind: intake.KindAdmit, start: paris("2025-05-05T10:00")})
	r.clk.Set(paris("2025-05-08T12:00"))
	r.encounter(hfDischarge(p, readm, paris("2025-05-08T12:00")))

	// D+180 is 10 September; with the shift, 13 September.
	r.fireUntil(paris("2025-09-13T23:59"))
	if v := r.only(p); v.ep["status"] != "active" {
		t.Fatalf("episode %v before its follow-up ends", v.ep["status"])
	}
	r.fireUntil(paris("2025-09-14T00:00"))
	v = r.only(p)
	if v.ep["status"] != "finished" || s(v.ep, "period", "end") != "2025-09-14T00:00:00+02:00" {
		t.Fatalf("episode %v ended %v", v.ep["status"], s(v.ep, "period", "end"))
	}
	if !strings.Contains(string(mustJSON(v.ep["extension"])), `"code":"completed"`) {
		t.Errorf("end reason missing: %s", mustJSON(v.ep["extension"]))
	}
	for _, tk := range v.tasks {
		if st := tk["status"]; st != "completed" && st != "cancelled" {
			t.Errorf("task %s still %v after the follow-up ended", code(tk), st)
		}
	}
	for _, g := range r.goals(v) {
		if g["lifecycleStatus"] != "completed" {
			t.Errorf("goal %v: %v", g["id"], g["lifecycleStatus"])
		}
	}
	if r.pending(pathway.TimerEnd + ":" + tenant + ":" + v.ep["id"].(string)) {
		t.Error("end timer still pending")
	}
}
