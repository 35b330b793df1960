package validate

import (
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// want is an expected issue: its code and where.
type want struct{ code, expr string }

func got(issues []Issue) []want {
	var out []want
	for _, i := range errorsOnly(issues) {
		out = append(out, want{i.Code, i.Expression})
	}
	return out
}

func TestValidateBundle(t *testing.T) {
	v := newValidator(t)
	tests := []struct {
		file string
		want []want
	}{
		{"discharge-hf-declared-team.json", nil},
		{"good-admit.json", nil},
		{"good-death.json", nil},

		{"bad-missing-encounter-subject.json", []want{{"required", "Bundle.entry[2].resource.subject"}}},
		{"bad-ins-key.json", []want{{"value", "Bundle.entry[1].resource.identifier[0].value"}}},
		{"bad-finess.json", []want{{"value", "Bundle.entry[2].resource.serviceProvider.identifier.value"}}},
		{"bad-unknown-event.json", []want{{"code-invalid", "Bundle.entry[0].resource.event.ofType(Coding)"}}},
		{"bad-unresolvable-reference.json", []want{{"not-found", "Bundle.entry[3].resource.subject"}}},
		{"bad-unknown-element.json", []want{{"structure", "Bundle.entry[1].resource.shoeSize"}}},
		{"bad-wrong-type.json", []want{{"structure", "Bundle.entry[2].resource.subject"}}},
		{"bad-invalid-date.json", []want{{"value", "Bundle.entry[1].resource.birthDate"}}},

		// Event-specific: a discharge needs the end of the stay, a death
		// the disposition exp; an admission needs neither.
		{"bad-discharge-without-end.json", []want{{"required", "Bundle.entry[2].resource.period.end"}}},
		{"bad-death-disposition.json", []want{{"value", "Bundle.entry[2].resource.hospitalization.dischargeDisposition"}}},

		{"bad-bundle-type.json", []want{{"value", "Bundle.type"}}},
		{"bad-timestamp.json", []want{{"value", "Bundle.timestamp"}}},
		{"bad-header-not-first.json", []want{{"structure", "Bundle.entry[8]"}}},
		{"bad-two-headers.json", []want{{"structure", "Bundle.entry[9]"}, {"structure", "Bundle.entry"}}},
		{"bad-duplicate-fullurl.json", []want{
			{"invariant", "Bundle.entry[6].fullUrl"},
			// the pharmacy's own fullUrl is gone, so the CareTeam's link breaks
			{"not-found", "Bundle.entry[7].resource.participant[1].member"},
		}},
		{"bad-duplicate-key.json", []want{{"structure", "Bundle.entry[1].resource.gender"}}},
		{"bad-empty-array.json", []want{{"structure", "Bundle.entry[1].resource.telecom"}}},
		{"bad-invalid-json.json", []want{{"structure", "Bundle"}}},
		{"bad-gender.json", []want{{"code-invalid", "Bundle.entry[1].resource.gender"}}},
		{"bad-identity-status.json", []want{{"code-invalid", "Bundle.entry[1].resource.extension[0].extension[0].value.ofType(Coding)"}}},
		{"bad-extension-value-type.json", []want{
			{"structure", "Bundle.entry[1].resource.extension[0].extension[0].valueString"},
			{"required", "Bundle.entry[1].resource.extension[0].extension[0].value"},
			{"invariant", "Bundle.entry[1].resource.extension[0].extension[0]"}, // ext-1
		}},
		{"bad-careteam-role.json", []want{{"code-invalid", "Bundle.entry[7].resource.participant[0].role[0].coding[0]"}}},
		{"bad-careteam-status.json", []want{{"value", "Bundle.entry[7].resource.status"}}},
		{"bad-reference-target.json", []want{{"invalid", "Bundle.entry[7].resource.subject"}}},
		{"bad-condition-without-icd10.json", []want{{"required", "Bundle.entry[3].resource.code.coding"}}},
		{"bad-discharge-disposition.json", []want{{"code-invalid", "Bundle.entry[2].resource.hospitalization.dischargeDisposition.coding[0]"}}},
		{"bad-practitioner-without-rpps.json", []want{{"invariant", "Bundle.entry[5].resource"}}},
		{"bad-letter-without-content.json", []want{{"invariant", "Bundle.entry[8].resource.content[0].attachment"}}},
		{"bad-rpps.json", []want{{"value", "Bundle.entry[5].resource.identifier[0].value"}}},
		{"bad-idnps.json", []want{{"value", "Bundle.entry[4].resource.identifier[1].value"}}},
	}
	for _, tt := range tests {
		t.Run(strings.TrimSuffix(tt.file, ".json"), func(t *testing.T) {
			issues := v.ValidateBundle(readTestdata(t, tt.file))
			if g := got(issues); !reflect.DeepEqual(g, tt.want) {
				t.Errorf("issues (code, expression):\n got  %v\n want %v", g, tt.want)
			}
			if tt.want == nil && len(issues) > 0 {
				t.Errorf("valid message has warnings: %+v", issues)
			}
			for _, i := range issues {
				if i.FR == "" || i.EN == "" || i.Expression == "" {
					t.Errorf("incomplete issue %+v", i)
				}
			}
		})
	}
}

// Messages built from the sample by replacing one piece of JSON text.
func TestValidateBundleEdits(t *testing.T) {
	v := newValidator(t)
	sample := string(readTestdata(t, "discharge-hf-declared-team.json"))
	tests := []struct {
		name, old, new string
		want           []want
	}{
		{"entry of a type the Bundle profile does not list",
			`"resourceType": "Organization",`, `"resourceType": "Observation",`,
			[]want{
				{"structure", "Bundle.entry[6].resource"},
				{"invalid", "Bundle.entry[7].resource.participant[1].member"},
			}},
		{"focus on the Patient",
			`"reference": "urn:uuid:0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5003"
          }
        ]`, `"reference": "urn:uuid:0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5002"
          }
        ]`,
			[]want{
				{"invariant", "Bundle.entry[0].resource.focus[0]"},
				{"required", "Bundle.entry[0].resource.focus"},
				{"invalid", "Bundle.entry[0].resource.focus[0]"},
			}},
		{"relative reference resolving by type and id",
			`"resourceType": "Practitioner",`, `"resourceType": "Practitioner", "id": "gp-1",`, nil},
		{"relative reference not in the Bundle",
			`"reference": "urn:uuid:0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5010"`, `"reference": "Practitioner/gp-2"`,
			[]want{{"not-found", "Bundle.entry[1].resource.generalPractitioner[0]"}}},
		{"malformed reference",
			`"reference": "urn:uuid:0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5010"`, `"reference": "le docteur"`,
			[]want{{"value", "Bundle.entry[1].resource.generalPractitioner[0]"}}},
		{"absolute reference outside the Bundle",
			`"reference": "urn:uuid:0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5010"`, `"reference": "https://annuaire.example.invalid/fhir/Practitioner/123"`, nil},
		{"absolute reference to a forbidden type",
			`"reference": "urn:uuid:0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5010"`, `"reference": "https://annuaire.example.invalid/fhir/Device/123"`,
			[]want{{"invalid", "Bundle.entry[1].resource.generalPractitioner[0]"}}},
		{"two types for one choice element",
			`"birthDate": "1948-03-15",`, `"birthDate": "1948-03-15", "deceasedBoolean": false, "deceasedDateTime": "2026-10-03",`,
			[]want{{"structure", "Bundle.entry[1].resource.deceased.ofType(dateTime)"}}},
		{"extension on a primitive",
			`"birthDate": "1948-03-15",`, `"birthDate": "1948-03-15", "_birthDate": {"extension": [{"url": "http://example.org/precision", "valueCode": "day"}]},`,
			nil}, // an unknown extension is a warning
		{"_element that is not an object",
			`"birthDate": "1948-03-15",`, `"birthDate": "1948-03-15", "_birthDate": "day",`,
			[]want{{"structure", "Bundle.entry[1].resource.birthDate"}}},
		{"null in a primitive array with its _ companion",
			`"MARIE",
              "CLAIRE"`, `"MARIE", null], "_given": [null, {"extension": [{"url": "http://example.org/x", "valueString": "y"}]}`,
			nil},
		{"null without companion",
			`"MARIE",
              "CLAIRE"`, `"MARIE", null`,
			[]want{{"structure", "Bundle.entry[1].resource.name[0].given[1]"}}},
		{"null value",
			`"gender": "female",`, `"gender": null,`,
			// null is absent, and gender is required
			[]want{{"structure", "Bundle.entry[1].resource.gender"}, {"required", "Bundle.entry[1].resource.gender"}}},
		{"single value where an array is due",
			`"prefix": [
              "Dr"
            ]`, `"prefix": "Dr"`,
			[]want{{"structure", "Bundle.entry[4].resource.name[0].prefix"}}},
		{"array where a single value is due",
			`"gender": "female",`, `"gender": ["female"],`,
			[]want{{"structure", "Bundle.entry[1].resource.gender"}}},
		{"number where a string is due",
			`"postalCode": "42300",`, `"postalCode": 42300,`,
			[]want{{"structure", "Bundle.entry[1].resource.address[0].postalCode"}}},
		{"unknown modifier extension",
			`"gender": "female",`, `"gender": "female", "modifierExtension": [{"url": "http://example.org/not-really", "valueBoolean": true}],`,
			[]want{{"extension", "Bundle.entry[1].resource.modifierExtension[0]"}}},
		{"contained resource",
			`"gender": "female",`, `"gender": "female", "contained": [{"resourceType": "Organization", "id": "o1", "name": "x"}],`,
			[]want{{"not-supported", "Bundle.entry[1].resource.contained[0]"}}},
		{"reference to a missing contained resource",
			`"reference": "urn:uuid:0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5010"`, `"reference": "#gp"`,
			[]want{{"not-found", "Bundle.entry[1].resource.generalPractitioner[0]"}}},
		{"bad narrative",
			`"gender": "female",`, `"gender": "female", "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><script>x()</script></div>"},`,
			[]want{{"value", "Bundle.entry[1].resource.text.div"}}},
		{"good narrative",
			`"gender": "female",`, `"gender": "female", "text": {"status": "generated", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Marie <b>TESTDURAND</b></p></div>"},`,
			nil},
		{"unknown profile claimed",
			`"resourceType": "Condition",`, `"resourceType": "Condition", "meta": {"profile": ["http://example.org/StructureDefinition/x"]},`,
			nil}, // information only
		{"second profile claimed and checked",
			`"resourceType": "Encounter",`, `"resourceType": "Encounter", "meta": {"profile": ["https://passerelle.health/fhir/StructureDefinition/passerelle-encounter-death"]},`,
			[]want{{"value", "Bundle.entry[2].resource.hospitalization.dischargeDisposition"}}},
		{"closed slicing is not used by Practitioner: other identifiers are allowed",
			`"value": "10000000033"
          }`, `"value": "10000000033"
          }, {"system": "urn:oid:2.999.250.1.1.7", "value": "IDE-33"}`,
			nil},
		{"second RPPS",
			`"value": "10000000033"
          }`, `"value": "10000000033"
          }, {"system": "https://rpps.esante.gouv.fr", "value": "10000001015"}`,
			[]want{{"structure", "Bundle.entry[5].resource.identifier"}}},
		{"no focus",
			`"focus": [
          {
            "reference": "urn:uuid:0b6f3a52-8c1e-4a57-9a0e-1d2c3b4a5003"
          }
        ]`, `"definition": "https://passerelle.health/fhir/MessageDefinition/discharge-notification"`,
			[]want{{"required", "Bundle.entry[0].resource.focus"}, {"required", "Bundle.entry[0].resource.focus"}}},
		{"not a Bundle",
			`"resourceType": "Bundle",`, `"resourceType": "Parameters",`,
			[]want{{"structure", "Bundle"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if !strings.Contains(sample, tt.old) {
				t.Fatalf("the sample has no %q", tt.old)
			}
			body := strings.Replace(sample, tt.old, tt.new, 1)
			issues := v.ValidateBundle([]byte(body))
			if g := got(issues); !reflect.DeepEqual(g, tt.want) {
				t.Errorf("issues (code, expression):\n got  %v\n want %v\n%s", g, tt.want, describe(issues))
			}
		})
	}
}

func describe(issues []Issue) string {
	var b strings.Builder
	for _, i := range issues {
		fmt.Fprintf(&b, "  %s %s %s: %s\n", i.Severity, i.Code, i.Expression, i.EN)
	}
	return b.String()
}

func TestWarnings(t *testing.T) {
	v := newValidator(t)
	sample := string(readTestdata(t, "discharge-hf-declared-team.json"))
	body := strings.Replace(sample, `"birthDate": "1948-03-15",`,
		`"birthDate": "1948-03-15", "_birthDate": {"extension": [{"url": "http://example.org/precision", "valueCode": "day"}]},`, 1)
	issues := v.ValidateBundle([]byte(body))
	if len(issues) != 1 || issues[0].Severity != "warning" || issues[0].Code != "extension" ||
		issues[0].Expression != "Bundle.entry[1].resource.birthDate.extension[0]" {
		t.Errorf("unknown extension: %s", describe(issues))
	}
	body = strings.Replace(sample, `"resourceType": "Condition",`,
		`"resourceType": "Condition", "meta": {"profile": ["http://example.org/StructureDefinition/x"]},`, 1)
	issues = v.ValidateBundle([]byte(body))
	if len(issues) != 1 || issues[0].Severity != "information" || issues[0].Expression != "Bundle.entry[3].resource.meta.profile[0]" {
		t.Errorf("unknown profile: %s", describe(issues))
	}
}

func TestValidateResource(t *testing.T) {
	v := newValidator(t)
	const prac = `{"resourceType": "Practitioner", "id": "p1",
		"identifier": [{"system": "https://rpps.esante.gouv.fr", "value": "10000000009"}],
		"name": [{"family": "GENERALISTE"}]}`
	const sd = "https://passerelle.health/fhir/StructureDefinition/"
	tests := []struct {
		name, profile, body string
		want                []want
	}{
		{"valid", sd + "passerelle-practitioner", prac, nil},
		{"versioned profile URL", sd + "passerelle-practitioner|0.1.0", prac, nil},
		{"from meta.profile", "", strings.Replace(prac, `"id": "p1",`, `"id": "p1", "meta": {"profile": ["`+sd+`passerelle-practitioner"]},`, 1), nil},
		{"no profile known", "", prac, []want{{"not-supported", "Practitioner"}}},
		{"unknown profile", "http://example.org/x", prac, []want{{"not-supported", "Practitioner"}}},
		{"wrong type for the profile", sd + "passerelle-patient", prac, []want{{"structure", "Practitioner"}}},
		{"bad id", sd + "passerelle-practitioner", strings.Replace(prac, `"p1"`, `"p 1"`, 1), []want{{"value", "Practitioner.id"}}},
		{"not JSON", sd + "passerelle-practitioner", `{"resourceType": `, []want{{"structure", "Resource"}}},
		{"not an object", sd + "passerelle-practitioner", `[]`, []want{{"structure", "Resource"}}},
		{"relative reference kept as is", sd + "passerelle-condition", `{"resourceType": "Condition",
			"code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I50.9"}]},
			"subject": {"reference": "Patient/p1"}}`, nil},
		{"relative reference to a wrong type", sd + "passerelle-condition", `{"resourceType": "Condition",
			"code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I50.9"}]},
			"subject": {"reference": "Practitioner/p1"}}`, []want{{"invalid", "Condition.subject"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			issues := v.ValidateResource(tt.profile, []byte(tt.body))
			if g := got(issues); !reflect.DeepEqual(g, tt.want) {
				t.Errorf("issues:\n got  %v\n want %v\n%s", g, tt.want, describe(issues))
			}
		})
	}
}

// The validator is shared by intake's request handlers.
func TestConcurrent(t *testing.T) {
	v := newValidator(t)
	good := readTestdata(t, "discharge-hf-declared-team.json")
	bad := readTestdata(t, "bad-ins-key.json")
	var wg sync.WaitGroup
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 50; i++ {
				if n := len(v.ValidateBundle(good)); n != 0 {
					t.Errorf("good: %d issues", n)
					return
				}
				if n := len(v.ValidateBundle(bad)); n != 1 {
					t.Errorf("bad: %d issues", n)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestTooManyIssues(t *testing.T) {
	v := newValidator(t)
	var b strings.Builder
	b.WriteString(`{"resourceType": "Bundle"`)
	for i := 0; i < 1500; i++ {
		fmt.Fprintf(&b, `, "x%d": 1`, i)
	}
	b.WriteString("}")
	issues := v.ValidateBundle([]byte(b.String()))
	if len(issues) != maxIssues+1 || issues[maxIssues].Code != "too-costly" {
		t.Fatalf("%d issues, last %+v", len(issues), issues[len(issues)-1])
	}
}
