// Package teams is the service that makes sure someone answers: it forms
// each episode's CareTeam, gives every task an owner of its role, chases
// until the owner accepts, moves declined and unanswered tasks to the next
// candidate, escalates what nobody does, and delivers the notifications
// (docs/architecture.md, "Who writes what": CareTeam, a Task's owner, escalation tasks,
// notifications).
//
// # Team
//
// When an episode opens (fhir.<tenant>.EpisodeOfCare.*, a history Bundle
// led by the EpisodeOfCare with its new Tasks), the service creates the
// CareTeam ct-<episode id>: status active, subject the Patient, extension
// careteam-episode → the EpisodeOfCare, managingOrganization the CPTS. Its
// participants (member, role coded in the team-role code system, period)
// are, in order:
//
//   - the professionals the hospital declared — the proposed CareTeam
//     declared-<index encounter> and Patient.generalPractitioner — matched
//     to the directory by RPPS or idNat_PS, a declared pharmacy (FINESS) by
//     its member pharmacist; a declared professional who is not a member
//     joins as external (a logical reference: informed, never assigned);
//   - for each role the episode's tasks need and nobody fills, a member of
//     that role from the directory: active, not away (notAvailable), under
//     their capacity (extension capacity), whose territory (communes, postal
//     codes) covers the patient's home — any member when the home is
//     unknown —, the lowest current load of open tasks first, then by id;
//   - the referent coordinating nurse, chosen the same way (or the one the
//     pathway already gave an inclusion to confirm).
//
// A participant leaves (period.end) when a task they declined or let time
// out was their last open task of the episode. An ended episode's team
// becomes inactive (entered-in-error with its episode).
//
// # Owners and their deadlines
//
// Every requested task gets an owner: the team's member of its role
// (performerType) if usable now, else the next candidate, who then joins
// the team. The pathway's tasks get theirs before they are written: the
// pathway service calls Staff in the transaction that creates them, so a
// task is written once, owned, and the episode's event brings this service
// nothing to write. A task written without owner (an alert review, a
// task created through the API) is assigned when its event arrives. A task with no role (daily self-weighing) is owned by the
// patient. The extension task-assignment on the Task records the owner the
// service assigned, when, who declined or timed out (tried), and what was
// already done (overdue reminder, escalation, cancellation notice), so
// every rule is applied once whatever the redeliveries.
//
// Each assignment starts a durable timer teams-accept: the acceptance
// delay of the template (extension team-assignment on the PlanDefinition
// or the action, read by pkg/pathway: Template.Delays of the version the
// episode was opened with; default 24 h; the shipped heart-failure first
// contact 12 h). If the task is still requested with the same owner when
// it fires, or when its owner declines it (status rejected, set through
// the worklist by the owner), the task goes back to requested with the
// next candidate, and a Provenance says why. With no candidate left it stays rejected, and
// an escalation task goes to the referent coordinating nurse.
//
// A task the pathway marks overdue (businessStatus overdue) reminds its
// owner and starts a teams-escalate timer (the template's escalation delay,
// default 24 h); if the task is still open then, the referent coordinating
// nurse gets an escalation task (code escalation, focus the late task). An
// escalation nobody accepts goes on to the CPTS's coordinators and is never
// left without an owner.
//
// Someone else setting an owner (the pathway's referent tasks, a
// coordinator's reassignment through Reassign) is adopted: the new owner
// joins the team, is told, and their acceptance deadline starts; the
// previous owner is told the task went elsewhere.
//
// # Notifications
//
// Everything that must reach a person is a Communication written in the
// transaction of the change that warrants it: one per kind and person and
// change (category communication-kind: assignment, unassignment, overdue,
// escalation, alert, cancellation; about the tasks; recipient the
// PractitionerRole), status in-progress. The durable consumer teams-notify
// (fhir.<tenant>.Communication.created, also the pathway's reminders)
// delivers each through a notify.Notifier — the log by default, e-mail with
// PASSERELLE_SMTP_URL — and records the delivery on it (extension
// notification-delivery; status completed and sent). Failures are retried
// with back-off for about four hours, then, like a failure no retry can fix
// (no address), recorded as status not-done with the reason, where the
// coordinator sees them (Communication?status=not-done), and
// passerelle_notifications_total counts them. A Communication already
// delivered is not sent again; a crash between sending and recording can
// send it twice, with the same Message-ID.
//
// Notifications say what to do and by when, never who the patient is: an
// e-mail is not a secure channel.
//
// # Events
//
// The tasks one change writes travel together in one event on
// fhir.<tenant>.Task.updated (a history Bundle when several), the
// notifications in one on fhir.<tenant>.Communication.created; each
// CareTeam and Provenance on its own subject.
package teams
