package outcomes

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/outcome"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// A recorded death is an Observation (LOINC 81956-5, date and time of
// death) about the Patient, its method saying who knew: a team member
// (team) or the INSEE register (insee).
const (
	LOINCDeath    = "81956-5"
	SystemLOINC   = "http://loinc.org"
	SystemDeathBy = "https://passerelle.health/fhir/CodeSystem/death-source"
)

func deathObservation(id, patient string, at time.Time, source, performer, note string) *model.Observation {
	t := at.In(parisLoc()).Format(time.RFC3339)
	o := &model.Observation{ResourceType: "Observation", ID: id, Status: "final",
		Code:              model.Codeable(SystemLOINC, LOINCDeath, "Date and time of death"),
		Subject:           model.Ref("Patient/" + patient),
		EffectiveDateTime: t,
		ValueDateTime:     &t,
		Method:            model.Codeable(SystemDeathBy, source, ""),
	}
	if performer != "" {
		o.Performer = []model.Reference{*model.Ref(performer)}
	}
	if note != "" {
		o.Note = []model.Annotation{{Text: note}}
	}
	return o
}

// RecordDeath records, for an actor allowed to write the patient's data,
// that the patient died at the given time: an Observation, announced on
// fhir.<tenant>.Observation.created, and the outcome record, in one
// transaction. The actor must be in care relationship with the patient now
// (access.Policy.Patient): a death ends the episodes and cancels their
// tasks, so a former member, even within the access grace period, records
// none (403).
func (s *Service) RecordDeath(ctx context.Context, act directory.Actor, patient string, at time.Time) (store.Resource, error) {
	var out store.Resource
	if at.After(s.d.Clock.Now().Add(time.Minute)) {
		return out, fhir.Errorf(fhir.Invalid, "value", "La date de décès est dans le futur", "The date of death is in the future", "deceasedDateTime")
	}
	if err := (access.Policy{Now: s.d.Clock.Now}).Patient(ctx, s.d.Store, act, "Patient/"+patient); err != nil {
		return out, err
	}
	performer := act.Reference()
	err := s.d.Store.Tx(ctx, func(tx store.Tx) error {
		if _, err := tx.Read(ctx, "Patient", patient); err != nil {
			return fhir.Errorf(fhir.NotFound, "not-found", "Patient inconnu : "+patient, "Unknown patient: "+patient, "patient")
		}
		b, _ := json.Marshal(deathObservation("", patient, at, "team", performer, ""))
		res, err := tx.Create(ctx, act.Tenant, b)
		if err != nil {
			return err
		}
		out = res
		if err := tx.Audit(ctx, store.AuditRecord{Tenant: act.Tenant, Time: s.d.Clock.Now(), Agent: performer, Action: "C",
			Entity: fmt.Sprintf("Observation/%s/_history/%d", res.ID, res.Version), Patient: "Patient/" + patient, Outcome: "0"}); err != nil {
			return err
		}
		if err := event.Emit(ctx, tx, event.New(act.Tenant, bus.OpCreated, fhirapi.TraceParent(ctx), res)); err != nil {
			return err
		}
		return update(ctx, tx, act.Tenant, patient, func(r *outcome.Record) error {
			r.SetDeath(at, "team")
			return nil
		})
	})
	return out, err
}

// ImportReport says what an import of the register did.
type ImportReport struct {
	Month int `json:"month"`
	Lines int `json:"lines"`
	// Matched: one patient matched the line on every INS trait.
	Matched []ImportMatch `json:"matched"`
	// Ambiguous: a line matching several patients, or a patient matched
	// by several lines: nothing recorded, to check by hand.
	Ambiguous []ImportAmbiguity `json:"ambiguous"`
	// Unmatched: lines close to a patient (same sex, birth date and birth
	// name) that differ on another trait: nothing recorded, to check by
	// hand.
	Unmatched []ImportNearMiss `json:"unmatched"`
	// Errors: lines that could not be read.
	Errors []ImportError `json:"errors"`
	// NotConcerned counts lines about none of the CPTS's patients.
	NotConcerned int `json:"notConcerned"`
	// AlreadyKnown counts matches whose death was already recorded.
	AlreadyKnown int `json:"alreadyKnown"`
}

// ImportMatch is a death recorded from the register.
type ImportMatch struct {
	Line    int    `json:"line"`
	Patient string `json:"patient"`
	Death   string `json:"deathDate"`
}

// ImportAmbiguity is a line that matched more than one patient.
type ImportAmbiguity struct {
	Line     int      `json:"line"`
	Patients []string `json:"patients"`
}

// ImportNearMiss is a line that nearly matched a patient.
type ImportNearMiss struct {
	Line    int    `json:"line"`
	Patient string `json:"patient"`
	Reason  string `json:"reason"`
}

// ImportError is a line that could not be read.
type ImportError struct {
	Line    int    `json:"line"`
	Message string `json:"message"`
}

// ImportRegister imports one monthly file of INSEE's register of deaths
// for tenant: each line is matched on the INS traits against the
// patients of the CPTS; a line that matches exactly one patient records
// the death (an Observation, method insee, and the outcome record). The
// month (YYYYMM) is then recorded as covered, which closes the mortality
// windows ending in it. agent is who imports (audit trail).
func (s *Service) ImportRegister(ctx context.Context, tenant string, r io.Reader, month int, agent string) (ImportReport, error) {
	rep := ImportReport{Month: month, Matched: []ImportMatch{}, Ambiguous: []ImportAmbiguity{}, Unmatched: []ImportNearMiss{}, Errors: []ImportError{}}
	if month < 190001 || month%100 < 1 || month%100 > 12 {
		return rep, fhir.Errorf(fhir.Invalid, "required", "Mois du fichier (AAAAMM) manquant ou invalide", "The file's month (YYYYMM) is missing or invalid", "month")
	}
	// The file is read first and indexed by sex and birth day (a month is
	// about 50,000 lines); the patients' records then stream past it, so
	// that memory follows the file, not the number of patients.
	type line struct {
		d       outcome.DeathRecord
		matched []string
		near    []ImportNearMiss
	}
	var lines []*line
	index := map[string][]*line{}
	bad, err := outcome.ReadDeaths(r, func(d outcome.DeathRecord) error {
		l := &line{d: d}
		lines = append(lines, l)
		if d.Birth != outcome.NoDay {
			k := d.Sex + fmt.Sprint(d.Birth)
			index[k] = append(index[k], l)
		}
		return nil
	})
	if err != nil {
		return rep, fhir.Errorf(fhir.Invalid, "invalid", "Fichier illisible : "+err.Error(), "Unreadable file: "+err.Error())
	}
	for _, b := range bad {
		rep.Errors = append(rep.Errors, ImportError{Line: b.Line, Message: b.Err.Error()})
		rep.Lines = max(rep.Lines, b.Line)
	}
	err = s.recs.Scan(ctx, tenant, false, func(rec *outcome.Record) error {
		if rec.Sex == "" || rec.BirthDate == outcome.NoDay {
			return nil
		}
		for _, l := range index[rec.Sex+fmt.Sprint(rec.BirthDate)] {
			if outcome.MatchTraits(rec, l.d) {
				l.matched = append(l.matched, rec.Patient)
			} else if outcome.NormName(rec.Family) == outcome.NormName(l.d.Family) {
				l.near = append(l.near, ImportNearMiss{Line: l.d.Line, Patient: "Patient/" + rec.Patient, Reason: nearMissReason(rec, l.d)})
			}
		}
		return nil
	})
	if err != nil {
		return rep, err
	}
	type hit struct {
		line  int
		death outcome.Day
	}
	hits := map[string][]hit{}
	for _, l := range lines {
		rep.Lines = max(rep.Lines, l.d.Line)
		switch len(l.matched) {
		case 0:
			if len(l.near) == 0 {
				rep.NotConcerned++
			}
			rep.Unmatched = append(rep.Unmatched, l.near...)
		case 1:
			hits[l.matched[0]] = append(hits[l.matched[0]], hit{l.d.Line, l.d.Death})
		default:
			sort.Strings(l.matched)
			a := ImportAmbiguity{Line: l.d.Line}
			for _, p := range l.matched {
				a.Patients = append(a.Patients, "Patient/"+p)
			}
			rep.Ambiguous = append(rep.Ambiguous, a)
		}
	}
	var patients []string
	for p, hs := range hits {
		if len(hs) > 1 {
			a := ImportAmbiguity{Line: hs[0].line, Patients: []string{"Patient/" + p}}
			rep.Ambiguous = append(rep.Ambiguous, a)
			continue
		}
		patients = append(patients, p)
	}
	sort.Strings(patients)
	// Written in batches: a month of the register is ~50,000 lines, of
	// which a CPTS has a few.
	now := s.d.Clock.Now()
	for i := 0; i < len(patients) || i == 0; i += 200 {
		batch := patients[i:min(i+200, len(patients))]
		last := i+200 >= len(patients)
		var matched []ImportMatch
		known := 0
		err := s.d.Store.Tx(ctx, func(tx store.Tx) error {
			matched, known = nil, 0
			for _, p := range batch {
				h := hits[p][0]
				// The register gives a day: the death is taken at the end of
				// it, so that a readmission that day comes before it.
				at := (h.death + 1).Start().Add(-time.Second)
				changed := false
				if err := update(ctx, tx, tenant, p, func(r *outcome.Record) error {
					changed = r.SetDeath(at, "insee")
					if !changed {
						return errUnchanged
					}
					return nil
				}); err != nil {
					return err
				}
				if !changed {
					known++
					continue
				}
				b, _ := json.Marshal(deathObservation(inseeObservationID(p), p, at, "insee", "",
					fmt.Sprintf("Fichier INSEE des personnes décédées %d, ligne %d", month, h.line)))
				res, err := tx.Update(ctx, tenant, b, 0)
				if err != nil {
					return err
				}
				if err := tx.Audit(ctx, store.AuditRecord{Tenant: tenant, Time: now, Agent: agent, Action: "C",
					Entity: fmt.Sprintf("Observation/%s/_history/%d", res.ID, res.Version), Patient: "Patient/" + p, Outcome: "0"}); err != nil {
					return err
				}
				if err := event.Emit(ctx, tx, event.New(tenant, bus.OpCreated, "", res)); err != nil {
					return err
				}
				matched = append(matched, ImportMatch{Line: h.line, Patient: "Patient/" + p, Death: h.death.String()})
			}
			if last {
				return addRegisterMonth(ctx, tx, tenant, month)
			}
			return nil
		})
		if err != nil {
			return rep, err
		}
		rep.Matched = append(rep.Matched, matched...)
		rep.AlreadyKnown += known
	}
	sort.Slice(rep.Matched, func(i, j int) bool { return rep.Matched[i].Line < rep.Matched[j].Line })
	sort.Slice(rep.Ambiguous, func(i, j int) bool { return rep.Ambiguous[i].Line < rep.Ambiguous[j].Line })
	return rep, nil
}

func nearMissReason(rec *outcome.Record, d outcome.DeathRecord) string {
	var why []string
	if rec.BirthPlace != "" && d.BirthPlace != "" && rec.BirthPlace != d.BirthPlace {
		why = append(why, fmt.Sprintf("lieu de naissance %s ≠ %s / birth place", rec.BirthPlace, d.BirthPlace))
	}
	sameGiven := false
	for _, g := range rec.Given {
		for _, h := range d.Given {
			sameGiven = sameGiven || outcome.NormName(g) == outcome.NormName(h)
		}
	}
	switch {
	case len(rec.Given) == 0:
		why = append(why, "prénoms inconnus / given names unknown")
	case !sameGiven:
		why = append(why, "prénoms différents / different given names")
	}
	return strings.Join(why, "; ")
}

// inseeObservationID is the id of the register's death Observation of a
// patient: one per patient, so that importing a file again adds nothing.
func inseeObservationID(patient string) string {
	id := "death-insee-" + patient
	if len(id) > 64 {
		h := sha256.Sum256([]byte(patient))
		id = "death-insee-" + hex.EncodeToString(h[:16])
	}
	return id
}
