package search

import (
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

func mustQuery(t testing.TB, s string) url.Values {
	t.Helper()
	q, err := url.ParseQuery(s)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestParseQuery(t *testing.T) {
	r := withProfiles(t)
	birthLo, birthHi := day(t, "1948-07-02")
	marchLo, _ := day(t, "2025-03-01")
	_, marchHi := day(t, "2025-03-31")
	tests := []struct {
		name  string
		typ   string
		query string
		want  Parsed
	}{
		{
			name: "token forms", typ: "Patient",
			query: "identifier=urn:oid:1.2.250.1.213.1.4.8|255037512345678,|IPP-42,urn:oid:1.2.250.1.71.4.2.7|,abc",
			want: Parsed{Type: "Patient", Params: []store.Param{{Name: "identifier", Kind: store.KindToken, Values: []store.Value{
				{System: ptr("urn:oid:1.2.250.1.213.1.4.8"), Code: "255037512345678"},
				{System: ptr(""), Code: "IPP-42"},
				{System: ptr("urn:oid:1.2.250.1.71.4.2.7")},
				{Code: "abc"},
			}}}},
		},
		{
			name: "repeated parameters are separate criteria", typ: "Patient",
			query: "given=Élo&given=marie&_count=20&_cursor=opaque&_total=accurate",
			want: Parsed{Type: "Patient", Count: 20, Cursor: "opaque", Total: true, Params: []store.Param{
				{Name: "given", Kind: store.KindString, Values: []store.Value{{Text: "elo"}}},
				{Name: "given", Kind: store.KindString, Values: []store.Value{{Text: "marie"}}},
			}},
		},
		{
			name: "string exact and escaped comma", typ: "Patient",
			query: `family:exact=Lefèvre&name=Dupont\,Cœur`,
			want: Parsed{Type: "Patient", Params: []store.Param{
				{Name: "family", Kind: store.KindString, Values: []store.Value{{Text: "Lefèvre", Exact: true}}},
				{Name: "name", Kind: store.KindString, Values: []store.Value{{Text: "dupont,coeur"}}},
			}},
		},
		{
			name: "references", typ: "Task",
			query: "patient=pat-1&owner=PractitionerRole/ide-martin,https://h.example/fhir/Practitioner/p1/_history/3&focus:EpisodeOfCare=ep-1",
			want: Parsed{Type: "Task", Params: []store.Param{
				{Name: "focus", Kind: store.KindReference, Values: []store.Value{{Ref: "EpisodeOfCare/ep-1"}}},
				{Name: "owner", Kind: store.KindReference, Values: []store.Value{{Ref: "PractitionerRole/ide-martin"}, {Ref: "Practitioner/p1"}}},
				{Name: "patient", Kind: store.KindReference, Values: []store.Value{{Ref: "Patient/pat-1"}}},
			}},
		},
		{
			name: "dates", typ: "Patient",
			query: "birthdate=1948-07-02&_lastUpdated=ge2025-03&_lastUpdated=lt2025-03-14T10:00:00Z",
			want: Parsed{Type: "Patient", Params: []store.Param{
				{Name: "_lastUpdated", Kind: store.KindDate, Values: []store.Value{{Prefix: "ge", Lo: marchLo, Hi: marchHi}}},
				{Name: "_lastUpdated", Kind: store.KindDate, Values: []store.Value{{Prefix: "lt", Lo: ts(t, "2025-03-14T10:00:00Z"), Hi: ts(t, "2025-03-14T10:00:01Z")}}},
				{Name: "birthdate", Kind: store.KindDate, Values: []store.Value{{Prefix: "eq", Lo: birthLo, Hi: birthHi}}},
			}},
		},
		{
			name: "an unescaped + in a zone decodes to a space", typ: "Task",
			query: "due=le2025-03-17T18:30+01:00",
			want: Parsed{Type: "Task", Params: []store.Param{
				{Name: "due", Kind: store.KindDate, Values: []store.Value{{Prefix: "le", Lo: ts(t, "2025-03-17T17:30:00Z"), Hi: ts(t, "2025-03-17T17:31:00Z")}}},
			}},
		},
		{
			name: "uri and _id", typ: "StructureDefinition",
			query: "url=http://hl7.org/fhir/StructureDefinition/Patient&_id=Patient&_format=json",
			want: Parsed{Type: "StructureDefinition", Params: []store.Param{
				{Name: "_id", Kind: store.KindToken, Values: []store.Value{{Code: "Patient"}}},
				{Name: "url", Kind: store.KindURI, Values: []store.Value{{Text: "http://hl7.org/fhir/StructureDefinition/Patient"}}},
			}},
		},
		{
			name: "profile parameter", typ: "PractitionerRole",
			query: "territory=42187",
			want: Parsed{Type: "PractitionerRole", Params: []store.Param{
				{Name: "territory", Kind: store.KindToken, Values: []store.Value{{Code: "42187"}}},
			}},
		},
		{name: "empty query", typ: "Patient", query: "", want: Parsed{Type: "Patient"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.ParseQuery(tt.typ, mustQuery(t, tt.query))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseQuery(%s, %q)\n got %+v\nwant %+v", tt.typ, tt.query, got, tt.want)
			}
		})
	}
}

func TestParseQueryErrors(t *testing.T) {
	r := withProfiles(t)
	tests := []struct {
		name      string
		typ       string
		query     string
		wantParam string
		wantValue string
	}{
		{"unknown parameter", "Patient", "identifier=x&shoe-size=42", "shoe-size", ""},
		{"parameter of another type", "Patient", "owner=PractitionerRole/1", "owner", ""},
		{"unknown control parameter", "Patient", "_foo=1", "_foo", ""},
		{"sort", "Patient", "_sort=-_lastUpdated", "_sort", ""},
		{"include", "Task", "_include=Task:patient", "_include", ""},
		{"other cursor name", "Task", "_page_token=x", "_page_token", ""},
		{"bad date", "Patient", "birthdate=2025-02-30", "birthdate", "2025-02-30"},
		{"bad date prefix", "Patient", "birthdate=xx2025", "birthdate", "xx2025"},
		{"date with time but no minutes", "Patient", "birthdate=2025-02-03T10", "birthdate", "2025-02-03T10"},
		{"count zero", "Patient", "_count=0", "_count", "0"},
		{"count too large", "Patient", "_count=1001", "_count", "1001"},
		{"count not a number", "Patient", "_count=ten", "_count", "ten"},
		{"count twice", "Patient", "_count=1&_count=2", "_count", ""},
		{"empty cursor", "Patient", "_cursor=", "_cursor", ""},
		{"bad total", "Patient", "_total=maybe", "_total", "maybe"},
		{"xml", "Patient", "_format=xml", "_format", "xml"},
		{"token modifier", "Patient", "identifier:not=x", "identifier:not", ""},
		{"token text modifier", "Observation", "code:text=poids", "code:text", ""},
		{"contains", "Patient", "name:contains=lod", "name:contains", ""},
		{"missing", "Task", "owner:missing=true", "owner:missing", ""},
		{"modifier on date", "Patient", "birthdate:exact=2025", "birthdate:exact", ""},
		{"modifier on uri", "StructureDefinition", "url:below=http://x", "url:below", ""},
		{"chained", "Task", "patient.name=Lefèvre", "patient.name", ""},
		{"ambiguous bare id", "Task", "owner=ide-martin", "owner", "ide-martin"},
		{"reference to a non-target type", "Task", "patient=Practitioner/1", "patient", "Practitioner/1"},
		{"type modifier not a target", "Task", "patient:Practitioner=1", "patient:Practitioner", ""},
		{"type modifier disagrees", "Task", "owner:Practitioner=PractitionerRole/1", "owner:Practitioner", "PractitionerRole/1"},
		{"bad id", "Task", "patient=a b", "patient", "a b"},
		{"bad reference", "Task", "patient=Patient/", "patient", "Patient/"},
		{"empty value", "Task", "status=", "status", ""},
		{"empty OR value", "Task", "status=requested,,accepted", "status", "requested,,accepted"},
		{"token with two bars", "Patient", "identifier=a|b|c", "identifier", "a|b|c"},
		{"bare bar", "Patient", "identifier=|", "identifier", "|"},
		{"blank string", "Patient", "given=%20%20", "given", "  "},
		{"too many values", "Patient", "gender=" + strings.Repeat("x,", MaxValues) + "x", "gender", ""},
		{"not a resource type", "task", "status=x", "", ""},
		{"unknown resource type", "Basic", "_id=x", "", ""},
		{"the pseudo type", "Resource", "_id=x", "", ""},
		{"too many criteria", "Patient", strings.Repeat("gender=x&", MaxParams+1), "gender", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.ParseQuery(tt.typ, mustQuery(t, tt.query))
			var se *Error
			if !errors.As(err, &se) {
				t.Fatalf("ParseQuery(%q) = %v, want a *search.Error", tt.query, err)
			}
			if !errors.Is(err, store.ErrInvalid) {
				t.Errorf("error %v does not wrap store.ErrInvalid", err)
			}
			if se.Param != tt.wantParam || se.Value != tt.wantValue {
				t.Errorf("error names param %q value %q, want %q %q (%v)", se.Param, se.Value, tt.wantParam, tt.wantValue, err)
			}
			if se.Msg == "" {
				t.Error("error without message")
			}
		})
	}
}

// TestContractSearches checks the searches docs/contract.md ("HTTP") promises.
func TestContractSearches(t *testing.T) {
	r := withProfiles(t)
	tests := []struct {
		typ, query string
	}{
		{"Patient", "identifier=urn:oid:1.2.250.1.213.1.4.8|255037512345678"},
		{"EpisodeOfCare", "patient=Patient/pat-1&status=active"},
		{"CarePlan", "patient=pat-1&status=active,on-hold"},
		{"CareTeam", "patient=Patient/pat-1"},
		{"Task", "owner=PractitionerRole/ide-martin&status=requested&patient=Patient/pat-1&focus=EpisodeOfCare/ep-1"},
		{"Observation", "patient=Patient/pat-1&code=http://loinc.org|29463-7"},
		{"Encounter", "patient=Patient/pat-1"},
		{"AuditEvent", "patient=Patient/pat-1&_count=50"},
	}
	for _, tt := range tests {
		t.Run(tt.typ, func(t *testing.T) {
			q := mustQuery(t, tt.query)
			p, err := r.ParseQuery(tt.typ, q)
			if err != nil {
				t.Fatal(err)
			}
			n := 0
			for k := range q {
				if !strings.HasPrefix(k, "_") {
					n++
				}
			}
			if len(p.Params) != n {
				t.Errorf("got %d params, want %d", len(p.Params), n)
			}
			sq := p.Query("demo")
			if sq.Type != tt.typ || sq.Tenant != "demo" || len(sq.Params) != n {
				t.Errorf("Query = %+v", sq)
			}
		})
	}
}

// TestContractSearchesMatch runs the contract searches against the fixtures
// through Extract and Match, the way a store answers them.
func TestContractSearchesMatch(t *testing.T) {
	r := withProfiles(t)
	tests := []struct {
		fixture, query string
		want           bool
	}{
		{"patient", "identifier=urn:oid:1.2.250.1.213.1.4.8|255037512345678", true},
		{"patient", "identifier=urn:oid:1.2.250.1.71.4.2.7|255037512345678", false},
		{"patient", "given=elodie&family=LEFEVRE", true},
		{"patient", "family:exact=Lefevre", false},
		{"patient", "family:exact=Lefèvre", true},
		{"patient", "birthdate=1948", true},
		{"patient", "birthdate=gt1948-07-02", false},
		{"episodeofcare", "patient=Patient/pat-1&status=active", true},
		{"episodeofcare", "patient=Patient/pat-1&status=finished", false},
		{"careplan", "patient=pat-1&status=draft,active", true},
		{"careteam", "patient=Patient/pat-1", true},
		{"task", "owner=PractitionerRole/ide-martin&status=requested&patient=Patient/pat-1&focus=EpisodeOfCare/ep-1", true},
		{"task", "owner=PractitionerRole/ide-leroy&status=requested", false},
		{"task", "due=eb2025-03-18", true},
		{"task", "due=sa2025-03-13", true},
		{"task", "due=ge2025-03-17", true},
		{"task", "due=gt2025-03-17", false},
		{"observation-datetime", "patient=Patient/pat-1&code=http://loinc.org|29463-7", true},
		{"observation-datetime", "patient=Patient/pat-1&code=29463-7&date=2025-03-20", true},
		{"observation-period", "patient=Patient/pat-1", false},
		{"encounter", "patient=Patient/pat-1&date=ge2025-03-14", true},
		{"auditevent", "patient=Patient/pat-1", true},
		{"practitionerrole", "territory=42187&role=nurse", true},
	}
	for _, tt := range tests {
		t.Run(tt.fixture+"?"+tt.query, func(t *testing.T) {
			typ, body := fixture(t, tt.fixture)
			entries, err := r.Extract(typ, body)
			if err != nil {
				t.Fatal(err)
			}
			p, err := r.ParseQuery(typ, mustQuery(t, tt.query))
			if err != nil {
				t.Fatal(err)
			}
			if got := matches(p.Params, entries); got != tt.want {
				t.Errorf("match = %v, want %v", got, tt.want)
			}
		})
	}
}

// matches is the in-memory search: every Param has an entry of the same
// name matching one of its values.
func matches(params []store.Param, entries []Entry) bool {
	for _, p := range params {
		ok := false
		for _, e := range entries {
			if e.Param != p.Name {
				continue
			}
			for _, v := range p.Values {
				if Match(v, p.Kind, e) {
					ok = true
				}
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

func TestErrorMessage(t *testing.T) {
	err := error(&Error{Param: "birthdate", Value: "2025-02-30", Msg: "not a date"})
	if got, want := err.Error(), `search parameter "birthdate" value "2025-02-30": not a date`; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}
