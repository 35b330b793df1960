package pathway_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir/profile"
	"github.com/passerelle-sante/passerelle/pkg/fhir/validate"
	"github.com/passerelle-sante/passerelle/pkg/intake"
	pathwaydef "github.com/passerelle-sante/passerelle/pkg/pathway"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/services/pathway"
)

const tenant = "demo"

var validator = func() *validate.Validator {
	reg, err := profile.Load(fhirprofiles.FS())
	if err != nil {
		panic(err)
	}
	v, err := validate.New(reg)
	if err != nil {
		panic(err)
	}
	return v
}()

// rig drives the service's handlers directly, each inside the inbox
// transaction bus.Inbox gives them, on a real SQLite store with the
// development directory and a fake clock.
type rig struct {
	t   testing.TB
	dir string
	s   store.Store
	svc *pathway.Service
	clk *clock.Fake
	ctx context.Context
}

func paris(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02T15:04", s, clock.Paris)
	if err != nil {
		panic(err)
	}
	return t
}

func newRig(t testing.TB) *rig {
	t.Helper()
	r := &rig{t: t, dir: t.TempDir(), clk: clock.NewFake(paris("2025-03-14T15:30")), ctx: context.Background()}
	r.open()
	if _, err := directory.SeedDev(r.ctx, r.s, tenant); err != nil {
		t.Fatal(err)
	}
	if err := r.svc.Seed(r.ctx, tenant); err != nil {
		t.Fatal(err)
	}
	return r
}

// open opens (or reopens, after close) the store and a new service.
func (r *rig) open() {
	s, err := sqlite.Open(r.ctx, filepath.Join(r.dir, "db"), sqlite.Options{})
	if err != nil {
		r.t.Fatal(err)
	}
	r.s = s
	r.t.Cleanup(func() { _ = s.Close() })
	r.svc, err = pathway.New(pathway.Deps{Store: s, Clock: r.clk, Tenant: tenant, Validator: validator, Package: fhirprofiles.FS(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		r.t.Fatal(err)
	}
}

// deliver hands a message to a handler as its consumer would.
func (r *rig) deliver(durable string, h event.Handler, m bus.Msg) {
	r.t.Helper()
	if err := event.Inbox(r.s, durable, h)(r.ctx, m); err != nil {
		r.t.Fatalf("%s: %v", durable, err)
	}
}

// stay describes a hospital stay as intake announces it.
type stay struct {
	patient, enc string
	kind         string
	class        string
	elective     bool
	start, end   time.Time
	disposition  string
	modeSortie   string
	unit         string
	diagnoses    []string
	birthDate    string
}

func (r *rig) patient(birth string) string {
	r.t.Helper()
	id := uuid.NewString()
	r.tx(func(tx store.Tx) error {
		_, err := tx.Create(r.ctx, tenant, mustJSON(map[string]any{"resourceType": "Patient", "id": id, "birthDate": birth}))
		return err
	})
	return id
}

func (r *rig) tx(fn func(tx store.Tx) error) {
	r.t.Helper()
	if err := r.s.Tx(r.ctx, fn); err != nil {
		r.t.Fatal(err)
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// encounterMsg builds the intake event of a stay: a history Bundle led by
// the Encounter, with the Patient and Conditions, as services/intake does.
func encounterMsg(st stay) bus.Msg {
	if st.class == "" {
		st.class = "IMP"
	}
	if st.birthDate == "" {
		st.birthDate = "1948-03-15"
	}
	enc := map[string]any{"resourceType": "Encounter", "id": st.enc, "status": "finished",
		"class":   map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": st.class},
		"subject": map[string]any{"reference": "Patient/" + st.patient},
		"serviceProvider": map[string]any{"reference": "Organization/" + directory.DevHospital,
			"identifier": map[string]any{"system": directory.SystemFINESS, "value": directory.DevHospitalFINES}}}
	period := map[string]any{}
	if !st.start.IsZero() {
		period["start"] = st.start.Format(time.RFC3339)
	}
	if !st.end.IsZero() {
		period["end"] = st.end.Format(time.RFC3339)
	}
	enc["period"] = period
	if st.elective {
		enc["priority"] = map[string]any{"coding": []any{map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActPriority", "code": "EL"}}}
	}
	if st.disposition != "" {
		enc["hospitalization"] = map[string]any{"dischargeDisposition": map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/discharge-disposition", "code": st.disposition}}}}
	}
	var ext []any
	if st.unit != "" {
		ext = append(ext, map[string]any{"url": intake.ExtMedicalUnit, "valueIdentifier": map[string]any{
			"system": directory.SystemUF + "/" + directory.DevHospitalFINES, "value": st.unit}})
	}
	if st.modeSortie != "" {
		ext = append(ext, map[string]any{"url": intake.ExtModeSortie, "valueCode": st.modeSortie})
	}
	if ext != nil {
		enc["extension"] = ext
	}
	entries := []any{
		map[string]any{"resource": enc},
		map[string]any{"resource": map[string]any{"resourceType": "Patient", "id": st.patient, "birthDate": st.birthDate}},
	}
	for _, d := range st.diagnoses {
		entries = append(entries, map[string]any{"resource": map[string]any{"resourceType": "Condition", "id": "cond-" + st.enc + "-" + d,
			"code":    map[string]any{"coding": []any{map[string]any{"system": "http://hl7.org/fhir/sid/icd-10", "code": d}}},
			"subject": map[string]any{"reference": "Patient/" + st.patient}}})
	}
	id := "Encounter/" + st.enc + "/_history/" + uuid.NewString()
	return bus.Msg{Subject: bus.ResourceSubject(tenant, "Encounter", bus.OpUpdated), Data: mustJSON(map[string]any{
		"resourceType": "Bundle", "type": "history", "entry": entries}),
		Header: map[string]string{bus.HeaderMsgID: id, bus.HeaderTenant: tenant, bus.HeaderIntakeEvent: st.kind}}
}

// hfDischarge is a heart-failure discharge home of an adult.
func hfDischarge(patient, enc string, at time.Time) stay {
	return stay{patient: patient, enc: enc, kind: intake.KindDischarge, start: at.AddDate(0, 0, -8), end: at,
		disposition: "home", modeSortie: "8", unit: directory.DevCardioUF, diagnoses: []string{"I50.1"}}
}

func (r *rig) encounter(st stay) bus.Msg {
	r.t.Helper()
	m := encounterMsg(st)
	r.deliver(pathway.DurableEncounter, r.svc.HandleEncounter, m)
	return m
}

func (r *rig) search(typ string, params ...store.Param) []map[string]any {
	r.t.Helper()
	page, err := r.s.Search(r.ctx, store.Query{Tenant: tenant, Type: typ, Params: params, Count: 1000})
	if err != nil {
		r.t.Fatal(err)
	}
	var out []map[string]any
	for _, res := range page.Resources {
		var m map[string]any
		_ = json.Unmarshal(res.Body, &m)
		out = append(out, m)
	}
	return out
}

func refParam(name, ref string) store.Param {
	return store.Param{Name: name, Kind: store.KindReference, Values: []store.Value{{Ref: ref}}}
}

// view is an episode as the API shows it.
type view struct {
	ep    map[string]any
	cp    map[string]any
	tasks []map[string]any
}

func (r *rig) episodes(patient string) []view {
	r.t.Helper()
	var out []view
	for _, ep := range r.search("EpisodeOfCare", refParam("patient", "Patient/"+patient)) {
		v := view{ep: ep}
		cpRef := ""
		for _, x := range ep["extension"].([]any) {
			xm := x.(map[string]any)
			if xm["url"] == pathwaydef.ExtEpisodeCarePlan {
				cpRef = xm["valueReference"].(map[string]any)["reference"].(string)
			}
		}
		res, err := r.s.Read(r.ctx, "CarePlan", strings.TrimPrefix(cpRef, "CarePlan/"))
		if err != nil {
			r.t.Fatalf("care plan %s: %v", cpRef, err)
		}
		_ = json.Unmarshal(res.Body, &v.cp)
		v.tasks = r.search("Task", refParam("based-on", cpRef))
		sort.Slice(v.tasks, func(i, j int) bool {
			return due(v.tasks[i]) < due(v.tasks[j]) || due(v.tasks[i]) == due(v.tasks[j]) && code(v.tasks[i]) < code(v.tasks[j])
		})
		out = append(out, v)
	}
	sort.Slice(out, func(i, j int) bool { return s(out[i].ep, "period", "start") < s(out[j].ep, "period", "start") })
	return out
}

func (r *rig) only(patient string) view {
	r.t.Helper()
	eps := r.episodes(patient)
	if len(eps) != 1 {
		r.t.Fatalf("episodes: %d, want 1", len(eps))
	}
	return eps[0]
}

func s(m map[string]any, keys ...string) string {
	var cur any = m
	for _, k := range keys {
		mm, ok := cur.(map[string]any)
		if !ok {
			return ""
		}
		cur = mm[k]
	}
	v, _ := cur.(string)
	return v
}

func code(t map[string]any) string {
	return t["code"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string)
}

func due(t map[string]any) string { return s(t, "restriction", "period", "end") }

func byCode(tasks []map[string]any, c string) []map[string]any {
	var out []map[string]any
	for _, t := range tasks {
		if code(t) == c {
			out = append(out, t)
		}
	}
	return out
}

func statuses(tasks []map[string]any) map[string]int {
	out := map[string]int{}
	for _, t := range tasks {
		out[t["status"].(string)]++
	}
	return out
}

func endReason(ep map[string]any) string {
	for _, x := range ep["extension"].([]any) {
		xm := x.(map[string]any)
		if xm["url"] == pathway.ExtEndReason {
			return xm["valueCodeableConcept"].(map[string]any)["coding"].([]any)[0].(map[string]any)["code"].(string)
		}
	}
	return ""
}

// updateTask records a task change as the worklist will (its owner's
// write plus its event) and hands the event to the pathway service.
func (r *rig) updateTask(t map[string]any, mutate func(map[string]any)) {
	r.t.Helper()
	res, err := r.s.Read(r.ctx, "Task", t["id"].(string))
	if err != nil {
		r.t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(res.Body, &m)
	mutate(m)
	delete(m, "meta")
	var ev store.Event
	r.tx(func(tx store.Tx) error {
		nr, err := tx.Update(r.ctx, tenant, mustJSON(m), res.Version)
		if err != nil {
			return err
		}
		ev, err = event.New(tenant, bus.OpUpdated, "", nr).Encode()
		return err
	})
	r.deliver(pathway.DurableTask, r.svc.HandleTask, msgOf(ev))
}

func msgOf(ev store.Event) bus.Msg {
	h := map[string]string{bus.HeaderMsgID: ev.MsgID}
	for k, v := range ev.Headers {
		h[k] = v
	}
	return bus.Msg{Subject: ev.Subject, Header: h, Data: ev.Data}
}

// observe records an Observation as the worklist will, and hands its event
// to the pathway service.
func (r *rig) observe(patient string, at time.Time, loinc string, value map[string]any) {
	r.t.Helper()
	o := map[string]any{"resourceType": "Observation", "status": "final",
		"code":              map[string]any{"coding": []any{map[string]any{"system": "http://loinc.org", "code": loinc}}},
		"subject":           map[string]any{"reference": "Patient/" + patient},
		"effectiveDateTime": at.Format(time.RFC3339)}
	for k, v := range value {
		o[k] = v
	}
	var ev store.Event
	r.tx(func(tx store.Tx) error {
		res, err := tx.Create(r.ctx, tenant, mustJSON(o))
		if err != nil {
			return err
		}
		ev, err = event.New(tenant, bus.OpCreated, "", res).Encode()
		return err
	})
	r.deliver(pathway.DurableObservation, r.svc.HandleObservation, msgOf(ev))
}

func nyha(snomed string) map[string]any {
	return map[string]any{"valueCodeableConcept": map[string]any{"coding": []any{map[string]any{"system": "http://snomed.info/sct", "code": snomed}}}}
}

// pendingTimer tells whether a task's due-date timer is pending.
func (r *rig) pendingTimer(taskID string) bool {
	_, err := r.s.Timers().Pending(r.ctx, pathway.TimerTaskDue+":"+tenant+":"+taskID)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		r.t.Fatal(err)
	}
	return err == nil
}

// outbox returns the subjects of the unsent events.
func (r *rig) outbox() []store.OutboxRow {
	r.t.Helper()
	rows, err := r.s.Outbox().Pending(r.ctx, 10000)
	if err != nil {
		r.t.Fatal(err)
	}
	return rows
}

func packageFS() fs.FS { return fhirprofiles.FS() }
