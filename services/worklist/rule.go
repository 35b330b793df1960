package worklist

import (
	"encoding/json"
	"fmt"
	"time"
)

// Kinds of alert rules (StructureDefinition alert-rule).
const (
	KindRise        = "rise"
	KindRange       = "range"
	KindWorsening   = "worsening"
	KindMissing     = "missing"
	KindMissedVisit = "missed-visit"
)

// Rule is one alert rule of a template, read from its PlanDefinition
// extension alert-rule. Every number is the template's.
type Rule struct {
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
	respondInHours            bool
}

// RuleIssue is a problem of a rule, located by a FHIRPath expression.
type RuleIssue struct{ Expression, FR, EN string }

type ruleExt struct {
	URL           string        `json:"url"`
	Extension     []ruleExt     `json:"extension"`
	ValueString   *string       `json:"valueString"`
	ValueCode     *string       `json:"valueCode"`
	ValueID       *string       `json:"valueId"`
	ValueCoding   *ruleCoding   `json:"valueCoding"`
	ValueQuantity *ruleQuantity `json:"valueQuantity"`
	ValueDuration *ruleQuantity `json:"valueDuration"`
}

type ruleCoding struct {
	System string `json:"system"`
	Code   string `json:"code"`
}

type ruleQuantity struct {
	Value *float64 `json:"value"`
	Code  string   `json:"code"`
	Unit  string   `json:"unit"`
}

// ParseRules reads the alert rules of a template (PlanDefinition JSON).
// A rule with a problem is reported and left out; the others stand.
func ParseRules(body []byte) ([]Rule, []RuleIssue) {
	var pd struct {
		Extension []ruleExt `json:"extension"`
	}
	if err := json.Unmarshal(body, &pd); err != nil {
		return nil, []RuleIssue{{"PlanDefinition", "Modèle illisible : " + err.Error(), "Unreadable template: " + err.Error()}}
	}
	var rules []Rule
	var issues []RuleIssue
	seen := map[string]bool{}
	for i, e := range pd.Extension {
		if e.URL != ExtAlertRule {
			continue
		}
		expr := fmt.Sprintf("PlanDefinition.extension[%d]", i)
		r, iss := parseRule(e, expr)
		if len(iss) == 0 && seen[r.Code] {
			iss = append(iss, RuleIssue{expr, "Code de règle en double : " + r.Code, "Duplicate rule code: " + r.Code})
		}
		if len(iss) > 0 {
			issues = append(issues, iss...)
			continue
		}
		seen[r.Code] = true
		rules = append(rules, r)
	}
	return rules, issues
}

func duration(q *ruleQuantity) (time.Duration, bool) {
	if q == nil || q.Value == nil || *q.Value < 0 {
		return 0, false
	}
	switch q.Code {
	case "h":
		return time.Duration(*q.Value * float64(time.Hour)), true
	case "d":
		return time.Duration(*q.Value * 24 * float64(time.Hour)), true
	case "wk":
		return time.Duration(*q.Value * 7 * 24 * float64(time.Hour)), true
	}
	return 0, false
}

func parseRule(e ruleExt, expr string) (Rule, []RuleIssue) {
	var r Rule
	var issues []RuleIssue
	bad := func(sub, fr, en string) {
		issues = append(issues, RuleIssue{expr + sub, fr, en})
	}
	for j, s := range e.Extension {
		sub := fmt.Sprintf(".extension[%d]", j)
		switch {
		case s.URL == "code" && s.ValueID != nil:
			r.Code = *s.ValueID
		case s.URL == "title" && s.ValueString != nil:
			r.Title = *s.ValueString
		case s.URL == "kind" && s.ValueCode != nil:
			r.Kind = *s.ValueCode
		case s.URL == "observation" && s.ValueCoding != nil:
			r.System, r.Observation = s.ValueCoding.System, s.ValueCoding.Code
		case (s.URL == "low" || s.URL == "high" || s.URL == "delta") && s.ValueQuantity != nil:
			if s.ValueQuantity.Value == nil {
				bad(sub, "Seuil sans valeur", "Threshold without a value")
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
			d, ok := duration(s.ValueDuration)
			if !ok || d == 0 {
				bad(sub, "Durée en heures (h), jours (d) ou semaines (wk), positive", "A positive duration in hours (h), days (d) or weeks (wk)")
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
				bad(sub, "Délai de réponse en heures (h) ou jours (d) entiers", "Response time in whole hours (h) or days (d)")
				continue
			}
			if q.Code == "h" {
				r.RespondHours, r.respondInHours = int(*q.Value), true
			} else {
				r.RespondDays = int(*q.Value)
			}
		default:
			bad(sub, "Élément de règle inconnu ou mal typé : "+s.URL, "Unknown or mistyped rule element: "+s.URL)
		}
	}
	if r.Code == "" {
		bad("", "Règle sans code", "Rule without a code")
	}
	if r.Title == "" {
		bad("", "Règle sans titre", "Rule without a title")
	}
	if len(r.Roles) == 0 {
		bad("", "Une règle nomme au moins un rôle qui reçoit la tâche de revue", "A rule names at least one role that gets the review task")
	}
	switch r.Severity {
	case "high", "moderate", "low":
	default:
		bad("", "Gravité : high, moderate ou low", "Severity: high, moderate or low")
	}
	needObs := func() {
		if r.Observation == "" {
			bad("", "La règle "+r.Kind+" nomme le code d'observation surveillé", "A "+r.Kind+" rule names the observation code it watches")
		}
	}
	switch r.Kind {
	case KindRise:
		needObs()
		if r.Delta == nil || *r.Delta <= 0 || r.Window == 0 {
			bad("", "Une règle rise a une hausse (delta) positive et une période (window)", "A rise rule has a positive delta and a window")
		}
	case KindRange:
		needObs()
		if r.Low == nil && r.High == nil {
			bad("", "Une règle range a un seuil bas (low), haut (high) ou les deux", "A range rule has a low threshold, a high one or both")
		}
		if r.Low != nil && r.High != nil && *r.Low > *r.High {
			bad("", "Le seuil bas dépasse le seuil haut", "The low threshold is above the high one")
		}
	case KindWorsening:
		needObs()
		if len(r.Ordinal) < 2 {
			bad("", "Une règle worsening donne son échelle (ordinal, au moins deux valeurs)", "A worsening rule gives its scale (ordinal, at least two values)")
		}
		if r.Delta != nil && *r.Delta < 1 {
			bad("", "Une aggravation se compte en rangs (delta ≥ 1)", "A worsening counts in ranks (delta ≥ 1)")
		}
	case KindMissing:
		needObs()
		if r.Window == 0 {
			bad("", "Une règle missing a une période (window)", "A missing rule has a window")
		}
	case KindMissedVisit:
		if len(r.Actions) == 0 {
			bad("", "Une règle missed-visit nomme les actions concernées", "A missed-visit rule names its actions")
		}
	default:
		bad("", "Type de règle inconnu : "+r.Kind+" (rise, range, worsening, missing, missed-visit)",
			"Unknown rule kind: "+r.Kind+" (rise, range, worsening, missing, missed-visit)")
	}
	return r, issues
}

// dueAt is when the review task of an alert raised at now is due.
func (r Rule) dueAt(now time.Time) time.Time {
	if r.respondInHours {
		return now.Add(time.Duration(r.RespondHours) * time.Hour)
	}
	y, m, d := now.In(paris).Date()
	return time.Date(y, m, d+r.RespondDays+1, 0, 0, 0, 0, paris).Add(-time.Second)
}

// rank is a coded value's place in the rule's scale, -1 if absent.
func (r Rule) rank(system, code string) int {
	for i, o := range r.Ordinal {
		if o == system+"|"+code {
			return i
		}
	}
	return -1
}
