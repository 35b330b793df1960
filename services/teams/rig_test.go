package teams_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
	"github.com/passerelle-sante/passerelle/internal/fhirjson"
	"github.com/passerelle-sante/passerelle/internal/testenv"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/intake"
	"github.com/passerelle-sante/passerelle/pkg/notify"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/postgres"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/pkg/timer"
	"github.com/passerelle-sante/passerelle/services/pathway"
	"github.com/passerelle-sante/passerelle/services/teams"
)

const tenant = "demo"

// recorder is a Notifier that keeps what it is given: the channel is
// outside the machine (e-mail, secure messaging). It fails on demand.
type recorder struct {
	mu    sync.Mutex
	sent  []notify.Notification
	fails int   // the next fails sends fail
	err   error // with this error
}

func (r *recorder) Send(_ context.Context, n notify.Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fails > 0 {
		r.fails--
		return r.err
	}
	r.sent = append(r.sent, n)
	return nil
}

func (r *recorder) Channel() string { return "test" }

func (r *recorder) all() []notify.Notification {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]notify.Notification(nil), r.sent...)
}

// rig runs the pathway and teams services on a real store with a fake
// clock. Events go from the store's outbox to the consumers' handlers, each
// through its inbox as the bus would deliver them; timers fire through the
// platform's timer runner.
type rig struct {
	t     testing.TB
	ctx   context.Context
	clk   *clock.Fake
	open  func() store.Store
	s     store.Store
	pw    *pathway.Service
	tm    *teams.Service
	notif *recorder
	// dead holds notifications whose delivery failed, by Communication id,
	// with the number of deliveries so far.
	dead map[string]uint64
	// dup delivers every event twice, as a redelivery after a lost ack.
	dup bool
	// byEvent leaves the pathway without the team rules (pathway.Deps
	// Staff): it writes its tasks unowned and this service assigns them
	// from the episode's event, as for tasks other writers create.
	byEvent bool
}

func paris(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02T15:04", s, clock.Paris)
	if err != nil {
		panic(err)
	}
	return t
}

func sqliteOpener(t testing.TB) func() store.Store {
	dir := t.TempDir()
	return func() store.Store {
		s, err := sqlite.Open(context.Background(), filepath.Join(dir, "db"), sqlite.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func postgresOpener(t testing.TB) func() store.Store {
	url := testenv.PostgresURL(t)
	return func() store.Store {
		s, err := postgres.Open(context.Background(), url, postgres.Options{})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

func newRig(t testing.TB, open func() store.Store) *rig {
	return newRigWith(t, open, false)
}

func newRigWith(t testing.TB, open func() store.Store, byEvent bool) *rig {
	t.Helper()
	r := &rig{t: t, ctx: context.Background(), clk: clock.NewFake(paris("2026-03-16T15:30")), open: open,
		notif: &recorder{}, dead: map[string]uint64{}, byEvent: byEvent}
	r.start()
	if _, err := directory.SeedDev(r.ctx, r.s, tenant); err != nil {
		t.Fatal(err)
	}
	if err := r.pw.Seed(r.ctx, tenant); err != nil {
		t.Fatal(err)
	}
	return r
}

// start opens the store and new services: a restart when called again
// after stop.
func (r *rig) start() {
	r.s = r.open()
	s := r.s
	r.t.Cleanup(func() { _ = s.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r.tm = teams.New(teams.Deps{Store: r.s, Clock: r.clk, Tenant: tenant, Logger: log, Notifier: r.notif,
		PublicURL: "http://localhost:8080", MembersTTL: -1, NotifyBackOff: []time.Duration{time.Second, time.Second}})
	var staff pathway.Staffer = r.tm
	if r.byEvent {
		staff = nil
	}
	var err error
	r.pw, err = pathway.New(pathway.Deps{Store: r.s, Clock: r.clk, Tenant: tenant, Package: fhirprofiles.FS(), Logger: log, Staff: staff})
	if err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) stop() { _ = r.s.Close() }

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

// pump delivers every pending outbox event to its consumers, until none
// is left. Delivery failures are kept for redelivery by the next pump.
func (r *rig) pump() {
	r.t.Helper()
	for range 100 {
		rows, err := r.s.Outbox().Pending(r.ctx, 500)
		if err != nil {
			r.t.Fatal(err)
		}
		if len(rows) == 0 {
			break
		}
		var seqs []int64
		for _, row := range rows {
			seqs = append(seqs, row.Seq)
		}
		if err := r.s.Outbox().MarkSent(r.ctx, seqs, r.clk.Now()); err != nil {
			r.t.Fatal(err)
		}
		for _, row := range rows {
			m := bus.Msg{Subject: row.Event.Subject, Header: map[string]string{}, Data: row.Event.Data, NumDelivered: 1}
			for k, v := range row.Event.Headers {
				m.Header[k] = v
			}
			m.Header[bus.HeaderMsgID] = row.Event.MsgID
			m.Header[bus.HeaderEventID] = row.Event.MsgID
			r.dispatch(m)
			if r.dup {
				r.dispatch(m)
			}
		}
	}
	r.redeliver()
}

func (r *rig) dispatch(m bus.Msg) {
	r.t.Helper()
	parts := strings.Split(m.Subject, ".")
	if len(parts) < 4 {
		return
	}
	typ, op := parts[2], parts[3]
	in := func(durable string, h event.Handler) {
		if err := event.Inbox(r.s, durable, h)(r.ctx, m); err != nil {
			r.t.Fatalf("%s on %s: %v", durable, m.Subject, err)
		}
	}
	switch typ {
	case "EpisodeOfCare":
		in(teams.DurableEpisode, r.tm.HandleEpisode)
	case "Task":
		in(pathway.DurableTask, r.pw.HandleTask)
		in(teams.DurableTask, r.tm.HandleTask)
	case "Communication":
		if op == bus.OpCreated {
			if err := r.tm.Deliver(r.ctx, m); err != nil {
				var c struct{ ID string }
				_ = json.Unmarshal(m.Data, &c)
				r.dead[string(m.Data)] = m.NumDelivered
			}
		}
	}
}

// redeliver hands failed notifications to the consumer again, as the bus
// does after its back-off, until they succeed or run out of attempts.
func (r *rig) redeliver() {
	for data, n := range r.dead {
		delete(r.dead, data)
		m := bus.Msg{Subject: bus.ResourceSubject(tenant, "Communication", bus.OpCreated), Data: []byte(data),
			Header: map[string]string{bus.HeaderTenant: tenant}, NumDelivered: n + 1}
		if err := r.tm.Deliver(r.ctx, m); err != nil && n+1 < 3 {
			r.dead[data] = n + 1
		}
	}
}

// advance moves the clock and fires what is due, then pumps.
func (r *rig) advance(d time.Duration) {
	r.t.Helper()
	r.clk.Advance(d)
	run := &timer.Runner{Store: r.s, Clock: r.clk, Owner: "test", Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Handlers: map[string]timer.Handler{}}
	for k, h := range r.pw.TimerHandlers() {
		run.Handlers[k] = h
	}
	for k, h := range r.tm.TimerHandlers() {
		run.Handlers[k] = h
	}
	for range 20 {
		n, err := run.FireDue(r.ctx, nil)
		if err != nil {
			r.t.Fatal(err)
		}
		r.pump()
		if n == 0 {
			break
		}
	}
}

// patient creates a patient living in Roanne, with the médecin traitant
// and the team the hospital declared, and returns its id.
type declared struct {
	gpRPPS, nurseRPPS, pharmacyFINESS string
	postal, commune                   string
}

func (r *rig) patient(d declared, enc string) string {
	r.t.Helper()
	id := uuid.NewString()
	if d.postal == "" && d.commune == "" {
		d.postal, d.commune = "42300", "42187"
	}
	p := map[string]any{"resourceType": "Patient", "id": id, "birthDate": "1948-03-15", "gender": "female",
		"name": []any{map[string]any{"family": "TESTDURAND", "given": []any{"MARIE"}}},
		"address": []any{map[string]any{"use": "home", "city": "Roanne", "postalCode": d.postal, "extension": []any{map[string]any{
			"url":         "https://hl7.fr/ig/fhir/core/StructureDefinition/fr-core-address-insee-code",
			"valueCoding": map[string]any{"system": "https://mos.esante.gouv.fr/NOS/TRE_R13-CommuneOM/FHIR/TRE-R13-CommuneOM", "code": d.commune}}}}}}
	if d.gpRPPS != "" {
		p["generalPractitioner"] = []any{map[string]any{"identifier": map[string]any{"system": directory.SystemIDNPS, "value": "8" + d.gpRPPS}, "display": "Dr GP"}}
	}
	var parts []any
	if d.nurseRPPS != "" {
		parts = append(parts, map[string]any{"role": []any{map[string]any{"coding": []any{map[string]any{"system": directory.SystemTeamRole, "code": "nurse"}}}},
			"member": map[string]any{"type": "Practitioner", "display": "IDE déclarée", "identifier": map[string]any{"system": directory.SystemRPPS, "value": d.nurseRPPS}}})
	}
	if d.pharmacyFINESS != "" {
		parts = append(parts, map[string]any{"role": []any{map[string]any{"coding": []any{map[string]any{"system": directory.SystemTeamRole, "code": "pharmacist"}}}},
			"member": map[string]any{"type": "Organization", "display": "Pharmacie déclarée", "identifier": map[string]any{"system": directory.SystemFINESS, "value": d.pharmacyFINESS}}})
	}
	r.tx(func(tx store.Tx) error {
		if _, err := tx.Create(r.ctx, tenant, mustJSON(p)); err != nil {
			return err
		}
		if parts != nil {
			_, err := tx.Create(r.ctx, tenant, mustJSON(map[string]any{"resourceType": "CareTeam", "id": "declared-" + enc, "status": "proposed",
				"subject": map[string]any{"reference": "Patient/" + id}, "participant": parts}))
			return err
		}
		return nil
	})
	return id
}

// discharge announces a heart-failure discharge home, as intake does, and
// pumps the events it causes.
func (r *rig) discharge(patient, enc string) {
	r.t.Helper()
	r.dischargeAt(patient, enc, r.clk.Now())
}

// dischargeAt is discharge of a patient who left hospital at at: in the
// past, a discharge notified late.
func (r *rig) dischargeAt(patient, enc string, at time.Time) {
	r.t.Helper()
	encounter := map[string]any{"resourceType": "Encounter", "id": enc, "status": "finished",
		"class":   map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
		"subject": map[string]any{"reference": "Patient/" + patient},
		"period":  map[string]any{"start": at.AddDate(0, 0, -8).Format(time.RFC3339), "end": at.Format(time.RFC3339)},
		"serviceProvider": map[string]any{"reference": "Organization/" + directory.DevHospital,
			"identifier": map[string]any{"system": directory.SystemFINESS, "value": directory.DevHospitalFINES}},
		"hospitalization": map[string]any{"dischargeDisposition": map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/discharge-disposition", "code": "home"}}}},
		"extension": []any{map[string]any{"url": intake.ExtModeSortie, "valueCode": "8"}}}
	r.tx(func(tx store.Tx) error { _, err := tx.Create(r.ctx, tenant, mustJSON(encounter)); return err })
	entries := []any{
		map[string]any{"resource": encounter},
		map[string]any{"resource": map[string]any{"resourceType": "Patient", "id": patient, "birthDate": "1948-03-15"}},
		map[string]any{"resource": map[string]any{"resourceType": "Condition", "id": "cond-" + enc,
			"code":    map[string]any{"coding": []any{map[string]any{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I50.1"}}},
			"subject": map[string]any{"reference": "Patient/" + patient}}},
	}
	m := bus.Msg{Subject: bus.ResourceSubject(tenant, "Encounter", bus.OpUpdated), Data: mustJSON(map[string]any{
		"resourceType": "Bundle", "type": "history", "entry": entries}),
		Header: map[string]string{bus.HeaderMsgID: "Encounter/" + enc + "/" + uuid.NewString(), bus.HeaderTenant: tenant,
			bus.HeaderIntakeEvent: intake.KindDischarge}}
	if err := event.Inbox(r.s, pathway.DurableEncounter, r.pw.HandleEncounter)(r.ctx, m); err != nil {
		r.t.Fatal(err)
	}
	r.pump()
}

// act changes a task as its owner would through the worklist: status (and
// reason), announced on Task.updated.
func (r *rig) act(taskID, status string) {
	r.t.Helper()
	r.tx(func(tx store.Tx) error {
		res, err := tx.Read(r.ctx, "Task", taskID)
		if err != nil {
			return err
		}
		var m map[string]any
		_ = json.Unmarshal(res.Body, &m)
		m["status"] = status
		if status == "rejected" {
			m["statusReason"] = map[string]any{"text": "Pas disponible cette semaine"}
		}
		delete(m, "meta")
		nr, err := tx.Update(r.ctx, tenant, mustJSON(m), res.Version)
		if err != nil {
			return err
		}
		return event.Emit(r.ctx, tx, event.New(tenant, bus.OpUpdated, "", nr))
	})
	r.pump()
}

func (r *rig) search(typ string, params ...store.Param) []map[string]any {
	r.t.Helper()
	var out []map[string]any
	q := store.Query{Tenant: tenant, Type: typ, Params: params, Count: 1000}
	for {
		page, err := r.s.Search(r.ctx, q)
		if err != nil {
			r.t.Fatal(err)
		}
		for _, res := range page.Resources {
			var m map[string]any
			_ = json.Unmarshal(res.Body, &m)
			out = append(out, m)
		}
		if page.Next == "" {
			return out
		}
		q.Cursor = page.Next
	}
}

func (r *rig) read(typ, id string) map[string]any {
	r.t.Helper()
	res, err := r.s.Read(r.ctx, typ, id)
	if err != nil {
		r.t.Fatalf("%s/%s: %v", typ, id, err)
	}
	var m map[string]any
	_ = json.Unmarshal(res.Body, &m)
	return m
}

func refParam(name, ref string) store.Param {
	return store.Param{Name: name, Kind: store.KindReference, Values: []store.Value{{Ref: ref}}}
}

// s follows keys to a string (first element of lists).
var s = fhirjson.Get

func code(m map[string]any, key string) string {
	v, _ := m[key].(map[string]any)
	if v == nil {
		l, _ := m[key].([]any)
		if len(l) > 0 {
			v, _ = l[0].(map[string]any)
		}
	}
	return s(v, "coding", "code")
}

// episode is one patient's episode with its team and tasks.
type episode struct {
	id    string
	team  map[string]any
	tasks []map[string]any
}

func (r *rig) episode(patient string) episode {
	r.t.Helper()
	eps := r.search("EpisodeOfCare", refParam("patient", "Patient/"+patient))
	if len(eps) != 1 {
		r.t.Fatalf("%d episodes for %s", len(eps), patient)
	}
	e := episode{id: eps[0]["id"].(string)}
	res, err := r.s.Read(r.ctx, "CareTeam", "ct-"+e.id)
	if err == nil {
		_ = json.Unmarshal(res.Body, &e.team)
	} else if !errors.Is(err, store.ErrNotFound) {
		r.t.Fatal(err)
	}
	e.tasks = r.search("Task", refParam("patient", "Patient/"+patient))
	sort.Slice(e.tasks, func(i, j int) bool {
		a, b := s(e.tasks[i], "restriction", "period", "end"), s(e.tasks[j], "restriction", "period", "end")
		return a < b || a == b && e.tasks[i]["id"].(string) < e.tasks[j]["id"].(string)
	})
	return e
}

// members returns the team's current participants: member reference →
// role.
func members(team map[string]any) map[string]string {
	out := map[string]string{}
	parts, _ := team["participant"].([]any)
	for _, p := range parts {
		pm := p.(map[string]any)
		if s(pm, "period", "end") != "" {
			continue
		}
		who := s(pm, "member", "reference")
		if who == "" {
			who = "external:" + s(pm, "member", "identifier", "value")
		}
		out[who] = code(pm, "role")
	}
	return out
}

func (e episode) byCode(c string) []map[string]any {
	var out []map[string]any
	for _, t := range e.tasks {
		if code(t, "code") == c {
			out = append(out, t)
		}
	}
	return out
}

func notifications(n []notify.Notification, to, kind string) int {
	c := 0
	for _, x := range n {
		if x.To.Ref == to && (kind == "" || x.Kind == kind) {
			c++
		}
	}
	return c
}

var _ = fmt.Sprintf

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

// created announces a resource the test wrote, as its writer would.
func created(ctx context.Context, tx store.Tx, res store.Resource) error {
	return event.Emit(ctx, tx, event.New(tenant, bus.OpCreated, "", res))
}
