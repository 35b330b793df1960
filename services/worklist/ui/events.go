package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/access"
)

// streamWriteTimeout bounds one write of the live feed: a browser that
// stops reading for that long is dropped.
const streamWriteTimeout = 30 * time.Second

// events streams the actor's own events as Server-Sent Events. A message
// names only the kind and the resource: the page fetches what it shows
// through the ordinary, access-checked pages, so no patient data travels
// here.
func (u *UI) events(w http.ResponseWriter, r *http.Request) {
	a, ok := access.ActorFrom(r.Context())
	if !ok {
		http.Error(w, translate(language(w, r), "err_login"), http.StatusUnauthorized)
		return
	}
	if u.d.Feed == nil {
		http.Error(w, translate(language(w, r), "err_unavailable"), http.StatusNotImplemented)
		return
	}
	rc := http.NewResponseController(w)
	// The stream outlives the server's write timeout, meant for pages:
	// each write gets its own (see write below), so a browser that stops
	// reading is still dropped. Nor is the connection's read deadline the
	// stream's end: the logout or the browser leaving is.
	_ = rc.SetReadDeadline(time.Time{})
	write := func(format string, args ...any) bool {
		_ = rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout))
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			return false
		}
		_ = rc.Flush()
		return true
	}
	mine := map[string]bool{}
	for _, role := range a.Roles {
		mine["PractitionerRole/"+role.ID] = true
	}
	ch, cancel := u.d.Feed.Subscribe(r.Context(), a)
	defer cancel()
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	// The first comment tells the browser the stream is open; retry sets
	// its reconnection delay.
	if !write(": ok\nretry: 3000\n\n") {
		return
	}
	tick := time.NewTicker(u.d.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if !write(": keep-alive\n\n") {
				return
			}
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if (ev.Kind != "task" && ev.Kind != "alert") || !slices.ContainsFunc(ev.Owners, func(o string) bool { return mine[o] }) {
				continue
			}
			data, _ := json.Marshal(map[string]string{"resource": ev.Resource})
			if !write("event: %s\ndata: %s\n\n", ev.Kind, data) {
				return
			}
		}
	}
}
