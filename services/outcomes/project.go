package outcomes

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/fhir/model"
	"github.com/passerelle-sante/passerelle/pkg/intake"
	"github.com/passerelle-sante/passerelle/pkg/outcome"
	"github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// Codes of the events outcomes reads.
const (
	extBirthPlace = "http://hl7.org/fhir/StructureDefinition/patient-birthPlace"
	systemICD10   = "http://hl7.org/fhir/sid/icd-10"
	systemFINESS  = "http://finess.sante.gouv.fr"
)

type obj = map[string]any

func asObj(v any) obj  { m, _ := v.(map[string]any); return m }
func list(v any) []any { l, _ := v.([]any); return l }

func str(m obj, path ...string) string {
	var cur any = m
	for _, p := range path {
		cur = asObj(cur)[p]
	}
	s, _ := cur.(string)
	return s
}

func extension(m obj, url string) obj {
	for _, e := range list(m["extension"]) {
		if str(asObj(e), "url") == url {
			return asObj(e)
		}
	}
	return nil
}

func refID(ref, typ string) string {
	id, ok := strings.CutPrefix(ref, typ+"/")
	if !ok {
		return ""
	}
	return id
}

// typed decodes a resource an event carries into its Go type
// (pkg/fhir/model): episodes and tasks are read typed.
func typed[T any](r event.Resource) (*T, error) {
	b := []byte(r.Body)
	if len(b) == 0 {
		var err error
		if b, err = json.Marshal(r.Obj); err != nil {
			return nil, err
		}
	}
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("%s/%s: %w", r.Type, r.ID, err)
	}
	return &v, nil
}

func periodStart(p *model.Period) string {
	if p == nil {
		return ""
	}
	return p.Start
}

func periodEnd(p *model.Period) string {
	if p == nil {
		return ""
	}
	return p.End
}

func parseTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, parisLoc()); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// HandleEncounter records a hospital stay (admission, discharge, death)
// from intake's Encounter event, with the patient's traits it carries.
func (s *Service) HandleEncounter(ctx context.Context, tx store.Tx, c event.Change) error {
	tenant := c.TenantOr(s.d.Tenant)
	var enc, patient obj
	conds := map[string]obj{}
	for _, res := range c.Resources {
		r := res.Obj
		switch res.Type {
		case "Encounter":
			if enc == nil {
				enc = r
			}
		case "Patient":
			patient = r
		case "Condition":
			conds["Condition/"+str(r, "id")] = r
		}
	}
	if enc == nil {
		return bus.Permanent(fmt.Errorf("encounter event without an Encounter"))
	}
	pid := refID(str(enc, "subject", "reference"), "Patient")
	if pid == "" {
		return bus.Permanent(fmt.Errorf("encounter %s has no patient", str(enc, "id")))
	}
	kind := c.IntakeEvent
	finess, err := s.finessOf(ctx, tx, tenant, str(enc, "serviceProvider", "reference"))
	if err != nil {
		return err
	}
	return update(ctx, tx, tenant, pid, func(r *outcome.Record) error {
		if patient != nil {
			applyPatient(r, patient)
		}
		encID := str(enc, "id")
		if kind == intake.KindCancelAdmit || str(enc, "status") == "entered-in-error" || str(enc, "status") == "cancelled" {
			r.DropStay(encID)
			return nil
		}
		st := outcome.Stay{Encounter: encID, Class: str(enc, "class", "code"), FINESS: finess,
			Start: parseTime(str(enc, "period", "start")), End: parseTime(str(enc, "period", "end")), HF: hfStatus(enc, conds)}
		for _, c := range list(asObj(enc["priority"])["coding"]) {
			if str(asObj(c), "code") == "EL" {
				st.Planned = true
			}
		}
		if st.Start.IsZero() {
			st.Start = st.End
		}
		r.PutStay(st)
		disp := ""
		for _, c := range list(asObj(asObj(enc["hospitalization"])["dischargeDisposition"])["coding"]) {
			disp = str(asObj(c), "code")
		}
		if kind == "death" || disp == "exp" {
			at := st.End
			if at.IsZero() {
				at = s.d.Clock.Now()
			}
			r.SetDeath(at, "hospital")
		}
		return nil
	})
}

// hfStatus is the heart-failure status of a stay's principal diagnosis:
// 'y' (I50*, I11.0, I13.0, I13.2), 'n', or '?' when the feed sent none.
func hfStatus(enc obj, conds map[string]obj) byte {
	var principal obj
	for _, d := range list(enc["diagnosis"]) {
		d := asObj(d)
		rank, _ := d["rank"].(float64)
		if rank == 1 || principal == nil {
			principal = conds[str(d, "condition", "reference")]
			if rank == 1 {
				break
			}
		}
	}
	if principal == nil {
		return '?'
	}
	for _, c := range list(asObj(principal["code"])["coding"]) {
		code := strings.ToUpper(strings.ReplaceAll(str(asObj(c), "code"), ".", ""))
		if str(asObj(c), "system") != systemICD10 && !strings.HasPrefix(code, "I") {
			continue
		}
		if IsHeartFailure(code) {
			return 'y'
		}
	}
	return 'n'
}

// IsHeartFailure tells whether an ICD-10 code (dots removed) is a
// heart-failure code (docs/domain.md, "Pathways": I50*, I11.0, I13.0, I13.2; prefixes,
// for the French extensions).
func IsHeartFailure(code string) bool {
	for _, p := range []string{"I50", "I110", "I130", "I132"} {
		if strings.HasPrefix(code, p) {
			return true
		}
	}
	return false
}

// applyPatient copies the INS traits and the death of a Patient.
func applyPatient(r *outcome.Record, p obj) {
	var official, any obj
	for _, n := range list(p["name"]) {
		n := asObj(n)
		if any == nil {
			any = n
		}
		if str(n, "use") == "official" && official == nil {
			official = n
		}
	}
	if official == nil {
		official = any
	}
	if official != nil {
		r.Family = str(official, "family")
		r.Given = nil
		for _, g := range list(official["given"]) {
			if s, ok := g.(string); ok {
				r.Given = append(r.Given, strings.Fields(s)...)
			}
		}
	}
	if d, err := outcome.ParseDay(str(p, "birthDate")); err == nil {
		r.BirthDate = d
	}
	switch str(p, "gender") {
	case "male":
		r.Sex = "M"
	case "female":
		r.Sex = "F"
	default:
		r.Sex = ""
	}
	if bp := extension(p, extBirthPlace); bp != nil {
		for _, e := range list(asObj(bp["valueAddress"])["extension"]) {
			if c := str(asObj(e), "valueCoding", "code"); c != "" {
				r.BirthPlace = c
			}
		}
	}
	if d := str(p, "deceasedDateTime"); d != "" {
		r.SetDeath(parseTime(d), "patient")
	}
}

// finessOf returns the FINESS of an Organization reference (cached: a
// facility's FINESS does not change).
func (s *Service) finessOf(ctx context.Context, tx store.Tx, tenant, ref string) (string, error) {
	id := refID(ref, "Organization")
	if id == "" {
		return "", nil
	}
	key := tenant + "|" + id
	s.mu.Lock()
	f, ok := s.finess[key]
	s.mu.Unlock()
	if ok {
		return f, nil
	}
	res, err := tx.Read(ctx, "Organization", id)
	if err != nil {
		// An unknown facility leaves the stratum "unknown"; not a reason to
		// stop counting.
		return "", nil
	}
	var org struct {
		Identifier []struct{ System, Value string } `json:"identifier"`
	}
	_ = json.Unmarshal(res.Body, &org)
	for _, i := range org.Identifier {
		if i.System == systemFINESS {
			f = i.Value
		}
	}
	s.mu.Lock()
	s.finess[key] = f
	s.mu.Unlock()
	return f, nil
}

// HandleEpisode records an episode and the tasks its event carries.
func (s *Service) HandleEpisode(ctx context.Context, tx store.Tx, c event.Change) error {
	p, err := s.prepareEpisode(ctx, c)
	if err != nil {
		return err
	}
	return s.applyEpisode(ctx, tx, p)
}

// episodeChange is what an episode event brings to the patient's record,
// read from the event before the transaction (see event.InboxPrepared).
type episodeChange struct {
	tenant, patient string
	episode         outcome.Episode
	tasks           []outcome.Task
}

func (s *Service) prepareEpisode(_ context.Context, c event.Change) (episodeChange, error) {
	out := episodeChange{tenant: c.TenantOr(s.d.Tenant)}
	var ep *model.EpisodeOfCare
	var tasks []*model.Task
	for _, res := range c.Resources {
		if res.Obj == nil && len(res.Body) == 0 {
			continue
		}
		switch res.Type {
		case "EpisodeOfCare":
			if ep == nil {
				e, err := typed[model.EpisodeOfCare](res)
				if err != nil {
					return out, bus.Permanent(err)
				}
				ep = e
			}
		case "Task":
			t, err := typed[model.Task](res)
			if err != nil {
				return out, bus.Permanent(err)
			}
			tasks = append(tasks, t)
		}
	}
	if ep == nil {
		return out, bus.Permanent(fmt.Errorf("episode event without an EpisodeOfCare"))
	}
	out.patient = refID(ep.Patient.String(), "Patient")
	if out.patient == "" {
		return out, bus.Permanent(fmt.Errorf("episode %s has no patient", ep.ID))
	}
	canonical, _, _ := strings.Cut(ep.GetExtension(pathway.ExtEpisodePathway).String(), "|")
	out.episode = outcome.Episode{ID: ep.ID, Status: ep.Status, Pathway: canonical,
		CPTS: ep.ManagingOrganization.String(), IndexEncounter: refID(ep.GetExtension(pathway.ExtIndexEncounter).Ref(), "Encounter"),
		Discharge: parseTime(periodStart(ep.Period))}
	for _, t := range tasks {
		out.tasks = append(out.tasks, taskOf(t))
	}
	return out, nil
}

func (s *Service) applyEpisode(ctx context.Context, tx store.Tx, p episodeChange) error {
	return update(ctx, tx, p.tenant, p.patient, func(r *outcome.Record) error {
		r.PutEpisode(p.episode)
		for _, t := range p.tasks {
			r.PutTask(p.episode.ID, t)
		}
		return nil
	})
}

func taskOf(t *model.Task) outcome.Task {
	out := outcome.Task{ID: t.ID, Status: t.Status}
	if t.Restriction != nil {
		out.Due = parseTime(periodEnd(t.Restriction.Period))
	}
	if t.Code != nil {
		for _, c := range t.Code.Coding {
			out.Code = c.Code
		}
	}
	for _, pt := range t.PerformerType {
		for _, c := range pt.Coding {
			out.Role = c.Code
		}
	}
	if out.Status == "completed" {
		out.Done = parseTime(periodEnd(t.ExecutionPeriod))
		if out.Done.IsZero() && t.Meta != nil {
			out.Done = parseTime(t.Meta.LastUpdated)
		}
	}
	return out
}

// HandleTask records a task's progress (worklist, teams): its status and
// completion time. Tasks are known from their episode's event; a task of
// no known episode is not a pathway task and is ignored.
func (s *Service) HandleTask(ctx context.Context, tx store.Tx, c event.Change) error {
	tenant := c.TenantOr(s.d.Tenant)
	for _, res := range c.Resources {
		if res.Type != "Task" || res.Obj == nil {
			continue
		}
		t, err := typed[model.Task](res)
		if err != nil {
			return bus.Permanent(err)
		}
		pid := refID(t.For.String(), "Patient")
		if pid == "" {
			continue
		}
		task := taskOf(t)
		if err := update(ctx, tx, tenant, pid, func(r *outcome.Record) error {
			if !r.PutTask("", task) {
				return errUnchanged
			}
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}

// HandlePatient records the traits and the death of a Patient.
func (s *Service) HandlePatient(ctx context.Context, tx store.Tx, c event.Change) error {
	tenant := c.TenantOr(s.d.Tenant)
	for _, p := range c.Of("Patient") {
		if err := update(ctx, tx, tenant, str(p, "id"), func(r *outcome.Record) error {
			applyPatient(r, p)
			return nil
		}); err != nil {
			return err
		}
	}
	return nil
}
