package pathway

import (
	"testing"
	"time"
)

func day(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02", s, paris)
	if err != nil {
		panic(err)
	}
	return t
}

func TestEaster(t *testing.T) {
	for year, want := range map[int]string{2019: "2019-04-21", 2024: "2024-03-31", 2025: "2025-04-20", 2026: "2026-04-05", 2038: "2038-04-25", 2285: "2285-03-22"} {
		if got := Easter(year, paris).Format("2006-01-02"); got != want {
			t.Errorf("Easter %d = %s, want %s", year, got, want)
		}
	}
}

func TestHolidays(t *testing.T) {
	holidays := []string{"2025-01-01", "2025-04-21", "2025-05-01", "2025-05-08", "2025-05-29", "2025-06-09", "2025-07-14",
		"2025-08-15", "2025-11-01", "2025-11-11", "2025-12-25", "2024-04-01", "2024-05-09", "2024-05-20"}
	for _, h := range holidays {
		if !IsHoliday(day(h)) || IsWorkingDay(day(h)) {
			t.Errorf("%s is a public holiday", h)
		}
	}
	for _, d := range []string{"2025-04-18", "2025-12-26", "2025-04-22", "2025-03-15"} { // Good Friday and 26 Dec: Alsace-Moselle only
		if IsHoliday(day(d)) {
			t.Errorf("%s is not a public holiday outside Alsace-Moselle", d)
		}
	}
	if IsWorkingDay(day("2025-03-16")) || !IsWorkingDay(day("2025-03-15")) {
		t.Error("Sunday is not a working day, Saturday is")
	}
	cases := []struct {
		rule     DayRule
		in, want string
	}{
		{NextWorkingDay, "2025-07-14", "2025-07-15"},
		{NextWorkingDay, "2025-05-31", "2025-05-31"},
		{NextWorkingDay, "2025-12-25", "2025-12-26"},
		{NextWorkingDay, "2026-04-05", "2026-04-07"}, // Easter Sunday, then Monday
		{PreviousWorkingDay, "2025-06-09", "2025-06-07"},
		{NoDayChange, "2025-03-16", "2025-03-16"},
	}
	for _, c := range cases {
		if got := c.rule.Adjust(day(c.in)).Format("2006-01-02"); got != c.want {
			t.Errorf("%s(%s) = %s, want %s", c.rule, c.in, got, c.want)
		}
	}
}

func TestWindowsAcrossDST(t *testing.T) {
	a := Action{Code: "x", Role: "nurse", Low: 1, High: 1, Count: 3, PeriodDays: 1, WorkingDay: NoDayChange}
	d0 := time.Date(2025, 3, 29, 10, 0, 0, 0, paris)
	got := a.Windows(d0)
	want := [][2]string{
		{"2025-03-30T00:00:00+01:00", "2025-03-30T23:59:59+02:00"},
		{"2025-03-31T00:00:00+02:00", "2025-03-31T23:59:59+02:00"},
		{"2025-04-01T00:00:00+02:00", "2025-04-01T23:59:59+02:00"},
	}
	for i, w := range got {
		if FormatTime(w.Start) != want[i][0] || FormatTime(w.End) != want[i][1] || w.Seq != i+1 {
			t.Errorf("#%d: %s … %s", i, FormatTime(w.Start), FormatTime(w.End))
		}
	}
	// A previous-working-day rule never moves a due date before the discharge.
	b := Action{Code: "y", Role: "gp", Low: 0, High: 1, WorkingDay: PreviousWorkingDay}
	w := b.Windows(time.Date(2025, 7, 13, 22, 0, 0, 0, paris))[0] // D+1 is 14 July
	if FormatTime(w.Start) != "2025-07-13T22:00:00+02:00" || FormatTime(w.End) != "2025-07-13T23:59:59+02:00" {
		t.Errorf("window %s … %s", FormatTime(w.Start), FormatTime(w.End))
	}
	if n := DaysBetween(time.Date(2025, 3, 29, 23, 0, 0, 0, paris), time.Date(2025, 4, 2, 1, 0, 0, 0, paris)); n != 4 {
		t.Errorf("days between = %d", n)
	}
}

func TestRules(t *testing.T) {
	vars := map[string]Value{"nyha": Text("420913000"), "weight": Number(92.5)}
	cases := []struct {
		src          string
		result, know bool
	}{
		{"%nyha in ('420913000', '422293003')", true, true},
		{"%nyha = '421704003'", false, true},
		{"%weight >= 90 and %nyha != '420300004'", true, true},
		{"not (%weight < 80) or %missing = 1", true, true},
		{"%missing = 1 and %weight > 100", false, true},
		{"%missing in (1, 2)", false, false},
		{"%weight > 90.5", true, true},
	}
	for _, c := range cases {
		r, err := ParseRule(c.src)
		if err != nil {
			t.Errorf("%s: %v", c.src, err)
			continue
		}
		if res, known := r.Eval(vars); res != c.result || known != c.know {
			t.Errorf("%s = %v (known %v)", c.src, res, known)
		}
	}
	for _, bad := range []string{"", "%nyha", "%nyha in (%x)", "nyha = ", "%a == 1", "'open", "%a = 1 or"} {
		if _, err := ParseRule(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestEligibility(t *testing.T) {
	e := Eligibility{DiagnosisPrefixes: []string{"I50", "I110"}, Dispositions: []string{"home"}, MinimumAge: 18,
		ConfirmUnitSpecialties: []Coding{{"s", "SM04"}}, ExcludedClasses: []string{"R"}, ExcludeElective: true, ExcludedModesSortie: []string{"6", "7"}}
	at := time.Date(2025, 3, 14, 15, 0, 0, 0, paris)
	base := Stay{Class: "IMP", Disposition: "home", Diagnoses: []string{"I11.0"}, BirthDate: "1948-03-15", Discharge: at}
	cases := []struct {
		name string
		mut  func(*Stay)
		want Decision
	}{
		{"I11.0 by prefix", func(*Stay) {}, Eligible},
		{"French extension under I50", func(s *Stay) { s.Diagnoses = []string{"I50.18"} }, Eligible},
		{"18 tomorrow", func(s *Stay) { s.BirthDate = "2007-03-15" }, NotEligible},
		{"18 today", func(s *Stay) { s.BirthDate = "2007-03-14" }, Eligible},
		{"no DG1, cardiology", func(s *Stay) { s.Diagnoses = nil; s.UnitSpecialties = []Coding{{"s", "SM04"}} }, ToConfirm},
		{"no DG1 elsewhere", func(s *Stay) { s.Diagnoses = nil }, NotEligible},
		{"séance", func(s *Stay) { s.Class = "R" }, NotEligible},
		{"transfer", func(s *Stay) { s.ModeSortie = "7" }, NotEligible},
	}
	for _, c := range cases {
		s := base
		c.mut(&s)
		if got, reason := e.Decide(s); got != c.want {
			t.Errorf("%s: %v (%s), want %v", c.name, got, reason, c.want)
		}
	}
}

func TestReminderAndCheckTimes(t *testing.T) {
	a := Action{Code: "x", Role: "gp", Low: 0, High: 7, WorkingDay: NoDayChange, Reminder: true, ReminderDays: 2}
	d0 := time.Date(2025, 3, 14, 15, 0, 0, 0, paris)
	w := a.Windows(d0)[0]
	if at, ok := a.ReminderAt(w); !ok || FormatTime(at) != "2025-03-19T00:00:00+01:00" {
		t.Errorf("reminder %s %v", FormatTime(at), ok)
	}
	a.ReminderDays = 30 // never before the window opens
	if at, ok := a.ReminderAt(w); !ok || !at.Equal(w.Start) {
		t.Errorf("reminder %s %v", FormatTime(at), ok)
	}
	if _, ok := (Action{Code: "y", Role: "gp", High: 1}).ReminderAt(w); ok {
		t.Error("a reminder without the extension")
	}
	tpl := &Template{WorkingDay: NextWorkingDay}
	// D+2 is Sunday 16 March: the check moves to Monday's end.
	if got := FormatTime(tpl.CheckAt(Check{Code: "c", OffsetDays: 2}, d0)); got != "2025-03-17T23:59:59+01:00" {
		t.Errorf("check at %s", got)
	}
}

func TestFollowUpEnd(t *testing.T) {
	d0 := time.Date(2025, 3, 14, 15, 0, 0, 0, paris)
	tpl := &Template{Actions: []Action{
		{Code: "visit", Role: "nurse", Low: 8, High: 14, Count: 4, PeriodDays: 7, WorkingDay: NoDayChange},
		{Code: "weighing", Low: 1, High: 180, Count: 1, Frequency: 1},
	}}
	end, ok := tpl.FollowUpEnd(d0)
	// The patient's own weighing runs to D+180 = 10 September 2025.
	if !ok || FormatTime(end) != "2025-09-10T23:59:59+02:00" {
		t.Fatalf("follow-up end %s %v", FormatTime(end), ok)
	}
	tpl.Actions = tpl.Actions[:1]
	// Four weekly visits, the last due D+14+21 = 18 April.
	if end, ok := tpl.FollowUpEnd(d0); !ok || FormatTime(end) != "2025-04-18T23:59:59+02:00" {
		t.Fatalf("follow-up end %s %v", FormatTime(end), ok)
	}
	if _, ok := (&Template{}).FollowUpEnd(d0); ok {
		t.Fatal("a template without actions has a follow-up end")
	}
}
