package search

import (
	"encoding/json"
	"errors"
	"net/url"
	"reflect"
	"strings"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/fhir/search/internal/fhirpath"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// FuzzParseQuery checks that any query string yields either a *Error
// wrapping store.ErrInvalid or well-formed criteria, the same each time.
func FuzzParseQuery(f *testing.F) {
	seeds := []struct{ typ, query string }{
		{"Patient", "identifier=urn:oid:1.2.250.1.213.1.4.8|255037512345678"},
		{"Patient", "given=Élodie&family:exact=Lefèvre&birthdate=ge1948-07&_count=10"},
		{"EpisodeOfCare", "patient=Patient/pat-1&status=active"},
		{"CarePlan", "patient=pat-1&status=active,on-hold"},
		{"CareTeam", "patient=Patient/pat-1"},
		{"Task", "owner=PractitionerRole/ide-martin&status=requested&patient=Patient/pat-1&focus=EpisodeOfCare/ep-1"},
		{"Task", "due=le2025-03-17T18:30+01:00&_cursor=abc&_total=accurate"},
		{"Observation", "patient=Patient/pat-1&code=http://loinc.org|29463-7&date=ap2025-03-20"},
		{"Encounter", "patient=https://h/fhir/Patient/1/_history/2&date=sa2025"},
		{"AuditEvent", "patient=Patient/pat-1&_lastUpdated=gt2025-03-14T10:00:00.123Z"},
		{"StructureDefinition", `url=http://x&name=a\,b&_id=x`},
		{"Patient", "_sort=name"},
		{"Patient", "name:contains=x"},
	}
	for _, s := range seeds {
		f.Add(s.typ, s.query)
	}
	r := withProfiles(f)
	f.Fuzz(func(t *testing.T, typ, query string) {
		q, _ := url.ParseQuery(query) // keeps what parsed before an error
		p, err := r.ParseQuery(typ, q)
		if err != nil {
			var se *Error
			if !errors.As(err, &se) || !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("error %T %v is not a *search.Error wrapping store.ErrInvalid", err, err)
			}
			if se.Msg == "" {
				t.Fatalf("error without message: %#v", se)
			}
			return
		}
		p2, err := r.ParseQuery(typ, q)
		if err != nil || !reflect.DeepEqual(p, p2) {
			t.Fatalf("ParseQuery is not deterministic: %+v / %+v, %v", p, p2, err)
		}
		if p.Count < 0 || p.Count > MaxCount || len(p.Params) > MaxParams {
			t.Fatalf("limits exceeded: %+v", p)
		}
		for _, sp := range p.Params {
			d, ok := r.Lookup(typ, sp.Name)
			if !ok || d.Kind != sp.Kind {
				t.Fatalf("param %s (%s) is not a %s parameter of %s", sp.Name, sp.Kind, d.Kind, typ)
			}
			if len(sp.Values) == 0 || len(sp.Values) > MaxValues {
				t.Fatalf("param %s has %d values", sp.Name, len(sp.Values))
			}
			for _, v := range sp.Values {
				checkValue(t, sp.Kind, v)
			}
		}
	})
}

func checkValue(t *testing.T, kind store.ParamKind, v store.Value) {
	t.Helper()
	switch kind {
	case store.KindToken:
		if v.Code == "" && (v.System == nil || *v.System == "") {
			t.Fatalf("token value without code or system: %+v", v)
		}
	case store.KindReference:
		typ, id, ok := strings.Cut(v.Ref, "/")
		if !ok || !fhirpath.IsTypeName(typ) || !fhirpath.IsID(id) {
			t.Fatalf("reference value %q is not Type/id", v.Ref)
		}
	case store.KindString:
		if v.Text == "" || !v.Exact && Normalize(v.Text) != v.Text {
			t.Fatalf("string value %q is empty or not normalised", v.Text)
		}
	case store.KindDate:
		if !datePrefixes[v.Prefix] || !v.Lo.Before(v.Hi) || v.Lo.Nanosecond()%1000 != 0 || v.Hi.Nanosecond()%1000 != 0 {
			t.Fatalf("date value %+v", v)
		}
	}
}

// FuzzExtract checks that any body gives either an error wrapping
// store.ErrInvalid or well-formed entries, each of which matches the search
// value that names it exactly.
func FuzzExtract(f *testing.F) {
	for _, name := range fixtures {
		_, b := fixture(f, name)
		f.Add(b)
	}
	f.Add([]byte(`{"resourceType":"Observation","effectivePeriod":{"end":"2025"},"valueDateTime":"2025-03-14T10:00:00+14:00"}`))
	f.Add([]byte(`{"resourceType":"Patient","name":[{"given":[null,"  "],"text":"É"}],"birthDate":"0001"}`))
	r := withProfiles(f)
	f.Fuzz(func(t *testing.T, body []byte) {
		var head struct {
			ResourceType string `json:"resourceType"`
		}
		_ = json.Unmarshal(body, &head)
		entries, err := r.Extract(head.ResourceType, body)
		if err != nil {
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("error %v does not wrap store.ErrInvalid", err)
			}
			return
		}
		checkEntries(t, entries)
		for _, e := range entries {
			d, ok := r.Lookup(head.ResourceType, e.Param)
			if !ok || d.Kind != e.Kind {
				t.Fatalf("entry %s is not of a %s parameter", formatEntry(e), head.ResourceType)
			}
			if v := exactValue(e); !Match(v, e.Kind, e) {
				t.Fatalf("entry %s does not match its own value %+v", formatEntry(e), v)
			}
		}
	})
}

// exactValue returns the search value that designates e exactly.
func exactValue(e Entry) store.Value {
	switch e.Kind {
	case store.KindToken:
		return store.Value{System: &e.System, Code: e.Code}
	case store.KindReference:
		return store.Value{Ref: e.Ref}
	case store.KindString:
		return store.Value{Text: e.Text}
	case store.KindURI:
		return store.Value{Text: e.Text}
	}
	return store.Value{Prefix: "eq", Lo: e.Lo, Hi: e.Hi}
}
