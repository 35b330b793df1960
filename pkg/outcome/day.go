package outcome

import (
	"fmt"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
)

// Day is a calendar day in Europe/Paris, counted from 1970-01-01. Windows
// are whole days: adding days never meets a daylight-saving change.
type Day int32

// NoDay is the zero value's meaning in records: unknown or not yet.
const NoDay Day = -1 << 30

// DayOf is the Europe/Paris calendar day of t.
func DayOf(t time.Time) Day {
	y, m, d := t.In(clock.Paris).Date()
	return CivilDay(y, m, d)
}

// CivilDay is the day of a calendar date.
func CivilDay(y int, m time.Month, d int) Day {
	return Day(time.Date(y, m, d, 0, 0, 0, 0, time.UTC).Unix() / 86400)
}

// ParseDay reads YYYY-MM-DD.
func ParseDay(s string) (Day, error) {
	t, err := time.Parse("2006-01-02", s)
	if err != nil {
		return NoDay, fmt.Errorf("date %q: expected YYYY-MM-DD", s)
	}
	return CivilDay(t.Date()), nil
}

// Date returns the calendar date of d.
func (d Day) Date() (int, time.Month, int) {
	return time.Unix(int64(d)*86400, 0).UTC().Date()
}

// Start is the instant d begins in Europe/Paris.
func (d Day) Start() time.Time {
	y, m, dd := d.Date()
	return time.Date(y, m, dd, 0, 0, 0, 0, clock.Paris)
}

// String is YYYY-MM-DD.
func (d Day) String() string {
	if d == NoDay {
		return ""
	}
	y, m, dd := d.Date()
	return fmt.Sprintf("%04d-%02d-%02d", y, int(m), dd)
}

// Ended tells whether the whole of day d is over at now.
func (d Day) Ended(now time.Time) bool { return !now.Before((d + 1).Start()) }

// Month is the day's month as YYYYMM.
func (d Day) Month() int {
	y, m, _ := d.Date()
	return y*100 + int(m)
}

func monthOf(m int) time.Month { return time.Month(m) }

// MonthLast is the last day of month YYYYMM.
func MonthLast(month int) Day {
	return CivilDay(month/100, time.Month(month%100)+1, 1) - 1
}
