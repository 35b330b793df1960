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

// TestOfflineInTheBrowser runs the nurse's day without network against a
// whole instance, every service real, as the issue of the phone in the
// field asks: her worklist loads, then the phone goes offline; she taps a
// visit task (its page kept by the service worker opens on the visit
// form), records the visit and completes it with "Enregistrer la visite"
// (record-visit), goes back to her list and declines another task with a
// reason. The header shows 2 waiting and the server has neither; back
// online, both reach the server exactly once — checked through the FHIR
// API: one set of Observations, one completion, one refusal — the count
// returns to 0, and the same queued requests sent again change nothing.
func TestOfflineInTheBrowser(t *testing.T) {
	exe := chromium(t)
	tp := startBrowserPlatform(t)
	body, err := os.ReadFile("../intake/testdata/discharge-hf-declared-team.json")
	if err != nil {
		t.Fatal(err)
	}
	if r := tp.do(t, "POST", "/fhir/$process-message", tp.token(t, "chu-demo-dpi"), string(datedAt(body, time.Now()))); r.status != 200 {
		t.Fatalf("process-message: %d %s", r.status, r.body)
	}
	// Two open tasks of one nurse: the first contact, and another.
	ctx := context.Background()
	var owner, patient, visitTask, declineTask string
	for deadline := time.Now().Add(60 * time.Second); declineTask == ""; time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("no nurse got two tasks")
		}
		page, err := tp.Store.Search(ctx, store.Query{Tenant: tp.Cfg.Tenant, Type: "Task", Count: 200})
		if err != nil {
			t.Fatal(err)
		}
		byOwner := map[string][]string{}
		first := map[string]string{}
		for _, r := range page.Resources {
			var task struct {
				ID, Status string
				Code       struct{ Coding []struct{ Code string } }
				For, Owner struct{ Reference string }
			}
			_ = json.Unmarshal(r.Body, &task)
			if task.Status != "requested" || !strings.HasPrefix(task.Owner.Reference, "PractitionerRole/pr-ide-") {
				continue
			}
			if len(task.Code.Coding) > 0 && task.Code.Coding[0].Code == "first-contact" {
				first[task.Owner.Reference] = task.ID
				patient = task.For.Reference
				continue
			}
			byOwner[task.Owner.Reference] = append(byOwner[task.Owner.Reference], task.ID)
		}
		for o, id := range first {
			if len(byOwner[o]) > 0 {
				owner, visitTask, declineTask = o, id, byOwner[o][0]
			}
		}
	}
	nurse := strings.ReplaceAll(strings.TrimPrefix(owner, "PractitionerRole/pr-"), "-", ".")

	alloc := phoneBrowser(t, ctx, exe, 2*time.Minute)
	phone, cancelPhone := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	defer cancelPhone()
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(phone, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	get := func(what, js string) string {
		t.Helper()
		v, err := chromedp.Run(phone, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	offline := func(off bool) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
				return err
			}
			if _, err := cdp.Call(ctx, tg, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
				EmulateOfflineServiceWorker: &off, MatchedNetworkConditions: []*network.Conditions{{Offline: off, DownloadThroughput: -1, UploadThroughput: -1}}}); err != nil {
				return err
			}
			_, err := cdp.Call(ctx, tg, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: off, DownloadThroughput: -1, UploadThroughput: -1})
			return err
		})
	}
	// Through the API, as any client sees it.
	count := func(path, needle string) int {
		t.Helper()
		r := tp.do(t, "GET", path, tp.token(t, nurse), "")
		if r.status != 200 {
			t.Fatalf("GET %s: %d %s", path, r.status, r.body)
		}
		return strings.Count(string(r.body), needle)
	}
	// One set of Observations: the weight, and the blood pressure panel
	// holding the systolic value.
	weights := func() int {
		return count("/fhir/Observation?patient="+patient+"&code=http://loinc.org|29463-7", `"value":81.3`)
	}
	pressures := func() int {
		return count("/fhir/Observation?patient="+patient+"&code=http://loinc.org|85354-9", `"value":128`)
	}
	// statuses lists the statuses of a task's versions, newest first.
	statuses := func(id string) []string {
		t.Helper()
		r := tp.do(t, "GET", "/fhir/Task/"+id+"/_history", tp.token(t, nurse), "")
		if r.status != 200 {
			t.Fatalf("history of Task/%s: %d %s", id, r.status, r.body)
		}
		var b struct {
			Entry []struct{ Resource struct{ Status string } }
		}
		if err := json.Unmarshal(r.body, &b); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range b.Entry {
			out = append(out, e.Resource.Status)
		}
		return out
	}
	times := func(xs []string, s string) int {
		n := 0
		for _, x := range xs {
			if x == s {
				n++
			}
		}
		return n
	}
	// queue is what the phone's queue holds, as JSON.
	const queue = `new Promise((ok, ko) => { const r = indexedDB.open('passerelle-queue', 1);
	  r.onsuccess = () => { const q = r.result.transaction('actions').objectStore('actions').getAll();
	    q.onsuccess = () => { r.result.close(); ok(JSON.stringify(q.result)); }; q.onerror = ko; };
	  r.onerror = ko; })`

	do("the nurse logs in", chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile, chromedp.EmulateScale(1)),
		chromedp.Navigate(tp.base+"/worklist"), chromedp.WaitVisible(`input[name="username"]`),
		chromedp.SendKeys(`input[name="username"]`, nurse), chromedp.SendKeys(`input[name="password"]`, nurse+kb.Enter),
		chromedp.WaitVisible(`[data-task-id="`+visitTask+`"]`), chromedp.WaitReady(`header [data-pending="0"]`))
	// The service worker keeps her list and the pages of her tasks due soon.
	if kept := get("pages kept", `(async () => { for (let i = 0; i < 200; i++) {
	    const c = await caches.open('passerelle-pages');
	    if (await c.match('/worklist') && await c.match('/tasks/`+visitTask+`')) return 'kept';
	    await new Promise(ok => setTimeout(ok, 50)); } return 'not kept'; })()`); kept != "kept" {
		t.Fatalf("the worklist and the task's page are %s for offline reading", kept)
	}
	visitBefore := statuses(visitTask)

	do("offline, she taps the task: it opens on the visit form", offline(true),
		tapTo(`[data-task-id="`+visitTask+`"] .task-head a`), chromedp.WaitVisible(`form.visit #weight-kg`))
	do("she records the visit and completes the task",
		chromedp.SendKeys(`#weight-kg`, "81,3"), chromedp.SendKeys(`#systolic`, "128"), chromedp.SendKeys(`#diastolic`, "76"),
		chromedp.SendKeys(`#symptoms`, "Chevilles gonflées"),
		freshClick(`form.visit button[value="record-visit"]`), chromedp.WaitReady(`[data-pending="1"]`))
	do("back to her list, she declines another task with a reason", freshClick(`nav.main a[href="/worklist"]`),
		chromedp.WaitReady(`[data-task-id="`+declineTask+`"]`))
	// A task due later sits behind "Plus tard": she opens it first.
	get("later", `(() => { const d = document.querySelector('[data-task-id="`+declineTask+`"]').closest('details.later');
	  if (d && !d.open) d.querySelector('summary').click(); return 'ok'; })()`)
	do("decline", freshClick(`[data-task-id="`+declineTask+`"] details.decline summary`),
		chromedp.SendKeys(`[data-task-id="`+declineTask+`"] input[name="reason"]`, "Hors secteur"),
		freshClick(`[data-task-id="`+declineTask+`"] button[value="decline"]`),
		chromedp.WaitReady(`[data-pending="2"]`))
	if txt := get("header", `document.querySelector('header [data-pending]').textContent`); txt != "2 en attente d'envoi" {
		t.Errorf("the header says %q, want \"2 en attente d'envoi\"", txt)
	}
	var queued []struct {
		Key, URL, Body string
		Created        float64
	}
	if err := json.Unmarshal([]byte(get("the queue", queue)), &queued); err != nil || len(queued) != 2 {
		t.Fatalf("the queue holds %v (%v), want the visit and the decline", queued, err)
	}
	if queued[0].Created > queued[1].Created {
		queued[0], queued[1] = queued[1], queued[0]
	}
	if !strings.HasSuffix(queued[0].URL, visitTask+"/visit") || !strings.Contains(queued[0].Body, "action=record-visit") ||
		!strings.Contains(queued[1].Body, "action=decline") || !strings.Contains(queued[1].Body, "reason=Hors+secteur") {
		t.Fatalf("queued: %+v, want the visit recorded and completed, then the decline with its reason", queued)
	}
	if w, p, v, d := weights(), pressures(), statuses(visitTask)[0], statuses(declineTask)[0]; w != 0 || p != 0 || v != "requested" || d != "requested" {
		t.Fatalf("offline, the server already has %d weights, %d blood pressures, the visit's task %s, the other %s", w, p, v, d)
	}

	do("back online", offline(false), chromedp.WaitReady(`header [data-pending="0"]`))
	check := func(when string) {
		t.Helper()
		if w, p := weights(), pressures(); w != 1 || p != 1 {
			box, _ := chromedp.Run(phone, chromedp.Evaluate[string](`(document.getElementById('queue-refused') || {}).textContent || ''`))
			t.Fatalf("%s: %d weights of 81,3 kg and %d blood pressures of 128, want one of each (refused: %q)", when, w, p, box)
		}
		if h := statuses(visitTask); len(h) != len(visitBefore)+1 || h[0] != "completed" || times(h, "completed") != 1 {
			t.Fatalf("%s: the visit's task went through %v, want one more version, completed once", when, h)
		}
		if h := statuses(declineTask); times(h, "rejected") != 1 {
			t.Fatalf("%s: the declined task went through %v, want one refusal", when, h)
		}
	}
	check("back online")
	if txt := get("header", `document.querySelector('header [data-pending]').textContent`); !strings.HasPrefix(txt, "0 ") {
		t.Errorf("back online, the header says %q", txt)
	}
	// The same queued requests again: the first answers, nothing written.
	for _, a := range queued {
		b, _ := json.Marshal(a)
		replay := get("sent again", `(() => { const a = `+string(b)+`; const b = new URLSearchParams(a.Body);
		  b.set('csrf_token', document.querySelector('input[name="csrf_token"]').value);
		  return fetch(a.URL, {method: 'POST', body: b, headers: {'Idempotency-Key': a.Key}, redirect: 'manual'})
		    .then(r => String(r.status) + ' ' + r.type); })()`)
		if !strings.Contains(replay, "opaqueredirect") {
			t.Errorf("%s sent again answered %s, want the first answer (a redirect)", a.URL, replay)
		}
	}
	check("after the replays")
}
