package main

import (
	"context"
	"encoding/json"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// TestFlagshipInTheBrowser runs the flagship flow in Chromium against a
// whole instance, every service real: the hospital's discharge goes through
// intake, the pathway opens the episode, the teams service gives the first
// contact to a nurse; she logs in on a 360-pixel phone screen, accepts it
// and records a weight 2,5 kg above the one of two days before; the
// worklist's rule raises the alert, the teams service gives its review to
// the GP, and the GP, logged in in another browser context with her alerts
// page open, sees it arrive without reloading.
func TestFlagshipInTheBrowser(t *testing.T) {
	exe := chromium(t)
	tp := startBrowserPlatform(t)
	body, err := os.ReadFile("../intake/testdata/discharge-hf-declared-team.json")
	if err != nil {
		t.Fatal(err)
	}
	if r := tp.do(t, "POST", "/fhir/$process-message", tp.token(t, "chu-demo-dpi"), string(datedAt(body, time.Now()))); r.status != 200 {
		t.Fatalf("process-message: %d %s", r.status, r.body)
	}
	// Wait for the first contact to have its owner.
	ctx := context.Background()
	var taskID, owner, patient string
	for deadline := time.Now().Add(60 * time.Second); taskID == "" || owner == ""; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first contact got no owner")
		}
		page, err := tp.Store.Search(ctx, store.Query{Tenant: tp.Cfg.Tenant, Type: "Task", Count: 100})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Resources {
			var task struct {
				ID    string
				Code  struct{ Coding []struct{ Code string } }
				For   struct{ Reference string }
				Owner struct{ Reference string }
			}
			_ = json.Unmarshal(r.Body, &task)
			if len(task.Code.Coding) > 0 && task.Code.Coding[0].Code == "first-contact" {
				taskID, owner, patient = task.ID, task.Owner.Reference, task.For.Reference
			}
		}
	}
	nurse := strings.ReplaceAll(strings.TrimPrefix(owner, "PractitionerRole/pr-"), "-", ".") // pr-ide-leroy → ide.leroy
	// The weight of two days before, recorded through the API.
	before := time.Now().Add(-48 * time.Hour).UTC().Format(time.RFC3339)
	obs := `{"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"29463-7"}]},
		"subject":{"reference":"` + patient + `"},"effectiveDateTime":"` + before + `",
		"valueQuantity":{"value":74.6,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"}}`
	if r := tp.do(t, "POST", "/fhir/Observation", tp.token(t, nurse), obs); r.status != 201 {
		t.Fatalf("earlier weight: %d %s", r.status, r.body)
	}

	alloc := phoneBrowser(t, ctx, exe, 2*time.Minute)
	phone := chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile, chromedp.EmulateScale(1))
	do := func(ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	logIn := func(user string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(phone,
			chromedp.Navigate(tp.base+"/worklist"),
			chromedp.WaitVisible(`input[name="username"]`),
			chromedp.SendKeys(`input[name="username"]`, user),
			chromedp.SendKeys(`input[name="password"]`, user+kb.Enter),
			chromedp.WaitVisible(`nav.main`))
	}
	task := `[data-task-id="` + taskID + `"]`

	nurseCtx, cancelNurse := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	defer cancelNurse()
	do(nurseCtx, "the nurse logs in", logIn(nurse), chromedp.WaitVisible(task))

	gpCtx, cancelGP := chromedp.NewContext(nurseCtx, chromedp.WithNewBrowserContext())
	defer cancelGP()
	do(gpCtx, "the GP opens her alerts", logIn("dr.bernard"), chromedp.Navigate(tp.base+"/alerts"),
		chromedp.WaitReady(`html[data-live-ready="1"]`), chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`))

	do(nurseCtx, "the nurse accepts", freshClick(task+` button[value="accept"]`), chromedp.WaitVisible(task+` button[value="start"]`))
	do(nurseCtx, "the nurse records the visit", chromedp.Navigate(tp.base+"/tasks/"+taskID), chromedp.WaitVisible(`#weight-kg`),
		chromedp.SendKeys(`#weight-kg`, "77,1"+kb.Enter), chromedp.WaitVisible(`.flash`))

	// The discharge is weeks old: missed visits have raised alerts of
	// their own. Wait for the weight's, without reloading the page.
	const weightAlert = `Array.from(document.querySelectorAll('[data-flag-id]')).some(e => e.textContent.includes('2,5 kg'))`
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		found, err := chromedp.Run(gpCtx, chromedp.Evaluate[bool](weightAlert))
		if err != nil {
			t.Fatal(err)
		}
		if found {
			break
		}
		if time.Now().After(deadline) {
			text, _ := chromedp.Run(gpCtx, chromedp.Text(`main`))
			t.Fatalf("the weight alert did not arrive: %q", text)
		}
	}
	live, err := chromedp.Run(gpCtx, chromedp.Evaluate[bool](`window.notReloaded === true`))
	if err != nil || !live {
		t.Errorf("the alerts page was reloaded (%v): the alert did not arrive live", err)
	}
}
