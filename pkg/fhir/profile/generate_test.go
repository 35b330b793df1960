package profile_test

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"strings"
	"sync"
	"testing"
	"testing/fstest"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
	"github.com/passerelle-sante/passerelle/pkg/fhir/profile"
)

// coreDir is the shared/ checkout beside the work tree.
const coreDir = "../../../../shared/data/fhir-r4"

var (
	coreOnce sync.Once
	core     *profile.Core
	coreErr  error
)

func loadCore(t *testing.T) *profile.Core {
	t.Helper()
	if _, err := os.Stat(coreDir); err != nil {
		t.Skipf("core definitions not available: %v", err)
	}
	coreOnce.Do(func() { core, coreErr = profile.LoadCore(os.DirFS(coreDir)) })
	if coreErr != nil {
		t.Fatal(coreErr)
	}
	return core
}

// The committed snapshots are what the generator produces, byte for byte,
// twice in a row (CI runs go generate and fails on a diff).
func TestGenerateMatchesCommitted(t *testing.T) {
	c := loadCore(t)
	pkg := fhirprofiles.FS()
	first, err := profile.Generate(pkg, c)
	if err != nil {
		t.Fatal(err)
	}
	second, err := profile.Generate(pkg, c)
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != len(second) {
		t.Fatalf("%d files, then %d", len(first), len(second))
	}
	for name, b := range first {
		if !bytes.Equal(b, second[name]) {
			t.Errorf("%s differs between two runs", name)
		}
		committed, err := fs.ReadFile(pkg, name)
		if err != nil {
			t.Errorf("%s is not committed: run go generate ./pkg/fhir/profile", name)
			continue
		}
		if !bytes.Equal(b, committed) {
			t.Errorf("%s is stale: run go generate ./pkg/fhir/profile", name)
		}
	}
	committed, _ := fs.Glob(pkg, "snapshots/*")
	for _, name := range committed {
		if _, ok := first[name]; !ok {
			t.Errorf("%s is no longer generated", name)
		}
	}
}

func TestGenerateErrors(t *testing.T) {
	c := loadCore(t)
	const head = `{"resourceType": "StructureDefinition", "id": "p", "url": "http://x/p", "kind": "resource",
		"type": "Patient", "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
		"derivation": "constraint", "differential": {"element": [`
	tests := []struct {
		name, elements, wantErr string
	}{
		{"min below the base", `{"id": "Patient.link.other", "path": "Patient.link.other", "min": 0}`, "below the base"},
		{"max above the base", `{"id": "Patient.birthDate", "path": "Patient.birthDate", "max": "2"}`, "above the base"},
		{"type the base does not allow", `{"id": "Patient.birthDate", "path": "Patient.birthDate", "type": [{"code": "string"}]}`, "not allowed by the base"},
		{"target the base does not allow", `{"id": "Patient.managingOrganization", "path": "Patient.managingOrganization",
			"type": [{"code": "Reference", "targetProfile": ["http://hl7.org/fhir/StructureDefinition/Practitioner"]}]}`, "not allowed by the base"},
		{"unknown element", `{"id": "Patient.shoeSize", "path": "Patient.shoeSize", "min": 1}`, "not in the base"},
		{"unknown child of a datatype", `{"id": "Patient.name.nickname", "path": "Patient.name.nickname", "min": 1}`, "not in the base"},
		{"slice without slicing", `{"id": "Patient.identifier:ins", "path": "Patient.identifier", "sliceName": "ins"}`, "has no slicing"},
		{"weakened required binding", `{"id": "Patient.gender", "path": "Patient.gender",
			"binding": {"strength": "extensible", "valueSet": "http://hl7.org/fhir/ValueSet/administrative-gender"}}`, "cannot be weakened"},
		{"children of a choice", `{"id": "Patient.deceased[x].id", "path": "Patient.deceased[x].id", "min": 1}`, "one type"},
		{"path that disagrees with the id", `{"id": "Patient.gender", "path": "Patient.birthDate", "min": 1}`, "want Patient.gender"},
		{"min above max", `{"id": "Patient.telecom", "path": "Patient.telecom", "min": 2, "max": "1"}`, "min 2 above max 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pkg := fstest.MapFS{
				"package.json":               {Data: []byte(`{"name": "x"}`)},
				"StructureDefinition/p.json": {Data: []byte(head + tt.elements + `]}}`)},
			}
			_, err := profile.Generate(pkg, c)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Generate: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// A profile of a profile sees its base's constraints, and a slice starts
// with the sliced element's children as constrained so far.
func TestGenerateLayers(t *testing.T) {
	c := loadCore(t)
	pkg := fstest.MapFS{
		"package.json": {Data: []byte(`{"name": "x"}`)},
		"StructureDefinition/a.json": {Data: []byte(`{"resourceType": "StructureDefinition", "id": "a", "url": "http://x/a",
			"kind": "resource", "type": "Patient", "baseDefinition": "http://hl7.org/fhir/StructureDefinition/Patient",
			"derivation": "constraint", "differential": {"element": [
				{"id": "Patient.identifier", "path": "Patient.identifier", "min": 1,
				 "slicing": {"discriminator": [{"type": "value", "path": "system"}], "rules": "open"}},
				{"id": "Patient.identifier.value", "path": "Patient.identifier.value", "min": 1},
				{"id": "Patient.identifier:ins", "path": "Patient.identifier", "sliceName": "ins", "max": "1"},
				{"id": "Patient.identifier:ins.system", "path": "Patient.identifier.system", "fixedUri": "urn:oid:1.2.250.1.213.1.4.8"}]}}`)},
		"StructureDefinition/b.json": {Data: []byte(`{"resourceType": "StructureDefinition", "id": "b", "url": "http://x/b",
			"kind": "resource", "type": "Patient", "baseDefinition": "http://x/a",
			"derivation": "constraint", "differential": {"element": [
				{"id": "Patient.identifier:ins", "path": "Patient.identifier", "min": 1}]}}`)},
	}
	files, err := profile.Generate(pkg, c)
	if err != nil {
		t.Fatal(err)
	}
	var sd struct {
		Snapshot struct {
			Element []struct {
				ID       string          `json:"id"`
				Min      int             `json:"min"`
				Max      string          `json:"max"`
				FixedURI string          `json:"fixedUri"`
				Slicing  json.RawMessage `json:"slicing"`
			} `json:"element"`
		} `json:"snapshot"`
	}
	if err := json.Unmarshal(files["snapshots/StructureDefinition-b.json"], &sd); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, e := range sd.Snapshot.Element {
		got[e.ID] = strings.TrimSpace(string(rune('0'+e.Min)) + ".." + e.Max + " " + e.FixedURI)
	}
	for id, want := range map[string]string{
		"Patient.identifier":            "1..*",
		"Patient.identifier.value":      "1..1",
		"Patient.identifier:ins":        "1..1",
		"Patient.identifier:ins.value":  "1..1",
		"Patient.identifier:ins.system": "0..1 urn:oid:1.2.250.1.213.1.4.8",
		"Patient.birthDate":             "0..1",
	} {
		if got[id] != want {
			t.Errorf("%s = %q, want %q", id, got[id], want)
		}
	}
}
