package worklist_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
	"github.com/passerelle-sante/passerelle/internal/testenv"
	"github.com/passerelle-sante/passerelle/pkg/auth"
	"github.com/passerelle-sante/passerelle/pkg/auth/devidp"
	"github.com/passerelle-sante/passerelle/pkg/bus"
	"github.com/passerelle-sante/passerelle/pkg/bus/event"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir/profile"
	"github.com/passerelle-sante/passerelle/pkg/fhir/validate"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/pkg/intake"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/postgres"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/services/pathway"
	"github.com/passerelle-sante/passerelle/services/worklist"
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

// backends are the stores every rig test runs on.
var backends = []string{"sqlite", "postgres"}

// rig runs the worklist and pathway services' handlers on a real store
// with the development directory and a fake clock; events are handed to
// handlers as their consumers would, through bus.Inbox.
type rig struct {
	t       testing.TB
	backend string
	dir     string
	pgURL   string
	s       store.Store
	svc     *worklist.Service
	pw      *pathway.Service
	clk     *clock.Fake
	ctx     context.Context
	// deliverHook, when set, takes the messages deliver would hand to
	// consumers.
	deliverHook func(bus.Msg)
}

func paris(s string) time.Time {
	t, err := time.ParseInLocation("2006-01-02T15:04", s, clock.Paris)
	if err != nil {
		panic(err)
	}
	return t
}

func newRig(t testing.TB, backend string) *rig {
	t.Helper()
	r := &rig{t: t, backend: backend, dir: t.TempDir(), clk: clock.NewFake(paris("2025-03-14T15:30")), ctx: context.Background()}
	if backend == "postgres" {
		r.pgURL = testenv.PostgresURL(t)
	}
	r.open()
	if _, err := directory.SeedDev(r.ctx, r.s, tenant); err != nil {
		t.Fatal(err)
	}
	if err := r.pw.Seed(r.ctx, tenant); err != nil {
		t.Fatal(err)
	}
	return r
}

// open opens (or reopens) the store and new services on it.
func (r *rig) open() {
	var s store.Store
	var err error
	if r.backend == "postgres" {
		s, err = postgres.Open(r.ctx, r.pgURL, postgres.Options{})
	} else {
		s, err = sqlite.Open(r.ctx, filepath.Join(r.dir, "db"), sqlite.Options{})
	}
	if err != nil {
		r.t.Fatal(err)
	}
	r.s = s
	r.t.Cleanup(func() { _ = s.Close() })
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	r.svc = worklist.New(worklist.Deps{Store: s, Clock: r.clk, Tenant: tenant, Logger: log})
	r.pw, err = pathway.New(pathway.Deps{Store: s, Clock: r.clk, Tenant: tenant, Validator: validator, Package: fhirprofiles.FS(), Logger: log})
	if err != nil {
		r.t.Fatal(err)
	}
}

// reopen closes the store and opens it again, as a restart does.
func (r *rig) reopen() {
	if err := r.s.Close(); err != nil {
		r.t.Fatal(err)
	}
	r.open()
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

func msgOf(ev store.Event) bus.Msg {
	h := map[string]string{bus.HeaderMsgID: ev.MsgID}
	for k, v := range ev.Headers {
		h[k] = v
	}
	return bus.Msg{Subject: ev.Subject, Header: h, Data: ev.Data}
}

// pending returns the outbox rows not yet handed to consumers.
func (r *rig) pending() []store.OutboxRow {
	r.t.Helper()
	rows, err := r.s.Outbox().Pending(r.ctx, 100000)
	if err != nil {
		r.t.Fatal(err)
	}
	return rows
}

// flush hands every new outbox event to the worklist's and the pathway's
// consumers, until none is left, as the relay and the bus would, and
// marks them sent.
func (r *rig) flush() {
	r.t.Helper()
	for range 20 {
		rows := r.pending()
		if len(rows) == 0 {
			return
		}
		var seqs []int64
		for _, row := range rows {
			r.deliver(msgOf(row.Event))
			seqs = append(seqs, row.Seq)
		}
		if err := r.s.Outbox().MarkSent(r.ctx, seqs, r.clk.Now()); err != nil {
			r.t.Fatal(err)
		}
	}
	r.t.Fatal("events keep coming")
}

// deliver hands one event to every consumer subscribed to its subject.
func (r *rig) deliver(m bus.Msg) {
	r.t.Helper()
	if r.deliverHook != nil {
		r.deliverHook(m)
		return
	}
	parts := strings.Split(m.Subject, ".")
	if len(parts) < 4 {
		return
	}
	typ := parts[2]
	type consumer struct {
		durable string
		h       event.Handler
	}
	var cs []consumer
	switch typ {
	case "Observation":
		cs = []consumer{{worklist.DurableObservation, r.svc.HandleObservation}, {pathway.DurableObservation, r.pw.HandleObservation}}
	case "EpisodeOfCare":
		cs = []consumer{{worklist.DurableEpisode, r.svc.HandleEpisode}}
	case "Task":
		cs = []consumer{{worklist.DurableTask, r.svc.HandleTask}, {pathway.DurableTask, r.pw.HandleTask}}
	case "Encounter":
		cs = []consumer{{pathway.DurableEncounter, r.pw.HandleEncounter}}
	}
	for _, c := range cs {
		if err := event.Inbox(r.s, c.durable, c.h)(r.ctx, m); err != nil {
			r.t.Fatalf("%s: %v", c.durable, err)
		}
	}
}

// fireTimers fires the timers due at the fake clock's time, as the
// platform's runner does.
func (r *rig) fireTimers() int {
	r.t.Helper()
	n := 0
	for {
		ts, err := r.s.Timers().Claim(r.ctx, "rig", r.clk.Now(), time.Minute, 64)
		if err != nil {
			r.t.Fatal(err)
		}
		if len(ts) == 0 {
			return n
		}
		hs := r.svc.TimerHandlers()
		for k, h := range r.pw.TimerHandlers() {
			hs[k] = h
		}
		for _, tm := range ts {
			h := hs[tm.Kind]
			if h == nil {
				r.t.Fatalf("no handler for timer %s", tm.Kind)
			}
			r.tx(func(tx store.Tx) error {
				if err := tx.CompleteTimer(r.ctx, tm.Key, "rig"); err != nil {
					return err
				}
				return h(r.ctx, tx, tm)
			})
			n++
		}
		r.flush()
	}
}

// advance moves the clock, fires due timers and delivers their events.
func (r *rig) advance(d time.Duration) {
	r.t.Helper()
	r.clk.Advance(d)
	r.fireTimers()
	r.flush()
}

func (r *rig) patient() string {
	r.t.Helper()
	id := uuid.NewString()
	r.tx(func(tx store.Tx) error {
		_, err := tx.Create(r.ctx, tenant, mustJSON(map[string]any{"resourceType": "Patient", "id": id, "birthDate": "1948-03-15"}))
		return err
	})
	return id
}

// discharge announces a heart-failure discharge home of the patient, as
// intake does, and lets the pathway open the episode. It returns the
// episode.
func (r *rig) discharge(patient string) map[string]any {
	r.t.Helper()
	r.dischargeMsg(patient)
	r.flush()
	eps := r.search("EpisodeOfCare", refParam("patient", "Patient/"+patient))
	if len(eps) != 1 {
		r.t.Fatalf("episodes: %d, want 1", len(eps))
	}
	return eps[0]
}

// dischargeMsg delivers intake's event of a heart-failure discharge home.
func (r *rig) dischargeMsg(patient string) {
	r.t.Helper()
	r.dischargeMsgAt(patient, r.clk.Now())
}

// dischargeMsgAt delivers intake's event of a heart-failure discharge home
// at at (before now: a discharge notified late).
func (r *rig) dischargeMsgAt(patient string, at time.Time) {
	r.t.Helper()
	enc := uuid.NewString()
	e := map[string]any{"resourceType": "Encounter", "id": enc, "status": "finished",
		"class":   map[string]any{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
		"subject": map[string]any{"reference": "Patient/" + patient},
		"period":  map[string]any{"start": at.AddDate(0, 0, -8).Format(time.RFC3339), "end": at.Format(time.RFC3339)},
		"serviceProvider": map[string]any{"reference": "Organization/" + directory.DevHospital,
			"identifier": map[string]any{"system": directory.SystemFINESS, "value": directory.DevHospitalFINES}},
		"hospitalization": map[string]any{"dischargeDisposition": map[string]any{"coding": []any{map[string]any{
			"system": "http://terminology.hl7.org/CodeSystem/discharge-disposition", "code": "home"}}}},
		"extension": []any{
			map[string]any{"url": intake.ExtMedicalUnit, "valueIdentifier": map[string]any{"system": directory.SystemUF + "/" + directory.DevHospitalFINES, "value": directory.DevCardioUF}},
			map[string]any{"url": intake.ExtModeSortie, "valueCode": "8"}}}
	entries := []any{
		map[string]any{"resource": e},
		map[string]any{"resource": map[string]any{"resourceType": "Patient", "id": patient, "birthDate": "1948-03-15"}},
		map[string]any{"resource": map[string]any{"resourceType": "Condition", "id": "c-" + enc,
			"code":    map[string]any{"coding": []any{map[string]any{"system": "http://hl7.org/fhir/sid/icd-10", "code": "I50.1"}}},
			"subject": map[string]any{"reference": "Patient/" + patient}}},
	}
	r.deliver(bus.Msg{Subject: bus.ResourceSubject(tenant, "Encounter", bus.OpUpdated),
		Data:   mustJSON(map[string]any{"resourceType": "Bundle", "type": "history", "entry": entries}),
		Header: map[string]string{bus.HeaderMsgID: "Encounter/" + enc + "/_history/1", bus.HeaderTenant: tenant, bus.HeaderIntakeEvent: intake.KindDischarge}})
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }

func refParam(name, ref string) store.Param {
	return store.Param{Name: name, Kind: store.KindReference, Values: []store.Value{{Ref: ref}}}
}

func tokenParam(name, code string) store.Param {
	return store.Param{Name: name, Kind: store.KindToken, Values: []store.Value{{Code: code}}}
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

func (r *rig) read(typ, id string) (map[string]any, int64) {
	r.t.Helper()
	res, err := r.s.Read(r.ctx, typ, id)
	if err != nil {
		r.t.Fatalf("read %s/%s: %v", typ, id, err)
	}
	var m map[string]any
	_ = json.Unmarshal(res.Body, &m)
	return m, res.Version
}

// task returns the patient's first task of an action code.
func (r *rig) task(patient, code string) map[string]any {
	r.t.Helper()
	for _, t := range r.search("Task", refParam("patient", "Patient/"+patient), tokenParam("code", code)) {
		return t
	}
	r.t.Fatalf("no task %s for %s", code, patient)
	return nil
}

// assign sets a task's owner, as the teams service does.
func (r *rig) assign(taskID, role string) {
	r.t.Helper()
	res, err := r.s.Read(r.ctx, "Task", taskID)
	if err != nil {
		r.t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(res.Body, &m)
	m["owner"] = map[string]any{"reference": "PractitionerRole/" + role}
	delete(m, "meta")
	r.tx(func(tx store.Tx) error {
		nr, err := tx.Update(r.ctx, tenant, mustJSON(m), res.Version)
		if err != nil {
			return err
		}
		return event.Emit(r.ctx, tx, event.New(tenant, bus.OpUpdated, "", nr))
	})
	r.flush()
}

// actor finds a development account in the directory.
func (r *rig) actor(login string) directory.Actor {
	r.t.Helper()
	a, err := (&directory.Resolver{Store: r.s}).Person(r.ctx, tenant, login)
	if err != nil {
		r.t.Fatalf("actor %s: %v", login, err)
	}
	return a
}

// server serves the worklist's and pathway's routes with the real token
// check of the development identity provider.
type server struct {
	*httptest.Server
	idp *devidp.Provider
}

func (r *rig) server() *server {
	r.t.Helper()
	var users []devidp.User
	for _, a := range directory.DevAccounts {
		users = append(users, devidp.User{Login: a.Login, Password: a.Login, Name: a.Login})
	}
	idp, err := devidp.New(devidp.Config{DataDir: r.dir, Issuer: "http://passerelle.test/dev-idp", Audience: "passerelle", Users: users,
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		r.t.Fatal(err)
	}
	v, err := auth.NewVerifier(r.ctx, auth.Config{Issuer: idp.Issuer(), ClientID: "passerelle", HTTPClient: idp.HTTPClient()})
	if err != nil {
		r.t.Fatal(err)
	}
	authn := fhirapi.Authenticate(v, &directory.Resolver{Store: r.s}, tenant, nil)
	mux := http.NewServeMux()
	r.svc.Register(mux, authn)
	r.pw.Register(mux, authn)
	srv := httptest.NewServer(mux)
	r.t.Cleanup(srv.Close)
	return &server{srv, idp}
}

type response struct {
	status int
	header http.Header
	body   map[string]any
}

// do sends a request as login ("" for none).
func (s *server) do(t testing.TB, login, method, path string, body any, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		switch b := body.(type) {
		case string:
			rd = strings.NewReader(b)
		default:
			rd = strings.NewReader(string(mustJSON(b)))
		}
	}
	req, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/fhir+json")
	if login != "" {
		tok, err := s.idp.Mint(login, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	out := response{status: res.StatusCode, header: res.Header}
	_ = json.Unmarshal(b, &out.body)
	return out
}

// expressions returns the expressions of an OperationOutcome.
func expressions(oo map[string]any) []string {
	var out []string
	for _, i := range oo["issue"].([]any) {
		for _, e := range i.(map[string]any)["expression"].([]any) {
			out = append(out, e.(string))
		}
	}
	return out
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

func ptr(f float64) *float64 { return &f }
