// Package outcome is the arithmetic of Passerelle's outcome measures
// (docs/domain.md, "Measures"), free of storage and HTTP: the calendar days of
// Europe/Paris that windows are counted in, the per-patient record the
// outcomes service projects from events, the seven measures of docs/domain.md
// evaluated in one pass over a stream of records with all their strata,
// the Wilson 95 % interval, Kaplan–Meier curves with numbers at risk and
// their SVG drawing, small-cell masking with secondary suppression, the
// episode CSV export and the parser of INSEE's monthly register of deaths.
//
// # Counting rules
//
// D0 is the discharge's calendar day in Europe/Paris. A window of N days
// covers D0+1 … D0+N and has elapsed once the day D0+N has ended in
// Europe/Paris. A fixed-horizon rate (readmission, mortality) counts an
// episode only when its whole window has elapsed (complete follow-up),
// whatever happened in it; the others are censored ("suivi incomplet"),
// counted as such and never as a success, and are on the Kaplan–Meier
// estimate up to their last observed day. A death before any readmission
// excludes the episode from a readmission rate and censors its
// readmission-free curve (classify says why). A readmission is an unplanned full
// hospitalisation (Encounter class IMP, priority not elective) that starts
// on D0+1 … D0+N; a stay starting on D0 (a transfer or mutation) continues
// the index stay. A death on D0 after the discharge is inside every window.
// Mortality windows start at the discharge itself and, when the register of
// deaths is tracked, close only once the INSEE file covering their last day
// has been imported, for the deaths found in the window as for the others.
package outcome
