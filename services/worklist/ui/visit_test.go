package ui

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// visitTask adds a home-visit task of the nurse's, in the given status.
func (r *rig) visitTask(id, status string) {
	r.t.Helper()
	m := task(id, "PractitionerRole/pr-ide-martin", "nurse", status, "Visite infirmière de suivi", day(0, 18))
	m["code"] = obj{"coding": []any{obj{"system": "https://passerelle.health/fhir/CodeSystem/pathway-action", "code": "nurse-follow-up"}}}
	r.create(m)
}

// inOrder checks that each string appears in body after the one before.
func inOrder(t *testing.T, name, body string, want ...string) {
	t.Helper()
	at := 0
	for _, w := range want {
		i := strings.Index(body[at:], w)
		if i < 0 {
			t.Errorf("%s: %q missing or out of order (after %d)", name, w, at)
			return
		}
		at += i + len(w)
	}
}

func TestRefusedFieldKeepsValues(t *testing.T) {
	r := newRig(t, openSQLite(t))
	r.visitTask("t-visit", "requested")
	nurse := r.client("ide.martin")
	form := url.Values{"action": {"record-visit"}, "weight-kg": {"900"}, "systolic": {"135"}, "diastolic": {"85"}, "heart-rate": {"71"},
		"symptoms": {"Chevilles gonflées"}, "note": {"Vue avec sa fille"}, "nyha": {"II"}, "oedema": {"mild"}, "breathlessness": {"moderate"}}
	status, body, _ := r.post(nurse, "ide.martin", "/tasks/t-visit/visit", form)
	if status != http.StatusBadRequest {
		t.Fatalf("a 900 kg weight: %d, want 400 with the form", status)
	}
	// The message sits next to the weight field; every other value is there.
	inOrder(t, "refused weight", body, `id="weight-kg"`, `value="900"`, `aria-invalid="true"`, `class="field-error" id="weight-kg-err"`,
		"Valeur hors des limites plausibles pour « Poids (kg) »", `id="systolic"`)
	contains(t, "other values", body, `value="135"`, `value="85"`, `value="71"`, ">Chevilles gonflées</textarea>",
		">Vue avec sa fille</textarea>", `value="II" selected`, `value="mild" selected`, `value="moderate" selected`)
	if got := r.read("Task", "t-visit")["status"]; got != "requested" {
		t.Errorf("task %v after a refused visit, want requested", got)
	}
	page, err := r.st.Search(context.Background(), store.Query{Tenant: tenant, Type: "Observation", Count: 100})
	if err != nil {
		t.Fatal(err)
	}
	if n := len(page.Resources); n != 1 { // the seeded weight only
		t.Errorf("observations after a refused visit: %d, want 1", n)
	}
}

func TestRecordVisitInOneTap(t *testing.T) {
	r := newRig(t, openSQLite(t))
	r.visitTask("t-visit", "requested")
	nurse := r.client("ide.martin")
	// The page opens on the visit form, its submit records and completes.
	_, body := r.get(nurse, "/tasks/t-visit")
	inOrder(t, "task page", body, `<form method="post" action="/tasks/t-visit/visit"`, `id="weight-kg"`, `id="systolic"`, `id="symptoms"`,
		`name="action" value="record-visit"`, "Enregistrer la visite", `id="h-summary"`)
	lacks(t, "task page", body, "facultatif")
	_, body, first := r.post(nurse, "ide.martin", "/tasks/t-visit/visit", url.Values{"action": {"record-visit"}, "back": {"/tasks/t-visit"}, "weight-kg": {"74,8"},
		"systolic": {"132"}, "diastolic": {"81"}, "symptoms": {"Essoufflement à l'effort"}})
	if first.StatusCode != http.StatusSeeOther || first.Header.Get("Location") != "/worklist" {
		t.Fatalf("record-visit answered %d %s, want 303 to the list", first.StatusCode, first.Header.Get("Location"))
	}
	contains(t, "after record-visit", body, "Visite enregistrée, tâche terminée.")
	if got := r.read("Task", "t-visit")["status"]; got != "completed" {
		t.Errorf("task %v, want completed", got)
	}
	// The visit is shown with its blood pressure, symptoms and author.
	_, body = r.get(nurse, "/tasks/t-first")
	contains(t, "visit shown", body, "Visites récentes", "132/81", "Essoufflement à l&#39;effort", "74,8", `class="systolic"`, "Claire MARTIN")
}

func TestCloseVisitWithoutVisit(t *testing.T) {
	r := newRig(t, openSQLite(t))
	r.visitTask("t-visit", "in-progress")
	nurse := r.client("ide.martin")
	_, body := r.get(nurse, "/tasks/t-visit")
	contains(t, "close form", body, "Clore sans visite", `value="hospitalised"`, "Patient hospitalisé")
	// On a task that is not a visit, "Terminer" stays a plain button.
	_, other := r.get(nurse, "/tasks/t-late")
	lacks(t, "not a visit", other, "Clore sans visite", "record-visit")
	r.post(nurse, "ide.martin", "/tasks/t-visit/action", url.Values{"action": {"complete"}, "version": {"1"}, "reason": {"hospitalised"}, "back": {"/tasks/t-visit"}})
	got := r.read("Task", "t-visit")
	if got["status"] != "completed" || got["statusReason"].(obj)["text"] != "Patient hospitalisé" {
		t.Errorf("closed task: %v %v", got["status"], got["statusReason"])
	}
}

func TestDeclineReason(t *testing.T) {
	r := newRig(t, openSQLite(t))
	nurse := r.client("ide.martin")
	_, body := r.get(nurse, "/worklist")
	inOrder(t, "decline in place", body, `<datalist id="why"><option value="Patient absent"><option value="Hors secteur"><option value="Capacité atteinte"></datalist>`,
		`data-task-id="t-first" data-task-code="t-first"`, `href="/tasks/t-first"`, `value="accept"`,
		`<details class="decline"`, `<input name="reason" list="why"`, `value="decline"`)
	// Without a reason: answered at the field of that task, nothing declined.
	for _, form := range []url.Values{
		{"action": {"decline"}, "version": {"1"}, "back": {"/worklist"}},
		{"action": {"decline"}, "version": {"1"}, "back": {"/worklist"}, "reason": {"other"}},
	} {
		_, body, first := r.post(nurse, "ide.martin", "/tasks/t-first/action", form)
		if first.Header.Get("Location") != "/worklist" {
			t.Errorf("decline without reason went to %s", first.Header.Get("Location"))
		}
		inOrder(t, "reason refused", body, `data-task-id="t-first"`, `<details class="decline" open>`, `aria-invalid="true"`,
			`class="field-error"`, "Indiquez le motif.", `value="decline"`)
		if n := strings.Count(body, `class="field-error"`); n != 1 {
			t.Error("the message is also at another task's field")
		}
		if got := r.read("Task", "t-first")["status"]; got != "requested" {
			t.Fatalf("declined without a reason: %v", got)
		}
	}
	// The task page answers at its own field.
	_, body, _ = r.post(nurse, "ide.martin", "/tasks/t-first/action", url.Values{"action": {"decline"}, "version": {"1"}, "back": {"/tasks/t-first"}})
	contains(t, "task page", body, `class="field-error" id="reason-err-t-first"`, "Indiquez le motif.")
	// A usual reason (the task page's choice), then free words (the list's field).
	r.post(nurse, "ide.martin", "/tasks/t-first/action", url.Values{"action": {"decline"}, "version": {"1"}, "reason": {"out-of-area"}})
	if got := r.read("Task", "t-first"); got["status"] != "rejected" || got["statusReason"].(obj)["text"] != "Hors secteur" {
		t.Errorf("declined: %v %v", got["status"], got["statusReason"])
	}
	r.post(nurse, "ide.martin", "/tasks/t-late/action", url.Values{"action": {"decline"}, "version": {"1"}, "reason": {"En formation cette semaine"}})
	if got := r.read("Task", "t-late"); got["statusReason"].(obj)["text"] != "En formation cette semaine" {
		t.Errorf("declined with words: %v", got["statusReason"])
	}
}

func TestTodayFirst(t *testing.T) {
	r := newRig(t, openSQLite(t))
	r.create(obj{"resourceType": "Patient", "id": "p2", "name": []any{obj{"family": "TESTMARTIN", "given": []any{"JEAN"}}},
		"address": []any{obj{"line": []any{"2 rue du Pont"}, "postalCode": "42120", "city": "Le Coteau"}}})
	r.create(obj{"resourceType": "CareTeam", "id": "ct-p2", "status": "active", "subject": obj{"reference": "Patient/p2"},
		"participant": []any{obj{"member": obj{"reference": "PractitionerRole/pr-ide-martin"}}}})
	add := func(id, patient, title, due string) {
		m := task(id, "PractitionerRole/pr-ide-martin", "nurse", "accepted", title, due)
		m["for"] = obj{"reference": "Patient/" + patient}
		r.create(m)
	}
	add("t-today-coteau", "p2", "Visite Coteau aujourd'hui", day(0, 18))
	add("t-today-roanne", "p1", "Visite Roanne aujourd'hui", day(0, 19))
	add("t-tuesday", "p1", "Visite de mardi", day(1, 12))
	add("t-far", "p1", "Visite du mois prochain", day(30, 12))
	held := task("t-held", "PractitionerRole/pr-ide-martin", "nurse", "on-hold", "Visite suspendue", day(2, 12))
	held["for"] = obj{"reference": "Patient/p2"}
	r.create(held)
	_, body := r.get(r.client("ide.martin"), "/worklist")
	inOrder(t, "round", body, "<h2>En retard</h2>", `data-task-id="t-late"`,
		"<h2>Aujourd&#39;hui</h2>", `<h3 class="commune">Le Coteau</h3>`, `data-task-id="t-today-coteau"`, "2 rue du Pont, 42120 Le Coteau",
		`<h3 class="commune">Roanne</h3>`, `data-task-id="t-today-roanne"`,
		"<h2>mardi 6 octobre</h2>", `data-task-id="t-tuesday"`, `data-task-id="t-first"`,
		`data-task-id="t-held"`, `<span class="badge late">Hospitalisé</span>`,
		`<details class="later"><summary>Plus tard (1)</summary>`, `data-task-id="t-far"`)
}

func TestAlertsAndReview(t *testing.T) {
	r := newRig(t, openSQLite(t))
	nurse, gp := r.client("ide.martin"), r.client("dr.bernard")
	// An open alert of her patient that she does not review: on her page.
	r.create(obj{"resourceType": "Flag", "id": "f-missing", "status": "active", "code": obj{"text": "Poids non transmis depuis 7 jours"},
		"subject": obj{"reference": "Patient/p1"}, "period": obj{"start": day(-1, 9)}})
	_, body := r.get(nurse, "/alerts")
	contains(t, "nurse's alerts", body, `data-flag-id="f-missing"`, "Poids non transmis depuis 7 jours", "TESTDURAND Marie Claire",
		"Examinée par un autre membre")
	lacks(t, "nurse's alerts", body, `action="/alerts/f-missing/ack"`)
	_, body = r.get(r.client("ide.leroy"), "/alerts")
	lacks(t, "another nurse's alerts", body, "f-missing")

	// A visit with a weight gain: the GP's review page shows its blood
	// pressure and symptoms, and asks for a decision.
	r.post(nurse, "ide.martin", "/tasks/t-first/visit", url.Values{"weight-kg": {"77,4"}, "systolic": {"152"}, "diastolic": {"94"},
		"symptoms": {"Orthopnée depuis deux nuits"}})
	_, body = r.get(gp, "/alerts")
	i := strings.Index(body, `<a class="button" href="/tasks/`)
	if i < 0 {
		t.Fatal("no review task on the GP's alerts")
	}
	review := body[i+len(`<a class="button" href="/tasks/`):]
	review = review[:strings.Index(review, `"`)]
	_, body = r.get(gp, "/tasks/"+review)
	inOrder(t, "review page", body, `name="decision"`, `value="treatment-adjustment"`, `value="no-action"`, `name="note"`, `value="review"`,
		"Visites récentes", "152/94", "Orthopnée depuis deux nuits", "Claire MARTIN")
	_, body, _ = r.post(gp, "dr.bernard", "/tasks/"+review+"/action", url.Values{"action": {"review"}, "version": {"1"}, "back": {"/tasks/" + review}})
	contains(t, "no decision", body, `class="field-error"`, "Choisissez la décision.")
	_, body, _ = r.post(gp, "dr.bernard", "/tasks/"+review+"/action", url.Values{"action": {"review"}, "version": {"1"}, "decision": {"treatment-adjustment"},
		"note": {"Furosémide 80 mg pendant 3 jours"}})
	contains(t, "decision", body, "Décision enregistrée, alerte close.")
	got := r.read("Task", review)
	if got["status"] != "completed" || !strings.Contains(string(mustJSON(got)), "Furosémide 80 mg pendant 3 jours") {
		t.Errorf("review task: %v", got)
	}
}

func TestVisitKeptAcrossLogin(t *testing.T) {
	r := newRig(t, openSQLite(t))
	r.visitTask("t-visit", "requested")
	// The session has expired: the browser posts without one.
	browser := r.client("")
	form := url.Values{"action": {"record-visit"}, "csrf_token": {"csrf-ide.martin"}, "weight-kg": {"74,2"}, "systolic": {"128"},
		"diastolic": {"79"}, "symptoms": {"Toux la nuit"}}
	c := *browser
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.PostForm(r.srv.URL+"/tasks/t-visit/visit", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/login?next=%2Ftasks%2Ft-visit" {
		t.Fatalf("post after expiry: %d %s, want 303 to the login coming back to the task", resp.StatusCode, resp.Header.Get("Location"))
	}
	// Another professional logging in on the same phone does not see it.
	u, _ := url.Parse(r.srv.URL)
	browser.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: "ide.leroy", Path: "/"}})
	_, body := r.get(browser, "/tasks/t-visit")
	lacks(t, "another's login", body, "Toux la nuit", `value="128"`)
	// Its owner does, once, with everything typed.
	browser.Jar.SetCookies(u, []*http.Cookie{{Name: sessionCookie, Value: "ide.martin", Path: "/"}})
	_, body = r.get(browser, "/tasks/t-visit")
	contains(t, "after login", body, "vos saisies ont été gardées", `value="74,2"`, `value="128"`, `value="79"`, ">Toux la nuit</textarea>")
	_, body = r.get(browser, "/tasks/t-visit")
	lacks(t, "second view", body, "Toux la nuit", `value="128"`)
	if got := r.read("Task", "t-visit")["status"]; got != "requested" {
		t.Errorf("a kept form was recorded by itself: task %v", got)
	}
	// A form another site makes the browser post is not kept.
	req, _ := http.NewRequest(http.MethodPost, r.srv.URL+"/tasks/t-visit/visit", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	resp, err = http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("cross-site post without a session: %d, want 401", resp.StatusCode)
	}
	// The phone's queue sends a visit in the background (fetch): it is
	// answered 401, so that the queue waits for the login and sends the
	// same request, and is not kept as a form to record again.
	req, _ = http.NewRequest(http.MethodPost, r.srv.URL+"/tasks/t-visit/visit", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Sec-Fetch-Mode", "cors")
	resp, err = (&http.Client{CheckRedirect: c.CheckRedirect}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("queued post without a session: %d with cookies %v, want 401 and nothing kept", resp.StatusCode, resp.Cookies())
	}
}

// A task in progress that is not a visit keeps its "Échec" with a reason.
func TestFailWithReason(t *testing.T) {
	r := newRig(t, openSQLite(t))
	r.create(task("t-edu", "PractitionerRole/pr-ide-martin", "nurse", "in-progress", "Éducation thérapeutique", day(1, 12)))
	nurse := r.client("ide.martin")
	_, body := r.get(nurse, "/tasks/t-edu")
	inOrder(t, "fail", body, `value="complete"`, `<summary>Échec…</summary>`, `name="reason"`, `value="fail"`)
	r.post(nurse, "ide.martin", "/tasks/t-edu/action", url.Values{"action": {"fail"}, "version": {"1"}, "reason": {"refused"}})
	if got := r.read("Task", "t-edu"); got["status"] != "failed" || got["statusReason"].(obj)["text"] != "Refus du patient" {
		t.Errorf("failed task: %v %v", got["status"], got["statusReason"])
	}
}

// TestNotANumberRefused: "NaN", "Inf" or a hexadecimal number in a
// measure is refused next to its field, like any unreadable number, and
// loses nothing typed beside it.
func TestNotANumberRefused(t *testing.T) {
	r := newRig(t, openSQLite(t))
	r.visitTask("t-visit", "requested")
	nurse := r.client("ide.martin")
	for _, bad := range []string{"NaN", "inf", "0x1p6"} {
		form := url.Values{"action": {"record-visit"}, "weight-kg": {bad}, "systolic": {"135"}, "diastolic": {"85"}, "symptoms": {"Fatigue"}}
		status, body, _ := r.post(nurse, "ide.martin", "/tasks/t-visit/visit", form)
		if status != http.StatusBadRequest {
			t.Fatalf("weight %q: %d, want 400 with the form", bad, status)
		}
		inOrder(t, "refused "+bad, body, `id="weight-kg"`, `aria-invalid="true"`, `class="field-error" id="weight-kg-err"`)
		contains(t, "other values", body, `value="135"`, `value="85"`, ">Fatigue</textarea>")
	}
	if got := r.read("Task", "t-visit")["status"]; got != "requested" {
		t.Errorf("task %v after refused visits, want requested", got)
	}
}
