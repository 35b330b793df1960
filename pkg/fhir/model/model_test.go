package model

import (
	"bytes"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/directory"
)

// decodeAny decodes JSON as generic values, numbers as their text.
func decodeAny(t testing.TB, b []byte) any {
	t.Helper()
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		t.Fatalf("decode %s: %v", b, err)
	}
	return v
}

// roundTrip decodes a resource into its type and encodes it again.
func roundTrip(typ string, in []byte) ([]byte, error) {
	var v any
	switch typ {
	case "Task":
		v = new(Task)
	case "EpisodeOfCare":
		v = new(EpisodeOfCare)
	case "CareTeam":
		v = new(CareTeam)
	case "Observation":
		v = new(Observation)
	}
	if err := json.Unmarshal(in, v); err != nil {
		return nil, err
	}
	return json.Marshal(v)
}

var modelled = map[string]bool{"Task": true, "EpisodeOfCare": true, "CareTeam": true, "Observation": true}

// resourcesIn finds the modelled resources anywhere in a JSON value
// (Bundle entries, events, contained resources).
func resourcesIn(v any, out *[]map[string]any) {
	switch x := v.(type) {
	case map[string]any:
		if typ, _ := x["resourceType"].(string); modelled[typ] {
			*out = append(*out, x)
		}
		for _, e := range x {
			resourcesIn(e, out)
		}
	case []any:
		for _, e := range x {
			resourcesIn(e, out)
		}
	}
}

// checkRoundTrip asserts that r comes back from its type as it went in.
func checkRoundTrip(t *testing.T, where string, r map[string]any) {
	t.Helper()
	in, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	// Numbers as they were written: encode r through UseNumber.
	typ := r["resourceType"].(string)
	out, err := roundTrip(typ, in)
	if err != nil {
		t.Errorf("%s: %s/%v: %v", where, typ, r["id"], err)
		return
	}
	if want, got := decodeAny(t, in), decodeAny(t, out); !reflect.DeepEqual(want, got) {
		t.Errorf("%s: %s/%v changed on a round trip:\n in: %s\nout: %s", where, typ, r["id"], in, out)
	}
}

// TestRoundTripRepository round-trips every Task, EpisodeOfCare, CareTeam
// and Observation of the repository's test data and golden files.
func TestRoundTripRepository(t *testing.T) {
	root := filepath.Join("..", "..", "..")
	found := map[string]int{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" || d.Name() == "node_modules" {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.Contains(filepath.ToSlash(path), "/testdata/") && !strings.Contains(d.Name(), "golden") {
			return nil
		}
		if strings.Contains(filepath.ToSlash(path), "/testdata/fuzz/") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber()
		var v any
		if dec.Decode(&v) != nil {
			return nil // not JSON
		}
		var rs []map[string]any
		resourcesIn(v, &rs)
		for _, r := range rs {
			found[r["resourceType"].(string)]++
			checkRoundTrip(t, path, r)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for typ := range modelled {
		if found[typ] == 0 {
			t.Errorf("no %s found in the repository's test data", typ)
		}
	}
	t.Logf("round-tripped %v", found)
}

// TestRoundTripUnknown round-trips resources full of elements the types do
// not name: primitive extensions, contained resources, value[x] kinds left
// opaque, elements of datatypes, decimals with trailing zeros, empty lists.
func TestRoundTripUnknown(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("testdata", "unknown.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rs []json.RawMessage
	if err := json.Unmarshal(b, &rs); err != nil {
		t.Fatal(err)
	}
	for _, raw := range rs {
		r := decodeAny(t, raw).(map[string]any)
		t.Run(r["resourceType"].(string)+"/"+r["id"].(string), func(t *testing.T) {
			out, err := roundTrip(r["resourceType"].(string), raw)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(decodeAny(t, raw), decodeAny(t, out)) {
				t.Errorf("changed on a round trip:\n in: %s\nout: %s", raw, out)
			}
		})
	}
}

// TestDecimalsKeepTheirText checks that a decimal comes back as written.
func TestDecimalsKeepTheirText(t *testing.T) {
	in := `{"resourceType":"Observation","valueQuantity":{"value":72.50,"unit":"kg"},"component":[{"valueQuantity":{"value":1E2}}],"extension":[{"url":"u","valueDecimal":0.10}]}`
	var o Observation
	if err := json.Unmarshal([]byte(in), &o); err != nil {
		t.Fatal(err)
	}
	if o.ValueQuantity.Value != "72.50" || o.Component[0].ValueQuantity.Value != "1E2" || *o.Extension[0].ValueDecimal != "0.10" {
		t.Errorf("decimals read as %q, %q, %q", o.ValueQuantity.Value, o.Component[0].ValueQuantity.Value, *o.Extension[0].ValueDecimal)
	}
	out, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{`"value":72.50`, `"value":1E2`, `"valueDecimal":0.10`} {
		if !strings.Contains(string(out), s) {
			t.Errorf("encoded %s, want it to hold %s", out, s)
		}
	}
}

// TestOnlyTheValueGiven is why the types are hand-written: a Task output
// or an extension encodes its one value[x], nothing else.
func TestOnlyTheValueGiven(t *testing.T) {
	task := Task{ResourceType: "Task", ID: "t1", Status: "completed", Intent: "order",
		Output: []TaskOutput{{Type: &CodeableConcept{Text: "report"}, ValueReference: Ref("DocumentReference/d1")}},
		Extension: []Extension{{URL: "u", Extension: []Extension{
			{URL: "done", ValueBoolean: Ptr(false)},
			{URL: "note", ValueString: Ptr("")},
		}}},
	}
	got, err := json.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Task","id":"t1","extension":[{"url":"u","extension":[{"url":"done","valueBoolean":false},{"url":"note","valueString":""}]}],"status":"completed","intent":"order","output":[{"type":{"text":"report"},"valueReference":{"reference":"DocumentReference/d1"}}]}`
	if string(got) != want {
		t.Errorf("encoded\n %s\nwant\n %s", got, want)
	}
}

// TestCaseSensitive: FHIR names are case-sensitive; "Status" is not
// "status" and is kept as an unknown element.
func TestCaseSensitive(t *testing.T) {
	var task Task
	if err := json.Unmarshal([]byte(`{"resourceType":"Task","status":"requested","Status":"completed"}`), &task); err != nil {
		t.Fatal(err)
	}
	if task.Status != "requested" {
		t.Errorf("status %q, want requested", task.Status)
	}
	out, _ := json.Marshal(task)
	if want := `{"resourceType":"Task","status":"requested","Status":"completed"}`; string(out) != want {
		t.Errorf("encoded %s, want %s", out, want)
	}
}

func TestEditKeepsTheRest(t *testing.T) {
	in := `{"resourceType":"Task","id":"t1","status":"requested","intent":"order","text":{"status":"generated"},` +
		`"owner":{"reference":"PractitionerRole/a","extension":[{"url":"x","valueCode":"y"}]},` +
		`"extension":[{"url":"a","valueCode":"1"},{"url":"b","valueAddress":{"city":"Lyon"}}]}`
	var task Task
	if err := json.Unmarshal([]byte(in), &task); err != nil {
		t.Fatal(err)
	}
	task.Status = "accepted"
	task.SetExtension(Extension{URL: "a", ValueCode: Ptr("2")})
	task.SetExtension(Extension{URL: "c", ValueBoolean: Ptr(true)})
	task.Owner.Display = "A"
	out, err := json.Marshal(task)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"resourceType":"Task","id":"t1","extension":[{"url":"a","valueCode":"2"},{"url":"b","valueAddress":{"city":"Lyon"}},{"url":"c","valueBoolean":true}],` +
		`"status":"accepted","intent":"order","owner":{"reference":"PractitionerRole/a","display":"A","extension":[{"url":"x","valueCode":"y"}]},"text":{"status":"generated"}}`
	if !reflect.DeepEqual(decodeAny(t, []byte(want)), decodeAny(t, out)) {
		t.Errorf("encoded\n %s\nwant\n %s", out, want)
	}
	if e := task.GetExtension("b"); e == nil || e.URL != "b" {
		t.Errorf("extension b: %+v", e)
	}
	if e := task.GetExtension("none"); e != nil {
		t.Errorf("extension none: %+v", e)
	}
}

func TestReference(t *testing.T) {
	for _, c := range []struct{ ref, typ, id string }{
		{"Patient/p1", "Patient", "p1"},
		{"https://fhir.example.org/fhir/Patient/p1", "Patient", "p1"},
		{"Task/t1/_history/3", "Task", "t1"},
		{"#contained", "", ""},
		{"urn:uuid:0b4c6a1e-0000-4000-8000-000000000000", "", ""},
		{"", "", ""},
		{"p1", "", ""},
	} {
		r := Ref(c.ref)
		if r.ResourceType() != c.typ || r.ID() != c.id {
			t.Errorf("%q: type %q id %q, want %q %q", c.ref, r.ResourceType(), r.ID(), c.typ, c.id)
		}
	}
	var nilRef *Reference
	if nilRef.ID() != "" || nilRef.ResourceType() != "" || nilRef.String() != "" {
		t.Error("a nil reference has no type, id nor text")
	}
	if got := (&Reference{Type: "Patient", Identifier: &Identifier{Value: "x"}}).ResourceType(); got != "Patient" {
		t.Errorf("logical reference type %q, want Patient", got)
	}
}

func TestCodes(t *testing.T) {
	if SystemTeamRole != directory.SystemTeamRole {
		t.Errorf("SystemTeamRole %q, directory's %q", SystemTeamRole, directory.SystemTeamRole)
	}
	task := Task{PerformerType: []CodeableConcept{
		{Coding: []Coding{{System: "other", Code: "x"}}},
		*Codeable(SystemTeamRole, "ide", ""),
	}, Code: Codeable("s", "c", "Visite")}
	if task.Role() != "ide" {
		t.Errorf("role %q, want ide", task.Role())
	}
	if task.Action("s") != "c" || task.Action("t") != "" || task.Title() != "Visite" {
		t.Errorf("action %q title %q", task.Action("s"), task.Title())
	}
	if !task.Code.Has("s", "c") || task.Code.Has("t", "c") || !task.Code.Has("", "c") {
		t.Error("Has")
	}
	var none *CodeableConcept
	if none.Code("") != "" || none.Has("", "") || none.Display() != "" {
		t.Error("a nil concept has no code")
	}
	if (&Task{}).Role() != "" {
		t.Error("a task without performerType has no role")
	}
}

func TestParseDateTime(t *testing.T) {
	for _, c := range []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"2025-03-14T10:00:00+01:00", time.Date(2025, 3, 14, 9, 0, 0, 0, time.UTC), true},
		{"2025-03-14T10:00:00.123Z", time.Date(2025, 3, 14, 10, 0, 0, 123e6, time.UTC), true},
		{"2025-03-14", time.Date(2025, 3, 14, 0, 0, 0, 0, time.UTC), true},
		{"2025-03", time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC), true},
		{"2025", time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC), true},
		{"", time.Time{}, false},
		{"14/03/2025", time.Time{}, false},
	} {
		got, ok := ParseDateTime(c.in)
		if ok != c.ok || !got.Equal(c.want) {
			t.Errorf("ParseDateTime(%q) = %v, %v; want %v, %v", c.in, got, ok, c.want, c.ok)
		}
	}
	p := &Period{Start: "2025-03-14", End: "2025-03-17"}
	if s, ok := p.StartTime(); !ok || s.Day() != 14 {
		t.Errorf("start %v %v", s, ok)
	}
	if !p.Ended() || (*Period)(nil).Ended() {
		t.Error("Ended")
	}
}

func TestCareTeamParticipant(t *testing.T) {
	ct := CareTeam{Participant: []CareTeamParticipant{
		{Role: []CodeableConcept{*Codeable(SystemTeamRole, "ide", "")}, Member: Ref("PractitionerRole/a"), Period: &Period{Start: "2025-03-01", End: "2025-03-02"}},
		{Role: []CodeableConcept{*Codeable(SystemTeamRole, "gp", "")}, Member: Ref("PractitionerRole/b")},
	}}
	if ct.Participant[0].Current() || !ct.Participant[1].Current() || ct.Participant[1].TeamRole() != "gp" {
		t.Error("participants read wrong")
	}
}

func TestExtensionHelpers(t *testing.T) {
	e := Extension{URL: "a", Extension: []Extension{
		{URL: "tried", ValueReference: Ref("PractitionerRole/1")},
		{URL: "tried", ValueReference: Ref("PractitionerRole/2")},
		{URL: "at", ValueDateTime: Ptr("2025-03-14")},
		{URL: "on", ValueBoolean: Ptr(true)},
	}}
	if got := e.All("tried"); len(got) != 2 || got[1].Ref() != "PractitionerRole/2" {
		t.Errorf("All(tried) = %v", got)
	}
	if e.Get("at").String() != "2025-03-14" || !e.Get("on").Bool() || e.Get("none").Bool() || e.Get("none").Ref() != "" {
		t.Error("Get")
	}
}
