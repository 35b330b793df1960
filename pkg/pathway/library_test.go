package pathway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
)

const tenant = "demo"

func openStore(t *testing.T) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func shipped(t *testing.T) map[string][]byte {
	t.Helper()
	files, err := fs.Glob(fhirprofiles.FS(), "PlanDefinition/*.json")
	if err != nil || len(files) < 2 {
		t.Fatalf("shipped templates: %v %v", files, err)
	}
	out := map[string][]byte{}
	for _, f := range files {
		b, err := fs.ReadFile(fhirprofiles.FS(), f)
		if err != nil {
			t.Fatal(err)
		}
		out[f] = b
	}
	return out
}

func put(t *testing.T, s store.Store, body []byte, version int64) store.Resource {
	t.Helper()
	var res store.Resource
	err := s.Tx(context.Background(), func(tx store.Tx) error {
		var err error
		if version == 1 {
			res, err = tx.Create(context.Background(), tenant, body)
		} else {
			res, err = tx.Update(context.Background(), tenant, body, version-1)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TestLibraryShippedTemplates: every shipped template, stored as the seed
// stores it, reads back through the library (by version, latest, active)
// as the very representation Parse gives of the file, with what each
// service needs of it.
func TestLibraryShippedTemplates(t *testing.T) {
	s := openStore(t)
	lib := pathway.NewLibrary(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	want := map[string]*pathway.Template{}
	for f, b := range shipped(t) {
		tpl, issues := pathway.Parse(b)
		if len(issues) > 0 {
			t.Fatalf("%s: %v", f, issues)
		}
		res := put(t, s, b, 1)
		if res.Version != 1 || tpl.Version != "1" {
			t.Fatalf("%s: stored as version %d, file version %s", f, res.Version, tpl.Version)
		}
		want[tpl.URL] = tpl
		got, err := lib.At(ctx, tenant, tpl.Canonical())
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		if !reflect.DeepEqual(got, tpl) {
			t.Errorf("%s: the stored version reads otherwise than the file", f)
		}
		if again, _ := lib.At(ctx, tenant, tpl.Canonical()); again != got {
			t.Errorf("%s: parsed twice", f)
		}
		if latest, err := lib.Latest(ctx, tenant, tpl.URL); err != nil || latest != got {
			t.Errorf("%s: latest %v %v", f, latest, err)
		}
	}
	active, err := lib.Active(ctx, tenant)
	if err != nil || len(active) != len(want) {
		t.Fatalf("active: %d (%v), want %d", len(active), err, len(want))
	}
	for _, a := range active {
		if want[a.URL] == nil || !reflect.DeepEqual(a, want[a.URL]) {
			t.Errorf("active %s differs", a.URL)
		}
	}

	hf := want["https://passerelle.health/fhir/PlanDefinition/hf-post-discharge"]
	if hf == nil {
		t.Fatal("no hf-post-discharge")
	}
	var codes []string
	for _, r := range hf.AlertRules {
		codes = append(codes, r.Code)
	}
	if got := strings.Join(codes, ","); got != "weight-gain,systolic-low,heart-rate,nyha-worsening,missed-visit,weight-missing" {
		t.Errorf("hf rules %s", got)
	}
	wg, _ := hf.AlertRule("weight-gain")
	if wg.Kind != pathway.AlertRise || wg.Delta == nil || *wg.Delta != 2 || wg.Window != 72*time.Hour || wg.Observation != "29463-7" {
		t.Errorf("weight-gain %+v", wg)
	}
	hr, _ := hf.AlertRule("heart-rate")
	if hr.Low == nil || *hr.Low != 50 || hr.High == nil || *hr.High != 110 {
		t.Errorf("heart-rate %+v", hr)
	}
	def := pathway.Delays{Acceptance: time.Hour, Escalation: time.Minute}
	if got := hf.Delays("first-contact", def); got != (pathway.Delays{Acceptance: 12 * time.Hour, Escalation: 24 * time.Hour}) {
		t.Errorf("first-contact delays %+v", got)
	}
	if got := hf.Delays("gp-visit", def); got != (pathway.Delays{Acceptance: 24 * time.Hour, Escalation: 24 * time.Hour}) {
		t.Errorf("gp-visit delays %+v", got)
	}
	fall := want["https://passerelle.health/fhir/PlanDefinition/fall-home-return"]
	if got := fall.Delays("gp-visit", def); got != def {
		t.Errorf("fall-home-return has no team-assignment: %+v", got)
	}
	if mv, ok := fall.AlertRule("missed-visit"); !ok || !reflect.DeepEqual(mv.Actions, []string{"first-contact", "home-safety-visit", "nurse-follow-up"}) {
		t.Errorf("fall-home-return missed-visit %+v", mv)
	}
}

// TestLibraryVersions: an episode keeps the version it was opened with
// while the latest follows uploads; a version stored around the upload's
// checks is refused by the library as by the upload, never half-read.
func TestLibraryVersions(t *testing.T) {
	s := openStore(t)
	lib := pathway.NewLibrary(s, slog.New(slog.NewTextHandler(io.Discard, nil)))
	ctx := context.Background()
	b := shipped(t)["PlanDefinition/hf-post-discharge.json"]
	put(t, s, b, 1)
	url := "https://passerelle.health/fhir/PlanDefinition/hf-post-discharge"
	v1, err := lib.At(ctx, tenant, url+"|1")
	if err != nil {
		t.Fatal(err)
	}

	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["version"] = "2"
	m["title"] = "Version 2"
	b2, _ := json.Marshal(m)
	put(t, s, b2, 2)
	if got, err := lib.Latest(ctx, tenant, url); err != nil || got.Title != "Version 2" || got.Version != "2" {
		t.Errorf("latest %v %v", got, err)
	}
	if got, err := lib.At(ctx, tenant, url+"|1"); err != nil || got != v1 {
		t.Errorf("version 1: %v %v", got, err)
	}

	// Version 3 has a range rule without a threshold.
	for _, e := range m["extension"].([]any) {
		em := e.(map[string]any)
		if em["url"] == pathway.ExtAlertRule && strings.Contains(string(must(json.Marshal(em))), `"systolic-low"`) {
			var kept []any
			for _, sub := range em["extension"].([]any) {
				if sub.(map[string]any)["url"] != "low" {
					kept = append(kept, sub)
				}
			}
			em["extension"] = kept
		}
	}
	m["version"] = "3"
	b3, _ := json.Marshal(m)
	put(t, s, b3, 3)
	_, err = lib.Latest(ctx, tenant, url)
	var ie *pathway.InvalidError
	if !errors.As(err, &ie) || !pathway.IsInvalid(err) || !strings.Contains(err.Error(), `"systolic-low"`) {
		t.Errorf("unreadable latest: %v", err)
	}
	if active, err := lib.Active(ctx, tenant); err != nil || len(active) != 0 {
		t.Errorf("an unreadable template is active: %d %v", len(active), err)
	}
	if _, err := lib.At(ctx, tenant, url+"|9"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("version 9: %v", err)
	}
	if _, err := lib.At(ctx, "other", url+"|1"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another tenant's template: %v", err)
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
