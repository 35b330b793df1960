// Service worker of the worklist: keeps the pages a professional opened
// (her worklist, her alerts, the pages of the tasks she owns, and those of
// her tasks due in the coming days) and their assets, so that they read
// without network. Pages come from the network
// first and from here only when it fails. What is kept belongs to one
// session: a page of another session wipes it, as do logout (app.js) and
// the session's absolute lifetime.
'use strict';
var PAGES = 'passerelle-pages', ASSETS = 'passerelle-assets';
// The web session's absolute lifetime (pkg/websession's default TTL).
var LIFETIME = 8 * 3600 * 1000;
var META = '/__passerelle-meta';

self.addEventListener('install', function () { self.skipWaiting(); });
self.addEventListener('activate', function (e) { e.waitUntil(self.clients.claim()); });
self.addEventListener('message', function (e) {
  if (e.data === 'wipe') e.waitUntil(wipe());
  // A page opened before this worker controlled it asks to be kept.
  if (e.data && typeof e.data.keep === 'string') e.waitUntil(keepNew(e.data.keep));
});

function keepNew(path) {
  return keepable(path).then(function (ok) {
    if (!ok) return;
    return fetch(path, { credentials: 'same-origin' }).then(function (res) {
      if (res.ok && !res.redirected) return keep(path, res);
    });
  }).catch(function () {});
}

function wipe() {
  return caches.keys().then(function (ks) { return Promise.all(ks.map(function (k) { return caches.delete(k); })); });
}

function meta() {
  return caches.open(PAGES).then(function (c) { return c.match(META); })
    .then(function (r) { return r ? r.json() : null; });
}

// expired wipes what outlived the session's absolute lifetime.
function expired() {
  return meta().then(function (m) {
    if (m && Date.now() - m.born > LIFETIME) return wipe().then(function () { return true; });
    return false;
  });
}

// kept answers which pages are kept: a task's page only when the task is on
// the kept worklist ("Mes tâches" lists the tasks she owns), so that the
// phone keeps no patient data of tasks she merely looked at.
function keepable(path) {
  if (path === '/worklist' || path === '/alerts') return Promise.resolve(true);
  var m = /^\/tasks\/([A-Za-z0-9\-.]{1,64})$/.exec(path);
  if (!m) return Promise.resolve(false);
  return caches.open(PAGES).then(function (c) { return c.match('/worklist'); })
    .then(function (r) { return r ? r.text() : ''; })
    .then(function (html) { return html.indexOf('data-task-id="' + m[1] + '"') >= 0; });
}

// keep stores a page of the session that its CSRF token names; a page of
// another session (another login, maybe another person on a shared phone)
// wipes the previous one's first.
function keep(path, res) {
  return res.text().then(function (html) {
    var s = /name="csrf_token" value="([^"]+)"/.exec(html);
    if (!s) return;
    return meta().then(function (m) {
      var reset = !m || m.session !== s[1];
      return (reset ? wipe() : Promise.resolve()).then(function () { return caches.open(PAGES); }).then(function (c) {
        var puts = [c.put(path, new Response(html, { headers: { 'Content-Type': 'text/html; charset=utf-8' } }))];
        if (reset) puts.push(c.put(META, new Response(JSON.stringify({ session: s[1], born: Date.now() }))));
        return Promise.all(puts).then(function () { if (path === '/worklist') return prefetch(html); });
      });
    });
  });
}

// SOON is how far ahead the pages of her tasks are fetched when her
// worklist is kept (overdue ones too), and AHEAD how many at most: the
// visits of the coming days open without network, without the phone
// holding the patients of months ahead.
var SOON = 3 * 24 * 3600 * 1000, AHEAD = 15;

function prefetch(html) {
  var now = Date.now(), ids = [];
  html.split('data-task-id="').slice(1).forEach(function (part) {
    var id = /^([A-Za-z0-9\-.]{1,64})"/.exec(part), due = /datetime="([0-9T:+\-.Z]+)"/.exec(part);
    if (id && due && Date.parse(due[1]) - now < SOON && ids.length < AHEAD) ids.push(id[1]);
  });
  return Promise.all(ids.map(function (id) {
    var path = '/tasks/' + id;
    return caches.open(PAGES).then(function (c) { return c.match(path); }).then(function (hit) {
      if (hit) return;
      return fetch(path, { credentials: 'same-origin' }).then(function (res) {
        if (res.ok && !res.redirected) return keep(path, res);
      });
    }).catch(function () {});
  }));
}

function page(e, url) {
  return fetch(e.request).then(function (res) {
    if (res.ok && !res.redirected && (res.headers.get('Content-Type') || '').indexOf('text/html') === 0) {
      var copy = res.clone();
      e.waitUntil(keepable(url.pathname).then(function (ok) { if (ok) return keep(url.pathname, copy); }));
    }
    return res;
  }, function () {
    return expired().then(function () { return caches.open(PAGES); })
      .then(function (c) { return c.match(url.pathname); })
      .then(function (r) {
        return r || new Response('<!doctype html><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">' +
          '<title>Hors ligne</title><p>Hors ligne : cette page n\'a pas été ouverte sur ce téléphone. / Offline: this page was not opened on this phone.</p>' +
          '<p><a href="/worklist">Mes tâches</a></p>', { status: 503, headers: { 'Content-Type': 'text/html; charset=utf-8' } });
      });
  });
}

function asset(e) {
  return caches.open(ASSETS).then(function (c) {
    return fetch(e.request).then(function (res) {
      if (res.ok) c.put(e.request, res.clone());
      return res;
    }, function () {
      return c.match(e.request).then(function (r) { return r || Response.error(); });
    });
  });
}

// queue keeps a worklist form whose post failed on the network although the
// phone believed it was online (a weak signal, a server out of reach): it
// joins the queue app.js sends from (same database), with the idempotency
// key app.js gave the form, and the page it came from is shown again.
function queue(e) {
  var copy = e.request.clone();
  return fetch(e.request).catch(function () {
    return copy.formData().then(function (data) {
      var key = data.get('idempotency-key');
      if (!key) return Response.error();
      var fields = [], internal = { csrf_token: 1, version: 1, back: 1, 'idempotency-key': 1 };
      data.forEach(function (v, n) { if (!internal[n] && typeof v === 'string') fields.push([n, v]); });
      var path = new URL(e.request.url).pathname;
      var item = { key: key, url: path, body: new URLSearchParams(data).toString(), who: '', created: Date.now(),
        state: 'pending', label: (data.get('action') || 'visite') + ' — ' + path, fields: fields };
      return new Promise(function (ok, ko) {
        var r = indexedDB.open('passerelle-queue', 1);
        r.onupgradeneeded = function () { r.result.createObjectStore('actions', { keyPath: 'key' }); };
        r.onerror = function () { ko(r.error); };
        r.onsuccess = function () {
          var tx = r.result.transaction('actions', 'readwrite');
          tx.objectStore('actions').put(item);
          tx.oncomplete = function () { r.result.close(); ok(); };
          tx.onerror = function () { r.result.close(); ko(tx.error); };
        };
      }).then(function () {
        return Response.redirect(e.request.referrer || '/worklist', 303);
      });
    });
  });
}

self.addEventListener('fetch', function (e) {
  var url = new URL(e.request.url);
  if (url.origin !== self.location.origin) return;
  if (e.request.method === 'POST' && e.request.mode === 'navigate' && /^\/(tasks|alerts)\//.test(url.pathname)) {
    e.respondWith(queue(e));
    return;
  }
  if (e.request.method !== 'GET') return;
  if (url.pathname.indexOf('/static/') === 0) { e.respondWith(asset(e)); return; }
  if (e.request.mode === 'navigate' && /^\/(worklist|alerts|tasks\/[^/]+)$/.test(url.pathname)) e.respondWith(page(e, url));
});
