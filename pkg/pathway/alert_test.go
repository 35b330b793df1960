package pathway_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/pathway"
)

// withRule returns the shipped heart-failure template with its alert rule
// code changed by edit (nil: removed).
func withRule(t *testing.T, code string, edit func(subs []any) []any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(shipped(t)["PlanDefinition/hf-post-discharge.json"], &m); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range m["extension"].([]any) {
		em := e.(map[string]any)
		if em["url"] != pathway.ExtAlertRule {
			continue
		}
		subs := em["extension"].([]any)
		for _, s := range subs {
			if sm := s.(map[string]any); sm["url"] == "code" && sm["valueId"] == code {
				em["extension"], found = edit(subs), true
				break
			}
		}
	}
	if !found {
		t.Fatalf("no rule %s", code)
	}
	b, _ := json.Marshal(m)
	return b
}

func drop(url string) func([]any) []any {
	return func(subs []any) []any {
		var out []any
		for _, s := range subs {
			if s.(map[string]any)["url"] != url {
				out = append(out, s)
			}
		}
		return out
	}
}

func set(url string, value map[string]any) func([]any) []any {
	return func(subs []any) []any {
		out := drop(url)(subs)
		v := map[string]any{"url": url}
		for k, x := range value {
			v[k] = x
		}
		return append(out, v)
	}
}

func qty(v float64, code string) map[string]any {
	return map[string]any{"value": v, "unit": code, "system": "http://unitsofmeasure.org", "code": code}
}

// TestParseAlertRules: Parse reads every alert rule as the worklist
// applies it, and refuses, naming the rule, one it could not evaluate.
func TestParseAlertRules(t *testing.T) {
	cases := []struct {
		name, rule string
		edit       func([]any) []any
		want       string // in the English text of an issue
	}{
		{"range without threshold", "heart-rate", func(s []any) []any { return drop("high")(drop("low")(s)) }, "a range rule has a low threshold"},
		{"low above high", "heart-rate", set("low", map[string]any{"valueQuantity": qty(120, "/min")}), "the low threshold is above the high one"},
		{"rise without delta", "weight-gain", drop("delta"), "a rise rule has a positive delta and a window"},
		{"window in months", "weight-missing", set("window", map[string]any{"valueDuration": qty(1, "mo")}), "a positive duration"},
		{"missing without observation", "weight-missing", drop("observation"), "names the observation code it watches"},
		{"worsening with one rank", "nyha-worsening", func(s []any) []any {
			var out []any
			n := 0
			for _, x := range s {
				if x.(map[string]any)["url"] == "ordinal" {
					if n++; n > 1 {
						continue
					}
				}
				out = append(out, x)
			}
			return out
		}, "gives its scale"},
		{"half a rank", "nyha-worsening", set("delta", map[string]any{"valueQuantity": qty(1.5, "1")}), "whole ranks"},
		{"missed visit of an unknown action", "missed-visit", set("action", map[string]any{"valueCode": "home-visit"}), "unknown action or one without tasks: home-visit"},
		{"missed visit of the patient's own action", "missed-visit", set("action", map[string]any{"valueCode": "self-weighing"}), "unknown action or one without tasks: self-weighing"},
		{"response in weeks", "systolic-low", set("respondWithin", map[string]any{"valueDuration": qty(1, "wk")}), "response time in whole hours"},
		{"no role", "systolic-low", drop("role"), "at least one role"},
		{"unknown element", "systolic-low", set("threshold", map[string]any{"valueQuantity": qty(90, "mm[Hg]")}), "unknown or mistyped rule element: threshold"},
		{"duplicate code", "heart-rate", set("code", map[string]any{"valueId": "systolic-low"}), "the code is already another rule's"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tpl, issues := pathway.Parse(withRule(t, c.rule, c.edit))
			if tpl != nil {
				t.Fatal("the template was read")
			}
			for _, i := range issues {
				if strings.Contains(i.EN, c.want) && strings.HasPrefix(i.Expression, "PlanDefinition.extension[") &&
					strings.HasPrefix(i.FR, "Règle d'alerte « ") && strings.HasPrefix(i.EN, "Alert rule \"") {
					return
				}
			}
			t.Errorf("no issue %q naming the rule: %+v", c.want, issues)
		})
	}

	// The rule kept with its numbers, and the review's due.
	tpl, issues := pathway.Parse(withRule(t, "systolic-low", set("respondWithin", map[string]any{"valueDuration": qty(4, "h")})))
	if len(issues) > 0 {
		t.Fatal(issues)
	}
	r, _ := tpl.AlertRule("systolic-low")
	now := time.Date(2025, 3, 14, 22, 0, 0, 0, time.UTC)
	if got := r.DueAt(now); !got.Equal(now.Add(4 * time.Hour)) {
		t.Errorf("due in 4 h: %s", got)
	}
	// 1 d: the end of the next day in Paris, where 23:30 UTC is already
	// tomorrow.
	gp, _ := tpl.AlertRule("weight-missing")
	if got := gp.DueAt(now.Add(90 * time.Minute)).UTC().Format(time.RFC3339); got != "2025-03-16T22:59:59Z" {
		t.Errorf("due D+1: %s", got)
	}
	nyha, _ := tpl.AlertRule("nyha-worsening")
	if nyha.Rank("http://snomed.info/sct", "420913000") != 2 || nyha.Rank("http://snomed.info/sct", "x") != -1 {
		t.Errorf("ranks %v", nyha.Ordinal)
	}
}

// TestParseAssignment: the team-assignment delays, template-wide and per
// action, and a delay teams could not apply refused.
func TestParseAssignment(t *testing.T) {
	var m map[string]any
	if err := json.Unmarshal(shipped(t)["PlanDefinition/hf-post-discharge.json"], &m); err != nil {
		t.Fatal(err)
	}
	for _, e := range m["extension"].([]any) {
		if em := e.(map[string]any); em["url"] == pathway.ExtTeamAssignment {
			em["extension"] = []any{map[string]any{"url": "acceptance", "valueDuration": qty(2, "mo")}}
		}
	}
	b, _ := json.Marshal(m)
	_, issues := pathway.Parse(b)
	if len(issues) != 1 || !strings.Contains(issues[0].EN, "Assignment delay") {
		t.Errorf("a delay in months: %+v", issues)
	}
}
