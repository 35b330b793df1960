package fhirjson

import "testing"

func TestPathsCodesExtensions(t *testing.T) {
	m, err := Decode([]byte(`{"resourceType":"Task","code":{"coding":[{"system":"a","code":"x","display":"X"},{"system":"b","code":"y"}]},
		"owner":{"reference":"PractitionerRole/p"},"extension":[{"url":"u1","valueString":"1"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	if Str(m, "owner", "reference") != "PractitionerRole/p" || Str(m, "code", "coding", "display") != "" {
		t.Fatal("Str must not step into lists")
	}
	if Get(m, "code", "coding", "display") != "X" || Get(m, "code", "coding", "nothing") != "" {
		t.Fatal("Get steps into the first element")
	}
	if FirstCode(m["code"], "b") != "y" || FirstCode(m["code"], "") != "x" || FirstCode(m["code"], "c") != "" {
		t.Fatal("FirstCode")
	}
	SetExtension(m, Obj{"url": "u1", "valueString": "2"})
	SetExtension(m, Obj{"url": "u2", "valueString": "3"})
	if len(List(m["extension"])) != 2 || Extension(m, "u1")["valueString"] != "2" || Extension(m, "u3") != nil {
		t.Fatalf("extensions %v", m["extension"])
	}
	if _, ok := ParseTime("2026-03-16"); !ok {
		t.Fatal("date")
	}
	if _, ok := ParseTime("16/03/2026"); ok {
		t.Fatal("not a FHIR date")
	}
}

func TestHasCoding(t *testing.T) {
	cc := Obj{"coding": []any{Obj{"system": "http://loinc.org", "code": "29463-7"}}}
	if !HasCoding(cc, "http://loinc.org", "29463-7") || !HasCoding(cc, "", "29463-7") {
		t.Error("coding not found")
	}
	if HasCoding(cc, "http://snomed.info/sct", "29463-7") || HasCoding(cc, "", "8867-4") || HasCoding(nil, "", "x") {
		t.Error("coding found where there is none")
	}
}
