// Package pathway is the service that turns hospital discharges into care
// pathways: it owns EpisodeOfCare, CarePlan, Goal and the pathway's Tasks
// (docs/architecture.md, "Who writes what"), from templates that are data (package
// pkg/pathway describes their encoding).
//
// # Templates
//
// The shipped templates are fhir-profiles/PlanDefinition/*.json
// (hf-post-discharge, fall-home-return). New checks each of them against
// the profile passerelle-plandefinition and reads it as the engine will:
// an invalid shipped template stops start-up. Run stores them in the tenant
// when absent (a CPTS's own version survives restarts). A coordinator
// uploads a template or a new version with POST /fhir/PlanDefinition (a
// known url makes a new version of that template) or PUT
// /fhir/PlanDefinition/{id}: routes more specific than the generic API's,
// which validate with the profile and with pathway.Parse — the one reading
// every service uses, alert rules and team-assignment delays included, so
// a rule the worklist could not evaluate is refused here — and answer 400
// with an OperationOutcome whose expressions locate each problem (an
// alert rule's issue names the rule). The server sets version to the new
// store version; episodes record url|version and keep following the
// version they were opened with. Stored templates are read through a
// pathway.Library (each version parsed once).
//
// # Events consumed (each through bus.Inbox: exactly once)
//
//   - pathway-encounter, fhir.<tenant>.Encounter.*: intake's history Bundle
//     led by the Encounter, its kind in the Passerelle-Intake-Event header.
//     discharge: held episodes of the patient resume, then each active
//     template the stay is eligible for opens an episode (not when an
//     episode of the same template is already running, nor twice for one
//     stay). cancel-discharge: the episodes that stay opened become
//     entered-in-error. admit (class IMP, any hospital): readmission.
//     cancel-admit: the hold it caused is lifted with no shift. death: the
//     patient's episodes end.
//   - pathway-observation, fhir.<tenant>.Observation.*: a final observation
//     whose code is a template variable records its value on the episode,
//     once (the first one, at the first contact, decides), then conditional
//     actions whose rule is now decided get their tasks, or are marked
//     cancelled. A death recorded by a team member (LOINC 81956-5, date
//     and time of death) ends the patient's episodes as a death in hospital
//     does.
//   - pathway-task, fhir.<tenant>.Task.*: outcomes recorded by a task's
//     owner. Refusal: Task.businessStatus refused (task-business-status
//     code system) on a task of an action with closes-on-refusal (the first
//     contact) finishes the episode (end reason refused) and cancels its
//     open tasks. Inclusion answer: the confirm-inclusion task completed
//     with businessStatus include opens the full pathway, dates counted from
//     the original discharge; exclude cancels the episode. A task done
//     loses its due-date timer.
//   - pathway-patient, fhir.<tenant>.Patient.*: a Patient with a deceased
//     date ends the episodes, as a death in hospital does.
//
// # What one change writes and announces
//
// Everything one event does to one episode commits in the handler's
// transaction with its inbox mark, and is announced by ONE outbox event: a
// history Bundle led by the EpisodeOfCare, with the CarePlan, Goals and
// Tasks written, on fhir.<tenant>.EpisodeOfCare.created (opening) or
// .updated (every later change). New and changed pathway Tasks therefore
// travel on the EpisodeOfCare subjects, which is where the teams service
// finds them. The episode gets a new version in every change, so the
// event's id is new. The only other event is the overdue mark of a task
// (below), on fhir.<tenant>.Task.updated.
//
// # Resources
//
// EpisodeOfCare: status planned (inclusion to confirm), active, onhold
// (readmitted), finished, cancelled or entered-in-error with statusHistory;
// managingOrganization the tenant's CPTS (the directory Organization typed
// CPTS); period.start the discharge; extensions episode-pathway (url|
// version), index-encounter, episode-careplan, readmission (encounter,
// start, end, planned), schedule-shift (days), rule-value (recorded rule
// variables) and episode-end-reason (death, refused, excluded,
// discharge-cancelled, completed). CarePlan: instantiatesCanonical, one activity per
// template action (detail.code = action code; status scheduled, not-started
// while its condition waits, cancelled), supportingInfo = the episode.
// Task: intent order, status requested, code = action code, for = Patient,
// basedOn and focus = CarePlan, performerType = the team role,
// restriction.period = the due window, extension action-occurrence = its
// rank in a series. New tasks are written once, owned: before creating
// them the service hands them to Deps.Staff (the teams service's rules,
// wired by the binary), which sets owner and extension task-assignment
// and writes the CareTeam, notifications and acceptance deadlines in the
// same transaction (docs/architecture.md, "Who writes what").
//
// # Readmission
//
// An admission (class IMP) while an episode is active records the stay on
// the episode, puts it onhold and its open tasks on-hold, each keeping the
// status it left in the extension previous-status, and removes their
// timers. At the patient's next discharge the episode resumes: each held
// task returns to its previous status with its window recomputed from the
// template for a discharge moved by the readmission's length in calendar
// days (so the working-day rule applies to the new dates), and its timer is
// scheduled again. That discharge does not open a second episode of the
// same pathway.
//
// # A discharge notified late
//
// A discharge Passerelle learns of after the window of one of its
// template's occurrences has ended (pkg/pathway Template.Late: the
// hospital notified it weeks later, an archived message is replayed) opens
// its episode without an alert storm. Each occurrence whose window is
// over when its tasks are created follows its action's rule
// (elapsed-occurrence): skip, not created; missed, created once and closed
// — status cancelled, businessStatus missed (task-business-status), a
// French statusReason saying the discharge was notified after the window
// —, with no owner, no timer and no notification. An occurrence whose
// window is still open is created as usual, due at its window's end. The
// same rule applies to tasks created later (a confirmed inclusion, a
// decided condition) whose windows are over by then. The episode carries
// the extension late-inclusion (pkg/pathway ExtLateInclusion: when
// Passerelle learnt of it, days late, then the counts and the notice), from
// which the worklist counts missing data; no check whose time is past is
// scheduled. Once its tasks exist (at the opening, or at the confirmation
// of an inclusion to confirm, whose task is then due at the end of the
// next working day), the referent coordinating nurse gets one
// Communication of kind late-inclusion, announced on
// fhir.<tenant>.Communication.created for teams to deliver: the discharge
// date, how many days late, how many occurrences were recorded missed or
// skipped, and to check the follow-up — never the patient's name. A
// replay of the message finds the episode of the stay and changes
// nothing, so there is never a second notice. A discharge notified in
// time is handled as before.
//
// # Inclusion to confirm
//
// A discharge with no diagnosis from a unit whose specialty the template
// lists (an A03 without DG1 from cardiology) opens the episode planned, its
// CarePlan draft and its goals proposed, with a single task
// confirm-inclusion owned by the referent coordinating nurse (the
// PractitionerRole with team role coordinating-nurse) and due with the
// first contact.
//
// # Timers
//
// All are the platform's durable timers (pkg/timer): they fire after a
// restart as well as before it.
//
// Each open task has a durable timer pathway-task-due at its due date
// (restriction.period.end). When it fires and the task is still open, the
// task's businessStatus becomes overdue and a Task.updated event announces
// it for escalation.
//
// A task of an action with the extension pathway-reminder also has a timer
// pathway-task-reminder (package pkg/pathway says when; none when that time
// has passed already). When it fires and the task is still open, the
// reminder is a Communication: status completed, category
// communication-kind#reminder, about the Task, subject the Patient,
// recipient the task's owner when it has one, sender the CPTS, payload
// "Rappel : <title> à faire avant le <due date>", announced on
// fhir.<tenant>.Communication.created. The shipped heart-failure template
// reminds the first contact 1 day and the GP visit 2 days before their due
// day.
//
// Both task timers are removed together when a task is cancelled, held or
// done, and scheduled again when it resumes.
//
// Each extension pathway-check of the template has a timer pathway-check
// per episode, scheduled when the episode opens active (or its inclusion
// is confirmed) and removed when it ends. When it fires on an active
// episode and no task of the checked action is completed, the referent
// coordinating nurse (found as for confirm-inclusion) gets a task
// follow-up-check whose description says which check failed, due at the
// end of the next working day after the check's day, announced with the
// episode. An episode planned or on hold at that time is not checked. The
// heart-failure template checks at D+3 that the first contact is done.
//
// # End of follow-up
//
// When an episode opens active (or its inclusion is confirmed), a timer
// pathway-episode-end is set at the end of its follow-up: the end of the
// last day any action of its template covers (Template.FollowUpEnd; D+180
// for heart failure, the patient's daily weighing). If the episode is
// active then, it finishes with end reason completed, its open tasks
// cancelled; a readmission's shift moves the end; an episode on hold (or
// still to confirm) is looked at again a day later.
//
// # Goals
//
// When an episode ends, its goals' lifecycleStatus becomes completed
// (episode finished: refusal, death) or cancelled (cancelled,
// entered-in-error), in the same transaction and event; a goal already
// final keeps its status.
package pathway
