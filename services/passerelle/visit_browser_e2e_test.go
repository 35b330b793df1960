package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// TestVisitOnThePhone is the nurse's round on a 360-pixel phone, in
// French, against a whole instance with every service real: from the list
// she opens a visit, types weight, blood pressure and symptoms and records
// the visit, which completes the task, in one tap (the taps are counted);
// a visit with an implausible weight comes back with every other value;
// she declines a task from the list with a reason; the GP reviewing the
// alert the visit raised sees its blood pressure and symptoms.
func TestVisitOnThePhone(t *testing.T) {
	exe := chromium(t)
	tp := startBrowserPlatform(t)
	body, err := os.ReadFile("../intake/testdata/discharge-hf-declared-team.json")
	if err != nil {
		t.Fatal(err)
	}
	if r := tp.do(t, "POST", "/fhir/$process-message", tp.token(t, "chu-demo-dpi"), string(datedAt(body, time.Now()))); r.status != 200 {
		t.Fatalf("process-message: %d %s", r.status, r.body)
	}
	ctx := context.Background()
	type taskRow struct {
		ID, Status, Owner, Patient, Code, Reason string
	}
	tasks := func() []taskRow {
		t.Helper()
		page, err := tp.Store.Search(ctx, store.Query{Tenant: tp.Cfg.Tenant, Type: "Task", Count: 200})
		if err != nil {
			t.Fatal(err)
		}
		var out []taskRow
		for _, r := range page.Resources {
			var task struct {
				Status       string
				Code         struct{ Coding []struct{ Code string } }
				For          struct{ Reference string }
				Owner        struct{ Reference string }
				StatusReason struct{ Text string }
			}
			_ = json.Unmarshal(r.Body, &task)
			row := taskRow{ID: r.ID, Status: task.Status, Owner: task.Owner.Reference, Patient: task.For.Reference, Reason: task.StatusReason.Text}
			if len(task.Code.Coding) > 0 {
				row.Code = task.Code.Coding[0].Code
			}
			out = append(out, row)
		}
		return out
	}
	// The nurse of the team and her visits.
	var visits []taskRow
	var first taskRow
	for deadline := time.Now().Add(60 * time.Second); len(visits) < 2 || first.ID == ""; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the visits got no owner")
		}
		visits, first = nil, taskRow{}
		for _, r := range tasks() {
			if r.Code == "nurse-follow-up" && strings.HasPrefix(r.Owner, "PractitionerRole/") && (r.Status == "requested" || r.Status == "accepted") {
				visits = append(visits, r)
			}
			if r.Code == "first-contact" && r.Owner != "" && r.Status == "requested" {
				first = r
			}
		}
	}
	owner := visits[0].Owner
	var mine []taskRow
	for _, v := range visits {
		if v.Owner == owner {
			mine = append(mine, v)
		}
	}
	if len(mine) < 3 || first.Owner != owner {
		t.Fatalf("the nurse %s has %d visits and the first contact goes to %s", owner, len(mine), first.Owner)
	}
	patient := mine[0].Patient
	nurse := strings.ReplaceAll(strings.TrimPrefix(owner, "PractitionerRole/pr-"), "-", ".")
	before := time.Now().Add(-48 * time.Hour).UTC().Format(time.RFC3339)
	obs := `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
		"subject":{"reference":"` + patient + `"},"effectiveDateTime":"` + before + `",
		"valueQuantity":{"value":74.6,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`
	if r := tp.do(t, "POST", "/fhir/Observation", tp.token(t, nurse), obs); r.status != 201 {
		t.Fatalf("earlier weight: %d %s", r.status, r.body)
	}

	alloc := phoneBrowser(t, ctx, exe, 3*time.Minute)
	phone := chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile, chromedp.EmulateScale(1))
	do := func(ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		// The first action of a context starts its browser: never under
		// a timeout, which would stop it.
		if err := chromedp.Do(ctx); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, steps...); err != nil {
			page, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + " " + document.body.innerText.slice(0, 600)`))
			t.Fatalf("%s: %v (page %q)", what, err, page)
		}
	}
	text := func(ctx context.Context, sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		if err != nil {
			t.Fatalf("text of %s: %v", sel, err)
		}
		return s
	}
	value := func(ctx context.Context, sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Value(sel))
		if err != nil {
			t.Fatalf("value of %s: %v", sel, err)
		}
		return s
	}
	logIn := func(user string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(phone,
			chromedp.Navigate(tp.base+"/worklist"),
			chromedp.WaitVisible(`input[name="username"]`),
			chromedp.SendKeys(`input[name="username"]`, user),
			chromedp.SendKeys(`input[name="password"]`, user+kb.Enter),
			chromedp.WaitVisible(`nav.main`))
	}
	nurseCtx, cancelNurse := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	defer cancelNurse()
	do(nurseCtx, "the nurse logs in", logIn(nurse))

	// 1. From the list to a recorded, completed visit: every tap counted.
	// Typing (the keyboard's taps) is apart: moving to a field and typing
	// in it is what SendKeys does.
	taps := 0
	tap := func(sel string) chromedp.Action[chromedp.Void] {
		taps++
		return freshClick(sel)
	}
	tapTo := func(sel string) chromedp.Action[chromedp.Void] {
		taps++
		return tapTo(sel)
	}
	v := `[data-task-id="` + mine[0].ID + `"]`
	do(nurseCtx, "the nurse opens the visit", chromedp.WaitVisible(v+`[data-task-code="nurse-follow-up"] a[href="/tasks/`+mine[0].ID+`"]`),
		tapTo(v+` a[href="/tasks/`+mine[0].ID+`"]`), chromedp.WaitVisible(`#weight-kg`))
	do(nurseCtx, "the nurse types the visit",
		chromedp.SendKeys(`#weight-kg`, "77,1"), chromedp.SendKeys(`#systolic`, "138"), chromedp.SendKeys(`#diastolic`, "84"),
		chromedp.SendKeys(`#symptoms`, "Chevilles gonflées, dort assise"))
	// The list's count line says the answer has come (the task page has none).
	do(nurseCtx, "the nurse records the visit", tap(`button[value="record-visit"]`), chromedp.WaitVisible(`p.count`), chromedp.WaitVisible(`.flash`))
	flash := text(nurseCtx, `.flash`)
	if !strings.Contains(flash, "Visite enregistrée, tâche terminée.") || !strings.Contains(flash, "Alerte transmise à Dr") {
		t.Errorf("after the visit: %q", flash)
	}
	t.Logf("taps from the list to a recorded, completed visit with weight, blood pressure and symptoms: %d (plus the typing)", taps)
	if taps > 5 {
		t.Errorf("%d taps, want at most 5", taps)
	}
	for _, r := range tasks() {
		if r.ID == mine[0].ID && r.Status != "completed" {
			t.Errorf("visit task %s, want completed", r.Status)
		}
	}
	page, err := tp.Store.Search(ctx, store.Query{Tenant: tp.Cfg.Tenant, Type: "Observation", Count: 100, Params: []store.Param{
		{Name: "patient", Kind: store.KindReference, Values: []store.Value{{Ref: patient}}}}})
	if err != nil {
		t.Fatal(err)
	}
	var weights, panels int
	for _, o := range page.Resources {
		s := string(o.Body)
		if strings.Contains(s, `"77.1"`) || strings.Contains(s, `"value":77.1`) {
			weights++
		}
		if strings.Contains(s, `"85354-9"`) {
			panels++
		}
	}
	if weights != 1 || panels != 1 {
		t.Errorf("recorded %d weights of 77.1 kg and %d blood-pressure panels, want one each", weights, panels)
	}

	// 2. A refused field keeps every other value.
	do(nurseCtx, "the nurse opens another visit", chromedp.Navigate(tp.base+"/tasks/"+mine[1].ID), chromedp.WaitVisible(`#weight-kg`),
		chromedp.SendKeys(`#weight-kg`, "900"), chromedp.SendKeys(`#systolic`, "131"), chromedp.SendKeys(`#diastolic`, "77"),
		chromedp.SendKeys(`#heart-rate`, "68"), chromedp.SendKeys(`#symptoms`, "Fatigue"),
		freshClick(`button[value="record-visit"]`), chromedp.WaitVisible(`#weight-kg-err`))
	if msg := text(nurseCtx, `#weight-kg-err`); !strings.Contains(msg, "Poids") {
		t.Errorf("message next to the weight: %q", msg)
	}
	for sel, want := range map[string]string{"#weight-kg": "900", "#systolic": "131", "#diastolic": "77", "#heart-rate": "68", "#symptoms": "Fatigue"} {
		if got := value(nurseCtx, sel); got != want {
			t.Errorf("%s after the refusal: %q, want %q", sel, got, want)
		}
	}
	do(nurseCtx, "the nurse corrects the weight", chromedp.SetValue(`#weight-kg`, "76,0"), freshClick(`button[value="record-visit"]`),
		chromedp.WaitVisible(`p.count`))
	if flash := text(nurseCtx, `.flash`); !strings.Contains(flash, "Visite enregistrée, tâche terminée.") {
		t.Errorf("after correcting: %q", flash)
	}

	// 3. Decline from the list, with a reason chosen in place.
	f := `[data-task-id="` + first.ID + `"]`
	do(nurseCtx, "the nurse declines from the list", chromedp.Navigate(tp.base+"/worklist"), chromedp.WaitVisible(f),
		freshClick(f+` details.decline summary`), chromedp.WaitVisible(f+` input[name="reason"]`),
		chromedp.SendKeys(f+` input[name="reason"]`, "Hors secteur"), freshClick(f+` button[value="decline"]`),
		chromedp.WaitVisible(`.flash`))
	if flash := text(nurseCtx, `.flash`); !strings.Contains(flash, "Tâche refusée.") {
		t.Errorf("after the decline: %q", flash)
	}
	declined := false
	for _, r := range tasks() {
		if r.ID == first.ID && r.Owner != owner || r.ID == first.ID && r.Status == "rejected" {
			declined = true
		}
	}
	if !declined {
		t.Error("the first contact is still the nurse's")
	}

	// 4. A visit tapped after the session expired: kept across the login,
	// recorded once after it. Clearing the cookies is the server's view
	// of an expired session (and the identity provider asks again).
	expire := chromedp.Action[chromedp.Void](func(ctx context.Context, tg *chromedp.Target) (chromedp.Void, error) {
		_, err := cdp.Call(ctx, tg, network.ClearBrowserCookies, cdp.Empty{})
		return chromedp.Void{}, err
	})
	do(nurseCtx, "the nurse types a visit", chromedp.Navigate(tp.base+"/tasks/"+mine[2].ID), chromedp.WaitVisible(`#weight-kg`),
		chromedp.SendKeys(`#weight-kg`, "75,3"), chromedp.SendKeys(`#systolic`, "126"), chromedp.SendKeys(`#diastolic`, "74"),
		chromedp.SendKeys(`#symptoms`, "Essoufflement la nuit"))
	do(nurseCtx, "the session expires; she taps", expire, freshClick(`button[value="record-visit"]`),
		chromedp.WaitVisible(`input[name="username"]`),
		chromedp.SendKeys(`input[name="username"]`, nurse), chromedp.SendKeys(`input[name="password"]`, nurse+kb.Enter),
		chromedp.WaitVisible(`#weight-kg`))
	for sel, want := range map[string]string{"#weight-kg": "75,3", "#systolic": "126", "#diastolic": "74", "#symptoms": "Essoufflement la nuit"} {
		if got := value(nurseCtx, sel); got != want {
			t.Errorf("%s after the login: %q, want %q", sel, got, want)
		}
	}
	do(nurseCtx, "she records it", freshClick(`button[value="record-visit"]`), chromedp.WaitVisible(`p.count`))
	if flash := text(nurseCtx, `.flash`); !strings.Contains(flash, "Visite enregistrée, tâche terminée.") {
		t.Errorf("after the login and the tap: %q", flash)
	}
	page, err = tp.Store.Search(ctx, store.Query{Tenant: tp.Cfg.Tenant, Type: "QuestionnaireResponse", Count: 100, Params: []store.Param{
		{Name: "patient", Kind: store.KindReference, Values: []store.Value{{Ref: mine[2].Patient}}}}})
	if err != nil {
		t.Fatal(err)
	}
	kept := 0
	for _, qr := range page.Resources {
		if strings.Contains(string(qr.Body), "Essoufflement la nuit") {
			kept++
		}
	}
	if kept != 1 {
		t.Errorf("the visit typed before the expiry was recorded %d times, want once", kept)
	}

	// 5. The GP reviewing the alert sees the blood pressure and symptoms.
	gpCtx, cancelGP := chromedp.NewContext(nurseCtx, chromedp.WithNewBrowserContext())
	defer cancelGP()
	do(gpCtx, "the GP logs in", logIn("dr.bernard"))
	const review = `Array.from(document.querySelectorAll('[data-flag-id] a')).filter(a => a.textContent.includes('2,5 kg')).map(a => a.getAttribute('href'))[0] || ''`
	href := ""
	for deadline := time.Now().Add(30 * time.Second); href == ""; time.Sleep(300 * time.Millisecond) {
		do(gpCtx, "the GP opens her alerts", chromedp.Navigate(tp.base+"/alerts"), chromedp.WaitVisible(`main`))
		h, err := chromedp.Run(gpCtx, chromedp.Evaluate[string](review))
		if err != nil {
			t.Fatal(err)
		}
		href = h
		if href == "" && time.Now().After(deadline) {
			t.Fatalf("no review of the weight alert for the GP: %q", text(gpCtx, "main"))
		}
	}
	do(gpCtx, "the GP opens the review", chromedp.Navigate(tp.base+href), chromedp.WaitVisible(`#h-visits`))
	visitsText := text(gpCtx, `table.visits`)
	for _, want := range []string{"138/84", "Chevilles gonflées, dort assise", "77,1"} {
		if !strings.Contains(visitsText, want) {
			t.Errorf("the review page's visits lack %q: %q", want, visitsText)
		}
	}
	do(gpCtx, "the GP decides", chromedp.SetValue(`#decision`, "consultation"), chromedp.SendKeys(`#review-note`, "Je passe demain"),
		freshClick(`button[value="review"]`), chromedp.WaitVisible(`.flash`))
	if flash := text(gpCtx, `.flash`); !strings.Contains(flash, "Décision enregistrée") {
		t.Errorf("after the decision: %q", flash)
	}
}
