package validate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
	"github.com/passerelle-sante/passerelle/pkg/fhir/profile"
)

// coreDir is where the repository keeps the FHIR R4 core definitions: the
// shared/ checkout beside the work tree.
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

// TestDataDriven proves that the rules live in the package: each case
// copies the FHIR package to a temporary directory, edits one JSON file
// (a differential, a value set, a message definition), regenerates the
// snapshots as go generate would, loads the copy as PASSERELLE_PROFILES_DIR
// would, and checks that the verdict on the same message changes, with
// no Go change.
func TestDataDriven(t *testing.T) {
	c := loadCore(t)
	sample := readTestdata(t, "discharge-hf-declared-team.json")
	noBirthDate := []byte(strings.Replace(string(sample), `"birthDate": "1948-03-15",`, "", 1))
	admit := readTestdata(t, "good-admit.json")
	tests := []struct {
		name     string
		edit     func(t *testing.T, dir string)
		body     []byte
		before   []want // with the package as shipped
		after    []want // with the edited copy
		generate bool
	}{
		{
			name: "Patient.birthDate min 1 → 0",
			edit: func(t *testing.T, dir string) {
				editElement(t, dir, "StructureDefinition/passerelle-patient.json", "Patient.birthDate", func(e map[string]any) {
					e["min"] = 0
				})
			},
			body:     noBirthDate,
			before:   []want{{"required", "Bundle.entry[1].resource.birthDate"}},
			after:    nil,
			generate: true,
		},
		{
			name: "Patient.telecom max 0",
			edit: func(t *testing.T, dir string) {
				addElement(t, dir, "StructureDefinition/passerelle-patient.json", "Patient.name",
					map[string]any{"id": "Patient.telecom", "path": "Patient.telecom", "max": "0"})
			},
			body:     sample,
			before:   nil,
			after:    []want{{"structure", "Bundle.entry[1].resource.telecom"}},
			generate: true,
		},
		{
			name: "home removed from the discharge dispositions",
			edit: func(t *testing.T, dir string) {
				editJSON(t, dir, "ValueSet/passerelle-discharge-disposition.json", func(vs map[string]any) {
					inc := vs["compose"].(map[string]any)["include"].([]any)[0].(map[string]any)
					var kept []any
					for _, c := range inc["concept"].([]any) {
						if c.(map[string]any)["code"] != "home" {
							kept = append(kept, c)
						}
					}
					inc["concept"] = kept
				})
			},
			body:   sample,
			before: nil,
			after:  []want{{"code-invalid", "Bundle.entry[2].resource.hospitalization.dischargeDisposition"}},
		},
		{
			name: "admissions held to the discharge profile",
			edit: func(t *testing.T, dir string) {
				editJSON(t, dir, "MessageDefinition/admit-notification.json", func(md map[string]any) {
					md["focus"].([]any)[0].(map[string]any)["profile"] =
						"https://passerelle.health/fhir/StructureDefinition/passerelle-encounter-discharge"
				})
			},
			body:   admit,
			before: nil,
			after: []want{
				{"value", "Bundle.entry[2].resource.status"},
				{"required", "Bundle.entry[2].resource.period.end"},
				{"required", "Bundle.entry[2].resource.hospitalization"},
			},
		},
	}
	shipped := newValidator(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if g := got(shipped.ValidateBundle(tt.body)); !reflect.DeepEqual(g, tt.before) {
				t.Fatalf("shipped package: got %v, want %v", g, tt.before)
			}
			dir := t.TempDir()
			if err := os.CopyFS(dir, fhirprofiles.FS()); err != nil {
				t.Fatal(err)
			}
			tt.edit(t, dir)
			if tt.generate {
				// Without regeneration the copy must not load: its
				// snapshots no longer follow from its differentials.
				if _, err := profile.Load(os.DirFS(dir)); err == nil {
					t.Fatal("a package with a stale snapshot loaded")
				}
				regenerate(t, c, dir)
			}
			reg, err := profile.Load(os.DirFS(dir))
			if err != nil {
				t.Fatal(err)
			}
			v, err := New(reg)
			if err != nil {
				t.Fatal(err)
			}
			issues := v.ValidateBundle(tt.body)
			if g := got(issues); !reflect.DeepEqual(g, tt.after) {
				t.Fatalf("edited package: got %v, want %v\n%s", g, tt.after, describe(issues))
			}
		})
	}
}

func regenerate(t *testing.T, c *profile.Core, dir string) {
	t.Helper()
	files, err := profile.Generate(os.DirFS(dir), c)
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range files {
		if err := os.WriteFile(filepath.Join(dir, filepath.FromSlash(name)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func editJSON(t *testing.T, dir, name string, f func(map[string]any)) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	f(doc)
	if b, err = json.MarshalIndent(doc, "", "  "); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func differential(doc map[string]any) []any {
	return doc["differential"].(map[string]any)["element"].([]any)
}

func editElement(t *testing.T, dir, name, id string, f func(map[string]any)) {
	t.Helper()
	editJSON(t, dir, name, func(doc map[string]any) {
		for _, e := range differential(doc) {
			if e.(map[string]any)["id"] == id {
				f(e.(map[string]any))
				return
			}
		}
		t.Fatalf("%s has no element %s", name, id)
	})
}

// addElement inserts a differential element after the one with id after.
func addElement(t *testing.T, dir, name, after string, e map[string]any) {
	t.Helper()
	editJSON(t, dir, name, func(doc map[string]any) {
		els := differential(doc)
		for i, x := range els {
			if x.(map[string]any)["id"] == after {
				els = append(els[:i+1], append([]any{e}, els[i+1:]...)...)
				doc["differential"].(map[string]any)["element"] = els
				return
			}
		}
		t.Fatalf("%s has no element %s", name, after)
	})
}
