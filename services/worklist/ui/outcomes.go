package ui

import (
	"context"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
)

// OutcomeRow is one measure over the chosen period, as the coordinator
// sees it (unmasked: the CPTS's own figures).
type OutcomeRow struct {
	ID, Title                                           string
	Initial, Denominator, Numerator, Censored, Excluded int
	// Rate and its Wilson 95 % interval, proportions from 0 to 1.
	Rate, Lower, Upper float64
	HasRate            bool
}

// Outcomes computes the measures and draws the curves for a period.
type Outcomes interface {
	Report(ctx context.Context, a directory.Actor, start, end time.Time, lang string) ([]OutcomeRow, []template.HTML, error)
}

type outcomesData struct {
	Start, End string
	Rows       []OutcomeRow
	Curves     []template.HTML
	// The baseline the CPTS entered (e.g. 34 deaths of 200 before the
	// pathway) and the measure it is compared with.
	Baseline *baselineView
}

type baselineView struct {
	Measure, Title       string
	Num, Den             int
	Rate, Lower, Upper   float64
	After                *OutcomeRow
	Lower95, Upper95     string
	DifferenceIsEvidence bool
}

// outcomes is the coordinator's page: the measures over a period with
// their intervals, the Kaplan–Meier curves and a before / after
// comclock.Parison with a baseline.
func (u *UI) outcomes(w http.ResponseWriter, r *http.Request, p *page) {
	if !u.coordinates(w, r, p) {
		return
	}
	if u.d.Outcomes == nil {
		u.fail(w, r, p, http.StatusNotImplemented, "err_unavailable", nil)
		return
	}
	q := r.URL.Query()
	now := u.d.Clock.Now().In(clock.Paris)
	start, end := time.Date(now.Year()-1, now.Month(), now.Day(), 0, 0, 0, 0, clock.Paris), now
	if t, err := time.ParseInLocation("2006-01-02", q.Get("periodStart"), clock.Paris); err == nil {
		start = t
	}
	if t, err := time.ParseInLocation("2006-01-02", q.Get("periodEnd"), clock.Paris); err == nil {
		end = t
	}
	rows, curves, err := u.d.Outcomes.Report(r.Context(), p.Actor, start, end, p.Lang)
	if err != nil {
		u.failErr(w, r, p, err)
		return
	}
	d := outcomesData{Start: start.Format("2006-01-02"), End: end.Format("2006-01-02"), Rows: rows, Curves: curves}
	num, err1 := strconv.Atoi(q.Get("baseline-num"))
	den, err2 := strconv.Atoi(q.Get("baseline-den"))
	if m := q.Get("baseline-measure"); m != "" && err1 == nil && err2 == nil && den > 0 && num >= 0 && num <= den {
		b := &baselineView{Measure: m, Num: num, Den: den, Rate: float64(num) / float64(den)}
		b.Lower, b.Upper = wilson(num, den)
		for i := range rows {
			if rows[i].ID == m {
				b.After, b.Title = &rows[i], rows[i].Title
				// Intervals that do not overlap: the difference is more
				// than chance at this level.
				b.DifferenceIsEvidence = rows[i].HasRate && (rows[i].Upper < b.Lower || rows[i].Lower > b.Upper)
			}
		}
		d.Baseline = b
	}
	p.Title, p.Data = p.T("outcomes"), d
	u.render(w, r, p, http.StatusOK, "outcomes")
}

// wilson is the Wilson 95 % interval of k/n.
func wilson(k, n int) (lo, hi float64) {
	const z = 1.96
	p, nf := float64(k)/float64(n), float64(n)
	den := 1 + z*z/nf
	centre := (p + z*z/(2*nf)) / den
	half := z / den * math.Sqrt(p*(1-p)/nf+z*z/(4*nf*nf))
	return math.Max(0, centre-half), math.Min(1, centre+half)
}
