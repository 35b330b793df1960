package worklist_test

import (
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/services/worklist"
)

// put asks for a task's new status over HTTP, its body the stored task
// with the status (and the changes of edit) applied.
func (r *rig) put(srv *server, login, taskID string, version int64, status string, edit func(map[string]any)) response {
	r.t.Helper()
	t, _ := r.read("Task", taskID)
	delete(t, "meta")
	t["status"] = status
	if edit != nil {
		edit(t)
	}
	h := []string{}
	if version > 0 {
		h = append(h, "If-Match", fmt.Sprintf(`W/"%d"`, version))
	}
	return srv.do(r.t, login, http.MethodPut, "/fhir/Task/"+taskID, t, h...)
}

func TestTaskTransitionsHTTP(t *testing.T) {
	for _, backend := range backends {
		t.Run(backend, func(t *testing.T) {
			r := newRig(t, backend)
			srv := r.server()
			p := r.patient()
			r.discharge(p)
			first := r.task(p, "first-contact")["id"].(string)
			r.assign(first, "pr-ide-martin")
			_, v := r.read("Task", first)

			wantOutcome := func(res response, status int, expr string) {
				t.Helper()
				if res.status != status {
					t.Fatalf("status %d, want %d: %v", res.status, status, res.body)
				}
				if res.body["resourceType"] != "OperationOutcome" {
					t.Fatalf("body is not an OperationOutcome: %v", res.body)
				}
				if expr != "" && !strings.Contains(strings.Join(expressions(res.body), " "), expr) {
					t.Errorf("expressions %v, want %s", expressions(res.body), expr)
				}
			}
			wantOutcome(r.put(srv, "", first, v, "accepted", nil), http.StatusUnauthorized, "")
			wantOutcome(r.put(srv, "ide.leroy", first, v, "accepted", nil), http.StatusForbidden, "Task.owner")
			wantOutcome(r.put(srv, "ide.martin", first, v-1, "accepted", nil), http.StatusPreconditionFailed, "If-Match")
			wantOutcome(r.put(srv, "ide.martin", first, v, "completed", nil), http.StatusConflict, "Task.status")
			wantOutcome(r.put(srv, "ide.martin", first, v, "cancelled", nil), http.StatusConflict, "Task.status")
			wantOutcome(r.put(srv, "ide.martin", first, v, "accepted", func(m map[string]any) {
				m["owner"] = map[string]any{"reference": "PractitionerRole/pr-ide-leroy"}
			}), http.StatusBadRequest, "Task.owner")
			if _, nv := r.read("Task", first); nv != v {
				t.Fatalf("refused requests changed the task: version %d, want %d", nv, v)
			}

			before := len(r.pending())
			for _, step := range []string{"accepted", "in-progress", "completed"} {
				res := r.put(srv, "ide.martin", first, v, step, nil)
				if res.status != http.StatusOK || res.body["status"] != step {
					t.Fatalf("%s: %d %v", step, res.status, res.body)
				}
				if s(res.body, "owner", "reference") != "PractitionerRole/pr-ide-martin" {
					t.Errorf("%s: owner changed: %v", step, res.body["owner"])
				}
				if res.header.Get("ETag") != fmt.Sprintf(`W/"%d"`, v+1) {
					t.Errorf("%s: ETag %q", step, res.header.Get("ETag"))
				}
				v++
			}
			rows := r.pending()[before:]
			if len(rows) != 3 {
				t.Fatalf("events: %d, want 3", len(rows))
			}
			for _, row := range rows {
				if row.Event.Subject != "fhir.demo.Task.updated" {
					t.Errorf("event subject %s", row.Event.Subject)
				}
			}
			// Done: every further move is a conflict.
			wantOutcome(r.put(srv, "ide.martin", first, v, "in-progress", nil), http.StatusConflict, "Task.status")

			// Decline needs a reason and keeps it; the owner stays for the
			// teams service to change.
			gp := r.task(p, "gp-visit")["id"].(string)
			r.assign(gp, "pr-dr-bernard")
			_, gv := r.read("Task", gp)
			wantOutcome(r.put(srv, "dr.bernard", gp, gv, "rejected", nil), http.StatusBadRequest, "Task.statusReason")
			res := r.put(srv, "dr.bernard", gp, gv, "rejected", func(m map[string]any) {
				m["statusReason"] = map[string]any{"text": "En congés cette semaine"}
			})
			if res.status != http.StatusOK || res.body["status"] != "rejected" || s(res.body, "statusReason", "text") != "En congés cette semaine" ||
				s(res.body, "owner", "reference") != "PractitionerRole/pr-dr-bernard" {
				t.Fatalf("decline: %d %v", res.status, res.body)
			}

			// Fail from in progress.
			nf := r.task(p, "medication-review")["id"].(string)
			r.assign(nf, "pr-pharma-durand")
			_, nv := r.read("Task", nf)
			for _, step := range []string{"accepted", "in-progress"} {
				if res := r.put(srv, "pharma.durand", nf, nv, step, nil); res.status != http.StatusOK {
					t.Fatalf("%s: %d %v", step, res.status, res.body)
				}
				nv++
			}
			res = r.put(srv, "pharma.durand", nf, nv, "failed", func(m map[string]any) { m["statusReason"] = map[string]any{"text": "Patient absent"} })
			if res.status != http.StatusOK || res.body["status"] != "failed" {
				t.Fatalf("fail: %d %v", res.status, res.body)
			}

			// Every move is in the audit trail, by the owner's role.
			recs, err := r.s.AuditLog().List(r.ctx, 0, 10000)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, rec := range recs {
				if rec.Action == "U" && strings.HasPrefix(rec.Entity, "Task/"+first+"/") && rec.Agent == "PractitionerRole/pr-ide-martin" {
					n++
				}
			}
			if n != 3 {
				t.Errorf("audit records of the moves: %d, want 3", n)
			}
		})
	}
}

// TestTransitionGo checks the Go API the web pages call: every action
// from every status, allowed or 409.
func TestTransitionGo(t *testing.T) {
	r := newRig(t, "sqlite")
	nurse := r.actor("ide.martin")
	cases := []struct {
		from   []string // actions to reach the status
		action string
		want   fhir.Kind // "": allowed
	}{
		{nil, worklist.ActionAccept, ""},
		{nil, worklist.ActionDecline, ""},
		{nil, worklist.ActionStart, fhir.Conflict},
		{nil, worklist.ActionComplete, fhir.Conflict},
		{nil, worklist.ActionFail, fhir.Conflict},
		{[]string{"accept"}, worklist.ActionStart, ""},
		{[]string{"accept"}, worklist.ActionAccept, fhir.Conflict},
		{[]string{"accept"}, worklist.ActionComplete, fhir.Conflict},
		{[]string{"accept"}, worklist.ActionDecline, fhir.Conflict},
		{[]string{"accept", "start"}, worklist.ActionComplete, ""},
		{[]string{"accept", "start"}, worklist.ActionFail, ""},
		{[]string{"accept", "start"}, worklist.ActionAccept, fhir.Conflict},
		{[]string{"accept", "start", "complete"}, worklist.ActionFail, fhir.Conflict},
		{[]string{"decline"}, worklist.ActionAccept, fhir.Conflict},
		{nil, "reopen", fhir.Invalid},
	}
	var tasks []map[string]any
	for len(tasks) < len(cases) {
		p := r.patient()
		r.discharge(p)
		tasks = append(tasks, r.search("Task", refParam("patient", "Patient/"+p), tokenParam("status", "requested"))...)
	}
	if len(tasks) < len(cases) {
		t.Fatalf("tasks: %d", len(tasks))
	}
	for i, c := range cases {
		t.Run(fmt.Sprintf("%v+%s", c.from, c.action), func(t *testing.T) {
			id := tasks[i]["id"].(string)
			r.assign(id, "pr-ide-martin")
			for _, a := range c.from {
				if _, err := r.svc.Transition(r.ctx, nurse, id, 0, a, "motif"); err != nil {
					t.Fatalf("%s: %v", a, err)
				}
			}
			res, err := r.svc.Transition(r.ctx, nurse, id, 0, c.action, "motif")
			if c.want == "" {
				if err != nil {
					t.Fatalf("want allowed: %v", err)
				}
				if res.ID != id {
					t.Errorf("result id %s", res.ID)
				}
				return
			}
			var fe *fhir.Error
			if !errors.As(err, &fe) || fe.Kind != c.want {
				t.Fatalf("err %v, want %s", err, c.want)
			}
		})
	}
}

// A completion may carry the business status the pathway service reacts
// to: the patient's refusal at the first contact closes the episode.
func TestCompleteWithRefusal(t *testing.T) {
	r := newRig(t, "sqlite")
	p := r.patient()
	ep := r.discharge(p)
	first := r.task(p, "first-contact")["id"].(string)
	r.assign(first, "pr-ide-martin")
	nurse := r.actor("ide.martin")
	for _, a := range []string{"accept", "start"} {
		if _, err := r.svc.Transition(r.ctx, nurse, first, 0, a, ""); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.svc.Move(r.ctx, nurse, first, 0, worklist.Move{Action: worklist.ActionComplete, BusinessStatus: "refused"}); err != nil {
		t.Fatal(err)
	}
	r.flush()
	got, _ := r.read("EpisodeOfCare", ep["id"].(string))
	if got["status"] != "finished" {
		t.Errorf("episode %v, want finished after the refusal", got["status"])
	}
	if _, err := r.svc.Move(r.ctx, nurse, first, 0, worklist.Move{Action: worklist.ActionComplete, BusinessStatus: "overdue"}); err == nil {
		t.Error("an owner set the system's overdue mark")
	}
}

// TestOwnerOutsideTheCareMovesNothing: owning a task is not enough to move
// it. Once the patient's episode has finished, its owner is no longer in
// care of the patient (even if the task was left open): 403, the task
// unchanged.
func TestOwnerOutsideTheCareMovesNothing(t *testing.T) {
	r := newRig(t, "sqlite")
	nurse := r.actor("ide.martin")
	p := r.patient()
	ep := r.discharge(p)
	id := r.search("Task", refParam("patient", "Patient/"+p), tokenParam("status", "requested"))[0]["id"].(string)
	r.assign(id, "pr-ide-martin")
	if _, err := r.svc.Transition(r.ctx, nurse, id, 0, worklist.ActionAccept, ""); err != nil {
		t.Fatalf("accept while the episode runs: %v", err)
	}
	m, v := r.read("EpisodeOfCare", ep["id"].(string))
	m["status"] = "finished"
	delete(m, "meta")
	r.tx(func(tx store.Tx) error { _, err := tx.Update(r.ctx, tenant, mustJSON(m), v); return err })
	_, before := r.read("Task", id)
	_, err := r.svc.Transition(r.ctx, nurse, id, 0, worklist.ActionStart, "")
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.Kind != fhir.Forbidden {
		t.Fatalf("start after the episode finished: %v, want 403", err)
	}
	if _, after := r.read("Task", id); after != before {
		t.Errorf("the task moved: version %d, was %d", after, before)
	}
}
