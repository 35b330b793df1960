// Live updates: on an event about the user's tasks or alerts, the page
// fetches itself again and swaps its list. Without JavaScript, or without
// EventSource, the page works by reloading.
(function () {
  var live = document.querySelector('[data-live]');
  var status = document.getElementById('live-status');
  if (!live || !status || !window.EventSource || !window.fetch || !window.DOMParser) return;
  var busy = false, again = false;
  function refresh() {
    if (busy) { again = true; return; }
    busy = true;
    fetch(location.href, { credentials: 'same-origin', headers: { 'Accept': 'text/html' } })
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (html) {
        var next = new DOMParser().parseFromString(html, 'text/html').querySelector('[data-live]');
        if (next) {
          live.innerHTML = next.innerHTML;
          status.textContent = status.getAttribute('data-text');
        }
      })
      .catch(function () {})
      .then(function () { busy = false; if (again) { again = false; refresh(); } });
  }
  var es = new EventSource('/events');
  es.addEventListener('task', refresh);
  es.addEventListener('alert', refresh);
  es.addEventListener('open', function () { document.documentElement.setAttribute('data-live-ready', '1'); });
})();

// Offline queue: a worklist action (accept, decline, start, complete, a
// visit, an alert seen) taken without network is kept on the phone with its
// own idempotency key, shown as waiting to be sent, counted in the header's
// [data-pending], and sent when the network returns. The server stores the
// key with the write, so a retry (a reload, another tab, a lost answer)
// never writes twice. An answer that refuses the action (the task was
// reassigned, a stale version, a refused field) is shown with what was
// typed, never dropped. Everything kept is wiped at logout.
(function () {
  var counter = document.querySelector('[data-pending]');
  if (!counter || !window.indexedDB || !window.fetch || !window.Promise) return;
  var en = document.documentElement.lang === 'en';
  var who = counter.getAttribute('data-who') || '';
  // Logged out: nothing to send as anyone (logout wiped what was kept).
  if (!who) return;
  // The web session's absolute lifetime (pkg/websession's default TTL):
  // what was typed is not kept on the phone beyond it.
  var LIFETIME = 8 * 3600 * 1000;
  var internal = { csrf_token: 1, version: 1, back: 1, 'idempotency-key': 1 };
  if (navigator.serviceWorker) {
    // A page loaded before the worker controlled it did not go through it:
    // the worker is asked to keep it.
    var uncontrolled = !navigator.serviceWorker.controller;
    navigator.serviceWorker.register('/sw.js').then(function () { return navigator.serviceWorker.ready; })
      .then(function (reg) { if (reg.active && uncontrolled) reg.active.postMessage({ keep: location.pathname }); })
      .catch(function () {});
  }

  function open() {
    return new Promise(function (ok, ko) {
      var r = indexedDB.open('passerelle-queue', 1);
      r.onupgradeneeded = function () { r.result.createObjectStore('actions', { keyPath: 'key' }); };
      r.onsuccess = function () { ok(r.result); };
      r.onerror = function () { ko(r.error); };
    });
  }
  function store(mode, fn) {
    return open().then(function (db) {
      return new Promise(function (ok, ko) {
        var tx = db.transaction('actions', mode), out;
        out = fn(tx.objectStore('actions'));
        tx.oncomplete = function () { db.close(); ok(out && out.result); };
        tx.onerror = function () { db.close(); ko(tx.error); };
      });
    });
  }
  function all() {
    return store('readonly', function (s) { return s.getAll(); }).then(function (xs) {
      return (xs || []).sort(function (a, b) { return a.created - b.created; });
    });
  }
  function put(a) { return store('readwrite', function (s) { s.put(a); }); }
  function del(k) { return store('readwrite', function (s) { s['delete'](k); }); }
  var channel = window.BroadcastChannel ? new BroadcastChannel('passerelle-queue') : null;
  function changed() { if (channel) channel.postMessage('changed'); return show(); }
  if (channel) channel.onmessage = show;

  function newKey() {
    if (window.crypto && crypto.randomUUID) return crypto.randomUUID();
    var b = new Uint8Array(16);
    crypto.getRandomValues(b);
    return Array.prototype.map.call(b, function (x) { return (x + 256).toString(16).slice(1); }).join('');
  }
  function csrf() {
    var f = document.querySelector('input[name="csrf_token"]');
    return f ? f.value : '';
  }
  // An action the service worker queued (who is empty) was taken on this
  // phone's current session.
  function mine(a) {
    if (a.who === '' && who) { a.who = who; put(a); }
    return a.who === who;
  }

  // show counts what waits, marks the tasks it concerns, and lists what
  // the server refused with what had been typed.
  function show() {
    return all().then(function (xs) {
      var now = Date.now(), old = xs.filter(function (a) { return now - a.created > LIFETIME; });
      old.forEach(function (a) { del(a.key); });
      xs = xs.filter(function (a) { return mine(a) && old.indexOf(a) < 0; });
      var waiting = xs.filter(function (a) { return a.state === 'pending'; });
      counter.setAttribute('data-pending', String(waiting.length));
      counter.textContent = waiting.length + (en ? ' waiting to be sent' : ' en attente d\'envoi') +
        (loginNeeded ? (en ? ' — log in again to send' : ' — reconnectez-vous pour envoyer') : '');
      counter.hidden = waiting.length === 0;
      Array.prototype.forEach.call(document.querySelectorAll('.queued'), function (e) { e.remove(); });
      Array.prototype.forEach.call(document.querySelectorAll('button[data-queued]'), function (b) {
        b.disabled = false;
        b.removeAttribute('data-queued');
      });
      waiting.forEach(function (a) {
        var f = document.querySelector('form[action="' + a.url + '"]');
        if (!f) return;
        f.insertAdjacentHTML('beforeend', '<p class="queued badge" role="status"></p>');
        f.lastChild.textContent = a.label + (en ? ' — waiting to be sent' : ' — en attente d\'envoi');
        // One action at a time per form: a second tap would only be
        // refused once the first is sent.
        Array.prototype.forEach.call(f.querySelectorAll('button'), function (b) {
          b.disabled = true;
          b.setAttribute('data-queued', '');
        });
      });
      var box = document.getElementById('queue-refused');
      var refused = xs.filter(function (a) { return a.state === 'refused'; });
      if (box) box.remove();
      if (!refused.length) return;
      box = document.createElement('section');
      box.id = 'queue-refused';
      box.className = 'flash error';
      box.setAttribute('role', 'alert');
      refused.forEach(function (a) {
        var p = document.createElement('p');
        p.textContent = (en ? 'Not recorded: ' : 'Non enregistré : ') + a.label + ' — ' + a.message;
        var typed = a.fields.filter(function (f) { return f[1] !== ''; }).map(function (f) { return f[0] + ' = ' + f[1]; });
        if (typed.length) {
          var q = document.createElement('p');
          q.textContent = (en ? 'What you had entered: ' : 'Ce que vous aviez saisi : ') + typed.join(', ');
          p.appendChild(q);
        }
        var b = document.createElement('button');
        b.type = 'button';
        b.textContent = en ? 'Understood' : 'Compris';
        b.onclick = function () { del(a.key).then(changed); };
        p.appendChild(b);
        box.appendChild(p);
      });
      var main = document.getElementById('main');
      if (main) main.insertBefore(box, main.firstChild);
    });
  }

  // Every worklist post carries an idempotency key, so that a double tap
  // or a form sent again writes once; offline, the post is queued instead.
  document.addEventListener('submit', function (e) {
    var f = e.target, action = f.getAttribute('action') || '';
    if ((f.getAttribute('method') || '').toLowerCase() !== 'post' || !/^\/(tasks|alerts)\//.test(action)) return;
    var data = new FormData(f);
    if (e.submitter && e.submitter.name) data.append(e.submitter.name, e.submitter.value);
    data['delete']('idempotency-key');
    var body = new URLSearchParams(data).toString();
    if (f.queueBody !== body) { f.queueBody = body; f.queueKey = newKey(); }
    var k = f.querySelector('input[name="idempotency-key"]');
    if (!k) {
      k = document.createElement('input');
      k.type = 'hidden';
      k.name = 'idempotency-key';
      f.appendChild(k);
    }
    k.value = f.queueKey;
    if (navigator.onLine) return;
    e.preventDefault();
    var task = f.closest('[data-task-id]'), title = task && task.querySelector('.task-head a');
    var label = (e.submitter && e.submitter.textContent.trim()) || (en ? 'Action' : 'Action');
    label += ' — ' + ((title && title.textContent.trim()) || (document.querySelector('h1') || {}).textContent || '');
    var fields = [];
    data.forEach(function (v, n) { if (!internal[n] && typeof v === 'string') fields.push([n, v]); });
    put({ key: f.queueKey, url: action, body: body, who: who, created: Date.now(), state: 'pending', label: label, fields: fields })
      .then(changed);
    f.queueBody = null;
  }, true);

  // send posts what waits, oldest first, one tab at a time (Web Locks),
  // each with its key. It stops at the first network failure and tries
  // again later; a session to renew stops it until the next page.
  var sending = false, retry = null, loginNeeded = false;
  function send() {
    if (sending || !navigator.onLine) return Promise.resolve();
    sending = true;
    var run = function () { return all().then(function (xs) { return next(xs.filter(function (a) { return mine(a) && a.state === 'pending'; })); }); };
    var p = navigator.locks ? navigator.locks.request('passerelle-queue', run) : run();
    return p.then(function (again) {
      sending = false;
      clearTimeout(retry);
      if (again) retry = setTimeout(send, 3000);
      return show();
    }, function () { sending = false; });
  }
  function next(xs) {
    if (!xs.length) return false;
    var a = xs[0];
    var body = new URLSearchParams(a.body);
    if (csrf()) body.set('csrf_token', csrf());
    return fetch(a.url, { method: 'POST', credentials: 'same-origin', body: body,
      headers: { 'Idempotency-Key': a.key, 'Accept': 'text/html' } }).then(function (res) {
      if (res.status === 409 && res.headers.get('Retry-After')) return true;
      if (res.status === 401) { loginNeeded = true; return false; }
      return res.text().then(function (text) {
        var refusal = '';
        if (!res.ok) refusal = message(text) || String(res.status);
        else {
          var doc = new DOMParser().parseFromString(text, 'text/html');
          // Sent to a login page instead of one of hers: not sent.
          if (!doc.querySelector('[data-who]')) { loginNeeded = true; return false; }
          var err = doc.querySelector('.flash.error');
          if (err) refusal = err.textContent.trim();
        }
        loginNeeded = false;
        var done = refusal ? put(Object.assign({}, a, { state: 'refused', message: refusal })) : del(a.key);
        return done.then(function () { changed(); return next(xs.slice(1)); });
      });
    }, function () { return true; });
  }
  function message(text) {
    try {
      var oo = JSON.parse(text);
      return oo.issue.map(function (i) { return (i.details && i.details.text) || i.diagnostics; }).join(' ; ');
    } catch (x) {
      var doc = new DOMParser().parseFromString(text, 'text/html'), e = doc.querySelector('.flash, main p');
      return e ? e.textContent.trim() : '';
    }
  }
  window.addEventListener('online', send);

  // Logout wipes what the phone keeps: pages, assets and queue, after
  // asking when actions still wait to be sent.
  document.addEventListener('submit', function (e) {
    var f = e.target;
    if (!/\/logout$/.test(f.getAttribute('action') || '')) return;
    e.preventDefault();
    var n = Number(counter.getAttribute('data-pending'));
    if (n > 0 && !window.confirm(en ? n + ' action(s) not sent yet will be lost. Log out?' : n + ' action(s) pas encore envoyée(s) seront perdues. Se déconnecter ?')) return;
    var wipes = [new Promise(function (ok) { var r = indexedDB.deleteDatabase('passerelle-queue'); r.onsuccess = r.onerror = r.onblocked = ok; })];
    if (window.caches) wipes.push(caches.keys().then(function (ks) { return Promise.all(ks.map(function (k) { return caches.delete(k); })); }));
    Promise.all(wipes).then(function () { f.submit(); }, function () { f.submit(); });
  });

  show().then(send);
})();
