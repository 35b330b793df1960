package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/services/worklist"
)

// codeWeight is LOINC body weight.
const codeWeight = "29463-7"

// weightPoint is one weight; Threshold is the weight at which it would
// have raised the alert (0 when no earlier weight falls in the window),
// Alert whether it reached it.
type weightPoint struct {
	At        time.Time
	Kg        float64
	Threshold float64
	Alert     bool
}

// weights reads body weights in kg from Observations, oldest first.
func weights(res []store.Resource) []weightPoint {
	var out []weightPoint
	for _, r := range res {
		var o struct {
			Status            string `json:"status"`
			EffectiveDateTime string `json:"effectiveDateTime"`
			ValueQuantity     *struct {
				Value float64 `json:"value"`
				Code  string  `json:"code"`
				Unit  string  `json:"unit"`
			} `json:"valueQuantity"`
		}
		if json.Unmarshal(r.Body, &o) != nil || o.ValueQuantity == nil || o.Status == "entered-in-error" || o.Status == "cancelled" {
			continue
		}
		kg := o.ValueQuantity.Value
		if o.ValueQuantity.Code == "g" {
			kg /= 1000
		}
		at := parseTime(o.EffectiveDateTime)
		if at.IsZero() {
			at = r.LastUpdated
		}
		out = append(out, weightPoint{At: at, Kg: kg})
	}
	slices.SortFunc(out, func(a, b weightPoint) int { return a.At.Compare(b.At) })
	return out
}

// thresholds sets each point's threshold: the lowest weight of the days
// before it (within days) plus gain, the alert rule of the heart-failure
// template (a gain of 2 kg over 3 days by default).
func thresholds(ps []weightPoint, gain float64, days int) {
	window := time.Duration(days) * 24 * time.Hour
	for i := range ps {
		low := math.Inf(1)
		for j := 0; j < i; j++ {
			if ps[i].At.Sub(ps[j].At) <= window {
				low = math.Min(low, ps[j].Kg)
			}
		}
		if !math.IsInf(low, 1) {
			ps[i].Threshold = low + gain
			ps[i].Alert = ps[i].Kg >= ps[i].Threshold-1e-9
		}
	}
}

// weightSVG draws the curve with the alert threshold as a dashed line. It
// sets the points' thresholds. Text inside is the page's language.
func (u *UI) weightSVG(ps []weightPoint, lang string) template.HTML {
	if len(ps) == 0 {
		return ""
	}
	thresholds(ps, u.d.WeightGain, u.d.WeightDays)
	const w, h, left, right, top, bottom = 320.0, 170.0, 40.0, 10.0, 10.0, 26.0
	lo, hi := math.Inf(1), math.Inf(-1)
	for _, p := range ps {
		lo, hi = math.Min(lo, p.Kg), math.Max(hi, p.Kg)
		if p.Threshold > 0 {
			hi = math.Max(hi, p.Threshold)
		}
	}
	lo, hi = math.Floor(lo-1), math.Ceil(hi+1)
	t0, t1 := ps[0].At, ps[len(ps)-1].At
	if !t1.After(t0) {
		t0, t1 = t0.Add(-12*time.Hour), t1.Add(12*time.Hour)
	}
	x := func(t time.Time) float64 {
		return left + (w-left-right)*float64(t.Sub(t0))/float64(t1.Sub(t0))
	}
	y := func(kg float64) float64 { return top + (h-top-bottom)*(hi-kg)/(hi-lo) }
	var b strings.Builder
	title := translate(lang, "weight")
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-labelledby="wt-title wt-desc" xmlns="http://www.w3.org/2000/svg">`, w, h)
	fmt.Fprintf(&b, `<title id="wt-title">%s</title>`, template.HTMLEscapeString(title))
	fmt.Fprintf(&b, `<desc id="wt-desc">%s</desc>`, template.HTMLEscapeString(fmt.Sprintf(strings.Replace(translate(lang, "weight_desc"), "%s", "%g", 1), u.d.WeightGain, u.d.WeightDays)))
	// Axes and labels.
	fmt.Fprintf(&b, `<path d="M%g %gV%gH%g" fill="none" stroke="#4b5563"/>`, left, top, h-bottom, w-right)
	for _, kg := range []float64{lo, (lo + hi) / 2, hi} {
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" font-size="11" text-anchor="end" fill="#1f2937">%s</text>`, left-4, y(kg)+4, formatNumber(lang, math.Round(kg*10)/10))
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="11" fill="#1f2937">%s</text>`, left, h-8, t0.In(clock.Paris).Format("02/01"))
	fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="11" text-anchor="end" fill="#1f2937">%s</text>`, w-right, h-8, t1.In(clock.Paris).Format("02/01"))
	// Threshold: a step line over the points that have one.
	var th strings.Builder
	for i, p := range ps {
		if p.Threshold == 0 {
			continue
		}
		// The threshold holds from the earlier weighing it comes from up
		// to this one.
		x0 := x(p.At) - 6
		if i > 0 {
			x0 = x(ps[i-1].At)
		}
		if th.Len() == 0 || ps[i-1].Threshold == 0 {
			fmt.Fprintf(&th, "M%.1f %.1f", x0, y(p.Threshold))
		} else {
			fmt.Fprintf(&th, "V%.1f", y(p.Threshold))
		}
		fmt.Fprintf(&th, "H%.1f", x(p.At)+6)
	}
	if th.Len() > 0 {
		fmt.Fprintf(&b, `<path class="threshold" d="%s" fill="none" stroke="#b91c1c" stroke-width="2" stroke-dasharray="5 4"/>`, th.String())
	}
	// The curve and its points.
	var line strings.Builder
	for i, p := range ps {
		if i == 0 {
			fmt.Fprintf(&line, "M%.1f %.1f", x(p.At), y(p.Kg))
		} else {
			fmt.Fprintf(&line, "L%.1f %.1f", x(p.At), y(p.Kg))
		}
	}
	fmt.Fprintf(&b, `<path d="%s" fill="none" stroke="#1d4ed8" stroke-width="2"/>`, line.String())
	for _, p := range ps {
		fill, r := "#1d4ed8", 3.5
		if p.Alert {
			fill, r = "#b91c1c", 5
		}
		fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="%g" fill="%s"><title>%s : %s kg</title></circle>`, x(p.At), y(p.Kg), r, fill,
			formatDateTime(p.At), formatNumber(lang, p.Kg))
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}

// visitRow is one recorded visit (a visit form's QuestionnaireResponse):
// what was measured and said, and who recorded it.
type visitRow struct {
	At                              time.Time
	Weight, Systolic, Diastolic, HR float64
	HasWeight, HasBP, HasHR         bool
	NYHA, Oedema, Breathlessness    string
	Symptoms, Note, By              string
}

// visitRows reads the visit forms of a patient, newest first, at most max.
func (u *UI) visitRows(ctx context.Context, res []store.Resource, max int) []visitRow {
	var out []visitRow
	names := map[string]string{}
	for _, r := range res {
		var qr struct {
			Questionnaire string `json:"questionnaire"`
			Status        string `json:"status"`
			Authored      string `json:"authored"`
			Author        fRef   `json:"author"`
			Item          []struct {
				LinkID string `json:"linkId"`
				Answer []struct {
					ValueQuantity *struct {
						Value float64 `json:"value"`
					} `json:"valueQuantity"`
					ValueCoding *fCoding `json:"valueCoding"`
					ValueString string   `json:"valueString"`
				} `json:"answer"`
			} `json:"item"`
		}
		if json.Unmarshal(r.Body, &qr) != nil || qr.Questionnaire != worklist.VisitQuestionnaire || qr.Status == "entered-in-error" {
			continue
		}
		v := visitRow{At: parseTime(qr.Authored)}
		if n, ok := names[qr.Author.Reference]; ok {
			v.By = n
		} else if m, ok := u.member(ctx, qr.Author.Reference); ok {
			v.By, names[qr.Author.Reference] = m.Name, m.Name
		}
		for _, it := range qr.Item {
			if len(it.Answer) == 0 {
				continue
			}
			a := it.Answer[0]
			q := 0.0
			if a.ValueQuantity != nil {
				q = a.ValueQuantity.Value
			}
			c := ""
			if a.ValueCoding != nil {
				c = a.ValueCoding.Code
				for k, sv := range severityCodes {
					if sv == c {
						c = k
					}
				}
				if strings.HasPrefix(a.ValueCoding.Display, "NYHA ") {
					c = strings.TrimPrefix(a.ValueCoding.Display, "NYHA ")
				}
			}
			switch it.LinkID {
			case worklist.FieldWeight:
				v.Weight, v.HasWeight = q, a.ValueQuantity != nil
			case worklist.FieldSystolic:
				v.Systolic, v.HasBP = q, a.ValueQuantity != nil
			case worklist.FieldDiastolic:
				v.Diastolic = q
			case worklist.FieldHeartRate:
				v.HR, v.HasHR = q, a.ValueQuantity != nil
			case worklist.FieldNYHA:
				v.NYHA = c
			case worklist.FieldOedema:
				v.Oedema = c
			case worklist.FieldBreathlessness:
				v.Breathlessness = c
			case worklist.FieldSymptoms:
				v.Symptoms = a.ValueString
			case worklist.FieldNote:
				v.Note = a.ValueString
			}
		}
		out = append(out, v)
	}
	slices.SortFunc(out, func(a, b visitRow) int { return b.At.Compare(a.At) })
	if len(out) > max {
		out = out[:max]
	}
	return out
}

// severityCodes are the SNOMED CT codes of the oedema and breathlessness
// answers, by the form's value.
var severityCodes = map[string]string{"absent": "2667000", "present": "52101004", "mild": "255604002", "moderate": "6736007", "severe": "24484000"}

// vitalsSVG draws the systolic and diastolic pressures and the heart rate
// of the visits, oldest left: one scale (mmHg and /min share a range).
func vitalsSVG(rows []visitRow, lang string) template.HTML {
	var ps []visitRow
	for i := len(rows) - 1; i >= 0; i-- {
		if rows[i].HasBP || rows[i].HasHR {
			ps = append(ps, rows[i])
		}
	}
	if len(ps) == 0 {
		return ""
	}
	const w, h, left, right, top, bottom = 320.0, 170.0, 40.0, 10.0, 10.0, 26.0
	lo, hi := 40.0, 180.0
	for _, p := range ps {
		if p.HasBP {
			hi = math.Max(hi, p.Systolic+10)
			lo = math.Min(lo, p.Diastolic-10)
		}
		if p.HasHR {
			hi, lo = math.Max(hi, p.HR+10), math.Min(lo, p.HR-10)
		}
	}
	t0, t1 := ps[0].At, ps[len(ps)-1].At
	if !t1.After(t0) {
		t0, t1 = t0.Add(-12*time.Hour), t1.Add(12*time.Hour)
	}
	x := func(t time.Time) float64 { return left + (w-left-right)*float64(t.Sub(t0))/float64(t1.Sub(t0)) }
	y := func(v float64) float64 { return top + (h-top-bottom)*(hi-v)/(hi-lo) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="chart" viewBox="0 0 %g %g" role="img" aria-labelledby="vs-title" xmlns="http://www.w3.org/2000/svg">`, w, h)
	fmt.Fprintf(&b, `<title id="vs-title">%s</title>`, template.HTMLEscapeString(translate(lang, "vitals_chart")))
	fmt.Fprintf(&b, `<path d="M%g %gV%gH%g" fill="none" stroke="#4b5563"/>`, left, top, h-bottom, w-right)
	for _, v := range []float64{lo, (lo + hi) / 2, hi} {
		fmt.Fprintf(&b, `<text x="%g" y="%.1f" font-size="11" text-anchor="end" fill="#1f2937">%s</text>`, left-4, y(v)+4, formatNumber(lang, math.Round(v)))
	}
	fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="11" fill="#1f2937">%s</text>`, left, h-8, t0.In(clock.Paris).Format("02/01"))
	fmt.Fprintf(&b, `<text x="%g" y="%g" font-size="11" text-anchor="end" fill="#1f2937">%s</text>`, w-right, h-8, t1.In(clock.Paris).Format("02/01"))
	series := []struct {
		class, color string
		has          func(visitRow) bool
		val          func(visitRow) float64
	}{
		{"systolic", "#b91c1c", func(r visitRow) bool { return r.HasBP }, func(r visitRow) float64 { return r.Systolic }},
		{"diastolic", "#1d4ed8", func(r visitRow) bool { return r.HasBP }, func(r visitRow) float64 { return r.Diastolic }},
		{"heart-rate", "#047857", func(r visitRow) bool { return r.HasHR }, func(r visitRow) float64 { return r.HR }},
	}
	for _, s := range series {
		var line strings.Builder
		for _, p := range ps {
			if !s.has(p) {
				continue
			}
			op := "L"
			if line.Len() == 0 {
				op = "M"
			}
			fmt.Fprintf(&line, "%s%.1f %.1f", op, x(p.At), y(s.val(p)))
			fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="%s"><title>%s : %s</title></circle>`, x(p.At), y(s.val(p)), s.color,
				formatDateTime(p.At), formatNumber(lang, s.val(p)))
		}
		if line.Len() > 0 {
			fmt.Fprintf(&b, `<path class="%s" d="%s" fill="none" stroke="%s" stroke-width="2"/>`, s.class, line.String(), s.color)
		}
	}
	b.WriteString(`</svg>`)
	return template.HTML(b.String())
}
