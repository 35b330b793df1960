package ui

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/passerelle-sante/passerelle/internal/testenv"
	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/clock"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/store"
	"github.com/passerelle-sante/passerelle/pkg/store/postgres"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlite"
	"github.com/passerelle-sante/passerelle/pkg/store/sqlstore"
	"github.com/passerelle-sante/passerelle/services/worklist"
)

// The test implementations below stand in for pkg/websession, the
// worklist's Actions, the teams service's reassignment, the bus feed and
// the intake: small, but writing to the real store.

const tenant = "demo"

// sessions is a session layer for tests: the cookie "test_session" names
// the login; the CSRF token is derived from it.
type sessions struct{ dir *directory.Resolver }

const sessionCookie = "test_session"

func (s sessions) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := r.Cookie(sessionCookie); err == nil {
			a, err := s.dir.Person(r.Context(), tenant, c.Value)
			if err != nil {
				http.Error(w, err.Error(), http.StatusForbidden)
				return
			}
			r = r.WithContext(access.WithActor(r.Context(), a))
		}
		next.ServeHTTP(w, r)
	})
}

func (s sessions) CSRFToken(r *http.Request) string {
	c, err := r.Cookie(sessionCookie)
	if err != nil {
		return ""
	}
	return "csrf-" + c.Value
}

func (s sessions) CheckCSRF(r *http.Request) error {
	if tok := s.CSRFToken(r); tok == "" || r.PostFormValue("csrf_token") != tok {
		return fmt.Errorf("bad CSRF token")
	}
	return nil
}

// testLogin is the test sessions' login endpoint: it sets the session and
// goes to the worklist, as the OIDC callback does.
func testLogin(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: sessionCookie, Value: r.URL.Query().Get("user"), Path: "/", HttpOnly: true, SameSite: http.SameSiteLaxMode})
	http.Redirect(w, r, "/worklist", http.StatusSeeOther)
}

// feed is an in-memory bus.
type feed struct {
	mu   sync.Mutex
	subs map[chan Event]bool
}

func (f *feed) Subscribe(ctx context.Context, _ directory.Actor) (<-chan Event, func()) {
	ch := make(chan Event, 16)
	f.mu.Lock()
	if f.subs == nil {
		f.subs = map[chan Event]bool{}
	}
	f.subs[ch] = true
	f.mu.Unlock()
	return ch, func() {
		f.mu.Lock()
		delete(f.subs, ch)
		f.mu.Unlock()
	}
}

func (f *feed) publish(e Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- e:
		default:
		}
	}
}

func (f *feed) subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// actions is a small worklist: the task state machine for the owner, visits
// as Observations, and the weight alert as a Flag with a review task for
// the patient's GP.
type actions struct {
	st    store.Store
	clock clock.Clock
	feed  *feed
	gp    string // the GP's PractitionerRole reference
}

type obj = map[string]any

func conflict(fr, en string) error { return fhir.Errorf(fhir.Conflict, "conflict", fr, en) }

func (a *actions) Transition(ctx context.Context, actor directory.Actor, taskID string, ifMatch int64, action, reason string) (store.Resource, error) {
	var out store.Resource
	err := a.st.Tx(ctx, func(tx store.Tx) error {
		res, err := tx.Read(ctx, "Task", taskID)
		if err != nil {
			return err
		}
		var t obj
		_ = json.Unmarshal(res.Body, &t)
		owner, _ := t["owner"].(obj)["reference"].(string)
		if !slices.ContainsFunc(actor.Roles, func(r directory.Role) bool { return "PractitionerRole/"+r.ID == owner }) {
			return fhir.Errorf(fhir.Forbidden, "forbidden", "Seul le responsable de la tâche la fait avancer", "Only the task's owner moves it along")
		}
		next := map[string]map[string]string{
			"requested":   {"accept": "accepted", "decline": "rejected"},
			"accepted":    {"start": "in-progress", "decline": "rejected"},
			"in-progress": {"complete": "completed", "fail": "failed"},
		}[t["status"].(string)][action]
		if next == "" {
			return conflict(fmt.Sprintf("Impossible de passer une tâche « %s » par « %s »", t["status"], action),
				fmt.Sprintf("A %q task cannot be moved by %q", t["status"], action))
		}
		t["status"] = next
		if reason != "" {
			t["statusReason"] = obj{"text": reason}
		}
		body, _ := json.Marshal(t)
		out, err = tx.Update(ctx, tenant, body, ifMatch)
		return err
	})
	return out, err
}

func quantity(code, display string, v float64, unit, ucum string) obj {
	return obj{"code": obj{"coding": []any{obj{"system": "http://loinc.org", "code": code, "display": display}}},
		"valueQuantity": obj{"value": v, "unit": unit, "system": "http://unitsofmeasure.org", "code": ucum}}
}

func (a *actions) RecordVisit(ctx context.Context, actor directory.Actor, v worklist.Visit) ([]store.Resource, error) {
	if err := (access.Policy{}).Patient(ctx, a.st, actor, v.Patient); err != nil {
		return nil, err
	}
	now := a.clock.Now()
	var out []store.Resource
	var alert *store.Resource
	err := a.st.Tx(ctx, func(tx store.Tx) error {
		out, alert = nil, nil
		base := func(m obj) obj {
			m["resourceType"], m["status"], m["subject"] = "Observation", "final", obj{"reference": v.Patient}
			m["effectiveDateTime"], m["performer"] = now.Format(time.RFC3339), []any{obj{"reference": actor.Reference()}}
			m["basedOn"] = []any{obj{"reference": "Task/" + v.TaskID}}
			return m
		}
		var obs []obj
		if v.WeightKg != nil {
			obs = append(obs, base(quantity(codeWeight, "Body weight", *v.WeightKg, "kg", "kg")))
		}
		if v.HeartRate != nil {
			obs = append(obs, base(quantity("8867-4", "Heart rate", *v.HeartRate, "/min", "/min")))
		}
		if v.Systolic != nil {
			obs = append(obs, base(quantity("8480-6", "Systolic blood pressure", *v.Systolic, "mm[Hg]", "mm[Hg]")))
		}
		if v.Diastolic != nil {
			obs = append(obs, base(quantity("8462-4", "Diastolic blood pressure", *v.Diastolic, "mm[Hg]", "mm[Hg]")))
		}
		for _, o := range obs {
			body, _ := json.Marshal(o)
			r, err := tx.Create(ctx, tenant, body)
			if err != nil {
				return err
			}
			out = append(out, r)
		}
		// The visit form's answers, as the real worklist keeps them.
		var items []any
		answer := func(link string, a obj) { items = append(items, obj{"linkId": link, "answer": []any{a}}) }
		for _, q := range []struct {
			link string
			v    *float64
		}{{"weight-kg", v.WeightKg}, {"systolic", v.Systolic}, {"diastolic", v.Diastolic}, {"heart-rate", v.HeartRate}} {
			if q.v != nil {
				answer(q.link, obj{"valueQuantity": obj{"value": *q.v}})
			}
		}
		if v.Symptoms != "" {
			answer("symptoms", obj{"valueString": v.Symptoms})
		}
		if v.Note != "" {
			answer("note", obj{"valueString": v.Note})
		}
		if _, err := tx.Create(ctx, tenant, mustJSON(obj{"resourceType": "QuestionnaireResponse", "status": "completed",
			"questionnaire": worklist.VisitQuestionnaire, "subject": obj{"reference": v.Patient}, "authored": now.Format(time.RFC3339),
			"author": obj{"reference": "PractitionerRole/" + actor.Roles[0].ID}, "item": items})); err != nil {
			return err
		}
		if v.Complete {
			// The real worklist completes the task in the visit's
			// transaction, from requested or accepted as well.
			res, err := tx.Read(ctx, "Task", v.TaskID)
			if err != nil {
				return err
			}
			var t obj
			_ = json.Unmarshal(res.Body, &t)
			if st := t["status"]; st != "requested" && st != "accepted" && st != "in-progress" {
				return conflict("Tâche close", "Task closed")
			}
			t["status"] = "completed"
			if _, err := tx.Update(ctx, tenant, mustJSON(t), res.Version); err != nil {
				return err
			}
		}
		if v.WeightKg == nil {
			return nil
		}
		page, err := a.st.Search(ctx, store.Query{Tenant: tenant, Type: "Observation", Params: []store.Param{
			{Name: "patient", Kind: store.KindReference, Values: []store.Value{{Ref: v.Patient}}},
			{Name: "code", Kind: store.KindToken, Values: []store.Value{{Code: codeWeight}}}}})
		if err != nil {
			return err
		}
		low := math.Inf(1)
		for _, p := range weights(page.Resources) {
			if now.Sub(p.At) <= 3*24*time.Hour {
				low = math.Min(low, p.Kg)
			}
		}
		if *v.WeightKg-low < 2-1e-9 {
			return nil
		}
		flag, err := tx.Create(ctx, tenant, mustJSON(obj{"resourceType": "Flag", "status": "active",
			"code":    obj{"text": fmt.Sprintf("Prise de poids de %s kg en 3 jours", formatNumber("fr", math.Round((*v.WeightKg-low)*10)/10))},
			"subject": obj{"reference": v.Patient}, "period": obj{"start": now.Format(time.RFC3339)},
			"author": obj{"reference": actor.Reference()}}))
		if err != nil {
			return err
		}
		review, err := tx.Create(ctx, tenant, mustJSON(obj{"resourceType": "Task", "status": "requested", "intent": "order",
			"description": "Examiner l'alerte de poids", "for": obj{"reference": v.Patient},
			"focus": obj{"reference": "Flag/" + flag.ID}, "owner": obj{"reference": a.gp},
			"performerType": []any{obj{"coding": []any{obj{"system": directory.SystemTeamRole, "code": "gp"}}}},
			"restriction":   obj{"period": obj{"start": now.Format(time.RFC3339), "end": now.Add(24 * time.Hour).Format(time.RFC3339)}}}))
		if err != nil {
			return err
		}
		out = append(out, flag, review)
		alert = &flag
		return nil
	})
	if err != nil {
		return nil, err
	}
	if alert != nil {
		a.feed.publish(Event{Kind: "alert", Resource: "Flag/" + alert.ID, Owners: []string{a.gp}})
	}
	return out, nil
}

func (a *actions) Review(ctx context.Context, actor directory.Actor, taskID string, ifMatch int64, decision, note string) (store.Resource, error) {
	var out store.Resource
	err := a.st.Tx(ctx, func(tx store.Tx) error {
		res, err := tx.Read(ctx, "Task", taskID)
		if err != nil {
			return err
		}
		var t obj
		_ = json.Unmarshal(res.Body, &t)
		t["status"] = "completed"
		t["output"] = []any{obj{"type": obj{"text": "decision"}, "valueCodeableConcept": obj{"coding": []any{obj{"code": decision}}}}}
		t["note"] = []any{obj{"authorReference": obj{"reference": actor.Reference()}, "text": note}}
		out, err = tx.Update(ctx, tenant, mustJSON(t), ifMatch)
		return err
	})
	return out, err
}

func (a *actions) Acknowledge(ctx context.Context, actor directory.Actor, flagID string) error {
	return a.st.Tx(ctx, func(tx store.Tx) error {
		res, err := tx.Read(ctx, "Flag", flagID)
		if err != nil {
			return err
		}
		var f obj
		_ = json.Unmarshal(res.Body, &f)
		if f["status"] != "active" {
			return conflict("Alerte déjà prise en compte", "Alert already acknowledged")
		}
		f["status"] = "inactive"
		_, err = tx.Update(ctx, tenant, mustJSON(f), res.Version)
		return err
	})
}

// reassigner sets the owner, as the teams service will.
type reassigner struct{ st store.Store }

func (ra reassigner) Reassign(ctx context.Context, _ directory.Actor, taskID, to string) error {
	return ra.st.Tx(ctx, func(tx store.Tx) error {
		res, err := tx.Read(ctx, "Task", taskID)
		if err != nil {
			return err
		}
		var t obj
		_ = json.Unmarshal(res.Body, &t)
		t["owner"], t["status"] = obj{"reference": to}, "requested"
		_, err = tx.Update(ctx, tenant, mustJSON(t), res.Version)
		return err
	})
}

// intakeFunc adapts a function to Intake.
type intakeFunc func(ctx context.Context, a directory.Actor, b []byte) ([]byte, error)

func (f intakeFunc) ProcessMessage(ctx context.Context, a directory.Actor, b []byte) ([]byte, error) {
	return f(ctx, a, b)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

// rig is a UI over a real store with the development directory and one
// heart-failure patient followed by ide.martin and dr.bernard.
type rig struct {
	t       testing.TB
	st      store.Store
	clock   *clock.Fake
	feed    *feed
	ui      *UI
	srv     *httptest.Server
	intake  []byte
	intakeF func(ctx context.Context, a directory.Actor, b []byte) ([]byte, error)
}

// now is the rig's time: Monday 5 October 2026, 10:00 in Paris.
var now = time.Date(2026, 10, 5, 10, 0, 0, 0, clock.Paris)

func openSQLite(t testing.TB) store.Store {
	t.Helper()
	s, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "db"), sqlite.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func openPostgres(t testing.TB) store.Store {
	t.Helper()
	s, err := postgres.Open(context.Background(), testenv.PostgresURL(t), postgres.Options{Options: sqlstore.Options{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func newRig(t testing.TB, st store.Store) *rig {
	t.Helper()
	return build(t, st, func(_ *rig, dir *directory.Resolver, _ *http.ServeMux, _ string) Sessions { return sessions{dir: dir} })
}

// build makes a rig whose sessions come from login, given the rig's mux
// and base URL to add its own routes.
func build(t testing.TB, st store.Store, login func(r *rig, dir *directory.Resolver, mux *http.ServeMux, base string) Sessions) *rig {
	t.Helper()
	ctx := context.Background()
	if _, err := directory.SeedDev(ctx, st, tenant); err != nil {
		t.Fatal(err)
	}
	r := &rig{t: t, st: st, clock: clock.NewFake(now), feed: &feed{}}
	r.seed()
	dir := &directory.Resolver{Store: st, Now: r.clock.Now}
	r.srv = httptest.NewUnstartedServer(nil)
	mux := http.NewServeMux()
	base := "http://" + r.srv.Listener.Addr().String()
	r.ui = New(Deps{Store: st, Sessions: login(r, dir, mux, base), Feed: r.feed, Clock: r.clock,
		Actions:    &actions{st: st, clock: r.clock, feed: r.feed, gp: "PractitionerRole/pr-dr-bernard"},
		Reassigner: reassigner{st: st},
		Outcomes:   outcomesFigures{},
		Intake: intakeFunc(func(ctx context.Context, a directory.Actor, b []byte) ([]byte, error) {
			if r.intakeF != nil {
				return r.intakeF(ctx, a, b)
			}
			r.intake = b
			return []byte(`{"resourceType":"Bundle","type":"message"}`), nil
		}),
		Log: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Heartbeat: time.Hour})
	r.ui.Register(mux)
	mux.HandleFunc("GET /test-login", testLogin)
	r.srv.Config.Handler = mux
	r.srv.Start()
	t.Cleanup(r.srv.Close)
	return r
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}

func (r *rig) create(m obj) store.Resource {
	r.t.Helper()
	var out store.Resource
	err := r.st.Tx(context.Background(), func(tx store.Tx) error {
		var err error
		out, err = tx.Create(context.Background(), tenant, mustJSON(m))
		return err
	})
	if err != nil {
		r.t.Fatal(err)
	}
	return out
}

func day(d int, hour int) string {
	return time.Date(2026, 10, 5+d, hour, 0, 0, 0, clock.Paris).Format(time.RFC3339)
}

func task(id, owner, role, status, title string, due string) obj {
	m := obj{"resourceType": "Task", "id": id, "status": status, "intent": "order", "description": title,
		"code": obj{"coding": []any{obj{"system": "https://passerelle.health/fhir/CodeSystem/pathway-action", "code": id}}},
		"for":  obj{"reference": "Patient/p1"}, "focus": obj{"reference": "CarePlan/cp1"},
		"performerType": []any{obj{"coding": []any{obj{"system": directory.SystemTeamRole, "code": role}}}},
		"restriction":   obj{"period": obj{"start": day(-3, 8), "end": due}}}
	if owner != "" {
		m["owner"] = obj{"reference": owner}
	}
	return m
}

func (r *rig) seed() {
	letter := "Sortie du 03/10/2026. Poids de sortie 74,6 kg. Furosémide 40 mg le matin."
	r.create(obj{"resourceType": "Patient", "id": "p1",
		"name":   []any{obj{"use": "official", "family": "TESTDURAND", "given": []any{"MARIE", "CLAIRE"}}},
		"gender": "female", "birthDate": "1948-03-15",
		"telecom": []any{obj{"system": "phone", "value": "+33 4 77 00 00 01"}},
		"address": []any{obj{"line": []any{"3 place de l'Hôtel de Ville"}, "postalCode": "42300", "city": "Roanne"}}})
	r.create(obj{"resourceType": "Condition", "id": "c1", "subject": obj{"reference": "Patient/p1"},
		"code": obj{"coding": []any{obj{"system": systemICD10, "code": "I50.1", "display": "Insuffisance ventriculaire gauche"}}}})
	r.create(obj{"resourceType": "DocumentReference", "id": "d1", "status": "current", "subject": obj{"reference": "Patient/p1"},
		"type": obj{"text": "Lettre de liaison de sortie"}, "date": "2026-10-03T15:10:00+02:00",
		"content": []any{obj{"attachment": obj{"contentType": "text/plain; charset=utf-8", "title": "Lettre de liaison",
			"data": b64(letter)}}}})
	r.create(obj{"resourceType": "EpisodeOfCare", "id": "ep1", "status": "active", "patient": obj{"reference": "Patient/p1"},
		"period":    obj{"start": "2026-10-03T15:00:00+02:00"},
		"extension": []any{obj{"url": "https://passerelle.health/fhir/StructureDefinition/episode-pathway", "valueCanonical": "https://passerelle.health/fhir/PlanDefinition/hf-post-discharge|1"}}})
	r.create(obj{"resourceType": "CareTeam", "id": "ct-ep1", "status": "active", "subject": obj{"reference": "Patient/p1"},
		"participant": []any{
			obj{"role": []any{obj{"coding": []any{obj{"system": directory.SystemTeamRole, "code": "nurse"}}}}, "member": obj{"reference": "PractitionerRole/pr-ide-martin"}},
			obj{"role": []any{obj{"coding": []any{obj{"system": directory.SystemTeamRole, "code": "gp"}}}}, "member": obj{"reference": "PractitionerRole/pr-dr-bernard"}},
			obj{"role": []any{obj{"coding": []any{obj{"system": directory.SystemTeamRole, "code": "pharmacist"}}}}, "member": obj{"reference": "Organization/pharmacie-demo"}},
		}})
	r.create(task("t-first", "PractitionerRole/pr-ide-martin", "nurse", "requested", "Premier contact et bilan initial", day(1, 23)))
	r.create(task("t-late", "PractitionerRole/pr-ide-martin", "nurse", "accepted", "Éducation thérapeutique", day(-1, 23)))
	r.create(task("t-gp", "PractitionerRole/pr-dr-bernard", "gp", "requested", "Consultation du médecin traitant", day(4, 23)))
	r.create(task("t-free", "", "pharmacist", "requested", "Conciliation médicamenteuse", day(3, 23)))
	r.create(task("t-declined", "PractitionerRole/pr-ide-leroy", "nurse", "rejected", "Visite infirmière semaine 2", day(9, 23)))
	r.create(obj{"resourceType": "Observation", "id": "w0", "status": "final", "subject": obj{"reference": "Patient/p1"},
		"effectiveDateTime": day(-2, 9), "code": obj{"coding": []any{obj{"system": "http://loinc.org", "code": codeWeight}}},
		"valueQuantity": obj{"value": 74.6, "unit": "kg", "system": "http://unitsofmeasure.org", "code": "kg"}})
	r.create(obj{"resourceType": "PlanDefinition", "id": "hf-post-discharge", "status": "active", "version": "1",
		"url": "https://passerelle.health/fhir/PlanDefinition/hf-post-discharge", "title": "Insuffisance cardiaque — retour à domicile",
		"action": []any{obj{"title": "Premier contact", "participant": []any{obj{"type": "practitioner",
			"role": obj{"coding": []any{obj{"system": directory.SystemTeamRole, "code": "nurse"}}}}}}}})
}

// client is a browser-like client logged in as user (no session when
// user is empty), following redirects with its cookies.
func (r *rig) client(user string) *http.Client {
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(r.srv.URL)
	if user != "" {
		jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: user, Path: "/"}})
	}
	return &http.Client{Jar: jar}
}

func (r *rig) get(c *http.Client, path string, header ...string) (int, string) {
	r.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, r.srv.URL+path, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// post submits a form as the logged-in user, with the session's CSRF
// token unless the form sets one, following the 303.
func (r *rig) post(c *http.Client, user, path string, form url.Values) (int, string, *http.Response) {
	r.t.Helper()
	if _, ok := form["csrf_token"]; !ok {
		form.Set("csrf_token", "csrf-"+user)
	}
	var first *http.Response
	c2 := *c
	c2.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		if first == nil {
			first = req.Response
		}
		return nil
	}
	resp, err := c2.PostForm(r.srv.URL+path, form)
	if err != nil {
		r.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if first == nil {
		first = resp
	}
	return resp.StatusCode, string(b), first
}

func (r *rig) read(typ, id string) obj {
	r.t.Helper()
	res, err := r.st.Read(context.Background(), typ, id)
	if err != nil {
		r.t.Fatal(err)
	}
	var m obj
	_ = json.Unmarshal(res.Body, &m)
	m["_version"] = res.Version
	return m
}
