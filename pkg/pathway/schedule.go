package pathway

import (
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
)

var paris = clock.Paris

// Window is the due window of one occurrence of an action: the task's
// restriction.period. End is the due date.
type Window struct {
	// Seq numbers the occurrences of a series from 1.
	Seq        int
	Start, End time.Time
}

// Windows computes the due windows of an action for a discharge at d0.
// Days count in Europe/Paris: occurrence i (from 0) runs from the start of
// day D+Low+i·Period to the end of day D+High+i·Period, where D is the
// discharge's calendar day. The due day then moves by the action's
// working-day rule; a window never starts before the discharge itself, and
// never ends before it starts. Local midnights come from time.Date, so a
// window across the last Sunday of March or October keeps its wall-clock
// bounds (its offset changes from +01:00 to +02:00 or back).
func (a Action) Windows(d0 time.Time) []Window {
	if a.ForPatient() {
		return nil
	}
	d0 = d0.In(paris)
	day0 := dayOf(d0, paris)
	n := a.Count
	if n < 1 {
		n = 1
	}
	out := make([]Window, 0, n)
	for i := 0; i < n; i++ {
		shift := i * a.PeriodDays
		start := addDays(day0, a.Low+shift)
		due := a.WorkingDay.Adjust(addDays(day0, a.High+shift))
		end := addDays(due, 1).Add(-time.Second)
		if start.Before(d0) {
			start = d0
		}
		if end.Before(start) {
			start = due
			if start.Before(d0) {
				start = d0
			}
			if end.Before(start) {
				// A previous-working-day rule pulled the due day before
				// the discharge: the discharge day is due instead.
				end = addDays(day0, 1).Add(-time.Second)
			}
		}
		out = append(out, Window{Seq: i + 1, Start: start, End: end})
	}
	return out
}

// FormatTime writes an instant as a FHIR dateTime in Europe/Paris, with
// its offset of that day (+01:00 or +02:00).
func FormatTime(t time.Time) string { return t.In(paris).Format(time.RFC3339) }

// DaysBetween counts calendar days in Europe/Paris from a's day to b's.
func DaysBetween(a, b time.Time) int {
	da, db := dayOf(a, paris), dayOf(b, paris)
	// Noon to noon: whole days whatever the daylight-saving changes between.
	return int(db.Add(12*time.Hour).Sub(da.Add(12*time.Hour)).Round(24*time.Hour) / (24 * time.Hour))
}

// ShiftDays moves an instant by n calendar days in Europe/Paris, keeping
// its wall-clock time.
func ShiftDays(t time.Time, n int) time.Time { return t.In(paris).AddDate(0, 0, n) }

// FollowUpEnd is when the follow-up of an episode discharged at d0 is
// over: the end of the last day any action of the template covers, its
// tasks' windows (conditional actions included) and the patient's own
// actions (D+High of their bounds, plus their series). ok is false for a
// template with no dated action.
func (t *Template) FollowUpEnd(d0 time.Time) (end time.Time, ok bool) {
	for _, a := range t.Actions {
		if a.ForPatient() {
			n := max(a.Count, 1)
			day := addDays(dayOf(d0.In(paris), paris), a.High+(n-1)*a.PeriodDays)
			if e := addDays(day, 1).Add(-time.Second); e.After(end) {
				end = e
			}
			continue
		}
		ws := a.Windows(d0)
		if len(ws) > 0 && ws[len(ws)-1].End.After(end) {
			end = ws[len(ws)-1].End
		}
	}
	return end, !end.IsZero()
}
