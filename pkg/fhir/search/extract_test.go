package search

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

var fixtures = []string{
	"patient", "task", "observation-datetime", "observation-period",
	"encounter", "episodeofcare", "auditevent", "careteam", "careplan",
	"practitionerrole",
}

func TestExtract(t *testing.T) {
	r := withProfiles(t)
	tok := func(param, system, code string) Entry {
		return Entry{Param: param, Kind: store.KindToken, System: system, Code: code}
	}
	ref := func(param, ref string) Entry { return Entry{Param: param, Kind: store.KindReference, Ref: ref} }
	str := func(param, text, raw string) Entry {
		return Entry{Param: param, Kind: store.KindString, Text: text, Raw: raw}
	}
	date := func(param string, lo, hi time.Time) Entry {
		return Entry{Param: param, Kind: store.KindDate, Lo: lo, Hi: hi}
	}
	birthLo, birthHi := day(t, "1948-07-02")
	restrLo, _ := day(t, "2025-03-14")
	_, restrHi := day(t, "2025-03-17")
	obsLo, _ := day(t, "2025-03-20")
	_, obsHi := day(t, "2025-03-21")
	epLo, _ := day(t, "2025-03-14")

	tests := []struct {
		fixture string
		want    []Entry
		notWant []Entry
	}{
		{
			fixture: "patient",
			want: []Entry{
				tok("_id", "", "pat-1"),
				tok("identifier", "urn:oid:1.2.250.1.213.1.4.8", "255037512345678"),
				tok("active", "", "true"),
				tok("gender", "", "female"),
				tok("email", "email", "elodie.lefevre@example.fr"),
				tok("phone", "phone", "+33 6 12 34 56 78"),
				str("given", "elodie", "Élodie"),
				str("family", "lefevre", "Lefèvre"),
				str("family", "dupont-coeur", "Dupont-Cœur"),
				str("name", "mme", "Mme"),
				str("address", "12 rue de la paix", "12  rue de la   Paix"),
				str("address-city", "roanne", "Roanne"),
				date("birthdate", birthLo, birthHi),
				date("_lastUpdated", ts(t, "2025-03-14T08:30:00Z"), ts(t, "2025-03-14T08:30:00.001Z")),
				ref("general-practitioner", "Practitioner/dr-bernard"),
				// An absolute reference keeps its Type/id.
				ref("organization", "Organization/cpts-roanne"),
			},
			notWant: []Entry{
				// email is the telecom with system email only.
				tok("email", "phone", "+33 6 12 34 56 78"),
			},
		},
		{
			fixture: "task",
			want: []Entry{
				tok("status", "", "requested"),
				tok("code", "https://passerelle.health/fhir/CodeSystem/task-type", "first-visit"),
				ref("owner", "PractitionerRole/ide-martin"),
				ref("patient", "Patient/pat-1"),
				ref("subject", "Patient/pat-1"),
				ref("focus", "EpisodeOfCare/ep-1"),
				ref("based-on", "CarePlan/cp-1"),
				date("due", restrLo, restrHi),
				date("authored-on", ts(t, "2025-03-14T09:00:00Z"), ts(t, "2025-03-14T09:00:01Z")),
			},
			notWant: []Entry{
				// Contained and URN references are not indexed.
				ref("based-on", "#contained"),
			},
		},
		{
			fixture: "observation-datetime",
			want: []Entry{
				tok("code", "http://loinc.org", "29463-7"),
				ref("patient", "Patient/pat-1"),
				ref("subject", "Patient/pat-1"),
				// effectiveDateTime, a choice element, to the second.
				date("date", ts(t, "2025-03-20T07:15:00Z"), ts(t, "2025-03-20T07:15:01Z")),
			},
			notWant: []Entry{
				// CodeableConcept.text is not a token.
				tok("code", "", "Poids"),
			},
		},
		{
			fixture: "observation-period",
			want: []Entry{
				date("date", obsLo, obsHi),
				ref("subject", "Group/g-1"),
				tok("component-code", "http://loinc.org", "8480-6"),
				tok("combo-code", "http://loinc.org", "8462-4"),
			},
			notWant: []Entry{
				// where(resolve() is Patient) keeps Patient references only.
				ref("patient", "Group/g-1"),
			},
		},
		{
			fixture: "encounter",
			want: []Entry{
				ref("patient", "Patient/pat-1"),
				ref("service-provider", "Organization/ch-demo"),
				ref("practitioner", "Practitioner/dr-petit"),
				tok("class", "http://terminology.hl7.org/CodeSystem/v3-ActCode", "IMP"),
				date("date", ts(t, "2025-03-01T13:00:00Z"), ts(t, "2025-03-14T10:00:01Z")),
			},
			notWant: []Entry{ref("practitioner", "PractitionerRole/ide-martin")},
		},
		{
			fixture: "episodeofcare",
			want: []Entry{
				ref("patient", "Patient/pat-1"),
				tok("status", "", "active"),
				tok("type", "https://passerelle.health/fhir/CodeSystem/pathway", "heart-failure"),
				// An open period runs to FarFuture.
				date("date", epLo, FarFuture),
			},
		},
		{
			fixture: "auditevent",
			want: []Entry{
				ref("patient", "Patient/pat-1"),
				ref("entity", "Task/task-1"),
				ref("agent", "PractitionerRole/ide-martin"),
				str("agent-name", "infirmiere martin", "Infirmière Martin"),
				tok("action", "", "R"),
				date("date", ts(t, "2025-03-15T12:00:00.123Z"), ts(t, "2025-03-15T12:00:00.124Z")),
			},
			notWant: []Entry{ref("patient", "PractitionerRole/ide-martin")},
		},
		{
			fixture: "careteam",
			want: []Entry{
				ref("patient", "Patient/pat-1"),
				ref("participant", "Practitioner/dr-bernard"),
			},
		},
		{
			fixture: "careplan",
			want: []Entry{
				ref("patient", "Patient/pat-1"),
				tok("status", "", "active"),
				// A canonical with a version gives its Type/id.
				ref("instantiates-canonical", "PlanDefinition/heart-failure"),
			},
		},
		{
			fixture: "practitionerrole",
			want: []Entry{
				// where(url = '…') on extensions, then the value[x] choice.
				tok("territory", "https://www.insee.fr/fr/information/2560452", "42187"),
				tok("role", "https://passerelle.health/fhir/CodeSystem/team-role", "nurse"),
			},
			notWant: []Entry{tok("territory", "", "ignored")},
		},
	}
	for _, tt := range tests {
		t.Run(tt.fixture, func(t *testing.T) {
			typ, body := fixture(t, tt.fixture)
			got, err := r.Extract(typ, body)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !slices.Contains(got, w) {
					t.Errorf("missing entry %s\ngot:\n%s", formatEntry(w), formatEntries(got))
				}
			}
			for _, w := range tt.notWant {
				if slices.Contains(got, w) {
					t.Errorf("unexpected entry %s", formatEntry(w))
				}
			}
			checkEntries(t, got)
		})
	}
}

// checkEntries checks the invariants every extraction keeps.
func checkEntries(t testing.TB, es []Entry) {
	t.Helper()
	seen := map[Entry]bool{}
	for i, e := range es {
		if seen[e] {
			t.Errorf("duplicate entry %s", formatEntry(e))
		}
		seen[e] = true
		if i > 0 && es[i-1].Param > e.Param {
			t.Errorf("entries not ordered by parameter: %s before %s", es[i-1].Param, e.Param)
		}
		switch e.Kind {
		case store.KindDate:
			if !e.Lo.Before(e.Hi) {
				t.Errorf("date entry %s: Lo not before Hi", formatEntry(e))
			}
			if e.Lo.Location() != time.UTC || e.Hi.Location() != time.UTC {
				t.Errorf("date entry %s not in UTC", formatEntry(e))
			}
			if e.Lo.Nanosecond()%1000 != 0 || e.Hi.Nanosecond()%1000 != 0 {
				t.Errorf("date entry %s finer than a microsecond", formatEntry(e))
			}
		case store.KindString:
			if e.Text == "" || e.Text != Normalize(e.Raw) {
				t.Errorf("string entry %s: Text is not Normalize(Raw)", formatEntry(e))
			}
		case store.KindReference:
			if strings.Count(e.Ref, "/") != 1 {
				t.Errorf("reference entry %s is not Type/id", formatEntry(e))
			}
		case store.KindToken:
			if e.Code == "" {
				t.Errorf("token entry %s without code", formatEntry(e))
			}
		}
	}
}

// TestExtractGolden pins the whole extraction of every fixture; run with
// -update after a deliberate change and review the diff.
func TestExtractGolden(t *testing.T) {
	r := withProfiles(t)
	for _, name := range fixtures {
		t.Run(name, func(t *testing.T) {
			typ, body := fixture(t, name)
			got, err := r.Extract(typ, body)
			if err != nil {
				t.Fatal(err)
			}
			text := formatEntries(got)
			path := filepath.Join("testdata", "golden", name+".txt")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(want) != text {
				t.Errorf("extraction of %s differs from %s (-want +got):\n%s", name, path, lineDiff(string(want), text))
			}
		})
	}
}

func TestExtractDeduplicates(t *testing.T) {
	typ, body := fixture(t, "observation-period")
	got, err := Default().Extract(typ, body)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range got {
		if e.Param == "code" && e.Code == "85354-9" {
			n++
		}
	}
	if n != 1 {
		t.Errorf("the repeated coding gave %d code entries, want 1", n)
	}
}

func TestExtractErrors(t *testing.T) {
	r := Default()
	tests := []struct {
		name string
		typ  string
		body string
	}{
		{"not JSON", "Patient", `{"resourceType":`},
		{"not an object", "Patient", `[1,2]`},
		{"type mismatch", "Task", `{"resourceType":"Patient","id":"x"}`},
		{"no resourceType", "Patient", `{"id":"x"}`},
		{"no resourceType on either side", "", `{"id":"x"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Extract(tt.typ, []byte(tt.body))
			if !errors.Is(err, store.ErrInvalid) {
				t.Errorf("Extract = %v, want an error wrapping store.ErrInvalid", err)
			}
		})
	}
}

func TestExtractSkipsUnindexable(t *testing.T) {
	body := `{"resourceType":"Encounter","id":"e",
		"period":{"start":"2025-13-01"},
		"subject":{"reference":"urn:uuid:1234"},
		"location":[{"period":{"end":"2025-03-01","start":"2025-04-01"}}],
		"type":[{"coding":[{"system":"s"}]}, {"text":"only text"}]}`
	got, err := Default().Extract("Encounter", []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{{Param: "_id", Kind: store.KindToken, Code: "e"}}
	if !slices.Equal(got, want) {
		t.Errorf("got\n%swant only the _id entry", formatEntries(got))
	}
}

func TestExtractUnknownType(t *testing.T) {
	got, err := Default().Extract("Basic", []byte(`{"resourceType":"Basic","id":"b1","meta":{"lastUpdated":"2025-01-01T00:00:00Z"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Param != "_id" || got[1].Param != "_lastUpdated" {
		t.Errorf("got\n%swant _id and _lastUpdated", formatEntries(got))
	}
}

func formatEntry(e Entry) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s", e.Param, e.Kind)
	switch e.Kind {
	case store.KindToken:
		fmt.Fprintf(&b, " %q|%q", e.System, e.Code)
	case store.KindReference:
		fmt.Fprintf(&b, " %s", e.Ref)
	case store.KindString, store.KindURI:
		fmt.Fprintf(&b, " %q raw %q", e.Text, e.Raw)
	case store.KindDate:
		fmt.Fprintf(&b, " [%s, %s)", e.Lo.Format(time.RFC3339Nano), e.Hi.Format(time.RFC3339Nano))
	}
	return b.String()
}

func formatEntries(es []Entry) string {
	var b strings.Builder
	for _, e := range es {
		b.WriteString(formatEntry(e))
		b.WriteByte('\n')
	}
	return b.String()
}

// lineDiff lists the lines only in want (-) and only in got (+).
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for _, l := range w {
		if !slices.Contains(g, l) {
			fmt.Fprintf(&b, "-%s\n", l)
		}
	}
	for _, l := range g {
		if !slices.Contains(w, l) {
			fmt.Fprintf(&b, "+%s\n", l)
		}
	}
	return b.String()
}
