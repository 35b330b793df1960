package main

import (
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
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
// whole instance, every service real: her worklist loads, then the phone
// goes offline; she opens a task (kept by the service worker), records a
// visit, goes back to her list and declines another task with a reason.
// The header shows 2 waiting; back online, both reach the server exactly
// once (one weight among the patient's Observations, one refusal in the
// task's history), the count returns to 0, and the visit's queued request
// sent again changes nothing.
func TestOfflineInTheBrowser(t *testing.T) {
	exe := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			exe = p
			break
		}
	}
	if exe == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no Chromium, and CI is set: install it (apt-get install -y chromium)")
		}
		t.Skip("no Chromium (apt-get install -y chromium)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	tp := startPlatform(t, map[string]string{"PASSERELLE_HTTP_ADDR": addr, "PASSERELLE_PUBLIC_URL": "http://" + addr})
	body, err := os.ReadFile("../intake/testdata/discharge-hf-declared-team.json")
	if err != nil {
		t.Fatal(err)
	}
	if r := tp.do(t, "POST", "/fhir/$process-message", tp.token(t, "chu-demo-dpi"), string(body)); r.status != 200 {
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

	bctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	alloc, cancelAlloc := chromedp.NewExecAllocator(bctx,
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("lang", "fr-FR"), chromedp.Flag("accept-lang", "fr-FR,fr"), chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(360, 740))
	defer cancelAlloc()
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
	weights := func() int {
		t.Helper()
		r := tp.do(t, "GET", "/fhir/Observation?patient="+patient+"&code=http://loinc.org|29463-7", tp.token(t, nurse), "")
		return strings.Count(string(r.body), `"value":81.3`)
	}
	refusals := func() int {
		t.Helper()
		h, err := tp.Store.History(ctx, "Task", declineTask, store.HistoryParams{Count: 100})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, v := range h.Resources {
			var task struct{ Status string }
			_ = json.Unmarshal(v.Body, &task)
			if task.Status == "rejected" {
				n++
			}
		}
		return n
	}

	do("the nurse logs in", chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile, chromedp.EmulateScale(1)),
		chromedp.Navigate(tp.base+"/worklist"), chromedp.WaitVisible(`input[name="username"]`),
		chromedp.SendKeys(`input[name="username"]`, nurse), chromedp.SendKeys(`input[name="password"]`, nurse+kb.Enter),
		chromedp.WaitVisible(`[data-task-id="`+visitTask+`"]`), chromedp.WaitReady(`header [data-pending="0"]`))
	// She accepts her first contact while she has network (with the
	// visit in one action, recording it would accept it too).
	do("accept", chromedp.Click(`[data-task-id="`+visitTask+`"] button[value="accept"]`),
		chromedp.WaitVisible(`[data-task-id="`+visitTask+`"] button[value="start"]`))
	// The service worker keeps her list and the pages of her tasks due soon.
	if kept := get("pages kept", `(async () => { for (let i = 0; i < 200; i++) {
	    const c = await caches.open('passerelle-pages');
	    if (await c.match('/worklist') && await c.match('/tasks/`+visitTask+`')) return 'kept';
	    await new Promise(ok => setTimeout(ok, 50)); } return 'not kept'; })()`); kept != "kept" {
		t.Fatalf("the worklist and the task's page are %s for offline reading", kept)
	}

	do("offline, she opens the task and records the visit", offline(true),
		chromedp.Navigate(tp.base+"/tasks/"+visitTask), chromedp.WaitVisible(`#weight-kg`),
		chromedp.SendKeys(`#systolic`, "128"), chromedp.SendKeys(`#diastolic`, "76"),
		chromedp.SendKeys(`#weight-kg`, "81,3"+kb.Enter), chromedp.WaitReady(`[data-pending="1"]`))
	visit := get("the queued visit", `new Promise((ok, ko) => { const r = indexedDB.open('passerelle-queue', 1);
	  r.onsuccess = () => { const q = r.result.transaction('actions').objectStore('actions').getAll();
	    q.onsuccess = () => { r.result.close(); ok(JSON.stringify(q.result.find(a => a.url.endsWith('/visit')) || null)); }; };
	  r.onerror = ko; })`)
	do("back to her list, she declines another task with a reason", chromedp.Navigate(tp.base+"/worklist"),
		chromedp.WaitVisible(`[data-task-id="`+declineTask+`"]`))
	get("decline", `(() => { const f = document.querySelector('[data-task-id="`+declineTask+`"] form');
	  let reason = f.querySelector('[name="reason"]');
	  if (!reason) { reason = document.createElement('input'); reason.type = 'hidden'; reason.name = 'reason'; f.appendChild(reason); }
	  if (reason.tagName === 'SELECT') reason.value = reason.options[reason.options.length - 1].value; else reason.value = 'hors secteur';
	  f.requestSubmit(f.querySelector('button[value="decline"]')); return 'ok'; })()`)
	do("2 waiting", chromedp.WaitReady(`[data-pending="2"]`))
	if txt := get("header", `document.querySelector('[data-pending]').textContent`); txt != "2 en attente d'envoi" {
		t.Errorf("the header says %q", txt)
	}
	if w, n := weights(), refusals(); w != 0 || n != 0 {
		t.Fatalf("offline, the server already has %d weights and %d refusals", w, n)
	}

	do("back online", offline(false), chromedp.WaitReady(`[data-pending="0"]`))
	if w, n := weights(), refusals(); w != 1 || n != 1 {
		box, _ := chromedp.Run(phone, chromedp.Evaluate[string](`(document.getElementById('queue-refused') || {}).textContent || ''`))
		r := tp.do(t, "GET", "/fhir/Observation?patient="+patient, tp.token(t, nurse), "")
		t.Fatalf("back online: %d weights of 81,3 kg and %d refusals, want 1 and 1 (refused: %q; %.2000s)", w, n, box, r.body)
	}
	replay := get("the visit sent again", `(() => { const a = `+visit+`; const b = new URLSearchParams(a.body);
	  b.set('csrf_token', document.querySelector('input[name="csrf_token"]').value);
	  return fetch(a.url, {method: 'POST', body: b, headers: {'Idempotency-Key': a.key}, redirect: 'manual'})
	    .then(r => String(r.status) + ' ' + r.type); })()`)
	if !strings.Contains(replay, "opaqueredirect") {
		t.Errorf("the replay answered %s, want the first answer (a redirect)", replay)
	}
	if w := weights(); w != 1 {
		t.Errorf("after the replay, %d weights of 81,3 kg, want 1", w)
	}
}
