package ui

import (
	"context"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
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
	// FixedHorizon marks a rate at N days: its denominator counts only
	// the episodes with complete follow-up; Censored are still in
	// follow-up (CensoredRegister of them wait for the register of
	// deaths), ExcludedDeath died before any readmission.
	FixedHorizon                    bool
	CensoredRegister, ExcludedDeath int
	// The Kaplan–Meier estimate at the horizon over every episode, 1 − S(N),
	// its 95 % interval and the number still followed at the horizon.
	HasKM                bool
	KM, KMLower, KMUpper float64
	AtRisk               int
}

// MinComplete is the number of episodes with complete follow-up under
// which the page warns that a rate is unreliable.
const MinComplete = 30

// Outcomes computes the measures and draws the curves for a period.
type Outcomes interface {
	Report(ctx context.Context, a directory.Actor, start, end time.Time, lang string) ([]OutcomeRow, []template.HTML, error)
}

type outcomesData struct {
	// Form holds the fields as typed, Errors the message of each refused
	// field (by field name), already in the page's language.
	Form   map[string]string
	Errors map[string]string
	Rows   []outcomeView
	Curves []template.HTML
	// The baseline the CPTS entered (e.g. 34 deaths of 200 before the
	// pathway) and the measure it is compared with.
	Baseline *baselineView
}

// outcomeView is a row with its figures written in the page's language.
type outcomeView struct {
	OutcomeRow
	RateText, KMText string
	FewComplete      bool
}

type baselineView struct {
	Measure, Title       string
	Num, Den             int
	Rate, Lower, Upper   float64
	RateText, AfterText  string
	After                *outcomeView
	DifferenceIsEvidence bool
}

// outcomesMeasures are the measure ids the baseline may name (the
// measures of CONTRACT.md).
var outcomesMeasures = []string{"readmission-30d", "readmission-180d", "hf-readmission-180d", "mortality-180d", "mortality-365d", "first-contact-7d", "tasks-on-time"}

// outcomes is the coordinator's page: the measures over a period, each
// fixed-horizon rate over complete follow-up beside its Kaplan–Meier
// estimate over every episode, the curves and a before / after comparison
// with a baseline. A refused field is answered at the field, in the page's
// language, with what was typed kept (status 400).
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
	d := outcomesData{Form: map[string]string{}, Errors: map[string]string{}}
	for _, f := range []string{"periodStart", "periodEnd", "baseline-measure", "baseline-num", "baseline-den"} {
		d.Form[f] = strings.TrimSpace(q.Get(f))
	}
	start, end := time.Date(now.Year()-1, now.Month(), now.Day(), 0, 0, 0, 0, clock.Paris), now
	date := func(field string, def time.Time) time.Time {
		v := d.Form[field]
		if v == "" {
			d.Form[field] = def.Format("2006-01-02")
			return def
		}
		t, err := time.ParseInLocation("2006-01-02", v, clock.Paris)
		if err != nil {
			d.Errors[field] = p.T("out_err_date")
			return def
		}
		return t
	}
	start, end = date("periodStart", start), date("periodEnd", end)
	if d.Errors["periodStart"] == "" && d.Errors["periodEnd"] == "" && end.Before(start) {
		d.Errors["periodEnd"] = p.T("out_err_reversed")
	}
	num, den, baseline := u.baselineInput(p, d)
	status := http.StatusOK
	if len(d.Errors) > 0 {
		status = http.StatusBadRequest
	}
	if d.Errors["periodStart"] == "" && d.Errors["periodEnd"] == "" {
		rows, curves, err := u.d.Outcomes.Report(r.Context(), p.Actor, start, end, p.Lang)
		if err != nil {
			u.failErr(w, r, p, err)
			return
		}
		d.Curves = curves
		for _, row := range rows {
			v := outcomeView{OutcomeRow: row, FewComplete: row.FixedHorizon && row.Denominator < MinComplete}
			if row.HasRate {
				v.RateText = interval(p.Lang, row.Rate, row.Lower, row.Upper)
			}
			if row.HasKM {
				v.KMText = interval(p.Lang, row.KM, row.KMLower, row.KMUpper)
			}
			d.Rows = append(d.Rows, v)
		}
	}
	if baseline {
		b := &baselineView{Measure: d.Form["baseline-measure"], Num: num, Den: den, Rate: float64(num) / float64(den)}
		b.Lower, b.Upper = wilson(num, den)
		b.RateText = interval(p.Lang, b.Rate, b.Lower, b.Upper)
		for i := range d.Rows {
			if row := &d.Rows[i]; row.ID == b.Measure {
				b.After, b.Title = row, row.Title
				// Intervals that do not overlap: the difference is more
				// than chance at this level.
				b.DifferenceIsEvidence = row.HasRate && (row.Upper < b.Lower || row.Lower > b.Upper)
			}
		}
		d.Baseline = b
	}
	p.Title, p.Data = p.T("outcomes"), d
	u.render(w, r, p, status, "outcomes")
}

// baselineInput reads the baseline fields, recording a message at each
// refused one; ok is true when a baseline is to be compared.
func (u *UI) baselineInput(p *page, d outcomesData) (num, den int, ok bool) {
	m, ns, ds := d.Form["baseline-measure"], d.Form["baseline-num"], d.Form["baseline-den"]
	if m != "" && !slices.Contains(outcomesMeasures, m) {
		d.Errors["baseline-measure"] = p.T("out_err_measure")
	}
	count := func(field, v string, least int) (int, bool) {
		n, err := strconv.Atoi(v)
		switch {
		case err != nil:
			d.Errors[field] = p.T("out_err_integer")
		case n < 0:
			d.Errors[field] = p.T("out_err_negative")
		case n < least:
			d.Errors[field] = p.T("out_err_den_zero")
		default:
			return n, true
		}
		return 0, false
	}
	if ns == "" && ds == "" {
		return 0, 0, false
	}
	if ns == "" {
		d.Errors["baseline-num"] = p.T("out_err_missing")
	}
	if ds == "" {
		d.Errors["baseline-den"] = p.T("out_err_missing")
	}
	if ns == "" || ds == "" {
		return 0, 0, false
	}
	num, okN := count("baseline-num", ns, 0)
	den, okD := count("baseline-den", ds, 1)
	if okN && okD && num > den {
		d.Errors["baseline-num"] = fmt.Sprintf(p.T("out_err_num_gt_den"), num, den)
		return 0, 0, false
	}
	return num, den, okN && okD && m != "" && d.Errors["baseline-measure"] == ""
}

// interval writes a proportion and its interval as percentages in the
// page's language: "5,26 % [2,88 % – 9,42 %]" or "5.26% [2.88%–9.42%]".
func interval(lang string, p, lo, hi float64) string {
	if lang == "en" {
		f := func(x float64) string { return strconv.FormatFloat(x*100, 'f', 2, 64) + "%" }
		return f(p) + " [" + f(lo) + "–" + f(hi) + "]"
	}
	f := func(x float64) string {
		return strings.Replace(strconv.FormatFloat(x*100, 'f', 2, 64), ".", ",", 1) + " %"
	}
	return f(p) + " [" + f(lo) + " – " + f(hi) + "]"
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

// MinComplete is MinComplete, for the template.
func (outcomesData) MinComplete() int { return MinComplete }
