// Package ui is the worklist's web interface: server-rendered pages
// (html/template, embedded and parsed once at start-up) for the
// professionals of a CPTS, usable on a 360-pixel-wide phone and without
// JavaScript for every essential action, French first and English on
// request (?lang=en, a cookie, or Accept-Language).
//
// # Pages
//
//	GET  /                       home: a professional goes to /worklist, others see the login link
//	GET  /worklist               "Mes tâches": the actor's open tasks as the day's round (overdue, today,
//	                             the next days by commune, the rest behind "Plus tard"), 50 a page
//	GET  /tasks/{id}             one task: the visit form first (a home visit: "Enregistrer la visite"
//	                             records and completes), patient summary, diagnosis, weight curve (SVG,
//	                             with the alert threshold), the recent visits (table, blood pressure and
//	                             heart-rate curve, symptoms, notes, who), lettre de liaison, team; an
//	                             alert's review asks for a decision
//	POST /tasks/{id}/action      accept, decline (with its reason), start, complete, fail
//	                             (Actions.Transition), review (Actions.Review)
//	POST /tasks/{id}/visit       records a visit (Actions.RecordVisit); action=record-visit also
//	                             completes the task. A refused field answers 400 with the page, every
//	                             value as typed; posted without a session, the form is kept for the
//	                             login round trip
//	POST /tasks/{id}/reassign    coordinators: gives the task to another member (Reassigner)
//	GET  /documents/{id}         a DocumentReference's attachment (the lettre de liaison)
//	GET  /alerts                 alerts inbox; POST /alerts/{id}/ack acknowledges one (Actions.Acknowledge)
//	GET  /events                 Server-Sent Events: the actor's own new or changed tasks and alerts
//	GET  /coordination           coordinator and referent coordinating nurse: every episode of the
//	                             CPTS, unassigned, declined and overdue tasks with one-click reassignment
//	GET  /directory, /templates  the member directory and the pathway templates
//	GET  /discharge, POST        a ward without integration declares a discharge; the form becomes
//	                             a FHIR message Bundle that goes through the intake (Intake)
//	GET  /static/...             the style sheet and the little script
//
// Every POST form carries the session's CSRF token and answers 303 back to
// the page it came from; an error from the domain is shown on that page in
// the user's language (the French or English text of a *fhir.Error). Before
// any of a patient's data is shown, access.Policy.Patient is asked; the
// lists (worklist, alerts, coordination) reuse a grant for Deps.AccessTTL
// (30 s), as the directory reuses who a login is, while a task page, a
// visit and a document always ask. Every page that shows patients leaves
// one audit record per patient shown.
//
// # What the pages read
//
// A professional's tasks are Task?owner=<their PractitionerRoles> with an
// open status (requested, accepted, in-progress, on-hold), sorted by
// restriction.period.end; a task is overdue when that date has passed or
// its businessStatus is overdue. An alert is a Flag (status active) about
// the patient; it reaches a professional's inbox through an open task they
// own whose focus is that Flag (the review task the worklist creates for
// the GP); the coordinator and the referent coordinating nurse see every
// active Flag of the CPTS. The weight curve is the patient's Observations
// of LOINC 29463-7; its threshold line is the template's rule, a gain of
// Deps.WeightGain kg over Deps.WeightDays days.
//
// The discharge form is for the coordinator and the referent coordinating
// nurse, who enter a discharge for a ward that has no integration.
//
// Login, the session and CSRF are not done here: Sessions (pkg/websession)
// authenticates and puts the actor in the request's context with
// access.WithActor. The domain changes are methods of the worklist, teams
// and intake services, reached through the small interfaces declared here.
package ui
