package pathway

import (
	"slices"
	"strings"
	"time"
)

// Coding is a code in a system.
type Coding struct{ System, Code string }

// Eligibility is a template's extension pathway-eligibility.
type Eligibility struct {
	// DiagnosisPrefixes match ICD-10 codes by prefix, dots ignored (I50
	// matches I50.1, I501 and ATIH's French extensions under I50).
	DiagnosisPrefixes []string
	// Dispositions lists the accepted Encounter discharge dispositions;
	// empty accepts any.
	Dispositions []string
	// MinimumAge in whole years on the discharge date; 0 for none.
	MinimumAge int
	// ConfirmUnitSpecialties: a discharge with no diagnosis at all from a
	// unit of one of these specialties is an inclusion to confirm.
	ConfirmUnitSpecialties []Coding
	ExcludedClasses        []string
	ExcludeElective        bool
	ExcludedModesSortie    []string
}

// Stay is what eligibility reads of a discharge.
type Stay struct {
	Class       string // Encounter.class code (IMP, AMB, EMER, R)
	Elective    bool   // Encounter.priority EL
	Disposition string // hospitalization.dischargeDisposition code
	ModeSortie  string // PMSI mode de sortie
	// Diagnoses are ICD-10 codes.
	Diagnoses []string
	// BirthDate is the patient's, YYYY-MM-DD (or YYYY-MM, YYYY).
	BirthDate string
	Discharge time.Time
	// UnitSpecialties are the specialties of the discharging medical unit,
	// from the directory.
	UnitSpecialties []Coding
}

// Decision is the outcome of eligibility.
type Decision int

// Decisions.
const (
	NotEligible Decision = iota
	Eligible
	// ToConfirm: the message cannot decide; the referent coordinating
	// nurse confirms or declines the inclusion (docs/domain.md, "Pathways").
	ToConfirm
)

// Decide applies the eligibility to a stay. The reason (for the log, never
// patient data) says which criterion failed.
func (e Eligibility) Decide(s Stay) (Decision, string) {
	switch {
	case slices.Contains(e.ExcludedClasses, s.Class):
		return NotEligible, "excluded class " + s.Class
	case e.ExcludeElective && s.Elective:
		return NotEligible, "elective stay"
	case s.ModeSortie != "" && slices.Contains(e.ExcludedModesSortie, s.ModeSortie):
		return NotEligible, "excluded mode de sortie " + s.ModeSortie
	case len(e.Dispositions) > 0 && !slices.Contains(e.Dispositions, s.Disposition):
		return NotEligible, "discharge disposition not accepted"
	}
	if e.MinimumAge > 0 {
		age, ok := AgeOn(s.BirthDate, s.Discharge)
		if !ok {
			return NotEligible, "age unknown"
		}
		if age < e.MinimumAge {
			return NotEligible, "below the minimum age"
		}
	}
	for _, d := range s.Diagnoses {
		code := normICD(d)
		for _, p := range e.DiagnosisPrefixes {
			if p != "" && strings.HasPrefix(code, p) {
				return Eligible, ""
			}
		}
	}
	if len(s.Diagnoses) == 0 {
		for _, u := range s.UnitSpecialties {
			if slices.Contains(e.ConfirmUnitSpecialties, u) {
				return ToConfirm, ""
			}
		}
		return NotEligible, "no diagnosis"
	}
	return NotEligible, "no matching diagnosis"
}

func normICD(s string) string {
	return strings.ToUpper(strings.ReplaceAll(strings.TrimSpace(s), ".", ""))
}

// AgeOn returns the age in whole years on the Europe/Paris calendar day of
// at, of a person born on birthDate (YYYY-MM-DD; YYYY-MM and YYYY count
// from the first day, which can only overstate a minor's age by under a
// year and is refused for the minimum-age check only when the year alone
// leaves it undecided).
func AgeOn(birthDate string, at time.Time) (int, bool) {
	var b time.Time
	var err error
	switch len(birthDate) {
	case 10:
		b, err = time.Parse("2006-01-02", birthDate)
	case 7:
		b, err = time.Parse("2006-01", birthDate)
	case 4:
		b, err = time.Parse("2006", birthDate)
	default:
		return 0, false
	}
	if err != nil {
		return 0, false
	}
	y, m, d := at.In(paris).Date()
	age := y - b.Year()
	if m < b.Month() || m == b.Month() && d < b.Day() {
		age--
	}
	return age, age >= 0
}
