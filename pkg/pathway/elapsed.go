package pathway

import (
	"fmt"
	"time"
)

// ExtElapsed is the extension elapsed-occurrence, on a template (its
// default) or one of its actions: what becomes of an occurrence whose due
// window had already ended when its tasks are created — a discharge
// notified late, an archived message replayed.
const ExtElapsed = "https://passerelle.health/fhir/StructureDefinition/elapsed-occurrence"

// Elapsed is a rule of the code system elapsed-occurrence.
type Elapsed string

const (
	// ElapsedSkip: the occurrence is not created.
	ElapsedSkip Elapsed = "skip"
	// ElapsedMissed: the occurrence's task is created already closed
	// (status cancelled, businessStatus missed), so that the record shows
	// the visit that could not happen.
	ElapsedMissed Elapsed = "missed"
)

// DefaultElapsed is the rule of an action when neither it nor its
// template says one: a professional's occurrence is recorded missed, the
// patient's own (which has no task) is skipped.
func DefaultElapsed(a Action) Elapsed {
	if a.ForPatient() {
		return ElapsedSkip
	}
	return ElapsedMissed
}

// Split parts an action's windows for tasks created at now: those whose
// window has not ended yet (created as usual, due at their window's end,
// even when the window started in the past) and those already over, to
// which the action's Elapsed rule applies.
func Split(ws []Window, now time.Time) (open, elapsed []Window) {
	for _, w := range ws {
		if w.End.Before(now) {
			elapsed = append(elapsed, w)
		} else {
			open = append(open, w)
		}
	}
	return open, elapsed
}

// Late tells whether a discharge at d0 that Passerelle learns of at now is
// late: at least one occurrence of the template's unconditional actions
// with tasks has a window already over (docs/domain.md, "A discharge
// notified late"). The conditional actions wait for their variable, so
// they do not count.
func (t *Template) Late(d0, now time.Time) bool {
	for _, a := range t.Actions {
		if a.Condition != nil {
			continue
		}
		if _, el := Split(a.Windows(d0), now); len(el) > 0 {
			return true
		}
	}
	return false
}

// parseElapsed reads one extension elapsed-occurrence; who names the
// template or the action in the issue.
func parseElapsed(e extJSON, expr, whoFR, whoEN string, bad func(string, string, string)) Elapsed {
	v := ""
	if e.ValueCode != nil {
		v = *e.ValueCode
	}
	switch r := Elapsed(v); r {
	case ElapsedSkip, ElapsedMissed:
		return r
	}
	bad(expr+".value", fmt.Sprintf("%s : règle des occurrences déjà échues inconnue : « %s » (skip, missed)", whoFR, v),
		fmt.Sprintf("%s: unknown rule for occurrences already past: %q (skip, missed)", whoEN, v))
	return ""
}
