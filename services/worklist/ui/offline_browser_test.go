package ui

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/passerelle-sante/passerelle/pkg/directory"
	"github.com/passerelle-sante/passerelle/pkg/store"
)

// offline cuts the page's network (requests fail, navigator.onLine is
// false) or gives it back.
func offline(off bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		if _, err := cdp.Call(ctx, t, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		conds := []*network.Conditions{{Offline: off, DownloadThroughput: -1, UploadThroughput: -1}}
		if _, err := cdp.Call(ctx, t, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			EmulateOfflineServiceWorker: &off, MatchedNetworkConditions: conds}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, t, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: off, DownloadThroughput: -1, UploadThroughput: -1})
		return err
	})
}

// queued is the first action the page's queue holds, as JSON.
const queued = `new Promise((ok, ko) => { const r = indexedDB.open('passerelle-queue', 1);
  r.onsuccess = () => { const q = r.result.transaction('actions').objectStore('actions').getAll();
    q.onsuccess = () => { r.result.close(); ok(JSON.stringify(q.result[0] || null)); }; q.onerror = ko; };
  r.onerror = ko; })`

// TestBrowserOffline: the nurse's phone loses the network after her
// worklist loaded; she accepts a task; the page shows it waiting to be
// sent (data-pending 1); back online, the acceptance reaches the server
// exactly once and the count returns to 0; the same queued request sent
// again changes nothing. Then: a post whose answer is lost, two tabs, a
// conflict, and a visit queued on a page opened with network whose
// session expires before it is sent.
//
// With PASSERELLE_BENCH_QUEUE=<n>, it then queues n acceptances offline and
// logs the time from reconnecting to an empty queue (bench/README.md).
func TestBrowserOffline(t *testing.T) {
	exe := chromium(t)
	// The post that starts t-late can lose its answer: the server processes
	// it, then drops the connection, as a weak signal does.
	var drop atomic.Bool
	var once sync.Once
	var inner http.Handler
	r := build(t, openSQLite(t), func(r *rig, dir *directory.Resolver, mux *http.ServeMux, base string) Sessions {
		s := devLogin(r, dir, mux, base)
		mux.HandleFunc("POST /tasks/t-late/action", func(w http.ResponseWriter, req *http.Request) {
			once.Do(func() { m := http.NewServeMux(); r.ui.Register(m); inner = m })
			if !drop.Load() {
				inner.ServeHTTP(w, req)
				return
			}
			inner.ServeHTTP(httptest.NewRecorder(), req)
			if c, _, err := http.NewResponseController(w).Hijack(); err == nil {
				_ = c.Close()
			}
		})
		return s
	})
	bench, _ := strconv.Atoi(os.Getenv("PASSERELLE_BENCH_QUEUE"))
	r.create(task("t-tabs", "PractitionerRole/pr-ide-martin", "nurse", "requested", "Visite à deux onglets", day(2, 9)))
	r.create(task("t-expired", "PractitionerRole/pr-ide-martin", "nurse", "requested", "Visite de suivi", day(2, 9)))
	r.create(task("t-conflict", "PractitionerRole/pr-ide-martin", "nurse", "requested", "Visite infirmière", day(2, 9)))
	r.visitTask("t-visit", "requested")
	for i := range bench {
		r.create(task(fmt.Sprintf("t-q%02d", i), "PractitionerRole/pr-ide-martin", "nurse", "requested", fmt.Sprintf("Visite %d", i), day(2, 9)))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	alloc, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("no-default-browser-check", true),
		chromedp.Flag("lang", "fr-FR"), chromedp.Flag("accept-lang", "fr-FR,fr"),
		chromedp.UserDataDir(t.TempDir()), chromedp.WindowSize(360, 740))
	defer cancelAlloc()
	nurse, cancelNurse := chromedp.NewContext(alloc, chromedp.WithLogf(t.Logf))
	defer cancelNurse()
	phone := chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile, chromedp.EmulateScale(1))
	do := func(what string, steps ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(nurse, steps...); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	get := func(what, js string) string {
		t.Helper()
		v, err := chromedp.Run(nurse, chromedp.Evaluate[string](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return v
	}
	status := func(id string) (string, int64) {
		t.Helper()
		res, err := r.st.Read(context.Background(), "Task", id)
		if err != nil {
			t.Fatal(err)
		}
		s, _ := r.read("Task", id)["status"].(string)
		return s, res.Version
	}

	do("the nurse logs in", phone, logIn(r.srv.URL, "ide.martin"), chromedp.WaitVisible(`[data-task-id="t-first"]`),
		chromedp.WaitReady(`header [data-pending="0"]`))
	if ok := get("service worker", `navigator.serviceWorker.ready.then(r => r.active ? 'active' : 'none')`); ok != "active" {
		t.Fatalf("service worker: %s", ok)
	}

	do("the network drops; she accepts her task", offline(true),
		chromedp.Click(`[data-task-id="t-first"] button[value="accept"]`),
		chromedp.WaitReady(`[data-pending="1"]`))
	if txt := get("pending count", `document.querySelector('[data-pending]').textContent`); txt != "1 en attente d'envoi" {
		t.Errorf("header says %q, want \"1 en attente d'envoi\"", txt)
	}
	if txt := get("task mark", `document.querySelector('[data-task-id="t-first"] .queued').textContent`); !strings.Contains(txt, "en attente d'envoi") {
		t.Errorf("the task says %q", txt)
	}
	if dis := get("buttons", `String(document.querySelector('[data-task-id="t-first"] button[value="accept"]').disabled)`); dis != "true" {
		t.Errorf("the queued task's buttons can still be tapped")
	}
	noHorizontalScroll(t, nurse, "worklist with an action waiting")
	if shot, err := chromedp.Run(nurse, chromedp.FullScreenshot(100)); err == nil {
		saveArtifact(t, "worklist-offline-360px.png", shot)
	}
	if s, v := status("t-first"); s != "requested" || v != 1 {
		t.Fatalf("offline, the server already has the task %s at version %d", s, v)
	}
	item := get("queued action", queued)
	if !strings.Contains(item, `"key":`) || !strings.Contains(item, "action=accept") {
		t.Fatalf("queued action: %s", item)
	}

	do("the network returns", offline(false), chromedp.WaitReady(`[data-pending="0"]`))
	if s, v := status("t-first"); s != "accepted" || v != 2 {
		t.Fatalf("back online, the task is %s at version %d, want accepted at version 2 (one write)", s, v)
	}
	// The same queued request again: the first answer, nothing written.
	replay := get("replay", `(() => { const a = `+item+`; const b = new URLSearchParams(a.body);
	  b.set('csrf_token', document.querySelector('input[name="csrf_token"]').value);
	  return fetch(a.url, {method: 'POST', body: b, headers: {'Idempotency-Key': a.key}, redirect: 'manual'})
	    .then(r => String(r.type)); })()`)
	if replay != "opaqueredirect" {
		t.Errorf("replay answered %s, want the first answer (a redirect)", replay)
	}
	if s, v := status("t-first"); s != "accepted" || v != 2 {
		t.Errorf("after a replay, the task is %s at version %d, want accepted at version 2", s, v)
	}
	if n, err := r.st.Idempotency().Purge(context.Background(), time.Now().Add(time.Hour)); err != nil || n != 1 {
		t.Errorf("%d idempotency keys stored, want 1 (%v)", n, err)
	}

	// A weak signal: the phone believes it is online, the post fails. The
	// service worker queues it and shows the list again from its copy.
	if kept := get("worklist kept", `(async () => { for (let i = 0; i < 100; i++) {
	    if (await caches.open('passerelle-pages').then(c => c.match('/worklist'))) return 'kept';
	    await new Promise(ok => setTimeout(ok, 50)); } return 'not kept'; })()`); kept != "kept" {
		t.Fatalf("the worklist page is %s for reading offline", kept)
	}
	// A weak signal: the phone believes it is online; its post reaches the
	// server, which records it, but the answer is lost on the way back. The
	// service worker queues the post with the key the page gave it, the
	// list shows again, and the retry, once the signal returns, is
	// answered without a second write.
	drop.Store(true)
	do("the signal fails; she starts another task", chromedp.Click(`[data-task-id="t-late"] button[value="start"]`),
		chromedp.WaitReady(`[data-pending="1"]`), chromedp.WaitVisible(`[data-task-id="t-late"]`))
	if s, v := status("t-late"); s != "in-progress" || v != 2 {
		t.Fatalf("the lost answer's task is %s at version %d, want in-progress at version 2", s, v)
	}
	drop.Store(false)
	do("the signal returns", chromedp.WaitReady(`[data-pending="0"]`))
	if s, v := status("t-late"); s != "in-progress" || v != 2 {
		t.Fatalf("after the signal returned, the task is %s at version %d, want in-progress at version 2 (one write)", s, v)
	}

	// Two tabs: one queues offline; the other, online, opens the list and
	// sends it; the first, back online, finds nothing left to send. One
	// write, and both tabs count 0.
	do("reload the list", chromedp.Navigate(r.srv.URL+"/worklist"), chromedp.WaitVisible(`[data-task-id="t-tabs"]`), offline(true),
		chromedp.Click(`[data-task-id="t-tabs"] button[value="accept"]`), chromedp.WaitReady(`[data-pending="1"]`))
	tab, cancelTab := chromedp.NewContext(nurse)
	defer cancelTab()
	if err := chromedp.Do(tab, phone, chromedp.Navigate(r.srv.URL+"/worklist"), chromedp.WaitVisible(`[data-task-id="t-tabs"]`)); err != nil {
		t.Fatalf("second tab: %v", err)
	}
	do("the first tab counts 0 once the second sent it", chromedp.WaitReady(`[data-pending="0"]`), offline(false))
	if s, v := status("t-tabs"); s != "accepted" || v != 2 {
		t.Fatalf("sent from another tab: the task is %s at version %d, want accepted at version 2", s, v)
	}
	// Whatever the first tab sends on coming back online, it sends under
	// the queue's lock: once the lock is free, it has sent.
	if left := get("first tab's queue", `navigator.locks.request('passerelle-queue', () =>
	    document.querySelector('[data-pending]').getAttribute('data-pending'))`); left != "0" {
		t.Errorf("the first tab, back online, counts %s", left)
	}
	if s, v := status("t-tabs"); v != 2 {
		t.Errorf("after both tabs were online, the task is %s at version %d, want version 2 (one write)", s, v)
	}
	cancelTab()

	// A conflict: offline, she declines a task with a reason; meanwhile
	// the task is given to another nurse. Back online, the refusal is
	// shown with what she typed, and not counted as waiting.
	do("reload the list", chromedp.Navigate(r.srv.URL+"/worklist"), chromedp.WaitVisible(`[data-task-id="t-conflict"]`), offline(true))
	get("decline with a reason", `(() => { const f = document.querySelector('[data-task-id="t-conflict"] form');
	  let reason = f.querySelector('[name="reason"]');
	  if (!reason) { reason = document.createElement('input'); reason.type = 'hidden'; reason.name = 'reason'; f.appendChild(reason); }
	  if (reason.tagName === 'SELECT') reason.value = reason.options[reason.options.length - 1].value; else reason.value = 'hors secteur';
	  const other = f.querySelector('[name="reason-other"]'); if (other) other.value = 'hors secteur';
	  f.requestSubmit(f.querySelector('button[value="decline"]')); return 'ok'; })()`)
	do("queued", chromedp.WaitReady(`[data-pending="1"]`))
	reassigned := r.read("Task", "t-conflict")
	reassigned["owner"] = obj{"reference": "PractitionerRole/pr-ide-leroy"}
	if err := r.st.Tx(context.Background(), func(tx store.Tx) error {
		_, err := tx.Update(context.Background(), tenant, mustJSON(reassigned), 1)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	do("back online", offline(false), chromedp.WaitVisible(`#queue-refused`), chromedp.WaitReady(`[data-pending="0"]`))
	refused := get("refusal", `document.getElementById('queue-refused').textContent`)
	if !strings.Contains(refused, "Non enregistré") || !strings.Contains(refused, "hors secteur") || !strings.Contains(refused, "Seul le responsable") {
		t.Errorf("the refusal says %q; want what was refused, why, and the reason typed", refused)
	}
	if s, v := status("t-conflict"); s != "requested" || v != 2 {
		t.Errorf("the reassigned task is %s at version %d, want requested at version 2", s, v)
	}

	// The session ends while she is offline (30 minutes idle). She opened
	// a visit's page with network, then lost it, and recorded the visit;
	// back on her list, she accepted a task. Both wait for her to log in
	// again, then are sent, each once. The visit is not also kept by the
	// server as a form to fill in again after the login (its kept-form
	// mechanism is for a tap, not for the queue): that copy, with a new
	// idempotency key, would be recorded a second time.
	do("reload the list", chromedp.Navigate(r.srv.URL+"/worklist"), chromedp.WaitVisible(`[data-task-id="t-expired"]`))
	do("she opens a visit with network, then loses it, and records the visit",
		chromedp.Navigate(r.srv.URL+"/tasks/t-visit"), chromedp.WaitVisible(`#weight-kg`), offline(true),
		chromedp.SendKeys(`#weight-kg`, "75,1"), chromedp.SendKeys(`#symptoms`, "Essoufflée à l'effort"),
		chromedp.Click(`button[value="record-visit"]`), chromedp.WaitReady(`[data-pending="1"]`))
	if txt := get("visit mark", `document.querySelector('form.visit .queued').textContent`); !strings.Contains(txt, "en attente d'envoi") {
		t.Errorf("the visit form says %q", txt)
	}
	do("back on her list, she accepts a task", chromedp.Navigate(r.srv.URL+"/worklist"), chromedp.WaitVisible(`[data-task-id="t-expired"]`),
		chromedp.Click(`[data-task-id="t-expired"] button[value="accept"]`), chromedp.WaitReady(`[data-pending="2"]`))
	r.clock.Advance(31 * time.Minute)
	do("back online", offline(false))
	if txt := get("login needed", `(async () => { for (let i = 0; i < 200; i++) {
	    const t = document.querySelector('[data-pending]').textContent; if (t.includes('reconnectez-vous') || t.startsWith('0')) return t;
	    await new Promise(ok => setTimeout(ok, 50)); } return document.querySelector('[data-pending]').textContent; })()`); txt != "2 en attente d'envoi — reconnectez-vous pour envoyer" {
		t.Fatalf("with the session expired, the header says %q, want both actions waiting for a login", txt)
	}
	weights75 := func() int {
		t.Helper()
		page, err := r.st.Search(context.Background(), store.Query{Tenant: tenant, Type: "Observation", Count: 100})
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, res := range page.Resources {
			n += strings.Count(string(res.Body), `"value":75.1`)
		}
		return n
	}
	if s, v := status("t-expired"); s != "requested" || v != 1 {
		t.Fatalf("without a session, the task became %s at version %d", s, v)
	}
	if s, v := status("t-visit"); s != "requested" || v != 1 || weights75() != 0 {
		t.Fatalf("without a session, the visit's task became %s at version %d, with %d weights of 75,1 kg", s, v, weights75())
	}
	r.ui.kept.mu.Lock()
	kept := len(r.ui.kept.m)
	r.ui.kept.mu.Unlock()
	if kept != 0 {
		t.Errorf("the server also kept %d visit form(s) of the queue, to be filled in and recorded again after the login", kept)
	}
	do("she logs in again", logIn(r.srv.URL, "ide.martin"))
	// The page comes with data-pending="0" from the server: wait for the
	// queue itself to be empty.
	if left := get("queue sent", `(async () => { for (let i = 0; i < 200; i++) {
	    const xs = await new Promise((ok, ko) => { const r = indexedDB.open('passerelle-queue', 1);
	      r.onsuccess = () => { const q = r.result.transaction('actions').objectStore('actions').getAll();
	        q.onsuccess = () => { r.result.close(); ok(q.result); }; }; r.onerror = ko; });
	    if (!xs.some(a => a.state === 'pending')) return 'empty';
	    await new Promise(ok => setTimeout(ok, 50)); } return 'still waiting'; })()`); left != "empty" {
		t.Fatalf("after logging in again, the queue is %s", left)
	}
	if s, v := status("t-expired"); s != "accepted" || v != 2 {
		t.Fatalf("after logging in again, the task is %s at version %d, want accepted at version 2", s, v)
	}
	if s, v := status("t-visit"); s != "completed" || v != 2 || weights75() != 1 {
		t.Fatalf("after logging in again, the visit's task is %s at version %d with %d weights of 75,1 kg, want completed at version 2 with 1",
			s, v, weights75())
	}

	if bench > 0 {
		queueBench(t, r, nurse, bench, do, get, status)
	}

	// Logout wipes the pages kept and the queue; the home page says so.
	do("log out", chromedp.Click(`nav.main button.link`), chromedp.WaitVisible(`main a.button`))
	if left := get("what the phone keeps", `(async () => [await caches.has('passerelle-pages'),
	    (await indexedDB.databases()).some(d => d.name === 'passerelle-queue')].join(' '))()`); left != "false false" {
		t.Errorf("after logout, kept pages and queue: %s, want none", left)
	}
	if txt := get("home", `document.querySelector('main').textContent`); !strings.Contains(txt, "effacées à la déconnexion") {
		t.Errorf("the home page does not say the phone's data is wiped at logout: %q", txt)
	}
}

// queueBench queues n acceptances offline and logs the time from
// reconnecting to an empty queue.
func queueBench(t *testing.T, r *rig, nurse context.Context, bench int, do func(string, ...chromedp.Action[chromedp.Void]),
	get func(string, string) string, status func(string) (string, int64)) {
	do("reload the list", chromedp.Navigate(r.srv.URL+"/worklist"), chromedp.WaitReady(`header [data-pending="0"]`), offline(true))
	for i := range bench {
		do("queue", chromedp.Click(fmt.Sprintf(`[data-task-id="t-q%02d"] button[value="accept"]`, i)),
			chromedp.WaitReady(fmt.Sprintf(`[data-pending="%d"]`, i+1)))
	}
	get("watch", `(() => { window.drain = {};
	  window.addEventListener('online', () => { window.drain.online = performance.now(); }, {once: true});
	  const c = document.querySelector('[data-pending]');
	  new MutationObserver(() => { if (c.getAttribute('data-pending') === '0' && !window.drain.empty) window.drain.empty = performance.now(); })
	    .observe(c, {attributes: true});
	  return 'ok'; })()`)
	do("reconnect", offline(false), chromedp.WaitReady(`[data-pending="0"]`))
	ms := get("drain time", `String(window.drain.empty - window.drain.online)`)
	for i := range bench {
		if s, v := status(fmt.Sprintf("t-q%02d", i)); s != "accepted" || v != 2 {
			t.Errorf("t-q%02d is %s at version %d, want accepted once", i, s, v)
		}
	}
	t.Logf("BENCH queue drain: %d actions, %s ms from reconnecting to an empty queue", bench, ms)
}
