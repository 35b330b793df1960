package main

import (
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/passerelle-sante/passerelle/pkg/store"
)

// setAway declares a directory member away from now for a day, or back
// (away false), as the coordinator's directory edit would.
func setAway(t *testing.T, tp *testPlatform, role string, away bool) {
	t.Helper()
	ctx := context.Background()
	err := tp.Store.Tx(ctx, func(tx store.Tx) error {
		res, err := tx.Read(ctx, "PractitionerRole", role)
		if err != nil {
			return err
		}
		var m map[string]any
		if err := json.Unmarshal(res.Body, &m); err != nil {
			return err
		}
		delete(m, "meta")
		delete(m, "notAvailable")
		if away {
			now := time.Now()
			m["notAvailable"] = []any{map[string]any{"description": "Congés", "during": map[string]any{
				"start": now.Add(-time.Hour).UTC().Format(time.RFC3339), "end": now.Add(24 * time.Hour).UTC().Format(time.RFC3339)}}}
		}
		body, _ := json.Marshal(m)
		_, err = tx.Update(ctx, res.Tenant, body, res.Version)
		return err
	})
	if err != nil {
		t.Fatalf("%s away=%v: %v", role, away, err)
	}
}

// TestCoordinatorReassignsInTheBrowser: both Roanne nurses are away when a
// Roanne patient's discharge arrives, so the teams service leaves the
// first contact with nobody. Ide Martin comes back; the coordinator, on a
// 360-pixel phone screen in French, finds the task among those nobody owns,
// sees that nobody is preselected and that the form will not go without
// the confirmation, chooses Claire MARTIN, confirms, and the nurse, whose
// worklist is open in another browser, sees the task arrive without
// reloading. Every service is real.
func TestCoordinatorReassignsInTheBrowser(t *testing.T) {
	exe := chromium(t)
	tp := startBrowserPlatform(t)
	// Before any event: the teams service reads the directory afresh at
	// its first discharge.
	setAway(t, tp, "pr-ide-martin", true)
	setAway(t, tp, "pr-ide-leroy", true)
	body, err := os.ReadFile("../intake/testdata/discharge-hf-declared-team.json")
	if err != nil {
		t.Fatal(err)
	}
	if r := tp.do(t, "POST", "/fhir/$process-message", tp.token(t, "chu-demo-dpi"), string(datedAt(body, time.Now()))); r.status != 200 {
		t.Fatalf("process-message: %d %s", r.status, r.body)
	}
	ctx := context.Background()
	type fTask struct {
		ID, Status string
		Code       struct{ Coding []struct{ Code string } }
		Owner      struct{ Reference string }
	}
	firstContact := func() fTask {
		t.Helper()
		page, err := tp.Store.Search(ctx, store.Query{Tenant: tp.Cfg.Tenant, Type: "Task", Count: 200})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page.Resources {
			var task fTask
			_ = json.Unmarshal(r.Body, &task)
			if len(task.Code.Coding) > 0 && task.Code.Coding[0].Code == "first-contact" {
				return task
			}
		}
		return fTask{}
	}
	var task fTask
	for deadline := time.Now().Add(60 * time.Second); task.Status != "rejected"; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the first contact was not left with nobody: %+v", task)
		}
		task = firstContact()
	}
	if task.Owner.Reference != "" {
		t.Fatalf("the first contact went to %s although both nurses are away", task.Owner.Reference)
	}
	setAway(t, tp, "pr-ide-martin", false)

	alloc := phoneBrowser(t, ctx, exe, 2*time.Minute)
	phone := chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile, chromedp.EmulateScale(1))
	do := func(ctx context.Context, what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	eval := func(ctx context.Context, what, js string) bool {
		t.Helper()
		v, err := chromedp.Run(ctx, chromedp.Evaluate[bool](js))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	logIn := func(user, path string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(phone,
			chromedp.Navigate(tp.base+path),
			chromedp.WaitVisible(`input[name="username"]`),
			chromedp.SendKeys(`input[name="username"]`, user),
			chromedp.SendKeys(`input[name="password"]`, user+kb.Enter),
			chromedp.WaitVisible(`nav.main`))
	}
	sel := `[data-task-id="` + task.ID + `"]`

	// The nurse's worklist is open, live, without the task.
	nurse, cancelNurse := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	defer cancelNurse()
	do(nurse, "the nurse opens her worklist", logIn("ide.martin", "/worklist"), chromedp.WaitReady(`html[data-live-ready="1"]`),
		chromedp.Evaluate[chromedp.Void](`window.notReloaded = true`))
	if eval(nurse, "worklist before", `!!document.querySelector('`+sel+`')`) {
		t.Fatal("the task is in the nurse's worklist before the reassignment")
	}

	coord, cancelCoord := chromedp.NewContext(nurse, chromedp.WithNewBrowserContext())
	defer cancelCoord()
	card := sel + `[data-problem="unassigned"]`
	do(coord, "the coordinator opens the coordination page", logIn("coord.cpts", "/coordination"), chromedp.WaitVisible(card))
	if eval(coord, "page width", `document.documentElement.scrollWidth > document.documentElement.clientWidth`) {
		t.Error("the coordination page scrolls horizontally at 360 px")
	}
	if !eval(coord, "nothing preselected", `document.querySelectorAll('`+card+` input[type=radio]:checked').length === 0`) {
		t.Fatal("a person is preselected")
	}
	do(coord, "the coordinator chooses Claire MARTIN", freshClick(card+` summary`),
		chromedp.WaitVisible(card+` input[value="PractitionerRole/pr-ide-martin"]`), freshClick(card+` input[value="PractitionerRole/pr-ide-martin"]`))
	if eval(coord, "form without confirmation", `document.querySelector('`+card+` form').checkValidity()`) {
		t.Fatal("the reassignment may be sent without the confirmation")
	}
	do(coord, "the coordinator confirms and reassigns", freshClick(card+` input[name="confirm"]`),
		freshClick(card+` button[type="submit"]`), chromedp.WaitVisible(`.flash`))
	if msg, err := chromedp.Run(coord, chromedp.Text(`.flash`)); err != nil || msg != "Tâche réassignée." {
		t.Fatalf("after the reassignment: %q %v", msg, err)
	}

	// The nurse sees it arrive, without reloading.
	for deadline := time.Now().Add(30 * time.Second); !eval(nurse, "worklist after", `!!document.querySelector('`+sel+`')`); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			text, _ := chromedp.Run(nurse, chromedp.Text(`main`))
			t.Fatalf("the task did not arrive in the nurse's worklist: %q", text)
		}
	}
	if !eval(nurse, "not reloaded", `window.notReloaded === true`) {
		t.Error("the worklist was reloaded: the task did not arrive live")
	}
	if got := firstContact(); got.Owner.Reference != "PractitionerRole/pr-ide-martin" || got.Status != "requested" {
		t.Errorf("task after the reassignment: %+v", got)
	}
}
