package worklist

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Observation codes of a visit (docs/domain.md, "Observations of a visit").
const (
	LOINCWeight     = "29463-7"
	LOINCHeartRate  = "8867-4"
	LOINCBPPanel    = "85354-9"
	LOINCSystolic   = "8480-6"
	LOINCDiastolic  = "8462-4"
	LOINCNYHA       = "88020-3"
	LOINCPotassium  = "2823-3"
	LOINCCreatinine = "14682-9"
	LOINCNTproBNP   = "33762-6"
	SNOMEDOedema    = "267038008"
	SNOMEDDyspnoea  = "267036007"
)

// quantityKind is a measured value: its code, unit and the range outside
// which the value is taken for a typing error. These are plausibility
// limits of input, not clinical thresholds (those are the templates').
type quantityKind struct {
	system, code, display string
	unit, ucum            string
	min, max              float64
	fr                    string
}

var quantities = map[string]quantityKind{
	LOINCWeight:     {SystemLOINC, LOINCWeight, "Body weight", "kg", "kg", 0.5, 350, "le poids"},
	LOINCHeartRate:  {SystemLOINC, LOINCHeartRate, "Heart rate", "/min", "/min", 20, 250, "la fréquence cardiaque"},
	LOINCSystolic:   {SystemLOINC, LOINCSystolic, "Systolic blood pressure", "mm[Hg]", "mm[Hg]", 50, 280, "la pression systolique"},
	LOINCDiastolic:  {SystemLOINC, LOINCDiastolic, "Diastolic blood pressure", "mm[Hg]", "mm[Hg]", 20, 180, "la pression diastolique"},
	LOINCPotassium:  {SystemLOINC, LOINCPotassium, "Potassium", "mmol/L", "mmol/L", 1, 10, "la kaliémie"},
	LOINCCreatinine: {SystemLOINC, LOINCCreatinine, "Creatinine", "µmol/L", "umol/L", 10, 3000, "la créatininémie"},
	LOINCNTproBNP:   {SystemLOINC, LOINCNTproBNP, "NT-proBNP", "pg/mL", "pg/mL", 0, 100000, "le NT-proBNP"},
}

// NYHA classes (SNOMED CT) by their roman numeral.
var nyhaClasses = map[string]string{"I": "420300004", "II": "421704003", "III": "420913000", "IV": "422293003"}

// Presence and severity of a symptom (SNOMED CT qualifiers).
var symptomValues = map[string]struct{ code, display string }{
	"absent": {"2667000", "Absent"}, "present": {"52101004", "Present"},
	"mild": {"255604002", "Mild"}, "moderate": {"6736007", "Moderate"}, "severe": {"24484000", "Severe"},
}

var symptomCodes = map[string]string{SNOMEDOedema: "Oedema", SNOMEDDyspnoea: "Dyspnoea"}

func vitalSigns() []any {
	return []any{codeable("http://terminology.hl7.org/CodeSystem/observation-category", "vital-signs", "Vital Signs")}
}

// invalid is a 400 naming the element at fault.
func invalid(fr, en string, expr ...string) error {
	return fhir.Errorf(fhir.Invalid, "invalid", fr, en, expr...)
}

// ParseObservation checks a measurement as a client sends it and returns
// it normalised: status final when absent, units and systems filled in,
// effective time now when absent. Every refusal is a 400 *fhir.Error
// whose expression names the element (Observation.valueQuantity.value,
// Observation.component[1].valueQuantity.value, …). It reads the body
// only: the subject's existence, the performer and the access rules are
// the caller's.
func ParseObservation(body []byte, now time.Time) (obj, error) {
	var m obj
	if err := json.Unmarshal(body, &m); err != nil || m == nil {
		return nil, fhir.Errorf(fhir.Invalid, "structure", "Une Observation est un objet JSON", "An Observation is a JSON object")
	}
	if m["resourceType"] != "Observation" {
		return nil, invalid("resourceType doit être Observation", "resourceType must be Observation", "resourceType")
	}
	delete(m, "id")
	delete(m, "meta")
	switch st := m["status"].(type) {
	case nil:
		m["status"] = "final"
	case string:
		if st != "registered" && st != "preliminary" && st != "final" && st != "amended" {
			return nil, invalid("Statut non accepté : "+st+" (final, preliminary, amended)", "Status not accepted: "+st+" (final, preliminary, amended)", "Observation.status")
		}
	default:
		return nil, invalid("status doit être un code", "status must be a code", "Observation.status")
	}
	subj := str(m, "subject", "reference")
	if !strings.HasPrefix(subj, "Patient/") || len(subj) == len("Patient/") || strings.ContainsAny(subj[len("Patient/"):], "/?# ") {
		return nil, invalid("subject doit désigner le patient (Patient/<id>)", "subject must name the patient (Patient/<id>)", "Observation.subject")
	}
	if e, ok := m["encounter"]; ok {
		if r := str(asObj(e), "reference"); !strings.HasPrefix(r, "Encounter/") {
			return nil, invalid("encounter doit désigner une Encounter", "encounter must name an Encounter", "Observation.encounter")
		}
	}
	switch v := m["effectiveDateTime"].(type) {
	case nil:
		if _, other := m["effectivePeriod"]; other {
			return nil, invalid("Donnez la date de mesure dans effectiveDateTime", "Give the time of measurement in effectiveDateTime", "Observation.effectivePeriod")
		}
		m["effectiveDateTime"] = formatTime(now)
	case string:
		t, ok := parseTime(v)
		if !ok || len(v) < len("2006-01-02T15:04") {
			return nil, invalid("effectiveDateTime doit être une date et heure avec fuseau", "effectiveDateTime must be a date and time with a zone", "Observation.effectiveDateTime")
		}
		if t.After(now.Add(10 * time.Minute)) {
			return nil, invalid("La date de mesure est dans le futur", "The time of measurement is in the future", "Observation.effectiveDateTime")
		}
	default:
		return nil, invalid("effectiveDateTime doit être une date", "effectiveDateTime must be a date", "Observation.effectiveDateTime")
	}
	code := asObj(m["code"])
	if code == nil {
		return nil, invalid("code manquant", "code is missing", "Observation.code")
	}
	kind := ""
	for _, c := range list(code["coding"]) {
		co := asObj(c)
		sys, _ := co["system"].(string)
		cd, _ := co["code"].(string)
		switch {
		case sys == SystemLOINC && (quantities[cd].code != "" || cd == LOINCBPPanel || cd == LOINCNYHA):
			kind = cd
		case sys == SystemSNOMED && symptomCodes[cd] != "":
			kind = cd
		}
		if kind != "" {
			break
		}
	}
	switch {
	case kind == "":
		return nil, invalid("Code d'observation non pris en charge : poids (LOINC 29463-7), FC (8867-4), PA (85354-9, 8480-6, 8462-4), NYHA (88020-3), kaliémie (2823-3), créatininémie (14682-9), NT-proBNP (33762-6), œdèmes (SNOMED 267038008), essoufflement (267036007)",
			"Observation code not supported: weight (LOINC 29463-7), HR (8867-4), BP (85354-9, 8480-6, 8462-4), NYHA (88020-3), potassium (2823-3), creatinine (14682-9), NT-proBNP (33762-6), oedema (SNOMED 267038008), breathlessness (267036007)",
			"Observation.code")
	case kind == LOINCBPPanel:
		if err := checkPanel(m); err != nil {
			return nil, err
		}
	case kind == LOINCNYHA:
		cc := asObj(m["valueCodeableConcept"])
		ok := false
		for _, sn := range nyhaClasses {
			if hasCoding(cc, SystemSNOMED, sn) {
				ok = true
			}
		}
		if !ok {
			return nil, invalid("La classe NYHA est un code SNOMED CT : 420300004 (I), 421704003 (II), 420913000 (III), 422293003 (IV)",
				"The NYHA class is a SNOMED CT code: 420300004 (I), 421704003 (II), 420913000 (III), 422293003 (IV)", "Observation.valueCodeableConcept")
		}
		m["category"] = []any{codeable("http://terminology.hl7.org/CodeSystem/observation-category", "survey", "Survey")}
	case symptomCodes[kind] != "":
		if b, ok := m["valueBoolean"].(bool); ok {
			v := symptomValues["absent"]
			if b {
				v = symptomValues["present"]
			}
			delete(m, "valueBoolean")
			m["valueCodeableConcept"] = codeable(SystemSNOMED, v.code, v.display)
		}
		cc := asObj(m["valueCodeableConcept"])
		ok := false
		for _, v := range symptomValues {
			if hasCoding(cc, SystemSNOMED, v.code) {
				ok = true
			}
		}
		if !ok {
			return nil, invalid("Valeur attendue : absent (2667000), présent (52101004), léger (255604002), modéré (6736007), sévère (24484000)",
				"Expected value: absent (2667000), present (52101004), mild (255604002), moderate (6736007), severe (24484000)", "Observation.valueCodeableConcept")
		}
		m["category"] = []any{codeable("http://terminology.hl7.org/CodeSystem/observation-category", "exam", "Exam")}
	default:
		q, err := checkQuantity(asObj(m["valueQuantity"]), quantities[kind], "Observation.valueQuantity")
		if err != nil {
			return nil, err
		}
		m["valueQuantity"] = q
		if kind == LOINCPotassium || kind == LOINCCreatinine || kind == LOINCNTproBNP {
			m["category"] = []any{codeable("http://terminology.hl7.org/CodeSystem/observation-category", "laboratory", "Laboratory")}
		} else {
			m["category"] = vitalSigns()
		}
	}
	// What is stored is read back as a Go type (pkg/fhir/model) by the
	// alert rules: an element of the wrong JSON type would make the
	// measurement unreadable to them, so it is refused here.
	if _, err := model.FromMap[model.Observation](m); err != nil {
		el, _, _ := strings.Cut(err.Error(), ":")
		return nil, invalid("Élément mal formé : "+el, "Malformed element: "+el, "Observation."+el)
	}
	return m, nil
}

// parseObservation is ParseObservation with the result as a Go type. The
// checks stay on the decoded JSON: they tell a value of the wrong JSON
// type (a weight sent as "74") from a missing one and name the element at
// fault, which decoding into the type would not (json.Number takes "74").
func parseObservation(body []byte, now time.Time) (*model.Observation, error) {
	m, err := ParseObservation(body, now)
	if err != nil {
		return nil, err
	}
	return model.FromMap[model.Observation](m)
}

// checkQuantity checks a measured value against its kind: a number, the
// expected unit, a plausible value.
func checkQuantity(q obj, k quantityKind, expr string) (obj, error) {
	if q == nil {
		return nil, invalid("Valeur manquante pour "+k.fr, "Value missing for "+k.display, expr)
	}
	v, ok := q["value"].(float64)
	if !ok {
		return nil, invalid("La valeur de "+k.fr+" doit être un nombre", "The "+k.display+" value must be a number", expr+".value")
	}
	if c, ok := q["code"]; ok && c != k.ucum {
		return nil, invalid(fmt.Sprintf("Unité attendue pour %s : %s", k.fr, k.ucum), fmt.Sprintf("Expected unit for %s: %s", k.display, k.ucum), expr+".code")
	}
	if s, ok := q["system"]; ok && s != SystemUCUM {
		return nil, invalid("Les unités sont UCUM ("+SystemUCUM+")", "Units are UCUM ("+SystemUCUM+")", expr+".system")
	}
	if math.IsNaN(v) || v < k.min || v > k.max {
		return nil, invalid(fmt.Sprintf("Valeur invraisemblable pour %s : %s %s (attendu entre %s et %s)", k.fr, num(v), k.unit, num(k.min), num(k.max)),
			fmt.Sprintf("Implausible %s: %v %s (expected between %v and %v)", k.display, v, k.unit, k.min, k.max), expr+".value")
	}
	return obj{"value": v, "unit": k.unit, "system": SystemUCUM, "code": k.ucum}, nil
}

// checkPanel checks a blood-pressure panel: a systolic and a diastolic
// component, plausible, the diastolic below the systolic.
func checkPanel(m obj) error {
	if _, ok := m["valueQuantity"]; ok {
		return invalid("Un panel de pression artérielle porte ses valeurs dans component", "A blood-pressure panel carries its values in component", "Observation.valueQuantity")
	}
	idx := map[string]int{}
	var vals = map[string]float64{}
	comps := list(m["component"])
	for i, c := range comps {
		co := asObj(c)
		for _, code := range []string{LOINCSystolic, LOINCDiastolic} {
			if hasCoding(co["code"], SystemLOINC, code) {
				if _, dup := idx[code]; dup {
					return invalid("Composant en double", "Duplicate component", fmt.Sprintf("Observation.component[%d].code", i))
				}
				expr := fmt.Sprintf("Observation.component[%d].valueQuantity", i)
				q, err := checkQuantity(asObj(co["valueQuantity"]), quantities[code], expr)
				if err != nil {
					return err
				}
				co["valueQuantity"] = q
				idx[code] = i
				vals[code] = q["value"].(float64)
			}
		}
	}
	for _, code := range []string{LOINCSystolic, LOINCDiastolic} {
		if _, ok := idx[code]; !ok {
			k := quantities[code]
			return invalid("Composant manquant : "+k.fr+" (LOINC "+code+")", "Missing component: "+k.display+" (LOINC "+code+")", "Observation.component")
		}
	}
	if vals[LOINCDiastolic] >= vals[LOINCSystolic] {
		return invalid(fmt.Sprintf("La pression diastolique (%s) doit être inférieure à la systolique (%s)", num(vals[LOINCDiastolic]), num(vals[LOINCSystolic])),
			fmt.Sprintf("The diastolic pressure (%v) must be below the systolic (%v)", vals[LOINCDiastolic], vals[LOINCSystolic]),
			fmt.Sprintf("Observation.component[%d].valueQuantity.value", idx[LOINCDiastolic]))
	}
	m["category"] = vitalSigns()
	return nil
}

// Visit is what a professional records at a visit, as the worklist's form
// sends it. Nil and empty fields were not recorded.
type Visit struct {
	// TaskID is the visit's task, when the visit is one: it must be the
	// actor's, accepted or in progress; what is recorded becomes its
	// output.
	TaskID string
	// Patient is "Patient/<id>" (or the bare id).
	Patient string
	// Encounter is "Encounter/<id>", optional.
	Encounter string
	// At is when the measurements were taken; zero: now.
	At                                       time.Time
	WeightKg, Systolic, Diastolic, HeartRate *float64
	// NYHA is the class: I, II, III or IV.
	NYHA string
	// Oedema and Breathlessness: absent, present, mild, moderate or severe.
	Oedema, Breathlessness string
	// Symptoms and Note are free text, kept in the visit's
	// QuestionnaireResponse.
	Symptoms, Note string
	// Complete, with a TaskID, also completes the task in the visit's
	// transaction, accepting and starting it first when needed: the
	// nurse's one tap at the door.
	Complete bool
}

// Form field names (docs/contract.md, "Web pages"), the first expression of a
// visit's errors so that a page can show each next to its field.
const (
	FieldWeight         = "weight-kg"
	FieldSystolic       = "systolic"
	FieldDiastolic      = "diastolic"
	FieldHeartRate      = "heart-rate"
	FieldNYHA           = "nyha"
	FieldOedema         = "oedema"
	FieldBreathlessness = "breathlessness"
	FieldSymptoms       = "symptoms"
	FieldNote           = "note"
)

// VisitQuestionnaire is the canonical of the structured visit form the
// QuestionnaireResponse of a visit answers.
const VisitQuestionnaire = "https://passerelle.health/fhir/Questionnaire/home-visit"

// observations builds and checks the Observations of a visit. An error's
// expressions are the form field, then the FHIRPath in the Observation.
func (v Visit) observations(performer string, now time.Time) ([]*model.Observation, error) {
	at := v.At
	if at.IsZero() {
		at = now
	}
	base := func(coding model.Coding) *model.Observation {
		o := &model.Observation{ResourceType: "Observation", Status: "final", Code: &model.CodeableConcept{Coding: []model.Coding{coding}},
			Subject: model.Ref(v.Patient), EffectiveDateTime: formatTime(at)}
		if v.Encounter != "" {
			o.Encounter = model.Ref(v.Encounter)
		}
		return o
	}
	// The value as encoding/json writes a float64 (a NaN does not encode).
	qty := func(k quantityKind, val float64) *model.Quantity {
		return &model.Quantity{Value: json.Number(mustJSON(val)), Unit: k.unit, System: SystemUCUM, Code: k.ucum}
	}
	quantity := func(code string, val float64) *model.Observation {
		k := quantities[code]
		o := base(model.Coding{System: k.system, Code: k.code, Display: k.display})
		o.ValueQuantity = qty(k, val)
		return o
	}
	type built struct {
		field string
		m     *model.Observation
	}
	var out []built
	if v.WeightKg != nil {
		out = append(out, built{FieldWeight, quantity(LOINCWeight, *v.WeightKg)})
	}
	if v.HeartRate != nil {
		out = append(out, built{FieldHeartRate, quantity(LOINCHeartRate, *v.HeartRate)})
	}
	switch {
	case v.Systolic != nil && v.Diastolic != nil:
		o := base(model.Coding{System: SystemLOINC, Code: LOINCBPPanel, Display: "Blood pressure panel"})
		comp := func(code string, val float64) model.ObservationComponent {
			k := quantities[code]
			return model.ObservationComponent{Code: model.Codeable(SystemLOINC, code, k.display), ValueQuantity: qty(k, val)}
		}
		o.Component = []model.ObservationComponent{comp(LOINCSystolic, *v.Systolic), comp(LOINCDiastolic, *v.Diastolic)}
		out = append(out, built{"", o})
	case v.Systolic != nil:
		out = append(out, built{FieldSystolic, quantity(LOINCSystolic, *v.Systolic)})
	case v.Diastolic != nil:
		return nil, fhir.Errorf(fhir.Invalid, "required", "Pression diastolique sans systolique", "Diastolic pressure without a systolic", FieldSystolic)
	}
	if v.NYHA != "" {
		sn, ok := nyhaClasses[strings.ToUpper(strings.TrimSpace(v.NYHA))]
		if !ok {
			return nil, fhir.Errorf(fhir.Invalid, "value", "Classe NYHA : I, II, III ou IV", "NYHA class: I, II, III or IV", FieldNYHA, "Observation.valueCodeableConcept")
		}
		o := base(model.Coding{System: SystemLOINC, Code: LOINCNYHA, Display: "NYHA class"})
		o.ValueCodeableConcept = model.Codeable(SystemSNOMED, sn, "NYHA "+strings.ToUpper(strings.TrimSpace(v.NYHA)))
		out = append(out, built{FieldNYHA, o})
	}
	for _, s := range []struct{ field, code, val string }{{FieldOedema, SNOMEDOedema, v.Oedema}, {FieldBreathlessness, SNOMEDDyspnoea, v.Breathlessness}} {
		if s.val == "" {
			continue
		}
		sv, ok := symptomValues[s.val]
		if !ok {
			return nil, fhir.Errorf(fhir.Invalid, "value", "Valeur attendue : absent, present, mild, moderate ou severe",
				"Expected value: absent, present, mild, moderate or severe", s.field, "Observation.valueCodeableConcept")
		}
		o := base(model.Coding{System: SystemSNOMED, Code: s.code, Display: symptomCodes[s.code]})
		o.ValueCodeableConcept = model.Codeable(SystemSNOMED, sv.code, sv.display)
		out = append(out, built{s.field, o})
	}
	var obs []*model.Observation
	for _, b := range out {
		o, err := parseObservation(mustJSON(b.m), now)
		if err != nil {
			fe := fhir.FromError(err)
			field := b.field
			for i := range fe.Issues {
				if field == "" { // the panel: the component at fault
					field = FieldSystolic
					for _, e := range fe.Issues[i].Expression {
						if strings.HasPrefix(e, "Observation.component[1]") {
							field = FieldDiastolic
						}
					}
				}
				fe.Issues[i].Expression = append([]string{field}, fe.Issues[i].Expression...)
			}
			return nil, fe
		}
		o.Performer = []model.Reference{*model.Ref(performer)}
		o.ID = store.NewID()
		obs = append(obs, o)
	}
	return obs, nil
}

// performerOf is the PractitionerRole an actor records as: the one that
// owns the task, else a care role, else the first.
func performerOf(a directory.Actor, owner string) (string, error) {
	if r, ok := ownerRole(a, owner); ok {
		return "PractitionerRole/" + r, nil
	}
	if len(a.Roles) == 0 {
		return "", fhir.Errorf(fhir.Forbidden, "forbidden", "Seul un professionnel de l'annuaire enregistre des mesures", "Only a professional of the directory records measurements")
	}
	for _, r := range a.Roles {
		switch r.Code {
		case directory.RoleNurse, directory.RoleGP, directory.RoleCardiologist, directory.RolePharmacist, directory.RoleCoordinatingNurse:
			return "PractitionerRole/" + r.ID, nil
		}
	}
	return "PractitionerRole/" + a.Roles[0].ID, nil
}

// RecordVisit records a visit for actor a: one Observation per measurement
// (weight, heart rate, blood-pressure panel, NYHA class, oedema,
// breathlessness) and a QuestionnaireResponse of the visit form holding
// every answer with the symptoms and the note; with a TaskID, they become
// the task's output. Everything commits in one transaction with an event
// (Observation.created, QuestionnaireResponse.created, Task.updated) and an
// audit record per resource. With Complete the task is also completed
// (accepted and started first when needed) in that version. An alert the
// measurements raise is raised in the same transaction, so that the page
// can say so at once. It returns the Observations, the
// QuestionnaireResponse, the task's new version when there is one, then
// each alert's Flag followed by its review tasks.
// Errors: 400 naming the field (form field name, then FHIRPath), 403 no
// care relationship or not the task's owner, 404 unknown task, 409 a task
// that is not accepted or in progress.
func (s *Service) RecordVisit(ctx context.Context, a directory.Actor, v Visit) ([]store.Resource, error) {
	if v.Patient != "" && !strings.HasPrefix(v.Patient, "Patient/") {
		v.Patient = "Patient/" + v.Patient
	}
	if v.Encounter != "" && !strings.HasPrefix(v.Encounter, "Encounter/") {
		v.Encounter = "Encounter/" + v.Encounter
	}
	now := s.d.Clock.Now()
	var vt *task
	if v.TaskID != "" {
		t, err := s.visitTask(ctx, a, v.TaskID, v.Complete)
		if err != nil {
			return nil, err
		}
		vt = &t
		if v.Patient == "" {
			v.Patient = t.t.For.String()
		}
		if v.Patient != t.t.For.String() {
			return nil, invalid("Le patient n'est pas celui de la tâche", "The patient is not the task's", "patient")
		}
	}
	if v.Patient == "" || v.Patient == "Patient/" {
		return nil, fhir.Errorf(fhir.Invalid, "required", "Patient manquant", "Patient missing", "patient")
	}
	for _, f := range []struct {
		v    *float64
		name string
	}{{v.WeightKg, "weight-kg"}, {v.Systolic, "systolic"}, {v.Diastolic, "diastolic"}, {v.HeartRate, "heart-rate"}} {
		// JSON has no NaN nor infinity: such a value would be lost at the
		// first write, with everything typed beside it.
		if f.v != nil && (math.IsNaN(*f.v) || math.IsInf(*f.v, 0)) {
			return nil, invalid("Valeur non numérique", "Not a number", f.name)
		}
	}
	if err := (access.Policy{Now: s.d.Clock.Now}).Patient(ctx, s.d.Store, a, v.Patient); err != nil {
		return nil, err
	}
	owner := ""
	if vt != nil {
		owner = vt.t.Owner.String()
	}
	performer, err := performerOf(a, owner)
	if err != nil {
		return nil, err
	}
	obs, err := v.observations(performer, now)
	if err != nil {
		return nil, err
	}
	if len(obs) == 0 && strings.TrimSpace(v.Symptoms) == "" && strings.TrimSpace(v.Note) == "" {
		return nil, fhir.Errorf(fhir.Invalid, "required", "Rien à enregistrer : saisissez au moins une mesure ou une note", "Nothing to record: enter at least one measurement or a note", FieldWeight)
	}
	alerts, err := s.visitAlerts(ctx, a.Tenant, v.Patient, obs, now)
	if err != nil {
		return nil, err
	}
	qr := v.response(performer, now)
	var out []store.Resource
	err = s.d.Store.Tx(ctx, func(tx store.Tx) error {
		out = out[:0]
		var outputs []model.TaskOutput
		bodies := make([]json.RawMessage, 0, len(obs)+1)
		for _, o := range obs {
			bodies = append(bodies, mustJSON(o))
		}
		for _, b := range append(bodies, mustJSON(qr)) {
			res, err := tx.Create(ctx, a.Tenant, b)
			if err != nil {
				return err
			}
			if err := s.written(ctx, tx, res, performer, "C", bus.OpCreated); err != nil {
				return err
			}
			out = append(out, res)
			outputs = append(outputs, model.TaskOutput{Type: &model.CodeableConcept{Text: res.Type}, ValueReference: model.Ref(res.Type + "/" + res.ID)})
		}
		raised, err := s.raiseVisitAlerts(ctx, tx, alerts)
		if err != nil {
			return err
		}
		if vt != nil {
			res, err := s.addOutputs(ctx, tx, v.TaskID, vt.res.Version, outputs, now, v.Complete)
			if err != nil {
				return err
			}
			if err := s.written(ctx, tx, res, performer, "U", bus.OpUpdated); err != nil {
				return err
			}
			out = append(out, res)
		}
		out = append(out, raised...)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.log.InfoContext(ctx, "visit recorded", "observations", len(obs), "task_id", v.TaskID, "completed", v.Complete && vt != nil)
	return out, nil
}

// visitTask reads a task a visit is recorded for: the actor's, accepted or
// in progress (or still requested when the visit completes it).
func (s *Service) visitTask(ctx context.Context, a directory.Actor, id string, complete bool) (task, error) {
	t, err := readTask(ctx, s.d.Store, id)
	if err != nil || t.res.Tenant != a.Tenant {
		return task{}, fhir.Errorf(fhir.NotFound, "not-found", "Tâche inconnue : "+id, "Unknown task: "+id, "task")
	}
	if _, ok := ownerRole(a, t.t.Owner.String()); !ok {
		return task{}, fhir.Errorf(fhir.Forbidden, "forbidden", "Cette tâche n'est pas à vous", "This task is not yours", "task")
	}
	if st := t.t.Status; st != "accepted" && st != "in-progress" && (!complete || st != "requested") {
		return task{}, fhir.Errorf(fhir.Conflict, "business-rule",
			"Une visite s'enregistre sur une tâche acceptée ou en cours, pas au statut "+st,
			"A visit is recorded on an accepted or in-progress task, not one with status "+st, "task")
	}
	return t, nil
}

// addOutputs appends outputs to a task, optimistic on the version read;
// with complete, the task is completed in the same version.
func (s *Service) addOutputs(ctx context.Context, tx store.Tx, id string, version int64, outputs []model.TaskOutput, now time.Time, complete bool) (store.Resource, error) {
	t, err := readTask(ctx, tx, id)
	if err != nil {
		return store.Resource{}, err
	}
	if t.res.Version != version {
		return store.Resource{}, fhir.Errorf(fhir.Conflict, "conflict", "La tâche a changé pendant l'enregistrement : réessayez", "The task changed meanwhile: try again", "task")
	}
	t.t.Output = append(t.t.Output, outputs...)
	t.t.LastModified = formatTime(now)
	if complete {
		completeTask(t.t, now)
	}
	t.t.ID = t.res.ID
	t.t.Meta = nil
	return tx.Update(ctx, t.res.Tenant, mustJSON(t.t), t.res.Version)
}

// response is the QuestionnaireResponse of the visit form: every answer
// given, the measurements as quantities, the free text as strings.
func (v Visit) response(performer string, now time.Time) obj {
	var items []any
	add := func(linkID, text string, answer obj) {
		items = append(items, obj{"linkId": linkID, "text": text, "answer": []any{answer}})
	}
	qty := func(f *float64, code string) obj {
		k := quantities[code]
		return obj{"valueQuantity": obj{"value": *f, "unit": k.unit, "system": SystemUCUM, "code": k.ucum}}
	}
	if v.WeightKg != nil {
		add(FieldWeight, "Poids (kg)", qty(v.WeightKg, LOINCWeight))
	}
	if v.Systolic != nil {
		add(FieldSystolic, "Pression systolique (mmHg)", qty(v.Systolic, LOINCSystolic))
	}
	if v.Diastolic != nil {
		add(FieldDiastolic, "Pression diastolique (mmHg)", qty(v.Diastolic, LOINCDiastolic))
	}
	if v.HeartRate != nil {
		add(FieldHeartRate, "Fréquence cardiaque (/min)", qty(v.HeartRate, LOINCHeartRate))
	}
	if v.NYHA != "" {
		c := strings.ToUpper(strings.TrimSpace(v.NYHA))
		add(FieldNYHA, "Classe NYHA", obj{"valueCoding": obj{"system": SystemSNOMED, "code": nyhaClasses[c], "display": "NYHA " + c}})
	}
	if v.Oedema != "" {
		sv := symptomValues[v.Oedema]
		add(FieldOedema, "Œdèmes", obj{"valueCoding": obj{"system": SystemSNOMED, "code": sv.code, "display": sv.display}})
	}
	if v.Breathlessness != "" {
		sv := symptomValues[v.Breathlessness]
		add(FieldBreathlessness, "Essoufflement", obj{"valueCoding": obj{"system": SystemSNOMED, "code": sv.code, "display": sv.display}})
	}
	if t := strings.TrimSpace(v.Symptoms); t != "" {
		add(FieldSymptoms, "Symptômes", obj{"valueString": t})
	}
	if t := strings.TrimSpace(v.Note); t != "" {
		add(FieldNote, "Note", obj{"valueString": t})
	}
	qr := obj{"resourceType": "QuestionnaireResponse", "id": store.NewID(), "questionnaire": VisitQuestionnaire,
		"status": "completed", "subject": ref(v.Patient), "authored": formatTime(now), "author": ref(performer), "item": items}
	if v.Encounter != "" {
		qr["encounter"] = ref(v.Encounter)
	}
	return qr
}

// RecordObservation records one measurement sent as FHIR (POST
// /fhir/Observation) for actor a: checked by ParseObservation, its
// performer the actor's PractitionerRole, its subject a patient the actor
// may write for. With taskID, the actor's accepted or in-progress task
// gets it as output. One transaction: the Observation, its
// Observation.created event and audit record (and the task's new version,
// Task.updated and audit).
func (s *Service) RecordObservation(ctx context.Context, a directory.Actor, body []byte, taskID string) (store.Resource, error) {
	now := s.d.Clock.Now()
	m, err := ParseObservation(body, now)
	if err != nil {
		return store.Resource{}, err
	}
	patient := str(m, "subject", "reference")
	owner := ""
	var vt *task
	if taskID != "" {
		t, err := s.visitTask(ctx, a, taskID, false)
		if err != nil {
			return store.Resource{}, err
		}
		if t.t.For.String() != patient {
			return store.Resource{}, invalid("Le patient n'est pas celui de la tâche", "The patient is not the task's", "Observation.subject")
		}
		vt, owner = &t, t.t.Owner.String()
	}
	if err := (access.Policy{Now: s.d.Clock.Now}).Patient(ctx, s.d.Store, a, patient); err != nil {
		return store.Resource{}, err
	}
	performer, err := performerOf(a, owner)
	if err != nil {
		return store.Resource{}, err
	}
	o, err := model.FromMap[model.Observation](m) // decodes: ParseObservation checked it
	if err != nil {
		return store.Resource{}, err
	}
	o.Performer = []model.Reference{*model.Ref(performer)}
	o.ID = store.NewID()
	var out store.Resource
	err = s.d.Store.Tx(ctx, func(tx store.Tx) error {
		res, err := tx.Create(ctx, a.Tenant, mustJSON(o))
		if err != nil {
			return err
		}
		if err := s.written(ctx, tx, res, performer, "C", bus.OpCreated); err != nil {
			return err
		}
		out = res
		if vt == nil {
			return nil
		}
		tr, err := s.addOutputs(ctx, tx, taskID, vt.res.Version,
			[]model.TaskOutput{{Type: &model.CodeableConcept{Text: "Observation"}, ValueReference: model.Ref("Observation/" + res.ID)}}, now, false)
		if err != nil {
			return err
		}
		return s.written(ctx, tx, tr, performer, "U", bus.OpUpdated)
	})
	return out, err
}
