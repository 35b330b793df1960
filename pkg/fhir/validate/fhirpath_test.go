package validate

import "testing"

func TestFHIRPathSubset(t *testing.T) {
	supported := []string{
		"data.exists() or url.exists()",
		"identifier.where(system = 'https://rpps.esante.gouv.fr' or system = 'urn:oid:1.2.250.1.71.4.2.1').exists()",
		"extension.exists() != value.exists()",
		"contained.contained.empty()",
		"(a.exists() and b.empty()).not() implies c.exists(d = 'x')",
		"$this.a xor true",
	}
	unsupported := []string{
		"hasValue() or (children().count() > id.count())",
		"reference.startsWith('#').not()",
		"%resource.descendants()",
		"start <= end",
		"where()",
		"a.",
		"'unterminated",
		"a = 'x\\'y'",
		"a and",
	}
	for _, s := range supported {
		if _, ok := parseFHIRPath(s); !ok {
			t.Errorf("%q not parsed", s)
		}
	}
	for _, s := range unsupported {
		if _, ok := parseFHIRPath(s); ok {
			t.Errorf("%q parsed, but is outside the subset", s)
		}
	}
}

func TestFHIRPathEval(t *testing.T) {
	v := newValidator(t)
	prac := v.defs["https://passerelle.health/fhir/StructureDefinition/passerelle-practitioner"]
	tests := []struct {
		expr, body string
		want       tri
	}{
		{"identifier.where(system = 'https://rpps.esante.gouv.fr').exists()",
			`{"identifier":[{"system":"x","value":"1"},{"system":"https://rpps.esante.gouv.fr","value":"2"}]}`, triTrue},
		{"identifier.where(system = 'https://rpps.esante.gouv.fr').exists()",
			`{"identifier":[{"system":"x","value":"1"}]}`, triFalse},
		{"identifier.exists()", `{}`, triFalse},
		{"identifier.empty()", `{}`, triTrue},
		{"active.exists() or name.exists()", `{"name":[{"family":"X"}]}`, triTrue},
		{"active = true", `{"active":true}`, triTrue},
		{"active = true", `{}`, triEmpty},
		{"active.not()", `{"active":false}`, triTrue},
		{"active implies name.exists()", `{"active":true}`, triFalse},
		{"active implies name.exists()", `{"active":false}`, triTrue},
		{"active and name.exists()", `{}`, triFalse},
		{"active or name.exists()", `{}`, triEmpty},
		{"active xor name.exists()", `{"active":true}`, triTrue},
		{"identifier.system = 'x'", `{"identifier":[{"system":"x"},{"system":"y"}]}`, triEmpty}, // not a singleton
		{"name.exists(family = 'X')", `{"name":[{"family":"Y"},{"family":"X"}]}`, triTrue},
		{"unknown.exists()", `{"active":true}`, triFalse},
	}
	for _, tt := range tests {
		n, ok := parseFHIRPath(tt.expr)
		if !ok {
			t.Errorf("%q not parsed", tt.expr)
			continue
		}
		var p parser
		val, err := parseJSON(&p, []byte(tt.body))
		if err != nil {
			t.Fatal(err.en)
		}
		if got := asTri(evalFP(n, []fpItem{{v: &val, kids: prac.kids}})); got != tt.want {
			t.Errorf("%s on %s = %d, want %d", tt.expr, tt.body, got, tt.want)
		}
	}
}
