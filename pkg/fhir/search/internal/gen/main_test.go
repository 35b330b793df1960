package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"testing"
)

// TestGeneratedUpToDate regenerates core_params.json in memory and compares
// it with the committed file, so that a change to the generator or to the
// fhirpath subset cannot land without the regenerated file.
func TestGeneratedUpToDate(t *testing.T) {
	data, err := os.ReadFile("../../../../../../shared/data/fhir-r4/search-parameters.json")
	if errors.Is(err, fs.ErrNotExist) {
		t.Skip("FHIR R4 definitions not checked out beside the repository")
	}
	if err != nil {
		t.Fatal(err)
	}
	var b bundle
	if err := json.Unmarshal(data, &b); err != nil {
		t.Fatal(err)
	}
	f, err := build(b)
	if err != nil {
		t.Fatal(err)
	}
	committed, err := os.ReadFile("../../core_params.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(encode(f), committed) {
		t.Error("core_params.json is stale: run go generate in pkg/fhir/search")
	}
}

func TestDescribe(t *testing.T) {
	multi := "Multiple Resources: \r\n\r\n* [AllergyIntolerance](allergyintolerance.html): External ids for this item\r\n* [CarePlan](careplan.html): External Ids for this plan\r\n"
	tests := []struct{ desc, typ, want string }{
		{multi, "CarePlan", "External Ids for this plan"},
		{multi, "Patient", ""},
		{"Search by task owner ", "Task", "Search by task owner"},
	}
	for _, tt := range tests {
		if got := describe(tt.desc, tt.typ); got != tt.want {
			t.Errorf("describe(%q, %s) = %q, want %q", tt.desc, tt.typ, got, tt.want)
		}
	}
}
