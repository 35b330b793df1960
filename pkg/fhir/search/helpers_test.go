package search

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// day returns the interval of a Paris calendar day, in UTC, as Extract and
// ParseQuery produce it.
func day(t *testing.T, s string) (lo, hi time.Time) {
	t.Helper()
	d, err := time.ParseInLocation(time.DateOnly, s, paris)
	if err != nil {
		t.Fatal(err)
	}
	return d.UTC(), d.AddDate(0, 0, 1).UTC()
}

func ts(t *testing.T, s string) time.Time {
	t.Helper()
	v, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatal(err)
	}
	return v.UTC()
}

// fixture reads testdata/name.json and its resourceType.
func fixture(t testing.TB, name string) (string, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		ResourceType string `json:"resourceType"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return r.ResourceType, b
}

// withProfiles returns the default registry plus the testdata
// SearchParameters that stand for Passerelle's profile package.
func withProfiles(t testing.TB) *Registry {
	t.Helper()
	r := Default()
	for _, name := range []string{"sp-task-due", "sp-practitionerrole-territory"} {
		_, b := fixture(t, name)
		if err := r.Add(b); err != nil {
			t.Fatalf("add %s: %v", name, err)
		}
	}
	return r
}

func ptr(s string) *string { return &s }
