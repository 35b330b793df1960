package ui

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	fhirprofiles "github.com/passerelle-sante/passerelle/fhir-profiles"
	"github.com/passerelle-sante/passerelle/pkg/access"
	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/fhir"
	"github.com/passerelle-sante/passerelle/pkg/fhir/profile"
	"github.com/passerelle-sante/passerelle/pkg/fhir/validate"
	"github.com/passerelle-sante/passerelle/pkg/fhirapi"
	"github.com/passerelle-sante/passerelle/services/intake"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func contains(t *testing.T, name, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s: page lacks %q", name, w)
		}
	}
}

func lacks(t *testing.T, name, body string, unwanted ...string) {
	t.Helper()
	for _, w := range unwanted {
		if strings.Contains(body, w) {
			t.Errorf("%s: page shows %q", name, w)
		}
	}
}

// TestPages renders every page in both languages.
func TestPages(t *testing.T) {
	r := newRig(t, openSQLite(t))
	cases := []struct {
		name, user, path string
		status           int
		fr, en           []string
		absent           []string
	}{
		{"home", "", "/", 200, []string{"Se connecter", `lang="fr"`}, []string{"Log in", `lang="en"`}, nil},
		{"worklist", "ide.martin", "/worklist", 200,
			[]string{"Mes tâches", `data-task-id="t-first"`, `data-task-id="t-late"`, "En retard", "TESTDURAND Marie Claire", "15/03/1948",
				`<button type="submit" name="action" value="accept"`, `value="decline"`, `value="start"`, "06/10/2026", `name="csrf_token" value="csrf-ide.martin"`},
			[]string{"My tasks", "Overdue", `value="accept"`, "Accept"},
			[]string{`data-task-id="t-gp"`, `data-task-id="t-free"`, `data-task-id="t-declined"`}},
		{"task", "ide.martin", "/tasks/t-first", 200,
			[]string{"Premier contact et bilan initial", "Résumé du patient", "I50.1 — Insuffisance ventriculaire gauche", "Poids de sortie 74,6 kg",
				"Équipe de soins", "BERNARD", "Louis", "Pharmacie Démo", "4 77 00 00 01", "<svg", "Courbe de poids",
				`name="weight-kg"`, `name="systolic"`, `name="diastolic"`, `name="heart-rate"`, `name="symptoms"`, `for="weight-kg"`,
				"hf-post-discharge", "03/10/2026"},
			[]string{"Patient summary", "Care team", "Weight curve", "Discharge letter", "Weight (kg)"}, nil},
		{"task of another's patient", "pharma.durand", "/tasks/t-first", 403,
			[]string{"Vous ne faites pas partie de l&#39;équipe de soins de ce patient"}, []string{"You are not in this patient&#39;s care team"},
			[]string{"TESTDURAND"}},
		{"unknown task", "ide.martin", "/tasks/nope", 404, []string{"Ressource introuvable"}, []string{"Resource not found"}, nil},
		{"alerts empty", "dr.bernard", "/alerts", 200, []string{"Aucune alerte."}, []string{"No alert."}, nil},
		{"coordination", "idec.moreau", "/coordination", 200,
			[]string{"Tâches à traiter", `data-task-id="t-free"`, `data-task-id="t-declined"`, `data-task-id="t-late"`, "Non assignée", "Refusée",
				`action="/tasks/t-free/reassign"`, "Pharmacien", "DURAND", "Épisodes de la CPTS", "TESTDURAND Marie Claire", "hf-post-discharge"},
			[]string{"Tasks needing attention", "Unassigned", "Declined", "Episodes of the CPTS"},
			[]string{`data-task-id="t-first"`}},
		{"coordination refused to a nurse", "ide.martin", "/coordination", 403,
			[]string{"réservée à la coordination"}, []string{"for the CPTS&#39;s coordination only"}, nil},
		{"directory", "coord.cpts", "/directory", 200, []string{"Membres de la CPTS", "Claire MARTIN", "IDE coordinatrice référente", "42187"},
			[]string{"Members of the CPTS", "Referent coordinating nurse"}, nil},
		{"templates", "coord.cpts", "/templates", 200, []string{"Insuffisance cardiaque — retour à domicile", "Premier contact", "Infirmier(e)"},
			[]string{"Pathway actions", "Nurse"}, nil},
		{"discharge form", "coord.cpts", "/discharge", 200, []string{"Déclarer une sortie", "CH Démo — 420000002", `for="family"`, "I50.9"},
			[]string{"Declare a discharge", "Birth name", "Heart failure, unspecified"}, nil},
	}
	for _, tc := range cases {
		for _, lang := range []string{"fr", "en"} {
			t.Run(tc.name+"/"+lang, func(t *testing.T) {
				c := r.client(tc.user)
				status, body := r.get(c, tc.path+"?lang="+lang)
				if status != tc.status {
					t.Fatalf("status %d, want %d\n%s", status, tc.status, body)
				}
				if lang == "fr" {
					contains(t, tc.name, body, tc.fr...)
				} else {
					contains(t, tc.name, body, tc.en...)
					contains(t, tc.name, body, `lang="en"`)
				}
				lacks(t, tc.name, body, tc.absent...)
			})
		}
	}
}

func TestLanguage(t *testing.T) {
	r := newRig(t, openSQLite(t))
	c := r.client("ide.martin")
	if _, body := r.get(c, "/worklist", "Accept-Language", "en-GB,en;q=0.9,fr;q=0.5"); !strings.Contains(body, "My tasks") {
		t.Error("Accept-Language en-GB: not in English")
	}
	if _, body := r.get(c, "/worklist", "Accept-Language", "fr-FR,fr;q=0.9,en;q=0.8"); !strings.Contains(body, "Mes tâches") {
		t.Error("Accept-Language fr-FR: not in French")
	}
	if _, body := r.get(c, "/worklist", "Accept-Language", "de"); !strings.Contains(body, "Mes tâches") {
		t.Error("German: French is the default")
	}
	// ?lang= is remembered for the next pages.
	r.get(c, "/worklist?lang=en")
	if _, body := r.get(c, "/alerts"); !strings.Contains(body, "Alerts") || !strings.Contains(body, `lang="en"`) {
		t.Error("?lang=en not remembered")
	}
}

func TestLoginRequired(t *testing.T) {
	r := newRig(t, openSQLite(t))
	c := r.client("")
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	for _, path := range []string{"/worklist", "/tasks/t-first", "/alerts", "/coordination", "/discharge"} {
		resp, err := c.Get(r.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next="+url.QueryEscape(path) {
			t.Errorf("%s without a session: %d %s", path, resp.StatusCode, resp.Header.Get("Location"))
		}
	}
	resp, err := c.PostForm(r.srv.URL+"/tasks/t-first/action", url.Values{"action": {"accept"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("POST without a session: %d", resp.StatusCode)
	}
	// A professional lands on the worklist.
	c = r.client("ide.martin")
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err = c.Get(r.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.Header.Get("Location") != "/worklist" {
		t.Errorf("/ for a professional: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
}

func TestTransitions(t *testing.T) {
	r := newRig(t, openSQLite(t))
	c := r.client("ide.martin")
	// accept: 303 back to the worklist, the task accepted, the message shown.
	status, body, first := r.post(c, "ide.martin", "/tasks/t-first/action", url.Values{"action": {"accept"}, "version": {"1"}, "back": {"/worklist"}})
	if first.StatusCode != http.StatusSeeOther || first.Header.Get("Location") != "/worklist" {
		t.Fatalf("accept answered %d %s", first.StatusCode, first.Header.Get("Location"))
	}
	if status != 200 || !strings.Contains(body, "Tâche acceptée.") {
		t.Errorf("after accept: %d, no confirmation", status)
	}
	if got := r.read("Task", "t-first")["status"]; got != "accepted" {
		t.Errorf("task status %v, want accepted", got)
	}
	// The message is shown once.
	if _, body := r.get(c, "/worklist"); strings.Contains(body, "Tâche acceptée.") {
		t.Error("confirmation shown twice")
	}
	// A stale version: the domain's error, in the page, in each language.
	for lang, want := range map[string]string{"fr": "La version indiquée (If-Match) n&#39;est plus la version courante",
		"en": "The version given in If-Match is not the current version"} {
		r.get(c, "/worklist?lang="+lang)
		_, body, first = r.post(c, "ide.martin", "/tasks/t-first/action", url.Values{"action": {"start"}, "version": {"1"}, "back": {"/tasks/t-first"}})
		if first.StatusCode != http.StatusSeeOther || first.Header.Get("Location") != "/tasks/t-first" {
			t.Errorf("stale version answered %d %s", first.StatusCode, first.Header.Get("Location"))
		}
		contains(t, "stale version "+lang, body, want, `class="flash error"`)
	}
	// Not allowed by the state machine: the domain's own message.
	r.get(c, "/worklist?lang=fr")
	_, body, _ = r.post(c, "ide.martin", "/tasks/t-first/action", url.Values{"action": {"complete"}, "version": {"2"}})
	contains(t, "complete an accepted task", body, "Impossible de passer une tâche « accepted » par « complete »")
	// start then complete.
	for i, action := range []string{"start", "complete"} {
		r.post(c, "ide.martin", "/tasks/t-first/action", url.Values{"action": {action}, "version": {[]string{"2", "3"}[i]}})
	}
	if got := r.read("Task", "t-first")["status"]; got != "completed" {
		t.Errorf("task status %v, want completed", got)
	}
	// decline with a reason.
	r.post(c, "ide.martin", "/tasks/t-late/action", url.Values{"action": {"decline"}, "version": {"1"}, "reason": {"En congés"}})
	if got := r.read("Task", "t-late"); got["status"] != "rejected" || got["statusReason"].(obj)["text"] != "En congés" {
		t.Errorf("declined task: %v %v", got["status"], got["statusReason"])
	}
	// Another's task: forbidden, said in the page.
	_, body, _ = r.post(c, "ide.martin", "/tasks/t-gp/action", url.Values{"action": {"accept"}, "version": {"1"}})
	contains(t, "another's task", body, "Seul le responsable de la tâche la fait avancer")
	// An unknown action never reaches the domain.
	_, body, _ = r.post(c, "ide.martin", "/tasks/t-gp/action", url.Values{"action": {"delete"}, "version": {"1"}})
	contains(t, "unknown action", body, "Action inconnue")
	// Without the CSRF token: 403, nothing changes.
	_, _, first = r.post(c, "ide.martin", "/tasks/t-gp/action", url.Values{"action": {"accept"}, "version": {"1"}, "csrf_token": {"forged"}})
	if first.StatusCode != http.StatusForbidden {
		t.Errorf("forged CSRF token: %d", first.StatusCode)
	}
	// An outside "back" is not followed.
	_, _, first = r.post(c, "ide.martin", "/tasks/t-gp/action", url.Values{"action": {"accept"}, "version": {"1"}, "back": {"//evil.example/x"}})
	if loc := first.Header.Get("Location"); loc != "/worklist" {
		t.Errorf("back to another site: %s", loc)
	}
}

func TestVisitAndAlert(t *testing.T) {
	r := newRig(t, openSQLite(t))
	nurse, gp := r.client("ide.martin"), r.client("dr.bernard")
	// Invalid numbers are refused with the field named, in both languages.
	for lang, want := range map[string]string{"fr": "Valeur numérique invalide pour « Poids (kg) »", "en": `Invalid number for &#34;Weight (kg)&#34;`} {
		r.get(nurse, "/worklist?lang="+lang)
		_, body, first := r.post(nurse, "ide.martin", "/tasks/t-first/visit", url.Values{"weight-kg": {"soixante"}, "systolic": {"131"}})
		if first.StatusCode != http.StatusBadRequest {
			t.Errorf("bad visit: %d, want 400 with the form", first.StatusCode)
		}
		contains(t, "bad weight "+lang, body, want, `value="soixante"`, `value="131"`)
	}
	r.get(nurse, "/worklist?lang=fr")
	_, body, _ := r.post(nurse, "ide.martin", "/tasks/t-first/visit", url.Values{"systolic": {"900"}})
	contains(t, "implausible pressure", body, "Valeur hors des limites plausibles pour « Pression systolique (mmHg) »")
	_, body, _ = r.post(nurse, "ide.martin", "/tasks/t-first/visit", url.Values{"oedema": {"enormous"}})
	contains(t, "unknown oedema", body, "Valeur hors des limites plausibles pour « Œdèmes »")
	_, body, _ = r.post(nurse, "ide.martin", "/tasks/t-first/visit", url.Values{})
	contains(t, "empty visit", body, "Saisissez au moins une mesure")
	// A normal visit.
	_, body, _ = r.post(nurse, "ide.martin", "/tasks/t-first/visit", url.Values{"weight-kg": {"75,1"}, "systolic": {"128"}, "diastolic": {"76"},
		"heart-rate": {"72"}, "symptoms": {"essoufflement à l'effort"}, "nyha": {"II"}})
	contains(t, "visit", body, "Visite enregistrée.", "75,1")
	if _, body := r.get(gp, "/alerts"); !strings.Contains(body, "Aucune alerte.") {
		t.Error("an alert without a weight gain")
	}
	// +2.5 kg in two days: an alert for the GP.
	r.clock.Advance(time.Hour)
	_, body, _ = r.post(nurse, "ide.martin", "/tasks/t-first/visit", url.Values{"weight-kg": {"77.1"}})
	contains(t, "visit with alert", body, "Alerte transmise à Dr Louis BERNARD : Prise de poids de 2,5 kg en 3 jours")
	_, body = r.get(gp, "/alerts")
	contains(t, "GP's alerts", body, "data-flag-id=", "Prise de poids de 2,5 kg en 3 jours", "TESTDURAND Marie Claire")
	// The referent coordinating nurse sees every alert of the CPTS.
	_, body = r.get(r.client("idec.moreau"), "/alerts")
	contains(t, "coordinating nurse's alerts", body, "Prise de poids de 2,5 kg en 3 jours")
	// The curve marks the alert point above the threshold.
	_, body = r.get(nurse, "/tasks/t-first")
	contains(t, "curve", body, `class="threshold"`, `fill="#b91c1c"`, "76,6")
	// The GP acknowledges it.
	_, gpBody := r.get(gp, "/alerts")
	i := strings.Index(gpBody, `data-flag-id="`)
	flagID := gpBody[i+len(`data-flag-id="`):]
	flagID = flagID[:strings.Index(flagID, `"`)]
	_, body, _ = r.post(gp, "dr.bernard", "/alerts/"+flagID+"/ack", url.Values{})
	contains(t, "acknowledged", body, "Alerte prise en compte.", "Aucune alerte.")
	_, body, _ = r.post(gp, "dr.bernard", "/alerts/"+flagID+"/ack", url.Values{})
	contains(t, "acknowledged twice", body, "Alerte déjà prise en compte")
}

func TestReassign(t *testing.T) {
	r := newRig(t, openSQLite(t))
	c := r.client("coord.cpts")
	_, body, first := r.post(c, "coord.cpts", "/tasks/t-free/reassign", url.Values{"to": {"PractitionerRole/pr-pharma-durand"}, "back": {"/coordination"}, "confirm": {"yes"}})
	if first.StatusCode != http.StatusSeeOther {
		t.Fatalf("reassign: %d", first.StatusCode)
	}
	contains(t, "reassign", body, "Tâche réassignée.")
	lacks(t, "reassign", body, `data-task-id="t-free"`)
	if got := r.read("Task", "t-free")["owner"]; got.(obj)["reference"] != "PractitionerRole/pr-pharma-durand" {
		t.Errorf("owner %v", got)
	}
	_, body, _ = r.post(c, "coord.cpts", "/tasks/t-free/reassign", url.Values{"to": {""}})
	contains(t, "reassign to nobody", body, "Choisissez le professionnel")
	// A nurse may not reassign.
	_, _, first = r.post(r.client("ide.martin"), "ide.martin", "/tasks/t-free/reassign", url.Values{"to": {"PractitionerRole/pr-ide-martin"}})
	if first.StatusCode != http.StatusForbidden {
		t.Errorf("nurse reassigns: %d", first.StatusCode)
	}
}

func TestDischargeForm(t *testing.T) {
	r := newRig(t, openSQLite(t))
	c := r.client("coord.cpts")
	form := url.Values{"facility": {"420000002"}, "family": {"Testlebon"}, "given": {"Jean Pierre"}, "birth-date": {"1950-02-01"},
		"gender": {"male"}, "ipp": {"IPP42"}, "visit-number": {"V42"}, "admission": {"2026-09-28"}, "discharge": {"2026-10-05T09:30"},
		"diagnosis": {"I50.1"}, "gp-rpps": {"10000001049"}, "gp-name": {"Anne Généraliste"}, "letter": {"Sortie sous furosémide."}, "postal-code": {"42300"}, "commune": {"42187"},
		"message-id": {"8f0e3a52-8c1e-4a57-9a0e-1d2c3b4a5001"}}
	_, body, first := r.post(c, "coord.cpts", "/discharge", form)
	if first.StatusCode != http.StatusSeeOther {
		t.Fatalf("discharge: %d\n%s", first.StatusCode, body)
	}
	contains(t, "discharge sent", body, "Sortie transmise à la CPTS.")
	var b struct {
		Type       string `json:"type"`
		Identifier struct{ Value string }
		Entry      []struct {
			Resource map[string]any `json:"resource"`
		} `json:"entry"`
	}
	if err := json.Unmarshal(r.intake, &b); err != nil {
		t.Fatal(err)
	}
	if b.Type != "message" || len(b.Entry) != 6 || b.Identifier.Value != "8f0e3a52-8c1e-4a57-9a0e-1d2c3b4a5001" {
		t.Fatalf("bundle: type %s, %d entries, id %s", b.Type, len(b.Entry), b.Identifier.Value)
	}
	h := b.Entry[0].Resource
	if h["resourceType"] != "MessageHeader" || h["eventCoding"].(map[string]any)["code"] != "discharge-notification" {
		t.Errorf("header %v", h)
	}
	enc := b.Entry[2].Resource
	if enc["period"].(map[string]any)["end"] != "2026-10-05T09:30:00+02:00" {
		t.Errorf("discharge time %v", enc["period"])
	}
	// Missing fields: the form again, with what was typed and what is missing.
	form.Del("family")
	status, body, _ := r.post(c, "coord.cpts", "/discharge", form)
	if status != http.StatusUnprocessableEntity {
		t.Errorf("missing name: %d", status)
	}
	contains(t, "missing name", body, "Champ obligatoire : « Nom de naissance »", `value="Jean Pierre"`)
	// The intake's refusal is shown with where it is.
	form.Set("family", "Testlebon")
	r.intakeF = func(context.Context, directory.Actor, []byte) ([]byte, error) {
		return nil, fhir.Errorf(fhir.Invalid, "required", "Le patient n'a ni INS ni IPP", "The patient has neither INS nor IPP", "Bundle.entry[1].resource.identifier")
	}
	r.get(c, "/discharge?lang=en")
	status, body, _ = r.post(c, "coord.cpts", "/discharge", form)
	if status != http.StatusBadRequest {
		t.Errorf("refused: %d", status)
	}
	contains(t, "refused", body, "The patient has neither INS nor IPP (Bundle.entry[1].resource.identifier)")
}

func TestEvents(t *testing.T) {
	r := newRig(t, openSQLite(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, r.srv.URL+"/events", nil)
	req.AddCookie(&http.Cookie{Name: sessionCookie, Value: "ide.martin"})
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Fatalf("content type %q", ct)
	}
	lines := bufio.NewScanner(resp.Body)
	if !lines.Scan() || lines.Text() != ": ok" {
		t.Fatalf("first line %q", lines.Text())
	}
	// Another's event is not sent; the nurse's own is.
	r.feed.publish(Event{Kind: "alert", Resource: "Flag/other", Owners: []string{"PractitionerRole/pr-dr-bernard"}})
	r.feed.publish(Event{Kind: "task", Resource: "Task/t-new", Owners: []string{"PractitionerRole/pr-ide-martin"}})
	var got []string
	for lines.Scan() {
		if l := lines.Text(); strings.HasPrefix(l, "event:") || strings.HasPrefix(l, "data:") {
			got = append(got, l)
		}
		if len(got) == 2 {
			break
		}
	}
	want := []string{"event: task", `data: {"resource":"Task/t-new"}`}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("events %q, want %q", got, want)
	}
	// Without a session: 401.
	resp2, err := http.Get(r.srv.URL + "/events")
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusUnauthorized {
		t.Errorf("events without a session: %d", resp2.StatusCode)
	}
}

func TestPagination(t *testing.T) {
	r := newRig(t, openSQLite(t))
	for i := range 60 {
		r.create(task("bulk-"+string(rune('A'+i/26))+string(rune('a'+i%26)), "PractitionerRole/pr-ide-leroy", "nurse", "requested", "Visite", day(i%20, 12)))
	}
	c := r.client("ide.leroy")
	_, p1 := r.get(c, "/worklist")
	_, p2 := r.get(c, "/worklist?page=2")
	n1, n2 := strings.Count(p1, "data-task-id="), strings.Count(p2, "data-task-id=")
	if n1 != 50 || n2 != 10 {
		t.Errorf("pages of %d and %d tasks, want 50 and 10", n1, n2)
	}
	contains(t, "page 1", p1, "Page 1 / 2", `href="/worklist?page=2"`, "60 tâches en cours")
	contains(t, "page 2", p2, "Page 2 / 2", `href="/worklist?page=1"`)
	// Sorted by due date.
	if strings.Index(p1, "05/10/2026") > strings.Index(p1, "06/10/2026") {
		t.Error("not sorted by due date")
	}
}

func TestPostgres(t *testing.T) {
	r := newRig(t, openPostgres(t))
	c := r.client("ide.martin")
	status, body := r.get(c, "/tasks/t-first")
	if status != 200 {
		t.Fatalf("task page on PostgreSQL: %d", status)
	}
	contains(t, "task page on PostgreSQL", body, "TESTDURAND Marie Claire", "Poids de sortie 74,6 kg", "Pharmacie Démo")
	r.post(c, "ide.martin", "/tasks/t-first/action", url.Values{"action": {"accept"}, "version": {"1"}})
	if got := r.read("Task", "t-first")["status"]; got != "accepted" {
		t.Errorf("task status %v", got)
	}
}

func TestAcceptLanguage(t *testing.T) {
	for h, want := range map[string]string{"": "fr", "en": "en", "en-US,fr;q=0.5": "en", "fr;q=0.4,en;q=0.6": "en",
		"fr-CA,en;q=0.9": "fr", "de,en;q=0.3": "en", "*": "fr"} {
		if got := acceptLanguage(h); got != want {
			t.Errorf("%q: %s, want %s", h, got, want)
		}
	}
}

func TestLocalPath(t *testing.T) {
	for s, want := range map[string]bool{"/worklist": true, "/tasks/x?lang=en": true, "": false, "//evil": false,
		"https://evil/": false, "/\\evil": false, "worklist": false} {
		if got := localPath(s); got != want {
			t.Errorf("%q: %v", s, got)
		}
	}
}

// TestDischargeThroughIntake sends the form's Bundle to the real intake
// ($process-message, validated against the FHIR package) as the demo
// hospital's system, as the single binary wires it.
func TestDischargeThroughIntake(t *testing.T) {
	r := newRig(t, openSQLite(t))
	reg, err := profile.Load(fhirprofiles.FS())
	if err != nil {
		t.Fatal(err)
	}
	v, err := validate.New(reg)
	if err != nil {
		t.Fatal(err)
	}
	dir := &directory.Resolver{Store: r.st}
	svc := intake.New(intake.Deps{Store: r.st, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Tenant: tenant,
		PublicURL: "http://passerelle.test", Dir: dir, Validator: validate.Bundles{V: v}})
	mux := http.NewServeMux()
	svc.Register(mux, func(h http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			a, err := dir.System(req.Context(), tenant, directory.DevClient)
			if err != nil {
				t.Fatal(err)
			}
			h.ServeHTTP(w, req.WithContext(access.WithActor(req.Context(), a)))
		})
	})
	var answer int
	r.intakeF = func(ctx context.Context, _ directory.Actor, b []byte) ([]byte, error) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequestWithContext(ctx, http.MethodPost, "/fhir/$process-message", bytes.NewReader(b)))
		answer = rec.Code
		if rec.Code != http.StatusOK {
			return nil, fhir.Errorf(fhirapi.KindOf(rec.Code), "invalid", rec.Body.String(), rec.Body.String())
		}
		return rec.Body.Bytes(), nil
	}
	form := url.Values{"facility": {"420000002"}, "family": {"Testlebon"}, "given": {"Marie"}, "birth-date": {"1948-03-15"},
		"gender": {"female"}, "ipp": {"IPP42"}, "visit-number": {"V42"}, "admission": {"2026-09-28"}, "discharge": {"2026-10-05T09:30"},
		"diagnosis": {"I50.9"}, "ins": {"248034218701255"}, "letter": {"Sortie."}, "address": {"1 rue Test"}, "postal-code": {"42300"},
		"city": {"Roanne"}, "commune": {"42187"}, "phone": {"0477000000"}, "gp-rpps": {"10000001049"}, "gp-name": {"Anne Généraliste"}}
	_, body, first := r.post(r.client("coord.cpts"), "coord.cpts", "/discharge", form)
	if answer != http.StatusOK || first.StatusCode != http.StatusSeeOther {
		t.Fatalf("intake answered %d, form %d\n%s", answer, first.StatusCode, body)
	}
	contains(t, "through intake", body, "Sortie transmise à la CPTS.")
	// The GP's RPPS without the GP's name: answered at the name field (the
	// FHIR package requires a Practitioner's name), everything kept.
	form.Del("gp-name")
	form.Set("visit-number", "V43")
	status, body, _ := r.post(r.client("coord.cpts"), "coord.cpts", "/discharge", form)
	if status != http.StatusUnprocessableEntity {
		t.Errorf("RPPS without a name: %d", status)
	}
	contains(t, "RPPS without a name", body, `id="gp-name-error"`, `value="10000001049"`)
}

func TestDocument(t *testing.T) {
	r := newRig(t, openSQLite(t))
	status, body := r.get(r.client("ide.martin"), "/documents/d1")
	if status != 200 || body != "Sortie du 03/10/2026. Poids de sortie 74,6 kg. Furosémide 40 mg le matin." {
		t.Errorf("lettre de liaison: %d %q", status, body)
	}
	if status, body := r.get(r.client("pharma.durand"), "/documents/d1?lang=en"); status != 403 || !strings.Contains(body, "care team") {
		t.Errorf("another professional reads the letter: %d", status)
	}
}

func TestAudit(t *testing.T) {
	r := newRig(t, openSQLite(t))
	r.get(r.client("ide.martin"), "/tasks/t-first")
	r.get(r.client("ide.martin"), "/worklist")
	recs, err := r.st.AuditLog().List(context.Background(), 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{"R Task/t-first": false, "E Task?owner=me&page=1": false}
	for _, rec := range recs {
		k := rec.Action + " " + rec.Entity
		if _, ok := want[k]; ok && rec.Patient == "Patient/p1" && rec.Agent == "PractitionerRole/pr-ide-martin" {
			want[k] = true
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("no audit record %q for Patient/p1 by the nurse", k)
		}
	}
}

// TestActionsInEnglish runs each action with an English session: every
// confirmation comes back in English.
func TestActionsInEnglish(t *testing.T) {
	r := newRig(t, openSQLite(t))
	nurse, gp, coord := r.client("ide.martin"), r.client("dr.bernard"), r.client("coord.cpts")
	for _, c := range []*http.Client{nurse, gp, coord} {
		r.get(c, "/?lang=en")
	}
	steps := []struct {
		c          *http.Client
		user, path string
		form       url.Values
		want       string
	}{
		{nurse, "ide.martin", "/tasks/t-first/action", url.Values{"action": {"accept"}, "version": {"1"}}, "Task accepted."},
		{nurse, "ide.martin", "/tasks/t-first/action", url.Values{"action": {"start"}, "version": {"2"}}, "Task started."},
		{nurse, "ide.martin", "/tasks/t-first/visit", url.Values{"weight-kg": {"74.9"}, "oedema": {"mild"}}, "Visit recorded."},
		{nurse, "ide.martin", "/tasks/t-first/visit", url.Values{"weight-kg": {"77"}}, "Visit recorded. Alert sent to Dr Louis BERNARD: Prise de poids"},
		{nurse, "ide.martin", "/tasks/t-first/action", url.Values{"action": {"complete"}, "version": {"3"}}, "Task completed."},
		{nurse, "ide.martin", "/tasks/t-late/action", url.Values{"action": {"decline"}, "version": {"1"}, "reason": {"capacity"}}, "Task declined."},
		{coord, "coord.cpts", "/tasks/t-free/reassign", url.Values{"to": {"PractitionerRole/pr-pharma-durand"}, "confirm": {"yes"}}, "Task reassigned."},
		{coord, "coord.cpts", "/discharge", url.Values{"facility": {"420000002"}, "family": {"Test"}, "given": {"Jean"}, "birth-date": {"1950-02-01"},
			"gender": {"male"}, "ipp": {"I1"}, "visit-number": {"V1"}, "admission": {"2026-09-28"}, "discharge": {"2026-10-05T09:30"},
			"diagnosis": {"I50.9"}}, "Discharge sent to the CPTS."},
	}
	for _, s := range steps {
		_, body, first := r.post(s.c, s.user, s.path, s.form)
		if first.StatusCode != http.StatusSeeOther {
			t.Errorf("%s %v: %d", s.path, s.form, first.StatusCode)
		}
		contains(t, s.path, body, s.want, `lang="en"`)
	}
	_, body := r.get(gp, "/alerts")
	i := strings.Index(body, `data-flag-id="`)
	if i < 0 {
		t.Fatal("no alert to acknowledge")
	}
	id := body[i+len(`data-flag-id="`):]
	_, body, _ = r.post(gp, "dr.bernard", "/alerts/"+id[:strings.Index(id, `"`)]+"/ack", url.Values{})
	contains(t, "acknowledge", body, "Alert acknowledged.", "No alert.")
}

func TestAccessCache(t *testing.T) {
	var c accessCache
	t0 := time.Date(2026, 10, 5, 10, 0, 0, 0, time.UTC)
	if _, hit := c.get("k", t0); hit {
		t.Fatal("hit in an empty cache")
	}
	c.put("k", true, t0.Add(30*time.Second))
	if ok, hit := c.get("k", t0.Add(29*time.Second)); !hit || !ok {
		t.Error("answer forgotten before its time")
	}
	if _, hit := c.get("k", t0.Add(30*time.Second)); hit {
		t.Error("answer kept past its time")
	}
}

// TestMissedTaskLabel: a task recorded missed (a discharge notified after
// its window) reads as such, in both languages; a cancelled one as before.
func TestMissedTaskLabel(t *testing.T) {
	ts := []taskView{{Status: "cancelled", BusinessStatus: "missed"}, {Status: "cancelled"}}
	localize(ts, "fr")
	if !strings.HasPrefix(ts[0].StatusLabel, "Manquée") || ts[1].StatusLabel != "Annulée" {
		t.Errorf("fr: %q, %q", ts[0].StatusLabel, ts[1].StatusLabel)
	}
	localize(ts, "en")
	if !strings.HasPrefix(ts[0].StatusLabel, "Missed") || ts[1].StatusLabel != "Cancelled" {
		t.Errorf("en: %q, %q", ts[0].StatusLabel, ts[1].StatusLabel)
	}
}
