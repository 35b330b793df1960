package worklist_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/services/worklist"
)

// A visit recorded with Complete completes its task in the same version,
// from requested; the alert it raises is there when it returns.
func TestRecordVisitCompletes(t *testing.T) {
	r := newRig(t, "sqlite")
	p := r.patient()
	r.discharge(p)
	var visits []string
	for _, tk := range r.search("Task", refParam("patient", "Patient/"+p), tokenParam("code", "nurse-follow-up")) {
		visits = append(visits, tk["id"].(string))
	}
	if len(visits) < 2 {
		t.Fatalf("nurse-follow-up tasks: %d, want at least 2", len(visits))
	}
	for _, id := range visits[:2] {
		r.assign(id, "pr-ide-martin")
	}
	nurse := r.actor("ide.martin")
	// A weight two days ago: the visit's weight is 2.4 kg more.
	if _, err := r.svc.RecordVisit(r.ctx, nurse, worklist.Visit{Patient: p, At: r.clk.Now().Add(-48 * time.Hour), WeightKg: ptr(72.2)}); err != nil {
		t.Fatal(err)
	}
	_, before := r.read("Task", visits[0])
	res, err := r.svc.RecordVisit(r.ctx, nurse, worklist.Visit{TaskID: visits[0], Complete: true, WeightKg: ptr(74.6),
		Systolic: ptr(135), Diastolic: ptr(85), Symptoms: "Chevilles gonflées"})
	if err != nil {
		t.Fatal(err)
	}
	var types []string
	for _, x := range res {
		types = append(types, x.Type)
	}
	want := []string{"Observation", "Observation", "QuestionnaireResponse", "Task", "Flag", "Task"}
	if !reflect.DeepEqual(types, want) {
		t.Fatalf("written %v, want %v", types, want)
	}
	task, after := r.read("Task", visits[0])
	if task["status"] != "completed" || after != before+1 {
		t.Errorf("task %v version %d → %d, want completed in one version", task["status"], before, after)
	}
	if n := len(r.flags(p)["weight-gain"]); n != 1 {
		t.Fatalf("weight-gain alerts before the events: %d, want 1", n)
	}
	r.flush()
	flags := r.flags(p)["weight-gain"]
	if len(flags) != 1 {
		t.Fatalf("weight-gain alerts after the events: %d, want still 1", len(flags))
	}

	// The GP reviews it in one tap with a decision and a note.
	flagID := flags[0]["id"].(string)
	review := r.reviewTasks(flagID)["gp"]
	if review == nil {
		t.Fatal("no review task for the GP")
	}
	r.assign(review["id"].(string), "pr-dr-bernard")
	gp := r.actor("dr.bernard")
	if _, err := r.svc.Review(r.ctx, gp, review["id"].(string), 0, "bigger-pills", ""); err == nil {
		t.Error("an unknown decision was accepted")
	}
	if _, err := r.svc.Review(r.ctx, gp, review["id"].(string), 0, "consultation", "Je la vois demain matin"); err != nil {
		t.Fatal(err)
	}
	rt, _ := r.read("Task", review["id"].(string))
	flag, _ := r.read("Flag", flagID)
	ack := string(mustJSON(flag["extension"]))
	if rt["status"] != "completed" || flag["status"] != "inactive" {
		t.Errorf("review %v, alert %v", rt["status"], flag["status"])
	}
	for _, want := range []string{`"code":"consultation"`, `"valueString":"Je la vois demain matin"`, `"by"`, `"at"`} {
		if !strings.Contains(ack, want) {
			t.Errorf("acknowledgement lacks %s: %s", want, ack)
		}
	}

	// A visit task is not completed without a visit, unless a reason says why.
	for _, a := range []string{"accept", "start"} {
		if _, err := r.svc.Transition(r.ctx, nurse, visits[1], 0, a, ""); err != nil {
			t.Fatal(err)
		}
	}
	_, err = r.svc.Transition(r.ctx, nurse, visits[1], 0, "complete", "")
	var fe *fhir.Error
	if !errors.As(err, &fe) || fe.Kind != fhir.Invalid || !reflect.DeepEqual(fe.Issues[0].Expression, []string{"reason"}) {
		t.Fatalf("complete without visit: %v, want 400 at reason", err)
	}
	if _, err := r.svc.Transition(r.ctx, nurse, visits[1], 0, "complete", "Patient absent"); err != nil {
		t.Fatalf("complete with a reason: %v", err)
	}
	task, _ = r.read("Task", visits[1])
	if task["status"] != "completed" || s(task, "statusReason", "text") != "Patient absent" {
		t.Errorf("task %v reason %q", task["status"], s(task, "statusReason", "text"))
	}
}
