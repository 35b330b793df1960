package pathway_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/directory"
)

// api serves the template routes as login, authenticated by the
// directory as the platform's middleware does.
func (r *rig) api(login string) *httptest.Server {
	dir := &directory.Resolver{Store: r.s}
	mux := http.NewServeMux()
	r.svc.Register(mux, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			a, err := dir.Person(req.Context(), tenant, login)
			if err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			h.ServeHTTP(w, req.WithContext(access.WithActor(req.Context(), a)))
		})
	})
	srv := httptest.NewServer(mux)
	r.t.Cleanup(srv.Close)
	return srv
}

func shippedHF(t *testing.T) map[string]any {
	b, err := fs.ReadFile(fhirprofiles.FS(), "PlanDefinition/hf-post-discharge.json")
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return m
}

func post(t *testing.T, url string, body any) (int, map[string]any) {
	t.Helper()
	res, err := http.Post(url+"/fhir/PlanDefinition", "application/fhir+json", bytes.NewReader(mustJSON(body)))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("%d %s", res.StatusCode, b)
	}
	return res.StatusCode, m
}

// TestTemplateIsData: a CPTS's new version adds an action, a timing and a
// condition on a new variable; new episodes follow it with no Go change,
// the episode opened before keeps its version.
func TestTemplateIsData(t *testing.T) {
	r := newRig(t)
	srv := r.api("coord.cpts")
	old := r.patient("1948-03-15")
	r.encounter(hfDischarge(old, uuid.NewString(), paris("2025-03-14T15:00")))
	oldView := r.only(old)

	tpl := shippedHF(t)
	tpl["extension"] = append(tpl["extension"].([]any), map[string]any{
		"url": "https://passerelle.health/fhir/StructureDefinition/pathway-variable",
		"extension": []any{
			map[string]any{"url": "name", "valueId": "weight"},
			map[string]any{"url": "code", "valueCoding": map[string]any{"system": "http://loinc.org", "code": "29463-7"}},
		}})
	day := func(v int) map[string]any {
		return map[string]any{"value": v, "unit": "d", "system": "http://unitsofmeasure.org", "code": "d"}
	}
	acts := tpl["action"].([]any)
	for _, a := range acts {
		am := a.(map[string]any)
		if am["code"].([]any)[0].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] == "gp-visit" {
			am["timingRange"] = map[string]any{"low": day(0), "high": day(5)} // a new timing
		}
	}
	tpl["action"] = append(acts, map[string]any{ // a new action, with a new condition
		"extension": []any{map[string]any{"url": "https://passerelle.health/fhir/StructureDefinition/working-day-rule", "valueCode": "none"}},
		"title":     "Appel de suivi du poids",
		"code": []any{map[string]any{"coding": []any{map[string]any{
			"system": "https://passerelle.health/fhir/CodeSystem/pathway-action", "code": "weight-call"}}}},
		"condition": []any{map[string]any{"kind": "applicability", "expression": map[string]any{
			"language": "text/x-passerelle-rule", "expression": "%weight >= 90 and %nyha != '420300004'"}}},
		"timingTiming": map[string]any{"repeat": map[string]any{"boundsRange": map[string]any{"low": day(2), "high": day(4)},
			"count": 3, "period": 3, "periodUnit": "d"}},
		"participant": []any{map[string]any{"type": "practitioner", "role": map[string]any{"coding": []any{map[string]any{
			"system": "https://passerelle.health/fhir/CodeSystem/team-role", "code": "nurse"}}}}},
	})
	delete(tpl, "id")
	status, stored := post(t, srv.URL, tpl)
	if status != http.StatusOK || stored["version"] != "2" || stored["id"] != "hf-post-discharge" {
		t.Fatalf("upload: %d %v %v", status, stored["version"], stored["id"])
	}

	p := r.patient("1950-01-01")
	r.encounter(hfDischarge(p, uuid.NewString(), paris("2025-03-14T15:00")))
	v := r.only(p)
	if got := v.cp["instantiatesCanonical"].([]any)[0]; got != "https://passerelle.health/fhir/PlanDefinition/hf-post-discharge|2" {
		t.Fatalf("new episode instantiates %v", got)
	}
	if got := due(byCode(v.tasks, "gp-visit")[0]); got != "2025-03-19T23:59:59+01:00" {
		t.Errorf("gp due %s, want D+5", got)
	}
	r.observe(p, paris("2025-03-16T10:00"), "88020-3", nyha("421704003"))
	r.observe(p, paris("2025-03-16T10:05"), "29463-7", map[string]any{"valueQuantity": map[string]any{"value": 95.5, "unit": "kg"}})
	calls := byCode(r.only(p).tasks, "weight-call")
	// D+2…D+4, D+5…D+7, D+8…D+10; rule none: Sunday 16 March stays.
	if got := windows(calls); len(got) != 3 || got[0].end != "2025-03-18T23:59:59+01:00" || got[2].end != "2025-03-24T23:59:59+01:00" {
		t.Errorf("weight calls %v", got)
	}

	// The episode opened before follows version 1, whatever comes.
	r.observe(old, paris("2025-03-16T10:05"), "29463-7", map[string]any{"valueQuantity": map[string]any{"value": 120, "unit": "kg"}})
	after := r.only(old)
	if got := after.cp["instantiatesCanonical"].([]any)[0]; !strings.HasSuffix(got.(string), "|1") || len(after.tasks) != len(oldView.tasks) {
		t.Errorf("old episode changed: %v, %d tasks", got, len(after.tasks))
	}
	if got := due(byCode(after.tasks, "gp-visit")[0]); got != "2025-03-21T23:59:59+01:00" {
		t.Errorf("old gp due %s", got)
	}
}

func TestInvalidTemplateUpload(t *testing.T) {
	r := newRig(t)
	srv := r.api("coord.cpts")
	cases := []struct {
		name   string
		mutate func(m map[string]any)
		expr   string
	}{
		{"role outside the team roles", func(m map[string]any) {
			a := m["action"].([]any)[1].(map[string]any)
			a["participant"].([]any)[0].(map[string]any)["role"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"] = "physio"
		}, "PlanDefinition.action[1].participant[0].role"},
		{"undeclared rule variable", func(m map[string]any) {
			a := m["action"].([]any)[5].(map[string]any)
			a["condition"].([]any)[0].(map[string]any)["expression"].(map[string]any)["expression"] = "%lvef < 40"
		}, "PlanDefinition.action[5].condition[0].expression.expression"},
		{"period in months", func(m map[string]any) {
			a := m["action"].([]any)[4].(map[string]any)
			a["timingTiming"].(map[string]any)["repeat"].(map[string]any)["periodUnit"] = "mo"
		}, "PlanDefinition.action[4].timing.ofType(Timing).repeat.periodUnit"},
		{"no eligibility", func(m map[string]any) { m["extension"] = m["extension"].([]any)[1:] }, "PlanDefinition.extension"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := shippedHF(t)
			delete(m, "id")
			c.mutate(m)
			status, oo := post(t, srv.URL, m)
			if status != http.StatusBadRequest || oo["resourceType"] != "OperationOutcome" {
				t.Fatalf("%d %v", status, oo)
			}
			var exprs []string
			for _, i := range oo["issue"].([]any) {
				for _, e := range i.(map[string]any)["expression"].([]any) {
					exprs = append(exprs, e.(string))
				}
			}
			if !slices.ContainsFunc(exprs, func(e string) bool { return strings.HasPrefix(e, c.expr) }) {
				t.Errorf("expressions %v, want %s", exprs, c.expr)
			}
		})
	}
	// Nothing was stored: the shipped version is still the current one.
	res, err := r.s.Read(r.ctx, "PlanDefinition", "hf-post-discharge")
	if err != nil || res.Version != 1 {
		t.Errorf("template version %d (%v)", res.Version, err)
	}
	// Only the coordinator manages templates.
	if status, _ := post(t, r.api("ide.martin").URL, shippedHF(t)); status != http.StatusForbidden {
		t.Errorf("nurse upload: %d", status)
	}
}

// TestUploadRefusesUnreadableAlertRule: an alert rule the profile accepts
// (its elements are all optional there) but the worklist could not
// evaluate is refused at upload, with an OperationOutcome naming the rule
// and where it is, rather than left out at the next measurement.
func TestUploadRefusesUnreadableAlertRule(t *testing.T) {
	r := newRig(t)
	srv := r.api("coord.cpts")
	// rule returns the sub-extensions of the alert rule with code, and its
	// index among the template's extensions.
	rule := func(m map[string]any, code string) (int, map[string]any) {
		for i, e := range m["extension"].([]any) {
			em := e.(map[string]any)
			if em["url"] != "https://passerelle.health/fhir/StructureDefinition/alert-rule" {
				continue
			}
			for _, s := range em["extension"].([]any) {
				if sm := s.(map[string]any); sm["url"] == "code" && sm["valueId"] == code {
					return i, em
				}
			}
		}
		t.Fatalf("no alert rule %s in the shipped template", code)
		return 0, nil
	}
	without := func(em map[string]any, url string) {
		var kept []any
		for _, s := range em["extension"].([]any) {
			if s.(map[string]any)["url"] != url {
				kept = append(kept, s)
			}
		}
		em["extension"] = kept
	}
	cases := []struct {
		name, code string
		mutate     func(em map[string]any)
	}{
		{"range rule without a threshold", "systolic-low", func(em map[string]any) { without(em, "low") }},
		{"rise rule without a window", "weight-gain", func(em map[string]any) { without(em, "window") }},
		{"missed visit of an unknown action", "missed-visit", func(em map[string]any) {
			em["extension"] = append(em["extension"].([]any), map[string]any{"url": "action", "valueCode": "home-visit"})
		}},
		{"response time in weeks", "weight-missing", func(em map[string]any) {
			without(em, "respondWithin")
			em["extension"] = append(em["extension"].([]any), map[string]any{"url": "respondWithin",
				"valueDuration": map[string]any{"value": 1, "unit": "wk", "system": "http://unitsofmeasure.org", "code": "wk"}})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := shippedHF(t)
			delete(m, "id")
			i, em := rule(m, c.code)
			c.mutate(em)
			status, oo := post(t, srv.URL, m)
			if status != http.StatusBadRequest || oo["resourceType"] != "OperationOutcome" {
				t.Fatalf("upload: %d %v", status, oo)
			}
			want := fmt.Sprintf("PlanDefinition.extension[%d]", i)
			found := false
			for _, is := range oo["issue"].([]any) {
				im := is.(map[string]any)
				text, _ := im["details"].(map[string]any)["text"].(string)
				for _, e := range im["expression"].([]any) {
					if strings.HasPrefix(e.(string), want) && strings.Contains(text, "« "+c.code+" »") && strings.Contains(text, fmt.Sprintf("%q", c.code)) {
						found = true
					}
				}
			}
			if !found {
				t.Errorf("no issue at %s naming rule %s in French and English: %v", want, c.code, oo["issue"])
			}
		})
	}
	// Nothing was stored.
	if res, err := r.s.Read(r.ctx, "PlanDefinition", "hf-post-discharge"); err != nil || res.Version != 1 {
		t.Errorf("template version %d (%v)", res.Version, err)
	}
}
