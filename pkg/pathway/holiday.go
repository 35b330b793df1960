package pathway

import "time"

// Easter returns Easter Sunday of a Gregorian year (the anonymous
// Gregorian algorithm, Meeus/Jones/Butcher), at midnight in loc.
func Easter(year int, loc *time.Location) time.Time {
	a := year % 19
	b, c := year/100, year%100
	d, e := b/4, b%4
	f := (b + 8) / 25
	g := (b - f + 1) / 3
	h := (19*a + b - d - g + 15) % 30
	i, k := c/4, c%4
	l := (32 + 2*e + 2*i - h - k) % 7
	m := (a + 11*h + 22*l) / 451
	month := (h + l - 7*m + 114) / 31
	day := (h+l-7*m+114)%31 + 1
	return time.Date(year, time.Month(month), day, 0, 0, 0, 0, loc)
}

// fixedHolidays are the French public holidays on a fixed date (Code du
// travail L3133-1).
var fixedHolidays = [][2]int{{1, 1}, {5, 1}, {5, 8}, {7, 14}, {8, 15}, {11, 1}, {11, 11}, {12, 25}}

// IsHoliday tells whether the calendar day of t (in t's location) is a
// French public holiday: the eight fixed ones, Easter Monday, Ascension
// Thursday and Whit Monday. Alsace-Moselle's Good Friday and 26 December
// are not included: the CPTS Passerelle serves are outside it, and a
// template for those départements would need a rule of its own.
func IsHoliday(t time.Time) bool {
	y, m, d := t.Date()
	for _, h := range fixedHolidays {
		if int(m) == h[0] && d == h[1] {
			return true
		}
	}
	e := Easter(y, time.UTC)
	day := time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
	switch int(day.Sub(e).Hours() / 24) {
	case 1, 39, 50: // Easter Monday, Ascension, Whit Monday
		return true
	}
	return false
}

// IsWorkingDay tells whether t's calendar day is a "jour ouvrable": neither
// a Sunday nor a public holiday. Saturdays are working days: liberal nurses
// and pharmacies work them, and the due dates are the patient's, not an
// office's.
func IsWorkingDay(t time.Time) bool {
	return t.Weekday() != time.Sunday && !IsHoliday(t)
}

// DayRule says what becomes of a due day that is not a working day.
type DayRule string

// Working-day rules (CodeSystem working-day-rule).
const (
	NextWorkingDay     DayRule = "next-working-day"
	PreviousWorkingDay DayRule = "previous-working-day"
	NoDayChange        DayRule = "none"
)

// Adjust moves a day (midnight, in its location) by the rule.
func (r DayRule) Adjust(day time.Time) time.Time {
	step := 0
	switch r {
	case NextWorkingDay:
		step = 1
	case PreviousWorkingDay:
		step = -1
	default:
		return day
	}
	for !IsWorkingDay(day) {
		day = addDays(day, step)
	}
	return day
}

// addDays moves a local midnight by n calendar days; time.Date normalises
// across daylight-saving changes, where adding 24h would not.
func addDays(day time.Time, n int) time.Time {
	y, m, d := day.Date()
	return time.Date(y, m, d+n, 0, 0, 0, 0, day.Location())
}

// dayOf is the local midnight of t's calendar day in loc.
func dayOf(t time.Time, loc *time.Location) time.Time {
	y, m, d := t.In(loc).Date()
	return time.Date(y, m, d, 0, 0, 0, 0, loc)
}
