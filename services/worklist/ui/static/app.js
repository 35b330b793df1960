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
