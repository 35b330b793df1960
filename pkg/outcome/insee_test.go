package outcome

import (
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestReadDeathsSample(t *testing.T) {
	f, err := os.Open("testdata/deces-2025-m06.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var got []DeathRecord
	bad, err := ReadDeaths(f, func(r DeathRecord) error { got = append(got, r); return nil })
	if err != nil || len(bad) != 0 {
		t.Fatalf("errors: %v %v", err, bad)
	}
	if len(got) != 4 {
		t.Fatalf("%d records", len(got))
	}
	r := got[0]
	if r.Family != "TESTDURAND" || strings.Join(r.Given, " ") != "MARIE CLAIRE" || r.Sex != "F" || r.Birth != CivilDay(1948, 3, 15) ||
		r.BirthPlace != "42187" || r.BirthCommune != "ROANNE" || r.Death != CivilDay(2025, 6, 10) || r.DeathPlace != "42187" || r.Act != "123" || r.Line != 1 {
		t.Errorf("record 1 = %+v", r)
	}
	if got[1].BirthCountry != "ESPAGNE" || got[1].Sex != "M" {
		t.Errorf("record 2 = %+v", got[1])
	}
	if got[2].Birth != NoDay || got[2].BirthDate != "19400100" {
		t.Errorf("an unknown birth day must stay unknown: %+v", got[2])
	}
	if got[3].Family != "ÉLOÏSE" || got[3].BirthCommune != "LYON 3E" {
		t.Errorf("accented line read by characters: %+v", got[3])
	}
	if MonthOfFile("deces-2025-m06.txt") != 202506 || MonthOfFile("x.txt") != 0 {
		t.Error("month of file")
	}
}

func TestReadDeathsReportsBadLines(t *testing.T) {
	good := strings.Repeat(" ", 0) + "A*B/" + strings.Repeat(" ", 76) + "1" + "19500101" + "42187" + strings.Repeat(" ", 60) + "20250101"
	in := good + "\n" + "trop court\n" + strings.Replace(good, "*", " ", 1) + "\n" + strings.Replace(good, "20250101", "20250231", 1) + "\n\n" + good + "\n"
	var n int
	bad, err := ReadDeaths(strings.NewReader(in), func(DeathRecord) error { n++; return nil })
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("%d good lines, want 2", n)
	}
	lines := []int{}
	for _, b := range bad {
		lines = append(lines, b.Line)
	}
	if len(lines) != 3 || lines[0] != 2 || lines[1] != 3 || lines[2] != 4 {
		t.Errorf("bad lines = %v (%v), want 2, 3, 4", lines, bad)
	}
	if !strings.Contains(bad[2].Error(), "ligne 4") || !strings.Contains(bad[2].Error(), "death date") {
		t.Errorf("error text: %v", bad[2])
	}
}

func TestMatchTraits(t *testing.T) {
	rec := &Record{Family: "Testdurand", Given: []string{"Marie", "Claire"}, Sex: "F", BirthDate: CivilDay(1948, 3, 15), BirthPlace: "42187"}
	d := DeathRecord{Family: "TESTDURAND", Given: []string{"MARIE", "CLAIRE"}, Sex: "F", Birth: CivilDay(1948, 3, 15), BirthPlace: "42187"}
	if !MatchTraits(rec, d) {
		t.Error("same traits do not match")
	}
	for name, change := range map[string]func(*DeathRecord){
		"sex":         func(d *DeathRecord) { d.Sex = "M" },
		"birth date":  func(d *DeathRecord) { d.Birth++ },
		"family":      func(d *DeathRecord) { d.Family = "DURAND" },
		"birth place": func(d *DeathRecord) { d.BirthPlace = "69123" },
		"given":       func(d *DeathRecord) { d.Given = []string{"ANNE"} },
	} {
		dd := d
		change(&dd)
		if MatchTraits(rec, dd) {
			t.Errorf("a different %s matches", name)
		}
	}
	rec.Family = "Test-Durand"
	d.Family = "TEST DURAND"
	if !MatchTraits(rec, d) {
		t.Error("a hyphen against a space does not match")
	}
}

// FuzzParseDeathLine: any input either fails with an error or gives a
// record whose fields fit their columns and whose dates are real.
func FuzzParseDeathLine(f *testing.F) {
	b, _ := os.ReadFile("testdata/deces-2025-m06.txt")
	for _, l := range strings.Split(string(b), "\n") {
		f.Add(l)
	}
	f.Add(strings.Repeat("*", 200))
	f.Fuzz(func(t *testing.T, line string) {
		r, err := ParseDeathLine(line)
		if err != nil {
			return
		}
		if r.Sex != "M" && r.Sex != "F" {
			t.Fatalf("sex %q", r.Sex)
		}
		if r.Death == NoDay || r.Death.String() != r.DeathDate[:4]+"-"+r.DeathDate[4:6]+"-"+r.DeathDate[6:] {
			t.Fatalf("death %v from %q", r.Death, r.DeathDate)
		}
		if utf8.RuneCountInString(r.Family) > 80 || utf8.RuneCountInString(r.BirthCommune) > 30 || len(r.BirthDate) != 8 {
			t.Fatalf("field overflow: %+v", r)
		}
		if strings.TrimSpace(r.Family) == "" {
			t.Fatal("empty family name accepted")
		}
	})
}

// FuzzDecodeRecord: a record text either fails to decode or decodes to a
// record whose encoding decodes back to the same encoding.
func FuzzDecodeRecord(f *testing.F) {
	for _, r := range cohort() {
		f.Add(r.Encode())
	}
	f.Add("r1;P|a|b%7C|x,y|1|F|42187|0|insee;T|e|t")
	f.Fuzz(func(t *testing.T, s string) {
		r, err := DecodeRecord(s)
		if err != nil {
			return
		}
		enc := r.Encode()
		r2, err := DecodeRecord(enc)
		if err != nil {
			t.Fatalf("re-decode of %q: %v", enc, err)
		}
		if enc2 := r2.Encode(); enc2 != enc {
			t.Fatalf("unstable:\n%q\n%q", enc, enc2)
		}
	})
}
