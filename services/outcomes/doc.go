// Package outcomes is the service that measures what the CPTS's pathways
// achieve (docs/contract.md, "HTTP": Measure/$evaluate-measure, /api/outcomes.csv;
// docs/domain.md, "Measures"): readmission and mortality with their Wilson 95 %
// intervals, Kaplan–Meier curves, the process indicators, small-cell
// masking for what leaves the CPTS, and the register of deaths. The
// arithmetic is package pkg/outcome; this package feeds it and serves it.
//
// # The projection: one record per patient, in its own table
//
// An evaluation reads one compact record per patient (pkg/outcome.Record:
// INS traits, death, hospital stays from every partner hospital, pathway
// episodes and their tasks) from the store's outcome records (table
// outcome_records, migration 0004, both backends; docs/architecture.md,
// "Storage"), streamed by store.Store.ScanOutcomeRecords: the store's
// goroutine reads rows while the caller decodes and counts them, all
// measures and strata in one pass, memory bounded by the strata and the
// Kaplan–Meier day histograms, not by the number of episodes. The tasks are a column apart: only
// first-contact-7d, tasks-on-time and the CSV read them.
//
// Measured before choosing (bench/outcomes, bench/README.md): the same
// records stored as FHIR Basic resources and read through the store's
// generic search cost about 15 µs of CPU per record (search paging,
// version join, JSON wrapper) and loaded at a few hundred per second,
// which put a million episodes far beyond 10 s; the table reads at a few
// µs per record.
//
// The records are written by the service's consumers, each through
// bus.Inbox (exactly once: the record's change commits with the inbox
// mark), with an optimistic version so that two consumers updating one
// patient at once do not lose a change (the loser, store.ErrVersionConflict,
// is delivered again):
//
//   - outcomes-encounter, fhir.<tenant>.Encounter.*: intake's history
//     Bundle led by the Encounter. Every stay (admission, discharge) is
//     recorded with its class, planned flag (priority EL), period,
//     hospital FINESS (serviceProvider's identifier) and heart-failure
//     status from its principal diagnosis (rank 1): y, n, or ? when the
//     feed sent none. cancel-admit removes the stay; a death (event death
//     or disposition exp) records the death (source hospital). The Patient
//     of the Bundle updates the traits.
//   - outcomes-episode, fhir.<tenant>.EpisodeOfCare.*: pathway's Bundle
//     led by the EpisodeOfCare: status, pathway (episode-pathway, without
//     version), CPTS, index encounter, discharge (period.start) and the
//     Tasks it carries (code, performerType role, status, due =
//     restriction.period.end, completion = executionPeriod.end or
//     meta.lastUpdated).
//   - outcomes-task, fhir.<tenant>.Task.*: a known task's progress.
//   - outcomes-patient, fhir.<tenant>.Patient.*: traits and
//     deceasedDateTime (source patient).
//
// Readmissions are read from the stays, not from the episode's readmission
// extension: a stay of any partner hospital counts, during the episode or
// after it ended.
//
// # Deaths
//
// Four sources: a hospital (death event, disposition exp), the Patient
// (deceasedDateTime), a team member and the INSEE register. A team member
// records a death with POST /api/outcomes/deaths
// {"patient":"Patient/<id>","deceasedDateTime":"…"}; who may is
// access.Policy.Patient's answer (the coordinator, the referent
// coordinating nurse, a professional of the patient's care team). It
// writes an Observation (LOINC 81956-5, date and time of death, method
// death-source#team, performer the PractitionerRole), announced on
// fhir.<tenant>.Observation.created, audited, and the record, in one
// transaction. The first source keeps the date, except that a hospital's
// date replaces the others'.
//
// The register (INSEE's monthly "fichier des personnes décédées") is
// imported by the coordinator (POST /api/outcomes/death-register?month=
// YYYYMM with the file as body or as the "file" part of a form) or by an
// operator (passerelle outcomes import-deaths FILE [--month YYYYMM]).
// Each line is matched on the INS traits (sex, birth date, birth family
// name, one of the given names, birth place code when both have one):
// one patient matched records the death (Observation death-insee-<patient>,
// method death-source#insee, at the end of the day in Europe/Paris); a line
// matching several patients, or a patient matched by several lines, is
// reported ambiguous; a line with the same sex, birth date and name but
// another trait different is reported unmatched for a check by hand;
// unreadable lines are reported with their line number. The month is then
// recorded as covered (Basic outcomes-death-register-<tenant>). From the
// first import on (or always, with Deps.TrackRegister), a mortality window
// closes only once the month of its last day is covered, for a death known
// inside it as for a survivor (counting known deaths at once would fill the
// denominator with deaths), and the Kaplan–Meier estimate follows deaths
// up to the last covered day: a CPTS that starts importing imports the months its open
// windows end in (INSEE publishes every month since 1970). Before any
// import, mortality windows close on time alone, with the deaths known
// from hospitals and teams.
//
// # HTTP (coordinator and referent coordinating nurse of the tenant)
//
//   - GET /fhir/Measure/{id}/$evaluate-measure?periodStart=&periodEnd=
//     [&subject=Patient/<id>][&reportType=summary|subject-list|individual]
//     [&pathway=][&masked=true]: a MeasureReport (report.go). A
//     fixed-horizon measure's group counts complete follow-up only and
//     carries the Kaplan–Meier estimate over every episode (extension
//     kaplan-meier-estimate), with the populations censored-register and
//     excluded-death saying why episodes are left out.
//   - GET /api/outcomes/measure-reports?periodStart=&periodEnd=[&masked=]:
//     the seven MeasureReports in a collection Bundle.
//   - GET /api/outcomes.csv?periodStart=&periodEnd=[&pathway=]: docs/contract.md's
//     episode export; the episode column is a keyed HMAC-SHA256 of the
//     patient id with the tenant's key (from Deps.PseudonymKey), plus the
//     episode's rank for a patient's second and later episodes;
//     follow_up_days counts the days from the discharge day to today, or to
//     the day of death; readmission_dates are the unplanned full
//     hospitalisations from D0+1 on, before any death; first_contact_days
//     is the day of the first completed visit task after D0.
//   - GET /api/outcomes/curves[.svg]?periodStart=&periodEnd=&kind=
//     readmission-free|survival[&by=pathway|hospital|cpts|age-band|sex]
//     [&horizon=days][&masked=true]: Kaplan–Meier curves as JSON or SVG.
//   - GET /api/outcomes/aci.csv?year=YYYY[&masked=false]: the yearly
//     indicators of the ACI "parcours" mission, masked unless asked not
//     to (they go to the Assurance Maladie).
//   - POST /api/outcomes/deaths, POST and GET /api/outcomes/death-register.
//
// Figures are unmasked for the CPTS's own coordinator and board; masked=
// true (and the ACI export by default) withholds counts from 1 to
// Threshold-1 with secondary suppression (pkg/outcome.Mask), gives no rate
// whose numerator or denominator is withheld, and never lists subjects.
// Every report and export is audited (action E).
//
// # For a web page
//
// Service.Params, Service.Evaluate, Service.Curves, Service.Compare (a
// measure over two periods), Service.Mask, Rows (results as table rows),
// MeasureReport, outcome.RenderSVG with SVGOptions (French or English
// titles) and Service.WriteCSV are the calls a page makes; MayRead says
// who may see them.
package outcomes
