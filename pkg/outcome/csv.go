package outcome

import (
	"encoding/csv"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// CSVHeader is the header of /api/outcomes.csv (docs/contract.md, "HTTP").
var CSVHeader = []string{"episode", "pathway", "hospital_finess", "discharge_date", "follow_up_days", "readmission_dates", "death_date", "first_contact_days"}

// CSVRow is one episode of the export: dates in Europe/Paris, empty cells
// for none or not yet.
func CSVRow(c Case, pseudonym string, now time.Time) []string {
	end := DayOf(now)
	death := ""
	if !c.Rec.Death.IsZero() && !c.Rec.Death.Before(c.Ep.Discharge) {
		dd := DayOf(c.Rec.Death)
		death = dd.String()
		if dd < end {
			end = dd
		}
	}
	follow := int(end - c.D0)
	if follow < 0 {
		follow = 0
	}
	var readm []string
	for _, s := range c.Readmissions {
		if !c.Rec.Death.IsZero() && !s.Start.Before(c.Rec.Death) {
			break
		}
		readm = append(readm, DayOf(s.Start).String())
	}
	contact := ""
	if !c.FirstContact.IsZero() {
		contact = strconv.Itoa(int(DayOf(c.FirstContact) - c.D0))
	}
	return []string{pseudonym, PathwayCode(c.Ep.Pathway), c.Hospital, c.D0.String(), strconv.Itoa(follow),
		strings.Join(readm, "|"), death, contact}
}

// CSVWriter writes the episode export a row at a time.
type CSVWriter struct {
	w   *csv.Writer
	now time.Time
	n   int
}

// NewCSVWriter writes the header and returns the writer.
func NewCSVWriter(w io.Writer, now time.Time) (*CSVWriter, error) {
	cw := &CSVWriter{w: csv.NewWriter(w), now: now}
	return cw, cw.w.Write(CSVHeader)
}

// Write writes one case's row.
func (cw *CSVWriter) Write(c Case, pseudonym string) error {
	cw.n++
	return cw.w.Write(CSVRow(c, pseudonym, cw.now))
}

// Flush ends the export and returns the rows written.
func (cw *CSVWriter) Flush() (int, error) {
	cw.w.Flush()
	return cw.n, cw.w.Error()
}

// ACIHeader is the header of the yearly indicators a CPTS reports for the
// "parcours" mission of its ACI (accord conventionnel interprofessionnel).
var ACIHeader = []string{"annee", "indicateur", "libelle", "parcours", "numerateur", "denominateur", "taux_pct", "ic95_bas_pct", "ic95_haut_pct", "exclus", "censures"}

// WriteACI writes one row per result (and per pathway stratum) of a year.
// Masked counts are written "<threshold" and their rates left empty.
func WriteACI(w io.Writer, year int, results []*Result, threshold int) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(ACIHeader); err != nil {
		return err
	}
	cell := func(n int) string {
		if n == Masked {
			return fmt.Sprintf("<%d", threshold)
		}
		return strconv.Itoa(n)
	}
	row := func(r *Result, pathway string, c Counts) error {
		rate, lo, hi := "", "", ""
		if p, l, h, ok := c.Rate(); ok {
			rate, lo, hi = pct(p), pct(l), pct(h)
		}
		return cw.Write([]string{strconv.Itoa(year), r.Measure.ID, r.Measure.TitleFR, pathway, cell(c.Numerator), cell(c.Denominator),
			rate, lo, hi, cell(c.Exclusions), cell(c.Censored)})
	}
	for _, r := range results {
		if err := row(r, "tous", r.Counts); err != nil {
			return err
		}
		for _, s := range r.Stratifiers {
			if s.Code != StratPathway {
				continue
			}
			for _, st := range s.Strata {
				if err := row(r, st.Value, st.Counts); err != nil {
					return err
				}
			}
		}
	}
	cw.Flush()
	return cw.Error()
}

func pct(p float64) string { return strconv.FormatFloat(p*100, 'f', 2, 64) }
