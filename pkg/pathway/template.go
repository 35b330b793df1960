package pathway

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// Canonical URLs and code systems of the template encoding.
const (
	ProfileURL       = "https://passerelle.health/fhir/StructureDefinition/passerelle-plandefinition"
	ExtEligibility   = "https://passerelle.health/fhir/StructureDefinition/pathway-eligibility"
	ExtWorkingDay    = "https://passerelle.health/fhir/StructureDefinition/working-day-rule"
	ExtClosesRefusal = "https://passerelle.health/fhir/StructureDefinition/closes-on-refusal"
	ExtVariable      = "https://passerelle.health/fhir/StructureDefinition/pathway-variable"
	ExtReminder      = "https://passerelle.health/fhir/StructureDefinition/pathway-reminder"
	ExtCheck         = "https://passerelle.health/fhir/StructureDefinition/pathway-check"
	SystemAction     = "https://passerelle.health/fhir/CodeSystem/pathway-action"
	SystemTeamRole   = "https://passerelle.health/fhir/CodeSystem/team-role"
)

// Template is a pathway template read from its PlanDefinition.
type Template struct {
	// ID is the PlanDefinition's id; Version its store version (see the
	// package comment).
	ID                        string
	URL, Version, Name, Title string
	Eligibility               Eligibility
	// WorkingDay is the template's default rule for due days.
	WorkingDay DayRule
	// Elapsed is the template's default rule for occurrences already
	// past (extension elapsed-occurrence); empty when it says none.
	Elapsed   Elapsed
	Variables []Variable
	Goals     []Goal
	Actions   []Action
	// Checks are evaluated by a timer at their instant after D0.
	Checks []Check
	// AlertRules are evaluated by the worklist on each measurement, timer
	// and overdue task of the template's episodes.
	AlertRules []AlertRule
	// assignment is the template's extension team-assignment (Delays).
	assignment assignment
}

// AlertRule returns the alert rule with a code.
func (t *Template) AlertRule(code string) (AlertRule, bool) {
	for _, r := range t.AlertRules {
		if r.Code == code {
			return r, true
		}
	}
	return AlertRule{}, false
}

// Check is one extension pathway-check: at the end of day D+OffsetDays
// (moved by the template's working-day rule), the check passes when a
// task of the action ActionCompleted is completed; when it fails, the
// referent coordinating nurse gets a follow-up-check task saying so.
type Check struct {
	// Code names the check, unique in the template.
	Code            string
	OffsetDays      int
	ActionCompleted string
	// Description says in French what failed; the task's description.
	Description string
}

// CheckAt is the instant a check is evaluated for a discharge at d0: the
// end (23:59:59, Europe/Paris) of day D+OffsetDays, the day moved by the
// template's working-day rule, so that a check never runs before the due
// date it checks moved the same way.
func (t *Template) CheckAt(c Check, d0 time.Time) time.Time {
	day := t.WorkingDay.Adjust(addDays(dayOf(d0, paris), c.OffsetDays))
	return addDays(day, 1).Add(-time.Second)
}

// Canonical is url|version, what an episode records of its template.
func (t *Template) Canonical() string { return t.URL + "|" + t.Version }

// Action returns the action with a code.
func (t *Template) Action(code string) (Action, bool) {
	for _, a := range t.Actions {
		if a.Code == code {
			return a, true
		}
	}
	return Action{}, false
}

// Variable binds a rule variable to an observation code.
type Variable struct {
	Name, System, Code string
}

// Goal is one PlanDefinition.goal: a Goal of each episode, due DueDays
// after the discharge date.
type Goal struct {
	ID, Text string
	DueDays  int
}

// Action is one PlanDefinition.action.
type Action struct {
	Code, CodeSystem, Title, Description string
	// Role is the team role the tasks need; empty for the patient's own
	// actions, which are CarePlan activities without tasks.
	Role string
	// Low and High bound the window of the first occurrence, in days after
	// D0 (the discharge date in Europe/Paris): D+Low … D+High.
	Low, High int
	// Count occurrences, each PeriodDays after the previous one.
	Count, PeriodDays int
	// Frequency per period, for the patient's own actions (daily weighing).
	Frequency  int
	WorkingDay DayRule
	// Elapsed is what becomes of an occurrence whose window has already
	// ended when its tasks are created: the action's extension
	// elapsed-occurrence, else the template's, else DefaultElapsed.
	Elapsed Elapsed
	// Condition, when set, must hold before the action's tasks exist.
	Condition       *Rule
	ConditionText   string
	ClosesOnRefusal bool
	GoalIDs         []string
	// Reminder: the extension pathway-reminder is set, ReminderDays
	// before the due day (see ReminderAt).
	Reminder     bool
	ReminderDays int
	// Timing is the action's timing element as written, copied onto the
	// patient's CarePlan activities.
	Timing json.RawMessage
	// assignment is the action's extension team-assignment (Delays).
	assignment assignment
}

// ReminderAt is when the reminder of an occurrence is due: the start
// (00:00, Europe/Paris) of the day ReminderDays before the due day (the
// day of w.End), never before the window's start. There is none when the
// action has no pathway-reminder, or when that instant is not before the
// due date.
func (a Action) ReminderAt(w Window) (time.Time, bool) {
	if !a.Reminder {
		return time.Time{}, false
	}
	at := addDays(dayOf(w.End, paris), -a.ReminderDays)
	if at.Before(w.Start) {
		at = w.Start
	}
	if !at.Before(w.End) {
		return time.Time{}, false
	}
	return at, true
}

// ForPatient tells whether the patient carries the action out alone.
func (a Action) ForPatient() bool { return a.Role == "" }

// Issue is a problem of a template, located by a FHIRPath expression.
type Issue struct {
	Expression string
	FR, EN     string
}

type pdJSON struct {
	ResourceType string     `json:"resourceType"`
	ID           string     `json:"id"`
	URL          string     `json:"url"`
	Version      string     `json:"version"`
	Name         string     `json:"name"`
	Title        string     `json:"title"`
	Status       string     `json:"status"`
	Extension    []extJSON  `json:"extension"`
	Goal         []goalJSON `json:"goal"`
	Action       []actJSON  `json:"action"`
}

type extJSON struct {
	URL              string        `json:"url"`
	Extension        []extJSON     `json:"extension"`
	ValueString      *string       `json:"valueString"`
	ValueCode        *string       `json:"valueCode"`
	ValueID          *string       `json:"valueId"`
	ValueBoolean     *bool         `json:"valueBoolean"`
	ValueUnsignedInt *int          `json:"valueUnsignedInt"`
	ValueCoding      *codingJSON   `json:"valueCoding"`
	ValueDuration    *quantityJSON `json:"valueDuration"`
	ValueQuantity    *quantityJSON `json:"valueQuantity"`
}

type codingJSON struct {
	System  string `json:"system"`
	Code    string `json:"code"`
	Display string `json:"display"`
}

type quantityJSON struct {
	Value *float64 `json:"value"`
	Code  string   `json:"code"`
	Unit  string   `json:"unit"`
}

type rangeJSON struct {
	Low  *quantityJSON `json:"low"`
	High *quantityJSON `json:"high"`
}

type goalJSON struct {
	ID          string `json:"id"`
	Description struct {
		Text string `json:"text"`
	} `json:"description"`
	Target []struct {
		Due *quantityJSON `json:"due"`
	} `json:"target"`
}

type actJSON struct {
	Extension   []extJSON `json:"extension"`
	Title       string    `json:"title"`
	Description string    `json:"description"`
	Code        []struct {
		Coding []codingJSON `json:"coding"`
	} `json:"code"`
	GoalID    []string `json:"goalId"`
	Condition []struct {
		Kind       string `json:"kind"`
		Expression struct {
			Language    string `json:"language"`
			Expression  string `json:"expression"`
			Description string `json:"description"`
		} `json:"expression"`
	} `json:"condition"`
	TimingRange  *rangeJSON      `json:"timingRange"`
	TimingTiming json.RawMessage `json:"timingTiming"`
	Participant  []struct {
		Type string `json:"type"`
		Role *struct {
			Coding []codingJSON `json:"coding"`
		} `json:"role"`
	} `json:"participant"`
}

type timingJSON struct {
	Repeat *struct {
		BoundsRange *rangeJSON `json:"boundsRange"`
		Count       *int       `json:"count"`
		Frequency   *int       `json:"frequency"`
		Period      *float64   `json:"period"`
		PeriodUnit  string     `json:"periodUnit"`
	} `json:"repeat"`
}

// Parse reads a template from its PlanDefinition JSON and checks what the
// profile cannot say: codes unique, windows in days and in order, rules
// that parse and name declared variables, goals that exist. The profile
// (validated first) guarantees the structure; Parse still never panics on
// a structurally wrong body and reports it as issues.
func Parse(body []byte) (*Template, []Issue) {
	var pd pdJSON
	if err := json.Unmarshal(body, &pd); err != nil {
		return nil, []Issue{{Expression: "PlanDefinition", FR: "Modèle illisible : " + err.Error(), EN: "Unreadable template: " + err.Error()}}
	}
	var issues []Issue
	bad := func(expr, fr, en string) { issues = append(issues, Issue{Expression: expr, FR: fr, EN: en}) }
	if pd.ResourceType != "PlanDefinition" {
		bad("resourceType", "Un modèle de parcours est un PlanDefinition", "A pathway template is a PlanDefinition")
		return nil, issues
	}
	t := &Template{ID: pd.ID, URL: pd.URL, Version: pd.Version, Name: pd.Name, Title: pd.Title, WorkingDay: NoDayChange}
	if t.URL == "" {
		bad("PlanDefinition.url", "url manquante", "url is missing")
	}
	if strings.Contains(t.URL, "|") {
		bad("PlanDefinition.url", "L'url ne peut contenir '|'", "The url cannot contain '|'")
	}
	eligible := false
	var alertExpr []string
	for i, e := range pd.Extension {
		expr := fmt.Sprintf("PlanDefinition.extension[%d]", i)
		switch e.URL {
		case ExtEligibility:
			eligible = true
			t.Eligibility = parseEligibility(e, expr, bad)
		case ExtWorkingDay:
			t.WorkingDay = parseDayRule(e, expr, bad)
		case ExtVariable:
			var v Variable
			for _, s := range e.Extension {
				switch {
				case s.URL == "name" && s.ValueID != nil:
					v.Name = *s.ValueID
				case s.URL == "code" && s.ValueCoding != nil:
					v.System, v.Code = s.ValueCoding.System, s.ValueCoding.Code
				}
			}
			if v.Name == "" || v.Code == "" {
				bad(expr, "Variable sans nom ou sans code", "Variable without a name or a code")
			}
			t.Variables = append(t.Variables, v)
		case ExtCheck:
			t.Checks = append(t.Checks, parseCheck(e, expr, bad))
		case ExtTeamAssignment:
			t.assignment = parseAssignment(e, expr, bad)
		case ExtElapsed:
			t.Elapsed = parseElapsed(e, expr, "Modèle", "Template", bad)
		case ExtAlertRule:
			t.AlertRules = append(t.AlertRules, parseAlertRule(e, expr, bad))
			alertExpr = append(alertExpr, expr)
		}
	}
	if !eligible {
		bad("PlanDefinition.extension", "Critères d'éligibilité manquants (extension pathway-eligibility)", "Eligibility is missing (extension pathway-eligibility)")
	} else if len(t.Eligibility.DiagnosisPrefixes) == 0 {
		bad("PlanDefinition.extension", "L'éligibilité doit nommer au moins un préfixe CIM-10", "Eligibility must name at least one ICD-10 prefix")
	}
	goals := map[string]bool{}
	for i, g := range pd.Goal {
		expr := fmt.Sprintf("PlanDefinition.goal[%d]", i)
		if g.ID == "" {
			bad(expr+".id", "Un objectif a besoin d'un id (action.goalId y renvoie)", "A goal needs an id (action.goalId refers to it)")
		}
		goals[g.ID] = true
		gl := Goal{ID: g.ID, Text: g.Description.Text}
		if len(g.Target) > 0 && g.Target[0].Due != nil {
			d, ok := days(g.Target[0].Due)
			if !ok {
				bad(expr+".target[0].due", "L'échéance d'un objectif se compte en jours (d) ou semaines (wk)", "A goal's due is counted in days (d) or weeks (wk)")
			}
			gl.DueDays = d
		}
		t.Goals = append(t.Goals, gl)
	}
	vars := map[string]bool{}
	for _, v := range t.Variables {
		vars[v.Name] = true
	}
	seen := map[string]int{}
	for i, a := range pd.Action {
		expr := fmt.Sprintf("PlanDefinition.action[%d]", i)
		act := Action{Title: a.Title, Description: a.Description, WorkingDay: t.WorkingDay, GoalIDs: a.GoalID, Count: 1}
		if len(a.Code) > 0 && len(a.Code[0].Coding) > 0 {
			act.Code, act.CodeSystem = a.Code[0].Coding[0].Code, a.Code[0].Coding[0].System
		}
		if act.Code == "" {
			bad(expr+".code", "Chaque action a un code", "Every action has a code")
		} else if j, dup := seen[act.Code]; dup {
			bad(expr+".code", fmt.Sprintf("Le code %q est déjà celui de l'action %d", act.Code, j), fmt.Sprintf("Code %q is already that of action %d", act.Code, j))
		}
		seen[act.Code] = i
		elapsedAt := ""
		for j, e := range a.Extension {
			switch e.URL {
			case ExtWorkingDay:
				act.WorkingDay = parseDayRule(e, fmt.Sprintf("%s.extension[%d]", expr, j), bad)
			case ExtClosesRefusal:
				act.ClosesOnRefusal = e.ValueBoolean != nil && *e.ValueBoolean
			case ExtTeamAssignment:
				act.assignment = parseAssignment(e, fmt.Sprintf("%s.extension[%d]", expr, j), bad)
			case ExtReminder:
				d, ok := days(e.ValueDuration)
				if !ok {
					bad(fmt.Sprintf("%s.extension[%d].value", expr, j), "Le rappel se compte en jours (d) ou semaines (wk) entiers avant l'échéance",
						"A reminder is counted in whole days (d) or weeks (wk) before the due date")
				}
				act.Reminder, act.ReminderDays = true, d
			case ExtElapsed:
				elapsedAt = fmt.Sprintf("%s.extension[%d]", expr, j)
				act.Elapsed = parseElapsed(e, elapsedAt, fmt.Sprintf("Action « %s »", act.Code), fmt.Sprintf("Action %q", act.Code), bad)
			}
		}
		for _, g := range a.GoalID {
			if !goals[g] {
				bad(expr+".goalId", fmt.Sprintf("Objectif inconnu : %s", g), fmt.Sprintf("Unknown goal: %s", g))
			}
		}
		if len(a.Participant) != 1 {
			bad(expr+".participant", "Une action a un seul participant", "An action has one participant")
		} else {
			p := a.Participant[0]
			switch {
			case p.Type == "patient":
			case p.Role != nil && len(p.Role.Coding) > 0 && p.Role.Coding[0].System == SystemTeamRole:
				act.Role = p.Role.Coding[0].Code
			default:
				bad(expr+".participant[0].role", "Le participant d'une action est le patient ou un rôle d'équipe", "An action's participant is the patient or a team role")
			}
		}
		for j, c := range a.Condition {
			cexpr := fmt.Sprintf("%s.condition[%d].expression", expr, j)
			if j > 0 {
				bad(cexpr, "Une seule condition par action (combiner avec and/or)", "One condition per action (combine with and/or)")
				break
			}
			if c.Expression.Language != RuleLanguage {
				bad(cexpr+".language", "Langage de règle attendu : "+RuleLanguage, "Rule language expected: "+RuleLanguage)
				continue
			}
			r, err := ParseRule(c.Expression.Expression)
			if err != nil {
				bad(cexpr+".expression", "Règle illisible : "+err.Error(), "Unreadable rule: "+err.Error())
				continue
			}
			for _, v := range r.Variables() {
				if !vars[v] {
					bad(cexpr+".expression", fmt.Sprintf("Variable %%%s non déclarée (extension pathway-variable)", v),
						fmt.Sprintf("Variable %%%s is not declared (extension pathway-variable)", v))
				}
			}
			act.Condition, act.ConditionText = r, c.Expression.Description
		}
		switch {
		case a.TimingRange != nil:
			act.Low, act.High = rangeDays(a.TimingRange, expr+".timing.ofType(Range)", bad)
			act.Timing, _ = json.Marshal(a.TimingRange)
		case len(a.TimingTiming) > 0:
			// Compact, so that a version reads the same from the uploaded
			// file as from the store, whatever its layout.
			var buf bytes.Buffer
			if json.Compact(&buf, a.TimingTiming) == nil {
				act.Timing = buf.Bytes()
			} else {
				act.Timing = a.TimingTiming
			}
			parseTiming(&act, a.TimingTiming, expr+".timing.ofType(Timing)", bad)
		default:
			bad(expr+".timing[x]", "Échéance manquante : timingRange ou timingTiming", "Timing missing: timingRange or timingTiming")
		}
		switch {
		case act.Elapsed == "" && elapsedAt == "" && t.Elapsed != "" && !(act.ForPatient() && t.Elapsed == ElapsedMissed):
			// The template's default; a default of missed leaves the
			// patient's own actions to theirs (skip): they have no task.
			act.Elapsed = t.Elapsed
		case act.Elapsed == "" && elapsedAt == "":
			act.Elapsed = DefaultElapsed(act)
		case act.Elapsed == ElapsedMissed && act.ForPatient():
			bad(elapsedAt+".value", fmt.Sprintf("Action « %s » : les actions du patient n'ont pas de tâche à enregistrer manquée : skip", act.Code),
				fmt.Sprintf("Action %q: the patient's own actions have no task to record missed: skip", act.Code))
		}
		if act.Frequency > 0 && !act.ForPatient() {
			bad(expr+".timing.ofType(Timing).repeat.frequency", "Une fréquence par période ne vaut que pour les actions du patient ; pour des tâches, utiliser count et period",
				"A frequency per period is for the patient's own actions; tasks use count and period")
		}
		t.Actions = append(t.Actions, act)
	}
	checks := map[string]bool{}
	for i, c := range t.Checks {
		expr := fmt.Sprintf("PlanDefinition.extension(%q)[%d]", ExtCheck, i)
		if checks[c.Code] {
			bad(expr, fmt.Sprintf("Le contrôle %q est déclaré deux fois", c.Code), fmt.Sprintf("Check %q is declared twice", c.Code))
		}
		checks[c.Code] = true
		if a, ok := t.Action(c.ActionCompleted); c.ActionCompleted != "" && (!ok || a.ForPatient()) {
			bad(expr, fmt.Sprintf("Le contrôle %q porte sur une action inconnue ou sans tâche : %s", c.Code, c.ActionCompleted),
				fmt.Sprintf("Check %q names an unknown action or one without tasks: %s", c.Code, c.ActionCompleted))
		}
	}
	rules := map[string]bool{}
	for i, r := range t.AlertRules {
		if r.Code != "" && rules[r.Code] {
			bad(alertExpr[i], fmt.Sprintf("Règle d'alerte « %s » : code déjà celui d'une autre règle", r.Code),
				fmt.Sprintf("Alert rule %q: the code is already another rule's", r.Code))
		}
		rules[r.Code] = true
		for _, code := range r.Actions {
			if a, ok := t.Action(code); !ok || a.ForPatient() {
				bad(alertExpr[i], fmt.Sprintf("Règle d'alerte « %s » : action inconnue ou sans tâche : %s", r.Code, code),
					fmt.Sprintf("Alert rule %q: unknown action or one without tasks: %s", r.Code, code))
			}
		}
	}
	if len(pd.Action) == 0 {
		bad("PlanDefinition.action", "Un modèle a au moins une action", "A template has at least one action")
	}
	if len(issues) > 0 {
		return nil, issues
	}
	return t, nil
}

func parseCheck(e extJSON, expr string, bad func(string, string, string)) Check {
	var c Check
	offset := false
	for _, s := range e.Extension {
		switch {
		case s.URL == "code" && s.ValueID != nil:
			c.Code = *s.ValueID
		case s.URL == "offset":
			d, ok := days(s.ValueDuration)
			if !ok {
				bad(expr, "Le délai d'un contrôle se compte en jours (d) ou semaines (wk) entiers après J0",
					"A check's offset is counted in whole days (d) or weeks (wk) after D0")
			}
			c.OffsetDays, offset = d, true
		case s.URL == "actionCompleted" && s.ValueCode != nil:
			c.ActionCompleted = *s.ValueCode
		case s.URL == "description" && s.ValueString != nil:
			c.Description = *s.ValueString
		}
	}
	if c.Code == "" || !offset || c.ActionCompleted == "" {
		bad(expr, "Un contrôle a un code, un délai (offset) et une action à vérifier (actionCompleted)",
			"A check has a code, an offset and an action to verify (actionCompleted)")
	}
	return c
}

func parseDayRule(e extJSON, expr string, bad func(string, string, string)) DayRule {
	if e.ValueCode != nil {
		switch r := DayRule(*e.ValueCode); r {
		case NextWorkingDay, PreviousWorkingDay, NoDayChange:
			return r
		}
	}
	bad(expr+".value", "Règle de jour ouvrable inconnue", "Unknown working-day rule")
	return NoDayChange
}

func parseEligibility(e extJSON, expr string, bad func(string, string, string)) Eligibility {
	el := Eligibility{}
	for i, s := range e.Extension {
		str := func() string {
			switch {
			case s.ValueString != nil:
				return *s.ValueString
			case s.ValueCode != nil:
				return *s.ValueCode
			}
			bad(fmt.Sprintf("%s.extension[%d]", expr, i), "Valeur manquante", "Value missing")
			return ""
		}
		switch s.URL {
		case "diagnosisPrefix":
			el.DiagnosisPrefixes = append(el.DiagnosisPrefixes, normICD(str()))
		case "dischargeDisposition":
			el.Dispositions = append(el.Dispositions, str())
		case "minimumAge":
			if s.ValueUnsignedInt != nil {
				el.MinimumAge = *s.ValueUnsignedInt
			}
		case "confirmUnitSpecialty":
			if s.ValueCoding != nil {
				el.ConfirmUnitSpecialties = append(el.ConfirmUnitSpecialties, Coding{System: s.ValueCoding.System, Code: s.ValueCoding.Code})
			}
		case "excludedClass":
			el.ExcludedClasses = append(el.ExcludedClasses, str())
		case "excludeElective":
			el.ExcludeElective = s.ValueBoolean != nil && *s.ValueBoolean
		case "excludedModeSortie":
			el.ExcludedModesSortie = append(el.ExcludedModesSortie, str())
		}
	}
	return el
}

// days converts a duration quantity to whole days (d or wk).
func days(q *quantityJSON) (int, bool) {
	if q == nil || q.Value == nil {
		return 0, false
	}
	v := *q.Value
	unit := q.Code
	if unit == "" {
		unit = q.Unit
	}
	switch unit {
	case "d":
	case "wk":
		v *= 7
	default:
		return 0, false
	}
	if v != float64(int(v)) || v < 0 {
		return 0, false
	}
	return int(v), true
}

func rangeDays(r *rangeJSON, expr string, bad func(string, string, string)) (int, int) {
	lo, hi := 0, 0
	ok := true
	if r.Low != nil {
		if lo, ok = days(r.Low); !ok {
			bad(expr+".low", "Bornes en jours (d) ou semaines (wk) entières, positives", "Bounds in whole, non-negative days (d) or weeks (wk)")
		}
	}
	if r.High == nil {
		bad(expr+".high", "L'échéance (high) est requise", "The due bound (high) is required")
		return lo, lo
	}
	if hi, ok = days(r.High); !ok {
		bad(expr+".high", "Bornes en jours (d) ou semaines (wk) entières, positives", "Bounds in whole, non-negative days (d) or weeks (wk)")
	}
	if hi < lo {
		bad(expr, "high précède low", "high is before low")
	}
	return lo, hi
}

func parseTiming(a *Action, raw json.RawMessage, expr string, bad func(string, string, string)) {
	var t timingJSON
	if err := json.Unmarshal(raw, &t); err != nil || t.Repeat == nil || t.Repeat.BoundsRange == nil {
		bad(expr+".repeat.boundsRange", "Une échéance répétée donne la fenêtre de sa première occurrence (repeat.boundsRange)",
			"A repeated timing gives the window of its first occurrence (repeat.boundsRange)")
		return
	}
	r := t.Repeat
	a.Low, a.High = rangeDays(r.BoundsRange, expr+".repeat.boundsRange", bad)
	if r.Frequency != nil {
		a.Frequency = *r.Frequency
	}
	if r.Count != nil {
		if *r.Count < 1 || *r.Count > 400 {
			bad(expr+".repeat.count", "count de 1 à 400", "count from 1 to 400")
		}
		a.Count = *r.Count
	}
	if a.Count > 1 || r.Period != nil {
		if r.Period == nil {
			bad(expr+".repeat.period", "Une série a une période", "A series has a period")
			return
		}
		d, ok := days(&quantityJSON{Value: r.Period, Code: r.PeriodUnit})
		if !ok || d == 0 {
			bad(expr+".repeat.periodUnit", "Période en jours (d) ou semaines (wk) entières", "Period in whole days (d) or weeks (wk)")
		}
		a.PeriodDays = d
	}
}
