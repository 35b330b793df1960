package search

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/url"
	"slices"
	"sync"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/fhir/search/internal/fhirpath"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

var storedTypes = []string{
	"AuditEvent", "Bundle", "CarePlan", "CareTeam", "CodeSystem", "Communication",
	"Condition", "Consent", "DetectedIssue", "Device", "DocumentReference",
	"Encounter", "EpisodeOfCare", "Flag", "Goal", "Location", "Measure",
	"MeasureReport", "MessageHeader", "Observation", "Organization", "Patient",
	"PlanDefinition", "Practitioner", "PractitionerRole", "Provenance",
	"Questionnaire", "QuestionnaireResponse", "SearchParameter",
	"ServiceRequest", "StructureDefinition", "Task", "ValueSet",
}

func TestDefaultTypes(t *testing.T) {
	if got := Default().Types(); !slices.Equal(got, storedTypes) {
		t.Errorf("Types() = %v\nwant %v", got, storedTypes)
	}
}

// TestCoreExpressionsParse checks every kept expression of the committed
// core_params.json: it parses, prints back as written, and starts from its
// own resource type.
func TestCoreExpressionsParse(t *testing.T) {
	dec := json.NewDecoder(bytes.NewReader(coreJSON))
	dec.DisallowUnknownFields()
	var f coreFile
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	if len(f.Params) < 400 {
		t.Fatalf("only %d parameters", len(f.Params))
	}
	for _, d := range f.Params {
		e, err := fhirpath.Parse(d.Expression)
		if err != nil {
			t.Errorf("%s %s: %q: %v", d.Resource, d.Name, d.Expression, err)
			continue
		}
		if e.String() != d.Expression {
			t.Errorf("%s %s: %q prints as %q", d.Resource, d.Name, d.Expression, e.String())
		}
		if roots := e.Roots(); !slices.Equal(roots, []string{d.Resource}) {
			t.Errorf("%s %s: %q starts from %v", d.Resource, d.Name, d.Expression, roots)
		}
		if _, ok := kinds[d.Type]; !ok {
			t.Errorf("%s %s: type %q", d.Resource, d.Name, d.Type)
		}
		if d.URL == "" {
			t.Errorf("%s %s: no url", d.Resource, d.Name)
		}
		if d.Resource != AllTypes && !slices.Contains(storedTypes, d.Resource) {
			t.Errorf("%s %s: not a stored type", d.Resource, d.Name)
		}
	}
	for _, d := range f.Dropped {
		if d.Reason == "" {
			t.Errorf("dropped %s %s without a reason", d.Resource, d.Name)
		}
	}
}

func TestLookup(t *testing.T) {
	r := Default()
	tests := []struct {
		typ, name string
		kind      store.ParamKind
		ok        bool
	}{
		{"Patient", "identifier", store.KindToken, true},
		{"Patient", "_id", store.KindToken, true},
		{"Patient", "_lastUpdated", store.KindDate, true},
		{"Basic", "_id", "", false},
		{"Resource", "_id", store.KindToken, true},
		{"Task", "owner", store.KindReference, true},
		{"Task", "patient", store.KindReference, true},
		{"Task", "focus", store.KindReference, true},
		{"Observation", "code", store.KindToken, true},
		{"Observation", "date", store.KindDate, true},
		{"Patient", "family", store.KindString, true},
		{"ValueSet", "url", store.KindURI, true},
		{"Patient", "owner", "", false},
		{"Patient", "phonetic", "", false},
		{"Patient", "deceased", "", false},
		{"Patient", "_tag", "", false},
		{"Observation", "value-quantity", "", false},
	}
	for _, tt := range tests {
		d, ok := r.Lookup(tt.typ, tt.name)
		if ok != tt.ok || d.Kind != tt.kind {
			t.Errorf("Lookup(%s, %s) = %v %v, want %v %v", tt.typ, tt.name, d.Kind, ok, tt.kind, tt.ok)
		}
	}
	d, _ := r.Lookup("Task", "patient")
	want := Def{
		Resource:    "Task",
		Name:        "patient",
		Kind:        store.KindReference,
		URL:         "http://hl7.org/fhir/SearchParameter/Task-patient",
		Expression:  "Task.for.where(resolve() is Patient)",
		Targets:     []string{"Patient"},
		Description: "Search by patient",
	}
	if d.Resource != want.Resource || d.Name != want.Name || d.URL != want.URL || d.Expression != want.Expression ||
		!slices.Equal(d.Targets, want.Targets) || d.Description != want.Description {
		t.Errorf("Lookup(Task, patient) = %+v\nwant %+v", d, want)
	}
	if d, _ := r.Lookup("Task", "focus"); len(d.Targets) != 0 {
		t.Errorf("Task focus targets = %v, want none (any type)", d.Targets)
	}
	if d, _ := r.Lookup("Patient", "identifier"); d.Description != "A patient identifier" {
		t.Errorf("shared definition's description for Patient = %q", d.Description)
	}
}

func TestParams(t *testing.T) {
	r := Default()
	ps := r.Params("Task")
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = p.Name
		if p.Resource != "Task" && p.Resource != AllTypes {
			t.Errorf("Params(Task) holds %s %s", p.Resource, p.Name)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("Params(Task) not sorted: %v", names)
	}
	for _, n := range []string{"_id", "_lastUpdated", "owner", "status", "patient", "focus"} {
		if !slices.Contains(names, n) {
			t.Errorf("Params(Task) lacks %s: %v", n, names)
		}
	}
	// Callers may not change the registry through the slices they get.
	ps[0].Targets = append(ps[0].Targets, "X")
	d, _ := r.Lookup("Task", "owner")
	d.Targets[0] = "Changed"
	if d2, _ := r.Lookup("Task", "owner"); d2.Targets[0] == "Changed" {
		t.Error("Lookup shares Targets with the registry")
	}
	if got := r.Params("Basic"); got != nil {
		t.Errorf("Params(Basic) = %v, want nil for an unknown type", got)
	}
}

func TestAdd(t *testing.T) {
	r := Default()
	_, due := fixture(t, "sp-task-due")
	if err := r.Add(due); err != nil {
		t.Fatal(err)
	}
	// The same definition again replaces it.
	if err := r.Add(due); err != nil {
		t.Errorf("adding the same SearchParameter again: %v", err)
	}
	if d, ok := r.Lookup("Task", "due"); !ok || d.Kind != store.KindDate || d.Expression != "Task.restriction.period" {
		t.Errorf("Lookup(Task, due) = %+v, %v", d, ok)
	}
	if _, ok := Default().Lookup("Task", "due"); ok {
		t.Error("Add on one registry changed another")
	}

	multi := `{"resourceType":"SearchParameter","url":"https://passerelle.health/fhir/SearchParameter/x-subject","code":"x-subject","base":["Task","Flag"],"type":"reference",
		"expression":"Task.for | Flag.subject | Goal.whatever.exists()","target":["Patient"]}`
	if err := r.Add(json.RawMessage(multi)); err != nil {
		t.Fatal(err)
	}
	if d, _ := r.Lookup("Flag", "x-subject"); d.Expression != "Flag.subject" {
		t.Errorf("Flag x-subject expression = %q, want the Flag part only", d.Expression)
	}

	bad := []struct{ name, json string }{
		{"not JSON", `{`},
		{"not a SearchParameter", `{"resourceType":"Patient"}`},
		{"no url", `{"resourceType":"SearchParameter","code":"a","base":["Task"],"type":"token","expression":"Task.status"}`},
		{"bad code", `{"resourceType":"SearchParameter","url":"u","code":"a:b","base":["Task"],"type":"token","expression":"Task.status"}`},
		{"reserved code", `{"resourceType":"SearchParameter","url":"u","code":"_count","base":["Task"],"type":"token","expression":"Task.status"}`},
		{"unsupported type", `{"resourceType":"SearchParameter","url":"u","code":"a","base":["Task"],"type":"number","expression":"Task.status"}`},
		{"no base", `{"resourceType":"SearchParameter","url":"u","code":"a","type":"token","expression":"Task.status"}`},
		{"bad base", `{"resourceType":"SearchParameter","url":"u","code":"a","base":["task"],"type":"token","expression":"Task.status"}`},
		{"Resource base", `{"resourceType":"SearchParameter","url":"u","code":"a","base":["Resource"],"type":"token","expression":"Resource.id"}`},
		{"bad target", `{"resourceType":"SearchParameter","url":"u","code":"a","base":["Task"],"type":"reference","expression":"Task.owner","target":["x y"]}`},
		{"unsupported expression", `{"resourceType":"SearchParameter","url":"u","code":"a","base":["Task"],"type":"token","expression":"Task.input.exists()"}`},
		{"no part for the base", `{"resourceType":"SearchParameter","url":"u","code":"a","base":["Task"],"type":"token","expression":"Flag.status"}`},
		{"clash with a core parameter", `{"resourceType":"SearchParameter","url":"u","code":"period","base":["Task"],"type":"date","expression":"Task.restriction.period"}`},
		{"one good base, one clash", `{"resourceType":"SearchParameter","url":"u","code":"status","base":["Basic","Task"],"type":"token","expression":"Basic.code | Task.status"}`},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if err := r.Add(json.RawMessage(tt.json)); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("Add = %v, want an error wrapping store.ErrInvalid", err)
			}
		})
	}
	// A failed Add changes nothing.
	if _, ok := r.Lookup("Basic", "status"); ok {
		t.Error("a failed Add registered part of its bases")
	}
}

// TestConcurrentAdd runs Add beside Extract and ParseQuery for the race
// detector.
func TestConcurrentAdd(t *testing.T) {
	r := Default()
	typ, body := fixture(t, "task")
	_, due := fixture(t, "sp-task-due")
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			for range 50 {
				if _, err := r.Extract(typ, body); err != nil {
					t.Error(err)
				}
				_, _ = r.ParseQuery(typ, url.Values{"due": {"2025"}})
				_ = r.Params(typ)
			}
		})
	}
	wg.Go(func() {
		for range 50 {
			if err := r.Add(due); err != nil {
				t.Error(err)
			}
		}
	})
	wg.Wait()
}
