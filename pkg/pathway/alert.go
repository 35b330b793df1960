package pathway

import (
	"fmt"
	"time"
)

// Extensions of a template read by the services that act on it.
const (
	// ExtAlertRule is one alert rule of a template (PlanDefinition.extension),
	// evaluated by the worklist.
	ExtAlertRule = "https://passerelle.health/fhir/StructureDefinition/alert-rule"
	// ExtTeamAssignment gives the acceptance and escalation delays of a
	// template or of one of its actions, applied by teams.
	ExtTeamAssignment = "https://passerelle.health/fhir/StructureDefinition/team-assignment"
)

// Kinds of alert rules (StructureDefinition alert-rule).
const (
	AlertRise        = "rise"
	AlertRange       = "range"
	AlertWorsening   = "worsening"
	AlertMissing     = "missing"
	AlertMissedVisit = "missed-visit"
)

// AlertRule is one alert rule of a template, read from its PlanDefinition
// extension alert-rule. Every number is the template's. Parse refuses a
// template with a rule the worklist could not evaluate, so that a
// coordinator learns it at upload, not from a log at the next measurement.
type AlertRule struct {
	Code, Title, Kind string
	// System and Observation name the watched code (a code of
	// Observation.code or of a component).
	System, Observation string
	Low, High, Delta    *float64
	Unit                string
	Window              time.Duration
	// Ordinal is the scale of a worsening rule, least severe first
	// (system|code).
	Ordinal []string
	// Actions are the template actions whose overdue tasks are missed
	// visits.
	Actions  []string
	Severity string
	// Roles get a review task each.
	Roles []string
	// Respond is the review task's due: Hours from now, or the end of the
	// day Days after today (Europe/Paris).
	RespondHours, RespondDays int
	RespondInHours            bool
}

// DueAt is when the review task of an alert raised at now is due.
func (r AlertRule) DueAt(now time.Time) time.Time {
	if r.RespondInHours {
		return now.Add(time.Duration(r.RespondHours) * time.Hour)
	}
	y, m, d := now.In(paris).Date()
	return time.Date(y, m, d+r.RespondDays+1, 0, 0, 0, 0, paris).Add(-time.Second)
}

// Rank is a coded value's place in the rule's scale, -1 if absent.
func (r AlertRule) Rank(system, code string) int {
	for i, o := range r.Ordinal {
		if o == system+"|"+code {
			return i
		}
	}
	return -1
}

// Delays are the team-assignment delays of a task: how long its owner has
// to accept it, and how long after its due date an open task waits before
// an escalation.
type Delays struct {
	Acceptance, Escalation time.Duration
}

// assignment is an extension team-assignment as written: each delay only
// when it is there, so that an action's extension overrides only what it
// names.
type assignment struct {
	acceptance, escalation       time.Duration
	hasAcceptance, hasEscalation bool
}

func (a assignment) apply(d *Delays) {
	if a.hasAcceptance {
		d.Acceptance = a.acceptance
	}
	if a.hasEscalation {
		d.Escalation = a.escalation
	}
}

// Delays returns the delays of the tasks of action: def, overridden by the
// template's extension team-assignment, then by the action's own.
func (t *Template) Delays(action string, def Delays) Delays {
	d := def
	t.assignment.apply(&d)
	for _, a := range t.Actions {
		if a.Code == action {
			a.assignment.apply(&d)
		}
	}
	return d
}

// duration converts a Duration to a time.Duration (s, min, h, d, wk).
func duration(q *quantityJSON) (time.Duration, bool) {
	if q == nil || q.Value == nil || *q.Value < 0 {
		return 0, false
	}
	unit := q.Code
	if unit == "" {
		unit = q.Unit
	}
	mult := map[string]time.Duration{"s": time.Second, "min": time.Minute, "h": time.Hour, "d": 24 * time.Hour, "wk": 7 * 24 * time.Hour}[unit]
	if mult == 0 {
		return 0, false
	}
	return time.Duration(*q.Value * float64(mult)), true
}

func parseAssignment(e extJSON, expr string, bad func(string, string, string)) assignment {
	var a assignment
	for j, s := range e.Extension {
		d, ok := duration(s.ValueDuration)
		if !ok {
			bad(fmt.Sprintf("%s.extension[%d].value", expr, j), "Délai d'attribution : une durée positive en s, min, h, d ou wk",
				"Assignment delay: a non-negative duration in s, min, h, d or wk")
			continue
		}
		switch s.URL {
		case "acceptance":
			a.acceptance, a.hasAcceptance = d, true
		case "escalation":
			a.escalation, a.hasEscalation = d, true
		default:
			bad(fmt.Sprintf("%s.extension[%d].url", expr, j), "Délai d'attribution inconnu : "+s.URL+" (acceptance, escalation)",
				"Unknown assignment delay: "+s.URL+" (acceptance, escalation)")
		}
	}
	return a
}

// parseAlertRule reads one extension alert-rule. Every problem names the
// rule (its code when it has one), so that the coordinator who uploaded
// the template knows which of its rules to fix.
func parseAlertRule(e extJSON, expr string, report func(string, string, string)) AlertRule {
	var r AlertRule
	for _, s := range e.Extension {
		if s.URL == "code" && s.ValueID != nil {
			r.Code = *s.ValueID
		}
	}
	name := "?"
	if r.Code != "" {
		name = r.Code
	}
	bad := func(sub, fr, en string) {
		report(expr+sub, fmt.Sprintf("Règle d'alerte « %s » : %s", name, fr), fmt.Sprintf("Alert rule %q: %s", name, en))
	}
	for j, s := range e.Extension {
		sub := fmt.Sprintf(".extension[%d]", j)
		switch {
		case s.URL == "code" && s.ValueID != nil:
		case s.URL == "title" && s.ValueString != nil:
			r.Title = *s.ValueString
		case s.URL == "kind" && s.ValueCode != nil:
			r.Kind = *s.ValueCode
		case s.URL == "observation" && s.ValueCoding != nil:
			r.System, r.Observation = s.ValueCoding.System, s.ValueCoding.Code
		case (s.URL == "low" || s.URL == "high" || s.URL == "delta") && s.ValueQuantity != nil:
			if s.ValueQuantity.Value == nil {
				bad(sub, "seuil sans valeur", "threshold without a value")
				continue
			}
			v := *s.ValueQuantity.Value
			switch s.URL {
			case "low":
				r.Low = &v
			case "high":
				r.High = &v
			default:
				r.Delta = &v
			}
			if s.ValueQuantity.Unit != "" {
				r.Unit = s.ValueQuantity.Unit
			} else {
				r.Unit = s.ValueQuantity.Code
			}
		case s.URL == "window" && s.ValueDuration != nil:
			d, ok := duration(&quantityJSON{Value: s.ValueDuration.Value, Code: s.ValueDuration.Code})
			if !ok || d == 0 || (s.ValueDuration.Code != "h" && s.ValueDuration.Code != "d" && s.ValueDuration.Code != "wk") {
				bad(sub, "durée en heures (h), jours (d) ou semaines (wk), positive", "a positive duration in hours (h), days (d) or weeks (wk)")
			}
			r.Window = d
		case s.URL == "ordinal" && s.ValueCoding != nil:
			r.Ordinal = append(r.Ordinal, s.ValueCoding.System+"|"+s.ValueCoding.Code)
		case s.URL == "action" && s.ValueCode != nil:
			r.Actions = append(r.Actions, *s.ValueCode)
		case s.URL == "severity" && s.ValueCode != nil:
			r.Severity = *s.ValueCode
		case s.URL == "role" && s.ValueCode != nil:
			r.Roles = append(r.Roles, *s.ValueCode)
		case s.URL == "respondWithin" && s.ValueDuration != nil:
			q := s.ValueDuration
			if q.Value == nil || *q.Value < 0 || *q.Value != float64(int(*q.Value)) || (q.Code != "h" && q.Code != "d") {
				bad(sub, "délai de réponse en heures (h) ou jours (d) entiers", "response time in whole hours (h) or days (d)")
				continue
			}
			if q.Code == "h" {
				r.RespondHours, r.RespondInHours = int(*q.Value), true
			} else {
				r.RespondDays = int(*q.Value)
			}
		default:
			bad(sub, "élément de règle inconnu ou mal typé : "+s.URL, "unknown or mistyped rule element: "+s.URL)
		}
	}
	if r.Code == "" {
		bad("", "règle sans code", "rule without a code")
	}
	if r.Title == "" {
		bad("", "règle sans titre", "rule without a title")
	}
	if len(r.Roles) == 0 {
		bad("", "une règle nomme au moins un rôle qui reçoit la tâche de revue", "a rule names at least one role that gets the review task")
	}
	switch r.Severity {
	case "high", "moderate", "low":
	default:
		bad("", "gravité : high, moderate ou low", "severity: high, moderate or low")
	}
	needObs := func() {
		if r.Observation == "" {
			bad("", "une règle "+r.Kind+" nomme le code d'observation surveillé", "a "+r.Kind+" rule names the observation code it watches")
		}
	}
	switch r.Kind {
	case AlertRise:
		needObs()
		if r.Delta == nil || *r.Delta <= 0 || r.Window == 0 {
			bad("", "une règle rise a une hausse (delta) positive et une période (window)", "a rise rule has a positive delta and a window")
		}
	case AlertRange:
		needObs()
		if r.Low == nil && r.High == nil {
			bad("", "une règle range a un seuil bas (low), haut (high) ou les deux", "a range rule has a low threshold, a high one or both")
		}
		if r.Low != nil && r.High != nil && *r.Low > *r.High {
			bad("", "le seuil bas dépasse le seuil haut", "the low threshold is above the high one")
		}
	case AlertWorsening:
		needObs()
		if len(r.Ordinal) < 2 {
			bad("", "une règle worsening donne son échelle (ordinal, au moins deux valeurs)", "a worsening rule gives its scale (ordinal, at least two values)")
		}
		if r.Delta != nil && (*r.Delta < 1 || *r.Delta != float64(int(*r.Delta))) {
			bad("", "une aggravation se compte en rangs entiers (delta ≥ 1)", "a worsening counts in whole ranks (delta ≥ 1)")
		}
	case AlertMissing:
		needObs()
		if r.Window == 0 {
			bad("", "une règle missing a une période (window)", "a missing rule has a window")
		}
	case AlertMissedVisit:
		if len(r.Actions) == 0 {
			bad("", "une règle missed-visit nomme les actions concernées", "a missed-visit rule names its actions")
		}
	default:
		bad("", "type de règle inconnu : "+r.Kind+" (rise, range, worsening, missing, missed-visit)",
			"unknown rule kind: "+r.Kind+" (rise, range, worsening, missing, missed-visit)")
	}
	return r
}
