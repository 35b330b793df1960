package worklist

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

var paris = clock.Paris

// Actions a task's owner takes.
const (
	ActionAccept   = "accept"
	ActionDecline  = "decline"
	ActionStart    = "start"
	ActionComplete = "complete"
	ActionFail     = "fail"
)

// transitions is the owner's part of the FHIR Task state machine
// (docs/contract.md, "Tasks"): action → the status it leaves and the one it
// reaches. cancelled and on-hold, and the return of a rejected task to
// requested, are the system's.
var transitions = map[string]struct{ from, to string }{
	ActionAccept:   {"requested", "accepted"},
	ActionDecline:  {"requested", "rejected"},
	ActionStart:    {"accepted", "in-progress"},
	ActionComplete: {"in-progress", "completed"},
	ActionFail:     {"in-progress", "failed"},
}

// actionFor returns the action that moves a task from one status to
// another, "" when no action does.
func actionFor(from, to string) string {
	for a, t := range transitions {
		if t.from == from && t.to == to {
			return a
		}
	}
	return ""
}

// Move is one step of a task by its owner.
type Move struct {
	// Action is accept, decline, start, complete or fail.
	Action string
	// To, when Action is empty, is the status asked for (a FHIR PUT): the
	// action is the one that reaches it from the task's current status.
	To string
	// Reason is the owner's words: Task.statusReason.text of a decline (a
	// decline needs one) or a failure.
	Reason string
	// BusinessStatus, on complete, is a code of the
	// task-business-status code system the pathway service reacts to:
	// refused (the patient refuses the pathway, at the first contact),
	// include or exclude (the answer to an inclusion to confirm).
	BusinessStatus string
	// Decision, on completing an alert's review, is what the reviewer
	// decided (ReviewDecisions); Note her words. Both are kept on the
	// task and on the alert's acknowledgement with who and when. A
	// decision completes the review from requested or accepted too.
	Decision, Note string
}

// ReviewDecisions are the decisions an alert's review ends with, by code.
var ReviewDecisions = map[string]string{"treatment-adjustment": "Ajustement du traitement", "consultation": "Consultation",
	"hospitalisation": "Hospitalisation", "monitoring": "Surveillance", "no-action": "Sans suite"}

// SystemReviewDecision codes the decision of an alert's review.
const SystemReviewDecision = "https://passerelle.health/fhir/CodeSystem/alert-review-decision"

// businessStatuses are the task-business-status codes an owner may set.
var businessStatuses = map[string]string{"refused": "Refus du patient", "include": "Inclusion confirmée", "exclude": "Inclusion refusée"}

// Transition moves task taskID by action for actor a. ifMatch is the
// version the actor saw (0: the current one). Errors are *fhir.Error: 404
// unknown task, 403 not the owner, 412 stale version, 409 an action the
// task's status does not allow, 400 a decline without reason or a
// visit task completed with neither a recorded visit nor a reason.
func (s *Service) Transition(ctx context.Context, a directory.Actor, taskID string, ifMatch int64, action, reason string) (store.Resource, error) {
	return s.Move(ctx, a, taskID, ifMatch, Move{Action: action, Reason: reason})
}

// Review completes an alert's review task with the reviewer's decision and
// note, accepting and starting it first when needed (Move with Decision).
func (s *Service) Review(ctx context.Context, a directory.Actor, taskID string, ifMatch int64, decision, note string) (store.Resource, error) {
	if decision == "" {
		return store.Resource{}, fhir.Errorf(fhir.Invalid, "required", "Choisissez la décision", "Choose the decision", "decision")
	}
	return s.Move(ctx, a, taskID, ifMatch, Move{Action: ActionComplete, Decision: decision, Note: note})
}

// Move applies m to task taskID for actor a, as Transition does, with a
// business status on completion. The new version is written with its
// Task.updated event and an audit record in one transaction; Task.owner
// never changes here. Completing an alert-review task acknowledges its
// alert (the Flag in Task.focus) in the same transaction.
func (s *Service) Move(ctx context.Context, a directory.Actor, taskID string, ifMatch int64, m Move) (store.Resource, error) {
	tr, ok := transitions[m.Action]
	if !ok && m.To == "" {
		return store.Resource{}, fhir.Errorf(fhir.Invalid, "value",
			"Action inconnue : "+m.Action+" (accept, decline, start, complete, fail)",
			"Unknown action: "+m.Action+" (accept, decline, start, complete, fail)", "action")
	}
	m.Reason = strings.TrimSpace(m.Reason)
	if m.Action == ActionDecline && m.Reason == "" {
		return store.Resource{}, fhir.Errorf(fhir.Invalid, "required", "Un refus doit être motivé", "A decline needs a reason", "Task.statusReason.text")
	}
	if m.BusinessStatus != "" {
		if _, ok := businessStatuses[m.BusinessStatus]; !ok || (m.Action != "" && m.Action != ActionComplete) {
			return store.Resource{}, fhir.Errorf(fhir.Invalid, "value",
				"Statut métier non accepté : "+m.BusinessStatus, "Business status not accepted: "+m.BusinessStatus, "Task.businessStatus")
		}
	}
	m.Note = strings.TrimSpace(m.Note)
	if _, ok := ReviewDecisions[m.Decision]; m.Decision != "" && !ok {
		return store.Resource{}, fhir.Errorf(fhir.Invalid, "value", "Décision inconnue : "+m.Decision, "Unknown decision: "+m.Decision, "decision")
	}
	if a.System != "" {
		return store.Resource{}, fhir.Errorf(fhir.Forbidden, "forbidden", "Un système hospitalier ne fait pas avancer les tâches", "A hospital system does not move tasks")
	}
	// Owning the task is not enough: its owner moves it only while in care
	// relationship with the patient (an open task of a running episode,
	// or a member of the patient's active team), never under the grace
	// period. The policy searches the store, so it is asked before the
	// transaction; the owner is checked again inside it. A task no longer
	// open moves nowhere whoever asks: the state machine answers 409.
	if t, err := readTask(ctx, s.d.Store, taskID); err == nil && t.res.Tenant == a.Tenant && openStatuses[t.t.Status] {
		if _, mine := ownerRole(a, t.t.Owner.String()); mine {
			if err := (access.Policy{Now: s.d.Clock.Now}).Patient(ctx, s.d.Store, a, t.t.For.String()); err != nil {
				return store.Resource{}, err
			}
		}
	}
	var out store.Resource
	err := s.d.Store.Tx(ctx, func(tx store.Tx) error {
		t, err := readTask(ctx, tx, taskID)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrGone) {
				return fhir.Errorf(fhir.NotFound, "not-found", "Tâche inconnue : "+taskID, "Unknown task: "+taskID)
			}
			return err
		}
		if t.res.Tenant != a.Tenant {
			return fhir.Errorf(fhir.NotFound, "not-found", "Tâche inconnue : "+taskID, "Unknown task: "+taskID)
		}
		role, ok := ownerRole(a, t.t.Owner.String())
		if !ok {
			return fhir.Errorf(fhir.Forbidden, "forbidden", "Cette tâche n'est pas à vous", "This task is not yours", "Task.owner")
		}
		if ifMatch > 0 && ifMatch != t.res.Version {
			return fhir.Errorf(fhir.Stale, "conflict",
				fmt.Sprintf("La tâche a changé (version %d, vous aviez la version %d) : rechargez-la", t.res.Version, ifMatch),
				fmt.Sprintf("The task has changed (version %d, you had version %d): reload it", t.res.Version, ifMatch), "If-Match")
		}
		cur := t.t.Status
		if m.Action == "" {
			m.Action = actionFor(cur, m.To)
			if m.Action == "" {
				return fhir.Errorf(fhir.Conflict, "business-rule",
					fmt.Sprintf("Passage de %s à %s impossible", cur, m.To),
					fmt.Sprintf("A task cannot go from %s to %s", cur, m.To), "Task.status")
			}
			tr = transitions[m.Action]
			if m.Action == ActionDecline && m.Reason == "" {
				return fhir.Errorf(fhir.Invalid, "required", "Un refus doit être motivé", "A decline needs a reason", "Task.statusReason.text")
			}
			if m.BusinessStatus != "" && m.Action != ActionComplete && t.t.BusinessStatus.Code(SystemBusinessStatus) != m.BusinessStatus {
				return fhir.Errorf(fhir.Invalid, "value", "Un statut métier accompagne la fin d'une tâche (completed)",
					"A business status comes with a task's completion (completed)", "Task.businessStatus")
			}
		}
		if m.Action == ActionComplete && visitRequired[t.t.Action(SystemAction)] && !hasVisit(t.t) {
			if m.Reason == "" {
				return errNoVisit()
			}
			// Closed without a visit: the reason says why (absent, in
			// hospital, refused), kept as the task's status reason.
			t.t.StatusReason = &model.CodeableConcept{Text: m.Reason}
		}
		review := m.Decision != "" && m.Action == ActionComplete && t.t.Action(SystemAction) == CodeAlertReview
		if m.Decision != "" && !review {
			return fhir.Errorf(fhir.Invalid, "value", "Une décision termine la revue d'une alerte", "A decision completes an alert's review", "decision")
		}
		if review && (cur == "requested" || cur == "accepted") {
			cur = tr.from // one tap: accepted and started with the decision
		}
		if cur != tr.from {
			return fhir.Errorf(fhir.Conflict, "business-rule",
				fmt.Sprintf("Action %s impossible sur une tâche au statut %s", m.Action, cur),
				fmt.Sprintf("Action %s is not allowed on a task with status %s", m.Action, cur), "Task.status")
		}
		now := s.d.Clock.Now()
		t.t.Status = tr.to
		t.t.LastModified = formatTime(now)
		switch m.Action {
		case ActionDecline, ActionFail:
			if m.Reason != "" {
				t.t.StatusReason = &model.CodeableConcept{Text: m.Reason}
			}
		case ActionStart:
			t.t.ExecutionPeriod = &model.Period{Start: formatTime(now)}
		case ActionComplete:
			if t.t.ExecutionPeriod != nil {
				t.t.ExecutionPeriod.End = formatTime(now)
			} else {
				t.t.ExecutionPeriod = &model.Period{End: formatTime(now)}
			}
		}
		if m.BusinessStatus != "" {
			t.t.BusinessStatus = model.Codeable(SystemBusinessStatus, m.BusinessStatus, businessStatuses[m.BusinessStatus])
		}
		if review {
			if t.t.ExecutionPeriod == nil || t.t.ExecutionPeriod.Start == "" {
				completeTask(t.t, now)
			}
			t.t.Output = append(t.t.Output, model.TaskOutput{Type: &model.CodeableConcept{Text: "decision"},
				ValueCodeableConcept: model.Codeable(SystemReviewDecision, m.Decision, ReviewDecisions[m.Decision])})
			if m.Note != "" {
				t.t.Note = append(t.t.Note, model.Annotation{AuthorReference: model.Ref("PractitionerRole/" + role), Time: formatTime(now), Text: m.Note})
			}
		}
		t.t.ID = t.res.ID
		t.t.Meta = nil
		res, err := tx.Update(ctx, t.res.Tenant, mustJSON(t.t), t.res.Version)
		if err != nil {
			return err
		}
		agent := "PractitionerRole/" + role
		if err := s.written(ctx, tx, res, agent, "U", bus.OpUpdated); err != nil {
			return err
		}
		if m.Action == ActionComplete && t.t.Action(SystemAction) == CodeAlertReview {
			var extra []any
			if review {
				extra = append(extra, obj{"url": "decision", "valueCoding": obj{"system": SystemReviewDecision, "code": m.Decision, "display": ReviewDecisions[m.Decision]}})
				if m.Note != "" {
					extra = append(extra, obj{"url": "note", "valueString": m.Note})
				}
			}
			if f := t.t.Focus.String(); strings.HasPrefix(f, "Flag/") {
				if err := s.acknowledge(ctx, tx, a.Tenant, strings.TrimPrefix(f, "Flag/"), agent, true, extra...); err != nil {
					return err
				}
			}
		}
		out = res
		return nil
	})
	if err != nil {
		return store.Resource{}, err
	}
	s.log.InfoContext(ctx, "task moved", "task_id", taskID, "action", m.Action, "version", out.Version)
	return out, nil
}

// ownerRole returns which of the actor's PractitionerRoles owns the task.
func ownerRole(a directory.Actor, owner string) (string, bool) {
	if !strings.HasPrefix(owner, "PractitionerRole/") {
		return "", false
	}
	for _, r := range a.Roles {
		if owner == "PractitionerRole/"+r.ID {
			return r.ID, true
		}
	}
	return "", false
}

// written records a write of the service: its audit record and its outbox
// event, in the write's transaction.
func (s *Service) written(ctx context.Context, tx store.Tx, res store.Resource, agent, action, op string) error {
	if err := tx.Audit(ctx, store.AuditRecord{Tenant: res.Tenant, Time: s.d.Clock.Now(), Agent: agent, Action: action,
		Entity: fmt.Sprintf("%s/%s/_history/%d", res.Type, res.ID, res.Version), Patient: fhirapi.PatientOf(res), Outcome: "0"}); err != nil {
		return err
	}
	return event.Emit(ctx, tx, event.New(res.Tenant, op, fhirapi.TraceParent(ctx), res))
}
