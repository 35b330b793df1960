// Package demo is `passerelle run --demo`: a demo CPTS, and months of its
// activity simulated through the running platform, so that every screen
// and every measure has something to show.
//
// # The CPTS
//
// Territory: six communes around Roanne (Communes). Directory: the
// development accounts (docs/contract.md, "Accounts") plus 31 members of invented names
// (bird names) with fictitious RPPS numbers — nurses, GPs, cardiologists,
// pharmacists of three pharmacies, a second coordinating nurse — loaded
// by the directory importer from MembersCSV, exactly as `passerelle
// directory import` would. Two hospitals send their ADT feeds: CH Démo
// (the development hospital) and Clinique Démo du Forez, each with a
// cardiology and a geriatrics unit; the Forez feed sends no diagnosis for
// a share of its stays.
//
// # The population
//
// NewPlan draws, from a seed, about 165 heart-failure and 20 fall
// discharges a year over the simulated period (15 months by default:
// about 200 heart-failure patients, and the first quarter's patients have
// their whole year of follow-up for the mortality measure). Names come
// from fixed lists of plants and trees; identifiers are demo INS-NIR
// (urn:oid:1.2.250.1.213.1.4.11, refused in production) with a valid key.
// Each patient has an index stay, possibly unplanned readmissions (about
// 20 % within six months, some to the second hospital, some without
// diagnosis: "HF status unknown"), planned stays, and for about 7 % a
// death within the year: in hospital (discharge mode 9), recorded by a
// team member, or known only from INSEE's register.
//
// # Through the real pipeline
//
// Run moves a clock.Sim through the period; every service runs on that
// clock. At each event of the plan it sets the clock and acts as the
// outside world would:
//
//   - hospitals: HL7 v2.5 A01 and A03 messages (IHE PAM France) handed to
//     intake's MLLP handler, answered with an ACK like any feed;
//   - professionals: three rounds a day over the open tasks, through the
//     worklist's Go API (the one its web pages and FHIR routes call):
//     accept (most within hours, a few late or never: the acceptance
//     deadline passes the task on), decline now and then, start, record
//     the visit's measurements, complete — most within the due window,
//     some late, a few never (overdue, escalated). Measurements follow the
//     patient's state: a heart-failure decompensation builds up over the
//     six days before the readmission it leads to (weight, heart rate,
//     blood pressure, NYHA class, oedema), so the alert rules fire as they
//     would; the alerts' review tasks are answered like the others;
//   - the coordinating nurse calls the heart-failure patients for their
//     weight every Monday, again in the afternoon those the morning did
//     not reach (one call in eight does not get through: two in a row, and
//     the missing-weight alert follows);
//   - a team member records the deaths the team learns of; the coordinator
//     imports INSEE's register of deaths every month (with people unknown
//     to the CPTS in it).
//
// Between events, the clock stops at each due timer (grouped by
// timerStep) and the platform settles: due timers fired, the outbox
// published, every consumer's backlog handled. Nothing is written into
// the database by the demo itself except the directory's organizations
// (configuration) and a marker resource (Basic/demo-simulation) that says
// the simulation ran to its end: a restart then starts at once, and an
// interrupted simulation is reported rather than resumed.
//
// What each owner does with a task is drawn from the seed and what
// identifies the task in the plan (patient, action, occurrence, due date,
// owner), not from store ids, so that a seed gives the same story.
package demo
