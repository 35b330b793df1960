// Package pathway is the domain of Passerelle's care pathways: a template
// read from its FHIR PlanDefinition, the eligibility of a discharge, the due
// windows of each action in Europe/Paris with French public holidays, and
// the small rule language of conditional actions. It has no driver: the
// pathway service (services/pathway) stores and announces what it computes.
//
// # Templates are data
//
// A template is a PlanDefinition meeting the profile passerelle-plandefinition
// of the FHIR package (fhir-profiles/). Every number and rule of a pathway
// lives in it; the Go code knows only what the elements mean:
//
//   - url, version, name, title, status. The version is assigned by the
//     server at each upload: it is the resource's store version, so that an
//     episode's CarePlan.instantiatesCanonical (url|version) always finds the
//     template it was opened with, whatever versions come after.
//   - extension pathway-eligibility: ICD-10 diagnosis prefixes (matched on
//     prefix, dots ignored: I50 matches I50.1 and ATIH's extensions under
//     I50), accepted discharge dispositions (home), a minimum age in years on
//     the discharge date, the medical-unit specialties (SM04 cardiology)
//     whose discharges without any diagnosis become an inclusion to confirm,
//     and the stays excluded: Encounter classes (R, séances), elective stays,
//     PMSI modes de sortie (6 mutation, 7 transfert).
//   - extension working-day-rule (on the template, overridden per action):
//     next-working-day, previous-working-day or none.
//   - extension pathway-variable, repeated: a name the rules use (%nyha)
//     and the observation code that gives its value (LOINC 88020-3).
//   - goal: one Goal per episode; target.due in days after D0.
//   - action, one per kind of task: code (unique in the template; it
//     becomes Task.code), title, participant (a team role of the team-role
//     code system, or type patient for what the patient does alone — a
//     CarePlan activity without tasks), goalId, extension closes-on-refusal,
//     and the timing:
//   - timingRange low…high, in days (d) or weeks (wk): the due window
//     D+low … D+high, D0 being the discharge's calendar day in Europe/Paris.
//   - timingTiming.repeat: boundsRange is the window of the first
//     occurrence, count the number of occurrences, period/periodUnit (d or
//     wk) the step between them. "Weekly from week 2 to week 8" is
//     boundsRange 8…14 d, count 7, period 1 wk.
//   - condition (kind applicability, language text/x-passerelle-rule): the
//     action's tasks exist only once the rule holds (see Rule).
//   - extension pathway-reminder (valueDuration, d or wk): each open task
//     of the action gets a reminder at the start (00:00, Europe/Paris) of
//     the day that many days before its due day, never before its window
//     opens (Action.ReminderAt); 0 d reminds on the due day's morning.
//     Without it, no reminder.
//   - extension elapsed-occurrence (on the template, overridden per
//     action): what becomes of an occurrence whose window has already
//     ended when its tasks are created — a discharge notified late, a
//     replayed message: skip (not created) or missed (created closed,
//     status cancelled, businessStatus missed). Without it, an action with
//     a team role records missed and the patient's own actions skip (they
//     have no task); a template default of missed leaves the patient's
//     actions at skip, and an action of the patient's that says missed is
//     refused. An occurrence whose window is still open, even if it
//     started in the past, is created as usual (Split). Template.Late
//     tells a late discharge: an occurrence of an unconditional action
//     with tasks already over when Passerelle learns of it.
//   - extension team-assignment (on the template, overridden per action
//     and per delay): acceptance and escalation delays of the tasks, for
//     teams (Template.Delays).
//   - extension alert-rule, repeated, on the template: the rules the
//     worklist evaluates (AlertRule). Parse checks each as the worklist
//     will apply it — the thresholds its kind needs, whole response
//     times, known actions, codes unique — and names the rule in each
//     issue, so an upload the worklist could not evaluate is refused.
//   - extension pathway-check, repeated, on the template: code, offset
//     (valueDuration after D0), actionCompleted (an action's code) and a
//     French description. It is evaluated at the end (23:59:59) of day
//     D+offset, moved by the template's working-day rule (Template.CheckAt),
//     and passes when a task of actionCompleted is completed.
//
// # One reading, shared
//
// Library is how the services read stored templates: pathway (the active
// templates at a discharge, an episode's version), teams (an episode's
// version, for its delays) and the worklist (the latest version, for its
// alert rules) each hold one. Each stored version (tenant, id, store
// version) is parsed once and kept, since it never changes; which version
// is the latest or active is searched at each call, so an upload on
// another replica counts at once. A stored version Parse refuses (written
// around the upload route) is an *InvalidError, logged once.
//
// # Due windows
//
// Occurrence i of an action runs from the start of day D+low+i·period to
// the end of day (23:59:59) D+high+i·period, where the due day moves by the
// working-day rule when it is a Sunday or a French public holiday. Saturdays
// are working days (the patient's and the liberal professionals' week, not
// an office's). A window never starts before the discharge instant. Local
// midnights are built with time.Date, so windows across the daylight-saving
// changes keep their wall-clock bounds and carry the offset of their own day
// (+01:00 or +02:00).
//
// Public holidays (IsHoliday): 1 January, 1 May, 8 May, 14 July, 15 August,
// 1 November, 11 November, 25 December, and from Easter (computed with the
// anonymous Gregorian algorithm) Easter Monday, Ascension Thursday and Whit
// Monday. Alsace-Moselle's Good Friday and 26 December are not included.
package pathway
