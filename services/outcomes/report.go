package outcomes

import (
	"encoding/json"
	"math"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/outcome"
)

// Canonical URLs of the MeasureReport's codes and extensions.
const (
	MeasureBase          = "https://passerelle.health/fhir/Measure/"
	systemPopulation     = "http://terminology.hl7.org/CodeSystem/measure-population"
	SystemPopulationExt  = "https://passerelle.health/fhir/CodeSystem/measure-population"
	SystemStratifier     = "https://passerelle.health/fhir/CodeSystem/measure-stratifier"
	ExtScoreInterval     = "https://passerelle.health/fhir/StructureDefinition/measure-score-interval"
	ExtMaskingThreshold  = "https://passerelle.health/fhir/StructureDefinition/small-cell-threshold"
	ExtKaplanMeier       = "https://passerelle.health/fhir/StructureDefinition/kaplan-meier-estimate"
	extDataAbsentReason  = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
	systemImprovementNot = "http://terminology.hl7.org/CodeSystem/measure-improvement-notation"
)

// ReportOptions shape a MeasureReport.
type ReportOptions struct {
	// Type is summary, subject-list or individual.
	Type    string
	Subject string // "Patient/<id>" for an individual report
	Now     time.Time
	// Threshold is stated on a masked report.
	Threshold int
	Reporter  string
}

// MeasureReport renders a result as a FHIR R4 MeasureReport: the
// populations (initial, denominator, exclusions, numerator, and
// Passerelle's censored and hf-status-unknown), the proportion with its
// Wilson 95 % interval (extension measure-score-interval) and the strata.
// A masked count has no count and a data-absent-reason "masked"; its rate
// is not given.
func MeasureReport(r *outcome.Result, o ReportOptions) map[string]any {
	typ := o.Type
	if typ == "" {
		typ = "summary"
	}
	mr := map[string]any{
		"resourceType": "MeasureReport",
		"status":       "complete",
		"type":         typ,
		"measure":      MeasureBase + r.Measure.ID,
		"date":         o.Now.In(parisLoc()).Format(time.RFC3339),
		"period":       map[string]any{"start": r.Start.String(), "end": r.End.String()},
		"improvementNotation": map[string]any{"coding": []any{map[string]any{"system": systemImprovementNot,
			"code": improvement(r.Measure)}}},
	}
	if o.Subject != "" {
		mr["subject"] = map[string]any{"reference": o.Subject}
	}
	if o.Reporter != "" {
		mr["reporter"] = map[string]any{"reference": o.Reporter}
	}
	if r.Masked {
		mr["extension"] = []any{map[string]any{"url": ExtMaskingThreshold, "valueInteger": o.Threshold}}
	}
	group := map[string]any{"population": populations(r, r.Counts, true)}
	var ext []any
	if score := measureScore(r.Counts); score != nil {
		group["measureScore"] = score["measureScore"]
		ext = append(ext, score["extension"].([]any)...)
	}
	if km := kaplanMeier(r, o.Threshold); km != nil {
		ext = append(ext, km)
	}
	if ext != nil {
		group["extension"] = ext
	}
	var strat []any
	for _, s := range r.Stratifiers {
		var strata []any
		for _, st := range s.Strata {
			e := map[string]any{"value": map[string]any{"text": st.Value}, "population": populations(r, st.Counts, false)}
			if score := measureScore(st.Counts); score != nil {
				e["measureScore"] = score["measureScore"]
				e["extension"] = score["extension"]
			}
			strata = append(strata, e)
		}
		strat = append(strat, map[string]any{
			"code":    []any{map[string]any{"coding": []any{map[string]any{"system": SystemStratifier, "code": s.Code}}}},
			"stratum": strata,
		})
	}
	if strat != nil {
		group["stratifier"] = strat
	}
	mr["group"] = []any{group}
	if typ == "subject-list" && r.Subjects != nil {
		var contained []any
		for _, code := range []string{outcome.PopInitial, outcome.PopDenominator, outcome.PopExclusion, outcome.PopNumerator, outcome.PopCensored} {
			var entries []any
			for _, ref := range r.Subjects[code] {
				entries = append(entries, map[string]any{"item": map[string]any{"reference": ref}})
			}
			l := map[string]any{"resourceType": "List", "id": "list-" + code, "status": "current", "mode": "snapshot"}
			if entries != nil {
				l["entry"] = entries
			}
			contained = append(contained, l)
		}
		mr["contained"] = contained
	}
	return mr
}

func improvement(d outcome.Definition) string {
	switch d.ID {
	case outcome.FirstContact7, outcome.TasksOnTime:
		return "increase"
	}
	return "decrease"
}

func populations(r *outcome.Result, c outcome.Counts, top bool) []any {
	pop := func(system, code string, n int) map[string]any {
		p := map[string]any{"code": map[string]any{"coding": []any{map[string]any{"system": system, "code": code}}}}
		if n == outcome.Masked {
			p["extension"] = []any{map[string]any{"url": extDataAbsentReason, "valueCode": "masked"}}
		} else {
			p["count"] = n
		}
		if top && r.Subjects != nil {
			p["subjectResults"] = map[string]any{"reference": "#list-" + code}
		}
		return p
	}
	out := []any{
		pop(systemPopulation, outcome.PopInitial, c.Initial),
		pop(systemPopulation, outcome.PopDenominator, c.Denominator),
		pop(systemPopulation, outcome.PopExclusion, c.Exclusions),
		pop(systemPopulation, outcome.PopNumerator, c.Numerator),
		pop(SystemPopulationExt, outcome.PopCensored, c.Censored),
	}
	if r.Measure.ID == outcome.HFReadmission {
		p := pop(SystemPopulationExt, "hf-status-unknown", c.Unknown)
		delete(p, "subjectResults")
		out = append(out, p)
	}
	// Why episodes are left out of a fixed-horizon rate: censored ones
	// waiting for the register of deaths (the rest wait for their window
	// to end), excluded ones for a death before any readmission (the rest
	// died before their discharge).
	if r.Measure.FixedHorizon() {
		for _, x := range []struct {
			code string
			n    int
		}{{PopCensoredRegister, c.CensoredRegister}, {PopExcludedDeath, c.ExcludedDeath}} {
			p := pop(SystemPopulationExt, x.code, x.n)
			delete(p, "subjectResults")
			out = append(out, p)
		}
	}
	return out
}

// Population codes (SystemPopulationExt) that say why fixed-horizon
// episodes are left out of the rate.
const (
	PopCensoredRegister = "censored-register"
	PopExcludedDeath    = "excluded-death"
)

// kaplanMeier is the group's extension kaplan-meier-estimate (CONTRACT.md
// "Fixed-horizon measures"): 1 − S(N) over every episode of the initial
// population, its log-log Greenwood 95 % interval and the number still at
// risk at the horizon. A masked report gives no estimate when the initial
// population is withheld, and withholds a small number at risk.
func kaplanMeier(r *outcome.Result, threshold int) map[string]any {
	km := r.KM
	if !km.OK || (r.Masked && r.Counts.Initial == outcome.Masked) {
		return nil
	}
	sub := []any{
		map[string]any{"url": "estimate", "valueDecimal": round4(km.Estimate)},
		map[string]any{"url": "low", "valueDecimal": round4(km.Low)},
		map[string]any{"url": "high", "valueDecimal": round4(km.High)},
	}
	if !r.Masked || km.AtRisk == 0 || km.AtRisk >= threshold {
		sub = append(sub, map[string]any{"url": "atRisk", "valueInteger": km.AtRisk})
	}
	return map[string]any{"url": ExtKaplanMeier, "extension": sub}
}

// KaplanMeierOf reads the kaplan-meier-estimate extension of a
// MeasureReport's first group back (for checks and clients); ok is false
// when there is none.
func KaplanMeierOf(mr []byte) (km outcome.KMEstimate, ok bool, err error) {
	var r struct {
		Group []struct {
			Extension []struct {
				URL       string `json:"url"`
				Extension []struct {
					URL          string   `json:"url"`
					ValueDecimal *float64 `json:"valueDecimal"`
					ValueInteger *int     `json:"valueInteger"`
				} `json:"extension"`
			} `json:"extension"`
		} `json:"group"`
	}
	if err := json.Unmarshal(mr, &r); err != nil || len(r.Group) == 0 {
		return km, false, err
	}
	for _, e := range r.Group[0].Extension {
		if e.URL != ExtKaplanMeier {
			continue
		}
		km.OK, km.AtRisk = true, -1
		for _, x := range e.Extension {
			switch {
			case x.URL == "atRisk" && x.ValueInteger != nil:
				km.AtRisk = *x.ValueInteger
			case x.ValueDecimal == nil:
			case x.URL == "estimate":
				km.Estimate = *x.ValueDecimal
			case x.URL == "low":
				km.Low = *x.ValueDecimal
			case x.URL == "high":
				km.High = *x.ValueDecimal
			}
		}
		return km, true, nil
	}
	return km, false, nil
}

func round4(f float64) float64 { return math.Round(f*10000) / 10000 }

func measureScore(c outcome.Counts) map[string]any {
	p, lo, hi, ok := c.Rate()
	if !ok {
		return nil
	}
	return map[string]any{
		"measureScore": map[string]any{"value": round4(p)},
		"extension": []any{map[string]any{"url": ExtScoreInterval, "valueRange": map[string]any{
			"low": map[string]any{"value": round4(lo)}, "high": map[string]any{"value": round4(hi)}}}},
	}
}

// CountsOf reads the top-level populations back from a MeasureReport (for
// checks and clients); a masked count reads as outcome.Masked.
func CountsOf(mr []byte) (outcome.Counts, error) {
	var r struct {
		Group []struct {
			Population []struct {
				Code struct {
					Coding []struct{ Code string }
				}
				Count *int
			}
		}
	}
	var c outcome.Counts
	if err := json.Unmarshal(mr, &r); err != nil || len(r.Group) == 0 {
		return c, err
	}
	for _, p := range r.Group[0].Population {
		n := outcome.Masked
		if p.Count != nil {
			n = *p.Count
		}
		switch p.Code.Coding[0].Code {
		case outcome.PopInitial:
			c.Initial = n
		case outcome.PopDenominator:
			c.Denominator = n
		case outcome.PopExclusion:
			c.Exclusions = n
		case outcome.PopNumerator:
			c.Numerator = n
		case outcome.PopCensored:
			c.Censored = n
		case "hf-status-unknown":
			c.Unknown = n
		case PopCensoredRegister:
			c.CensoredRegister = n
		case PopExcludedDeath:
			c.ExcludedDeath = n
		}
	}
	return c, nil
}
