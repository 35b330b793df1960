package pathway_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
)

// editHF returns the shipped heart-failure template changed by edit.
func editHF(t *testing.T, edit func(m map[string]any)) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(shipped(t)["PlanDefinition/hf-post-discharge.json"], &m); err != nil {
		t.Fatal(err)
	}
	edit(m)
	b, _ := json.Marshal(m)
	return b
}

func actionOf(m map[string]any, code string) map[string]any {
	for _, a := range m["action"].([]any) {
		am := a.(map[string]any)
		if am["code"].([]any)[0].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] == code {
			return am
		}
	}
	return nil
}

// withoutElapsed removes every extension elapsed-occurrence of m.
func withoutElapsed(m map[string]any) {
	strip := func(o map[string]any) {
		var keep []any
		for _, e := range asList(o["extension"]) {
			if e.(map[string]any)["url"] != pathway.ExtElapsed {
				keep = append(keep, e)
			}
		}
		o["extension"] = keep
	}
	strip(m)
	for _, a := range m["action"].([]any) {
		strip(a.(map[string]any))
	}
}

func asList(v any) []any { l, _ := v.([]any); return l }

func setElapsed(o map[string]any, rule string) {
	o["extension"] = append(asList(o["extension"]), map[string]any{"url": pathway.ExtElapsed, "valueCode": rule})
}

// TestParseElapsed: the rule for occurrences already past, as the shipped
// templates say it, by default, per action, and refused when unknown,
// naming the action.
func TestParseElapsed(t *testing.T) {
	rules := func(b []byte) map[string]pathway.Elapsed {
		t.Helper()
		tpl, issues := pathway.Parse(b)
		if len(issues) > 0 {
			t.Fatal(issues)
		}
		out := map[string]pathway.Elapsed{}
		for _, a := range tpl.Actions {
			out[a.Code] = a.Elapsed
		}
		return out
	}
	for f, b := range shipped(t) {
		for code, r := range rules(b) {
			want := pathway.ElapsedMissed
			if code == "self-weighing" {
				want = pathway.ElapsedSkip
			}
			if r != want {
				t.Errorf("%s %s: %q, want %q", f, code, r, want)
			}
		}
	}
	// A template that says nothing: a professional's occurrences missed,
	// the patient's own skipped.
	got := rules(editHF(t, withoutElapsed))
	if got["gp-visit"] != pathway.ElapsedMissed || got["self-weighing"] != pathway.ElapsedSkip {
		t.Errorf("defaults %v", got)
	}
	// The template's default skip, one action's own missed.
	got = rules(editHF(t, func(m map[string]any) {
		withoutElapsed(m)
		setElapsed(m, "skip")
		setElapsed(actionOf(m, "first-contact"), "missed")
	}))
	if got["gp-visit"] != pathway.ElapsedSkip || got["first-contact"] != pathway.ElapsedMissed || got["self-weighing"] != pathway.ElapsedSkip {
		t.Errorf("template skip, first contact missed: %v", got)
	}

	refused := []struct {
		name string
		edit func(m map[string]any)
		want string // in the English text
		fr   string // in the French text
		expr string // prefix of the expression
	}{
		{"unknown on an action", func(m map[string]any) { setElapsed(actionOf(m, "gp-visit"), "postpone") },
			`Action "gp-visit": unknown rule for occurrences already past: "postpone" (skip, missed)`, "Action « gp-visit »", "PlanDefinition.action[2].extension["},
		{"unknown on the template", func(m map[string]any) { withoutElapsed(m); setElapsed(m, "later") },
			`Template: unknown rule for occurrences already past: "later"`, "Modèle :", "PlanDefinition.extension["},
		{"missed on the patient's own action", func(m map[string]any) { withoutElapsed(m); setElapsed(actionOf(m, "self-weighing"), "missed") },
			`Action "self-weighing": the patient's own actions have no task to record missed`, "Action « self-weighing »", "PlanDefinition.action["},
	}
	for _, c := range refused {
		t.Run(c.name, func(t *testing.T) {
			tpl, issues := pathway.Parse(editHF(t, c.edit))
			if tpl != nil {
				t.Fatal("the template was read")
			}
			for _, i := range issues {
				if strings.Contains(i.EN, c.want) && strings.HasPrefix(i.Expression, c.expr) && strings.HasPrefix(i.FR, c.fr) {
					return
				}
			}
			t.Errorf("no issue %q at %s: %+v", c.want, c.expr, issues)
		})
	}
}

// TestLate: a discharge is late when an occurrence of an unconditional
// action with tasks had its window over when Passerelle learnt of it;
// Split keeps an occurrence whose window is still open.
func TestLate(t *testing.T) {
	tpl, issues := pathway.Parse(shipped(t)["PlanDefinition/hf-post-discharge.json"])
	if len(issues) > 0 {
		t.Fatal(issues)
	}
	d0 := time.Date(2025, 2, 22, 10, 0, 0, 0, clock.Paris)
	cases := []struct {
		name string
		now  time.Time
		late bool
	}{
		{"the same day", d0.Add(2 * time.Hour), false},
		// The first contact (D+1 … D+3) is due by the end of Tuesday 25.
		{"D+3, its last hour", time.Date(2025, 2, 25, 23, 0, 0, 0, clock.Paris), false},
		{"D+4", time.Date(2025, 2, 26, 0, 0, 1, 0, clock.Paris), true},
		{"D+20", time.Date(2025, 3, 14, 15, 30, 0, 0, clock.Paris), true},
	}
	for _, c := range cases {
		if got := tpl.Late(d0, c.now); got != c.late {
			t.Errorf("%s: late = %v, want %v", c.name, got, c.late)
		}
	}
	nurse, _ := tpl.Action("nurse-follow-up")
	open, past := pathway.Split(nurse.Windows(d0), time.Date(2025, 3, 14, 15, 30, 0, 0, clock.Paris))
	if len(past) != 1 || len(open) != 6 || open[0].Seq != 2 || !open[0].Start.Before(time.Date(2025, 3, 14, 0, 0, 0, 0, clock.Paris)) {
		t.Errorf("split: %d past, %d open, first open %+v", len(past), len(open), open)
	}
}
