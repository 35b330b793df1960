package profile_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
	"github.com/passerelle-sante/passerelle/pkg/fhir/profile"
)

const sdBase = "https://passerelle.health/fhir/StructureDefinition/"

func TestLoadEmbedded(t *testing.T) {
	r, err := profile.Load(fhirprofiles.FS())
	if err != nil {
		t.Fatal(err)
	}
	if p := r.Package(); p.Name != "health.passerelle.fhir" || p.Canonical != "https://passerelle.health/fhir" {
		t.Errorf("package = %+v", p)
	}
	for _, id := range []string{"passerelle-message-bundle", "passerelle-messageheader", "passerelle-patient",
		"passerelle-encounter", "passerelle-encounter-discharge", "passerelle-encounter-death",
		"passerelle-condition", "passerelle-careteam", "passerelle-documentreference",
		"passerelle-practitioner", "passerelle-organization"} {
		sd := r.StructureDefinition(sdBase + id + "|0.1.0")
		if sd == nil {
			t.Errorf("%s missing", id)
			continue
		}
		if len(sd.Snapshot.Element) == 0 || sd.Snapshot.Element[0].Path != sd.Type {
			t.Errorf("%s: snapshot does not start at %s", id, sd.Type)
		}
	}
	for _, u := range []string{
		"http://hl7.org/fhir/StructureDefinition/Identifier",
		"http://hl7.org/fhir/StructureDefinition/date",
		"https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-identity-reliability",
	} {
		if r.StructureDefinition(u) == nil {
			t.Errorf("%s missing", u)
		}
	}
	// The core Meta shipped is FHIR R4's, without the elements the
	// definitions bundle added to its snapshot.
	meta := r.StructureDefinition("http://hl7.org/fhir/StructureDefinition/Meta")
	for _, e := range meta.Snapshot.Element {
		if e.Path == "Meta.project" || e.Path == "Meta.compartment" {
			t.Errorf("Meta carries %s, which is not FHIR R4", e.Path)
		}
	}
	if md := r.MessageDefinition("https://passerelle.health/fhir/CodeSystem/event", "discharge-notification"); md == nil ||
		len(md.Focus) != 1 || md.Focus[0].Profile != sdBase+"passerelle-encounter-discharge" {
		t.Errorf("discharge MessageDefinition = %+v", md)
	}
	checks := map[string]string{}
	for _, ns := range r.NamingSystems() {
		for _, s := range ns.Systems() {
			checks[s] = ns.Check
		}
	}
	for s, want := range map[string]string{
		"urn:oid:1.2.250.1.213.1.4.8":  "ins",
		"urn:oid:1.2.250.1.213.1.4.10": "ins",
		"https://rpps.esante.gouv.fr":  "rpps",
		"urn:oid:1.2.250.1.71.4.2.1":   "idnps",
		"http://finess.sante.gouv.fr":  "finess",
	} {
		if checks[s] != want {
			t.Errorf("check of %s = %q, want %q", s, checks[s], want)
		}
	}
}

func TestExpand(t *testing.T) {
	r, err := profile.Load(fhirprofiles.FS())
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		vs           string
		system, code string
		want         bool
	}{
		{"https://passerelle.health/fhir/ValueSet/passerelle-event", "https://passerelle.health/fhir/CodeSystem/event", "discharge-notification", true},
		{"https://passerelle.health/fhir/ValueSet/passerelle-event", "https://passerelle.health/fhir/CodeSystem/event", "transfer", false},
		{"https://passerelle.health/fhir/ValueSet/passerelle-event", "http://example.org", "discharge-notification", false},
		{"https://passerelle.health/fhir/ValueSet/passerelle-discharge-disposition", "http://terminology.hl7.org/CodeSystem/discharge-disposition", "home", true},
		{"http://hl7.org/fhir/ValueSet/administrative-gender|4.0.1", "http://hl7.org/fhir/administrative-gender", "female", true},
		{"http://hl7.org/fhir/ValueSet/administrative-gender", "http://hl7.org/fhir/administrative-gender", "F", false},
		// BCP 13 is not enumerable: any media type passes.
		{"http://hl7.org/fhir/ValueSet/mimetypes", "urn:ietf:bcp:13", "text/plain; charset=utf-8", true},
		// all-types = data types + resource types, nested concepts included.
		{"http://hl7.org/fhir/ValueSet/all-types", "http://hl7.org/fhir/resource-types", "Patient", true},
		{"http://hl7.org/fhir/ValueSet/all-types", "http://hl7.org/fhir/data-types", "Identifier", true},
	}
	for _, tt := range tests {
		e, err := r.Expand(tt.vs)
		if err != nil {
			t.Errorf("Expand(%s): %v", tt.vs, err)
			continue
		}
		if got := e.Contains(tt.system, tt.code); got != tt.want {
			t.Errorf("%s contains %s|%s = %v, want %v", tt.vs, tt.system, tt.code, got, tt.want)
		}
	}
	e, _ := r.Expand("http://hl7.org/fhir/ValueSet/bundle-type")
	if !e.ContainsCode("message") || e.ContainsCode("messages") {
		t.Error("bundle-type: ContainsCode wrong")
	}
	if _, err := r.Expand("http://example.org/ValueSet/none"); err == nil {
		t.Error("Expand of an unknown value set should fail")
	}
}

// A package whose differential changed after generation must not load.
func TestLoadStaleSnapshot(t *testing.T) {
	src := fhirprofiles.FS()
	dir := t.TempDir()
	if err := os.CopyFS(dir, src); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, "StructureDefinition", "passerelle-patient.json")
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b = []byte(strings.Replace(string(b), `"path": "Patient.gender",`, `"path": "Patient.gender", "mustSupport": true,`, 1))
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = profile.Load(os.DirFS(dir))
	if err == nil || !strings.Contains(err.Error(), "go generate") {
		t.Fatalf("Load of a stale package: %v, want an error asking to regenerate", err)
	}
}

func TestLoadErrors(t *testing.T) {
	tests := map[string]fstest.MapFS{
		"no package.json": {},
		"bad json": {
			"package.json":    {Data: []byte(`{"name":"x"}`)},
			"ValueSet/a.json": {Data: []byte(`{"resourceType":"ValueSet",`)},
		},
		"duplicate value set": {
			"package.json":    {Data: []byte(`{"name":"x"}`)},
			"ValueSet/a.json": {Data: []byte(`{"resourceType":"ValueSet","url":"http://x/vs"}`)},
			"ValueSet/b.json": {Data: []byte(`{"resourceType":"ValueSet","url":"http://x/vs"}`)},
		},
		"differential without snapshot": {
			"package.json": {Data: []byte(`{"name":"x"}`)},
			"StructureDefinition/p.json": {Data: []byte(`{"resourceType":"StructureDefinition","url":"http://x/sd",` +
				`"differential":{"element":[{"id":"Patient","path":"Patient"}]}}`)},
		},
	}
	for name, fsys := range tests {
		t.Run(name, func(t *testing.T) {
			if _, err := profile.Load(fsys); err == nil {
				t.Fatal("Load succeeded")
			}
		})
	}
}
