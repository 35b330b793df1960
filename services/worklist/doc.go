// Package worklist is the service through which professionals do their
// part of a pathway: it owns a Task's progress by its owner, the
// Observations of visits and the alerts they raise, with their review tasks
// (docs/architecture.md, "Who writes what"). The web pages (package worklist/ui) call the Go
// methods below; the FHIR routes call the same methods.
//
// # Go API
//
//	func (s *Service) Transition(ctx context.Context, a directory.Actor, taskID string, ifMatch int64, action, reason string) (store.Resource, error)
//	func (s *Service) Move(ctx context.Context, a directory.Actor, taskID string, ifMatch int64, m Move) (store.Resource, error)
//	func (s *Service) RecordVisit(ctx context.Context, a directory.Actor, v Visit) ([]store.Resource, error)
//	func (s *Service) RecordObservation(ctx context.Context, a directory.Actor, body []byte, taskID string) (store.Resource, error)
//	func (s *Service) Acknowledge(ctx context.Context, a directory.Actor, flagID string) error
//	func (s *Service) Review(ctx context.Context, a directory.Actor, taskID string, ifMatch int64, decision, note string) (store.Resource, error)
//
// Errors are *fhir.Error (a kind, and an OperationOutcome with the
// expression of the element at fault); the HTTP edge answers the kind's
// status (docs/architecture.md, "Errors"): 400 invalid input, 403 not
// allowed, 404 unknown, 409 not possible in the current state, 412 a stale
// version.
//
// # Task state machine
//
// The owner moves a task (docs/contract.md, "Tasks"): requested → accepted
// (accept) or rejected (decline, with a reason in statusReason.text);
// accepted → in-progress (start); in-progress → completed (complete) or
// failed (fail, with an optional reason). Anything else is 409. The actor
// must hold the PractitionerRole in Task.owner (403 otherwise, also for a
// task without owner), and an owner of an open task must be in care
// relationship with its patient (access.Policy.Patient: 403 otherwise, as
// when the episode has finished; never under the access grace period);
// ifMatch > 0 must be the current version (412).
// The checks run in this order: the task exists in the actor's tenant
// (404), the owner and her care relationship (403), the version (412), the
// transition (409).
// Task.owner never changes here: after a decline the teams service puts the
// task back to requested with the next candidate; cancelled and on-hold are
// the pathway's. A completion may carry a business status
// of the task-business-status code system: refused (the patient refuses,
// at the first contact: the pathway closes the episode), include or
// exclude (the answer to an inclusion to confirm). Each move is one
// transaction: the new version, its fhir.<tenant>.Task.updated event and
// an audit record whose agent is the owner's PractitionerRole. Completing
// an alert-review task acknowledges its alert in the same transaction.
//
// # FHIR routes
//
//   - PUT /fhir/Task/{id} with If-Match: W/"<version>" (optional: without
//     it, the current version): the body is the task with the status asked
//     for; the service reads status, statusReason.text and businessStatus,
//     and finds the action that leads there from the current status.
//     owner, for, code, basedOn, focus, performerType, restriction,
//     intent, requester, partOf and encounter may be left out but not
//     changed (400 naming the element). Answers the new version (200,
//     ETag).
//   - POST /fhir/Observation[?task=<id>]: one measurement, checked by
//     ParseObservation; performer the actor's PractitionerRole (the task
//     owner's when a task is named); the actor must pass
//     access.Policy.Patient for the subject. With task (the actor's,
//     accepted or in progress, of the same patient), the Observation is
//     added to Task.output. R4 gives Observation no element that points to
//     a Task, hence the query parameter. Answers 201 with Location.
//   - POST /fhir/Flag/{id}/$acknowledge: Acknowledge; answers the Flag.
//
// # Observations
//
// Codes (docs/domain.md, "Observations of a visit"): body weight LOINC 29463-7 (kg), heart rate 8867-4
// (/min), blood-pressure panel 85354-9 with components systolic 8480-6
// and diastolic 8462-4 (mm[Hg]; a lone systolic or diastolic is accepted
// too), NYHA class 88020-3 with a SNOMED CT value (420300004 I, 421704003
// II, 420913000 III, 422293003 IV), potassium 2823-3, creatinine 14682-9,
// NT-proBNP 33762-6, and as SNOMED CT codes oedema 267038008 and
// breathlessness 267036007 with a presence or severity value (2667000
// absent, 52101004 present, 255604002 mild, 6736007 moderate, 24484000
// severe; valueBoolean is turned into absent/present). Values outside the
// plausible range of input (a weight of 900 kg), a diastolic at or above
// the systolic, a wrong unit or a time in the future are refused with the
// element's expression: Observation.valueQuantity.value,
// Observation.component[1].valueQuantity.value, Observation.effectiveDateTime.
// Those ranges guard against typing errors; clinical thresholds are the
// templates'.
//
// RecordVisit records a visit form (Visit): one Observation per
// measurement, the blood pressure as a panel, and a QuestionnaireResponse
// (questionnaire VisitQuestionnaire, one item per answer with the form
// field as linkId, symptoms and note as text). Its errors carry two
// expressions: the form field (weight-kg, systolic, diastolic,
// heart-rate, nyha, oedema, breathlessness) then the Observation's
// FHIRPath. With Visit.TaskID, everything becomes the task's output; with
// Visit.Complete too, the task is completed in that version (from
// requested or accepted as well). One transaction: the resources, their
// events (Observation.created, QuestionnaireResponse.created,
// Task.updated) and audit records, and the alerts the measurements raise
// (evaluated before, raised in it, so the page says so at once; the
// Observation events find them raised).
//
// A nurse's follow-up visit (nurse-follow-up, nurse-follow-up-nyha) is
// completed by recording its visit: completed with no visit in its output, it needs
// a reason (patient absent, in hospital, refused: 400 at "reason"). Review
// completes an alert's review task (from requested, accepted or in
// progress) with a decision (ReviewDecisions) and a note, kept on the task
// (output, note) and on the alert's acknowledgement with who and when.
//
// # Alert rules
//
// Rules are data: the extension alert-rule of a template
// (fhir-profiles/StructureDefinition/alert-rule.json; the shipped rules are
// in fhir-profiles/PlanDefinition/hf-post-discharge.json and
// fall-home-return.json). No threshold lives in this package. A rule has
// a code, a French title, a kind, a severity (high, moderate, low), the
// team roles that get a review task and respondWithin, the review task's
// due (n h from now, or the end of day D+n in Europe/Paris: 0 d is the
// same day), and by kind:
//
//   - rise: observation, delta, window. Fires when a value is at least
//     delta above one recorded within window before it (weight +2 kg in 3
//     days). Values are compared rounded to 0.01.
//   - range: observation, low and/or high. Fires below low or above high
//     (systolic < 90 mm[Hg]; heart rate < 50 or > 110 /min). A component
//     of a panel counts as an observation of its code.
//   - worsening: observation, ordinal (the scale, least severe first),
//     delta in ranks (default 1). Fires when a value ranks at least delta
//     above the previous recorded one (NYHA II → III).
//   - missing: observation, window. Fires when the episode has gone
//     window without an observation of the code since it became active or
//     since the latest one (no weight for 8 days), then once more per
//     window while nothing comes. An episode opened from a discharge
//     notified late (extension late-inclusion) counts from when Passerelle
//     learnt of the discharge, not from the discharge.
//   - missed-visit: action codes. Fires when a task of one of the actions
//     is marked overdue by the pathway service while still open.
//
// Rules are read by package pkg/pathway (Template.AlertRules, through a
// pathway.Library) from the latest version of the template an episode
// follows (same url), so that a threshold the CPTS changes applies at the
// next measurement of the patients already followed. At upload, the
// profile passerelle-plandefinition types every element of a rule and
// binds kind (alert-rule-kind), severity (alert-severity) and role
// (team-role) to their value sets, and pathway.Parse refuses a rule this
// package could not evaluate (a range without threshold, a rise without
// window, a missed-visit naming an unknown action…), naming the rule. A
// latest version stored around those checks and unreadable is logged
// once and has no rules.
//
// # Alerts
//
// An alert is a Flag: status active, category clinical, code
// alert-rule#<rule code> with text saying what fired and the values
// (« Prise de poids rapide : +2,4 kg en 2 jour(s) (72 → 74,4 kg) »),
// subject the Patient, period.start, author the CPTS, and the extension
// alert-detail (rule, template url|version, severity, episode, evidence:
// the Observations or the Task). With it, one review task per role of the
// rule: status requested, intent order, priority urgent (severity high)
// or asap, no owner, code pathway-action#alert-review, performerType the
// role, for the Patient, basedOn the episode's CarePlan (as the pathway's
// tasks, so the teams service finds the episode and its CareTeam), focus
// the Flag, requester the CPTS, restriction.period from now to the due.
// They are written with the event's inbox mark and announced on
// fhir.<tenant>.Flag.created and fhir.<tenant>.Task.created: the teams
// service assigns the tasks and notifies at once. The ids of the Flag and
// its tasks derive from what raised them (rule, episode, observation,
// task, missing-data window), so one cause raises one alert even when its
// event is replayed or its task announced again.
//
// Acknowledge (or completing a review task) sets the Flag inactive, ends
// its period and records the extension alert-acknowledgement: by (the
// PractitionerRole) and at (the time). Whoever may see the patient
// (access.Policy.Patient) may acknowledge; a second acknowledgement is
// 409. Announced on fhir.<tenant>.Flag.updated.
//
// # Events consumed (each through bus.Inbox: exactly once)
//
//   - worklist-observation, fhir.<tenant>.Observation.*: rise, range and
//     worsening rules of the patient's active episodes; moves the
//     missing-data timers of rules watching the code.
//   - worklist-episode, fhir.<tenant>.EpisodeOfCare.*: the pathway's
//     history Bundle led by the EpisodeOfCare. Active: each missing rule's
//     timer is scheduled; held or ended: removed.
//   - worklist-task, fhir.<tenant>.Task.*: an open task with businessStatus
//     overdue raises the missed-visit rules naming its action.
//
// # Timers
//
// worklist-missing-data, one per episode and missing rule (key
// worklist-missing-data:<tenant>:<episode>:<rule>), a durable timer of
// pkg/timer: it fires after a restart as well as before it. When it fires
// it looks again for the latest observation, and either waits until a
// window after it or raises the alert and waits one more window.
//
// # Metrics
//
// passerelle_tasks{status}: the tenant's tasks by status, counted at each
// scrape.
package worklist
