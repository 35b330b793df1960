package ui

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/passerelle-sante/passerelle/pkg/access"
)

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
	// The stream outlives the server's write timeout, meant for pages.
	_ = rc.SetWriteDeadline(time.Time{})
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
	if _, err := fmt.Fprint(w, ": ok\nretry: 3000\n\n"); err != nil {
		return
	}
	_ = rc.Flush()
	tick := time.NewTicker(u.d.Heartbeat)
	defer tick.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-tick.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
			_ = rc.Flush()
		case ev, ok := <-ch:
			if !ok {
				return
			}
			if (ev.Kind != "task" && ev.Kind != "alert") || !slices.ContainsFunc(ev.Owners, func(o string) bool { return mine[o] }) {
				continue
			}
			data, _ := json.Marshal(map[string]string{"resource": ev.Resource})
			if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", ev.Kind, data); err != nil {
				return
			}
			_ = rc.Flush()
		}
	}
}
