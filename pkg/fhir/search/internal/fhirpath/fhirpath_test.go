package fhirpath

import (
	"encoding/json"
	"os"
	"reflect"
	"slices"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct{ in, want string }{
		{"Patient.name.family", "Patient.name.family"},
		{"Patient.name.family | Practitioner.name.family", "Patient.name.family | Practitioner.name.family"},
		{"(Observation.effective as Period)", "(Observation.effective as Period)"},
		{"Observation.value as dateTime", "Observation.value as dateTime"},
		{"(Observation.value as CodeableConcept).text", "(Observation.value as CodeableConcept).text"},
		{"Condition.onset.as(dateTime)", "Condition.onset.as(dateTime)"},
		{"Observation.value.ofType(Quantity)", "Observation.value.ofType(Quantity)"},
		{"Task.for.where(resolve() is Patient)", "Task.for.where(resolve() is Patient)"},
		{"Patient.telecom.where(system='email')", "Patient.telecom.where(system = 'email')"},
		{"X.a.where(b.c = 'it\\'s')", `X.a.where(b.c = 'it\'s')`},
		{" ( ( Resource.id ) ) ", "((Resource.id))"},
	}
	for _, tt := range tests {
		e, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got := e.String(); got != tt.want {
			t.Errorf("Parse(%q).String() = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, in := range []string{
		"", "Patient.", ".name", "patient.name", "Bundle.entry[0].resource",
		"Patient.deceased.exists() and Patient.deceased != false",
		"Patient.name.first()", "Patient.x.where(resolve() is patient)",
		"Patient.x.where(resolve())", "Patient.x.where(a = 1)", "Patient.x.where(a = b)",
		"(Patient.x", "Patient.x)", "Patient.x as", "Patient.x as as",
		"Patient.x | ", "Patient.x.where(a = 'unterminated)", "Patient.x.where(a = '\\q')",
		"Patient.`name`", "Patient.x // comment", "Patient.x.as(T", "Patient.x.where(a.b() = 'x')",
		"Patient.x as T.u", "Patient\xff",
	} {
		if _, err := Parse(in); err == nil {
			t.Errorf("Parse(%q) succeeded, want an error", in)
		}
	}
	deep := ""
	for range maxDepth + 1 {
		deep += "("
	}
	if _, err := Parse(deep + "A.b"); err == nil {
		t.Error("deep nesting accepted")
	}
}

func TestParseFor(t *testing.T) {
	src := "AllergyIntolerance.code | (DeviceRequest.code as CodeableConcept) | Observation.code | Foo.bar[0] | Observation.component.code"
	e, err := ParseFor(src, "Observation")
	if err != nil {
		t.Fatal(err)
	}
	if got, want := e.String(), "Observation.code | Observation.component.code"; got != want {
		t.Errorf("ParseFor = %q, want %q", got, want)
	}
	if _, err := ParseFor(src, "Patient"); err == nil {
		t.Error("ParseFor with no part for the type succeeded")
	}
	if _, err := ParseFor(src, "Foo"); err == nil {
		t.Error("ParseFor with an unsupported part for the type succeeded")
	}
	if got, want := SplitUnion("A.b.where(c = 'x|y') | (B.c | B.d)|C"), []string{"A.b.where(c = 'x|y')", "(B.c | B.d)", "C"}; !slices.Equal(got, want) {
		t.Errorf("SplitUnion = %q, want %q", got, want)
	}
}

func TestEval(t *testing.T) {
	var obs map[string]any
	if err := json.Unmarshal([]byte(`{
		"resourceType": "Observation",
		"effectivePeriod": {"start": "2025-01-01"},
		"valueString": "texte",
		"subject": {"reference": "Patient/1"},
		"performer": [{"reference": "Practitioner/2"}, {"reference": "https://x/fhir/Patient/3"}, {"display": "no ref"}],
		"component": [{"valueCodeableConcept": {"text": "a"}}, {"valueQuantity": {"value": 1}}],
		"note": [null, {"text": "n"}],
		"extension": [{"url": "u1", "valueCode": "c1"}, {"url": "u2", "valueCode": "c2"}]
	}`), &obs); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		expr string
		want []Item
	}{
		{"Observation.effective", []Item{{Value: map[string]any{"start": "2025-01-01"}, Type: "Period"}}},
		{"(Observation.effective as Period).start", []Item{{Value: "2025-01-01"}}},
		{"Observation.effective as dateTime", nil},
		{"Observation.value as string", []Item{{Value: "texte", Type: "string"}}},
		{"Observation.value.as(string)", []Item{{Value: "texte", Type: "string"}}},
		{"(Observation.component.value as CodeableConcept).text", []Item{{Value: "a"}}},
		{"Observation.component.value.ofType(Quantity).value", []Item{{Value: float64(1)}}},
		{"Observation.subject.reference", []Item{{Value: "Patient/1"}}},
		{"Observation.performer.where(resolve() is Patient).reference", []Item{{Value: "https://x/fhir/Patient/3"}}},
		{"Observation.note.text", []Item{{Value: "n"}}},
		{"Observation.extension.where(url = 'u2').value", []Item{{Value: "c2", Type: "code"}}},
		{"Observation.subject | Observation.missing | Patient.name", []Item{{Value: map[string]any{"reference": "Patient/1"}}}},
		{"Resource.resourceType", []Item{{Value: "Observation"}}},
		{"Patient.subject", nil},
		// A path into a primitive yields nothing rather than failing.
		{"Observation.valueString.foo", nil},
		// "as" on an element that is not a choice keeps values of the right shape.
		{"Observation.subject as Reference", []Item{{Value: map[string]any{"reference": "Patient/1"}, Type: "Reference"}}},
		{"Observation.subject as string", nil},
	}
	for _, tt := range tests {
		e, err := Parse(tt.expr)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.expr, err)
			continue
		}
		if got := e.Eval("Observation", obs); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Eval(%q) = %#v, want %#v", tt.expr, got, tt.want)
		}
	}
}

func TestParseReference(t *testing.T) {
	tests := []struct {
		in      string
		typ, id string
		ok      bool
	}{
		{"Patient/123", "Patient", "123", true},
		{"Patient/123/_history/4", "Patient", "123", true},
		{"https://h.example/fhir/Patient/a.b-c", "Patient", "a.b-c", true},
		{"https://h.example/fhir/Patient/123/_history/4", "Patient", "123", true},
		{"https://h.example/Questionnaire/q1|2.0", "Questionnaire", "q1", true},
		{"http://hl7.org/fhir/StructureDefinition/Patient", "StructureDefinition", "Patient", true},
		{"Patient/123/", "Patient", "123", true},
		{"#contained", "", "", false},
		{"urn:uuid:5b9e9b8c-2f0e-4b5a-9d0c-0d8b7f2f8a11", "", "", false},
		{"123", "", "", false},
		{"patient/123", "", "", false},
		{"Patient/", "", "", false},
		{"Patient/a b", "", "", false},
		{"Patient/_history/1", "", "", false},
		{"", "", "", false},
	}
	for _, tt := range tests {
		typ, id, ok := ParseReference(tt.in)
		if typ != tt.typ || id != tt.id || ok != tt.ok {
			t.Errorf("ParseReference(%q) = %q, %q, %v; want %q, %q, %v", tt.in, typ, id, ok, tt.typ, tt.id, tt.ok)
		}
	}
}

// FuzzParse checks that the parser never panics, that what it accepts
// prints to a form that parses to the same print (parse-print-parse), and
// that evaluation on a sample resource does not panic either.
func FuzzParse(f *testing.F) {
	for _, s := range coreExpressions(f) {
		f.Add(s)
	}
	f.Add("Patient.telecom.where(system = 'email') | (Observation.value as CodeableConcept).text")
	var res map[string]any
	if err := json.Unmarshal([]byte(`{"resourceType":"Patient","name":[{"family":"x","given":["a",null]}],
		"valueString":"s","subject":{"reference":"Patient/1"},"telecom":[{"system":"email","value":"e"}]}`), &res); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			return
		}
		printed := e.String()
		e2, err := Parse(printed)
		if err != nil {
			t.Fatalf("Parse(%q) ok, but its print %q fails: %v", src, printed, err)
		}
		if again := e2.String(); again != printed {
			t.Fatalf("print is not stable: %q then %q", printed, again)
		}
		for _, root := range e.Roots() {
			_ = e.Eval(root, res)
		}
		_ = e.Eval("Patient", res)
	})
}

// coreExpressions reads the expressions of the generated registry file.
func coreExpressions(tb testing.TB) []string {
	b, err := os.ReadFile("../../core_params.json")
	if err != nil {
		tb.Fatal(err)
	}
	var f struct {
		Params []struct {
			Expression string `json:"expression"`
		} `json:"params"`
	}
	if err := json.Unmarshal(b, &f); err != nil {
		tb.Fatal(err)
	}
	var out []string
	for _, p := range f.Params {
		out = append(out, p.Expression)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
