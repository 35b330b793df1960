package outcomes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/outcome"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Register adds the outcome routes, each behind authn: routes more specific
// than the generic FHIR API's.
func (s *Service) Register(mux *http.ServeMux, authn func(http.Handler) http.Handler) {
	h := func(pattern string, fn http.HandlerFunc) { mux.Handle(pattern, authn(fn)) }
	h("GET /fhir/Measure/{id}/$evaluate-measure", s.evaluateMeasure)
	h("GET /api/outcomes.csv", s.outcomesCSV)
	h("GET /api/outcomes/measure-reports", s.measureReports)
	h("GET /api/outcomes/curves", s.curvesJSON)
	h("GET /api/outcomes/curves.svg", s.curvesSVG)
	h("GET /api/outcomes/aci.csv", s.aciCSV)
	h("POST /api/outcomes/deaths", s.postDeath)
	h("POST /api/outcomes/death-register", s.postRegister)
	h("GET /api/outcomes/death-register", s.getRegister)
}

// MayRead tells whether an actor may read the CPTS's outcomes: its
// coordinator and referent coordinating nurse.
func MayRead(a directory.Actor) error {
	if a.System == "" && (a.Has(directory.RoleCoordinator) || a.Has(directory.RoleCoordinatingNurse)) {
		return nil
	}
	return fhir.Errorf(fhir.Forbidden, "forbidden",
		"Les résultats de la CPTS sont réservés à son coordinateur et à l'IDE coordinatrice référente",
		"The CPTS's outcomes are for its coordinator and referent coordinating nurse")
}

// query is the request parameters every outcome route shares.
type query struct {
	act    directory.Actor
	params outcome.Params
	masked bool
}

func (s *Service) parse(w http.ResponseWriter, r *http.Request, needPeriod bool) (query, bool) {
	var q query
	act, _ := access.ActorFrom(r.Context())
	if err := MayRead(act); err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return q, false
	}
	q.act = act
	v := r.URL.Query()
	start, end := outcome.Day(1), outcome.Day(0)
	if needPeriod || v.Get("periodStart") != "" || v.Get("periodEnd") != "" {
		if v.Get("periodStart") == "" || v.Get("periodEnd") == "" {
			expr := "periodStart"
			if v.Get("periodStart") != "" {
				expr = "periodEnd"
			}
			fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "required",
				"periodStart et periodEnd (AAAA-MM-JJ) sont requis", "periodStart and periodEnd (YYYY-MM-DD) are required", expr))
			return q, false
		}
		var err error
		start, end, err = outcome.ParsePeriod(v.Get("periodStart"), v.Get("periodEnd"))
		if err != nil {
			expr := "periodStart"
			if strings.HasPrefix(err.Error(), "periodEnd") {
				expr = "periodEnd"
			}
			fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "value", "Période invalide : "+err.Error(), "Invalid period: "+err.Error(), expr))
			return q, false
		}
	}
	p, err := s.Params(r.Context(), act.Tenant, start, end)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return q, false
	}
	p.Pathway = v.Get("pathway")
	if subj := v.Get("subject"); subj != "" {
		id := strings.TrimPrefix(subj, "Patient/")
		if strings.Contains(id, "/") || id == "" {
			fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "value", "subject doit être Patient/<id>", "subject must be Patient/<id>", "subject"))
			return q, false
		}
		if err := (access.Policy{Now: s.d.Clock.Now}).Patient(r.Context(), s.d.Store, act, "Patient/"+id); err != nil {
			fhirapi.WriteError(w, r, s.log, err)
			return q, false
		}
		p.Subject = id
	}
	switch v.Get("masked") {
	case "", "false":
	case "true":
		q.masked = true
	default:
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "value", "masked vaut true ou false", "masked is true or false", "masked"))
		return q, false
	}
	q.params = p
	return q, true
}

func (s *Service) evaluateMeasure(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, ok := outcome.Lookup(id); !ok {
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.NotFound, "not-found", "Mesure inconnue : "+id, "Unknown measure: "+id))
		return
	}
	q, ok := s.parse(w, r, true)
	if !ok {
		return
	}
	typ := r.URL.Query().Get("reportType")
	switch typ {
	case "":
		typ = "summary"
		if q.params.Subject != "" {
			typ = "individual"
		}
	case "summary", "subject-list", "individual":
	default:
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "value", "reportType vaut summary, subject-list ou individual",
			"reportType is summary, subject-list or individual", "reportType"))
		return
	}
	if typ == "subject-list" && q.masked {
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "value", "Une liste de patients ne sort pas masquée de la CPTS",
			"A subject list does not leave the CPTS masked", "reportType"))
		return
	}
	q.params.SubjectList = typ == "subject-list"
	rs, err := s.Evaluate(r.Context(), q.act.Tenant, q.params, id)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	if q.masked {
		rs = s.Mask(rs)
	}
	subject := ""
	if q.params.Subject != "" {
		subject = "Patient/" + q.params.Subject
	}
	s.audit(r.Context(), q.act, "Measure/"+id+"/$evaluate-measure?"+r.URL.RawQuery, subject)
	writeJSON(w, "application/fhir+json", MeasureReport(rs[0], ReportOptions{Type: typ, Subject: subject, Now: s.d.Clock.Now(), Threshold: s.d.Threshold}))
}

// measureReports answers every measure of a period as a Bundle of
// MeasureReports: the export for the board, the ARS or the Assurance
// Maladie (with masked=true).
func (s *Service) measureReports(w http.ResponseWriter, r *http.Request) {
	q, ok := s.parse(w, r, true)
	if !ok {
		return
	}
	rs, err := s.Evaluate(r.Context(), q.act.Tenant, q.params)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	if q.masked {
		rs = s.Mask(rs)
	}
	var entries []any
	for _, res := range rs {
		entries = append(entries, map[string]any{"resource": MeasureReport(res, ReportOptions{Now: s.d.Clock.Now(), Threshold: s.d.Threshold})})
	}
	s.audit(r.Context(), q.act, "outcomes/measure-reports?"+r.URL.RawQuery, "")
	writeJSON(w, "application/fhir+json", map[string]any{"resourceType": "Bundle", "type": "collection",
		"timestamp": s.d.Clock.Now().In(parisLoc()).Format(time.RFC3339), "entry": entries})
}

// WriteCSV writes the episode export of docs/contract.md ("HTTP") for the episodes p
// selects: the same episodes as the measures' initial population.
func (s *Service) WriteCSV(ctx context.Context, w io.Writer, tenant string, p outcome.Params) (int, error) {
	return s.writeCSV(ctx, w, tenant, p, nil)
}

// writeCSV is WriteCSV telling exported the patient of each row.
func (s *Service) writeCSV(ctx context.Context, w io.Writer, tenant string, p outcome.Params, exported func(patient string)) (int, error) {
	if s.recs == nil {
		return 0, errNoRecords
	}
	cw, err := outcome.NewCSVWriter(w, p.Now)
	if err != nil {
		return 0, err
	}
	err = s.recs.Scan(ctx, tenant, true, func(rec *outcome.Record) error {
		if p.Subject != "" && rec.Patient != p.Subject {
			return nil
		}
		rank := map[string]int{}
		n := 0
		for _, e := range rec.Episodes {
			if e.Counted() && !e.Discharge.IsZero() {
				n++
				rank[e.ID] = n
			}
		}
		for _, c := range outcome.Cases(rec, p.Start, p.End) {
			if p.Pathway != "" && p.Pathway != c.Ep.Pathway && p.Pathway != outcome.PathwayCode(c.Ep.Pathway) {
				continue
			}
			if err := cw.Write(c, s.Pseudonym(tenant, rec.Patient, rank[c.Ep.ID])); err != nil {
				return err
			}
			if exported != nil {
				exported(rec.Patient)
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return cw.Flush()
}

func (s *Service) outcomesCSV(w http.ResponseWriter, r *http.Request) {
	q, ok := s.parse(w, r, true)
	if !ok {
		return
	}
	if q.masked {
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "not-supported",
			"Un export ligne à ligne est pseudonymisé, pas masqué : pour l'extérieur, utilisez measure-reports ou aci.csv avec masked=true",
			"A row-per-episode export is pseudonymous, not masked: for outside use, take measure-reports or aci.csv with masked=true", "masked"))
		return
	}
	if len(s.d.PseudonymKey) == 0 {
		fhirapi.WriteError(w, r, s.log, fmt.Errorf("outcomes: no pseudonymisation key configured"))
		return
	}
	// A row per episode is each patient's data, pseudonymous or not: the
	// export is built first, then audited once per patient it holds, in
	// one transaction, and only then sent (a CPTS's rows fit in memory).
	var buf bytes.Buffer
	var patients []string
	seen := map[string]bool{}
	if _, err := s.writeCSV(r.Context(), &buf, q.act.Tenant, q.params, func(p string) {
		if !seen[p] {
			seen[p] = true
			patients = append(patients, "Patient/"+p)
		}
	}); err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	if err := s.auditPatients(r.Context(), q.act, "outcomes.csv?"+r.URL.RawQuery, patients); err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="outcomes.csv"`)
	_, _ = buf.WriteTo(w)
}

func (s *Service) curveParams(w http.ResponseWriter, r *http.Request) (query, []outcome.Curve, string, bool) {
	q, ok := s.parse(w, r, true)
	if !ok {
		return q, nil, "", false
	}
	v := r.URL.Query()
	kind := v.Get("kind")
	switch kind {
	case "":
		kind = outcome.CurveReadmission
	case outcome.CurveReadmission, outcome.CurveSurvival:
	default:
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "value", "kind vaut readmission-free ou survival", "kind is readmission-free or survival", "kind"))
		return q, nil, "", false
	}
	by := v.Get("by")
	if by != "" {
		known := false
		for _, st := range outcome.Stratifiers {
			known = known || st == by
		}
		if !known {
			fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "value", "by : "+strings.Join(outcome.Stratifiers, ", "), "by: "+strings.Join(outcome.Stratifiers, ", "), "by"))
			return q, nil, "", false
		}
	}
	horizon := 365
	if h := v.Get("horizon"); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n < 7 || n > 3650 {
			fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "value", "horizon : de 7 à 3650 jours", "horizon: 7 to 3650 days", "horizon"))
			return q, nil, "", false
		}
		horizon = n
	}
	cs, err := s.Curves(r.Context(), q.act.Tenant, q.params, kind, by, horizon)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return q, nil, "", false
	}
	if q.masked {
		for i := range cs {
			cs[i] = outcome.MaskCurve(cs[i], s.d.Threshold)
		}
	}
	s.audit(r.Context(), q.act, "outcomes/curves?"+r.URL.RawQuery, "")
	return q, cs, kind, true
}

func (s *Service) curvesJSON(w http.ResponseWriter, r *http.Request) {
	q, cs, kind, ok := s.curveParams(w, r)
	if !ok {
		return
	}
	writeJSON(w, "application/json", map[string]any{"kind": kind, "periodStart": q.params.Start.String(), "periodEnd": q.params.End.String(),
		"masked": q.masked, "curves": cs})
}

func (s *Service) curvesSVG(w http.ResponseWriter, r *http.Request) {
	_, cs, kind, ok := s.curveParams(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "image/svg+xml")
	_ = outcome.RenderSVG(w, cs, SVGOptions(kind, lang(r), s.d.Threshold))
}

// SVGOptions are the drawing options of a curve kind in a language (fr,
// en).
func SVGOptions(kind, lang string, threshold int) outcome.SVGOptions {
	o := outcome.SVGOptions{Threshold: threshold, Lang: lang,
		Names: map[string]string{"all": "Toutes les sorties", "unknown": "inconnu"}, AtRiskLabel: "À risque"}
	if lang == "en" {
		o.Names, o.AtRiskLabel = map[string]string{"all": "All discharges"}, "At risk"
	}
	switch {
	case kind == outcome.CurveSurvival && lang == "en":
		o.Title, o.YLabel = "Overall survival after discharge (days)", "alive"
	case kind == outcome.CurveSurvival:
		o.Title, o.YLabel = "Survie globale après la sortie (jours)", "en vie"
	case lang == "en":
		o.Title, o.YLabel = "Readmission-free survival after discharge (days)", "not readmitted"
	default:
		o.Title, o.YLabel = "Survie sans réhospitalisation après la sortie (jours)", "sans réhospitalisation"
	}
	return o
}

func lang(r *http.Request) string {
	if l := r.URL.Query().Get("lang"); l == "en" || l == "fr" {
		return l
	}
	if strings.HasPrefix(r.Header.Get("Accept-Language"), "en") {
		return "en"
	}
	return "fr"
}

// aciCSV answers the yearly indicators of the ACI "parcours" mission.
// They leave the CPTS (for the Assurance Maladie): masked unless
// masked=false.
func (s *Service) aciCSV(w http.ResponseWriter, r *http.Request) {
	v := r.URL.Query()
	year, err := strconv.Atoi(v.Get("year"))
	if err != nil || year < 2000 || year > 2100 {
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "value", "year (AAAA) est requis", "year (YYYY) is required", "year"))
		return
	}
	qs := r.URL.Query()
	qs.Set("periodStart", fmt.Sprintf("%04d-01-01", year))
	qs.Set("periodEnd", fmt.Sprintf("%04d-12-31", year))
	if qs.Get("masked") == "" {
		qs.Set("masked", "true")
	}
	r.URL.RawQuery = qs.Encode()
	q, ok := s.parse(w, r, true)
	if !ok {
		return
	}
	rs, err := s.Evaluate(r.Context(), q.act.Tenant, q.params)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	if q.masked {
		rs = s.Mask(rs)
	}
	s.audit(r.Context(), q.act, "outcomes/aci.csv?"+r.URL.RawQuery, "")
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="indicateurs-aci-%d.csv"`, year))
	_ = outcome.WriteACI(w, year, rs, s.d.Threshold)
}

// postDeath records a death reported by a team member: JSON
// {"patient":"Patient/<id>","deceasedDateTime":"…"}. Who may: whoever
// may write that patient's data (access.Policy.Patient).
func (s *Service) postDeath(w http.ResponseWriter, r *http.Request) {
	act, _ := access.ActorFrom(r.Context())
	var in struct {
		Patient  string `json:"patient"`
		Deceased string `json:"deceasedDateTime"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 64<<10)).Decode(&in); err != nil {
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "structure", "Corps JSON attendu : {patient, deceasedDateTime}",
			"Expected a JSON body: {patient, deceasedDateTime}"))
		return
	}
	id := strings.TrimPrefix(in.Patient, "Patient/")
	if id == "" || strings.Contains(id, "/") {
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "required", "patient : Patient/<id>", "patient: Patient/<id>", "patient"))
		return
	}
	at := parseTime(in.Deceased)
	if d, err := outcome.ParseDay(strings.TrimSpace(in.Deceased)); err == nil {
		// A date alone: the end of that day, as for the register, so that a
		// death on the day of discharge counts after it.
		at = (d + 1).Start().Add(-time.Second).UTC()
	}
	if at.IsZero() {
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "value", "deceasedDateTime : une date (AAAA-MM-JJ) ou une date et heure",
			"deceasedDateTime: a date (YYYY-MM-DD) or a date-time", "deceasedDateTime"))
		return
	}
	if err := (access.Policy{Now: s.d.Clock.Now}).Patient(r.Context(), s.d.Store, act, "Patient/"+id); err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	res, err := s.RecordDeath(r.Context(), act, id, at)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	w.Header().Set("Location", fmt.Sprintf("/fhir/Observation/%s/_history/%d", res.ID, res.Version))
	w.Header().Set("Content-Type", "application/fhir+json")
	w.WriteHeader(http.StatusCreated)
	_, _ = w.Write(res.Body)
}

// postRegister imports a monthly file of INSEE's register of deaths (the
// request body, or the "file" part of a form); month=YYYYMM, or the
// file's name (deces-2025-m03.txt).
func (s *Service) postRegister(w http.ResponseWriter, r *http.Request) {
	act, _ := access.ActorFrom(r.Context())
	if !act.Has(directory.RoleCoordinator) || act.System != "" {
		fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Forbidden, "forbidden", "L'import du fichier des décès est réservé au coordinateur",
			"Importing the register of deaths is for the coordinator"))
		return
	}
	body := io.Reader(http.MaxBytesReader(w, r.Body, 256<<20))
	name := r.URL.Query().Get("filename")
	if ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); ct == "multipart/form-data" {
		f, h, err := r.FormFile("file")
		if err != nil {
			fhirapi.WriteError(w, r, s.log, fhir.Errorf(fhir.Invalid, "required", "Champ file manquant", "Missing file field", "file"))
			return
		}
		defer f.Close()
		body, name = f, h.Filename
	}
	month := outcome.MonthOfFile(name)
	if m := r.URL.Query().Get("month"); m != "" {
		month, _ = strconv.Atoi(strings.ReplaceAll(m, "-", ""))
	}
	rep, err := s.ImportRegister(r.Context(), act.Tenant, body, month, act.Reference())
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	writeJSON(w, "application/json", rep)
}

func (s *Service) getRegister(w http.ResponseWriter, r *http.Request) {
	act, _ := access.ActorFrom(r.Context())
	if err := MayRead(act); err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	months, err := s.RegisterMonths(r.Context(), act.Tenant)
	if err != nil {
		fhirapi.WriteError(w, r, s.log, err)
		return
	}
	list := []int{}
	for m := range months {
		list = append(list, m)
	}
	sortInts(list)
	writeJSON(w, "application/json", map[string]any{"months": list})
}

// audit records who read which outcome report or export.
func (s *Service) audit(ctx context.Context, act directory.Actor, entity, patient string) {
	err := s.d.Store.Tx(ctx, func(tx store.Tx) error {
		return tx.Audit(ctx, store.AuditRecord{Tenant: act.Tenant, Time: s.d.Clock.Now(), Agent: act.Reference(), Action: "E",
			Entity: entity, Patient: patient, Outcome: "0"})
	})
	if err != nil {
		s.log.ErrorContext(ctx, "audit of an outcome report", "error", err)
	}
}

// auditPatients records an export in each exported patient's trail (or
// one record when it holds none), in one transaction.
func (s *Service) auditPatients(ctx context.Context, act directory.Actor, entity string, patients []string) error {
	if len(patients) == 0 {
		patients = []string{""}
	}
	return s.d.Store.Tx(ctx, func(tx store.Tx) error {
		for _, p := range patients {
			if err := tx.Audit(ctx, store.AuditRecord{Tenant: act.Tenant, Time: s.d.Clock.Now(), Agent: act.Reference(), Action: "E",
				Entity: entity, Patient: p, Outcome: "0"}); err != nil {
				return err
			}
		}
		return nil
	})
}

func writeJSON(w http.ResponseWriter, ct string, v any) {
	w.Header().Set("Content-Type", ct)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func sortInts(a []int) {
	for i := 1; i < len(a); i++ {
		for j := i; j > 0 && a[j] < a[j-1]; j-- {
			a[j], a[j-1] = a[j-1], a[j]
		}
	}
}
