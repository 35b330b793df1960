package search

import (
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// TestMatchDate pins the prefix semantics of the package documentation on
// intervals: an entry covering the Paris day 2025-03-14 (or a period) against
// search values of several precisions.
func TestMatchDate(t *testing.T) {
	dayLo, dayHi := day(t, "2025-03-14")
	entryDay := Entry{Param: "date", Kind: store.KindDate, Lo: dayLo, Hi: dayHi}
	// A period from the 13th at noon to the 15th at noon (UTC).
	entryPeriod := Entry{Param: "date", Kind: store.KindDate, Lo: ts(t, "2025-03-13T12:00:00Z"), Hi: ts(t, "2025-03-15T12:00:00Z")}
	openEnded := Entry{Param: "date", Kind: store.KindDate, Lo: dayLo, Hi: FarFuture}

	value := func(t *testing.T, s string) store.Value {
		t.Helper()
		v, err := dateValue(s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		value string
		entry Entry
		want  bool
	}{
		// eq: the entry lies within the value.
		{"2025-03-14", entryDay, true},
		{"eq2025-03", entryDay, true},
		{"2025", entryDay, true},
		{"2025-03-13", entryDay, false},
		{"2025-03-14T10:00", entryDay, false},
		{"2025-03-14", entryPeriod, false},
		{"2025-03", entryPeriod, true},
		{"2025", openEnded, false},
		// ne: not eq.
		{"ne2025-03-14", entryDay, false},
		{"ne2025-03-13", entryDay, true},
		{"ne2025-03-14", entryPeriod, true},
		// gt: the entry reaches past the value.
		{"gt2025-03-13", entryDay, true},
		{"gt2025-03-14", entryDay, false},
		{"gt2025-03-14", entryPeriod, true},
		{"gt2030", openEnded, true},
		// lt: the entry starts before the value.
		{"lt2025-03-15", entryDay, true},
		{"lt2025-03-14", entryDay, false},
		{"lt2025-03-14", entryPeriod, true},
		// ge: the entry reaches the value or later.
		{"ge2025-03-14", entryDay, true},
		{"ge2025-03-15", entryDay, false},
		{"ge2025-03-15", entryPeriod, true},
		{"ge2025-03-14T23:59", entryDay, true},
		// le: the entry starts before the value ends.
		{"le2025-03-14", entryDay, true},
		{"le2025-03-13", entryDay, false},
		{"le2025-03-13", entryPeriod, true},
		// sa: starts after the value ends.
		{"sa2025-03-13", entryDay, true},
		{"sa2025-03-14", entryDay, false},
		{"sa2025-03-12", entryPeriod, true},
		{"sa2025-03-13", entryPeriod, false},
		// eb: ends before the value starts.
		{"eb2025-03-15", entryDay, true},
		{"eb2025-03-14", entryDay, false},
		{"eb2025-03-15", entryPeriod, false},
		{"eb2025-03-16", entryPeriod, true},
		// ap: overlap with the value widened by max(10 %, one day).
		{"ap2025-03-14", entryDay, true},
		{"ap2025-03-15", entryDay, true},
		{"ap2025-03-16", entryDay, false},
		{"ap2025-03-15T12:00", entryDay, true}, // a minute, widened by a day
		{"ap2025-03-16T00:00", entryDay, false},
		{"ap2025-04", entryDay, false}, // April ± 3 days starts on March 28
		{"ap2025-04", entryPeriod, false},
		{"ap2026", entryDay, false}, // 2026 ± 36.5 days starts in November 2025
		{"ap2025", openEnded, true},
	}
	for _, tt := range tests {
		t.Run(tt.value+"/"+tt.entry.Lo.String(), func(t *testing.T) {
			if got := Match(value(t, tt.value), store.KindDate, tt.entry); got != tt.want {
				t.Errorf("Match(%s, [%s, %s)) = %v, want %v", tt.value, tt.entry.Lo, tt.entry.Hi, got, tt.want)
			}
		})
	}
}

func TestMatch(t *testing.T) {
	tok := Entry{Param: "identifier", Kind: store.KindToken, System: "urn:oid:1.2.250.1.213.1.4.8", Code: "255037512345678"}
	noSys := Entry{Param: "status", Kind: store.KindToken, Code: "active"}
	ref := Entry{Param: "patient", Kind: store.KindReference, Ref: "Patient/pat-1"}
	str := Entry{Param: "given", Kind: store.KindString, Text: "elodie", Raw: "Élodie"}
	uri := Entry{Param: "url", Kind: store.KindURI, Text: "http://x/a", Raw: "http://x/a"}
	tests := []struct {
		name  string
		value store.Value
		kind  store.ParamKind
		entry Entry
		want  bool
	}{
		{"code, any system", store.Value{Code: "255037512345678"}, store.KindToken, tok, true},
		{"system|code", store.Value{System: ptr("urn:oid:1.2.250.1.213.1.4.8"), Code: "255037512345678"}, store.KindToken, tok, true},
		{"other system", store.Value{System: ptr("urn:oid:other"), Code: "255037512345678"}, store.KindToken, tok, false},
		{"system|", store.Value{System: ptr("urn:oid:1.2.250.1.213.1.4.8")}, store.KindToken, tok, true},
		{"|code on a coded value", store.Value{System: ptr(""), Code: "255037512345678"}, store.KindToken, tok, false},
		{"|code on a plain code", store.Value{System: ptr(""), Code: "active"}, store.KindToken, noSys, true},
		{"code is case sensitive", store.Value{Code: "Active"}, store.KindToken, noSys, false},
		{"wrong code", store.Value{Code: "x"}, store.KindToken, tok, false},
		{"reference", store.Value{Ref: "Patient/pat-1"}, store.KindReference, ref, true},
		{"other reference", store.Value{Ref: "Patient/pat-2"}, store.KindReference, ref, false},
		{"string prefix", store.Value{Text: "elo"}, store.KindString, str, true},
		{"string whole", store.Value{Text: "elodie"}, store.KindString, str, true},
		{"string not a prefix", store.Value{Text: "lodie"}, store.KindString, str, false},
		{"string exact", store.Value{Text: "Élodie", Exact: true}, store.KindString, str, true},
		{"string exact is accent sensitive", store.Value{Text: "Elodie", Exact: true}, store.KindString, str, false},
		{"uri exact", store.Value{Text: "http://x/a"}, store.KindURI, uri, true},
		{"uri is not a prefix match", store.Value{Text: "http://x"}, store.KindURI, uri, false},
		{"kind mismatch", store.Value{Code: "active"}, store.KindString, noSys, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Match(tt.value, tt.kind, tt.entry); got != tt.want {
				t.Errorf("Match = %v, want %v", got, tt.want)
			}
		})
	}
}
