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
	if score := measureScore(r.Counts); score != nil {
		group["measureScore"] = score["measureScore"]
		group["extension"] = score["extension"]
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
	return out
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
		}
	}
	return c, nil
}
